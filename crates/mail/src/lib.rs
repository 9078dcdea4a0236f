//! Mailer adapters for Portcullis.
//!
//! [`SmtpMailer`] delivers through lettre over SMTP with rustls:
//! `smtp://host:25` (plain), `smtp://host:587?tls=required` (STARTTLS),
//! `smtps://host:465` (implicit TLS), credentials as `user:pass@` in the URL.
//! [`LogMailer`] writes emails to the log instead, for development. This crate
//! depends on the domain and lettre only; delivery policy (retries, backoff,
//! the outbox) is the domain's, not this crate's.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use portcullis_domain::MailMessage;
use portcullis_domain::ports::{MailError, Mailer};

/// SMTP through lettre's pooled async transport.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold credentials: never printed.
        f.debug_struct("SmtpMailer").field("from", &self.from.to_string()).finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer for `url`, sending as `from` (e.g. `Portcullis <no-reply@example.com>`).
    /// Nothing is contacted until the first email.
    ///
    /// # Errors
    /// A message naming what is wrong with the URL or the sender.
    pub fn new(url: &str, from: &str) -> Result<Self, String> {
        let from: Mailbox = from.parse().map_err(|e| format!("invalid sender {from:?}: {e}"))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("invalid SMTP URL: {e}"))?
            .timeout(Some(Duration::from_secs(10)))
            .build();
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, message: &MailMessage) -> Result<(), MailError> {
        let to: Mailbox = message
            .to
            .as_str()
            .parse()
            .map_err(|e| MailError::Permanent(format!("invalid recipient: {e}")))?;
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder().header(ContentType::TEXT_PLAIN).body(message.text.clone()),
                    )
                    .singlepart(
                        SinglePart::builder().header(ContentType::TEXT_HTML).body(message.html.clone()),
                    ),
            )
            .map_err(|e| MailError::Permanent(format!("cannot build the email: {e}")))?;
        match self.transport.send(email).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(MailError::Permanent(e.to_string())),
            Err(e) => Err(MailError::Transient(e.to_string())),
        }
    }
}

/// Writes emails to the log instead of sending them: the development default,
/// so `cargo run` needs no mail server and a reset link can be copied from the
/// terminal. With `reveal_bodies` off (production), only the recipient and
/// subject are logged: a reset link must never reach a log there.
#[derive(Debug, Clone, Copy)]
pub struct LogMailer {
    reveal_bodies: bool,
}

impl LogMailer {
    #[must_use]
    pub const fn new(reveal_bodies: bool) -> Self {
        Self { reveal_bodies }
    }
}

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, message: &MailMessage) -> Result<(), MailError> {
        if self.reveal_bodies {
            tracing::info!(to = %message.to, subject = %message.subject, body = %message.text, "email (not sent: AUTH_SMTP_URL is unset)");
        } else {
            tracing::warn!(to = %message.to, subject = %message.subject, "email dropped: AUTH_SMTP_URL is unset");
        }
        Ok(())
    }
}
