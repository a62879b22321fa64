//! The hub-level machine: `Accepting` ⇄ `Paused` at the channel limit, then
//! `Draining` once [`Hub::shutdown`](crate::Hub::shutdown) is called, and
//! `Stopped` when the last channel is released. Rows `Accepting`…`Stopped`
//! of the [table](super::TRANSITIONS). The hub carries out what these
//! functions decide on its channels (kicking or aborting each of them).

use std::time::{Duration, Instant};

use super::{Books, after_or_far};
use crate::config::Config;
use crate::error::AcceptError;
use crate::output::{Action, Event};
use crate::stats::count;

/// A shutdown under way, or finished.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shutdown {
    /// When whatever is still closing is aborted.
    pub deadline: Instant,
    /// The deadline was acted on, or is moot (the shutdown completed).
    pub deadline_done: bool,
    /// Every channel is released; `ShutdownComplete` was emitted.
    pub complete: bool,
}

/// The hub-level state: whether accepting is paused, and the shutdown.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Gate {
    pub accept_paused: bool,
    pub shutdown: Option<Shutdown>,
}

impl Gate {
    /// An accept, before its channel exists, with `live` channels alive:
    /// refused while draining or stopped, and at the limit, where it also
    /// asks to pause accepting (invariant 12). Refusals are counted; they
    /// emit no event (invariant 1).
    pub fn admit(
        &mut self,
        live: usize,
        config: &Config,
        b: &mut Books,
    ) -> Result<(), AcceptError> {
        if self.shutdown.is_some() {
            count(&mut b.stats.refused, 1);
            return Err(AcceptError::ShuttingDown);
        }
        if live >= config.max_channels {
            count(&mut b.stats.refused, 1);
            self.pause(b);
            return Err(AcceptError::LimitReached {
                live,
                max: config.max_channels,
            });
        }
        Ok(())
    }

    /// A channel was opened; `live` now counts it. Reaching the limit asks
    /// to pause accepting (invariant 12).
    pub fn opened(&mut self, live: usize, config: &Config, b: &mut Books) {
        if live >= config.max_channels {
            self.pause(b);
        }
    }

    /// A channel was released; `live` no longer counts it. At or below the
    /// resume mark a pause ends (not while draining: accepting never
    /// resumes then), and the last release completes a shutdown.
    pub fn released(&mut self, live: usize, config: &Config, b: &mut Books) {
        if self.accept_paused && self.shutdown.is_none() && live <= config.resume_mark() {
            self.accept_paused = false;
            b.actions.push_back(Action::ResumeAccept);
        }
        self.check_complete(live, b);
    }

    /// [`Hub::shutdown`](crate::Hub::shutdown): `true` when this call starts
    /// it, and the hub must then kick every usable channel; `false` when it
    /// was already under way (idempotent: the first grace period stands).
    pub fn begin_shutdown(&mut self, now: Instant, grace: Duration, b: &mut Books) -> bool {
        if self.shutdown.is_some() {
            return false;
        }
        self.shutdown = Some(Shutdown {
            deadline: after_or_far(now, grace),
            deadline_done: false,
            complete: false,
        });
        self.pause(b);
        true
    }

    /// With `live` channels alive: once none is left, the shutdown is
    /// complete (once), and its deadline moot, so `poll_timeout` stops
    /// reporting it.
    pub fn check_complete(&mut self, live: usize, b: &mut Books) {
        if let Some(s) = self.shutdown.as_mut()
            && !s.complete
            && live == 0
        {
            s.complete = true;
            s.deadline_done = true;
            b.events.push_back(Event::ShutdownComplete);
        }
    }

    /// Whether the shutdown's grace deadline is due at `now`: `true` once,
    /// and the hub must then abort every channel still closing (invariant 3).
    pub fn grace_due(&mut self, now: Instant) -> bool {
        match self.shutdown.as_mut() {
            Some(s) if !s.deadline_done && s.deadline <= now => {
                s.deadline_done = true;
                true
            }
            _ => false,
        }
    }

    /// The hub-level deadline `poll_timeout` must report, if any.
    #[inline]
    pub fn deadline(&self) -> Option<Instant> {
        self.shutdown
            .filter(|s| !s.deadline_done)
            .map(|s| s.deadline)
    }

    fn pause(&mut self, b: &mut Books) {
        if !self.accept_paused {
            self.accept_paused = true;
            b.actions.push_back(Action::PauseAccept);
        }
    }
}
