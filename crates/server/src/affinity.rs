//! Where the HTTP workers run (`AUTH_WORKER_AFFINITY`).
//!
//! The HTTP server runs one worker thread per core, each with its own event
//! loop and its own connections. Left to the kernel, two busy workers
//! sometimes share one core while the other core runs something short-lived
//! (the load balancer does not move a thread to a core that is idle only in
//! gaps shorter than a migration is worth), and the two then take turns in
//! scheduler ticks: every connection of both waits up to 4 ms. Measured on a
//! 2-core machine (docs/benchmarks.md), `/me`'s p99 at 32 connections moved
//! between 1.8 and 3.6 ms with the workers free and stayed at 0.8 ms with each
//! kept on a core of its own; during a login storm, 4.0-4.4 ms against
//! 1.5-1.8 ms.
//!
//! A worker kept on a core cannot leave it when something else wants that
//! core, so workers are kept only where the cores are the service's own: the
//! process may run on exactly as many cores as it has workers (a machine or
//! a container `cpuset` sized for it). Under a CPU quota smaller than the
//! machine, or with `AUTH_WORKERS` set to another count, they stay free.

use std::sync::atomic::{AtomicUsize, Ordering};

use clap::ValueEnum;

/// `AUTH_WORKER_AFFINITY`: whether each HTTP worker is kept on a core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorkerAffinity {
    /// One worker to a core when the process may run on exactly as many
    /// cores as there are workers; otherwise as `off`.
    Auto,
    /// The kernel's scheduler places the workers (for a machine shared with
    /// other busy processes).
    Off,
}

/// The cores the HTTP workers are kept on, the i-th worker on the i-th core;
/// none when they stay free.
#[derive(Debug, Default)]
pub(crate) struct Placement {
    cores: Vec<usize>,
    /// For a worker thread whose index its name does not give.
    next: AtomicUsize,
}

impl Placement {
    /// The placement for `workers` workers on the cores this process may run on.
    pub(crate) fn plan(setting: WorkerAffinity, workers: usize) -> Self {
        Self::choose(setting, workers, allowed_cores())
    }

    fn choose(setting: WorkerAffinity, workers: usize, allowed: Vec<usize>) -> Self {
        let own = setting == WorkerAffinity::Auto && workers > 1 && allowed.len() == workers;
        Self { cores: if own { allowed } else { Vec::new() }, next: AtomicUsize::new(0) }
    }

    /// The cores in worker order; empty when the workers stay free.
    pub(crate) fn cores(&self) -> &[usize] {
        &self.cores
    }

    /// Keeps the calling worker thread on its core. The worker's index comes
    /// from its thread's name (`actix-server worker N`), so a worker the
    /// server starts again takes its own core back; a thread named otherwise
    /// takes the next core in turn. Best effort: a refusal is logged and the
    /// worker stays free.
    pub(crate) fn keep_this_worker(&self) {
        if self.cores.is_empty() {
            return;
        }
        let index = std::thread::current()
            .name()
            .and_then(|name| name.rsplit(' ').next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| self.next.fetch_add(1, Ordering::Relaxed));
        let core = self.cores[index % self.cores.len()];
        if let Err(why) = keep_on(core) {
            tracing::warn!(core, error = %why, "an HTTP worker could not be kept on its core; it stays free");
        }
    }
}

/// The cores the calling thread (at start-up, the process) may run on.
#[cfg(target_os = "linux")]
fn allowed_cores() -> Vec<usize> {
    use nix::sched::{CpuSet, sched_getaffinity};
    match sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count()).filter(|&core| set.is_set(core).unwrap_or(false)).collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(not(target_os = "linux"))]
fn allowed_cores() -> Vec<usize> {
    Vec::new()
}

#[cfg(target_os = "linux")]
fn keep_on(core: usize) -> Result<(), String> {
    use nix::sched::{CpuSet, sched_setaffinity};
    let mut set = CpuSet::new();
    set.set(core).map_err(|e| e.to_string())?;
    sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(|e| e.to_string())
}

#[cfg(not(target_os = "linux"))]
fn keep_on(_core: usize) -> Result<(), String> {
    Err("only on Linux".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_are_kept_only_on_cores_that_are_exactly_theirs() {
        let chosen = |setting, workers, allowed: &[usize]| {
            Placement::choose(setting, workers, allowed.to_vec()).cores().to_vec()
        };
        assert_eq!(chosen(WorkerAffinity::Auto, 2, &[0, 1]), [0, 1]);
        assert_eq!(chosen(WorkerAffinity::Auto, 4, &[2, 3, 6, 7]), [2, 3, 6, 7], "a cpuset's own cores");
        assert!(chosen(WorkerAffinity::Off, 2, &[0, 1]).is_empty(), "off");
        assert!(
            chosen(WorkerAffinity::Auto, 2, &[0, 1, 2, 3]).is_empty(),
            "a quota of 2 on a 4-core machine"
        );
        assert!(chosen(WorkerAffinity::Auto, 3, &[0, 1]).is_empty(), "more workers than cores");
        assert!(chosen(WorkerAffinity::Auto, 1, &[0]).is_empty(), "one worker has nowhere else to go");
        assert!(chosen(WorkerAffinity::Auto, 2, &[]).is_empty(), "cores unknown");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_worker_is_kept_on_the_core_its_name_gives() {
        let allowed = allowed_cores();
        if allowed.len() < 2 {
            return;
        }
        let placement = Placement::choose(WorkerAffinity::Auto, allowed.len(), allowed.clone());
        let expected = allowed[1];
        let seen = std::thread::Builder::new()
            .name("actix-server worker 1".to_owned())
            .spawn(move || {
                placement.keep_this_worker();
                allowed_cores()
            })
            .expect("spawn")
            .join()
            .expect("join");
        assert_eq!(seen, [expected], "worker 1 on the second allowed core");
        assert!(allowed_cores().len() >= 2, "the calling thread stays free");
    }
}
