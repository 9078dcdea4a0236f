use std::sync::Arc;

use crate::error::DomainError;
use crate::model::{AuthMethod, Principal, Quota, RateDecision};

use super::Ports;

/// The quotas in force; `None` turns a limit off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Per client IP on login, login-json, test-login and OAuth callbacks.
    pub login: Option<Quota>,
    /// Per client IP on register and forgot-password (separate budgets).
    pub register: Option<Quota>,
    /// Per account (normalised email) for failed logins.
    pub failed_login: Option<Quota>,
    /// Per principal (user or API key) for authenticated requests.
    pub authenticated: Option<Quota>,
}

impl Default for RateLimits {
    /// The contract's defaults.
    fn default() -> Self {
        Self {
            login: Some(Quota::new(20, 60)),
            register: Some(Quota::new(10, 60)),
            failed_login: Some(Quota::new(5, 900)),
            authenticated: Some(Quota::new(600, 60)),
        }
    }
}

impl RateLimits {
    /// Every limit off (benchmarks).
    #[must_use]
    pub const fn off() -> Self {
        Self { login: None, register: None, failed_login: None, authenticated: None }
    }
}

/// Which per-IP budget a route draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFamily {
    Login,
    Register,
    ForgotPassword,
}

impl IpFamily {
    const fn key(self) -> &'static str {
        match self {
            Self::Login => "ip-login",
            Self::Register => "ip-register",
            Self::ForgotPassword => "ip-forgot",
        }
    }
}

/// Abuse limits: per client IP, per account, per principal.
#[derive(Clone)]
pub struct LimitService {
    ports: Arc<Ports>,
    limits: Arc<RateLimits>,
}

impl std::fmt::Debug for LimitService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitService").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl LimitService {
    pub(super) fn new(ports: Arc<Ports>, limits: Arc<RateLimits>) -> Self {
        Self { ports, limits }
    }

    /// Counts a request of `family` from `ip`; `Ok(None)` when that limit is off.
    ///
    /// # Errors
    /// `Unavailable` when the limiter cannot be reached.
    pub async fn hit_ip(&self, family: IpFamily, ip: &str) -> Result<Option<RateDecision>, DomainError> {
        let quota = match family {
            IpFamily::Login => self.limits.login,
            IpFamily::Register | IpFamily::ForgotPassword => self.limits.register,
        };
        let Some(quota) = quota else { return Ok(None) };
        let key = format!("{}:{ip}", family.key());
        Ok(Some(self.ports.rate_limiter.hit(&key, quota, self.ports.clock.now()).await?))
    }

    /// Counts an authenticated request of `principal`.
    ///
    /// # Errors
    /// `RateLimited` over the quota; `Unavailable`.
    pub async fn hit_principal(&self, principal: &Principal) -> Result<(), DomainError> {
        let Some(quota) = self.limits.authenticated else { return Ok(()) };
        let key = match (principal.method, principal.api_key) {
            (AuthMethod::ApiKey, Some(key)) => format!("principal:{key}"),
            _ => format!("principal:{}", principal.user.id),
        };
        let decision = self.ports.rate_limiter.hit(&key, quota, self.ports.clock.now()).await?;
        if decision.allowed { Ok(()) } else { Err(DomainError::RateLimited(decision)) }
    }

    /// Reserves one failed-login slot for `account` before its password is
    /// checked, so parallel guesses cannot slip past the limit together.
    /// Returns the failures left after this one, `None` when the limit is off.
    pub(super) async fn reserve_login(&self, account: &str) -> Result<Option<u32>, DomainError> {
        let Some(quota) = self.limits.failed_login else { return Ok(None) };
        let decision =
            self.ports.rate_limiter.hit(&failed_key(account), quota, self.ports.clock.now()).await?;
        if decision.allowed { Ok(Some(decision.remaining)) } else { Err(DomainError::RateLimited(decision)) }
    }

    /// Gives the slot back: the login succeeded, so it was no failure.
    pub(super) async fn release_login(&self, account: &str) -> Result<(), DomainError> {
        let Some(quota) = self.limits.failed_login else { return Ok(()) };
        Ok(self.ports.rate_limiter.refund(&failed_key(account), quota, self.ports.clock.now()).await?)
    }
}

fn failed_key(account: &str) -> String {
    format!("failed-login:{account}")
}
