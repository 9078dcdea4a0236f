//! Passwords as every service checks them: verification that costs the same
//! whether or not there is a hash to check, and the rules for a new one.

use std::sync::Arc;

use crate::error::DomainError;
use crate::model::{Email, Password, PasswordHash, PasswordPolicy, PasswordRule};
use crate::ports::{PasswordBlocklist, PasswordHasher};

use super::{AuthSettings, Ports, opaque_debug};

#[derive(Clone)]
pub(super) struct Credentials {
    hasher: Arc<dyn PasswordHasher>,
    blocklist: Arc<dyn PasswordBlocklist>,
    policy: PasswordPolicy,
}

opaque_debug!(Credentials);

impl Credentials {
    pub(super) fn new(ports: &Ports, settings: &AuthSettings) -> Self {
        Self {
            hasher: Arc::clone(&ports.adapters.hasher),
            blocklist: Arc::clone(&ports.adapters.blocklist),
            policy: settings.password_policy.clone(),
        }
    }

    /// The rules a new password must meet.
    pub(super) fn policy(&self) -> &PasswordPolicy {
        &self.policy
    }

    /// Hashes a password that passed [`check_new`](Self::check_new).
    ///
    /// # Errors
    /// `Unavailable` (hashing pool full or gone).
    pub(super) async fn hash(&self, password: Password) -> Result<PasswordHash, DomainError> {
        self.hasher.hash(password).await
    }

    /// Whether `password` matches `hash`, and whether the hash should be made
    /// again from the normalised password: it matched only in the form the
    /// user typed, as hashes made before passwords were NFKC-normalised do,
    /// or it was made with other parameters.
    ///
    /// # Errors
    /// `Unavailable` (hashing pool full or gone).
    pub(super) async fn verify(
        &self,
        password: &Password,
        hash: &PasswordHash,
    ) -> Result<(bool, bool), DomainError> {
        if self.hasher.verify(password.clone(), hash.clone()).await? {
            return Ok((true, self.hasher.needs_rehash(hash)));
        }
        match password.as_typed() {
            Some(typed) => Ok((self.hasher.verify(typed, hash.clone()).await?, true)),
            None => Ok((false, false)),
        }
    }

    /// What [`verify`](Self::verify) costs, for a login that has no hash to
    /// check against: the same number of argon2 runs, so timing tells nothing.
    ///
    /// # Errors
    /// `Unavailable` (hashing pool full or gone).
    pub(super) async fn verify_nothing(&self, password: &Password) -> Result<(), DomainError> {
        self.hasher.verify_dummy(password.clone()).await?;
        if let Some(typed) = password.as_typed() {
            self.hasher.verify_dummy(typed).await?;
        }
        Ok(())
    }

    /// Checks a new password against the policy and the common-password
    /// list, reporting every failed rule at once under `field`.
    ///
    /// # Errors
    /// 422 `weak_password` listing each failed rule.
    pub(super) fn check_new(
        &self,
        candidate: &str,
        email: Option<&Email>,
        field: &str,
    ) -> Result<Password, DomainError> {
        let mut failed = self.policy.check(candidate, email).err().unwrap_or_default();
        if self.policy.reject_common && self.blocklist.is_common(candidate) {
            failed.push(PasswordRule::TooCommon);
        }
        if failed.is_empty() {
            Ok(Password::new(candidate))
        } else {
            Err(DomainError::validation(DomainError::weak_password(field, &failed, &self.policy)))
        }
    }
}
