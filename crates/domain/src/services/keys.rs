use std::sync::{Arc, PoisonError, RwLock};

use time::{Duration, OffsetDateTime};

use crate::error::DomainError;
use crate::model::{KeyState, KeyStatus, SigningKey, key_states};
use crate::ports::{Clock, SigningKeyRepository, TokenCodec};

use super::{AuthSettings, Ports, from_ports, opaque_debug};

/// The signing keys' life: the first key, rotation (by hand and on schedule),
/// what the JWKS publishes, and keeping the token codec's keys in step with
/// the store that every instance shares.
#[derive(Clone)]
pub struct SigningKeyService {
    signing_keys: Arc<dyn SigningKeyRepository>,
    tokens: Arc<dyn TokenCodec>,
    clock: Arc<dyn Clock>,
    /// Token lifetime plus leeway: how long a retired key stays published.
    token_lifetime: Duration,
    publish: Duration,
    rotation: Option<Duration>,
    /// The keys as read last, for the JWKS: read on every request, so it is
    /// never a store query; their states are judged at each request.
    installed: Arc<RwLock<Arc<[SigningKey]>>>,
}

opaque_debug!(SigningKeyService);

/// What [`SigningKeyService::rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// A new key was added as `next`.
    Added(KeyStatus),
    /// A `next` key was waiting already: nothing was added.
    AlreadyPending(KeyStatus),
}

impl SigningKeyService {
    pub(super) fn new(ports: &Ports, settings: &AuthSettings) -> Self {
        from_ports!(ports => Self {
            signing_keys; tokens, clock;
            token_lifetime: Duration::seconds(settings.token_ttl_secs + settings.leeway_secs),
            publish: Duration::seconds(settings.key_publish_secs),
            rotation: (settings.key_rotation_days > 0).then(|| Duration::days(settings.key_rotation_days)),
            installed: Arc::new(RwLock::new(Arc::from(Vec::new()))),
        })
    }

    /// At start: when tokens are signed with an asymmetric algorithm and no
    /// key of it is current or next, adds one: current at once when the store
    /// holds no key at all (nothing can have cached a key set yet), else as
    /// `next`, published before it signs (a switch of algorithm). Then loads
    /// the keys into the codec.
    ///
    /// # Errors
    /// `Unavailable` when the store cannot be reached, or a stored key cannot
    /// be unsealed (another key-encryption key): nothing is replaced then.
    pub async fn ensure(&self) -> Result<Vec<KeyStatus>, DomainError> {
        let algorithm = self.tokens.algorithm();
        let mut keys = self.signing_keys.list_signing_keys().await?;
        if algorithm.is_asymmetric() {
            let now = self.clock.now();
            let states = key_states(&keys, now, self.token_lifetime);
            let ready = states.iter().any(|s| s.may_sign() && s.key.algorithm == algorithm);
            if !ready {
                let activates_at = if keys.is_empty() { now } else { now + self.publish };
                self.add(&keys, activates_at).await?;
                keys = self.signing_keys.list_signing_keys().await?;
            }
        }
        self.install(&keys)
    }

    /// Reads the keys again and hands them to the codec, adding the next key
    /// first when the schedule says so (`AUTH_KEY_ROTATION_DAYS`): run every
    /// few seconds on every instance.
    ///
    /// The kid of the key this instance added, if it added one.
    ///
    /// # Errors
    /// As [`ensure`](Self::ensure).
    pub async fn refresh(&self) -> Result<Option<String>, DomainError> {
        let mut keys = self.signing_keys.list_signing_keys().await?;
        let mut added = None;
        if self.rotation_due(&keys) {
            added = self.add(&keys, self.clock.now() + self.publish).await?;
            keys = self.signing_keys.list_signing_keys().await?;
        }
        self.install(&keys)?;
        Ok(added)
    }

