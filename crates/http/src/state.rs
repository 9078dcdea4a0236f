use std::sync::Arc;

use portcullis_domain::Services;
use portcullis_domain::ports::StoreHealth;

/// What the HTTP layer may be told by whoever runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Serve `/v1/test-auth/*` (never in production).
    pub test_endpoints: bool,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Whose `X-Forwarded-For` is believed when telling client addresses apart.
    pub trusted_proxies: crate::TrustedProxies,
    /// Browser origins allowed to call the API (exact `scheme://host[:port]`).
    pub cors_origins: Vec<String>,
    /// Serve `/metrics` on the API's port (else only through [`crate::metrics_app`]).
    pub metrics_on_main: bool,
    /// Send `Strict-Transport-Security` (the service's public URL is `https://`).
    pub hsts: bool,
    /// The URL clients reach the service at (`AUTH_PUBLIC_URL`), for the
    /// absolute URLs of the discovery metadata.
    pub public_url: String,
    /// The tokens' `iss`, as the metadata states it.
    pub issuer: String,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            test_endpoints: true,
            body_limit: 64 * 1024,
            trusted_proxies: crate::TrustedProxies::default(),
            cors_origins: Vec::new(),
            metrics_on_main: true,
            hsts: false,
            public_url: "http://127.0.0.1:8000".to_owned(),
            issuer: "portcullis".to_owned(),
        }
    }
}

/// Everything a handler may reach: the services and the store's health probe.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub health: Arc<dyn StoreHealth>,
    pub settings: HttpSettings,
    pub metrics: Arc<crate::Metrics>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("settings", &self.settings).finish_non_exhaustive()
    }
}
