/// How many hits a key may make per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub period_secs: u32,
}

impl Quota {
    #[must_use]
    pub const fn new(limit: u32, period_secs: u32) -> Self {
        Self { limit, period_secs }
    }
}

/// A limiter's answer, with what the `X-RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the key's budget is whole again.
    pub reset_after_secs: u64,
    /// Seconds until the next hit would be allowed (0 when allowed).
    pub retry_after_secs: u64,
}
