use std::sync::Arc;

use time::Duration;
use uuid::Uuid;

use crate::error::{AuthError, DomainError, Forbidden};
use crate::model::{
    AuditKind, Claims, IssuedToken, KeyDigest, MfaChallenge, MfaTokenSecret, Password, Principal,
    RECOVERY_CODES, RecoveryCode, SignInMethod, TOTP_SECRET_BYTES, TOTP_SKEW_STEPS, TotpFactor, TotpSecret,
    User, UserId, base32, parse_totp_code, totp_step,
};
use crate::ports::{
    Change, ChangeFeed, Clock, MfaRepository, OneTimeCodes, SecretGenerator, SessionRepository,
    UserRepository,
};

use super::audit::Recorder;
use super::credentials::Credentials;
use super::limits::Failure;
use super::tokens::Tokens;
use super::{AuthSettings, LimitService, Ports, from_ports, limits, opaque_debug};

/// How long a sign-in waits for its second factor.
pub const MFA_TOKEN_TTL_SECS: i64 = 300;
/// Wrong codes an `mfa_token` survives.
pub const MFA_MAX_FAILURES: i32 = 5;

/// What a sign-in gives: a session, or the second step it waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    Session(IssuedToken),
    /// The first factor passed; `/v1/auth/mfa/verify` with this token and a
    /// code starts the session.
    MfaRequired {
        mfa_token: MfaTokenSecret,
        expires_in: i64,
    },
}

impl SignIn {
    /// The session's token, when no second factor was needed.
    #[must_use]
    pub fn into_session(self) -> Option<IssuedToken> {
        match self {
            Self::Session(token) => Some(token),
            Self::MfaRequired { .. } => None,
        }
    }
}

/// A TOTP set-up to show the user once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpSetup {
    /// The secret in base32, for typing into an app.
    pub secret: String,
    /// `otpauth://totp/...`, for the QR code.
    pub otpauth_uri: String,
}

/// Second factors: TOTP set-up, confirmation and removal, recovery codes,
/// and the second step of a sign-in.
#[derive(Clone)]
pub struct MfaService {
    users: Arc<dyn UserRepository>,
    mfa: Arc<dyn MfaRepository>,
    sessions: Arc<dyn SessionRepository>,
    secrets: Arc<dyn SecretGenerator>,
    clock: Arc<dyn Clock>,
    changes: Arc<dyn ChangeFeed>,
    one_time_codes: Arc<dyn OneTimeCodes>,
    credentials: Credentials,
    tokens: Tokens,
    audit: Recorder,
    limits: LimitService,
    /// The issuer shown in authenticator apps.
    issuer: Arc<str>,
}

opaque_debug!(MfaService);

impl MfaService {
    pub(super) fn new(ports: &Ports, settings: &AuthSettings, limits: LimitService) -> Self {
        from_ports!(ports => Self { users, mfa, sessions; secrets, clock, changes, one_time_codes;
            credentials: Credentials::new(ports, settings),
            tokens: Tokens::new(ports, settings),
            audit: Recorder::new(ports),
            limits: limits,
            issuer: settings.issuer.as_str().into(),
        })
    }

    /// The end of a first factor: a session for a user without a second
    /// factor, or a challenge for one with it; audited as `kind` with
    /// `detail` (written with the session, or after the challenge with
    /// `mfa_required` added to the detail).
    ///
    /// # Errors
    /// `Unavailable`.
    pub(super) async fn sign_in(
        &self,
        user: &User,
        method: SignInMethod,
        kind: AuditKind,
        detail: Option<String>,
    ) -> Result<SignIn, DomainError> {
        if !user.mfa_enabled {
            let event = self.audit.event_now(kind, Some(user.id), detail);
            return Ok(SignIn::Session(self.tokens.start_session(user, method, false, event).await?));
        }
        let secret = MfaTokenSecret::from_random(self.secrets.secret_bytes());
        let now = self.clock.now();
        let challenge = MfaChallenge {
            id: Uuid::now_v7(),
            user_id: user.id,
            digest: self.digest(secret.expose().as_bytes()),
            method,
            created_at: now,
            expires_at: now + Duration::seconds(MFA_TOKEN_TTL_SECS),
            failures: 0,
            used_at: None,
        };
        self.mfa.create_challenge(challenge).await?;
        let detail = Some(detail.map_or_else(|| "mfa_required".to_owned(), |d| format!("{d} mfa_required")));
        self.audit.record(kind, Some(user.id), detail).await?;
        Ok(SignIn::MfaRequired { mfa_token: secret, expires_in: MFA_TOKEN_TTL_SECS })
    }

