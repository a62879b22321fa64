//! The application's commands: send, broadcast, kick, authenticate,
//! shutdown.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{BroadcastReport, Hub};
use crate::config::KickMode;
use crate::error::{KickError, SendError};
use crate::id::{ChannelId, IdError};
use crate::output::DisconnectReason;
use crate::transitions as t;

impl Hub {
    /// Call to send `data` to a channel. Emits
    /// [`Action::Transmit`](crate::Action::Transmit) with the very same
    /// buffer (zero-copy) and charges the queue `len +`
    /// [`message_overhead`](crate::Config::message_overhead); at
    /// [`high_watermark`](crate::Config::high_watermark) the channel becomes
    /// backpressured (hold further sends until
    /// [`Event::Writable`](crate::Event::Writable)). An empty `data` is a
    /// no-op.
    ///
    /// Errors (nothing queued; the bytes are still yours):
    /// [`Id`](SendError::Id) for a stale or unknown id;
    /// [`NotUsable`](SendError::NotUsable) once the channel is closing or
    /// offline (invariant 4); [`TooLarge`](SendError::TooLarge) when it
    /// could never fit; [`QueueFull`](SendError::QueueFull) when the charge
    /// would pass [`queue_limit`](crate::Config::queue_limit) — the channel
    /// becomes backpressured, and under
    /// [`OverflowPolicy::KickSlowConsumer`](crate::OverflowPolicy::KickSlowConsumer)
    /// it is also aborted (`kicked: true`). Rows *send*.
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Action, Bytes, Config, Hub, KickMode, SendError};
    /// # let mut hub = Hub::new(Config::default()).unwrap();
    /// # let now = Instant::now();
    /// # let id = hub.accept(now, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// let data = Bytes::from_static(b"hello\n");
    /// hub.send(now, id, data.clone()).unwrap();
    /// assert_eq!(hub.poll_action(), Some(Action::Transmit { id, data: data.clone() }));
    /// hub.kick(now, id, KickMode::Graceful, 0).unwrap();
    /// assert!(matches!(hub.send(now, id, data), Err(SendError::NotUsable { .. })));
    /// ```
    pub fn send(&mut self, now: Instant, id: ChannelId, data: Bytes) -> Result<(), SendError> {
        let now = self.clock(now);
        self.at_channel_queue(now, id, |ch, b, c, now| t::send(ch, id, data, b, c, now))
    }

    /// Call to send `data` to every usable channel; the bytes are shared,
    /// not copied. Each channel is a [`send`](Hub::send), with its own
    /// outcome in the report (a channel that is not usable is skipped, not
    /// refused).
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Bytes, Config, Hub};
    /// # let mut hub = Hub::new(Config::default()).unwrap();
    /// # let now = Instant::now();
    /// # let peer = "127.0.0.1:4000".parse().unwrap();
    /// # let (a, b) = (hub.accept(now, peer).unwrap(), hub.accept(now, peer).unwrap());
    /// let report = hub.broadcast(now, Bytes::from_static(b"news\n"));
    /// assert_eq!((report.sent, report.refused.len()), (2, 0));
    /// ```
    pub fn broadcast(&mut self, now: Instant, data: Bytes) -> BroadcastReport {
        let now = self.clock(now);
        let mut report = BroadcastReport::default();
        for (id, ch) in self.table.iter_mut() {
            if !ch.state.is_usable() {
                continue;
            }
            let before = ch.state;
            match t::send(ch, id, &data, &mut self.books, &self.config, now) {
                Ok(()) => report.sent += 1,
                Err(e) => report.refused.push((id, e)),
            }
            t::rearm_after_queue(ch, id, before, &self.config, &mut self.timers);
        }
        report
    }

    /// Call to send `data` to each of `ids`: a [`send`](Hub::send) per id,
    /// all at one `now`, each refusal (stale ids included) in the report.
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Bytes, ChannelId, Config, Hub};
    /// # let mut hub = Hub::new(Config::default()).unwrap();
    /// # let now = Instant::now();
    /// # let a = hub.accept(now, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// let forged = ChannelId::from_parts(0, 99, 1).unwrap();
    /// let report = hub.broadcast_to(now, [a, forged], Bytes::from_static(b"x"));
    /// assert_eq!((report.sent, report.refused[0].0), (1, forged));
    /// ```
    pub fn broadcast_to(
        &mut self,
        now: Instant,
        ids: impl IntoIterator<Item = ChannelId>,
        data: Bytes,
    ) -> BroadcastReport {
        let now = self.clock(now);
        let mut report = BroadcastReport::default();
        for id in ids {
            match self.at_channel_queue(now, id, |ch, b, c, now| t::send(ch, id, &data, b, c, now))
            {
                Ok(()) => report.sent += 1,
                Err(e) => report.refused.push((id, e)),
            }
        }
        report
    }

    /// Call to end a channel, with the app's reason `code`. Emits
    /// `Disconnected(Kicked { code })` in this call, and acts on the wire
    /// at once (invariant 3): [`KickMode::Graceful`] emits its FIN
    /// (`Shutdown(Write)`) now if nothing is queued, else as soon as the
    /// queue is written, and aborts at the flush deadline;
    /// [`KickMode::Abort`] emits `Abort` now and drops the queue (counted).
    /// An abort of a channel already closing gracefully escalates it.
    ///
    /// Errors: [`Id`](KickError::Id) for a stale or unknown id;
    /// [`AlreadyClosing`](KickError::AlreadyClosing) when it is already
    /// ending (kicks are idempotent). Rows *kick graceful*, *kick abort*.
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Action, Config, DisconnectReason, Event, Hub, KickMode, ShutdownHow};
    /// # let mut hub = Hub::new(Config::default()).unwrap();
    /// # let now = Instant::now();
    /// # let id = hub.accept(now, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// # let _ = hub.poll_event();
    /// hub.kick(now, id, KickMode::Graceful, 7).unwrap();
    /// let reason = DisconnectReason::Kicked { code: 7 };
    /// assert_eq!(hub.poll_event(), Some(Event::Disconnected { id, reason }));
    /// assert_eq!(hub.poll_action(), Some(Action::Shutdown { id, how: ShutdownHow::Write }));
    /// assert!(hub.kick(now, id, KickMode::Graceful, 7).is_err()); // already closing
    /// hub.kick(now, id, KickMode::Abort, 7).unwrap(); // escalates
    /// assert_eq!(hub.poll_action(), Some(Action::Abort { id }));
    /// ```
    #[inline]
    pub fn kick(
        &mut self,
        now: Instant,
        id: ChannelId,
        mode: KickMode,
        code: u32,
    ) -> Result<(), KickError> {
        self.kick_with_reason(now, id, mode, DisconnectReason::Kicked { code })
    }

    /// [`kick`](Hub::kick) with an explicit reason, e.g. `SlowConsumer`
    /// decided by the app; the same emissions and errors.
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Config, DisconnectReason, Event, Hub, KickMode};
    /// # let mut hub = Hub::new(Config::default()).unwrap();
    /// # let now = Instant::now();
    /// # let id = hub.accept(now, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// # let _ = hub.poll_event();
    /// let reason = DisconnectReason::SlowConsumer;
    /// hub.kick_with_reason(now, id, KickMode::Abort, reason).unwrap();
    /// assert_eq!(hub.poll_event(), Some(Event::Disconnected { id, reason }));
    /// ```
    pub fn kick_with_reason(
        &mut self,
        now: Instant,
        id: ChannelId,
        mode: KickMode,
        reason: DisconnectReason,
    ) -> Result<(), KickError> {
        self.with_channel(now, id, |ch, b, c, now| {
            t::kick(ch, id, mode, reason, b, c, now)
        })
    }

    /// [`kick`](Hub::kick) in the configured mode
    /// ([`Config::default_kick`](crate::Config::default_kick)) with code 0;
    /// the same emissions and errors.
    ///
    /// ```
    /// use std::time::Instant;
    /// use tether_core::{Action, Config, Hub, KickMode};
    /// let config = Config::default().with(|c| c.default_kick = KickMode::Abort);
    /// let mut hub = Hub::new(config).unwrap();
    /// # let now = Instant::now();
    /// # let id = hub.accept(now, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// hub.kick_default(now, id).unwrap();
    /// assert_eq!(hub.poll_action(), Some(Action::Abort { id }));
    /// ```
    pub fn kick_default(&mut self, now: Instant, id: ChannelId) -> Result<(), KickError> {
        let mode = self.config.default_kick;
        self.kick(now, id, mode, 0)
    }

    /// Call when the channel's peer has logged in: its login deadline
    /// ([`Config::login_timeout`](crate::Config::login_timeout)) no longer
    /// applies. Emits nothing. On a channel that is already closing or
    /// offline there is no login deadline left: nothing to do, `Ok`.
    ///
    /// Errors: only [`IdError`] for a stale or unknown id. Rows
    /// *authenticate*.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use tether_core::{Config, Hub};
    /// let login = Some(Duration::from_secs(10));
    /// let mut hub = Hub::new(Config::default().with(|c| c.login_timeout = login)).unwrap();
    /// # let now = Instant::now();
    /// # let id = hub.accept(now, "127.0.0.1:4000".parse().unwrap()).unwrap();
    /// assert!(hub.poll_timeout().is_some()); // the login deadline
    /// hub.authenticate(now, id).unwrap();
    /// assert_eq!(hub.poll_timeout(), None);
    /// ```
    pub fn authenticate(&mut self, now: Instant, id: ChannelId) -> Result<(), IdError> {
        self.with_channel_later(now, id, |ch, _, _| {
            t::authenticate(ch);
            Ok(())
        })
    }

    /// Call to shut the server down gracefully: emits `PauseAccept` (no
    /// channel is accepted any more), kicks every usable channel gracefully
    /// with [`DisconnectReason::ServerShutdown`], aborts whatever is still
    /// closing at `now + grace`, and emits
    /// [`Event::ShutdownComplete`](crate::Event::ShutdownComplete) once
    /// every channel is released — after which
    /// [`poll_timeout`](Hub::poll_timeout) is `None`. Idempotent: a second
    /// call changes nothing (the first grace period stands). Rows
    /// *shutdown*, *grace due*.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use tether_core::{Action, Config, Event, Hub};
    /// let mut hub = Hub::new(Config::default()).unwrap();
    /// hub.shutdown(Instant::now(), Duration::from_secs(5)); // nothing alive
    /// assert_eq!(hub.poll_action(), Some(Action::PauseAccept));
    /// assert_eq!(hub.poll_event(), Some(Event::ShutdownComplete));
    /// assert!(hub.is_shutdown_complete() && hub.poll_timeout().is_none());
    /// ```
    pub fn shutdown(&mut self, now: Instant, grace: Duration) {
        let now = self.clock(now);
        if !self.gate.begin_shutdown(now, grace, &mut self.books) {
            return;
        }
        for (id, ch) in self.table.iter_mut() {
            let _already_closing = t::kick(
                ch,
                id,
                KickMode::Graceful,
                DisconnectReason::ServerShutdown,
                &mut self.books,
                &self.config,
                now,
            );
            t::rearm(ch, id, &self.config, &mut self.timers);
        }
        self.gate.check_complete(self.table.len(), &mut self.books);
    }
}
