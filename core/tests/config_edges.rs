//! Configurations at their edges (issue 16): every `usize` field drawn from
//! the full range — `usize::MAX` and the values next to it, the queue
//! limit's bound `Config::MAX_QUEUE_LIMIT` and its neighbours, 0, 1 — and
//! every `Duration` from zero to `Duration::MAX`. `validate` must answer
//! without a panic, `Hub::new` must agree with it, and a hub it accepts must
//! take any input sequence (sends of every size, broadcasts, writes, kicks,
//! timeouts, time running backwards or jumping, runs that start next to
//! the last instant `Instant` holds) without a panic, every step checked by
//! the `Checker` against invariants 1–12 of docs/design.md §4. Run in debug,
//! where an overflowing `+` panics.

use std::time::{Duration, Instant};

use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use tether_core::{Config, ConfigError, HalfClosePolicy, Hub, KickMode, MAX_SLOTS, OverflowPolicy};

#[path = "common/steps.rs"]
mod steps;

use steps::{Run, Step};

/// A `usize` from the edges of its range, or anywhere in it.
fn edge_usize(g: &mut Gen) -> usize {
    const HALF: usize = usize::MAX / 2;
    let edges = [
        0,
        1,
        2,
        3,
        96,
        usize::MAX,
        usize::MAX - 1,
        usize::MAX - 2,
        HALF - 1,
        HALF,
        HALF + 1,
        HALF + 2,
        MAX_SLOTS - 1,
        MAX_SLOTS,
        MAX_SLOTS + 1,
    ];
    match u8::arbitrary(g) % 4 {
        0 | 1 => *g.choose(&edges).unwrap(),
        2 => usize::from(u16::arbitrary(g)),
        _ => usize::arbitrary(g),
    }
}

/// A `usize` in `0..=max`, most often at its ends or next to them.
fn at_most(g: &mut Gen, max: usize) -> usize {
    match u8::arbitrary(g) % 6 {
        0 => max,
        1 => max.saturating_sub(1),
        2 => 0,
        3 => max / 2,
        4 => edge_usize(g).min(max),
        _ => usize::arbitrary(g) % max.saturating_add(1).max(1),
    }
}

/// A `Duration` from zero to `Duration::MAX`, most often at an edge.
fn edge_duration(g: &mut Gen) -> Duration {
    let edges = [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_millis(1),
        Duration::from_millis(150),
        Duration::from_secs(2),
        Duration::from_secs(24 * 60 * 60),
        Duration::from_secs(u64::from(u32::MAX)),
        Duration::from_secs(i64::MAX as u64),
        Duration::from_secs(u64::MAX / 2),
        Duration::from_secs(u64::MAX),
        Duration::MAX - Duration::from_nanos(1),
        Duration::MAX,
    ];
    match u8::arbitrary(g) % 3 {
        0 | 1 => *g.choose(&edges).unwrap(),
        _ => Duration::new(u64::arbitrary(g), u32::arbitrary(g) % 1_000_000_000),
    }
}

fn edge_timeout(g: &mut Gen) -> Option<Duration> {
    bool::arbitrary(g).then(|| edge_duration(g))
}

/// A configuration drawn at the edges: a quarter of them field by field
/// (mostly refused by `validate`), the rest with the fields ordered the way
/// `validate` wants them, so that most are accepted and run.
#[derive(Debug, Clone)]
struct EdgeConfig(Config);

impl Arbitrary for EdgeConfig {
    fn arbitrary(g: &mut Gen) -> EdgeConfig {
        let independent = u8::arbitrary(g) % 4 == 0;
        let max_channels = if independent {
            edge_usize(g)
        } else {
            at_most(g, MAX_SLOTS).max(1)
        };
        let queue_limit = edge_usize(g);
        let (high, low, overhead, resume) = if independent {
            (edge_usize(g), edge_usize(g), edge_usize(g), edge_usize(g))
        } else {
            let high = at_most(g, queue_limit);
            let low = at_most(g, high);
            let overhead = at_most(g, queue_limit.saturating_sub(1));
            (high, low, overhead, at_most(g, max_channels - 1))
        };
        let config = Config::default().with(|c| {
            c.shard = u8::arbitrary(g);
            c.max_channels = max_channels;
            c.accept_resume_at = bool::arbitrary(g).then_some(resume);
            c.queue_limit = queue_limit;
            c.high_watermark = high;
            c.low_watermark = low;
            c.message_overhead = overhead;
            c.overflow = *g
                .choose(&[OverflowPolicy::Reject, OverflowPolicy::KickSlowConsumer])
                .unwrap();
            c.half_close = *g
                .choose(&[HalfClosePolicy::Allow, HalfClosePolicy::Disallow])
                .unwrap();
            c.default_kick = *g.choose(&[KickMode::Graceful, KickMode::Abort]).unwrap();
            c.idle_timeout = edge_timeout(g);
            c.login_timeout = edge_timeout(g);
            c.stall_timeout = edge_timeout(g);
            c.flush_timeout = edge_duration(g);
            c.holder_overdue_after = edge_duration(g);
            c.max_clock_jump = edge_duration(g);
        });
        EdgeConfig(config)
    }
}

