use std::sync::Arc;

use time::Duration;
use uuid::Uuid;

use crate::error::DomainError;
use crate::model::{
    DeliveryStatus, Email, KeyDigest, MailMessage, OutboxMessage, Password, PasswordReset, ResetBudget,
    ResetRequest, ResetTokenSecret,
};
use crate::ports::MailError;

use crate::model::AuditKind;
use crate::ports::{
    Change, ChangeFeed, Clock, Mailer, Outbox, PasswordResetRepository, RequestContextSource,
    SecretGenerator, SessionRepository, UserRepository,
};

use super::audit::Recorder;
use super::credentials::Credentials;
use super::{AuthSettings, Ports, from_ports, opaque_debug};

/// Reset emails an account gets per hour at most, however often it is asked.
pub const RESETS_PER_HOUR: u32 = 3;
/// How long a reset link works.
const RESET_TTL: Duration = Duration::hours(1);
/// How long a worker may hold a claimed email before another may retry it.
const DELIVERY_LEASE: Duration = Duration::minutes(2);
/// Attempts before an email is given up.
const MAX_ATTEMPTS: i32 = 10;
/// Emails claimed per round.
const BATCH: u32 = 20;

/// What one delivery round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Forgot-password requests answered with a reset email.
    pub resets_issued: usize,
    /// Requests that led to no email (unknown or disabled account, or the
    /// account's hourly budget of reset emails spent).
    pub requests_dropped: usize,
    /// Requests that could not be answered now (retried after their lease).
    pub request_errors: Vec<String>,
    pub sent: usize,
    pub retried: usize,
    /// Emails given up for good, with the last error (for the log).
    pub gave_up: Vec<(Uuid, String)>,
}

/// Forgotten passwords: reset links by email through a durable outbox.
#[derive(Clone)]
pub struct PasswordService {
    users: Arc<dyn UserRepository>,
    resets: Arc<dyn PasswordResetRepository>,
    outbox: Arc<dyn Outbox>,
    mailer: Arc<dyn Mailer>,
    secrets: Arc<dyn SecretGenerator>,
    clock: Arc<dyn Clock>,
    context: Arc<dyn RequestContextSource>,
    changes: Arc<dyn ChangeFeed>,
    sessions: Arc<dyn SessionRepository>,
    credentials: Credentials,
    audit: Recorder,
    /// The page of the client app that takes a reset token.
    reset_url: Arc<str>,
}

opaque_debug!(PasswordService);

impl PasswordService {
    pub(super) fn new(ports: &Ports, settings: &AuthSettings) -> Self {
        from_ports!(ports => Self { users, resets, outbox, sessions; mailer, secrets, clock, context, changes;
            credentials: Credentials::new(ports, settings),
            audit: Recorder::new(ports),
            reset_url: settings.password_reset_url.as_str().into(),
        })
    }

    /// Queues a forgot-password request, whatever the email, and nothing
    /// else: the lookup, the token and the email come later, in the worker
    /// ([`deliver_due`](Self::deliver_due)). So the request does the same work,
    /// and takes the same time, for a registered email and an unknown one,
    /// and the HTTP answer is the same.
    ///
    /// # Errors
    /// 422 `invalid_email` for a string that is not an email; `Unavailable`.
    pub async fn forgot(&self, email: &str) -> Result<(), DomainError> {
        let email =
            Email::parse(email).map_err(|e| DomainError::validation(vec![DomainError::invalid_email(e)]))?;
        let now = self.clock.now();
        let request =
            ResetRequest { id: Uuid::now_v7(), email, requested_at: now, context: self.context.current() };
        Ok(self.resets.request_reset(request).await?)
    }

    /// Answers one queued request: a token and its email for an active user
    /// with fewer than [`RESETS_PER_HOUR`] reset emails in the last hour;
    /// nothing otherwise. Whether an email was queued.
    async fn answer(&self, request: ResetRequest) -> Result<bool, DomainError> {
        let user = self.users.find_by_email(&request.email).await?.filter(|user| user.is_active);
        let Some(user) = user else {
            self.resets.drop_reset_request(request.id).await?;
            return Ok(false);
        };
        let secret = ResetTokenSecret::from_random(self.secrets.secret_bytes());
        let now = self.clock.now();
        let reset = PasswordReset {
            id: Uuid::now_v7(),
            user_id: user.id,
            digest: self.digest(&secret),
            created_at: now,
            expires_at: now + RESET_TTL,
            used_at: None,
        };
        let email = OutboxMessage {
            id: Uuid::now_v7(),
            message: reset_email(&user.email, &self.link(&secret)),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            created_at: now,
        };
        let budget = ResetBudget { max: RESETS_PER_HOUR, since: now - Duration::hours(1) };
        let queued = self.resets.issue_reset(request.id, reset, email, budget).await?;
        let detail = (!queued).then(|| "hourly_limit".to_owned());
        self.audit
            .record_for(request.context, AuditKind::PasswordResetRequested, Some(user.id), detail)
            .await?;
        Ok(queued)
    }

