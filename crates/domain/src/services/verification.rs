use std::sync::Arc;

use time::Duration;
use uuid::Uuid;

use crate::error::{AuthError, DomainError};
use crate::model::{
    AuditKind, DeliveryStatus, Email, EmailVerification, KeyDigest, MailMessage, NewUser, OutboxMessage,
    Principal, ResetBudget, User, UserId, VerificationTokenSecret,
};
use crate::ports::{Change, ChangeFeed, Clock, SecretGenerator, UserRepository, VerificationRepository};

use super::audit::Recorder;
use super::{AuthSettings, Ports, from_ports, opaque_debug};

/// Verification emails an account gets per hour at most, registration's included.
pub const VERIFICATIONS_PER_HOUR: u32 = 3;
/// How long a verification link works.
const VERIFICATION_TTL: Duration = Duration::hours(24);

/// What a request for a new verification link did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// The address is verified already: no email.
    AlreadyVerified,
    /// Accepted: an email is queued, unless the account had its hourly
    /// share already (the answer does not say which).
    Accepted,
}

/// Email verification: the link a password registration gets, new links on
/// request, and the proof of ownership they carry.
#[derive(Clone)]
pub struct VerificationService {
    users: Arc<dyn UserRepository>,
    verifications: Arc<dyn VerificationRepository>,
    secrets: Arc<dyn SecretGenerator>,
    clock: Arc<dyn Clock>,
    changes: Arc<dyn ChangeFeed>,
    audit: Recorder,
    /// The page that takes a verification token.
    verify_url: Arc<str>,
}

opaque_debug!(VerificationService);

impl VerificationService {
    pub(super) fn new(ports: &Ports, settings: &AuthSettings) -> Self {
        from_ports!(ports => Self { users, verifications; secrets, clock, changes;
            audit: Recorder::new(ports),
            verify_url: settings.email_verify_url.as_str().into(),
        })
    }

    /// Stores a password registration with its first verification link and
    /// email, in one write (the caller records the events).
    pub(super) async fn register(&self, user: NewUser) -> Result<User, DomainError> {
        let (verification, email) = self.link_for(user.id, &user.email);
        Ok(self.verifications.create_user_with_verification(user, verification, email).await?)
    }

    /// A new verification link for the caller, voiding the older ones;
    /// nothing for a verified address. At most [`VERIFICATIONS_PER_HOUR`]
    /// emails an hour: a request beyond them is accepted and sends nothing,
    /// as forgot-password does.
    ///
    /// # Errors
    /// `Unauthenticated` when the caller's account is gone; `Unavailable`.
    pub async fn resend(&self, caller: &Principal) -> Result<Resend, DomainError> {
        // Read afresh: the caller's copy may be a cached one from before a verification.
        let Some(user) = self.users.find_by_id(caller.user.id).await? else {
            return Err(DomainError::Unauthenticated(AuthError::AccountDisabled));
        };
        if user.email_verified {
            return Ok(Resend::AlreadyVerified);
        }
        let (verification, email) = self.link_for(user.id, &user.email);
        let budget =
            ResetBudget { max: VERIFICATIONS_PER_HOUR, since: self.clock.now() - Duration::hours(1) };
        let queued = self.verifications.issue_verification(verification, email, budget).await?;
        let detail = (!queued).then(|| "hourly_limit".to_owned());
        self.audit.record(AuditKind::EmailVerificationRequested, Some(user.id), detail).await?;
        Ok(Resend::Accepted)
    }

    /// Marks the address of the link's account verified. The link is used
    /// up, and so is every other link of the account.
    ///
    /// # Errors
    /// `InvalidVerificationToken` for a malformed, unknown, used or expired
    /// token; `Unavailable`.
    pub async fn verify(&self, token: &str) -> Result<User, DomainError> {
        let secret = VerificationTokenSecret::parse(token.trim())
            .map_err(|_| DomainError::InvalidVerificationToken)?;
        let digest = self.digest(&secret);
        let user = self.verifications.consume_verification(&digest, self.clock.now()).await?;
        let user = user.ok_or(DomainError::InvalidVerificationToken)?;
        // `/me` shows the flag, and a required verification gates refreshes.
        self.changes.changed(Change::User(user.id));
        self.audit.record(AuditKind::EmailVerified, Some(user.id), None).await?;
        Ok(user)
    }

    /// A fresh link for `user` and the email that carries it.
    fn link_for(&self, user: UserId, to: &Email) -> (EmailVerification, OutboxMessage) {
        let secret = VerificationTokenSecret::from_random(self.secrets.secret_bytes());
        let now = self.clock.now();
        let verification = EmailVerification {
            id: Uuid::now_v7(),
            user_id: user,
            digest: self.digest(&secret),
            created_at: now,
            expires_at: now + VERIFICATION_TTL,
            used_at: None,
        };
        let email = OutboxMessage {
            id: Uuid::now_v7(),
            message: verification_email(to, &self.link(&secret)),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            created_at: now,
        };
        (verification, email)
    }

    fn digest(&self, secret: &VerificationTokenSecret) -> KeyDigest {
        KeyDigest(self.secrets.digest(secret.expose().as_bytes()))
    }

    fn link(&self, secret: &VerificationTokenSecret) -> String {
        let base = &self.verify_url;
        let separator = if base.contains('?') { '&' } else { '?' };
        format!("{base}{separator}token={}", secret.expose())
    }
}

fn verification_email(to: &Email, link: &str) -> MailMessage {
    let text = format!(
        "Please confirm that {to} is your email address.\n\n\
         Open this link within 24 hours and press the button on the page:\n\n{link}\n\n\
         If you did not create an account with this address, ignore this email.\n"
    );
    let link = super::passwords::escape_html(link);
    let account = super::passwords::escape_html(to.as_str());
    let html = format!(
        "<!DOCTYPE html><html><body>\
         <p>Please confirm that <strong>{account}</strong> is your email address.</p>\
         <p>Open this link within 24 hours and press the button on the page:</p>\
         <p><a href=\"{link}\">Verify my email address</a></p>\
         <p>Or copy it into your browser: {link}</p>\
         <p>If you did not create an account with this address, ignore this email.</p>\
         </body></html>"
    );
    MailMessage { to: to.clone(), subject: "Verify your email address".to_owned(), text, html }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_email_has_both_parts_and_the_link() {
        let to = Email::parse("user@example.com").unwrap();
        let mail = verification_email(&to, "https://auth.example.com/verify-email?token=pev_abc&x=<1>");
        assert_eq!(mail.subject, "Verify your email address");
        assert!(mail.text.contains("https://auth.example.com/verify-email?token=pev_abc&x=<1>"));
        assert!(
            mail.html
                .contains("href=\"https://auth.example.com/verify-email?token=pev_abc&amp;x=&lt;1&gt;\"")
        );
    }
}
