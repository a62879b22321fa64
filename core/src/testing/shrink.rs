//! Shrinking a failing sequence of inputs to a short one that still fails:
//! delete chunks of lines, halving the chunk size (ddmin), then make lines
//! simpler, until nothing more can go.
//!
//! Generic over the line type: the simulator shrinks its traces with it
//! and the flight recorder its recordings; the predicate is usually "the
//! checker still finds the same violation".
//!
//! ```
//! use tether_core::testing::shrink::{ShrinkLimits, ddmin};
//! // "Fails" while both 3 and 7 are in: ddmin keeps exactly those.
//! let lines: Vec<u32> = (0..100).collect();
//! let small = ddmin(lines, ShrinkLimits::default(), |c| c.contains(&3) && c.contains(&7));
//! assert_eq!(small, vec![3, 7]);
//! ```

use std::time::{Duration, Instant};

/// Limits for one shrink.
#[derive(Debug, Clone, Copy)]
pub struct ShrinkLimits {
    /// Most replays to try.
    pub max_replays: usize,
    /// Most wall-clock time to spend.
    pub max_time: Duration,
}

impl Default for ShrinkLimits {
    fn default() -> Self {
        ShrinkLimits {
            max_replays: 50_000,
            max_time: Duration::from_secs(60),
        }
    }
}

/// The budget of one shrink: replays tried and time spent.
struct Budget {
    limits: ShrinkLimits,
    started: Instant,
    replays: usize,
}

impl Budget {
    fn exhausted(&self) -> bool {
        self.replays >= self.limits.max_replays || self.started.elapsed() >= self.limits.max_time
    }
}

/// Shrinks `lines`, a sequence for which `fails` holds, to a short one for
/// which it still holds: deletes chunks of lines with the chunk size halving
/// down to one (ddmin), then replaces single lines by the simpler versions
/// `simpler` offers, and repeats while that deletes anything, within
/// `limits`.
///
/// `fails(candidate)` answers `None` when the candidate does not fail, and
/// `Some(n)` when it does, with `n` the length of the prefix that already
/// fails (`candidate.len()` when unknown): the rest is dropped at once. Each
/// call counts as one replay. The result is always a candidate for which
/// `fails` answered `Some` (or `lines` itself).
pub fn shrink_lines<T: Clone>(
    lines: Vec<T>,
    limits: ShrinkLimits,
    mut simpler: impl FnMut(&T) -> Vec<T>,
    mut fails: impl FnMut(&[T]) -> Option<usize>,
) -> Vec<T> {
    let mut budget = Budget {
        limits,
        started: Instant::now(),
        replays: 0,
    };
    let mut fails = |candidate: &[T], budget: &mut Budget| {
        budget.replays += 1;
        fails(candidate).map(|n| n.min(candidate.len()))
    };
    let mut best = lines;
    loop {
        let before = best.len();
        best = delete_chunks(&mut budget, best, &mut fails);
        best = simplify_lines(&mut budget, best, &mut simpler, &mut fails);
        if best.len() >= before || budget.exhausted() {
            return best;
        }
    }
}

/// [`shrink_lines`] without simplification and with a plain predicate:
/// the smallest subsequence of `lines` (found by deleting chunks, ddmin)
/// for which `fails` still holds, within `limits`.
pub fn ddmin<T: Clone>(
    lines: Vec<T>,
    limits: ShrinkLimits,
    mut fails: impl FnMut(&[T]) -> bool,
) -> Vec<T> {
    shrink_lines(
        lines,
        limits,
        |_| Vec::new(),
        |c| fails(c).then_some(c.len()),
    )
}

fn delete_chunks<T: Clone>(
    budget: &mut Budget,
    mut best: Vec<T>,
    fails: &mut impl FnMut(&[T], &mut Budget) -> Option<usize>,
) -> Vec<T> {
    let mut chunk = best.len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        while i < best.len() && !budget.exhausted() {
            let mut candidate = best.clone();
            let end = (i + chunk).min(candidate.len());
            candidate.drain(i..end);
            match fails(&candidate, budget) {
                Some(n) => {
                    candidate.truncate(n);
                    best = candidate;
                }
                None => i += chunk,
            }
        }
        if chunk == 1 || budget.exhausted() {
            return best;
        }
        chunk = chunk.div_ceil(2);
    }
}

fn simplify_lines<T: Clone>(
    budget: &mut Budget,
    mut best: Vec<T>,
    simpler: &mut impl FnMut(&T) -> Vec<T>,
    fails: &mut impl FnMut(&[T], &mut Budget) -> Option<usize>,
) -> Vec<T> {
    let mut i = 0;
    while i < best.len() && !budget.exhausted() {
        let mut improved = false;
        for line in simpler(&best[i]) {
            let mut candidate = best.clone();
            candidate[i] = line;
            if let Some(n) = fails(&candidate, budget) {
                candidate.truncate(n);
                best = candidate;
                improved = true;
                break;
            }
        }
        if !improved {
            i += 1;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddmin_keeps_only_the_lines_that_matter() {
        let lines: Vec<u32> = (0..1000).collect();
        let small = ddmin(lines, ShrinkLimits::default(), |c| {
            c.contains(&10) && c.contains(&500) && c.contains(&999)
        });
        assert_eq!(small, vec![10, 500, 999]);
    }

    #[test]
    fn shrink_lines_truncates_and_simplifies() {
        // Fails once the running sum reaches 100: the prefix up to there is
        // all that is needed, and numbers shrink by halving.
        let lines: Vec<u32> = (0..50).map(|i| 10 + i % 7).collect();
        let fails = |c: &[u32]| {
            let mut sum = 0;
            c.iter()
                .position(|&x| {
                    sum += x;
                    sum >= 100
                })
                .map(|i| i + 1)
        };
        let halve = |&x: &u32| if x > 0 { vec![x / 2] } else { Vec::new() };
        let small = shrink_lines(lines, ShrinkLimits::default(), halve, fails);
        assert!(fails(&small).is_some());
        assert!(small.len() <= 8, "{small:?}"); // from 50 lines
    }

    #[test]
    fn the_budget_is_respected() {
        let mut calls = 0;
        let limits = ShrinkLimits {
            max_replays: 5,
            max_time: Duration::from_secs(60),
        };
        let small = ddmin((0..100).collect::<Vec<u32>>(), limits, |c| {
            calls += 1;
            c.contains(&42)
        });
        assert!(calls <= 5 && small.contains(&42), "{calls} {small:?}");
    }
}
