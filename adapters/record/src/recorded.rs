//! [`RecordedHub`]: a [`Hub`] that records every input it is fed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::Deref;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tether_core::testing::{Input, Outcome, Rejection};
use tether_core::{
    AcceptError, Action, BroadcastReport, ChannelId, Event, Hub, IdError, InputError, KickError,
    KickMode, SendError,
};

use crate::checksum::Checksum;
use crate::format::Line;
use crate::writer::{RecordError, RecordOptions, RecordStats, SegmentWriter};

#[cfg(test)]
mod tests;

/// A [`Hub`] with an optional flight recorder.
///
/// It has one method per hub input — the same name, signature and result
/// as [`Hub`]'s — plus [`poll_action`](Self::poll_action),
/// [`poll_event`](Self::poll_event) and [`poll_timeout`](Self::poll_timeout);
/// every read-only query goes to the hub through `Deref`. An adapter owns
/// one instead of a `Hub` and changes nothing else. (`kick_with_reason`
/// and `broadcast_to` are not offered: the recording format has no line
/// for them.)
///
/// Without a recorder ([`RecordedHub::new`]) every call is forwarded: the
/// cost is one branch. With one ([`RecordedHub::recording`]), after each
/// input it drains the hub's actions and events into its own queues
/// (which `poll_*` then serve, in the same order), adds them to the
/// running [`Checksum`], and appends the input line — its time as
/// nanoseconds since `epoch`, its arguments, its outcome, the checksum —
/// to the shard's segment file. Before a line, if the segment is full, it
/// snapshots the hub (drained at that point by construction) and starts
/// the next segment with it.
///
/// Writing is buffered (64 KiB): [`flush`](Self::flush) it when idle,
/// [`finish`](Self::finish) it at the end (dropping also flushes). An I/O
/// error stops the recording and nothing else: the hub carries on, the
/// error is kept for [`take_error`](Self::take_error) (once) and counted in
/// [`record_stats`](Self::record_stats).
///
/// ```
/// use std::time::{Duration, Instant};
/// use tether_core::{Bytes, Config, Hub};
/// use tether_record::{RecordOptions, RecordedHub, Recording};
///
/// let dir = std::env::temp_dir().join(format!("tether-record-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("shard.rec");
///
/// let epoch = Instant::now(); // one epoch for every shard of the server
/// let hub = Hub::new(Config::default()).unwrap();
/// let mut hub = RecordedHub::recording(hub, epoch, RecordOptions::new(&path)).unwrap();
/// let id = hub.accept(epoch, "127.0.0.1:4000".parse().unwrap()).unwrap();
/// hub.attach(epoch, id).unwrap();
/// hub.send(epoch + Duration::from_millis(1), id, Bytes::from_static(b"hi\n")).unwrap();
/// while hub.poll_action().is_some() {} // served from the recorder's queues
/// while hub.poll_event().is_some() {}
/// assert_eq!(hub.live(), 1); // queries go to the hub
/// hub.finish().unwrap();
///
/// let (recording, error) = Recording::read(&path).unwrap();
/// assert!(error.is_none());
/// let lines = &recording.segments[0].lines;
/// assert_eq!(lines.len(), 3);
/// assert_eq!(lines[2].at_ns, 1_000_000);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug)]
pub struct RecordedHub {
    hub: Hub,
    rec: Option<Box<Recorder>>,
}

/// The recording side of a [`RecordedHub`].
#[derive(Debug)]
struct Recorder {
    writer: SegmentWriter,
    epoch: Instant,
    checksum: Checksum,
    /// Outputs drained from the hub, not yet polled.
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
    /// Recording: false once finished or stopped by an error.
    active: bool,
    error: Option<RecordError>,
}

impl Deref for RecordedHub {
    type Target = Hub;

    fn deref(&self) -> &Hub {
        &self.hub
    }
}

impl From<Hub> for RecordedHub {
    fn from(hub: Hub) -> Self {
        RecordedHub::new(hub)
    }
}

/// The body of every input method: forward when not recording; else make
/// the call between the recorder's `before` and `after`.
macro_rules! input {
    ($self:ident, $now:expr, $call:expr, $input:expr, $outcome:expr) => {{
        match &mut $self.rec {
            Some(rec) if rec.active => {
                let input = $input;
                rec.before(&$self.hub);
                #[allow(clippy::redundant_closure_call)]
                let result = $call(&mut $self.hub);
                #[allow(clippy::redundant_closure_call)]
                let outcome = $outcome(&result);
                rec.after(&mut $self.hub, $now, input, outcome);
                result
            }
            _ => $call(&mut $self.hub),
        }
    }};
}

fn of<E: Copy + Into<Rejection>>(r: &Result<(), E>) -> Outcome {
    Outcome::of(*r)
}

impl RecordedHub {
    /// A hub that records nothing: every call is forwarded.
    pub fn new(hub: Hub) -> Self {
        RecordedHub { hub, rec: None }
    }

