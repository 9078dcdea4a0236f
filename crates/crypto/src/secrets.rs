//! Randomness from the operating system's CSPRNG (through rand's reseeding
//! ChaCha), and SHA-256 digests of the secrets made from it.

use portcullis_domain::ports::SecretGenerator;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The production [`SecretGenerator`].
#[derive(Debug, Clone, Copy, Default)]
pub struct OsSecrets;

impl SecretGenerator for OsSecrets {
    fn token_id(&self) -> Uuid {
        uuid::Builder::from_random_bytes(random()).into_uuid()
    }

    fn secret_bytes(&self) -> [u8; 32] {
        random()
    }

    fn digest(&self, secret: &[u8]) -> [u8; 32] {
        Sha256::digest(secret).into()
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::fill(&mut bytes);
    bytes
}
