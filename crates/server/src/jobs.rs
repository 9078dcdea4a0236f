//! The background jobs: each a named task that runs its work on a period,
//! all stopped through one path that waits for the work in progress.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// How long a job may take to finish its round once asked to stop.
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// The running jobs.
#[derive(Debug)]
pub(crate) struct Jobs {
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Jobs {
    pub(crate) fn new() -> Self {
        Self { stop: watch::Sender::new(false), tasks: Vec::new() }
    }

    /// Runs `work` now and then every `period` until [`stop`](Self::stop);
    /// a round that overruns its period delays the next rather than
    /// bunching them up. A round in progress when the stop comes finishes.
    pub(crate) fn every<F, R>(&mut self, name: &'static str, period: Duration, mut work: F)
    where
        F: FnMut() -> R + Send + 'static,
        R: Future<Output = ()> + Send,
    {
        let mut stop = self.stop.subscribe();
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(period);
            every.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    () = stopped(&mut stop) => break,
                    _ = every.tick() => {}
                }
                work().await;
            }
            tracing::debug!(job = name, "background job stopped");
        });
        self.tasks.push((name, task));
    }

    /// The names of the jobs, in the order they were started.
    pub(crate) fn names(&self) -> Vec<&'static str> {
        self.tasks.iter().map(|(name, _)| *name).collect()
    }

    /// Asks every job to stop and waits for each (at most [`STOP_WITHIN`]
    /// each); a job that does not stop in time is aborted and named in the log.
    pub(crate) async fn stop(self) {
        self.stop.send_replace(true);
        for (name, mut task) in self.tasks {
            match tokio::time::timeout(STOP_WITHIN, &mut task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(job = name, error = %e, "background job failed"),
                Err(_) => {
                    task.abort();
                    tracing::error!(job = name, "background job did not stop in time; aborted");
                }
            }
        }
    }
}

/// Resolves once the stop is asked for (or every sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::Jobs;

    #[tokio::test]
    async fn stop_waits_for_the_round_in_progress_and_no_round_starts_after_it() {
        let started = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let mut jobs = Jobs::new();
        let (s, f) = (Arc::clone(&started), Arc::clone(&finished));
        jobs.every("slow", Duration::from_millis(20), move || {
            let (s, f) = (Arc::clone(&s), Arc::clone(&f));
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                f.fetch_add(1, Ordering::SeqCst);
            }
        });
        assert_eq!(jobs.names(), ["slow"]);
        // The first round starts at once.
        for _ in 0..200 {
            if started.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(started.load(Ordering::SeqCst), 1);
        jobs.stop().await;
        assert_eq!(finished.load(Ordering::SeqCst), 1, "the round in progress finished before stop returned");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(started.load(Ordering::SeqCst), 1, "no round after the stop");
    }

    #[tokio::test]
    async fn a_job_runs_again_on_its_period() {
        let rounds = Arc::new(AtomicUsize::new(0));
        let mut jobs = Jobs::new();
        let counted = Arc::clone(&rounds);
        jobs.every("quick", Duration::from_millis(10), move || {
            let counted = Arc::clone(&counted);
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        for _ in 0..500 {
            if rounds.load(Ordering::SeqCst) >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(rounds.load(Ordering::SeqCst) >= 3);
        jobs.stop().await;
    }
}
