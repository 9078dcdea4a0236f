//! One answer on every instance: three instances on one PostgreSQL, each with
//! a long auth cache, and a change made through one refused by the other two
//! at once (Redis pub/sub, or PostgreSQL LISTEN/NOTIFY without Redis); with
//! the broadcast cut, within the cache's TTL.
//!
//! Each kind of change is tried `DRILL_TRIALS` times (3 by default, as CI
//! runs it; `just drills` runs 200) under a background load of /me requests
//! on every instance, and the p99 of the time until both others refuse must
//! stay under 100 ms (a short run: its median, and every trial under 1 s).

use std::time::{Duration as StdDuration, Instant};

use serde_json::{Value, json};
use time::Duration;

use crate::helpers::{Options, PASSWORD, TestApp, token_of};

/// The cache TTL of the drill's instances: long, so that only the broadcast
/// can explain a refusal within 100 ms.
const LONG_TTL: &str = "60000";
/// The bound the p99 must meet.
const WITHIN: StdDuration = StdDuration::from_millis(100);
/// Fewer trials than this make no p99: the "p99" of CI's three is the
/// slowest trial, and in CI the drill runs beside the whole suite, debug
/// build, on two cores, where one trial in a few hundred waited 104 ms for
/// a core. A short run is judged by its median against [`WITHIN`] and by
/// every trial against [`SHORT_RUN_MAX`]; `just drills` (200 trials) by the p99.
const P99_TRIALS: usize = 100;
/// Every trial of a short run: far inside the 60 s TTL, so only the
/// broadcast explains the refusal.
const SHORT_RUN_MAX: StdDuration = StdDuration::from_millis(1000);

fn trials() -> usize {
    std::env::var("DRILL_TRIALS").ok().and_then(|t| t.parse().ok()).unwrap_or(3)
}

/// How changes travel in one drill.
#[derive(Debug, Clone)]
enum Via {
    Postgres,
    Redis(String),
    /// A Redis nobody listens on: the broadcast is cut.
    Cut,
}

async fn cluster(via: &Via, ttl: &'static str) -> Option<[TestApp; 3]> {
    let prefix = format!("portcullis-drill:{}:", uuid::Uuid::new_v4().simple());
    let options = |database_url: Option<String>| Options {
        cache_ttl_ms: Some(ttl),
        database_url,
        without_redis: matches!(via, Via::Postgres),
        redis: match via {
            Via::Postgres => None,
            Via::Redis(url) => Some((url.clone(), prefix.clone())),
            // Nothing listens on port 9 (discard) here: connections are refused.
            Via::Cut => Some(("redis://127.0.0.1:9".to_owned(), prefix.clone())),
        },
        ..Options::default()
    };
    let a = TestApp::spawn_with(crate::helpers::Backend::Postgres, options(None)).await?;
    let b =
        TestApp::spawn_with(crate::helpers::Backend::Postgres, options(Some(a.database_url.clone()))).await?;
    let c =
        TestApp::spawn_with(crate::helpers::Backend::Postgres, options(Some(a.database_url.clone()))).await?;
    Some([a, b, c])
}

/// A credential as a request builder: a bearer token or an API key on a route that needs it.
#[derive(Clone)]
enum Credential {
    Token(String),
    Key(String),
}

async fn status(app: &TestApp, credential: &Credential) -> u16 {
    let response = match credential {
        Credential::Token(token) => app.get_with("/v1/auth/me", token).await,
        Credential::Key(key) => app.get_with_key("/v1/database/projects", key).await,
    };
    response.status().as_u16()
}

/// Both `others` answer `credential` 200 now (their caches hold it).
async fn warm(others: &[&TestApp], credential: &Credential) {
    for app in others {
        for _ in 0..2 {
            assert_eq!(status(app, credential).await, 200, "accepted before the change");
        }
    }
}

