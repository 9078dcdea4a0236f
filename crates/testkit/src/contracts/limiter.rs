//! What every `RateLimiter` must do.

use futures_util::future::join_all;
use portcullis_domain::Quota;
use portcullis_domain::ports::RateLimiter;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-02-03 12:00:00 UTC);

pub async fn limiter_allows_the_limit_then_refuses<L: RateLimiter + ?Sized>(limiter: &L, key: &str) {
    let quota = Quota::new(5, 900);
    for expected in (0..5).rev() {
        let decision = limiter.hit(key, quota, NOW).await.expect("hit succeeds");
        assert!(decision.allowed);
        assert_eq!((decision.limit, decision.remaining), (5, expected));
    }
    let refused = limiter.hit(key, quota, NOW).await.expect("hit succeeds");
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    assert_eq!(refused.retry_after_secs, 180, "one slot frees every period / limit");
    assert!(refused.reset_after_secs > 800);
    assert!(
        limiter.hit(&format!("{key}-other"), quota, NOW).await.expect("hit succeeds").allowed,
        "keys are independent"
    );
}

pub async fn limiter_budget_returns_after_a_period<L: RateLimiter + ?Sized>(limiter: &L, key: &str) {
    let quota = Quota::new(20, 60);
    for _ in 0..20 {
        assert!(limiter.hit(key, quota, NOW).await.expect("hit succeeds").allowed);
    }
    assert!(!limiter.hit(key, quota, NOW).await.expect("hit succeeds").allowed);
    let later = NOW + Duration::seconds(60);
    for _ in 0..20 {
        assert!(limiter.hit(key, quota, later).await.expect("hit succeeds").allowed);
    }
}

pub async fn limiter_refund_gives_one_hit_back<L: RateLimiter + ?Sized>(limiter: &L, key: &str) {
    let quota = Quota::new(2, 60);
    limiter.hit(key, quota, NOW).await.expect("hit succeeds");
    limiter.hit(key, quota, NOW).await.expect("hit succeeds");
    assert!(!limiter.hit(key, quota, NOW).await.expect("hit succeeds").allowed);
    limiter.refund(key, quota, NOW).await.expect("refund succeeds");
    assert!(limiter.hit(key, quota, NOW).await.expect("hit succeeds").allowed);
    assert!(!limiter.hit(key, quota, NOW).await.expect("hit succeeds").allowed);
}

pub async fn limiter_concurrent_hits_never_exceed_the_limit<L: RateLimiter + ?Sized>(limiter: &L, key: &str) {
    let quota = Quota::new(5, 900);
    let decisions = join_all((0..40).map(|_| limiter.hit(key, quota, NOW))).await;
    let allowed =
        decisions.iter().filter(|d| d.as_ref().expect("the concurrent call succeeds").allowed).count();
    assert_eq!(allowed, 5);
}
