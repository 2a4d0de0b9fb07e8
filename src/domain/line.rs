//! How the line talks to the person in it: expected wait and when to ask again.

use super::Admission;

/// The longest visitor id a join may carry.
pub const MAX_VISITOR_CHARS: usize = 64;

/// The expected wait and a pessimistic bound, in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eta {
    pub seconds: u64,
    pub max_seconds: u64,
}

/// What holds a waiting person back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Admission's pace, `per_second`.
    Rate,
    /// Every pass is taken: the next place waits for passes to end or run out.
    Passes,
    /// The organiser paused admission: nobody moves until it resumes.
    Paused,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Rate => "rate",
            Limit::Passes => "passes",
            Limit::Paused => "paused",
        }
    }
}

/// The wait a person can expect, and what it waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub eta: Eta,
    pub limited_by: Limit,
}

/// The share of the nominal rate assumed by the pessimistic bound: the operator
/// may lower the rate while people wait.
const PESSIMISTIC_RATE_SHARE: f64 = 0.6;
/// Seconds of slack in the pessimistic bound for the admission worker's own cadence.
const PESSIMISTIC_SLACK_SECONDS: u64 = 5;

/// How long until the person at `position` is admitted, under both limits on
/// admission: at most `per_second` on average, and at most `max_active` valid
/// passes at once. `passes` are the passes valid now, as (seconds until they
/// run out, how many), soonest first.
///
/// A pass may end early (its holder is done), but nobody knows when, so each is
/// assumed to last until it runs out, and each pass still to be issued to last
/// `pass_seconds`: the estimate is never known to be too short. When passes are
/// the limit it falls as soon as buyers ahead finish early.
pub fn estimate<P>(position: u64, admission: &Admission, paused: bool, passes: P) -> Estimate
where
    P: IntoIterator<Item = (f64, u64)>,
    P::IntoIter: Clone,
{
    let passes = passes.into_iter();
    let slots = Slots::new(admission.max_active, passes);
    let pass_seconds = f64::from(admission.pass_seconds);
    let rate = sane_rate(admission.per_second);
    let expected = admission_time(position, rate, pass_seconds, &slots);
    let pessimistic = admission_time(
        position,
        rate * PESSIMISTIC_RATE_SHARE,
        pass_seconds,
        &slots,
    );
    let limited_by = if paused {
        Limit::Paused
    } else if expected.passes > expected.rate {
        Limit::Passes
    } else {
        Limit::Rate
    };
    Estimate {
        eta: Eta {
            seconds: whole_seconds(expected.total()),
            max_seconds: whole_seconds(pessimistic.total())
                .saturating_add(PESSIMISTIC_SLACK_SECONDS),
        },
        limited_by,
    }
}

/// Any float a rate can be read as, made one the arithmetic can divide by.
fn sane_rate(per_second: f64) -> f64 {
    per_second.max(1e-3)
}

fn whole_seconds(seconds: f64) -> u64 {
    // `as` saturates: an infinite wait reads as u64::MAX, NaN as 0 (which no input here makes).
    seconds.ceil().min(u64::MAX as f64) as u64
}

/// The time each of the `max_active` pass slots frees, from the passes valid now.
struct Slots<P> {
    max_active: u64,
    /// Slots free now.
    free: u64,
    /// Passes that must end before any slot frees (`max_active` was lowered below them).
    excess: u64,
    passes: P,
}

impl<P: Iterator<Item = (f64, u64)> + Clone> Slots<P> {
    fn new(max_active: u64, passes: P) -> Self {
        let max_active = max_active.max(1);
        let active = passes
            .clone()
            .fold(0u64, |sum, (_, n)| sum.saturating_add(n));
        Self {
            max_active,
            free: max_active.saturating_sub(active),
            excess: active.saturating_sub(max_active),
            passes,
        }
    }

    /// Seconds until slot `slot` (1..=max_active, in the order they free) is free.
    fn free_in(&self, slot: u64) -> f64 {
        if slot <= self.free {
            return 0.0;
        }
        // The pass whose end frees this slot, counted in the order passes run out.
        let mut nth = self.excess.saturating_add(slot - self.free);
        for (seconds, count) in self.passes.clone() {
            if nth <= count {
                return seconds.max(0.0);
            }
            nth -= count;
        }
        0.0
    }
}

/// A wait in its two parts: what the rate alone imposes, and what waiting for passes imposes.
struct Wait {
    rate: f64,
    passes: f64,
}

impl Wait {
    fn total(&self) -> f64 {
        self.rate.max(self.passes)
    }
}

