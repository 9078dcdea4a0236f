use super::{
    ApiKeyRepository, AuditLog, OAuthIdentityRepository, Outbox, PasswordResetRepository, ProjectRepository,
    RevokedTokenRepository, StoreHealth, UserRepository,
};

/// A database adapter: every repository, the outbox, the audit log and a
/// health check in one value. Implement the parts and this comes with them;
/// [`crate::Ports::from_store`] turns one store into the ports the services
/// use, so adding a port method never touches the wiring.
pub trait Store:
    UserRepository
    + RevokedTokenRepository
    + ApiKeyRepository
    + ProjectRepository
    + PasswordResetRepository
    + Outbox
    + OAuthIdentityRepository
    + AuditLog
    + StoreHealth
    + 'static
{
}

impl<T> Store for T where
    T: UserRepository
        + RevokedTokenRepository
        + ApiKeyRepository
        + ProjectRepository
        + PasswordResetRepository
        + Outbox
        + OAuthIdentityRepository
        + AuditLog
        + StoreHealth
        + 'static
{
}