    /// Starts (or restarts) a TOTP set-up for the caller: a new secret,
    /// sealed and stored unconfirmed; MFA is not on until a code confirms it.
    ///
    /// # Errors
    /// `MfaAlreadyEnabled`; `Unavailable`.
    pub async fn setup(&self, caller: &Principal) -> Result<TotpSetup, DomainError> {
        let user = self.current(caller).await?;
        let random = self.secrets.secret_bytes();
        let mut bytes = [0u8; TOTP_SECRET_BYTES];
        bytes.copy_from_slice(&random[..TOTP_SECRET_BYTES]);
        let secret = TotpSecret(bytes);
        let factor = TotpFactor {
            user_id: user.id,
            sealed_secret: self.one_time_codes.seal(user.id, &secret)?,
            created_at: self.clock.now(),
            confirmed_at: None,
            last_step: None,
        };
        if !self.mfa.put_totp(factor).await? {
            return Err(DomainError::MfaAlreadyEnabled);
        }
        let text = base32(&secret.0);
        let label = percent_encode(&format!("{}:{}", self.issuer, user.email.as_str()));
        let issuer = percent_encode(&self.issuer);
        let otpauth_uri =
            format!("otpauth://totp/{label}?secret={text}&issuer={issuer}&algorithm=SHA1&digits=6&period=30");
        Ok(TotpSetup { secret: text, otpauth_uri })
    }

    /// Turns MFA on with a first code of the set-up's secret; returns the
    /// recovery codes, shown this once. Every other session of the user ends.
    ///
    /// # Errors
    /// `InvalidMfaCode` for a wrong code or no set-up; `MfaAlreadyEnabled`; `Unavailable`.
    pub async fn confirm(&self, caller: &Principal, code: &str) -> Result<Vec<String>, DomainError> {
        let user = self.current(caller).await?;
        let Some(factor) = self.mfa.find_totp(user.id).await? else {
            return Err(DomainError::InvalidMfaCode);
        };
        if factor.confirmed_at.is_some() {
            return Err(DomainError::MfaAlreadyEnabled);
        }
        let step = self.matching_step(&factor, code)?.ok_or(DomainError::InvalidMfaCode)?;
        let (codes, stored) = self.new_recovery_codes(user.id);
        let now = self.clock.now();
        let confirmed = self.mfa.confirm_totp(user.id, &factor.sealed_secret, step, stored, now).await;
        self.changes.changed(Change::User(user.id));
        if !confirmed? {
            // A second set-up replaced this secret meanwhile (or another confirm won).
            return Err(DomainError::InvalidMfaCode);
        }
        self.end_other_sessions(caller, user.id).await?;
        self.audit.record(AuditKind::MfaEnabled, Some(user.id), Some("totp".to_owned())).await?;
        Ok(codes)
    }

    /// Turns MFA off: a current code (or a recovery code), and the password
    /// for an account that has one. Every other session of the user ends.
    ///
    /// # Errors
    /// `InvalidMfaCode`; `InvalidCurrentPassword` (counted as a failed
    /// login); `RateLimited`; `Unavailable`.
    pub async fn disable(
        &self,
        caller: &Principal,
        password: Option<Password>,
        code: &str,
    ) -> Result<(), DomainError> {
        let user = self.current(caller).await?;
        if let Some(hash) = user.password_hash.clone() {
            let account = limits::account_of(user.email.as_str(), Some(&user));
            let check = async {
                let matches = match password {
                    Some(password) => self.credentials.verify(&password, &hash).await?.0,
                    None => false,
                };
                if matches {
                    Ok(())
                } else {
                    Err(Failure::Refused(DomainError::InvalidCurrentPassword, "bad_current_password"))
                }
            };
            self.limits.guarded(&account, Some(user.id), &self.audit, check).await?;
        }
        let factor = self.mfa.find_totp(user.id).await?.filter(|f| f.confirmed_at.is_some());
        let Some(factor) = factor else { return Err(DomainError::InvalidMfaCode) };
        if !self.spend_code(&user, &factor, code).await? {
            return Err(DomainError::InvalidMfaCode);
        }
        let removed = self.mfa.remove_totp(user.id, self.clock.now()).await;
        self.changes.changed(Change::User(user.id));
        removed?;
        self.end_other_sessions(caller, user.id).await?;
        self.audit.record(AuditKind::MfaDisabled, Some(user.id), None).await
    }