/// Person `position` is admitted no sooner than `position / rate`, nor before a
/// slot is free for them: slot `j` frees for person `j` of each round of
/// `max_active`, and a slot given to someone is given again `pass_seconds` later.
fn admission_time<P: Iterator<Item = (f64, u64)> + Clone>(
    position: u64,
    rate: f64,
    pass_seconds: f64,
    slots: &Slots<P>,
) -> Wait {
    if position == 0 {
        return Wait {
            rate: 0.0,
            passes: 0.0,
        };
    }
    let max_active = slots.max_active;
    let rounds = (position - 1) / max_active;
    let slot = position - rounds * max_active;
    let mut passes = slots.free_in(slot) + rounds as f64 * pass_seconds;
    if rounds > 0 {
        // Those admitted into recycled slots are paced by the rate too; the
        // admission time of the person `i` rounds ahead, plus `i` passes, is linear
        // in `i`, so its largest value is at the first or the last round.
        let recycled = |i: u64| (position - i * max_active) as f64 / rate + i as f64 * pass_seconds;
        passes = passes.max(recycled(1)).max(recycled(rounds));
    }
    Wait {
        rate: position as f64 / rate,
        passes,
    }
}

/// Polls per person while they wait, far from the front.
const POLLS_PER_WAIT: u64 = 10;
const NEAR_FRONT_MS: u64 = 1_000;
const FAR_FLOOR_MS: u64 = 2_000;
const CEILING_MS: u64 = 30_000;

