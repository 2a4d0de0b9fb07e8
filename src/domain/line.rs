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
    let base = if eta_seconds <= 5 { NEAR_FRONT_MS } else { (eta_seconds * 1_000 / POLLS_PER_WAIT).max(FAR_FLOOR_MS) };
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
}
