use time::OffsetDateTime;
use uuid::Uuid;

use super::UserId;

/// What happened, in the audit log. The names are the `type` of the HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditKind {
    Register,
    LoginSucceeded,
    /// `detail` gives the reason: `bad_password`, `unknown_email`,
    /// `no_password`, `disabled` or `locked`.
    LoginFailed,
    /// The failed login that used up the account's budget.
    AccountLocked,
    Logout,
    TokenRefreshed,
    PasswordChanged,
    PasswordResetRequested,
    PasswordReset,
    ApiKeyCreated,
    ApiKeyRevoked,
    /// A key was used from an address it had not been used from before.
    ApiKeyNewIp,
    OAuthLogin,
    OAuthLinked,
    /// An administrator changed a user's role or status; `detail` says what and who.
    AdminUserUpdated,
    /// A spent refresh token was presented again after the grace period: its
    /// session was ended (RFC 9700, 4.14.2).
    RefreshTokenReused,
    /// Sessions were ended other than by logout: `detail` says how
    /// (`deleted`, `logout_all`, `admin`) and how many.
    SessionsEnded,
    /// A verification email was queued (`detail` `hourly_limit` when the
    /// account's budget was spent and none was).
    EmailVerificationRequested,
    /// The user proved they own their address with a verification link.
    EmailVerified,
    /// A provider-verified login took over an account whose address was
    /// never verified: password, sessions and keys gone (`detail` names the provider).
    AccountClaimed,
    /// A second factor was turned on (`detail` names it).
    MfaEnabled,
    MfaDisabled,
    /// A recovery code stood in for the second factor (`detail` says how many are left).
    RecoveryCodeUsed,
    /// A fresh set of recovery codes replaced the old one.
    RecoveryCodesReplaced,
}

impl AuditKind {
    pub const ALL: [Self; 24] = [
        Self::Register,
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::AccountLocked,
        Self::Logout,
        Self::TokenRefreshed,
        Self::PasswordChanged,
        Self::PasswordResetRequested,
        Self::PasswordReset,
        Self::ApiKeyCreated,
        Self::ApiKeyRevoked,
        Self::ApiKeyNewIp,
        Self::OAuthLogin,
        Self::OAuthLinked,
        Self::AdminUserUpdated,
        Self::RefreshTokenReused,
        Self::SessionsEnded,
        Self::EmailVerificationRequested,
        Self::EmailVerified,
        Self::AccountClaimed,
        Self::MfaEnabled,
        Self::MfaDisabled,
        Self::RecoveryCodeUsed,
        Self::RecoveryCodesReplaced,
    ];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::AccountLocked => "account_locked",
            Self::Logout => "logout",
            Self::TokenRefreshed => "token_refreshed",
            Self::PasswordChanged => "password_changed",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::PasswordReset => "password_reset",
            Self::ApiKeyCreated => "api_key_created",
            Self::ApiKeyRevoked => "api_key_revoked",
            Self::ApiKeyNewIp => "api_key_new_ip",
            Self::OAuthLogin => "oauth_login",
            Self::OAuthLinked => "oauth_linked",
            Self::AdminUserUpdated => "admin_user_updated",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::SessionsEnded => "sessions_ended",
            Self::EmailVerificationRequested => "email_verification_requested",
            Self::EmailVerified => "email_verified",
            Self::AccountClaimed => "account_claimed",
            Self::MfaEnabled => "mfa_enabled",
            Self::MfaDisabled => "mfa_disabled",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::RecoveryCodesReplaced => "recovery_codes_replaced",
        }
    }

    /// Every name a stored event of this kind may carry: its own, and for
    /// `admin_user_updated` the name releases before 2026-12-05 wrote. The
    /// migration renames the stored rows, but during a rolling upgrade an
    /// instance of the earlier release still writes the old name; a store
    /// filtering by kind matches all of these.
    #[must_use]
    pub fn stored_names(self) -> Vec<&'static str> {
        match self {
            Self::AdminUserUpdated => vec![self.as_str(), "user_updated"],
            _ => vec![self.as_str()],
        }
    }

    /// Whether this event hands the user a new access token.
    #[must_use]
    pub const fn issues_token(self) -> bool {
        matches!(
            self,
            Self::Register
                | Self::LoginSucceeded
                | Self::TokenRefreshed
                | Self::PasswordChanged
                | Self::OAuthLogin
                | Self::OAuthLinked
        )
    }
}

impl std::fmt::Display for AuditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AuditKind {
    type Err = ();

    /// The contract's names, and `user_updated`: the name releases before
    /// 2026-12-05 wrote (and documented) for `admin_user_updated`, so a
    /// client's filter written against them keeps matching.
    fn from_str(s: &str) -> Result<Self, ()> {
        if s == "user_updated" {
            return Ok(Self::AdminUserUpdated);
        }
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or(())
    }
}

/// Where a request came from, as the edge saw it. Every field is optional:
/// a background job or an embedding without HTTP has none of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// One security event. Never holds a password, token or key: `detail` is a
/// short machine-readable note (a reason, an id, a provider name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// A UUIDv7: events sort by id in the order they were written.
    pub id: Uuid,
    pub at: OffsetDateTime,
    pub kind: AuditKind,
    /// The user the event is about, when known.
    pub user_id: Option<UserId>,
    pub detail: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// Which events to list: newest first, optionally for one user or of one
/// kind, strictly older than the event `before`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub user_id: Option<UserId>,
    pub kind: Option<AuditKind>,
    pub before: Option<Uuid>,
    pub limit: u32,
}

/// Longest user agent kept; the rest is cut.
pub const MAX_USER_AGENT_CHARS: usize = 256;

#[cfg(test)]
mod tests {
    use super::AuditKind;

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for kind in AuditKind::ALL {
            assert_eq!(kind.as_str().parse::<AuditKind>(), Ok(kind));
        }
    }

    #[test]
    fn an_administrators_change_is_named_as_the_contract_names_it() {
        assert_eq!(AuditKind::AdminUserUpdated.as_str(), "admin_user_updated");
        assert_eq!(
            "user_updated".parse::<AuditKind>(),
            Ok(AuditKind::AdminUserUpdated),
            "the old name still filters"
        );
        assert_eq!("updated".parse::<AuditKind>(), Err(()));
    }
}
