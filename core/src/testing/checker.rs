//! The invariant checker: watches one [`Hub`]'s inputs and outputs and
//! checks the invariants of docs/design.md §4 after every step against a small
//! reference model of its own.
//!
//! A *step* is one input call, its result, and every action and event it
//! emitted (plus, optionally, `poll_timeout`). The model predicts the result
//! and the exact per-channel outputs; any difference is a [`Violation`]
//! naming the invariant it breaks. Outputs of different channels may come in
//! any order; within a channel the order is checked.
//!
//! The easy way is [`Checker::step`], which makes the call, drains the hub
//! and checks:
//!
//! ```
//! use std::time::Instant;
//! use tether_core::{Action, Config, Event, Hub, KickMode};
//! use tether_core::testing::{Checker, Input, Outcome};
//!
//! let config = Config::default();
//! let mut hub = Hub::new(config.clone()).unwrap();
//! let mut checker = Checker::new(&config);
//! let (mut actions, mut events) = (Vec::new(), Vec::new());
//! let now = Instant::now();
//! let peer = "127.0.0.1:4000".parse().unwrap();
//!
//! let opened = checker.step(&mut hub, now, &Input::Accept { peer }, &mut actions, &mut events);
//! let Ok(Outcome::Opened(id)) = opened else { panic!("{opened:?}") };
//! let kick = Input::Kick { id, mode: KickMode::Abort, code: 3 };
//! checker.step(&mut hub, now, &kick, &mut actions, &mut events).unwrap();
//! assert!(actions.contains(&Action::Abort { id }));
//! // The same id again: the hub must answer `AlreadyClosing`, and does.
//! checker.step(&mut hub, now, &kick, &mut actions, &mut events).unwrap();
//! ```
//!
//! An adapter under test that calls the hub itself feeds the checker by hand
//! instead: [`Checker::input`] with the call and its [`Outcome`], then
//! [`Checker::action`] / [`Checker::event`] for each output it drained,
//! then [`Checker::finish_step`].
//!
//! Cost: `O(outputs)` per step, plus `O(live channels)` for timeouts,
//! broadcasts, shutdown and the `poll_timeout` check — meant for tests with
//! up to a few thousand channels.

use std::fmt;
use std::time::Instant;

use super::model::Model;
use crate::{Action, Event, Hub};

mod invariants;
#[cfg(test)]
mod tests;

use invariants::{action_invariant, diff, event_invariant, outcome_invariant};

pub use crate::input::{Input, Outcome, Rejection};

/// A broken invariant: which step, which invariant (1–12 of docs/design.md §4),
/// and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The step (0-based count of inputs checked) where it was detected.
    pub step: u64,
    /// The invariant's number in docs/design.md §4.
    pub invariant: u8,
    /// What was expected and what happened.
    pub message: String,
}

impl Violation {
    /// A violation of `invariant` at `step` (for adapters' own checks).
    pub fn new(step: u64, invariant: u8, message: impl Into<String>) -> Violation {
        Violation {
            step,
            invariant,
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant {} violated at step {}: {}",
            self.invariant, self.step, self.message
        )
    }
}

impl std::error::Error for Violation {}

/// Checks one hub's inputs and outputs against a reference model. See the
/// [module documentation](self).
#[derive(Debug, Clone)]
pub struct Checker {
    model: Model,
    step: u64,
    in_step: bool,
    input_kind: &'static str,
    timeout_step: bool,
    seen_actions: Vec<Action>,
    seen_events: Vec<Event>,
    /// Whether the adapter was last asked to pause accepting (from outputs).
    paused_seen: bool,
    violation: Option<Violation>,
}

impl Checker {
    /// A checker for a hub created with `config`.
    pub fn new(config: &crate::Config) -> Checker {
        Checker {
            model: Model::new(config),
            step: 0,
            in_step: false,
            input_kind: "",
            timeout_step: false,
            seen_actions: Vec::new(),
            seen_events: Vec::new(),
            paused_seen: false,
            violation: None,
        }
    }

    /// A checker for the hub [`Hub::restore`] makes of `snapshot` at
    /// `epoch`, as if it had watched that hub from its start: its reference
    /// model is initialised from the snapshot (every channel, every slot's
    /// last generation, the clock and its held jump, the gate, the byte
    /// and rejected-input counters), and it knows accepting is paused when
    /// the snapshot says so. Fails as `Hub::restore` would, for the same
    /// snapshot. Steps are counted from the snapshot on. The model keeps
    /// nothing the snapshot lacks, so checking is as exact as from the
    /// start; the one thing taken on trust is `paused`, which the checker
    /// otherwise learns from the `PauseAccept`/`ResumeAccept` it saw.
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::testing::{Checker, Input};
    /// use tether_core::{Config, Hub};
    ///
    /// let epoch = Instant::now();
    /// let mut hub = Hub::new(Config::default()).unwrap();
    /// let id = hub.accept(epoch, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// let _ = hub.poll_event();
    /// let snapshot = hub.snapshot(epoch).unwrap();
    ///
    /// let mut replay = Hub::restore(&snapshot, epoch).unwrap();
    /// let mut checker = Checker::from_snapshot(&snapshot, epoch).unwrap();
    /// let (mut actions, mut events) = (Vec::new(), Vec::new());
    /// let kick = Input::KickDefault { id };
    /// checker.step(&mut replay, epoch, &kick, &mut actions, &mut events).unwrap();
    /// ```
    #[cfg(feature = "snapshot")]
    pub fn from_snapshot(
        snapshot: &crate::Snapshot,
        epoch: Instant,
    ) -> Result<Checker, crate::RestoreError> {
        Hub::restore(snapshot, epoch)?;
        let mut checker = Checker::new(&snapshot.config);
        checker.model = Model::from_snapshot(snapshot, epoch);
        checker.paused_seen = snapshot.accept_paused;
        Ok(checker)
    }

