//! Per-client rate limits on joins (and later holds): one client cannot farm places.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;

/// Buckets untouched for this long are forgotten when the map grows large.
const IDLE: Duration = Duration::from_secs(10);
const PRUNE_ABOVE: usize = 100_000;

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A token bucket per client address: `per_second` requests a second, with a
/// burst of one second's worth.
pub struct ClientLimiter {
    per_second: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl ClientLimiter {
    /// `per_second == 0` turns the limit off.
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request's token, or says how long until one is available.
    pub fn admit(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.per_second == 0 {
            return Ok(());
        }
        let rate = f64::from(self.per_second);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, b| now.duration_since(b.last) < IDLE);
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: rate,
            last: now,
        });
        bucket.tokens =
            (bucket.tokens + rate * now.duration_since(bucket.last).as_secs_f64()).min(rate);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
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
            .admit(client, state.clock.instant())
            .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
        Ok(WithinClientRate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ManualClock;

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    #[test]
    fn zero_turns_the_limit_off() {
        let limiter = ClientLimiter::new(0);
        let now = ManualClock::new().instant();
        assert!((0..10_000).all(|_| limiter.admit(CLIENT, now).is_ok()));
    }

    #[test]
    fn a_client_gets_its_rate_and_then_waits() {
        let limiter = ClientLimiter::new(5);
        let now = ManualClock::new().instant();
        assert!((0..5).all(|_| limiter.admit(CLIENT, now).is_ok()));
        let wait = limiter.admit(CLIENT, now).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
        assert!(
            limiter
                .admit(CLIENT, now + Duration::from_millis(200))
                .is_ok()
        );
        assert!(
            limiter.admit(IpAddr::from([10, 0, 0, 2]), now).is_ok(),
            "other clients are not affected"
        );
    }
}
