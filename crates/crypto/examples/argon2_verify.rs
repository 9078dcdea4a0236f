//! The login limit of this machine: one argon2id verification with the
//! parameters Portcullis uses, timed on one core, repeated.
//!
//! `cargo run --release -p portcullis-crypto --example argon2_verify [ROUNDS]`
//! prints one JSON object: the median and mean verification time, the cores,
//! and `limit_per_s` = cores / median (what a perfect server could reach).
//! It then runs the same computation on every core at once, with nothing
//! else to do and each thread reusing its memory as the server's hashing
//! threads do, and reports that rate as `all_cores_per_s`: how much of the
//! limit the machine itself delivers when its cores share caches and memory
//! bandwidth (a server can reach that, not more).

use std::time::Instant;

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, PasswordHasher, PasswordVerifier, Version};
use portcullis_crypto::HashingConfig;

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[allow(clippy::print_stdout, clippy::cast_precision_loss)]
fn main() -> Result<(), Failure> {
    let rounds: usize = std::env::args().nth(1).and_then(|r| r.parse().ok()).unwrap_or(40).max(1);
    let config = HashingConfig::default();
    let params = Params::new(config.memory_kib, config.iterations, config.parallelism, None)?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let hash = argon2.hash_password(b"SecurePass123!")?.to_string();
    let parsed = PasswordHash::new(&hash)?;
    // One untimed round warms caches and the allocator.
    argon2.verify_password(b"SecurePass123!", &parsed)?;
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        argon2.verify_password(b"SecurePass123!", &parsed)?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let all_cores = all_cores_per_s(&argon2, config.memory_kib, cores, rounds.div_ceil(2))?;
    println!(
        "{{\"memory_kib\": {}, \"iterations\": {}, \"parallelism\": {}, \"rounds\": {rounds}, \
         \"verify_ms_median\": {median:.3}, \"verify_ms_mean\": {mean:.3}, \"cores\": {cores}, \
         \"limit_per_s\": {:.2}, \"all_cores_per_s\": {all_cores:.2}}}",
        config.memory_kib,
        config.iterations,
        config.parallelism,
        cores as f64 * 1000.0 / median
    );
    Ok(())
}

/// Hashes per second with one thread per core computing `rounds` each, every
/// thread in its own memory area allocated once (a verification is one hash).
#[allow(clippy::cast_precision_loss)]
fn all_cores_per_s(
    argon2: &Argon2<'_>,
    memory_kib: u32,
    cores: usize,
    rounds: usize,
) -> Result<f64, Failure> {
    let blocks = usize::try_from(memory_kib)?;
    let mut areas: Vec<Vec<Block>> = (0..cores).map(|_| vec![Block::default(); blocks]).collect();
    let mut out = [0u8; 32];
    for area in &mut areas {
        // Untimed: the first pass maps the area's pages.
        argon2.hash_password_into_with_memory(b"SecurePass123!", b"sixteen byte salt", &mut out, area)?;
    }
    let started = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = areas
            .into_iter()
            .map(|mut area| {
                scope.spawn(move || -> Result<(), Failure> {
                    let mut out = [0u8; 32];
                    for _ in 0..rounds {
                        argon2.hash_password_into_with_memory(
                            b"SecurePass123!",
                            b"sixteen byte salt",
                            &mut out,
                            &mut area,
                        )?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|worker| worker.join().map_err(|_| Failure::from("a thread panicked"))?)
    })?;
    Ok((cores * rounds) as f64 / started.elapsed().as_secs_f64())
}