    /// A fresh set of recovery codes for a current code; the old set is void.
    ///
    /// # Errors
    /// `InvalidMfaCode` (MFA off, or a wrong or used code); `Unavailable`.
    pub async fn regenerate_recovery_codes(
        &self,
        caller: &Principal,
        code: &str,
    ) -> Result<Vec<String>, DomainError> {
        let user = self.current(caller).await?;
        let factor = self.mfa.find_totp(user.id).await?.filter(|f| f.confirmed_at.is_some());
        let Some(factor) = factor else { return Err(DomainError::InvalidMfaCode) };
        let Some(step) = self.matching_step(&factor, code)? else { return Err(DomainError::InvalidMfaCode) };
        if !self.mfa.spend_totp_step(user.id, step).await? {
            return Err(DomainError::InvalidMfaCode);
        }
        let (codes, stored) = self.new_recovery_codes(user.id);
        self.mfa.replace_recovery_codes(user.id, stored).await?;
        self.audit.record(AuditKind::RecoveryCodesReplaced, Some(user.id), None).await?;
        Ok(codes)
    }

    /// The second step of a sign-in: the `mfa_token` and a current TOTP
    /// code or an unused recovery code start the session (`mfa: true`).
    /// A wrong code counts against the token (5 kill it) and as a failed
    /// login of the account.
    ///
    /// # Errors
    /// `Unauthenticated(InvalidMfaToken)`, `Unauthenticated(InvalidMfaCode)`,
    /// `RateLimited`, `Forbidden(AccountDisabled)`, `Unavailable`.
    pub async fn verify(&self, mfa_token: &str, code: &str) -> Result<IssuedToken, DomainError> {
        let invalid_token = || DomainError::Unauthenticated(AuthError::InvalidMfaToken);
        let secret = MfaTokenSecret::parse(mfa_token.trim()).ok_or_else(invalid_token)?;
        let now = self.clock.now();
        let challenge = self.mfa.find_challenge(&self.digest(secret.expose().as_bytes())).await?;
        let Some(challenge) =
            challenge.filter(|c| c.used_at.is_none() && c.expires_at > now && c.failures < MFA_MAX_FAILURES)
        else {
            return Err(invalid_token());
        };
        let Some(user) = self.users.find_by_id(challenge.user_id).await? else { return Err(invalid_token()) };
        let factor = self.mfa.find_totp(user.id).await?.filter(|f| f.confirmed_at.is_some());
        let account = limits::account_of(user.email.as_str(), Some(&user));
        let check = async {
            let accepted = match &factor {
                Some(factor) => self.spend_code(&user, factor, code).await?,
                None => false,
            };
            if accepted {
                Ok(())
            } else {
                self.mfa.fail_challenge(challenge.id).await?;
                Err(Failure::Refused(DomainError::Unauthenticated(AuthError::InvalidMfaCode), "bad_mfa_code"))
            }
        };
        let used_recovery = !is_totp_code(code);
        self.limits.guarded(&account, Some(user.id), &self.audit, check).await?;
        if !self.mfa.spend_challenge(challenge.id, MFA_MAX_FAILURES, now).await? {
            return Err(invalid_token());
        }
        if !user.is_active {
            return Err(DomainError::Forbidden(Forbidden::AccountDisabled));
        }
        let signed_in =
            self.audit.event_now(AuditKind::LoginSucceeded, Some(user.id), Some("mfa".to_owned()));
        let token = self.tokens.start_session(&user, challenge.method, true, signed_in).await?;
        if used_recovery {
            // Whoever has the device may be someone else now: the others sign out.
            let current = token.claims.session();
            let ended = self.sessions.end_sessions(user.id, current, now).await;
            self.changes.changed(Change::User(user.id));
            ended?;
            let left = self.mfa.recovery_codes_left(user.id).await?;
            self.audit
                .record(AuditKind::RecoveryCodeUsed, Some(user.id), Some(format!("left={left}")))
                .await?;
        }
        Ok(token)
    }

