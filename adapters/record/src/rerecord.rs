//! Recording on a virtual clock, in memory: feed inputs with their times to
//! a hub restored from a header (or a fresh one) and get the recording
//! text with the outcomes and checksums the hub actually produced. The
//! shrinker writes its minimal trace this way, and tests and examples make
//! recordings with it.
//!
//! ```
//! use tether_core::Config;
//! use tether_core::testing::{Input, Outcome};
//! use tether_record::Recording;
//! use tether_record::rerecord::Rerecorder;
//!
//! let mut rec = Rerecorder::fresh(Config::default()).unwrap();
//! let peer = "127.0.0.1:4000".parse().unwrap();
//! let Outcome::Opened(id) = rec.feed(1_000, Input::Accept { peer }) else { panic!() };
//! rec.feed(2_000, Input::PeerEof { id });
//! let text = rec.finish();
//! let (recording, error) = Recording::parse(&text);
//! assert!(error.is_none());
//! assert_eq!(recording.segments[0].lines.len(), 2);
//! ```

use std::time::{Duration, Instant};

use tether_core::testing::{Input, Outcome};
use tether_core::{Action, Config, Event, Hub};

use crate::checksum::Checksum;
use crate::format::{Header, Line, VERSION, encode_header, encode_line};
use crate::replay::{at, catch};

/// A hub on a virtual clock that records every input it is fed. See the
/// [module docs](self).
pub struct Rerecorder {
    hub: Hub,
    base: Instant,
    checksum: Checksum,
    bytes: bool,
    out: Vec<u8>,
    actions: Vec<Action>,
    events: Vec<Event>,
    broken: bool,
}

impl std::fmt::Debug for Rerecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rerecorder")
            .field("bytes", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl Rerecorder {
    /// A recorder of a fresh hub with `config` (segment 0, bytes off).
    pub fn fresh(config: Config) -> Result<Rerecorder, String> {
        let base = Instant::now();
        let hub = Hub::new(config).map_err(|e| e.to_string())?;
        let snapshot = hub.snapshot(base).map_err(|e| e.to_string())?;
        let header = Header {
            version: VERSION,
            shard: snapshot.config().shard,
            segment: 0,
            started: Duration::ZERO,
            bytes: false,
            checksum: Checksum::ZERO,
            snapshot,
        };
        Rerecorder::from_header(&header)
    }

    /// A recorder starting from `header`'s hub (restored at a new epoch);
    /// the header is written as given.
    pub fn from_header(header: &Header) -> Result<Rerecorder, String> {
        let base = Instant::now();
        let hub = catch(|| Hub::restore(&header.snapshot, base))
            .map_err(|p| format!("restoring the snapshot panicked: {p}"))?
            .map_err(|e| format!("the snapshot does not restore: {e}"))?;
        let mut out = Vec::new();
        encode_header(header, &mut out).map_err(|e| e.to_string())?;
        Ok(Rerecorder {
            hub,
            base,
            checksum: header.checksum,
            bytes: header.bytes,
            out,
            actions: Vec::new(),
            events: Vec::new(),
            broken: false,
        })
    }

    /// Feeds `input` at `at_ns` and records its line; returns the outcome.
    /// The outputs are in [`Rerecorder::actions`] and
    /// [`Rerecorder::events`] until the next input. After the hub panicked
    /// (or for a time the clock cannot hold) nothing more is recorded and
    /// every outcome is `Ok`.
    pub fn feed(&mut self, at_ns: u64, input: Input) -> Outcome {
        self.actions.clear();
        self.events.clear();
        let Some(now) = at(self.base, at_ns).filter(|_| !self.broken) else {
            self.broken = true;
            return Outcome::Ok;
        };
        let (hub, actions, events) = (&mut self.hub, &mut self.actions, &mut self.events);
        let run = catch(|| {
            let outcome = input.apply(hub, now);
            actions.extend(std::iter::from_fn(|| hub.poll_action()));
            events.extend(std::iter::from_fn(|| hub.poll_event()));
            outcome
        });
        let Ok(outcome) = run else {
            self.broken = true;
            return Outcome::Ok;
        };
        for a in &self.actions {
            self.checksum.update_action(a);
        }
        for e in &self.events {
            self.checksum.update_event(e);
        }
        let line = Line {
            at_ns,
            input,
            outcome,
            checksum: self.checksum,
        };
        encode_line(&line, self.bytes, &mut self.out);
        outcome
    }

    /// The actions the last input emitted.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// The events the last input emitted.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Whether the hub has a deadline due at `at_ns` (`poll_timeout` at or
    /// before it).
    pub fn due(&mut self, at_ns: u64) -> bool {
        let now = at(self.base, at_ns);
        self.hub
            .poll_timeout()
            .is_some_and(|t| now.is_some_and(|n| t <= n))
    }

    /// A header for a segment `segment` starting now: the hub's snapshot
    /// (at this recorder's epoch) and the running checksum, as a rotating
    /// recorder writes it.
    pub fn header(&self, segment: u64) -> Result<Header, String> {
        let snapshot = self.hub.snapshot(self.base).map_err(|e| e.to_string())?;
        Ok(Header {
            version: VERSION,
            shard: snapshot.config().shard,
            segment,
            started: Duration::ZERO,
            bytes: self.bytes,
            checksum: self.checksum,
            snapshot,
        })
    }

    /// The hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The recording's text so far.
    pub fn text(&self) -> &[u8] {
        &self.out
    }

    /// The recording's text so far, taken.
    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// Records `inputs` (time in nanoseconds, input) fed to a fresh hub with
/// `config`; an invalid config gives an empty recording.
pub fn record_fresh(config: Config, inputs: impl IntoIterator<Item = (u64, Input)>) -> Vec<u8> {
    let Ok(mut rec) = Rerecorder::fresh(config) else {
        return Vec::new();
    };
    for (at_ns, input) in inputs {
        rec.feed(at_ns, input);
    }
    rec.finish()
}
