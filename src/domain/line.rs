//! How the line talks to the person in it: expected wait and when to ask again.

/// The expected wait and a pessimistic bound, in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eta {
    pub seconds: u64,
    pub max_seconds: u64,
}

/// The share of the nominal rate assumed by the pessimistic bound: admission can
/// slow when `max_active` is reached or the operator lowers the rate.
const PESSIMISTIC_RATE_SHARE: f64 = 0.6;
/// Seconds of slack in the pessimistic bound for the admission worker's own cadence.
const PESSIMISTIC_SLACK_SECONDS: u64 = 5;

/// `position` people must be admitted (counting oneself) at `rate_per_second`.
pub fn eta(position: u64, rate_per_second: f64) -> Eta {
    let rate = rate_per_second.max(1e-3);
    let seconds = (position as f64 / rate).ceil();
    let max_seconds = (position as f64 / (rate * PESSIMISTIC_RATE_SHARE)).ceil();
    Eta {
        seconds: seconds.min(u64::MAX as f64) as u64,
        max_seconds: (max_seconds.min(u64::MAX as f64) as u64).saturating_add(PESSIMISTIC_SLACK_SECONDS),
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
    let jittered = if spread == 0 { base } else { base - spread + jitter_seed % (2 * spread + 1) };
    jittered.min(ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_divides_position_by_rate_and_bounds_it_pessimistically() {
        assert_eq!(eta(100, 10.0), Eta { seconds: 10, max_seconds: 17 + 5 });
        assert_eq!(eta(1, 50.0), Eta { seconds: 1, max_seconds: 1 + 5 });
        assert_eq!(eta(3, 0.5), Eta { seconds: 6, max_seconds: 10 + 5 });
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
        let distinct: std::collections::HashSet<_> = (0..100).map(|s| poll_after_ms(100, 60, s)).collect();
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
        fn the_bound_never_undercuts_the_estimate_for_any_input(position in positions(), rate in rates()) {
            let e = eta(position, rate);
            prop_assert!(e.max_seconds >= e.seconds, "{e:?}");
            prop_assert!(e.max_seconds >= PESSIMISTIC_SLACK_SECONDS, "{e:?}");
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
