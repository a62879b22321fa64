//! Running the driver on a plain thread: a minimal executor whose only
//! timer is "park until the earliest deadline any future asked for".
//!
//! The blocking threads adapter runs the same async driver loop as the
//! async runtimes with [`block_on`] and [`ThreadSleep`]; no reactor, no
//! extra thread. Wake-ups come from the queues' wakers (which unpark this
//! thread) or the deadline.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Instant;

use crate::glue::Sleep;

thread_local! {
    /// The earliest deadline a future polled by [`block_on`] on this
    /// thread is waiting for.
    static NEXT_DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to completion on this thread, parking between polls until
/// woken or until the earliest [`ThreadSleep`] deadline.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        NEXT_DEADLINE.with(|d| d.set(None));
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        match NEXT_DEADLINE.with(Cell::get) {
            Some(at) => {
                let now = Instant::now();
                if at > now {
                    std::thread::park_timeout(at - now);
                }
            }
            // Spurious wake-ups only cost a poll.
            None => std::thread::park(),
        }
    }
}

/// [`Sleep`] for [`block_on`]: a future that is ready once its instant has
/// passed and otherwise tells the executor when to wake.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadSleep;

impl Sleep for ThreadSleep {
    fn sleep_until(&mut self, at: Instant) -> impl Future<Output = ()> + Send {
        std::future::poll_fn(move |_cx| {
            if Instant::now() >= at {
                return Poll::Ready(());
            }
            NEXT_DEADLINE.with(|d| {
                d.set(Some(d.get().map_or(at, |other| other.min(at))));
            });
            Poll::Pending
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sleeps_until_the_deadline_or_a_wake() {
        let start = Instant::now();
        block_on(ThreadSleep.sleep_until(start + Duration::from_millis(30)));
        assert!(start.elapsed() >= Duration::from_millis(30));

        let (tx, rx) = async_channel::bounded::<u32>(1);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            tx.send_blocking(7).unwrap();
        });
        let far = Instant::now() + Duration::from_secs(60);
        let got = block_on(futures_lite::future::or(
            async { rx.recv().await.ok() },
            async {
                ThreadSleep.sleep_until(far).await;
                None
            },
        ));
        assert_eq!(got, Some(7));
    }
}