    /// Sets a new password with a reset token. The token is used up and every
    /// token issued before stops working. A weak password is refused before
    /// the token is touched, so it stays usable.
    ///
    /// # Errors
    /// `InvalidResetToken` for a malformed, unknown, used or expired token;
    /// 422 `weak_password`; `Unavailable`.
    pub async fn reset(&self, token: &str, new_password: Password) -> Result<(), DomainError> {
        let secret = ResetTokenSecret::parse(token).map_err(|_| DomainError::InvalidResetToken)?;
        let digest = self.digest(&secret);
        let now = self.clock.now();
        // Checked before hashing, so bad tokens cost no argon2 time.
        let Some(reset) = self.resets.find_valid_reset(&digest, now).await? else {
            return Err(DomainError::InvalidResetToken);
        };
        let email = self.users.find_by_id(reset.user_id).await?.map(|user| user.email);
        let password = self.credentials.check_new(new_password.expose(), email.as_ref(), "new_password")?;
        let hash = self.credentials.hash(password).await?;
        let written = self.resets.consume_reset(&digest, hash, now).await;
        self.changes.changed(Change::User(reset.user_id));
        let user = written?.ok_or(DomainError::InvalidResetToken)?;
        // Whoever knew the old password signed in somewhere: every session ends.
        let ended = self.sessions.end_sessions(user.id, None, now).await;
        self.changes.changed(Change::User(user.id));
        ended?;
        self.audit.record(AuditKind::PasswordReset, Some(user.id), None).await
    }

    /// How many emails wait to be sent.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn backlog(&self) -> Result<u64, DomainError> {
        Ok(self.outbox.pending_count().await?)
    }

    /// Answers the queued forgot-password requests, then sends the emails that
    /// are due: one round of the delivery worker.
    /// Failures are retried with exponential backoff (5 s, 10 s, 20 s... up to
    /// 10 minutes apart) and given up after 10 attempts, or at once when the
    /// server refuses the message for good.
    ///
    /// # Errors
    /// `Unavailable` when the outbox cannot be read or updated.
    pub async fn deliver_due(&self) -> Result<DeliveryReport, DomainError> {
        let now = self.clock.now();
        let mut report = DeliveryReport::default();
        let requests = self.resets.claim_reset_requests(now, now + DELIVERY_LEASE, BATCH).await?;
        for request in requests {
            // A request that fails here is claimed again once its lease ends.
            match self.answer(request).await {
                Ok(true) => report.resets_issued += 1,
                Ok(false) => report.requests_dropped += 1,
                Err(e) => report.request_errors.push(e.to_string()),
            }
        }
        let due = self.outbox.claim_due(now, now + DELIVERY_LEASE, BATCH).await?;
        for email in due {
            let attempts = email.attempts + 1;
            match self.mailer.send(&email.message).await {
                Ok(()) => {
                    self.outbox.mark_sent(email.id, self.clock.now()).await?;
                    report.sent += 1;
                }
                Err(MailError::Transient(why)) if attempts < MAX_ATTEMPTS => {
                    let retry_at = self.clock.now() + backoff(attempts);
                    self.outbox.mark_failed(email.id, attempts, Some(retry_at), &why).await?;
                    report.retried += 1;
                }
                Err(MailError::Transient(why) | MailError::Permanent(why)) => {
                    self.outbox.mark_failed(email.id, attempts, None, &why).await?;
                    report.gave_up.push((email.id, why));
                }
            }
        }
        Ok(report)
    }

    fn digest(&self, secret: &ResetTokenSecret) -> KeyDigest {
        KeyDigest(self.secrets.digest(secret.expose().as_bytes()))
    }

    fn link(&self, secret: &ResetTokenSecret) -> String {
        let base = &self.reset_url;
        let separator = if base.contains('?') { '&' } else { '?' };
        format!("{base}{separator}token={}", secret.expose())
    }
}

/// 5 s after the first failure, doubling, at most 10 minutes.
fn backoff(attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.clamp(1, 8) - 1).unwrap_or(0);
    Duration::seconds(5 * 2_i64.pow(exponent)).min(Duration::minutes(10))
}

fn reset_email(to: &Email, link: &str) -> MailMessage {
    let text = format!(
        "Someone, hopefully you, asked to reset the password of the account {to}.\n\n\
         Open this link within one hour to choose a new password:\n\n{link}\n\n\
         If you did not ask for this, ignore this email: your password stays as it is.\n"
    );
    let link = escape_html(link);
    let account = escape_html(to.as_str());
    let html = format!(
        "<!DOCTYPE html><html><body>\
         <p>Someone, hopefully you, asked to reset the password of the account <strong>{account}</strong>.</p>\
         <p>Open this link within one hour to choose a new password:</p>\
         <p><a href=\"{link}\">Reset my password</a></p>\
         <p>Or copy it into your browser: {link}</p>\
         <p>If you did not ask for this, ignore this email: your password stays as it is.</p>\
         </body></html>"
    );
    MailMessage { to: to.clone(), subject: "Reset your password".to_owned(), text, html }
}

pub(super) fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_minutes() {
        assert_eq!(backoff(1), Duration::seconds(5));
        assert_eq!(backoff(2), Duration::seconds(10));
        assert_eq!(backoff(5), Duration::seconds(80));
        assert_eq!(backoff(9), Duration::minutes(10));
    }

    #[test]
    fn the_email_has_both_parts_and_the_link() {
        let to = Email::parse("user@example.com").unwrap();
        let mail = reset_email(&to, "https://app.example.com/reset?x=1&token=prt_abc");
        assert_eq!(mail.subject, "Reset your password");
        assert!(mail.text.contains("https://app.example.com/reset?x=1&token=prt_abc"));
        assert!(mail.html.contains("href=\"https://app.example.com/reset?x=1&amp;token=prt_abc\""));
    }
}