/// When a waiting client should poll again: often near the front, rarely far from
/// it, always well inside `abandon_seconds`, and spread by `jitter_seed` (a stable
/// per-token value) so that a crowd that joined together does not poll together.
pub fn poll_after_ms(eta_seconds: u64, abandon_seconds: u32, jitter_seed: u64) -> u64 {
    let abandon_ms = u64::from(abandon_seconds) * 1_000;
    // Three polls per abandonment window: one lost request never abandons anyone.
    let ceiling = CEILING_MS.min(abandon_ms / 3).max(100);
    let base = if eta_seconds <= 5 {
        NEAR_FRONT_MS
    } else {
        (eta_seconds.saturating_mul(1_000) / POLLS_PER_WAIT).max(FAR_FLOOR_MS)
    };
    let base = base.min(ceiling);
    // ±10% spread, never above the ceiling.
    let spread = base / 10;
    let jittered = if spread == 0 {
        base
    } else {
        base - spread + jitter_seed % (2 * spread + 1)
    };
    jittered.min(ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(per_second: f64, max_active: u64, pass_seconds: u32) -> Admission {
        Admission {
            per_second,
            max_active,
            pass_seconds,
            abandon_seconds: 60,
        }
    }

    /// The estimate with no pass in force and room for everyone: the rate alone.
    fn eta(position: u64, rate: f64) -> Eta {
        estimate(position, &admission(rate, u64::MAX, 600), false, []).eta
    }

    #[test]
    fn with_passes_to_spare_the_rate_sets_the_wait() {
        assert_eq!(
            eta(100, 10.0),
            Eta {
                seconds: 10,
                max_seconds: 17 + 5
            }
        );
        assert_eq!(
            eta(1, 50.0),
            Eta {
                seconds: 1,
                max_seconds: 1 + 5
            }
        );
        assert_eq!(
            eta(3, 0.5),
            Eta {
                seconds: 6,
                max_seconds: 10 + 5
            }
        );
        let e = estimate(3, &admission(0.5, 10, 600), false, [(100.0, 2)]);
        assert_eq!(
            (e.eta, e.limited_by),
            (
                Eta {
                    seconds: 6,
                    max_seconds: 15
                },
                Limit::Rate
            )
        );
    }

    /// Early in a sale nothing has been admitted yet: 36 people at 0.2/s wait
    /// 3 minutes (the measured rate once read 2× too fast here).
    #[test]
    fn early_in_a_sale_the_wait_is_the_nominal_rate() {
        let e = estimate(36, &admission(0.2, 500, 600), false, []);
        assert_eq!((e.eta.seconds, e.limited_by), (180, Limit::Rate));
        assert!(e.eta.max_seconds >= 300);
    }

    /// Every pass taken: the person at the front waits for the first to run out,
    /// not one second.
    #[test]
    fn with_every_pass_taken_the_front_waits_for_a_pass_to_end() {
        let full = admission(50.0, 2, 60);
        let e = estimate(1, &full, false, [(35.0, 1), (58.0, 1)]);
        assert_eq!((e.eta.seconds, e.limited_by), (35, Limit::Passes));
        assert!(e.eta.max_seconds >= 35);
        assert_eq!(
            estimate(2, &full, false, [(35.0, 1), (58.0, 1)])
                .eta
                .seconds,
            58
        );
        // The third waits for the first slot to be given again and run out once more.
        assert_eq!(
            estimate(3, &full, false, [(35.0, 1), (58.0, 1)])
                .eta
                .seconds,
            95
        );
        // One free slot: the front goes in at the rate, the next waits for a pass.
        let one_free = estimate(1, &full, false, [(35.0, 1)]);
        assert_eq!(
            (one_free.eta.seconds, one_free.limited_by),
            (1, Limit::Rate)
        );
        assert_eq!(estimate(2, &full, false, [(35.0, 1)]).eta.seconds, 35);
    }

    /// Deep in a line where passes are the limit, each round of `max_active`
    /// people waits a whole `pass_seconds`.
    #[test]
    fn deep_in_a_pass_limited_line_each_round_takes_a_pass() {
        let e = estimate(250, &admission(100.0, 100, 60), false, [(10.0, 100)]);
        assert_eq!((e.eta.seconds, e.limited_by), (10 + 2 * 60, Limit::Passes));
        // Fast passes: the rate limits again.
        let e = estimate(250, &admission(1.0, 100, 60), false, [(10.0, 100)]);
        assert_eq!((e.eta.seconds, e.limited_by), (250, Limit::Rate));
    }

    #[test]
    fn passes_beyond_a_lowered_max_active_must_end_first() {
        let e = estimate(
            1,
            &admission(10.0, 1, 60),
            false,
            [(5.0, 1), (20.0, 1), (40.0, 1)],
        );
        assert_eq!(e.eta.seconds, 40);
    }

    #[test]
    fn a_paused_sale_says_so() {
        let e = estimate(5, &admission(1.0, 100, 60), true, []);
        assert_eq!(e.limited_by, Limit::Paused);
        assert!(e.eta.max_seconds >= e.eta.seconds);
    }

    #[test]
    fn eta_survives_a_zero_rate() {
        let e = eta(10, 0.0);
        assert!(e.seconds > 0 && e.max_seconds >= e.seconds);
    }

    #[test]
    fn the_bound_is_never_below_the_estimate() {
        for position in [1, 7, 1000, 1_000_000] {
            for rate in [0.1, 1.0, 33.3, 5000.0] {
                let e = eta(position, rate);
                assert!(e.max_seconds >= e.seconds, "{position} at {rate}");
            }
        }
    }

    #[test]
    fn near_the_front_polls_every_second() {
        for seed in 0..50 {
            let ms = poll_after_ms(3, 60, seed);
            assert!((900..=1100).contains(&ms), "{ms}");
        }
    }

    #[test]
    fn far_from_the_front_polls_rarely_but_inside_the_abandon_window() {
        assert!(poll_after_ms(3600, 60, 0) <= 20_000);
        assert!(poll_after_ms(3600, 600, 0) >= 27_000);
        assert!(poll_after_ms(100, 60, 0) >= 9_000 && poll_after_ms(100, 60, 0) <= 11_000);
        assert!(poll_after_ms(1_000_000, 1, 7) <= 333);
        // An estimate past u64::MAX / 1000 seconds (eta() saturates to u64::MAX) once overflowed.
        assert!((27_000..=30_000).contains(&poll_after_ms(u64::MAX, 600, 7)));
    }

    #[test]
    fn poll_intervals_grow_with_distance() {
        let near = poll_after_ms(2, 60, 0);
        let mid = poll_after_ms(60, 60, 0);
        let far = poll_after_ms(600, 60, 0);
        assert!(near < mid && mid < far, "{near} {mid} {far}");
    }

    #[test]
    fn jitter_spreads_a_crowd() {
        let distinct: std::collections::HashSet<_> =
            (0..100).map(|s| poll_after_ms(100, 60, s)).collect();
        assert!(distinct.len() > 50);
    }

    use proptest::prelude::*;

    /// Rates of every kind a float can be, not only those validation lets through.
    fn rates() -> impl Strategy<Value = f64> {
        prop_oneof![
            0.0..1e6,
            any::<f64>(),
            prop::sample::select(vec![
                0.0,
                -0.0,
                -1.0,
                1e-300,
                1e300,
                f64::MIN_POSITIVE,
                f64::MAX,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NAN
            ]),
        ]
    }

    fn positions() -> impl Strategy<Value = u64> {
        prop_oneof![0..10_000u64, any::<u64>(), Just(u64::MAX)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn the_bound_never_undercuts_the_estimate_for_any_input(
            position in positions(),
            rate in rates(),
            max_active in prop_oneof![1..1_000u64, any::<u64>()],
            pass_seconds in any::<u32>(),
            passes in prop::collection::vec((0.0..1e6f64, 0..1_000u64), 0..8),
        ) {
            let mut passes = passes;
            passes.sort_by(|a, b| a.0.total_cmp(&b.0));
            let e = estimate(position, &admission(rate, max_active, pass_seconds), false, passes.iter().copied()).eta;
            prop_assert!(e.max_seconds >= e.seconds, "{e:?}");
            prop_assert!(e.max_seconds >= PESSIMISTIC_SLACK_SECONDS, "{e:?}");
        }

        /// Whatever the passes in force, nobody is promised a wait shorter than the
        /// rate allows, nor shorter than the time until the pass that frees their
        /// slot runs out; further back never waits less.
        #[test]
        fn the_estimate_respects_both_limits(
            position in 1..5_000u64,
            more in 0..500u64,
            rate in 1e-2..1e4f64,
            max_active in 1..300u64,
            pass_seconds in 1..3_600u32,
            passes in prop::collection::vec((0.0..=1.0f64, 1..50u64), 0..8),
        ) {
            // Passes run out within `pass_seconds` of now.
            let mut passes: Vec<(f64, u64)> =
                passes.into_iter().map(|(share, n)| (share * f64::from(pass_seconds), n)).collect();
            passes.sort_by(|a, b| a.0.total_cmp(&b.0));
            let terms = admission(rate, max_active, pass_seconds);
            let e = estimate(position, &terms, false, passes.iter().copied());
            prop_assert!(e.eta.seconds as f64 >= position as f64 / rate * (1.0 - 1e-9), "{e:?}");
            let active: u64 = passes.iter().map(|p| p.1).sum();
            let free = max_active.saturating_sub(active);
            if position <= max_active && position > free {
                // The slot for `position` frees when this many passes have run out.
                let mut nth = active.saturating_sub(max_active) + position - free;
                let runs_out = passes.iter().find_map(|&(s, n)| if nth <= n { Some(s) } else { nth -= n; None });
                if let Some(runs_out) = runs_out {
                    prop_assert!(e.eta.seconds as f64 >= runs_out, "{e:?} before {runs_out}");
                    prop_assert_eq!(e.limited_by == Limit::Passes, runs_out > position as f64 / rate);
                }
            }
            let further = estimate(position + more, &terms, false, passes.iter().copied());
            prop_assert!(further.eta.seconds >= e.eta.seconds && further.eta.max_seconds >= e.eta.max_seconds);
        }

        /// At a rate a line can have, the estimate is at least one second for anyone
        /// in it, never promises more than the rate allows, and grows with the position.
        #[test]
        fn the_estimate_follows_position_and_rate(position in positions(), more in 0..1_000u64, rate in 1e-3..1e9f64) {
            let e = eta(position, rate);
            if position > 0 {
                prop_assert!(e.seconds >= 1, "{e:?}");
            }
            prop_assert!(e.seconds as f64 >= (position as f64 / rate).min(u64::MAX as f64) * (1.0 - 1e-9), "{e:?}");
            let further = eta(position.saturating_add(more), rate);
            prop_assert!(further.seconds >= e.seconds && further.max_seconds >= e.max_seconds);
            let faster = eta(position, rate * 2.0);
            prop_assert!(faster.seconds <= e.seconds && faster.max_seconds <= e.max_seconds);
        }

        /// Never above 30 s nor a third of the abandonment window (but never a busy
        /// loop either), about a second near the front, and no faster than a second
        /// (less 10% jitter) unless the abandonment window demands it.
        #[test]
        fn poll_intervals_stay_within_their_bounds(
            eta_seconds in prop_oneof![0..10_000u64, any::<u64>()],
            abandon_seconds in prop_oneof![0..200u32, any::<u32>()],
            seed in any::<u64>(),
        ) {
            let ms = poll_after_ms(eta_seconds, abandon_seconds, seed);
            let ceiling = CEILING_MS.min(u64::from(abandon_seconds) * 1_000 / 3).max(100);
            prop_assert!(ms <= ceiling, "{ms} > {ceiling}");
            prop_assert!(ms >= 90, "{ms}");
            prop_assert!(ms >= NEAR_FRONT_MS.min(ceiling) * 9 / 10, "{ms}");
            if eta_seconds <= 5 {
                prop_assert!(ms <= NEAR_FRONT_MS * 11 / 10, "{ms}");
            } else {
                let far = eta_seconds.saturating_mul(1_000 / POLLS_PER_WAIT).max(FAR_FLOOR_MS).min(ceiling);
                prop_assert!(ms >= far * 9 / 10, "{ms} < 90% of {far}");
            }
        }
    }
}
