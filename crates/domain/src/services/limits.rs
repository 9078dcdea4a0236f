use std::sync::Arc;

use crate::error::DomainError;
use crate::model::{
    AuditKind, AuthMethod, Principal, Quota, RateDecision, User, UserId, address_key, push_address_key,
};
use crate::ports::{Clock, RateLimiter, RequestContextSource};

use super::audit::Recorder;

/// The quotas in force; `None` turns a limit off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Per client address on login, login-json, test-login and OAuth callbacks.
    pub login: Option<Quota>,
    /// Per client address on register, create-test-user and forgot-password
    /// (forgot-password has a budget of its own of the same size).
    pub register: Option<Quota>,
    /// Failed password checks per account and client address.
    pub failed_login: Option<Quota>,
    /// Failed password checks per account, from all addresses together.
    pub failed_login_account: Option<Quota>,
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
            failed_login_account: Some(Quota::new(50, 900)),
            authenticated: Some(Quota::new(600, 60)),
        }
    }
}

impl RateLimits {
    /// Every limit off (benchmarks).
    #[must_use]
    pub const fn off() -> Self {
        Self {
            login: None,
            register: None,
            failed_login: None,
            failed_login_account: None,
            authenticated: None,
        }
    }
}

/// Which per-address budget a route draws from.
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

/// One password check's reservation in the failed-login budgets: what to give
/// back if the check succeeds, and whether this attempt was the last one a
/// budget allowed (for the `account_locked` event).
#[derive(Debug, Default)]
pub(super) struct Attempt {
    keys: Vec<(String, Quota)>,
    /// `failed_logins` (this account from this address) or
    /// `failed_logins_account` (this account from everywhere).
    pub(super) last_of: Option<&'static str>,
}

/// Abuse limits: per client address, per account, per principal.
#[derive(Clone)]
pub struct LimitService {
    limiter: Arc<dyn RateLimiter>,
    clock: Arc<dyn Clock>,
    context: Arc<dyn RequestContextSource>,
    limits: Arc<RateLimits>,
}

impl std::fmt::Debug for LimitService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitService").field("limits", &self.limits).finish_non_exhaustive()
    }
}

/// Longest account name a budget is keyed by (the longest email there is).
const MAX_ACCOUNT_KEY: usize = 320;

impl LimitService {
    pub(super) fn new(
        limiter: Arc<dyn RateLimiter>,
        clock: Arc<dyn Clock>,
        context: Arc<dyn RequestContextSource>,
        limits: Arc<RateLimits>,
    ) -> Self {
        Self { limiter, clock, context, limits }
    }

    /// Counts a request of `family` from client address `ip` (an IPv6 client
    /// by its /64, see [`address_key`]); `Ok(None)` when that limit is off.
    ///
    /// # Errors
    /// `Unavailable` when the limiter cannot be reached.
    pub async fn hit_ip(
        &self,
        family: IpFamily,
        ip: Option<&str>,
    ) -> Result<Option<RateDecision>, DomainError> {
        let quota = match family {
            IpFamily::Login => self.limits.login,
            IpFamily::Register | IpFamily::ForgotPassword => self.limits.register,
        };
        let Some(quota) = quota else { return Ok(None) };
        let mut key = String::with_capacity(48);
        key.push_str(family.key());
        key.push(':');
        push_address_key(&mut key, ip);
        Ok(Some(self.limiter.hit(&key, quota, self.clock.now()).await?))
    }

    /// Counts an authenticated request of `principal`, and returns the
    /// principal's budget as it stands (for `X-RateLimit-*`); `None` when the
    /// limit is off.
    ///
    /// # Errors
    /// `RateLimited` over the quota; `Unavailable`.
    pub async fn hit_principal(&self, principal: &Principal) -> Result<Option<RateDecision>, DomainError> {
        let Some(quota) = self.limits.authenticated else { return Ok(None) };
        let key = match (principal.method, principal.api_key) {
            (AuthMethod::ApiKey, Some(key)) => format!("principal:{key}"),
            _ => format!("principal:{}", principal.user.id),
        };
        let decision = self.limiter.hit(&key, quota, self.clock.now()).await?;
        if decision.allowed { Ok(Some(decision)) } else { Err(DomainError::RateLimited(decision)) }
    }

