//! Deadlines for the rigs' blocking calls: a server that stops answering
//! fails the test naming the step that waited (`step kick #1.1: no answer
//! within 30s`), instead of hanging the test run.
//!
//! * [`within`] runs a future (a `Handle` call) on the calling thread until
//!   it completes or its deadline passes.
//! * [`join`] waits for a helper thread, as long as its own work is
//!   bounded plus a margin.
//! * [`connect`](crate::client::connect) bounds a client's connect, and
//!   its writes.

use std::fmt::Display;

use std::future::Future;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tether_adapter::runtime::Sleep as _;

/// How long one call to a server under test may take to answer. A send
/// waits for backpressure at most `Options::send_wait` (1 s by default)
/// before its channel's limits decide; every other call answers at once.
/// 30 s is far above any legitimate wait on a loaded two-core machine.
pub const STEP_LIMIT: Duration = Duration::from_secs(30);

/// Runs `future` on this thread until it completes; panics with
/// `step <step>: no answer within <limit>` if it has not after `limit`.
pub fn within<F: Future>(step: impl Display, limit: Duration, future: F) -> F::Output {
    block_until(future, Instant::now() + limit)
        .unwrap_or_else(|| panic!("step {step}: no answer within {limit:?}"))
}

/// Runs `future` on this thread until it completes (`Some`) or `deadline`
/// passes (`None`; the future is dropped, which cancels it). The layer's
/// own park-until-deadline executor runs it (`tether_adapter::runtime::block_on`).
pub fn block_until<F: Future>(future: F, deadline: Instant) -> Option<F::Output> {
    tether_adapter::runtime::block_on(futures_lite::future::or(
        async { Some(future.await) },
        async {
            tether_adapter::runtime::ThreadSleep
                .sleep_until(deadline)
                .await;
            None
        },
    ))
}

/// Waits for `thread` to end and returns what it returned; panics with
/// `step <step>: no answer within <limit>` if it is still running after
/// `limit`, and with the thread's own panic if it panicked.
pub fn join<T>(step: impl Display, thread: JoinHandle<T>, limit: Duration) -> T {
    let deadline = Instant::now() + limit;
    while !thread.is_finished() {
        assert!(
            Instant::now() < deadline,
            "step {step}: no answer within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::{Poll, Waker};

    #[test]
    fn a_future_woken_from_another_thread_completes() {
        use std::sync::Mutex;
        // (done, the waker to call when it is)
        let state: Arc<Mutex<(bool, Option<Waker>)>> = Arc::default();
        let other = state.clone();
        let finisher = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let mut state = other.lock().expect("state");
            state.0 = true;
            if let Some(waker) = state.1.take() {
                waker.wake();
            }
        });
        let out = within(
            "woken",
            Duration::from_secs(5),
            std::future::poll_fn(|cx| {
                let mut state = state.lock().expect("state");
                if state.0 {
                    Poll::Ready(7)
                } else {
                    state.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            }),
        );
        assert_eq!(out, 7);
        finisher.join().expect("finisher");
    }

    #[test]
    fn a_future_that_never_completes_fails_naming_its_step() {
        let started = Instant::now();
        let hung = std::panic::catch_unwind(|| {
            within(
                "kick #1.1",
                Duration::from_millis(50),
                std::future::pending::<()>(),
            )
        });
        let message = *hung
            .expect_err("a hang must fail")
            .downcast::<String>()
            .expect("text");
        assert_eq!(message, "step kick #1.1: no answer within 50ms");
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn a_thread_that_never_ends_fails_naming_its_step() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let stuck = std::thread::spawn(move || rx.recv().is_err());
        let hung = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            join("reader 2", stuck, Duration::from_millis(50))
        }));
        let message = *hung
            .expect_err("a hang must fail")
            .downcast::<String>()
            .expect("text");
        assert_eq!(message, "step reader 2: no answer within 50ms");
        drop(tx);
        let done = std::thread::spawn(|| 3);
        assert_eq!(join("done", done, Duration::from_secs(5)), 3);
    }
}
