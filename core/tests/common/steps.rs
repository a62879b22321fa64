//! Random hub inputs for the property and snapshot tests
//! (`tests/properties.rs`, `tests/snapshot.rs`) — hostile steps included
//! (stale and forged ids, double kicks, detach without attach, closes
//! never requested, oversized sends, accept floods, time running backwards
//! or jumping ahead) — played by a [`Run`] that keeps its
//! own bookkeeping (ids handed out, closes requested, the clock) so that a
//! run can be copied onto a restored hub and continued identically.
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use quickcheck::{Arbitrary, Gen};
use tether_core::testing::{Checker, Input, Outcome};
use tether_core::{
    Action, Bytes, ChannelId, ChannelInfo, Config, DisconnectReason, Event, HalfClosePolicy, Hub,
    KickMode, OfflineEntry, OverflowPolicy, Stats,
};

/// Which channel a step names.
#[derive(Debug, Clone, Copy)]
pub enum Pick {
    /// A live channel (index mod live).
    Live(u8),
    /// Any id handed out so far, live or dead (stale calls).
    Any(u8),
    /// A made-up id.
    Forged(u64),
}

/// How many bytes a send or broadcast carries, relative to the hub's limits.
#[derive(Debug, Clone, Copy)]
pub enum Size {
    Empty,
    Small(u8),
    /// The largest single send that fits: `queue_limit - message_overhead`.
    Fits,
    AtLimit,
    OverLimit,
    Huge,
}

/// One step: an input (or a few), or a move of the clock.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    Accept,
    AcceptFlood(u8),
    Received(Pick, u8),
    PeerEof(Pick),
    IoError(Pick, bool),
    /// Report a share (percent) of the queue written; above 100: more than
    /// is queued (hostile).
    Written(Pick, u8),
    Send(Pick, Size),
    Broadcast(Size),
    Kick(Pick, bool, u8),
    KickDefault(Pick),
    Authenticate(Pick),
    Attach(Pick),
    Detach(Pick),
    /// `handle_closed` on any id (unrequested, twice, stale…).
    Closed(Pick),
    /// A well-behaved adapter: confirm every close requested so far.
    ConfirmRequested,
    Timeout,
    Advance(u16),
    /// The next input reads a clock this many ms earlier.
    Rewind(u16),
    /// The next input reads a clock this many hours later (held, unless
    /// the one after confirms it).
    Jump(u16),
    Shutdown(u16),
    /// `kick_with_reason`: abortive?, which reason (see [`reason`]).
    KickWithReason(Pick, bool, u8),
    /// `broadcast_to` the first pick twice and the second once.
    BroadcastTo(Pick, Pick, Size),
}

fn kick_mode(abort: bool) -> KickMode {
    if abort {
        KickMode::Abort
    } else {
        KickMode::Graceful
    }
}

/// A disconnect reason for `kick_with_reason`, every kind of it.
pub fn reason(n: u8) -> DisconnectReason {
    match n % 8 {
        0 => DisconnectReason::PeerClosed,
        1 => DisconnectReason::PeerReset,
        2 => DisconnectReason::IoError(io::ErrorKind::TimedOut),
        3 => DisconnectReason::Kicked { code: u32::from(n) },
        4 => DisconnectReason::IdleTimeout,
        5 => DisconnectReason::LoginTimeout,
        6 => DisconnectReason::SlowConsumer,
        _ => DisconnectReason::ServerShutdown,
    }
}

impl Arbitrary for Pick {
    fn arbitrary(g: &mut Gen) -> Pick {
        match u8::arbitrary(g) % 10 {
            0..=6 => Pick::Live(u8::arbitrary(g)),
            7 | 8 => Pick::Any(u8::arbitrary(g)),
            _ => Pick::Forged(u64::arbitrary(g) & 0x0100_00FF_0000_000F),
        }
    }
}

