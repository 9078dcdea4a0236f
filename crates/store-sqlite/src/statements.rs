//! Which thread runs a connection's statements.
//!
//! diesel-async runs each SQLite statement on tokio's blocking pool: a hop to
//! another thread and back per statement. For reads that is what it should
//! be: they run side by side and some are long (a listing), so they must not
//! hold a runtime thread. For writes the hops are the cost: writes take turns
//! (see `Queries::writer`), and a refresh-token exchange (`BEGIN`, four
//! statements, `COMMIT`) made six hops while it held the turn, so on 2 cores
//! the store committed about 1 000 such exchanges a second, most of the time
//! in thread wake-ups. A write therefore runs its statements on the thread of
//! the task that holds the turn, one after the other, with no hop: one writer
//! at a time, so at most one runtime thread is busy with SQLite's writing.
//! (A write waits inside SQLite only for another process holding the file,
//! up to the busy timeout; the store's own checkpoints take the writers'
//! turn instead, see `wal.rs`.)

use std::error::Error;
use std::future::Future;
use std::pin::Pin;

use diesel_async::sync_connection_wrapper::SpawnBlocking;
use tokio::runtime::Handle;

tokio::task_local! {
    /// Set while a write runs: its statements run where they are issued.
    static ON_THIS_THREAD: ();
}

/// Runs `write` (a future that issues statements on connections of this
/// store) with its statements on the current thread.
pub(crate) async fn on_this_thread<F: Future>(write: F) -> F::Output {
    ON_THIS_THREAD.scope((), write).await
}

type Outcome<'a, R> =
    Pin<Box<dyn Future<Output = Result<R, Box<dyn Error + Send + Sync + 'static>>> + Send + 'a>>;

/// The connections' [`SpawnBlocking`]: the blocking pool of the runtime the
/// connection was opened on, or the current thread inside [`on_this_thread`].
pub(crate) struct Statements {
    runtime: Option<Handle>,
}

impl SpawnBlocking for Statements {
    fn spawn_blocking<'a, R>(&mut self, task: impl FnOnce() -> R + Send + 'static) -> Outcome<'a, R>
    where
        R: Send + 'static,
    {
        if ON_THIS_THREAD.try_with(|()| ()).is_ok() {
            let done = task();
            return Box::pin(std::future::ready(Ok(done)));
        }
        let Some(runtime) = self.runtime.clone().or_else(|| Handle::try_current().ok()) else {
            return Box::pin(std::future::ready(Err("no tokio runtime to run SQLite statements on".into())));
        };
        // The store runs every query as a task of its own, which is never
        // dropped half-way: the statement's thread is simply awaited.
        Box::pin(async move { runtime.spawn_blocking(task).await.map_err(Box::from) })
    }

    fn get_runtime() -> Self {
        Self { runtime: Handle::try_current().ok() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_of(statements: &mut Statements) -> Outcome<'static, std::thread::ThreadId> {
        statements.spawn_blocking(|| std::thread::current().id())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn statements_run_on_the_blocking_pool_unless_on_this_thread() {
        let mut statements = Statements::get_runtime();
        let here = std::thread::current().id();
        let pooled = thread_of(&mut statements).await.expect("the blocking pool runs it");
        assert_ne!(pooled, here, "a read hops to the blocking pool");
        let inline = on_this_thread(async { thread_of(&mut statements).await }).await;
        assert_eq!(inline.expect("runs"), here, "a write's statements run where they are issued");
    }

    #[test]
    fn without_a_runtime_a_statement_fails_rather_than_panics() {
        let mut statements = Statements::get_runtime();
        let outcome = futures_executor(thread_of(&mut statements));
        assert!(outcome.is_err());
    }

    /// Polls a future that completes without waking (`ready`) to its end.
    fn futures_executor<T>(mut future: Outcome<'static, T>) -> Result<T, Box<dyn Error + Send + Sync>> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => Err("pending".into()),
        }
    }
}
