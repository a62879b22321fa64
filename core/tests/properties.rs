//! Property tests: random sequences of every hub input — hostile ones
//! included (stale and forged ids, double kicks, detach without attach,
//! closes confirmed twice or never requested, time running backwards, sends
//! to closing channels, oversized sends, accept floods) — under several
//! configurations (per-message overheads from none to most of the limit,
//! stall timeouts from 1 ms to never), each step checked by `tether_core::testing::Checker`
//! against its reference model (invariants 1–12 of docs/design.md §4). No
//! sequence may break an invariant or panic, and the same sequence must give
//! the same outputs twice (invariant 9).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use tether_core::testing::{Checker, Input, Outcome};
use tether_core::{
    Action, Bytes, ChannelId, Config, Event, HalfClosePolicy, Hub, KickMode, OverflowPolicy,
};

/// Which channel a step names.
#[derive(Debug, Clone, Copy)]
enum Pick {
    /// A live channel (index mod live).
    Live(u8),
    /// Any id handed out so far, live or dead (stale calls).
    Any(u8),
    /// A made-up id.
    Forged(u64),
}

#[derive(Debug, Clone, Copy)]
enum Size {
    Empty,
    Small(u8),
    /// The largest single send that fits: `queue_limit - message_overhead`.
    Fits,
    AtLimit,
    OverLimit,
    Huge,
}

#[derive(Debug, Clone, Copy)]
enum Step {
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
    Shutdown(u16),
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
        match u8::arbitrary(g) % 22 {
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
            _ if bool::arbitrary(g) => Step::Rewind(u16::arbitrary(g) % 2_000),
            _ => Step::Shutdown(u16::arbitrary(g) % 5_000),
        }
    }
}

/// A random sequence of steps (shrinks by dropping steps).
#[derive(Debug, Clone)]
struct Steps(Vec<Step>);