impl Arbitrary for Size {
    fn arbitrary(g: &mut Gen) -> Size {
        let n = u8::arbitrary(g);
        match u8::arbitrary(g) % 7 {
            0 => Size::Empty,
            1 => Size::Small(n),
            2 => Size::Small(n % 8),
            3 => Size::AtLimit,
            4 => Size::OverLimit,
            5 => Size::Fits,
            _ => Size::Huge,
        }
    }
}

impl Arbitrary for Step {
    fn arbitrary(g: &mut Gen) -> Step {
        let p = Pick::arbitrary(g);
        match u8::arbitrary(g) % 25 {
            0 | 1 => Step::Accept,
            2 => Step::AcceptFlood(u8::arbitrary(g) % 16),
            3 => Step::Received(p, u8::arbitrary(g)),
            4 => Step::PeerEof(p),
            5 => Step::IoError(p, bool::arbitrary(g)),
            6 | 7 => Step::Written(p, u8::arbitrary(g) % 120),
            8 | 9 => Step::Send(p, Size::arbitrary(g)),
            10 => Step::Broadcast(Size::arbitrary(g)),
            11 => Step::Kick(p, bool::arbitrary(g), u8::arbitrary(g)),
            12 => Step::KickDefault(p),
            13 => Step::Authenticate(p),
            14 => Step::Attach(p),
            15 => Step::Detach(p),
            16 => Step::Closed(p),
            17 => Step::ConfirmRequested,
            18 => Step::Timeout,
            19 | 20 => Step::Advance(u16::arbitrary(g) % 3_000),
            21 if bool::arbitrary(g) => Step::Rewind(u16::arbitrary(g) % 2_000),
            21 => Step::Jump(u16::arbitrary(g) % 100),
            22 => Step::Shutdown(u16::arbitrary(g) % 5_000),
            23 => Step::KickWithReason(p, bool::arbitrary(g), u8::arbitrary(g)),
            _ => Step::BroadcastTo(p, Pick::arbitrary(g), Size::arbitrary(g)),
        }
    }
}

/// The bytes a `size` stands for under `config` (capped, so that a
/// corrupted limit cannot make a send huge).
pub fn bytes(config: &Config, size: Size) -> Bytes {
    let len = match size {
        Size::Empty => 0,
        Size::Small(n) => usize::from(n),
        Size::Fits => config.queue_limit.saturating_sub(config.message_overhead),
        Size::AtLimit => config.queue_limit,
        Size::OverLimit => config.queue_limit.saturating_add(1),
        Size::Huge => 1 << 20,
    };
    Bytes::from(vec![b'x'; len.min(1 << 21)])
}

/// The configurations the snapshot properties run under: every policy
/// that changes what a channel's fields mean.
pub fn configs() -> Vec<Config> {
    let ms = Duration::from_millis;
    vec![
        Config::default().with_queue_limit(1_000).with(|c| {
            c.stall_timeout = Some(ms(500));
            c.holder_overdue_after = ms(800);
        }),
        Config::default()
            .with_max_channels(3)
            .with_queue_limit(16)
            .with(|c| {
                c.half_close = HalfClosePolicy::Allow;
                c.idle_timeout = Some(ms(1_000));
                c.message_overhead = 3;
                c.stall_timeout = Some(ms(200));
                c.max_clock_jump = Duration::from_secs(3_600);
            }),
        Config::default()
            .with_max_channels(4)
            .with_queue_limit(8)
            .with(|c| {
                c.overflow = OverflowPolicy::KickSlowConsumer;
                c.login_timeout = Some(ms(700));
                c.default_kick = KickMode::Abort;
                c.message_overhead = 0;
                c.stall_timeout = Some(ms(1));
                c.shard = 3;
            }),
        Config::default()
            .with_max_channels(5)
            .with_queue_limit(400)
            .with(|c| {
                c.idle_timeout = Some(ms(400));
                c.flush_timeout = ms(300);
                c.holder_overdue_after = ms(100);
                c.message_overhead = 96;
                c.stall_timeout = Some(ms(150));
                c.accept_resume_at = Some(1);
            }),
    ]
}

