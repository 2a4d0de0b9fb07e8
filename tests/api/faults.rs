use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{amqp_url, fresh_namespace, spawn_app_with};
use crate::proxy::FaultProxy;

fn host_port(url: &str) -> String {
    let after_at = url.rsplit_once('@').map_or(url, |(_, rest)| rest);
    let after_scheme = after_at.rsplit_once("://").map_or(after_at, |(_, rest)| rest);
    after_scheme.split('/').next().unwrap_or(after_scheme).to_owned()
}

#[tokio::test]
async fn with_the_broker_out_of_reach_joins_answer_503_and_recover_by_themselves() {
    let broker = amqp_url();
    let proxy = FaultProxy::start(&host_port(&broker)).await;
    let through_proxy = broker.replacen(&host_port(&broker), &proxy.addr.to_string(), 1);
    let app = spawn_app_with(&fresh_namespace(), |c| c.amqp_url = Some(through_proxy)).await;
    app.event("outage", json!({ "admission": { "per_second": 100, "max_active": 100, "pass_seconds": 600 } })).await;
    let before = app.joined("outage").await;
    app.poll_until(&before, "admitted", Duration::from_secs(5)).await;

    proxy.cut();
    let mut refused = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let reply = app.join("outage", None).await;
        assert!(started.elapsed() < Duration::from_secs(5), "a join waited {:?}", started.elapsed());
        assert_eq!((reply.status, reply.error()), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"), "{}", reply.body);
        assert_eq!(reply.headers["retry-after"], "1");
        refused += 1;
    }
    assert_eq!(refused, 5);
    let stats = app.stats("outage").await;
    assert_eq!((stats.u64("waiting"), stats.u64("admitted_total")), (0, 1), "no refused join took a place");

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let reply = app.join("outage", None).await;
        if reply.status == StatusCode::CREATED {
            break reply.str("token").to_owned();
        }
        assert!(Instant::now() < deadline, "joins did not recover: {}", reply.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The admission consumer reconnected too, and skips the places of the refused joins.
    app.poll_until(&after, "admitted", Duration::from_secs(10)).await;
    assert_eq!(app.stats("outage").await.u64("admitted_total"), 2);
    app.finish().await;
}