impl Arbitrary for Steps {
    fn arbitrary(g: &mut Gen) -> Steps {
        Steps(Vec::arbitrary(g))
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Steps>> {
        // Drop halves, then single steps (elements themselves do not shrink).
        let v = self.0.clone();
        let n = v.len();
        let halves = [v[..n / 2].to_vec(), v[n / 2..].to_vec()];
        let singles = (0..n).map(move |i| {
            let mut w = v.clone();
            w.remove(i);
            Steps(w)
        });
        Box::new(
            halves
                .into_iter()
                .filter(move |h| h.len() < n)
                .map(Steps)
                .chain(singles),
        )
    }
}

/// The configurations every property runs under.
fn configs() -> Vec<Config> {
    let ms = Duration::from_millis;
    vec![
        // Defaults: 96 bytes of overhead per message, 10 s stall timeout.
        Config::default(),
        Config::default()
            .with_max_channels(3)
            .with_queue_limit(16)
            .with(|c| {
                c.half_close = HalfClosePolicy::Allow;
                c.idle_timeout = Some(ms(1_000));
                c.message_overhead = 3;
                c.stall_timeout = Some(ms(200));
            }),
        Config::default()
            .with_max_channels(2)
            .with_queue_limit(8)
            .with(|c| {
                c.overflow = OverflowPolicy::KickSlowConsumer;
                c.login_timeout = Some(ms(700));
                c.default_kick = KickMode::Abort;
                c.message_overhead = 0;
                // Fires on the first wait after a send not written at once.
                c.stall_timeout = Some(ms(1));
            }),
        Config::default()
            .with_max_channels(1)
            .with_queue_limit(1)
            .with(|c| {
                c.flush_timeout = ms(50);
                c.holder_overdue_after = ms(100);
                c.idle_timeout = Some(ms(300));
                c.login_timeout = Some(Duration::MAX);
                c.message_overhead = 0;
                c.stall_timeout = None;
            }),
        Config::default()
            .with_max_channels(4)
            .with_queue_limit(5)
            .with(|c| {
                c.half_close = HalfClosePolicy::Allow;
                c.overflow = OverflowPolicy::KickSlowConsumer;
                c.idle_timeout = Some(Duration::MAX);
                c.flush_timeout = Duration::MAX;
                c.holder_overdue_after = Duration::MAX;
                c.message_overhead = 4;
                c.stall_timeout = Some(Duration::MAX);
            }),
        Config::default()
            .with_max_channels(3)
            .with_queue_limit(400)
            .with(|c| {
                // The stall deadline racing the idle and flush deadlines, and
                // an overhead that makes every small send count many times over.
                c.idle_timeout = Some(ms(400));
                c.flush_timeout = ms(300);
                c.message_overhead = 96;
                c.stall_timeout = Some(ms(150));
            }),
    ]
}

/// Everything observable from one run: per step the outcome, the actions
/// and the events.
type Record = Vec<(Outcome, Vec<Action>, Vec<Event>)>;

/// Runs `steps` on a fresh hub under `config`, checking every step.
fn run(config: &Config, steps: &[Step], start: Instant) -> Result<Record, String> {
    let mut hub = Hub::new(config.clone()).map_err(|e| e.to_string())?;
    let mut checker = Checker::new(config);
    let mut ever: Vec<ChannelId> = Vec::new();
    let mut requested: Vec<ChannelId> = Vec::new();
    let (mut clock, mut skew) = (Duration::ZERO, Duration::ZERO);
    let mut record = Record::new();
    let peer: SocketAddr = "127.0.0.1:7000".parse().expect("valid address");
    let bytes = |size: Size| -> Bytes {
        let len = match size {
            Size::Empty => 0,
            Size::Small(n) => usize::from(n),
            Size::Fits => config.queue_limit - config.message_overhead,
            Size::AtLimit => config.queue_limit,
            Size::OverLimit => config.queue_limit + 1,
            Size::Huge => 1 << 20,
        };
        Bytes::from(vec![b'x'; len])
    };
    for (i, step) in steps.iter().enumerate() {
        let live: Vec<ChannelId> = hub.channels().map(|c| c.id).collect();
        let pick = |p: Pick| -> Option<ChannelId> {
            match p {
                Pick::Live(n) if !live.is_empty() => Some(live[usize::from(n) % live.len()]),
                Pick::Any(n) if !ever.is_empty() => Some(ever[usize::from(n) % ever.len()]),
                Pick::Forged(raw) => Some(ChannelId::from_raw(raw)),
                _ => None,
            }
        };
        let mut inputs = Vec::new();
        match *step {
            Step::Accept => inputs.push(Input::Accept { peer }),
            Step::AcceptFlood(n) => inputs.extend((0..=n).map(|_| Input::Accept { peer })),
            Step::Received(p, len) => inputs.extend(pick(p).map(|id| Input::Received {
                id,
                data: bytes(Size::Small(len)),
            })),
            Step::PeerEof(p) => inputs.extend(pick(p).map(|id| Input::PeerEof { id })),
            Step::IoError(p, reset) => inputs.extend(pick(p).map(|id| Input::IoError {
                id,
                kind: if reset {
                    io::ErrorKind::ConnectionReset
                } else {
                    io::ErrorKind::TimedOut
                },
            })),
            Step::Written(p, percent) => inputs.extend(pick(p).map(|id| {
                let queued = hub.channel(id).map_or(3, |c| c.queued);
                let n = (queued * usize::from(percent)).div_ceil(100);
                Input::Written { id, n }
            })),
            Step::Send(p, size) => inputs.extend(pick(p).map(|id| Input::Send {
                id,
                data: bytes(size),
            })),
            Step::Broadcast(size) => inputs.push(Input::Broadcast { data: bytes(size) }),
            Step::Kick(p, abort, code) => inputs.extend(pick(p).map(|id| Input::Kick {
                id,
                mode: if abort {
                    KickMode::Abort
                } else {
                    KickMode::Graceful
                },
                code: code.into(),
            })),
            Step::KickDefault(p) => inputs.extend(pick(p).map(|id| Input::KickDefault { id })),
            Step::Authenticate(p) => inputs.extend(pick(p).map(|id| Input::Authenticate { id })),
            Step::Attach(p) => inputs.extend(pick(p).map(|id| Input::Attach { id })),
            Step::Detach(p) => inputs.extend(pick(p).map(|id| Input::Detach { id })),
            Step::Closed(p) => inputs.extend(pick(p).map(|id| Input::Closed { id })),
            Step::ConfirmRequested => {
                inputs.extend(requested.drain(..).map(|id| Input::Closed { id }));
            }
            Step::Timeout => inputs.push(Input::Timeout),
            Step::Advance(ms) => {
                clock += Duration::from_millis(ms.into());
                inputs.push(Input::Timeout);
            }
            Step::Rewind(ms) => skew = Duration::from_millis(ms.into()),
            Step::Shutdown(ms) => inputs.push(Input::Shutdown {
                grace: Duration::from_millis(ms.into()),
            }),
        }
        for input in inputs {
            let now = start + clock.saturating_sub(std::mem::take(&mut skew));
            let (mut actions, mut events) = (Vec::new(), Vec::new());
            let outcome = checker
                .step(&mut hub, now, &input, &mut actions, &mut events)
                .map_err(|v| format!("step {i} ({step:?}): {v}"))?;
            if let Outcome::Opened(id) = outcome {
                ever.push(id);
            }
            requested.extend(actions.iter().filter_map(|a| match a {
                Action::CloseSocket { id } => Some(*id),
                _ => None,
            }));
            record.push((outcome, actions, events));
        }
    }
    Ok(record)
}

/// Cases per configuration; each case is up to `SIZE` steps.
const CASES: u64 = 300;
const SIZE: usize = 300;

fn check_all(property: fn(Steps) -> TestResult) {
    QuickCheck::new()
        .tests(CASES)
        .rng(Gen::new(SIZE))
        .quickcheck(property);
}

#[test]
fn no_sequence_breaks_an_invariant_or_panics() {
    fn property(steps: Steps) -> TestResult {
        let start = Instant::now();
        for (k, config) in configs().iter().enumerate() {
            if let Err(e) = run(config, &steps.0, start) {
                return TestResult::error(format!("config {k}: {e}"));
            }
        }
        TestResult::passed()
    }
    check_all(property);
}

#[test]
fn the_same_sequence_gives_the_same_outputs() {
    fn property(steps: Steps) -> TestResult {
        let start = Instant::now();
        for config in configs() {
            let first = run(&config, &steps.0, start);
            let second = run(&config, &steps.0, start);
            if first != second {
                return TestResult::error("two runs of one sequence differ (invariant 9)");
            }
        }
        TestResult::passed()
    }
    check_all(property);
}

#[test]
fn hostile_calls_on_dead_ids_are_rejected_not_obeyed() {
    // A focused sequence: open, release, then every call with the old id.
    let config = Config::default();
    let id_calls = |id: ChannelId| {
        vec![
            Input::Received {
                id,
                data: Bytes::from_static(b"x"),
            },
            Input::PeerEof { id },
            Input::Written { id, n: 1 },
            Input::Send {
                id,
                data: Bytes::from_static(b"x"),
            },
            Input::Kick {
                id,
                mode: KickMode::Abort,
                code: 1,
            },
            Input::Attach { id },
            Input::Detach { id },
            Input::Closed { id },
        ]
    };
    let mut hub = Hub::new(config.clone()).unwrap();
    let mut checker = Checker::new(&config);
    let now = Instant::now();
    let (mut a, mut e) = (Vec::new(), Vec::new());
    let peer = "127.0.0.1:1".parse().unwrap();
    let Ok(Outcome::Opened(id)) =
        checker.step(&mut hub, now, &Input::Accept { peer }, &mut a, &mut e)
    else {
        panic!("accept failed");
    };
    for input in [
        Input::Kick {
            id,
            mode: KickMode::Abort,
            code: 2,
        },
        Input::Closed { id },
    ] {
        checker.step(&mut hub, now, &input, &mut a, &mut e).unwrap();
    }
    let (mut a, mut e) = (Vec::new(), Vec::new());
    for input in id_calls(id) {
        let outcome = checker.step(&mut hub, now, &input, &mut a, &mut e).unwrap();
        assert!(
            matches!(outcome, Outcome::Rejected(_)),
            "{input:?} -> {outcome:?}"
        );
    }
    assert!(
        a.is_empty() && e.is_empty(),
        "dead ids produced {a:?} {e:?}"
    );
}
