//! A database that goes away and comes back: 503s meanwhile, and the same
//! process serves again afterwards.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::{Backend, Options, PASSWORD, TestApp, expect_error};

/// A TCP proxy to PostgreSQL that the test can cut and restore, so the outage
/// touches this test's connections only.
pub(crate) struct Switch {
    pub(crate) address: SocketAddr,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Switch {
    pub(crate) async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (accept_up, accept_cut) = (Arc::clone(&up), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = accept_cut.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { address, up, cut }
    }

    pub(crate) fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|generation| *generation += 1);
    }

    #[allow(dead_code)]
    pub(crate) fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn postgres_address() -> Option<SocketAddr> {
    let url = std::env::var("TEST_DATABASE_URL").ok()?;
    let rest = url.split("://").nth(1)?;
    let host = rest.rsplit('@').next()?.split('/').next()?;
    let host = if host.contains(':') { host.to_owned() } else { format!("{host}:5432") };
    let host = host.replace("localhost", "127.0.0.1");
    host.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_gives_503_and_the_process_recovers() {
    let Some(target) = postgres_address() else {
        portcullis_store_postgres::testing::say_skipped(
            "the outage test needs PostgreSQL; set TEST_DATABASE_URL to run it",
        );
        return;
    };
    let switch = Switch::start(target).await;
    let options = Options { postgres_via: Some(switch.address), ..Options::default() };
    let app = TestApp::spawn_with(Backend::Postgres, options).await.unwrap();
    let token = app.token_for("outage@example.com").await;
    assert_eq!(app.get_with("/v1/auth/me", &token).await.status(), 200);

    switch.down();
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.headers()["retry-after"], "5");
    expect_error(ready, 503, "service_unavailable").await;
    let me = app.get_with("/v1/auth/me", &token).await;
    let body = expect_error(me, 503, "service_unavailable").await;
    assert!(
        !body["detail"].as_str().unwrap().to_lowercase().contains("connection refused"),
        "no internal error string: {body}"
    );
    expect_error(app.login("outage@example.com", PASSWORD).await, 503, "service_unavailable").await;
    let register = app
        .post_json(
            "/v1/auth/register",
            &serde_json::json!({"email": "new@example.com", "password": PASSWORD}),
        )
        .await;
    expect_error(register, 503, "service_unavailable").await;
    assert_eq!(
        app.client.get(app.url("/healthz")).send().await.unwrap().status(),
        200,
        "alive while not ready"
    );

    switch.up();
    let mut ready = false;
    for _ in 0..50 {
        if app.client.get(app.url("/readyz")).send().await.unwrap().status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "ready again once the database is back");
    assert_eq!(app.get_with("/v1/auth/me", &token).await.status(), 200);
    assert_eq!(app.login("outage@example.com", PASSWORD).await.status(), 200);
}
