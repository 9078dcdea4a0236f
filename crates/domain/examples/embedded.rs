//! Portcullis's rules inside your own program: register, log in, verify a
//! token, rotate it, change the password. No HTTP server, no database: the
//! memory store and the crypto adapters stand in for them.
//!
//! Run with `cargo run -p portcullis-domain --example embedded`.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::sync::Arc;

use portcullis_crypto::{Argon2Hasher, HashingConfig, JwtCodec, JwtSecret, OsSecrets};
use portcullis_domain::ports::{NoRequestContext, SystemClock};
use portcullis_domain::{AuthSettings, Password, Ports, Registration, Services};
use portcullis_store_memory::MemoryStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(MemoryStore::new());
    let secret = JwtSecret::new(b"use-at-least-32-random-bytes-in-real-life!".to_vec())?;
    let settings = AuthSettings::default();
    let ports = Ports {
        users: store.clone(),
        revoked_tokens: store.clone(),
        api_keys: store.clone(),
        projects: store.clone(),
        resets: store.clone(),
        outbox: store.clone(),
        mailer: Arc::new(portcullis_mail::LogMailer::new(true)),
        identities: store.clone(),
        // Security events land in the same store; list them with `services.audit`.
        audit: store,
        // No HTTP here: events carry no address, user agent or request id.
        context: Arc::new(NoRequestContext),
        oauth_providers: Vec::new(),
        signer: Arc::new(portcullis_crypto::HmacSigner::derive(&secret, "oauth state")),
        rate_limiter: Arc::new(portcullis_ratelimit::MemoryRateLimiter::new()),
        hasher: Arc::new(Argon2Hasher::new(&HashingConfig::default())?),
        blocklist: Arc::new(portcullis_crypto::CommonPasswords),
        tokens: Arc::new(JwtCodec::new(&secret, &settings.issuer)),
        clock: Arc::new(SystemClock),
        secrets: Arc::new(OsSecrets),
    };
    let services = Services::new(ports, settings);

    let registration = Registration {
        email: " User@Example.com ".to_owned(),
        password: Password::new("SecurePass123!"),
        full_name: Some("John Doe".to_owned()),
    };
    let (user, _) = services.accounts.register(registration).await?;
    println!("registered {} as {}", user.email, user.id);

    let token = services.sessions.login("user@example.com", Password::new("SecurePass123!")).await?;
    let caller = services.sessions.authenticate(token.access_token.as_str()).await?;
    println!("token belongs to {} ({:?})", caller.user.email, caller.method);

    let rotated = services.sessions.refresh(token.access_token.as_str()).await?;
    let old = services.sessions.authenticate(token.access_token.as_str()).await.unwrap_err();
    println!("after refresh the old token is refused: {}", old.code());

    let caller = services.sessions.authenticate(rotated.access_token.as_str()).await?;
    services
        .accounts
        .change_password(&caller, Password::new("SecurePass123!"), Password::new("NewSecurePass456!"))
        .await?;
    let stale = services.sessions.authenticate(rotated.access_token.as_str()).await.unwrap_err();
    println!("after a password change earlier tokens are refused: {}", stale.code());

    let token = services.sessions.login("user@example.com", Password::new("NewSecurePass456!")).await?;
    let caller = services.sessions.authenticate(token.access_token.as_str()).await?;
    for event in services.audit.mine(&caller, 20, None).await? {
        println!("audit: {} {}", event.at, event.kind);
    }
    Ok(())
}
