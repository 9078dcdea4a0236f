//! The login limit of this machine: one argon2id verification with the
//! parameters Portcullis uses, timed on one core, repeated.
//!
//! `cargo run --release -p portcullis-crypto --example argon2_verify [ROUNDS]`
//! prints one JSON object: the median and mean verification time, the cores,
//! and `limit_per_s` = cores / median (what a perfect server could reach).

use std::time::Instant;

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use portcullis_crypto::HashingConfig;

#[allow(clippy::print_stdout, clippy::cast_precision_loss)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args().nth(1).and_then(|r| r.parse().ok()).unwrap_or(40);
    let config = HashingConfig::default();
    let params = Params::new(config.memory_kib, config.iterations, config.parallelism, None)?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let hash = argon2.hash_password(b"SecurePass123!")?.to_string();
    let parsed = PasswordHash::new(&hash)?;
    // One untimed round warms caches and the allocator.
    argon2.verify_password(b"SecurePass123!", &parsed)?;
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        argon2.verify_password(b"SecurePass123!", &parsed)?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    println!(
        "{{\"memory_kib\": {}, \"iterations\": {}, \"parallelism\": {}, \"rounds\": {rounds}, \
         \"verify_ms_median\": {median:.3}, \"verify_ms_mean\": {mean:.3}, \"cores\": {cores}, \
         \"limit_per_s\": {:.2}}}",
        config.memory_kib,
        config.iterations,
        config.parallelism,
        cores as f64 * 1000.0 / median
    );
    Ok(())
}