    /// Reserves one failed-check slot of `account` (see [`account_of`]) from
    /// the request's client address, and one of the account-wide budget,
    /// before a password is checked, so parallel guesses cannot slip past the
    /// limits together. Give the slots back with [`release`](Self::release)
    /// when the check succeeds.
    ///
    /// # Errors
    /// `RateLimited` when either budget is spent (nothing is reserved then);
    /// `Unavailable`.
    pub(super) async fn reserve(&self, account: &str) -> Result<Attempt, DomainError> {
        let now = self.clock.now();
        let address = address_key(self.context.current().ip.as_deref());
        let budgets = [
            (self.limits.failed_login, format!("failed-login:{address}:{account}"), "failed_logins"),
            (
                self.limits.failed_login_account,
                format!("failed-login-account:{account}"),
                "failed_logins_account",
            ),
        ];
        let mut attempt = Attempt::default();
        for (quota, key, name) in budgets {
            let Some(quota) = quota else { continue };
            let decision = match self.limiter.hit(&key, quota, now).await {
                Ok(decision) if decision.allowed => decision,
                refused => {
                    self.release(attempt).await?;
                    return Err(refused.map_or_else(DomainError::from, DomainError::RateLimited));
                }
            };
            if decision.remaining == 0 {
                attempt.last_of = Some(name);
            }
            attempt.keys.push((key, quota));
        }
        Ok(attempt)
    }

    /// Runs `check`, a password check for `user` (when the account exists),
    /// as one attempt on the failed-login budgets of `account`: refused at
    /// once with `RateLimited` when a budget is spent (audited as a `locked`
    /// failure); a refusal counts, audited with its reason, and as
    /// `account_locked` when it took the last of a budget; a pass, or a fault
    /// that told nobody anything about the password, gives the attempt back.
    /// Login and change-password both go through here.
    ///
    /// # Errors
    /// `RateLimited`; the refusal's error; the fault; `Unavailable`.
    pub(super) async fn guarded<T>(
        &self,
        account: &str,
        user: Option<UserId>,
        audit: &Recorder,
        check: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, DomainError> {
        let attempt = match self.reserve(account).await {
            Ok(attempt) => attempt,
            Err(refused @ DomainError::RateLimited(_)) => {
                audit.record_failure(AuditKind::LoginFailed, user, "locked").await;
                return Err(refused);
            }
            Err(other) => return Err(other),
        };
        let last_of = attempt.last_of;
        match check.await {
            Ok(value) => {
                self.release(attempt).await?;
                Ok(value)
            }
            Err(Failure::Refused(error, reason)) => {
                audit.record_failure(AuditKind::LoginFailed, user, reason).await;
                if let Some(budget) = last_of {
                    audit.record_failure(AuditKind::AccountLocked, user, budget).await;
                }
                Err(error)
            }
            Err(Failure::Fault(error)) => {
                let _ = self.release(attempt).await;
                Err(error)
            }
        }
    }

    /// Gives an attempt's slots back: the password was right, so it was no failure.
    ///
    /// # Errors
    /// `Unavailable`.
    pub(super) async fn release(&self, attempt: Attempt) -> Result<(), DomainError> {
        let now = self.clock.now();
        for (key, quota) in attempt.keys {
            self.limiter.refund(&key, quota, now).await?;
        }
        Ok(())
    }
}

/// Why a password check gave nothing, for [`LimitService::guarded`].
pub(super) enum Failure {
    /// Refused: the error for the caller, and the reason for the audit log.
    /// Counts as a failed login.
    Refused(DomainError, &'static str),
    /// The store or the hashing pool failed: nothing was learnt about the
    /// password, so nothing counts.
    Fault(DomainError),
}

impl From<DomainError> for Failure {
    fn from(error: DomainError) -> Self {
        Self::Fault(error)
    }
}

impl From<crate::error::StoreError> for Failure {
    fn from(error: crate::error::StoreError) -> Self {
        Self::Fault(error.into())
    }
}

/// The name the failed-login budgets of an account are kept under: its
/// normalised email and the user's session version. A password reset (or
/// change) moves the session version on, which starts both budgets afresh.
/// A login name that belongs to nobody gets budgets of its own all the same,
/// so a lockout tells nothing about which emails are registered.
pub(super) fn account_of(login_name: &str, user: Option<&User>) -> String {
    match user {
        Some(user) => format!("{}#{}", user.email.as_str(), user.session_version),
        None => {
            let name: String = login_name.trim().to_lowercase().chars().take(MAX_ACCOUNT_KEY).collect();
            format!("{name}#-")
        }
    }
}