    /// Forgets sign-ins that waited for their second factor in vain.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn purge_challenges(&self) -> Result<u64, DomainError> {
        Ok(self.mfa.purge_challenges(self.clock.now() - Duration::days(1)).await?)
    }

    /// Accepts a code once: a TOTP code of the current window whose step is
    /// later than the last accepted one, or an unused recovery code.
    async fn spend_code(&self, user: &User, factor: &TotpFactor, code: &str) -> Result<bool, DomainError> {
        if is_totp_code(code) {
            return match self.matching_step(factor, code)? {
                Some(step) => Ok(self.mfa.spend_totp_step(user.id, step).await?),
                None => Ok(false),
            };
        }
        let Some(normalised) = recovery_code(code) else { return Ok(false) };
        let digest = self.recovery_digest(user.id, &normalised);
        Ok(self.mfa.spend_recovery_code(user.id, &digest, self.clock.now()).await?)
    }

    /// The step within the skew window whose code is `code`, if any.
    fn matching_step(&self, factor: &TotpFactor, code: &str) -> Result<Option<i64>, DomainError> {
        let Some(code) = parse_totp_code(code) else { return Ok(None) };
        let secret = self.one_time_codes.open(factor.user_id, &factor.sealed_secret)?;
        let now = totp_step(self.clock.now());
        let mut found = None;
        // Every step is computed, so the time taken says nothing of which matched.
        for step in (now - TOTP_SKEW_STEPS)..=(now + TOTP_SKEW_STEPS) {
            if constant_time_eq(self.one_time_codes.totp(&secret, step), code) && found.is_none() {
                found = Some(step);
            }
        }
        Ok(found.filter(|step| factor.last_step.is_none_or(|last| *step > last)))
    }

    /// Ten fresh codes as shown (`xxxxx-xxxxx`) and as stored (digests).
    fn new_recovery_codes(&self, user: UserId) -> (Vec<String>, Vec<RecoveryCode>) {
        let now = self.clock.now();
        (0..RECOVERY_CODES)
            .map(|_| {
                let text = base32(&self.secrets.secret_bytes()[..7]).to_lowercase();
                let code = format!("{}-{}", &text[..5], &text[5..10]);
                let stored = RecoveryCode {
                    id: Uuid::now_v7(),
                    user_id: user,
                    digest: self.recovery_digest(user, &text[..10]),
                    created_at: now,
                    used_at: None,
                };
                (code, stored)
            })
            .unzip()
    }

    fn recovery_digest(&self, user: UserId, normalised: &str) -> KeyDigest {
        self.digest(format!("recovery\n{user}\n{normalised}").as_bytes())
    }

    fn digest(&self, bytes: &[u8]) -> KeyDigest {
        KeyDigest(self.secrets.digest(bytes))
    }

    /// The caller's user as stored now (the principal may be a cached copy).
    async fn current(&self, caller: &Principal) -> Result<User, DomainError> {
        self.users
            .find_by_id(caller.user.id)
            .await?
            .ok_or(DomainError::Unauthenticated(AuthError::AccountDisabled))
    }

    async fn end_other_sessions(&self, caller: &Principal, user: UserId) -> Result<(), DomainError> {
        let current = caller.claims.as_ref().and_then(Claims::session);
        let ended = self.sessions.end_sessions(user, current, self.clock.now()).await;
        self.changes.changed(Change::User(user));
        ended?;
        Ok(())
    }
}

/// Six digits (spaces allowed): a TOTP code; anything else is tried as a recovery code.
fn is_totp_code(code: &str) -> bool {
    parse_totp_code(code).is_some()
}

/// A recovery code as typed (`abcde-fghij`, any case, with or without the
/// dash or spaces) in its stored form: 10 base32 characters, lower case.
fn recovery_code(raw: &str) -> Option<String> {
    let text: String = raw.chars().filter(|c| !matches!(c, '-' | ' ')).collect::<String>().to_lowercase();
    let valid =
        text.len() == 10 && text.bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
    valid.then_some(text)
}

fn constant_time_eq(a: u32, b: u32) -> bool {
    (a ^ b) == 0
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_read_as_typed() {
        assert_eq!(recovery_code("abcde-fgh23").as_deref(), Some("abcdefgh23"));
        assert_eq!(recovery_code("ABCDE FGH23").as_deref(), Some("abcdefgh23"));
        for bad in ["", "abcde-fgh2", "abcde-fgh231", "abcde-fgh18", "abcde_fgh23", &"a".repeat(10_000)] {
            assert_eq!(recovery_code(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn labels_are_percent_encoded() {
        assert_eq!(percent_encode("Portcullis:ada@example.com"), "Portcullis%3Aada%40example.com");
        assert_eq!(percent_encode("a b/é"), "a%20b%2F%C3%A9");
    }
}
