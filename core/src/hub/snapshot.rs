//! `Hub::snapshot` and `Hub::restore` (feature `snapshot`): the hub as data,
//! and back. The work is in `crate::snapshot`; this file only takes the hub
//! apart and puts it together, field by field (a new field of `Hub` fails
//! to compile here until the snapshot carries it).

use std::time::Instant;

use super::Hub;
use crate::snapshot::{self, Parts, RestoreError, Restored, Snapshot, SnapshotError};

impl Hub {
    /// The complete state of the hub as a [`Snapshot`], with every instant
    /// as signed nanoseconds since `epoch`. Taken between inputs, after
    /// draining: [`SnapshotError::OutputsPending`] while actions or events
    /// wait to be polled. Also fails when an instant is more than about 292
    /// years from `epoch`, or a channel ended with an I/O error kind the
    /// snapshot cannot name. `O(slots + timer entries + offline entries)`.
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Config, Hub, SnapshotError};
    /// let mut hub = Hub::new(Config::default()).unwrap();
    /// let now = Instant::now();
    /// hub.accept(now, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// // `Opened` is still queued:
    /// let pending = SnapshotError::OutputsPending { actions: 0, events: 1 };
    /// assert_eq!(hub.snapshot(now).unwrap_err(), pending);
    /// let _ = hub.poll_event();
    /// let snapshot = hub.snapshot(now).unwrap();
    /// assert_eq!(snapshot.channels.len(), 1);
    /// ```
    pub fn snapshot(&self, epoch: Instant) -> Result<Snapshot, SnapshotError> {
        let Hub {
            config,
            table,
            timers,
            books,
            now,
            held_jump,
            gate,
        } = self;
        let parts = Parts {
            config,
            table,
            timers,
            books,
            stats: self.stats(),
            now: *now,
            held_jump: *held_jump,
            gate,
        };
        snapshot::take(parts, epoch)
    }

    /// The hub a [`Snapshot`] was taken of, with its instants placed
    /// relative to `epoch` (the snapshot's epoch, or another one to shift
    /// the hub in time). Fed the same inputs (shifted alike), it gives
    /// exactly the outcomes and outputs the original gave.
    ///
    /// Every field is checked first, and every relation the hub relies on
    /// (ids and slots, the free list, each channel's flags against its
    /// state, queues within the limits, the offline queue, the counts,
    /// the configuration): a corrupted or hostile snapshot is a
    /// [`RestoreError`] naming the channel or list and the field, never a
    /// hub that panics or breaks an invariant later.
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Config, Hub, RestoreError};
    /// let epoch = Instant::now();
    /// let hub = Hub::new(Config::default()).unwrap();
    /// let mut snapshot = hub.snapshot(epoch).unwrap();
    /// assert!(Hub::restore(&snapshot, epoch).is_ok());
    /// snapshot.version = 99;
    /// assert_eq!(Hub::restore(&snapshot, epoch).unwrap_err(), RestoreError::Version(99));
    /// ```
    pub fn restore(snapshot: &Snapshot, epoch: Instant) -> Result<Hub, RestoreError> {
        let Restored {
            config,
            table,
            timers,
            books,
            now,
            held_jump,
            gate,
        } = snapshot::restore(snapshot, epoch)?;
        Ok(Hub {
            config,
            table,
            timers,
            books,
            now,
            held_jump,
            gate,
        })
    }
}
