//! argon2 with a working area that each hashing thread keeps.
//!
//! argon2id walks `m` KiB of memory (19 MiB with OWASP's parameters). Left to
//! the allocator, every hash allocates and frees that much, and glibc keeps
//! freed blocks of that size in per-thread arenas: a login storm grew the
//! process to ~300 MiB. Here each thread allocates its area once and reuses
//! it, so hashing memory is bounded by threads × `m`. The area is overwritten
//! by every hash; it never leaves the process.

use std::cell::RefCell;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Largest area a thread keeps (64 MiB); a stored hash that asks for more
/// (made under heavier parameters) gets a one-off allocation.
const KEEP_BLOCKS: usize = 64 * 1024;

thread_local! {
    static AREA: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs argon2 into `out` on this thread's area.
fn fill(argon2: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> Result<(), argon2::Error> {
    let count = argon2.params().block_count();
    if count > KEEP_BLOCKS {
        return argon2.hash_password_into_with_memory(password, salt, out, vec![Block::default(); count]);
    }
    AREA.with(|area| {
        let mut area = area.borrow_mut();
        if area.len() < count {
            area.resize(count, Block::default());
        }
        argon2.hash_password_into_with_memory(password, salt, out, &mut area[..count])
    })
}

/// A PHC string (`$argon2id$v=19$m=...`) for `password` with `salt`.
pub(crate) fn hash(argon2: &Argon2<'_>, password: &[u8], salt: &[u8]) -> Result<String, String> {
    let salt = Salt::new(salt).map_err(|e| e.to_string())?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    fill(argon2, password, &salt, &mut out).map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params()).map_err(|e| e.to_string())?,
        salt: Some(salt),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `stored`, with the parameters
/// the string names (so hashes made under older parameters keep working).
/// The outputs are compared in constant time.
pub(crate) fn verify(password: &[u8], stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else { return false };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    if fill(&argon2, password, &salt, &mut out).is_err() {
        return false;
    }
    Output::new(&out).is_ok_and(|computed| computed == expected)
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::phc::PasswordHash;
    use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};

    use super::{hash, verify};

    fn small() -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(256, 1, 1, None).unwrap())
    }

    #[test]
    fn our_hashes_verify_and_match_the_crates_own() {
        let ours = hash(&small(), b"SecurePass123!", b"0123456789abcdef").unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=256,t=1,p=1$"), "{ours}");
        assert!(verify(b"SecurePass123!", &ours));
        assert!(!verify(b"SecurePass124!", &ours));
        let theirs = small().hash_password_with_salt(b"SecurePass123!", b"0123456789abcdef").unwrap();
        assert_eq!(ours, theirs.to_string(), "the same PHC string as the argon2 crate's");
        assert!(PasswordHash::new(&ours).is_ok());
    }

    #[test]
    fn hashes_under_other_parameters_and_variants_verify() {
        for (algorithm, m) in
            [(Algorithm::Argon2id, 512), (Algorithm::Argon2i, 128), (Algorithm::Argon2d, 64)]
        {
            let argon2 = Argon2::new(algorithm, Version::V0x13, Params::new(m, 2, 1, None).unwrap());
            let stored = argon2.hash_password_with_salt(b"pw-for-test", b"saltsaltsalt").unwrap().to_string();
            assert!(verify(b"pw-for-test", &stored), "{stored}");
            assert!(!verify(b"pw-for-tesT", &stored));
        }
    }

    #[test]
    fn malformed_hashes_never_verify() {
        for stored in ["", "plaintext", "$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHQ", "$bcrypt$2b$10$abc"] {
            assert!(!verify(b"anything", stored), "{stored}");
        }
    }
}
