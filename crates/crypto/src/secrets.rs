//! Randomness from the operating system's CSPRNG (through rand's reseeding ChaCha).

use portcullis_domain::ports::SecretGenerator;
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
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::fill(&mut bytes);
    bytes
}