    /// Adds a `next` key now (`portcullis keys rotate`), which starts signing
    /// after `AUTH_KEY_PUBLISH_SECS`; when a next key is waiting already,
    /// leaves it be.
    ///
    /// # Errors
    /// `Unavailable` when the algorithm is HS256 (nothing to rotate here) or
    /// the store cannot be reached. A generation another instance took at
    /// the same instant is retried.
    pub async fn rotate(&self) -> Result<Rotation, DomainError> {
        let algorithm = self.tokens.algorithm();
        if !algorithm.is_asymmetric() {
            return Err(DomainError::Unavailable(
                "AUTH_JWT_ALGORITHM is HS256: its key is AUTH_JWT_SECRET (rotate it with AUTH_JWT_PREVIOUS_SECRET)"
                    .to_owned(),
            ));
        }
        for _ in 0..3 {
            let keys = self.signing_keys.list_signing_keys().await?;
            let now = self.clock.now();
            if let Some(pending) = key_states(&keys, now, self.token_lifetime)
                .into_iter()
                .find(|s| s.state == KeyState::Next && s.key.algorithm == algorithm)
            {
                return Ok(Rotation::AlreadyPending(pending));
            }
            let kid = self.add(&keys, now + self.publish).await?;
            if let Some(kid) = kid {
                let keys = self.install(&self.signing_keys.list_signing_keys().await?)?;
                if let Some(added) = keys.into_iter().find(|s| s.key.kid == kid) {
                    return Ok(Rotation::Added(added));
                }
            }
        }
        Err(DomainError::Unavailable("another instance keeps adding keys; try again".to_owned()))
    }

    /// Every key with its state now, oldest first (`portcullis keys list`).
    ///
    /// # Errors
    /// `Unavailable` when the store cannot be reached.
    pub async fn list(&self) -> Result<Vec<KeyStatus>, DomainError> {
        let keys = self.signing_keys.list_signing_keys().await?;
        Ok(key_states(&keys, self.clock.now(), self.token_lifetime))
    }

    /// The public keys to publish now, as JWK texts: every next and current
    /// key and the retired ones whose tokens may still be valid, as loaded at
    /// the last [`refresh`](Self::refresh) (every instance refreshes every few
    /// seconds); none under HS256.
    #[must_use]
    pub fn published(&self) -> Vec<String> {
        if !self.tokens.algorithm().is_asymmetric() {
            return Vec::new();
        }
        let now = self.clock.now();
        let installed = Arc::clone(&self.installed.read().unwrap_or_else(PoisonError::into_inner));
        key_states(&installed, now, self.token_lifetime)
            .into_iter()
            .filter(|s| s.is_published(now))
            .map(|s| s.key.public_jwk)
            .collect()
    }

    /// The algorithm new tokens are signed with.
    #[must_use]
    pub fn algorithm(&self) -> crate::model::SigningAlgorithm {
        self.tokens.algorithm()
    }

    fn rotation_due(&self, keys: &[SigningKey]) -> bool {
        let Some(rotation) = self.rotation else { return false };
        let algorithm = self.tokens.algorithm();
        if !algorithm.is_asymmetric() {
            return false;
        }
        let now = self.clock.now();
        let states = key_states(keys, now, self.token_lifetime);
        let pending = states.iter().any(|s| s.state == KeyState::Next);
        let current = states.iter().find(|s| s.state == KeyState::Current);
        !pending && current.is_some_and(|c| c.key.activates_at + rotation <= now)
    }

    /// Adds a key of the configured algorithm as the next generation,
    /// becoming current at `activates_at`: its kid, or `None` when another
    /// instance added that generation first.
    async fn add(
        &self,
        keys: &[SigningKey],
        activates_at: OffsetDateTime,
    ) -> Result<Option<String>, DomainError> {
        let algorithm = self.tokens.algorithm();
        let generated = self.tokens.generate_key(algorithm)?;
        let generation = keys.iter().map(|k| k.generation).max().unwrap_or(0) + 1;
        let kid = generated.kid.clone();
        let key = SigningKey {
            kid: generated.kid,
            algorithm,
            generation,
            public_jwk: generated.public_jwk,
            sealed_private: generated.sealed_private,
            created_at: self.clock.now(),
            activates_at,
        };
        Ok(self.signing_keys.insert_signing_key(key).await?.then_some(kid))
    }

    fn install(&self, keys: &[SigningKey]) -> Result<Vec<KeyStatus>, DomainError> {
        let now = self.clock.now();
        let states = key_states(keys, now, self.token_lifetime);
        let live: Vec<KeyStatus> = states.iter().filter(|s| s.is_published(now)).cloned().collect();
        self.tokens.install_keys(&live)?;
        *self.installed.write().unwrap_or_else(PoisonError::into_inner) = Arc::from(keys.to_vec());
        Ok(states)
    }
}
