use super::{
    ApiKeyRepository, AuditLog, HotReads, MfaRepository, OAuthIdentityRepository, Outbox,
    PasswordResetRepository, ProjectRepository, RevokedTokenRepository, SessionRepository,
    SigningKeyRepository, StoreHealth, UserRepository, VerificationRepository,
};

/// `Store` as the sum of `$port`s, with the impl that gives it to every type
/// that has them all.
macro_rules! store_of {
    ($($port:ident),+ $(,)?) => {
        /// A database adapter: every repository, the hot reads, the outbox,
        /// the audit log and a health check in one value. Implement the parts
        /// and this comes with them; [`crate::Ports::from_store`] turns one
        /// store into the ports the services use, so adding a port method
        /// never touches the wiring.
        pub trait Store: $($port +)+ 'static {}

        impl<T> Store for T where T: $($port +)+ 'static {}
    };
}

store_of!(
    UserRepository,
    HotReads,
    RevokedTokenRepository,
    ApiKeyRepository,
    ProjectRepository,
    PasswordResetRepository,
    VerificationRepository,
    Outbox,
    OAuthIdentityRepository,
    SessionRepository,
    SigningKeyRepository,
    MfaRepository,
    AuditLog,
    StoreHealth,
);