/// How long until every one of `others` refuses `credential` (polled every
/// 2 ms), or `None` after `limit`.
async fn refused_after(
    others: &[&TestApp],
    credential: &Credential,
    started: Instant,
    limit: StdDuration,
) -> Option<StdDuration> {
    loop {
        let mut all = true;
        for app in others {
            if status(app, credential).await == 200 {
                all = false;
            }
        }
        if all {
            return Some(started.elapsed());
        }
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(StdDuration::from_millis(2)).await;
    }
}

async fn sign_in(app: &TestApp, email: &str) -> Value {
    let response = app.login(email, PASSWORD).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Makes one change of `kind` through `a`; returns the credential it must
/// kill, and when `a` answered (the change is done then).
async fn prepare_and_change(
    kind: &str,
    trial: usize,
    [a, b, c]: [&TestApp; 3],
    admin: &str,
) -> (Credential, Instant) {
    let email = format!("{kind}-{trial}-{}@example.com", uuid::Uuid::new_v4().simple());
    a.register(&email).await;
    let first = sign_in(a, &email).await;
    let token = first["access_token"].as_str().unwrap().to_owned();
    let others = [b, c];
    match kind {
        "logout" => {
            let credential = Credential::Token(token.clone());
            warm(&others, &credential).await;
            assert_eq!(a.post_with("/v1/auth/logout", &token).await.status(), 200);
            let started = Instant::now();
            (credential, started)
        }
        "session-delete" => {
            let second = token_of(a.login(&email, PASSWORD).await).await;
            let sid = crate::sessions::payload_of(&token)["sid"].as_str().unwrap().to_owned();
            let credential = Credential::Token(token.clone());
            warm(&others, &credential).await;
            let deleted = a
                .client
                .delete(a.url(&format!("/v1/auth/sessions/{sid}")))
                .bearer_auth(&second)
                .send()
                .await
                .unwrap();
            assert_eq!(deleted.status(), 200);
            let started = Instant::now();
            (credential, started)
        }
        "password-change" => {
            let other_session = token_of(a.login(&email, PASSWORD).await).await;
            let credential = Credential::Token(other_session);
            warm(&others, &credential).await;
            let changed = a
                .client
                .post(a.url("/v1/auth/change-password"))
                .bearer_auth(&token)
                .json(&json!({"current_password": PASSWORD, "new_password": "AnotherPass456!"}))
                .send()
                .await
                .unwrap();
            assert_eq!(changed.status(), 200);
            let started = Instant::now();
            (credential, started)
        }
        "disable" => {
            let id = a.user(&email).await.id.as_uuid();
            let credential = Credential::Token(token.clone());
            warm(&others, &credential).await;
            let disabled = a
                .client
                .patch(a.url(&format!("/v1/admin/users/{id}")))
                .bearer_auth(admin)
                .json(&json!({"is_active": false}))
                .send()
                .await
                .unwrap();
            assert_eq!(disabled.status(), 200);
            let started = Instant::now();
            (credential, started)
        }
        "api-key-revoke" => {
            let key = a.create_key(&token, &json!({"name": "drill"})).await;
            let credential = Credential::Key(key["api_key"].as_str().unwrap().to_owned());
            warm(&others, &credential).await;
            let id = key["id"].as_str().unwrap();
            let revoked = a
                .client
                .delete(a.url(&format!("/v1/api-keys/{id}")))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(revoked.status(), 200);
            let started = Instant::now();
            (credential, started)
        }
        other => unreachable!("{other}"),
    }
}

const KINDS: [&str; 5] = ["logout", "session-delete", "password-change", "disable", "api-key-revoke"];

/// /me on every instance from a few tasks, until dropped.
fn background_load(apps: &[TestApp; 3], token: String) -> Vec<tokio::task::JoinHandle<()>> {
    apps.iter()
        .map(|app| {
            let (client, url, token) = (app.client.clone(), app.url("/v1/auth/me"), token.clone());
            tokio::spawn(async move {
                loop {
                    let _ = client.get(&url).bearer_auth(&token).send().await;
                }
            })
        })
        .collect()
}

async fn every_instance_refuses_within_100_ms(via: Via) {
    let Some(apps) = cluster(&via, LONG_TTL).await else { return };
    let [a, b, c] = &apps;
    let admin = a.admin_token(&format!("drill-admin-{}@example.com", uuid::Uuid::new_v4().simple())).await;
    let load_user = format!("drill-load-{}@example.com", uuid::Uuid::new_v4().simple());
    a.register(&load_user).await;
    let load = background_load(&apps, token_of(a.login(&load_user, PASSWORD).await).await);
    // The listeners subscribe as the instances start: wait until a change gets through.
    let (credential, started) = prepare_and_change("logout", 0, [a, b, c], &admin).await;
    refused_after(&[b, c], &credential, started, StdDuration::from_secs(10))
        .await
        .expect("the broadcast reaches the other instances at all");

    let mut report = Vec::new();
    for kind in KINDS {
        let mut times = Vec::new();
        for trial in 0..trials() {
            let (credential, started) = prepare_and_change(kind, trial, [a, b, c], &admin).await;
            let took =
                refused_after(&[b, c], &credential, started, StdDuration::from_secs(5)).await.unwrap_or_else(
                    || panic!("{via:?} {kind}: still accepted after 5 s (the cache TTL is 60 s)"),
                );
            times.push(took);
        }
        times.sort();
        let p99 = times[(times.len() * 99).div_ceil(100) - 1];
        report.push(format!(
            "{kind}: p50 {:?} p99 {p99:?} max {:?}",
            times[times.len() / 2],
            times[times.len() - 1]
        ));
        if times.len() >= P99_TRIALS {
            assert!(
                p99 <= WITHIN,
                "{via:?} {kind}: p99 {p99:?} over {} trials (all: {times:?})",
                times.len()
            );
        } else {
            let (median, slowest) = (times[times.len() / 2], times[times.len() - 1]);
            assert!(
                median <= WITHIN && slowest <= SHORT_RUN_MAX,
                "{via:?} {kind}: median {median:?}, slowest {slowest:?} over {} trials (all: {times:?})",
                times.len()
            );
        }
    }
    for task in load {
        task.abort();
    }
    eprintln!(
        "one answer on every instance via {via:?}, {} trials each:\n  {}",
        trials(),
        report.join("\n  ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_instance_refuses_within_100_ms_through_postgres() {
    Box::pin(every_instance_refuses_within_100_ms(Via::Postgres)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_instance_refuses_within_100_ms_through_redis() {
    let Ok(url) = std::env::var("AUTH_REDIS_URL") else {
        portcullis_store_postgres::testing::say_skipped("the Redis broadcast needs AUTH_REDIS_URL");
        return;
    };
    Box::pin(every_instance_refuses_within_100_ms(Via::Redis(url))).await;
}

/// With the broadcast cut, the other instances hold their cached answer for
/// at most the TTL (their clocks are the tests', moved by hand).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_broadcast_cut_the_ttl_bounds_the_window() {
    let Some(apps) = cluster(&Via::Cut, "2000").await else { return };
    let [a, b, c] = &apps;
    let admin = a.admin_token("cut-admin@example.com").await;
    for kind in KINDS {
        let (credential, started) = prepare_and_change(kind, 0, [a, b, c], &admin).await;
        assert_eq!(status(a, &credential).await, 401, "{kind}: refused at once where it was made");
        assert!(
            refused_after(&[b, c], &credential, started, StdDuration::from_millis(300)).await.is_none(),
            "{kind}: refused elsewhere although nothing was broadcast"
        );
        for app in [b, c] {
            app.clock.advance(Duration::milliseconds(2001));
        }
        assert!(
            refused_after(&[b, c], &credential, Instant::now(), StdDuration::from_secs(2)).await.is_some(),
            "{kind}: still accepted after the TTL"
        );
    }
}
