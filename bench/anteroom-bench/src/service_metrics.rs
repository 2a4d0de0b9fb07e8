//! The service's own view of a route's latency: its request-duration histogram
//! in `/metrics`, read before and after a run. A load generator on the same
//! machine also times its own queueing (a request waits for a connection, the
//! answer for a core); the service's histogram starts when the request is read.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use serde::Serialize;

use crate::api::ApiError;
use crate::client::Connection;

const BUCKET: &str = "anteroom_http_request_duration_seconds_bucket{";

/// A route's successful (2xx) requests by bucket: upper bound (s) → cumulative count.
#[derive(Debug, Default, PartialEq)]
pub struct Buckets(BTreeMap<u64, u64>);

/// Bucket bounds as nanoseconds, to key a map by them exactly.
fn nanos(seconds: f64) -> u64 {
    if seconds.is_infinite() {
        u64::MAX
    } else {
        (seconds * 1e9).round() as u64
    }
}

/// `key="value"` pairs, in order (values here hold no quotes).
fn labels(mut text: &str) -> Vec<(&str, &str)> {
    let mut pairs = Vec::new();
    while let Some((key, rest)) = text.split_once("=\"") {
        let Some((value, rest)) = rest.split_once('"') else {
            break;
        };
        pairs.push((key.trim_start_matches(','), value));
        text = rest;
    }
    pairs
}

impl Buckets {
    /// The buckets of `method route` in a Prometheus text exposition.
    pub fn parse(exposition: &str, route: &str, method: &str) -> Self {
        let mut buckets = BTreeMap::new();
        for line in exposition.lines() {
            let Some(rest) = line.strip_prefix(BUCKET) else {
                continue;
            };
            let Some((label_text, count)) = rest.rsplit_once("} ") else {
                continue;
            };
            let labels = labels(label_text);
            let label = |name: &str| labels.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
            let matches = label("route") == Some(route)
                && label("method") == Some(method)
                && label("status").is_some_and(|s| s.starts_with('2'));
            let bound = label("le").and_then(|le| match le {
                "+Inf" => Some(f64::INFINITY),
                le => le.parse().ok(),
            });
            if let (true, Some(bound), Ok(count)) = (matches, bound, count.trim().parse::<f64>()) {
                *buckets.entry(nanos(bound)).or_default() += count as u64;
            }
        }
        Self(buckets)
    }

    /// What was counted after `before`.
    pub fn since(&self, before: &Buckets) -> Buckets {
        Buckets(
            self.0
                .iter()
                .map(|(bound, count)| {
                    (
                        *bound,
                        count.saturating_sub(*before.0.get(bound).unwrap_or(&0)),
                    )
                })
                .collect(),
        )
    }

    pub fn count(&self) -> u64 {
        self.0.values().copied().max().unwrap_or(0)
    }

    /// The bound (ms) of the first bucket holding the `q` quantile: the
    /// quantile is at most this.
    pub fn quantile_at_most_ms(&self, q: f64) -> Option<f64> {
        let wanted = (self.count() as f64 * q).ceil() as u64;
        self.0
            .iter()
            .find(|&(_, &count)| count >= wanted.max(1))
            .map(|(&bound, _)| {
                if bound == u64::MAX {
                    f64::INFINITY
                } else {
                    bound as f64 / 1e6
                }
            })
    }
}

#[derive(Debug, Serialize)]
pub struct ServiceLatency {
    pub route: String,
    pub count: u64,
    /// The bound of the histogram bucket each quantile falls in.
    pub p50_ms_at_most: Option<f64>,
    pub p99_ms_at_most: Option<f64>,
}

impl ServiceLatency {
    pub fn between(before: &str, after: &str, route: &str, method: &str) -> Self {
        let done =
            Buckets::parse(after, route, method).since(&Buckets::parse(before, route, method));
        Self {
            route: format!("{method} {route}"),
            count: done.count(),
            p50_ms_at_most: done.quantile_at_most_ms(0.50),
            p99_ms_at_most: done.quantile_at_most_ms(0.99),
        }
    }
}

/// The service's `/metrics` exposition.
pub async fn read(conn: &mut Connection) -> Result<String, ApiError> {
    let answer = conn.send(Method::GET, "/metrics", None, None).await?;
    if answer.status != StatusCode::OK {
        return Err(ApiError::Status(
            "/metrics".into(),
            answer.status,
            String::from_utf8_lossy(&answer.body).into(),
        ));
    }
    Ok(String::from_utf8_lossy(&answer.body).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "/api/events/{id}/queue";

    fn exposition(counts: [u64; 4], refused: u64) -> String {
        let [a, b, c, d] = counts;
        format!(
            "# TYPE anteroom_http_request_duration_seconds histogram
anteroom_http_request_duration_seconds_bucket{{route=\"{ROUTE}\",method=\"POST\",status=\"201\",le=\"0.005\"}} {a}
anteroom_http_request_duration_seconds_bucket{{route=\"{ROUTE}\",method=\"POST\",status=\"201\",le=\"0.05\"}} {b}
anteroom_http_request_duration_seconds_bucket{{route=\"{ROUTE}\",method=\"POST\",status=\"201\",le=\"0.1\"}} {c}
anteroom_http_request_duration_seconds_bucket{{route=\"{ROUTE}\",method=\"POST\",status=\"201\",le=\"+Inf\"}} {d}
anteroom_http_request_duration_seconds_bucket{{route=\"{ROUTE}\",method=\"POST\",status=\"429\",le=\"0.005\"}} {refused}
anteroom_http_request_duration_seconds_bucket{{route=\"/api/queue/{{token}}\",method=\"GET\",status=\"200\",le=\"0.005\"}} 1000
anteroom_http_request_duration_seconds_count{{route=\"{ROUTE}\",method=\"POST\",status=\"201\"}} {d}
"
        )
    }

    #[test]
    fn quantiles_are_read_from_what_the_run_added_to_the_successful_requests() {
        let before = exposition([10, 10, 10, 10], 5);
        // The run: 100 joins, 90 within 5 ms, 99 within 50 ms, 100 within 100 ms.
        let after = exposition([100, 109, 110, 110], 500);
        let latency = ServiceLatency::between(&before, &after, ROUTE, "POST");
        assert_eq!(latency.count, 100);
        assert_eq!(latency.p50_ms_at_most, Some(5.0));
        assert_eq!(latency.p99_ms_at_most, Some(50.0));
        let none = ServiceLatency::between(&before, &before, ROUTE, "POST");
        assert_eq!((none.count, none.p99_ms_at_most), (0, None));
    }
}
