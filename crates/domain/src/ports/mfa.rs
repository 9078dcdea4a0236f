use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{DomainError, StoreError};
use crate::model::{KeyDigest, MfaChallenge, RecoveryCode, TotpFactor, TotpSecret, UserId};

/// Second factors: each user's TOTP factor and recovery codes, and the
/// sign-ins that wait for a second factor.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait MfaRepository: Send + Sync {
    /// Stores `factor` (unconfirmed) as the user's, replacing an unconfirmed
    /// one. `false`, and nothing changed, when the user's factor is confirmed.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn put_totp(&self, factor: TotpFactor) -> Result<bool, StoreError>;

    /// The user's factor, confirmed or not.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn find_totp(&self, user: UserId) -> Result<Option<TotpFactor>, StoreError>;

    /// In one transaction, only while the user's factor is still the
    /// unconfirmed one sealed as `sealed`: confirms it with the code of
    /// `step` (its first accepted step), stores `codes` as the user's
    /// recovery codes (replacing any) and turns the user's `mfa_enabled`
    /// on. `false`, and nothing changed, otherwise (confirmed or replaced
    /// meanwhile).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn confirm_totp(
        &self,
        user: UserId,
        sealed: &[u8],
        step: i64,
        codes: Vec<RecoveryCode>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Records that the code of `step` was accepted, only if the user's
    /// factor is confirmed and no code of this or a later step was accepted
    /// before: of concurrent calls with one step, one gets `true`; a replay
    /// gets `false`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn spend_totp_step(&self, user: UserId, step: i64) -> Result<bool, StoreError>;

    /// Removes the user's factor and recovery codes and turns `mfa_enabled`
    /// off, in one transaction; `false` when there was no factor.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn remove_totp(&self, user: UserId, now: OffsetDateTime) -> Result<bool, StoreError>;

    /// Replaces the user's recovery codes with `codes`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn replace_recovery_codes(&self, user: UserId, codes: Vec<RecoveryCode>) -> Result<(), StoreError>;

    /// Marks the user's unused recovery code with this digest used: `true`
    /// once, of concurrent calls too.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn spend_recovery_code(
        &self,
        user: UserId,
        digest: &KeyDigest,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// How many unused recovery codes the user has.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn recovery_codes_left(&self, user: UserId) -> Result<u64, StoreError>;

    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn create_challenge(&self, challenge: MfaChallenge) -> Result<(), StoreError>;

    /// The challenge with this token digest, whatever its state.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn find_challenge(&self, digest: &KeyDigest) -> Result<Option<MfaChallenge>, StoreError>;

    /// Counts one wrong code against the challenge; the count after it.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn fail_challenge(&self, id: Uuid) -> Result<i32, StoreError>;

    /// Marks the challenge used, only if it is unused, unexpired at `now`
    /// and has fewer than `max_failures` wrong codes: `true` once.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn spend_challenge(
        &self,
        id: Uuid,
        max_failures: i32,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Forgets challenges that expired before `before`; how many.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn purge_challenges(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
}

/// TOTP arithmetic and the sealing of TOTP secrets at rest.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait OneTimeCodes: Send + Sync {
    /// The 6-digit code of `secret` for the time step `step` (RFC 6238:
    /// HMAC-SHA-1, dynamic truncation).
    fn totp(&self, secret: &TotpSecret, step: i64) -> u32;

    /// `secret` encrypted for storage, bound to `user`.
    ///
    /// # Errors
    /// [`DomainError::Unavailable`] when it cannot be sealed.
    fn seal(&self, user: UserId, secret: &TotpSecret) -> Result<Vec<u8>, DomainError>;

    /// The secret sealed by [`seal`](Self::seal) for `user`.
    ///
    /// # Errors
    /// [`DomainError::Unavailable`] when no configured key opens it.
    fn open(&self, user: UserId, sealed: &[u8]) -> Result<TotpSecret, DomainError>;
}