    /// A hub that records to `options.path` (one shard's file: see
    /// [`RecordOptions::for_shard`]), with times as nanoseconds since
    /// `epoch` — one epoch for every shard of a server, no later than any
    /// `now` it will be fed (earlier times are recorded as the epoch).
    ///
    /// The first segment starts now, with a snapshot of `hub`: outputs it
    /// still holds are moved to this hub's queues first (they are served
    /// by `poll_*` as usual, and are not part of the recording). Fails if
    /// the options are invalid or the file cannot be created and written.
    pub fn recording(
        mut hub: Hub,
        epoch: Instant,
        options: RecordOptions,
    ) -> Result<Self, RecordError> {
        let mut writer = SegmentWriter::new(options, hub.config().shard)?;
        let mut actions = VecDeque::with_capacity(64);
        let mut events = VecDeque::with_capacity(64);
        actions.extend(std::iter::from_fn(|| hub.poll_action()));
        events.extend(std::iter::from_fn(|| hub.poll_event()));
        writer.start_segment(hub.snapshot(epoch)?, Checksum::ZERO)?;
        Ok(RecordedHub {
            hub,
            rec: Some(Box::new(Recorder {
                writer,
                epoch,
                checksum: Checksum::ZERO,
                actions,
                events,
                active: true,
                error: None,
            })),
        })
    }

    /// Whether inputs are being recorded (false without a recorder, once
    /// finished, and once an error stopped it).
    pub fn is_recording(&self) -> bool {
        self.rec.as_ref().is_some_and(|r| r.active)
    }

    /// The recorder's counters, if there is a recorder.
    pub fn record_stats(&self) -> Option<RecordStats> {
        self.rec.as_ref().map(|r| r.writer.stats())
    }

    /// The running output checksum, if there is a recorder.
    pub fn checksum(&self) -> Option<Checksum> {
        self.rec.as_ref().map(|r| r.checksum)
    }

    /// The error that stopped the recording, once (later calls: `None`).
    pub fn take_error(&mut self) -> Option<RecordError> {
        self.rec.as_mut().and_then(|r| r.error.take())
    }

    /// Writes out what is buffered. Returns the error that stopped the
    /// recording — this flush's, or an earlier input's not taken yet — once
    /// (it is then not kept for [`take_error`](Self::take_error)).
    pub fn flush(&mut self) -> Result<(), RecordError> {
        match &mut self.rec {
            Some(rec) => {
                if let Some(e) = rec.error.take() {
                    return Err(e);
                }
                let result = rec.writer.flush();
                rec.active &= !rec.writer.is_stopped();
                result
            }
            None => Ok(()),
        }
    }

    /// Flushes and closes the recording; later inputs are forwarded
    /// unrecorded. Returns the error that stopped it earlier, if not taken
    /// yet, or the final flush's.
    pub fn finish(&mut self) -> Result<(), RecordError> {
        match &mut self.rec {
            Some(rec) => {
                rec.active = false;
                let result = rec.writer.finish();
                match rec.error.take() {
                    Some(e) => Err(e),
                    None => result,
                }
            }
            None => Ok(()),
        }
    }

    /// The hub itself (its outputs not yet polled from this wrapper are
    /// lost: drain first).
    pub fn into_inner(self) -> Hub {
        self.hub
    }

    /// The next action: the recorder's queue first, then the hub's.
    #[inline]
    pub fn poll_action(&mut self) -> Option<Action> {
        if let Some(rec) = &mut self.rec
            && let Some(action) = rec.actions.pop_front()
        {
            return Some(action);
        }
        self.hub.poll_action()
    }

