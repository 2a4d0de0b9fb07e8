use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{eventually, spawn_app};

pub(crate) fn admission(per_second: f64, max_active: u64, pass_seconds: u64) -> serde_json::Value {
    json!({ "per_second": per_second, "max_active": max_active, "pass_seconds": pass_seconds })
}

#[tokio::test]
async fn admission_keeps_to_the_rate_smoothly() {
    let app = spawn_app().await;
    let rate = 10.0;
    app.event(
        "steady",
        json!({ "paused": true, "admission": admission(rate, 10_000, 600) }),
    )
    .await;
    let joins = join_all((0..120).map(|_| app.join("steady", None))).await;
    assert!(joins.iter().all(|j| j.status == StatusCode::CREATED));

    app.patch_event("steady", json!({ "paused": false })).await;
    let started = Instant::now();
    let mut previous = (0u64, started);
    // Allowed slack: the worker's burst (max(1, 0.2 s of rate)) plus one step.
    let slack = 2.0 + 1.0;
    while started.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let admitted = app.stats("steady").await.u64("admitted_total");
        let now = Instant::now();
        let window = now.duration_since(previous.1).as_secs_f64();
        assert!(
            (admitted - previous.0) as f64 <= rate * window + slack,
            "{} admitted in {window:.2}s at {rate}/s",
            admitted - previous.0
        );
        assert!(admitted as f64 <= rate * started.elapsed().as_secs_f64() + slack);
        previous = (admitted, now);
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        previous.0 as f64 >= rate * elapsed * 0.6,
        "only {} admitted in {elapsed:.1}s",
        previous.0
    );
    app.finish().await;
}

#[tokio::test]
async fn no_more_than_max_active_passes_are_valid_at_once() {
    let app = spawn_app().await;
    app.event("capped", json!({ "admission": admission(200.0, 5, 600) }))
        .await;
    let mut tokens = Vec::new();
    for _ in 0..12 {
        tokens.push(app.joined("capped").await);
    }
    eventually(Duration::from_secs(5), "five admitted", || async {
        app.stats("capped").await.u64("admitted_total") == 5
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let stats = app.stats("capped").await;
    assert_eq!(
        (
            stats.u64("admitted_total"),
            stats.u64("active"),
            stats.u64("waiting")
        ),
        (5, 5, 7)
    );

    // The first five hold passes; ending one lets exactly one more in.
    for token in &tokens[..5] {
        assert_eq!(app.poll(token).await.str("state"), "admitted");
    }
    assert_eq!(app.poll(&tokens[5]).await.u64("position"), 1);
    app.leave(&tokens[0]).await;
    app.poll_until(&tokens[5], "admitted", Duration::from_secs(3))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = app.stats("capped").await;
    assert_eq!((stats.u64("admitted_total"), stats.u64("active")), (6, 5));
    app.finish().await;
}

#[tokio::test]
async fn expired_passes_make_room_and_read_expired() {
    let app = spawn_app().await;
    app.event("brief", json!({ "admission": admission(100.0, 2, 2) }))
        .await;
    let tokens = [
        app.joined("brief").await,
        app.joined("brief").await,
        app.joined("brief").await,
    ];
    for token in &tokens[..2] {
        app.poll_until(token, "admitted", Duration::from_secs(3))
            .await;
    }
    let waiting = app.poll(&tokens[2]).await;
    assert_eq!(
        (waiting.str("state"), waiting.u64("position")),
        ("waiting", 1)
    );
    app.poll_until(&tokens[2], "admitted", Duration::from_secs(5))
        .await;
    assert_eq!(app.poll(&tokens[0]).await.str("state"), "expired");
    app.finish().await;
}

#[tokio::test]
async fn tokens_that_stop_polling_are_abandoned_and_skipped() {
    let app = spawn_app().await;
    let body =
        json!({ "per_second": 100, "max_active": 100, "pass_seconds": 600, "abandon_seconds": 2 });
    app.event("fickle", json!({ "paused": true, "admission": body }))
        .await;
    let (keen, silent, patient) = (
        app.joined("fickle").await,
        app.joined("fickle").await,
        app.joined("fickle").await,
    );
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        app.poll(&keen).await;
        app.poll(&patient).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    app.patch_event("fickle", json!({ "paused": false })).await;
    app.poll_until(&patient, "admitted", Duration::from_secs(3))
        .await;
    assert_eq!(app.poll(&keen).await.str("state"), "admitted");
    assert_eq!(app.poll(&silent).await.str("state"), "expired");
    let stats = app.stats("fickle").await;
    assert_eq!(
        (
            stats.u64("admitted_total"),
            stats.u64("active"),
            stats.u64("waiting")
        ),
        (2, 2, 0)
    );
    app.finish().await;
}

#[tokio::test]
async fn a_paused_event_admits_nobody_but_still_takes_joins() {
    let app = spawn_app().await;
    app.event(
        "held",
        json!({ "paused": true, "admission": admission(100.0, 100, 600) }),
    )
    .await;
    let token = app.joined("held").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(app.poll(&token).await.str("state"), "waiting");
    assert_eq!(app.stats("held").await.u64("admitted_total"), 0);
    app.patch_event("held", json!({ "paused": false })).await;
    app.poll_until(&token, "admitted", Duration::from_secs(3))
        .await;
    app.finish().await;
}