/// What one input gave: its outcome and outputs, and the hub's answers to
/// every query after it (instants as nanoseconds since the run's start).
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub input: Input,
    pub outcome: Outcome,
    pub actions: Vec<Action>,
    pub events: Vec<Event>,
    pub stats: Stats,
    pub timeout: Option<i128>,
    pub now: Option<i128>,
    pub channels: Vec<ChannelInfo>,
    pub offline: Vec<OfflineEntry>,
}

/// A hub, its checker, and the adapter's bookkeeping.
#[derive(Debug)]
pub struct Run {
    pub hub: Hub,
    pub checker: Checker,
    /// The instant the run's clock counts from.
    pub start: Instant,
    pub clock: Duration,
    pub skew: Duration,
    pub jump: Duration,
    pub ever: Vec<ChannelId>,
    pub requested: Vec<ChannelId>,
}

/// `t` as signed nanoseconds since `start`.
pub fn since(t: Instant, start: Instant) -> i128 {
    if t >= start {
        t.duration_since(start).as_nanos() as i128
    } else {
        -(start.duration_since(t).as_nanos() as i128)
    }
}

impl Run {
    /// A fresh hub under `config`, starting at `start`.
    pub fn new(config: &Config, start: Instant) -> Run {
        Run::with(
            Hub::new(config.clone()).unwrap(),
            Checker::new(config),
            start,
        )
    }

    pub fn with(hub: Hub, checker: Checker, start: Instant) -> Run {
        Run {
            hub,
            checker,
            start,
            clock: Duration::ZERO,
            skew: Duration::ZERO,
            jump: Duration::ZERO,
            ever: Vec::new(),
            requested: Vec::new(),
        }
    }

    /// The same adapter bookkeeping around another hub and checker (a
    /// restored one) whose instants count from `start`.
    pub fn continued(&self, hub: Hub, checker: Checker, start: Instant) -> Run {
        Run {
            hub,
            checker,
            start,
            clock: self.clock,
            skew: self.skew,
            jump: self.jump,
            ever: self.ever.clone(),
            requested: self.requested.clone(),
        }
    }

    /// The inputs `step` makes now.
    fn inputs(&mut self, step: Step) -> Vec<Input> {
        let config = self.hub.config().clone();
        let live: Vec<ChannelId> = self.hub.channels().map(|c| c.id).collect();
        let ever = &self.ever;
        let pick = |p: Pick| -> Option<ChannelId> {
            match p {
                Pick::Live(n) if !live.is_empty() => Some(live[usize::from(n) % live.len()]),
                Pick::Any(n) if !ever.is_empty() => Some(ever[usize::from(n) % ever.len()]),
                Pick::Forged(raw) => Some(ChannelId::from_raw(raw)),
                _ => None,
            }
        };
        let bytes = |size: Size| bytes(&config, size);
        let peer: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let one = |input: Option<Input>| input.into_iter().collect();
        match step {
            Step::Accept => vec![Input::Accept { peer }],
            Step::AcceptFlood(n) => (0..=n).map(|_| Input::Accept { peer }).collect(),
            Step::Received(p, n) => one(pick(p).map(|id| Input::Received {
                id,
                data: bytes(Size::Small(n)),
            })),
            Step::PeerEof(p) => one(pick(p).map(|id| Input::PeerEof { id })),
            Step::IoError(p, reset) => one(pick(p).map(|id| Input::IoError {
                id,
                kind: if reset {
                    io::ErrorKind::ConnectionReset
                } else {
                    io::ErrorKind::TimedOut
                },
            })),
            Step::Written(p, percent) => one(pick(p).map(|id| {
                let queued = self.hub.channel(id).map_or(3, |c| c.queued);
                Input::Written {
                    id,
                    n: (queued * usize::from(percent)).div_ceil(100),
                }
            })),
            Step::Send(p, size) => one(pick(p).map(|id| Input::Send {
                id,
                data: bytes(size),
            })),
            Step::Broadcast(size) => vec![Input::Broadcast { data: bytes(size) }],
            Step::Kick(p, abort, code) => one(pick(p).map(|id| Input::Kick {
                id,
                mode: kick_mode(abort),
                code: code.into(),
            })),
            Step::KickDefault(p) => one(pick(p).map(|id| Input::KickDefault { id })),
            Step::Authenticate(p) => one(pick(p).map(|id| Input::Authenticate { id })),
            Step::Attach(p) => one(pick(p).map(|id| Input::Attach { id })),
            Step::Detach(p) => one(pick(p).map(|id| Input::Detach { id })),
            Step::Closed(p) => one(pick(p).map(|id| Input::Closed { id })),
            Step::ConfirmRequested => self
                .requested
                .drain(..)
                .map(|id| Input::Closed { id })
                .collect(),
            Step::Timeout => vec![Input::Timeout],
            Step::Advance(ms) => {
                self.clock += Duration::from_millis(ms.into());
                vec![Input::Timeout]
            }
            Step::Rewind(ms) => {
                self.skew = Duration::from_millis(ms.into());
                Vec::new()
            }
            Step::Jump(hours) => {
                self.jump = Duration::from_secs(3_600 * u64::from(hours));
                Vec::new()
            }
            Step::Shutdown(ms) => vec![Input::Shutdown {
                grace: Duration::from_millis(ms.into()),
            }],
            Step::KickWithReason(p, abort, n) => one(pick(p).map(|id| Input::KickWithReason {
                id,
                mode: kick_mode(abort),
                reason: reason(n),
            })),
            Step::BroadcastTo(p, q, size) => vec![Input::BroadcastTo {
                ids: [pick(p), pick(q), pick(p)].into_iter().flatten().collect(),
                data: bytes(size),
            }],
        }
    }