    /// The next event: the recorder's queue first, then the hub's.
    #[inline]
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(rec) = &mut self.rec
            && let Some(event) = rec.events.pop_front()
        {
            return Some(event);
        }
        self.hub.poll_event()
    }

    /// [`Hub::poll_timeout`] (not an input: not recorded).
    #[inline]
    #[must_use]
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.hub.poll_timeout()
    }

    /// [`Hub::accept`], recorded as `accept <peer>`.
    pub fn accept(&mut self, now: Instant, peer: SocketAddr) -> Result<ChannelId, AcceptError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.accept(now, peer),
            Input::Accept { peer },
            |r: &Result<ChannelId, AcceptError>| match r {
                Ok(id) => Outcome::Opened(*id),
                Err(e) => Outcome::Rejected((*e).into()),
            }
        )
    }

    /// [`Hub::handle_received`], recorded as `received <id> <len> [<hex>]`.
    pub fn handle_received(
        &mut self,
        now: Instant,
        id: ChannelId,
        data: Bytes,
    ) -> Result<(), InputError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.handle_received(now, id, data),
            Input::Received {
                id,
                data: data.clone()
            },
            of
        )
    }

    /// [`Hub::handle_peer_eof`], recorded as `eof <id>`.
    pub fn handle_peer_eof(&mut self, now: Instant, id: ChannelId) -> Result<(), InputError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.handle_peer_eof(now, id),
            Input::PeerEof { id },
            of
        )
    }

    /// [`Hub::handle_io_error`], recorded as `io-error <id> <kind>`.
    pub fn handle_io_error(
        &mut self,
        now: Instant,
        id: ChannelId,
        kind: std::io::ErrorKind,
    ) -> Result<(), InputError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.handle_io_error(now, id, kind),
            Input::IoError { id, kind },
            of
        )
    }

    /// [`Hub::handle_written`], recorded as `written <id> <n>`.
    pub fn handle_written(
        &mut self,
        now: Instant,
        id: ChannelId,
        n: usize,
    ) -> Result<(), InputError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.handle_written(now, id, n),
            Input::Written { id, n },
            of
        )
    }

    /// [`Hub::attach`], recorded as `attach <id>`.
    pub fn attach(&mut self, now: Instant, id: ChannelId) -> Result<(), InputError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.attach(now, id),
            Input::Attach { id },
            of
        )
    }

    /// [`Hub::detach`], recorded as `detach <id>`.
    pub fn detach(&mut self, now: Instant, id: ChannelId) -> Result<(), InputError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.detach(now, id),
            Input::Detach { id },
            of
        )
    }

    /// [`Hub::handle_closed`], recorded as `closed <id>`.
    pub fn handle_closed(&mut self, now: Instant, id: ChannelId) -> Result<(), InputError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.handle_closed(now, id),
            Input::Closed { id },
            of
        )
    }

    /// [`Hub::handle_timeout`], recorded as `timeout`. Call it only when
    /// a deadline is due (`poll_timeout() <= now`) to keep recordings
    /// small: an early call is harmless but is a line.
    pub fn handle_timeout(&mut self, now: Instant) {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.handle_timeout(now),
            Input::Timeout,
            |_: &()| Outcome::Ok
        )
    }

    /// [`Hub::send`], recorded as `send <id> <len> [<hex>]`.
    pub fn send(&mut self, now: Instant, id: ChannelId, data: Bytes) -> Result<(), SendError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.send(now, id, data),
            Input::Send {
                id,
                data: data.clone()
            },
            of
        )
    }

    /// [`Hub::broadcast`], recorded as `broadcast <len> [<hex>]`.
    pub fn broadcast(&mut self, now: Instant, data: Bytes) -> BroadcastReport {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.broadcast(now, data),
            Input::Broadcast { data: data.clone() },
            |r: &BroadcastReport| Outcome::Broadcast {
                sent: r.sent,
                refused: r.refused.len(),
            }
        )
    }

    /// [`Hub::kick`], recorded as `kick <id> graceful|abort <code>`.
    pub fn kick(
        &mut self,
        now: Instant,
        id: ChannelId,
        mode: KickMode,
        code: u32,
    ) -> Result<(), KickError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.kick(now, id, mode, code),
            Input::Kick { id, mode, code },
            of
        )
    }

    /// [`Hub::kick_default`], recorded as `kick-default <id>`.
    pub fn kick_default(&mut self, now: Instant, id: ChannelId) -> Result<(), KickError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.kick_default(now, id),
            Input::KickDefault { id },
            of
        )
    }

    /// [`Hub::authenticate`], recorded as `auth <id>`.
    pub fn authenticate(&mut self, now: Instant, id: ChannelId) -> Result<(), IdError> {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.authenticate(now, id),
            Input::Authenticate { id },
            of
        )
    }

    /// [`Hub::shutdown`], recorded as `shutdown <grace>`.
    pub fn shutdown(&mut self, now: Instant, grace: Duration) {
        input!(
            self,
            now,
            |hub: &mut Hub| hub.shutdown(now, grace),
            Input::Shutdown { grace },
            |_: &()| Outcome::Ok
        )
    }
}

impl Recorder {
    /// Before an input: start a new segment if this one is full. The hub
    /// was drained after the previous input, so it can be snapshot.
    #[inline]
    fn before(&mut self, hub: &Hub) {
        if self.writer.needs_rotation() {
            self.rotate(hub);
        }
    }

    #[cold]
    fn rotate(&mut self, hub: &Hub) {
        let result = match hub.snapshot(self.epoch) {
            Ok(snapshot) => self.writer.start_segment(snapshot, self.checksum),
            Err(e) => {
                // The writer stops on its own errors; this one is the hub's.
                self.writer.stop_on_error();
                Err(e.into())
            }
        };
        self.fail(result);
    }

    /// After an input: drain the hub, checksum its outputs, write the line.
    #[inline]
    fn after(&mut self, hub: &mut Hub, now: Instant, input: Input, outcome: Outcome) {
        while let Some(action) = hub.poll_action() {
            self.checksum.update_action(&action);
            self.actions.push_back(action);
        }
        while let Some(event) = hub.poll_event() {
            self.checksum.update_event(&event);
            self.events.push_back(event);
        }
        if !self.active {
            return; // stopped by `before`
        }
        let at_ns =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        let line = Line {
            at_ns,
            input,
            outcome,
            checksum: self.checksum,
        };
        let result = self.writer.write_line(&line);
        self.fail(result);
    }

    fn fail(&mut self, result: Result<(), RecordError>) {
        if let Err(e) = result {
            self.active = false;
            if self.error.is_none() {
                self.error = Some(e);
            }
        }
    }
}
