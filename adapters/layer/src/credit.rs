//! A connection's read-ahead credit (docs/design.md §5.2): at most
//! [`READ_AHEAD`] read chunks of one connection wait for the driver.
//!
//! One atomic counter and one `event_listener::Event` behind one `Arc`,
//! instead of a bounded channel per connection: a channel cost each
//! connection a queue buffer and three lazily made wait lists on its
//! first message, about nine heap allocations in all, measurable at
//! connection churn; this costs one. A reader only makes a listener when
//! it actually has to wait, which a connection that sends a line and
//! leaves never does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use event_listener::{Event, EventListener, Listener as _};

use crate::input::READ_AHEAD;

/// Set once the driver's end is gone: waiting for credit would be forever.
const CLOSED: usize = 1 << (usize::BITS - 1);
/// Set by a reader about to wait: only then does the driver notify. An
/// `Event` allocates its wait list on its first notify, so notifying
/// unconditionally would cost every connection an allocation.
const WAITING: usize = 1 << (usize::BITS - 2);
/// The count of chunks posted and not yet taken.
const COUNT: usize = WAITING - 1;

#[derive(Debug, Default)]
struct Shared {
    /// Chunks posted and not yet taken ([`COUNT`]), plus [`WAITING`] and
    /// [`CLOSED`]. Readers and the driver change it only by read-modify-
    /// writes, so a reader's "I wait" and the driver's "I took one" are
    /// ordered: either the driver sees `WAITING` (set after the reader's
    /// listener was registered) and notifies, or the reader sees the freed
    /// credit and takes it.
    state: AtomicUsize,
    /// Notified when a chunk is taken or the driver's end goes, if a
    /// reader waits.
    freed: Event,
}

/// The driver's end has gone (the connection or the driver ended).
#[derive(Debug)]
pub(crate) struct Closed;

/// The reader's end: takes a credit before posting a chunk.
#[derive(Debug, Clone)]
pub(crate) struct Credit(Arc<Shared>);

/// The driver's end: gives a credit back for each chunk it takes, and
/// closes the credit when dropped, waking a reader that waits for it.
#[derive(Debug)]
pub(crate) struct ReadAhead(Arc<Shared>);

/// A fresh credit of [`READ_AHEAD`] chunks for one connection.
pub(crate) fn read_ahead() -> (Credit, ReadAhead) {
    let shared = Arc::new(Shared::default());
    (Credit(shared.clone()), ReadAhead(shared))
}

/// What one attempt at taking a credit found.
enum Take {
    Taken,
    /// None free: `WAITING` was set if asked for.
    Full,
}

impl Shared {
    /// Takes one credit if one is free; otherwise sets `WAITING` if `wait`.
    fn try_take(&self, wait: bool) -> Result<Take, Closed> {
        let mut now = self.state.load(Ordering::Acquire);
        loop {
            if now & CLOSED != 0 {
                return Err(Closed);
            }
            let (next, take) = if now & COUNT < READ_AHEAD {
                ((now + 1) & !WAITING, Take::Taken)
            } else if wait {
                (now | WAITING, Take::Full)
            } else {
                return Ok(Take::Full);
            };
            match self
                .state
                .compare_exchange_weak(now, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(take),
                Err(actual) => now = actual,
            }
        }
    }
}

impl Credit {
    /// Takes a credit if one is free (`None`); otherwise a listener to wait
    /// on before trying again. Listen first, then say so: the driver
    /// notifies only a reader that said so, and only after it did.
    fn take_or_listen(&self) -> Result<Option<EventListener>, Closed> {
        if let Take::Taken = self.0.try_take(false)? {
            return Ok(None);
        }
        let freed = self.0.freed.listen();
        match self.0.try_take(true)? {
            Take::Taken => Ok(None),
            Take::Full => Ok(Some(freed)),
        }
    }

    /// Waits until fewer than [`READ_AHEAD`] chunks wait, and takes a
    /// credit.
    pub(crate) async fn take(&self) -> Result<(), Closed> {
        while let Some(freed) = self.take_or_listen()? {
            freed.await;
        }
        Ok(())
    }

    /// [`take`](Self::take), blocking the thread.
    pub(crate) fn take_blocking(&self) -> Result<(), Closed> {
        while let Some(freed) = self.take_or_listen()? {
            freed.wait();
        }
        Ok(())
    }
}

impl ReadAhead {
    /// The driver took one chunk: its reader may post another. A chunk
    /// posted without credit (none is outstanding) changes nothing.
    /// Whether a reader was waiting for it (and is now woken).
    pub(crate) fn taken(&self) -> bool {
        let took = self
            .0
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                (state & COUNT > 0).then(|| (state - 1) & !WAITING)
            });
        let waited = took.is_ok_and(|before| before & WAITING != 0);
        if waited {
            self.0.freed.notify(1);
        }
        waited
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        let before = self.0.state.fetch_or(CLOSED, Ordering::AcqRel);
        if before & WAITING != 0 {
            self.0.freed.notify(usize::MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_read_ahead_chunks_wait() {
        let (credit, driver) = read_ahead();
        for _ in 0..READ_AHEAD {
            assert!(matches!(credit.0.try_take(false).unwrap(), Take::Taken));
        }
        assert!(matches!(credit.0.try_take(false).unwrap(), Take::Full));
        assert!(!driver.taken(), "no reader said it waits");
        assert!(matches!(credit.0.try_take(false).unwrap(), Take::Taken));
        assert!(matches!(credit.0.try_take(false).unwrap(), Take::Full));
    }

    /// The driver learns that a reader waited (it lets the reader post
    /// again before writing, `Driver::run`), once per wait.
    #[test]
    fn taken_says_whether_a_reader_waited() {
        let (credit, driver) = read_ahead();
        for _ in 0..READ_AHEAD {
            assert!(matches!(credit.0.try_take(true).unwrap(), Take::Taken));
        }
        assert!(matches!(credit.0.try_take(true).unwrap(), Take::Full));
        assert!(driver.taken(), "the reader said it waits");
        assert!(!driver.taken(), "the wait was answered");
        assert!(matches!(credit.0.try_take(true).unwrap(), Take::Taken));
    }

    #[test]
    fn taking_more_than_was_posted_frees_nothing_extra() {
        let (credit, driver) = read_ahead();
        driver.taken();
        driver.taken();
        for _ in 0..READ_AHEAD {
            assert!(matches!(credit.0.try_take(false).unwrap(), Take::Taken));
        }
        assert!(matches!(credit.0.try_take(false).unwrap(), Take::Full));
    }

    #[test]
    fn a_waiting_reader_wakes_when_a_chunk_is_taken() {
        let (credit, driver) = read_ahead();
        for _ in 0..READ_AHEAD {
            credit.take_blocking().unwrap();
        }
        let waiter = std::thread::spawn(move || credit.take_blocking());
        std::thread::sleep(std::time::Duration::from_millis(20));
        driver.taken();
        waiter.join().unwrap().unwrap();
    }

    #[test]
    fn a_waiting_reader_wakes_when_the_driver_goes() {
        let (credit, driver) = read_ahead();
        for _ in 0..READ_AHEAD {
            futures_lite::future::block_on(credit.take()).unwrap();
        }
        let waiter = std::thread::spawn(move || futures_lite::future::block_on(credit.take()));
        drop(driver);
        assert!(waiter.join().unwrap().is_err());
    }
}