    /// Plays `steps`, every input checked; what each input gave, or the
    /// first violation.
    pub fn play(&mut self, steps: &[Step]) -> Result<Vec<Observed>, String> {
        let mut seen = Vec::new();
        self.play_each(steps, |run, input, outcome, actions, events| {
            let start = run.start;
            seen.push(Observed {
                input,
                outcome,
                actions,
                events,
                stats: run.hub.stats(),
                timeout: run.hub.poll_timeout().map(|t| since(t, start)),
                now: run.hub.now().map(|t| since(t, start)),
                channels: run.hub.channels().collect(),
                offline: run.hub.offline().collect(),
            });
        })?;
        Ok(seen)
    }

    /// Plays `steps`, every input checked, keeping nothing: only the first
    /// violation matters (the outputs of a long run need not stay in memory).
    pub fn check(&mut self, steps: &[Step]) -> Result<(), String> {
        self.play_each(steps, |_, _, _, _, _| {})
    }

    /// Plays `steps`, every input checked, handing each input's outcome and
    /// outputs to `each`.
    fn play_each(
        &mut self,
        steps: &[Step],
        mut each: impl FnMut(&mut Run, Input, Outcome, Vec<Action>, Vec<Event>),
    ) -> Result<(), String> {
        for (i, &step) in steps.iter().enumerate() {
            for input in self.inputs(step) {
                // Checked: a run that starts near the last instant `Instant`
                // holds drops a jump it cannot represent.
                let base = self.start + self.clock.saturating_sub(std::mem::take(&mut self.skew));
                let jump = std::mem::take(&mut self.jump);
                let now = base.checked_add(jump).unwrap_or(base);
                let (mut actions, mut events) = (Vec::new(), Vec::new());
                let outcome = (self.checker)
                    .step(&mut self.hub, now, &input, &mut actions, &mut events)
                    .map_err(|v| format!("step {i} ({step:?}): {v}"))?;
                if let Outcome::Opened(id) = outcome {
                    self.ever.push(id);
                }
                self.requested
                    .extend(actions.iter().filter_map(|a| match a {
                        Action::CloseSocket { id } => Some(*id),
                        _ => None,
                    }));
                each(self, input, outcome, actions, events);
            }
        }
        Ok(())
    }
}
