//! Per-client rate limits on joins (and later holds): one client cannot farm places.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use governor::clock::Clock as GovernorClock;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use super::AppState;
use super::error::ApiError;
use crate::ports::Clock;

/// Past this many remembered clients, those whose bucket has refilled are
/// forgotten (their state is the same as a new client's).
const PRUNE_ABOVE: usize = 100_000;

/// Governor reads the time from the app's clock, so tests that move the clock
/// refill the buckets as time passing would.
#[derive(Clone)]
struct AppClock(Clock);

impl GovernorClock for AppClock {
    type Instant = Instant;

    fn now(&self) -> Instant {
        self.0.instant()
    }
}

/// A token bucket per client address (governor's GCRA): `per_second`
/// requests a second, with a burst of one second's worth.
pub struct ClientLimiter {
    limiter: Option<RateLimiter<IpAddr, HashMapStateStore<IpAddr>, AppClock>>,
    clock: AppClock,
}

impl ClientLimiter {
    /// `per_second == 0` turns the limit off.
    pub fn new(per_second: u32, clock: Clock) -> Self {
        let clock = AppClock(clock);
        let limiter = NonZeroU32::new(per_second)
            .map(|rate| RateLimiter::hashmap_with_clock(Quota::per_second(rate), clock.clone()));
        Self { limiter, clock }
    }

    /// Takes one request's token, or says how long until one is available.
    pub fn admit(&self, client: IpAddr) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() > PRUNE_ABOVE {
            limiter.retain_recent();
        }
        limiter
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// The client's address: the peer, or with `ANTEROOM_TRUST_FORWARDED` the
/// address the load balancer appended last to `X-Forwarded-For` (earlier
/// entries come from the client and prove nothing).
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let forwarded = state
            .trust_forwarded
            .then(|| parts.headers.get_all("x-forwarded-for").iter().next_back())
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|ip| ip.trim().parse().ok());
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientAddr(
            forwarded.or(peer).unwrap_or(IpAddr::from([0, 0, 0, 0])),
        ))
    }
}

/// A request within its client's rate (`ANTEROOM_CLIENT_RATE`); else `429`.
pub struct WithinClientRate;

impl FromRequestParts<AppState> for WithinClientRate {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ClientAddr(client) = ClientAddr::from_request_parts(parts, state).await?;
        state
            .limiter
            .admit(client)
            .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
        Ok(WithinClientRate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ManualClock;

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    fn paused_clock() -> ManualClock {
        let clock = ManualClock::new();
        clock.pause();
        clock
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limiter = ClientLimiter::new(0, paused_clock().clock());
        assert!((0..10_000).all(|_| limiter.admit(CLIENT).is_ok()));
    }

    #[test]
    fn a_client_gets_its_rate_and_then_waits() {
        let clock = paused_clock();
        let limiter = ClientLimiter::new(5, clock.clock());
        assert!((0..5).all(|_| limiter.admit(CLIENT).is_ok()));
        let wait = limiter.admit(CLIENT).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
        assert!(
            limiter.admit(IpAddr::from([10, 0, 0, 2])).is_ok(),
            "other clients are not affected"
        );
        clock.advance(wait);
        assert!(limiter.admit(CLIENT).is_ok(), "the bucket refills");
    }

    #[test]
    fn clients_whose_bucket_refilled_are_forgotten_when_many_are_remembered() {
        let clock = paused_clock();
        let limiter = ClientLimiter::new(1, clock.clock());
        let many = (0..=PRUNE_ABOVE as u32).map(|n| IpAddr::from(n.to_be_bytes()));
        assert!(many.into_iter().all(|client| limiter.admit(client).is_ok()));
        clock.advance(Duration::from_secs(3));
        assert!(limiter.admit(CLIENT).is_ok());
        let remembered = limiter.limiter.as_ref().map_or(0, |l| l.len());
        assert!(remembered <= 1, "{remembered} clients remembered");
    }
}
