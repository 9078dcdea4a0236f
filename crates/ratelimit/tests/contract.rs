//! Both limiters against the limiter contract; Redis when `AUTH_REDIS_URL` is set.

use portcullis_ratelimit::{FallbackRateLimiter, MemoryRateLimiter, RedisRateLimiter};

mod memory {
    use super::*;

    portcullis_testkit::limiter_contract_tests!(async { Some((MemoryRateLimiter::new(), String::new())) });
}

async fn redis() -> Option<(RedisRateLimiter, String)> {
    let Ok(url) = std::env::var("AUTH_REDIS_URL") else {
        say_skipped("the Redis limiter contract needs AUTH_REDIS_URL");
        return None;
    };
    let limiter = RedisRateLimiter::connect(redis::Client::open(url).unwrap(), "portcullis-test:")
        .await
        .unwrap_or_else(|e| panic!("AUTH_REDIS_URL is set but Redis cannot be reached: {e}"));
    Some((limiter, format!("{}:", uuid_like())))
}

mod redis_limiter {
    use super::*;

    portcullis_testkit::limiter_contract_tests!(redis());
}

mod fallback_without_redis {
    use super::*;

    portcullis_testkit::limiter_contract_tests!(async {
        Some((FallbackRateLimiter::local_only(), String::new()))
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_is_reported_not_a_panic() {
    let unreachable = redis::Client::open("redis://127.0.0.1:1").unwrap();
    assert!(RedisRateLimiter::connect(unreachable, "x:").await.is_err());
}

fn say_skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
}

/// A run-unique prefix, so runs never see each other's counters.
fn uuid_like() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{}", std::process::id())
}

async fn fallback_over_redis() -> Option<(FallbackRateLimiter, String)> {
    let url = std::env::var("AUTH_REDIS_URL").ok()?;
    let client = redis::Client::open(url).unwrap();
    Some((FallbackRateLimiter::connect(client, "portcullis-test:").await, format!("{}:", uuid_like())))
}

mod fallback_with_redis {
    use super::*;

    portcullis_testkit::limiter_contract_tests!(fallback_over_redis());
}