/// A run: a configuration at the edges, where its clock starts, and steps.
#[derive(Debug, Clone)]
struct Case {
    config: EdgeConfig,
    /// Start an hour before the last instant `Instant` can hold, so that
    /// deadlines and jumps run past it.
    at_the_end_of_time: bool,
    steps: Vec<Step>,
}

impl Arbitrary for Case {
    fn arbitrary(g: &mut Gen) -> Case {
        Case {
            config: EdgeConfig::arbitrary(g),
            at_the_end_of_time: u8::arbitrary(g) % 4 == 0,
            steps: Vec::arbitrary(g),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Case>> {
        // Drop halves, then single steps; the configuration stays.
        let case = self.clone();
        let n = case.steps.len();
        let halves = [case.steps[..n / 2].to_vec(), case.steps[n / 2..].to_vec()];
        let singles = (0..n).map(move |i| {
            let mut steps = case.steps.clone();
            steps.remove(i);
            steps
        });
        let case = self.clone();
        Box::new(
            halves
                .into_iter()
                .filter(move |h| h.len() < n)
                .chain(singles)
                .map(move |steps| Case {
                    steps,
                    ..case.clone()
                }),
        )
    }
}

/// The last instant after `from` that `Instant` can hold (to the second).
fn end_of_time(from: Instant) -> Instant {
    let (mut fits, mut overflows) = (0u64, u64::MAX);
    while overflows - fits > 1 {
        let mid = fits + (overflows - fits) / 2;
        if from.checked_add(Duration::from_secs(mid)).is_some() {
            fits = mid;
        } else {
            overflows = mid;
        }
    }
    from + Duration::from_secs(fits)
}

/// What `validate` promises of a configuration it accepts: every sum the
/// hub forms from the queue fields fits in a `usize`.
fn sums_fit(c: &Config) -> bool {
    c.queue_limit.checked_mul(2).is_some()
        && c.queue_limit.checked_add(c.message_overhead).is_some()
        && c.low_watermark <= c.high_watermark
        && c.high_watermark <= c.queue_limit
        && c.message_overhead < c.queue_limit
}

fn property(case: Case) -> TestResult {
    let config = case.config.0;
    let valid = config.validate();
    if let Err(e) = Hub::new(config.clone()).map(drop) {
        if valid != Err(e.clone()) {
            return TestResult::error(format!("Hub::new says {e:?}, validate {valid:?}"));
        }
        if matches!(e, ConfigError::QueueLimitTooLarge { .. })
            && config.queue_limit <= Config::MAX_QUEUE_LIMIT
        {
            return TestResult::error(format!("{e:?} for {config:?}"));
        }
        return TestResult::discard();
    }
    if valid.is_err() || !sums_fit(&config) {
        return TestResult::error(format!("accepted {config:?}: {valid:?}"));
    }
    let now = Instant::now();
    let start = if case.at_the_end_of_time {
        end_of_time(now) - Duration::from_secs(3_600)
    } else {
        now
    };
    match Run::new(&config, start).check(&case.steps) {
        Ok(()) => TestResult::passed(),
        Err(e) => TestResult::error(format!("{config:?}: {e}")),
    }
}

#[test]
fn configs_at_the_edges_validate_and_run_without_a_panic() {
    QuickCheck::new()
        .tests(1_000)
        .max_tests(10_000)
        .rng(Gen::new(200))
        .quickcheck(property as fn(Case) -> TestResult);
}

#[test]
fn the_edges_are_drawn() {
    // The generator reaches the values the property is about: accepted
    // configurations with the largest queue limit and with `Duration::MAX`.
    let mut g = Gen::new(200);
    let (mut largest, mut forever, mut refused) = (0, 0, 0);
    for _ in 0..2_000 {
        let EdgeConfig(c) = EdgeConfig::arbitrary(&mut g);
        match c.validate() {
            Ok(()) => {
                largest += usize::from(c.queue_limit == Config::MAX_QUEUE_LIMIT);
                forever += usize::from(c.flush_timeout == Duration::MAX);
            }
            Err(ConfigError::QueueLimitTooLarge { .. }) => refused += 1,
            Err(_) => {}
        }
    }
    assert!(
        largest > 0 && forever > 0 && refused > 0,
        "{largest} {forever} {refused}"
    );
}

#[test]
fn a_graceful_close_at_the_last_second_instant_holds() {
    // Found by the property: on a clock at the last second `Instant` holds,
    // a flush deadline cannot lie ahead; the close escalates in the same
    // call, and the checker's model agrees.
    let config = Config::default().with(|c| {
        c.idle_timeout = Some(Duration::from_nanos(1));
        c.flush_timeout = Duration::MAX;
    });
    let start = end_of_time(Instant::now()) - Duration::from_secs(3_600);
    let steps = [Step::Accept, Step::Jump(1), Step::Timeout];
    Run::new(&config, start).check(&steps).unwrap();
}
