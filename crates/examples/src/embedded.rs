//! Portcullis's rules inside your own program: register, log in, verify a
//! token, rotate it, change the password. No HTTP server, no database: the
//! memory store and the crypto adapters stand in for them.
//!
//! Run with `cargo run -p portcullis-examples --bin embedded`; `cargo test`
//! runs it too and checks what it says.

#![allow(clippy::print_stdout)]

use std::sync::Arc;

use portcullis_crypto::{Argon2Hasher, HashingConfig, JwtCodec, JwtSecret, OsSecrets};
use portcullis_domain::ports::{NoCopies, NoObserver, NoRequestContext, SystemClock};
use portcullis_domain::{Adapters, AuthSettings, Password, Ports, Registration, Services};
use portcullis_store_memory::MemoryStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    for line in walk_through().await? {
        println!("{line}");
    }
    Ok(())
}

/// Register, log in, verify, rotate, change the password, read the audit
/// log; what happened at each step, as lines.
async fn walk_through() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut said = Vec::new();
    let store = Arc::new(MemoryStore::new());
    let secret = JwtSecret::new(b"use-at-least-32-random-bytes-in-real-life!".to_vec())?;
    let settings = AuthSettings::default();
    // Every repository, and the audit log, from the one store; the rest here.
    let adapters = Adapters {
        mailer: Arc::new(portcullis_mail::LogMailer::new(true)),
        // No HTTP here: events carry no address, user agent or request id.
        context: Arc::new(NoRequestContext),
        // Nothing keeps copies of reads here (no cache): changes go nowhere.
        changes: Arc::new(NoCopies),
        observer: Arc::new(NoObserver),
        oauth_providers: Vec::new(),
        signer: Arc::new(portcullis_crypto::HmacSigner::derive(&secret, "oauth state")),
        rate_limiter: Arc::new(portcullis_ratelimit::MemoryRateLimiter::new()),
        hasher: Arc::new(Argon2Hasher::new(&HashingConfig::default())?),
        blocklist: Arc::new(portcullis_crypto::CommonPasswords),
        tokens: Arc::new(JwtCodec::new(&secret, &settings.issuer)),
        // Seals TOTP secrets at rest (a key of your own in real life).
        one_time_codes: Arc::new(portcullis_crypto::TotpCodes::new(std::slice::from_ref(&secret))),
        clock: Arc::new(SystemClock),
        secrets: Arc::new(OsSecrets),
    };
    let services = Services::new(Ports::from_store(store, adapters), settings);

    let registration = Registration {
        email: " User@Example.com ".to_owned(),
        password: Password::new("SecurePass123!"),
        full_name: Some("John Doe".to_owned()),
    };
    let (user, _) = services.accounts.register(registration).await?;
    said.push(format!("registered {} as {}", user.email, user.id));

    // Without a second factor, a sign-in is a session at once (with one, it
    // is `SignIn::MfaRequired` and `services.mfa.verify` finishes it).
    let token = services.sessions.login("user@example.com", Password::new("SecurePass123!")).await?;
    let token = token.into_session().ok_or("no second factor was set up")?;
    let caller = services.sessions.authenticate(token.access_token.as_str()).await?;
    said.push(format!("token belongs to {} ({:?})", caller.user.email, caller.method));

    let rotated = services.sessions.refresh(token.access_token.as_str()).await?;
    let old = refusal(&services, token.access_token.as_str(), "the old token still works").await?;
    said.push(format!("after refresh the old token is refused: {old}"));

    let caller = services.sessions.authenticate(rotated.access_token.as_str()).await?;
    services
        .accounts
        .change_password(&caller, Password::new("SecurePass123!"), Password::new("NewSecurePass456!"))
        .await?;
    let stale = refusal(&services, rotated.access_token.as_str(), "a stale token still works").await?;
    said.push(format!("after a password change earlier tokens are refused: {stale}"));

    let token = services.sessions.login("user@example.com", Password::new("NewSecurePass456!")).await?;
    let token = token.into_session().ok_or("no second factor was set up")?;
    let caller = services.sessions.authenticate(token.access_token.as_str()).await?;
    for event in services.audit.mine(&caller, 20, None).await? {
        said.push(format!("audit: {} {}", event.at, event.kind));
    }
    Ok(said)
}

/// The error code authenticating `token` is refused with; `accepted` as an
/// error when it is not refused.
async fn refusal(
    services: &Services,
    token: &str,
    accepted: &'static str,
) -> Result<String, Box<dyn std::error::Error>> {
    let refused = services.sessions.authenticate(token).await.err().ok_or(accepted)?;
    Ok(refused.code().to_owned())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_walk_through_does_what_it_says() {
        let said = super::walk_through().await.unwrap();
        assert!(said[0].starts_with("registered user@example.com as "), "{said:?}");
        assert_eq!(said[1], "token belongs to user@example.com (Jwt)");
        assert_eq!(said[2], "after refresh the old token is refused: token_revoked");
        assert_eq!(said[3], "after a password change earlier tokens are refused: token_revoked");
        let audit: Vec<&str> = said[4..].iter().map(|line| line.rsplit(' ').next().unwrap()).collect();
        assert_eq!(
            audit,
            [
                "login_succeeded",
                "password_changed",
                "token_refreshed",
                "login_succeeded",
                "email_verification_requested",
                "register"
            ]
        );
    }
}
