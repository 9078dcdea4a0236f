//! A fixed set of threads for CPU-heavy jobs, with a bounded queue.
//!
//! argon2 must not run on the async workers (it would stall every other
//! request) nor on tokio's shared blocking pool (hundreds of threads, each
//! allocating 19 MiB under a login storm). Here at most `threads` jobs run at
//! once and at most `queue` wait; beyond that a job is refused at once, so the
//! caller can answer 503 instead of piling up memory and latency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread;

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Told how long each job waited in the queue before a thread took it.
pub type WaitObserver = Arc<dyn Fn(std::time::Duration) + Send + Sync>;

/// Why a job did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PoolError {
    /// The queue is full.
    Saturated,
    /// The worker died before answering (a panic inside the job).
    Lost,
}

pub(crate) struct WorkerPool {
    sender: SyncSender<Job>,
    waiting: Arc<AtomicUsize>,
    observer: Option<WaitObserver>,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool").field("waiting", &self.waiting).finish_non_exhaustive()
    }
}

impl WorkerPool {
    /// Starts `threads` workers (at least one) behind a queue of `queue` slots.
    pub(crate) fn new(name: &str, threads: usize, queue: usize) -> std::io::Result<Self> {
        let (sender, receiver) = sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..threads.max(1) {
            let receiver = Arc::clone(&receiver);
            thread::Builder::new().name(format!("{name}-{index}")).spawn(move || {
                yield_to_requests();
                work(&receiver);
            })?;
        }
        Ok(Self { sender, waiting: Arc::new(AtomicUsize::new(0)), observer: None })
    }

    pub(crate) fn observe_waits(&mut self, observer: WaitObserver) {
        self.observer = Some(observer);
    }

    /// Runs `job` on a worker and waits for its result without blocking the caller's thread.
    pub(crate) async fn run<T, F>(&self, job: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let waiting = Arc::clone(&self.waiting);
        waiting.fetch_add(1, Ordering::Relaxed);
        let (queued_at, observer) = (std::time::Instant::now(), self.observer.clone());
        let boxed: Job = Box::new(move || {
            waiting.fetch_sub(1, Ordering::Relaxed);
            if let Some(observer) = observer {
                observer(queued_at.elapsed());
            }
            // A caller that gave up while its job waited (its future was
            // dropped: a timeout around the call, an embedding application
            // cancelling it, a shutdown) no longer needs it, and abandoned
            // calls must not keep the threads from the live ones. actix-web
            // does not drop a handler when its client hangs up, so over HTTP
            // such a login still runs to the end.
            if tx.is_closed() {
                return;
            }
            // The receiver may go away while the job runs: nothing to do then.
            let _ = tx.send(job());
        });
        match self.sender.try_send(boxed) {
            Ok(()) => rx.await.map_err(|_| PoolError::Lost),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                Err(PoolError::Saturated)
            }
        }
    }

    /// Jobs queued and not yet started.
    pub(crate) fn queued(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

/// Puts this thread in the idle scheduling class (`SCHED_IDLE` on Linux): it
/// runs on whatever CPU nothing else wants, and any request thread that wakes
/// up (a token check needing microseconds) preempts it at once instead of
/// waiting for the end of its slice, so a login storm does not stall the rest
/// of the API. On an otherwise idle machine hashing still gets every cycle.
/// When requests alone keep every core busy, logins wait in the bounded queue
/// and overflow as 503s rather than slowing down every token check. Elsewhere
/// than Linux, the lowest normal priority. Best effort.
fn yield_to_requests() {
    #[cfg(target_os = "linux")]
    let lowered = {
        use thread_priority::unix::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id,
        };
        set_thread_priority_and_policy(
            thread_native_id(),
            thread_priority::ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
        )
    };
    #[cfg(not(target_os = "linux"))]
    let lowered = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min);
    if let Err(why) = lowered.map_err(|e| format!("{e:?}")) {
        tracing::debug!(error = %why, "hashing threads keep the normal priority");
    }
}

fn work(receiver: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let Ok(receiver) = receiver.lock() else { return };
            match receiver.recv() {
                Ok(job) => job,
                // Every sender is gone: the pool was dropped.
                Err(_) => return,
            }
        };
        job();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;
    use std::time::Duration;

    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn workers_run_in_the_idle_scheduling_class() {
        let pool = WorkerPool::new("idle-test", 1, 1).unwrap();
        let stat = pool.run(|| std::fs::read_to_string("/proc/thread-self/stat").unwrap()).await.unwrap();
        // Fields 3 onwards follow the command's closing parenthesis; field 41
        // is the scheduling policy (5 is SCHED_IDLE, 0 the normal one).
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        assert_eq!(fields[41 - 3], "5", "policy of a hashing thread");
        let here = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let fields: Vec<&str> = here.rsplit_once(')').unwrap().1.split_whitespace().collect();
        assert_eq!(fields[41 - 3], "0", "the caller's policy is untouched");
    }

    #[tokio::test]
    async fn runs_jobs_and_returns_results() {
        let pool = WorkerPool::new("test", 2, 4).unwrap();
        assert_eq!(pool.run(|| 40 + 2).await, Ok(42));
    }

    #[tokio::test]
    async fn skips_jobs_whose_caller_gave_up_while_they_waited() {
        let pool = Arc::new(WorkerPool::new("test", 1, 2).unwrap());
        let gate = Arc::new(Barrier::new(2));
        let started = Arc::new(AtomicUsize::new(0));
        // Occupies the only worker until the gate opens.
        let blocker = {
            let (pool, gate, started) = (Arc::clone(&pool), Arc::clone(&gate), Arc::clone(&started));
            tokio::spawn(async move {
                pool.run(move || {
                    started.store(1, Ordering::SeqCst);
                    gate.wait();
                })
                .await
            })
        };
        while started.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let ran = Arc::new(AtomicUsize::new(0));
        let abandoned = {
            let (pool, ran) = (Arc::clone(&pool), Arc::clone(&ran));
            tokio::spawn(async move { pool.run(move || ran.fetch_add(1, Ordering::SeqCst)).await })
        };
        while pool.queued() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The caller goes away while its job is still queued behind the blocker.
        abandoned.abort();
        assert!(abandoned.await.unwrap_err().is_cancelled());
        gate.wait();
        assert!(blocker.await.unwrap().is_ok());
        // Jobs run in order: once this one ran, the abandoned one was dealt with.
        let counted = Arc::clone(&ran);
        assert_eq!(pool.run(move || counted.load(Ordering::SeqCst)).await, Ok(0));
        assert_eq!(ran.load(Ordering::SeqCst), 0, "the abandoned job never ran");
    }

    #[tokio::test]
    async fn refuses_at_once_when_the_queue_is_full() {
        let pool = Arc::new(WorkerPool::new("test", 1, 1).unwrap());
        let gate = Arc::new(Barrier::new(2));
        // Occupies the only worker until the gate opens.
        let blocker = {
            let (pool, gate) = (Arc::clone(&pool), Arc::clone(&gate));
            tokio::spawn(async move { pool.run(move || gate.wait()).await })
        };
        while pool.queued() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Fills the single queue slot.
        let queued = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move { pool.run(|| 1).await })
        };
        while pool.queued() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(pool.run(|| 2).await, Err(PoolError::Saturated));
        gate.wait();
        assert!(blocker.await.unwrap().is_ok());
        assert_eq!(queued.await.unwrap(), Ok(1));
    }
}