    /// Steps checked so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Channels alive according to the model.
    pub fn live(&self) -> usize {
        self.model.live
    }

    /// The first violation found, if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    fn fail(&mut self, invariant: u8, message: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation {
                step: self.step,
                invariant,
                message: format!("[{}] {message}", self.input_kind),
            });
        }
    }

    /// Makes the call `input` on `hub` at `now`, drains every action and
    /// event it emitted (appended to `actions` and `events` for the caller
    /// to execute), checks `poll_timeout`, and checks the whole step.
    pub fn step(
        &mut self,
        hub: &mut Hub,
        now: Instant,
        input: &Input,
        actions: &mut Vec<Action>,
        events: &mut Vec<Event>,
    ) -> Result<Outcome, Violation> {
        let outcome = input.apply(hub, now);
        self.input(now, input, outcome);
        while let Some(a) = hub.poll_action() {
            self.action(&a);
            actions.push(a);
        }
        while let Some(e) = hub.poll_event() {
            self.event(&e);
            events.push(e);
        }
        let timeout = hub.poll_timeout();
        self.poll_timeout(timeout);
        self.check_stats(hub);
        self.finish_step().map(|()| outcome)
    }

    /// Cross-checks the hub's counters with the model: live channels,
    /// offline depth and timer entries (invariant 8), every channel's queued
    /// bytes and charge (within the limit and as the model has them:
    /// invariant 8), the backpressured count (against the model and against a
    /// recount of the hub's own channels), that every queued byte is
    /// written, dropped-and-counted or still queued, and that every
    /// contradictory adapter input was counted (invariant 5). `O(live)`.
    pub fn check_stats(&mut self, hub: &Hub) {
        let stats = hub.stats();
        if let Some((invariant, msg)) = self.check_channels(hub, stats.backpressured) {
            self.fail(invariant, msg);
        }
        let m = &self.model;
        let problem = if stats.live != m.live {
            Some((
                8,
                format!("hub has {} live channels, model {}", stats.live, m.live),
            ))
        } else if stats.timer_entries > 6 * m.live + 64 {
            // Bookkeeping must be bounded by the channels, not by traffic.
            let msg = format!(
                "{} timer entries for {} live channels",
                stats.timer_entries, m.live
            );
            Some((8, msg))
        } else if stats.offline_depth != m.offline {
            Some((
                8,
                format!("offline depth {}, model {}", stats.offline_depth, m.offline),
            ))
        } else if (stats.bytes_queued, stats.bytes_written, stats.bytes_dropped)
            != (m.bytes_queued, m.bytes_written, m.bytes_dropped)
        {
            Some((
                5,
                format!(
                    "bytes queued/written/dropped {}/{}/{}, model {}/{}/{}",
                    stats.bytes_queued,
                    stats.bytes_written,
                    stats.bytes_dropped,
                    m.bytes_queued,
                    m.bytes_written,
                    m.bytes_dropped
                ),
            ))
        } else if stats.rejected_input != m.rejected {
            let msg = format!(
                "rejected adapter inputs counted {:?}, model {:?}",
                stats.rejected_input, m.rejected
            );
            Some((5, msg))
        } else {
            None
        };
        if let Some((invariant, msg)) = problem {
            self.fail(invariant, msg);
        }
    }

    /// Per channel: queued bytes and charge as the model has them, the
    /// charge within `queue_limit`, the backpressured flag; and the hub's
    /// O(1) backpressured counter equal to a recount (invariant 8).
    fn check_channels(&self, hub: &Hub, counted: usize) -> Option<(u8, String)> {
        let m = &self.model;
        let limit = m.config.queue_limit;
        let mut recount = 0;
        for info in hub.channels() {
            let id = info.id;
            if info.charged > limit || info.queued > info.charged {
                let (q, c) = (info.queued, info.charged);
                return Some((
                    8,
                    format!("{id}: {q} bytes queued, charged {c}, limit {limit}"),
                ));
            }
            if hub.is_backpressured(id) != Ok(info.backpressured) {
                return Some((8, format!("{id}: is_backpressured disagrees with its info")));
            }
            recount += usize::from(info.backpressured);
            let model_channel = m.slots.get(id.slot() as usize);
            let Some(ch) = model_channel.and_then(|s| s.channel.as_ref().filter(|c| c.id == id))
            else {
                continue; // a live-count mismatch, reported by the caller
            };
            if (info.queued, info.charged, info.backpressured)
                != (ch.queued, ch.charged, ch.backpressured)
            {
                return Some((
                    8,
                    format!(
                        "{id}: queued/charged/backpressured {}/{}/{}, model {}/{}/{}",
                        info.queued,
                        info.charged,
                        info.backpressured,
                        ch.queued,
                        ch.charged,
                        ch.backpressured
                    ),
                ));
            }
        }
        let model = m.backpressured();
        if counted != recount || counted != model || hub.backpressured() != counted {
            return Some((
                8,
                format!(
                    "backpressured() says {counted}, the hub's channels {recount}, model {model}"
                ),
            ));
        }
        None
    }

    /// Starts a step: the input call made at `now` and its outcome.
    pub fn input(&mut self, now: Instant, input: &Input, outcome: Outcome) {
        if self.in_step {
            // An unfinished step: check it before starting the next.
            let _ = self.finish_step();
        }
        self.in_step = true;
        self.input_kind = input.name();
        self.timeout_step = matches!(input, Input::Timeout);
        self.model.actions.clear();
        self.model.events.clear();
        self.seen_actions.clear();
        self.seen_events.clear();
        let expected = self.predict(now, input, outcome);
        if let Ok(Outcome::Rejected(r)) = expected {
            self.model.count_rejection(r);
        }
        if let Err((invariant, msg)) = expected {
            self.fail(invariant, msg);
        } else if let Ok(expected) = expected
            && expected != outcome
        {
            let invariant = outcome_invariant(input, expected, outcome);
            let msg = format!("{input:?}: expected {expected:?}, hub returned {outcome:?}");
            self.fail(invariant, msg);
        }
    }

    /// The model's prediction for `input`; for `accept`, takes the hub's id.
    fn predict(
        &mut self,
        now: Instant,
        input: &Input,
        outcome: Outcome,
    ) -> Result<Outcome, (u8, String)> {
        self.model.predict(now, input, outcome)
    }

    /// Records one action the step emitted, in the order drained.
    pub fn action(&mut self, action: &Action) {
        match action {
            Action::PauseAccept if self.paused_seen => {
                self.fail(12, "PauseAccept while already paused".into())
            }
            Action::ResumeAccept if !self.paused_seen => {
                self.fail(12, "ResumeAccept while not paused".into())
            }
            Action::PauseAccept => self.paused_seen = true,
            Action::ResumeAccept => self.paused_seen = false,
            _ => {}
        }
        self.seen_actions.push(action.clone());
    }

    /// Records one event the step emitted, in the order drained.
    pub fn event(&mut self, event: &Event) {
        self.seen_events.push(event.clone());
    }

    /// Records what `poll_timeout` returned after the step: it must not be
    /// later than any deadline the model knows, and not in the past unless
    /// something is due (invariant 7).
    pub fn poll_timeout(&mut self, timeout: Option<Instant>) {
        let earliest = self.model.earliest_deadline();
        let now = self.model.now;
        match (timeout, earliest) {
            (None, Some(d)) => self.fail(
                7,
                format!("poll_timeout is None but a deadline is pending at {d:?}"),
            ),
            (Some(t), Some(d)) if t > d => self.fail(
                7,
                format!("poll_timeout {t:?} is after the pending deadline {d:?}"),
            ),
            (Some(t), _) if now.is_some_and(|n| t < n) && earliest.is_none_or(|d| d > t) => self
                .fail(
                    7,
                    format!("poll_timeout {t:?} is in the past with nothing due"),
                ),
            _ => {}
        }
    }

    /// Ends the step: compares the outputs with the model's and checks the
    /// global bounds. Returns the first violation found (it stays recorded).
    pub fn finish_step(&mut self) -> Result<(), Violation> {
        if self.in_step {
            self.in_step = false;
            self.compare_outputs();
            self.check_bounds();
            self.step += 1;
        }
        match &self.violation {
            Some(v) => Err(v.clone()),
            None => Ok(()),
        }
    }

    fn compare_outputs(&mut self) {
        if self.violation.is_some() {
            return;
        }
        let timeout = self.timeout_step;
        if let Some((inv, msg)) = diff(
            &self.model.actions,
            &self.seen_actions,
            timeout,
            action_invariant,
        ) {
            self.fail(inv, format!("actions: {msg}"));
        }
        if let Some((inv, msg)) = diff(
            &self.model.events,
            &self.seen_events,
            timeout,
            event_invariant,
        ) {
            self.fail(inv, format!("events: {msg}"));
        }
    }

    fn check_bounds(&mut self) {
        let m = &self.model;
        let max = m.config.max_channels;
        if m.live > max {
            let msg = format!("{} channels alive, limit {max}", m.live);
            self.fail(12, msg);
        } else if m.live >= max && !self.paused_seen {
            let msg = format!("at the limit ({max} alive) without PauseAccept");
            self.fail(12, msg);
        } else if self.paused_seen && m.shutdown.is_none() && m.live <= m.config.resume_mark() {
            let msg = format!(
                "{} alive, at or below the resume mark, still paused",
                m.live
            );
            self.fail(12, msg);
        }
    }
}
