//! Property tests: random sequences of every hub input — hostile ones
//! included (stale and forged ids, double kicks, detach without attach,
//! closes confirmed twice or never requested, time running backwards, sends
//! to closing channels, oversized sends, accept floods) — under several
//! configurations (per-message overheads from none to most of the limit,
//! stall timeouts from 1 ms to never), each step checked by `tether_core::testing::Checker`
//! against its reference model (invariants 1–12 of docs/design.md §4). No
//! sequence may break an invariant or panic, and the same sequence must give
//! the same outputs twice (invariant 9).

use std::time::{Duration, Instant};

use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use tether_core::testing::{Checker, Input, Outcome};
use tether_core::{Bytes, ChannelId, Config, HalfClosePolicy, Hub, KickMode, OverflowPolicy};

#[path = "common/steps.rs"]
mod steps;

use steps::{Observed, Run, Step};

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

/// Runs `steps` on a fresh hub under `config`, checking every step: what
/// each input gave, or the first violation.
fn run(config: &Config, steps: &[Step], start: Instant) -> Result<Vec<Observed>, String> {
    Run::new(config, start).play(steps)
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
