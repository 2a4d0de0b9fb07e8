//! Tests that need the servers themselves: two processes at once, or a look
//! inside Redis or PostgreSQL. The embedded pass skips this module.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;
use time::OffsetDateTime;

use crate::admission::admission;
use crate::challenge;
use crate::codes;
use crate::disposable::{DisposableRabbit, DisposableRedis};
use crate::helpers::{
    ADMIN_TOKEN, Reply, TestApp, amqp_url, eventually, fresh_namespace, poll_echoing, spawn_app,
    spawn_app_in, spawn_app_with,
};
use crate::orders::{one_row, sale, seats_of};
use crate::proxy::FaultProxy;

mod balancer;
mod node_loss;

#[tokio::test]
async fn a_challenge_buys_one_place_across_instances() {
    let app = spawn_app().await;
    app.event("one-door", json!({ "join_challenge": { "bits": 8 } }))
        .await;
    let other = spawn_app_in(&app.namespace).await;
    let body = challenge::solved(&app, "one-door", 8).await;
    let first = challenge::join_with(&app, "one-door", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let replay = challenge::join_with(&other, "one-door", body).await;
    assert_eq!(
        (replay.status, replay.error()),
        (StatusCode::CONFLICT, "challenge_used"),
        "{}",
        replay.body
    );
    other.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_code_takes_one_place_across_instances_and_their_refusals_add_up() {
    let app = spawn_app().await;
    app.event("shared-presale", json!({ "access": "codes" }))
        .await;
    let other = spawn_app_in(&app.namespace).await;
    let codes = codes::generated(&app, "shared-presale", 1).await;
    let first = challenge::join_with(&app, "shared-presale", json!({ "code": codes[0] })).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let elsewhere =
        challenge::join_with(&other, "shared-presale", json!({ "code": codes[0] })).await;
    assert_eq!(elsewhere.status, StatusCode::OK, "{}", elsewhere.body);
    assert_eq!(elsewhere.str("token"), first.str("token"));
    for instance in [&app, &other] {
        let refused = instance.join("shared-presale", None).await;
        assert_eq!(refused.error(), "code_required", "{}", refused.body);
    }
    // Each instance adds its refusals to the shared counts within a second.
    eventually(Duration::from_secs(5), "both refusals counted", || async {
        app.stats("shared-presale").await.body["refused"]["code_required"] == 2
    })
    .await;
    other.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn every_process_sees_a_patch_within_a_second() {
    let app = spawn_app().await;
    let other = spawn_app_in(&app.namespace).await;
    app.event("live", json!({})).await;
    app.patch_event(
        "live",
        json!({ "admission": { "max_active": 7 }, "paused": true }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let seen = other
        .request(Method::GET, "/api/events/live", None, None)
        .await;
    assert_eq!(
        (
            seen.body["admission"]["max_active"].as_u64(),
            seen.body["paused"].as_bool()
        ),
        (Some(7), Some(true))
    );
    other.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_standby_admission_worker_takes_over_when_the_active_one_dies() {
    let first = spawn_app().await;
    let rate = 10.0;
    first
        .event(
            "relay",
            json!({ "paused": true, "admission": admission(rate, 1_000, 600) }),
        )
        .await;
    // Let the first process's worker become the queue's active consumer.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let second = spawn_app_in(&first.namespace).await;
    let mut tokens = Vec::new();
    for _ in 0..40 {
        tokens.push(first.joined("relay").await);
    }
    second
        .patch_event("relay", json!({ "paused": false }))
        .await;
    eventually(Duration::from_secs(5), "admission started", || async {
        second.stats("relay").await.u64("admitted_total") >= 5
    })
    .await;

    first.stop().await;
    let stopped = Instant::now();
    let before = second.stats("relay").await.u64("admitted_total");
    eventually(Duration::from_secs(10), "the standby admits", || async {
        second.stats("relay").await.u64("admitted_total") > before + 3
    })
    .await;
    eventually(Duration::from_secs(15), "everyone admitted", || async {
        second.stats("relay").await.u64("admitted_total") == 40
    })
    .await;
    // The hand-over never lets the rate burst: the standby starts with no credit.
    let since = stopped.elapsed().as_secs_f64();
    assert!(
        (40 - before) as f64 <= rate * since + 3.0,
        "{} admitted in {since:.1}s",
        40 - before
    );
    // Polls read the process's view of the line, which follows the log within moments.
    for token in &tokens {
        second
            .poll_until(token, "admitted", Duration::from_secs(2))
            .await;
    }
    second.finish().await;
}

#[tokio::test]
async fn a_place_whose_join_never_reached_the_broker_does_not_hold_the_line() {
    use fred::prelude::*;
    let app = spawn_app().await;
    app.event("crash", json!({ "admission": admission(100.0, 100, 600) }))
        .await;
    let first = app.joined("crash").await;
    app.poll_until(&first, "admitted", Duration::from_secs(5))
        .await;

    // A process allocated place r2 eleven seconds ago and died before publishing it.
    let redis = raw_redis().await;
    let tag = format!("{{{}:crash}}", app.namespace);
    let _: i64 = redis
        .hincrby(format!("{tag}:line"), "seq", 1)
        .await
        .unwrap();
    let long_ago = time::OffsetDateTime::now_utc().unix_timestamp() - 11;
    let _: i64 = redis
        .hset(format!("{tag}:seen"), ("r2", long_ago))
        .await
        .unwrap();

    let behind = app.joined("crash").await;
    app.poll_until(&behind, "admitted", Duration::from_secs(3))
        .await;
    let log: Vec<String> = redis.lrange(format!("{tag}:log"), 0, -1).await.unwrap();
    assert!(
        log.contains(&"x:r2".to_owned()),
        "the lost place is logged as departed: {log:?}"
    );
    redis.quit().await.unwrap();
    app.finish().await;
}

#[tokio::test]
async fn a_flushed_seat_state_is_rebuilt_from_the_record_without_double_sales() {
    let app = spawn_app().await;
    sale(&app, "flush", json!({ "sections": one_row(6) })).await;
    let passes = app.admitted_passes("flush", 3).await;
    let sold = app
        .hold_seats("flush", &passes[0], &["A-1-1", "A-1-2"])
        .await;
    app.pay(sold.str("order_id"), &passes[0]).await;
    app.hold_seats("flush", &passes[1], &["A-1-3"]).await;

    flush_seat_state(&app, "flush").await;

    for (seat, what) in [("A-1-1", "sold"), ("A-1-3", "held")] {
        let reply = app.hold_seats("flush", &passes[2], &[seat]).await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::CONFLICT, "seat_unavailable"),
            "a {what} seat after the flush"
        );
    }
    assert_eq!(
        app.hold_seats("flush", &passes[2], &["A-1-4"]).await.status,
        StatusCode::CREATED
    );
    let stats = app.stats("flush").await;
    let counts = ["sold_seats", "held_seats", "available_seats"].map(|f| stats.u64(f));
    assert_eq!(counts, [2, 2, 2]);
    let map = app.seat_states("flush").await;
    let states: Vec<&str> = (1..=6).map(|n| map[&format!("A-1-{n}")].as_str()).collect();
    assert_eq!(states, ["sold", "sold", "held", "held", "free", "free"]);
    app.finish().await;
}

#[tokio::test]
async fn the_unique_index_refuses_a_double_assignment_that_bypasses_redis() {
    use anteroom::adapters::record::PostgresRecord;
    use anteroom::domain::{EventId, Holder, Order, OrderStatus, TokenKey};
    use anteroom::ports::{InsertOrderError, OrderRepository};

    let app = spawn_app().await;
    sale(&app, "guard", json!({})).await;
    let record = PostgresRecord::connect(&crate::helpers::database_url().await, &app.namespace)
        .await
        .unwrap();
    let order = |seats: &[&str]| Order {
        id: uuid::Uuid::new_v4(),
        event: EventId::parse("guard").unwrap(),
        holder: Holder::new(TokenKey::regular(1), uuid::Uuid::new_v4()),
        status: OrderStatus::Pending,
        seats: seats.iter().map(|s| s.to_string()).collect(),
        amount_cents: 100,
        created_at: OffsetDateTime::now_utc(),
        expires_at: OffsetDateTime::now_utc() + Duration::from_secs(60),
    };
    record
        .insert_order(&order(&["A-1-1", "A-1-2"]))
        .await
        .unwrap();
    match record.insert_order(&order(&["A-1-2", "A-1-3"])).await {
        Err(InsertOrderError::SeatsTaken(seats)) => assert_eq!(seats, ["A-1-2"]),
        other => panic!("the index let a seat be taken twice: {other:?}"),
    }
    // A seat the venue does not have is refused too.
    assert!(record.insert_order(&order(&["A-99-1"])).await.is_err());
    app.finish().await;
}

#[tokio::test]
async fn a_hold_whose_order_was_never_written_is_undone() {
    use anteroom::adapters::redis::RedisStore;
    use anteroom::domain::{EventId, Holder};
    use anteroom::ports::{HoldAsk, HoldOutcome, PassTerms, SeatStore};

    let app = spawn_app().await;
    sale(
        &app,
        "orphan",
        json!({ "hold_seconds": 1, "sections": one_row(3) }),
    )
    .await;
    let raw_pass = app.admitted_pass("orphan").await;
    app.seat_states("orphan").await; // the seat state exists

    // A process holds A-1-1 in Redis, then dies before writing the order.
    let pass = crate::helpers::signer(crate::helpers::SECRET.as_bytes(), &app.namespace)
        .verify_pass(&raw_pass)
        .unwrap();
    let redis = RedisStore::connect(&crate::helpers::redis_url(), &app.namespace)
        .await
        .unwrap();
    let now_ms = (app.clock.now().unix_timestamp_nanos() / 1_000_000) as i64;
    let event = EventId::parse("orphan").unwrap();
    let ask = HoldAsk {
        order: uuid::Uuid::new_v4(),
        holder: Holder::new(pass.key, pass.token_id),
        pass: PassTerms {
            key: pass.key,
            issued_at_ms: now_ms,
            expires_at_ms: pass.expires_at_ms,
        },
        seats: vec!["A-1-1".into()],
        max_per_holder: 4,
        now_ms,
    };
    let outcome = redis.hold(&event, &ask).await.unwrap();
    assert!(matches!(outcome, HoldOutcome::Held(_)), "{outcome:?}");
    let taken = app.hold_seats("orphan", &raw_pass, &["A-1-1"]).await;
    assert_eq!(
        taken.status,
        StatusCode::CONFLICT,
        "the orphan hold takes the seat for now"
    );

    // Past hold_seconds (1) + the reconciliation grace (5), one sweep undoes it.
    app.clock.advance(Duration::from_millis(6_200));
    app.workers.sweep_once().await.expect("a sweep");
    assert_eq!(
        app.stats("orphan").await.u64("held_seats"),
        0,
        "the orphan hold is undone"
    );
    let again = app.hold_seats("orphan", &raw_pass, &["A-1-1"]).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    app.finish().await;
}

/// A plain Redis client, to look at or break what the service keeps there.
async fn raw_redis() -> fred::prelude::Client {
    use fred::prelude::*;
    let client = Builder::from_config(Config::from_url(&crate::helpers::redis_url()).unwrap())
        .build()
        .unwrap();
    client.init().await.unwrap();
    client
}

/// Deletes the event's seat keys from Redis, as a flush or a failover would.
async fn flush_seat_state(app: &TestApp, event: &str) {
    use fred::prelude::*;
    let client = raw_redis().await;
    let tag = format!("{{{}:{event}}}", app.namespace);
    let keys: Vec<String> = ["seats", "holders", "seat_counts", "seats_ready"]
        .iter()
        .map(|k| format!("{tag}:{k}"))
        .collect();
    let deleted: i64 = client.del(keys).await.unwrap();
    assert!(deleted >= 3, "the seat state existed");
    client.quit().await.unwrap();
}

fn host_port(url: &str) -> String {
    let after_at = url.rsplit_once('@').map_or(url, |(_, rest)| rest);
    let after_scheme = after_at
        .rsplit_once("://")
        .map_or(after_at, |(_, rest)| rest);
    after_scheme
        .split('/')
        .next()
        .unwrap_or(after_scheme)
        .to_owned()
}

/// A fault proxy in front of the server at `url`, and the URL that goes through it.
async fn proxied(url: &str) -> (FaultProxy, String) {
    let proxy = FaultProxy::start(&host_port(url)).await;
    let through = url.replacen(&host_port(url), &proxy.addr.to_string(), 1);
    (proxy, through)
}

/// `AMQP_URL` lists two ways to the broker (as it would list a cluster's nodes);
/// the one in use goes away mid-sale.
#[tokio::test]
async fn with_the_node_in_use_gone_the_publisher_and_the_consumers_move_to_another() {
    let (first, through_first) = proxied(&amqp_url()).await;
    let (_second, through_second) = proxied(&amqp_url()).await;
    let nodes = format!("{through_first},{through_second}");
    let app = spawn_app_with(&fresh_namespace(), |c| c.amqp_url = Some(nodes)).await;
    app.event(
        "nodes",
        json!({ "admission": { "per_second": 100, "max_active": 500, "pass_seconds": 600 } }),
    )
    .await;
    let before = app.joined("nodes").await;
    app.poll_until(&before, "admitted", Duration::from_secs(5))
        .await;

    first.cut();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut acknowledged = Vec::new();
    while acknowledged.len() < 5 {
        assert!(
            Instant::now() < deadline,
            "joins did not move to the other node"
        );
        let reply = app.join("nodes", None).await;
        match reply.status {
            StatusCode::CREATED => acknowledged.push(reply.str("token").to_owned()),
            // Only while the publisher notices that its node went away.
            StatusCode::SERVICE_UNAVAILABLE => assert_eq!(reply.headers["retry-after"], "1"),
            other => panic!("a join answered {other}: {}", reply.body),
        }
    }
    // The admission consumer lost its node too: it admits from the other one.
    for token in &acknowledged {
        app.poll_until(token, "admitted", Duration::from_secs(20))
            .await;
    }
    assert_eq!(app.stats("nodes").await.u64("admitted_total"), 6);
    app.finish().await;
}

#[tokio::test]
async fn a_list_of_nodes_none_of_which_answers_is_a_start_up_error_naming_each() {
    let dead = ["127.0.0.1:1", "127.0.0.1:2"].map(|node| format!("amqp://guest:guest@{node}/%2f"));
    let mut config = anteroom::config::Config::from_lookup(|_| None).expect("defaults");
    config.database_url = crate::helpers::database_url().await;
    config.redis_url = Some(crate::helpers::redis_url());
    config.amqp_url = Some(dead.join(","));
    config.secret = Some(anteroom::config::Secret::new("s"));
    config.namespace = fresh_namespace();
    let error = anteroom::app::App::build(config, anteroom::ports::Clock::system())
        .await
        .err()
        .expect("no node answers")
        .to_string();
    assert!(
        error.contains("127.0.0.1:1") && error.contains("127.0.0.1:2"),
        "{error}"
    );
    assert!(
        !error.contains("guest:guest"),
        "credentials in an error: {error}"
    );
}

#[tokio::test]
async fn with_the_broker_out_of_reach_joins_answer_503_and_recover_by_themselves() {
    let (proxy, through_proxy) = proxied(&amqp_url()).await;
    let app = spawn_app_with(&fresh_namespace(), |c| c.amqp_url = Some(through_proxy)).await;
    app.event(
        "outage",
        json!({ "admission": { "per_second": 100, "max_active": 100, "pass_seconds": 600 } }),
    )
    .await;
    let before = app.joined("outage").await;
    app.poll_until(&before, "admitted", Duration::from_secs(5))
        .await;

    proxy.cut();
    let mut refused = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let reply = app.join("outage", None).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a join waited {:?}",
            started.elapsed()
        );
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            "{}",
            reply.body
        );
        assert_eq!(reply.headers["retry-after"], "1");
        refused += 1;
    }
    assert_eq!(refused, 5);
    let stats = app.stats("outage").await;
    assert_eq!(
        (stats.u64("waiting"), stats.u64("admitted_total")),
        (0, 1),
        "no refused join took a place"
    );

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let reply = app.join("outage", None).await;
        if reply.status == StatusCode::CREATED {
            break reply.str("token").to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "joins did not recover: {}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The admission consumer reconnected too, and skips the places of the refused joins.
    app.poll_until(&after, "admitted", Duration::from_secs(10))
        .await;
    assert_eq!(app.stats("outage").await.u64("admitted_total"), 2);
    app.finish().await;
}

/// A visitor joining again and again until `stop`, as a browser would: a
/// refused join is tried again after its `Retry-After`. Every reply.
fn join_until_stopped(
    app: std::sync::Arc<TestApp>,
    event: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Reply>> {
    tokio::spawn(async move {
        let mut replies = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let reply = app.join(event, None).await;
            if let Some(after) = reply
                .headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
            {
                tokio::time::sleep(Duration::from_secs(after.parse().unwrap_or(1))).await;
            }
            replies.push(reply);
        }
        replies
    })
}

/// Every reply of the stopped joiners, and `last`.
async fn every_reply(joiners: Vec<tokio::task::JoinHandle<Vec<Reply>>>, last: Reply) -> Vec<Reply> {
    let mut replies = vec![last];
    for joiner in joiners {
        replies.extend(joiner.await.expect("a joiner ran"));
    }
    replies
}

/// The tokens of the acknowledged joins; every other join must have been
/// refused with a `503` that invites a retry.
fn acknowledged_tokens(replies: &[Reply]) -> impl Iterator<Item = &str> {
    for refused in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_eq!(
            (refused.status, refused.error()),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            "{}",
            refused.body
        );
    }
    replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .map(|r| r.str("token"))
}

/// Waits until `request` answers something other than 503 (the backend is back).
async fn until_available(what: &str, mut request: impl AsyncFnMut() -> Reply) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = request().await;
        if reply.status != StatusCode::SERVICE_UNAVAILABLE {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not recover: {}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn with_postgres_out_of_reach_holds_and_pays_answer_503_and_leave_no_hold_behind() {
    let (proxy, through_proxy) = proxied(&crate::helpers::database_url().await).await;
    let app = spawn_app_with(&fresh_namespace(), |c| c.database_url = through_proxy).await;
    sale(&app, "pgdown", json!({ "sections": one_row(4) })).await;
    let passes = app.admitted_passes("pgdown", 2).await;
    let paid_later = app.hold_seats("pgdown", &passes[0], &["A-1-1"]).await;
    assert_eq!(
        paid_later.status,
        StatusCode::CREATED,
        "{}",
        paid_later.body
    );

    proxy.cut();
    let hold = app.hold_seats("pgdown", &passes[1], &["A-1-2"]).await;
    assert_eq!(
        (hold.status, hold.error()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{}",
        hold.body
    );
    assert_eq!(hold.headers["retry-after"], "1");
    let pay = app.pay(paid_later.str("order_id"), &passes[0]).await;
    assert_eq!(
        (pay.status, pay.error()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{}",
        pay.body
    );
    // The hold whose order could not be written was undone before the 503.
    assert_eq!(
        app.seat_states("pgdown").await["A-1-2"],
        "free",
        "a hold outlived its failed order"
    );

    proxy.restore();
    let paid = until_available("pay", || app.pay(paid_later.str("order_id"), &passes[0])).await;
    assert_eq!(
        (paid.status, paid.str("status")),
        (StatusCode::OK, "paid"),
        "{}",
        paid.body
    );
    let again = app.hold_seats("pgdown", &passes[1], &["A-1-2"]).await;
    assert_eq!(
        again.status,
        StatusCode::CREATED,
        "the seat of the failed hold is free again: {}",
        again.body
    );
    let stats = app.stats("pgdown").await;
    assert_eq!(
        (
            stats.u64("sold_seats"),
            stats.u64("held_seats"),
            stats.u64("available_seats")
        ),
        (1, 1, 2)
    );
    app.finish().await;
}

#[tokio::test]
async fn with_redis_out_of_reach_holds_answer_503_polls_still_answer_and_nothing_is_sold_twice() {
    let (proxy, through_proxy) = proxied(&crate::helpers::redis_url()).await;
    let app = spawn_app_with(&fresh_namespace(), |c| c.redis_url = Some(through_proxy)).await;
    sale(&app, "redisdown", json!({ "sections": one_row(2) })).await;
    let passes = app.admitted_passes("redisdown", 2).await;
    let waiting = app.joined("redisdown").await;

    proxy.cut();
    let hold = app.hold_seats("redisdown", &passes[0], &["A-1-1"]).await;
    assert_eq!(
        (hold.status, hold.error()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{}",
        hold.body
    );
    // Polls are answered from the process's view of the line: no Redis round trip.
    assert_eq!(app.poll(&waiting).await.status, StatusCode::OK);
    let join = app.join("redisdown", None).await;
    assert_eq!(
        (join.status, join.error()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{}",
        join.body
    );

    proxy.restore();
    let first = until_available("hold", || {
        app.hold_seats("redisdown", &passes[0], &["A-1-1"])
    })
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let second = app.hold_seats("redisdown", &passes[1], &["A-1-1"]).await;
    assert_eq!(
        (second.status, second.error()),
        (StatusCode::CONFLICT, "seat_unavailable"),
        "{}",
        second.body
    );
    let stats = app.stats("redisdown").await;
    assert_eq!(
        (stats.u64("held_seats"), stats.u64("available_seats")),
        (1, 1)
    );
    app.finish().await;
}

/// A waiting token's position, or `None` once it is past the line.
async fn position(app: &TestApp, token: &str) -> Option<u64> {
    let reply = app.poll(token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    (reply.str("state") == "waiting").then(|| reply.u64("position"))
}

#[tokio::test]
async fn a_redis_that_restarts_empty_mid_sale_is_restored_from_the_record_and_the_queue() {
    let mut redis = DisposableRedis::start().await;
    let app = spawn_app_with(&fresh_namespace(), |c| c.redis_url = Some(redis.url())).await;
    let admission = json!({ "per_second": 20, "max_active": 6, "pass_seconds": 120 });
    sale(
        &app,
        "amnesia",
        json!({ "sections": one_row(10), "admission": admission }),
    )
    .await;
    let passes = app.admitted_passes("amnesia", 3).await;
    let paid = app.hold_seats("amnesia", &passes[0], &["A-1-1"]).await;
    assert_eq!(
        app.pay(paid.str("order_id"), &passes[0])
            .await
            .str("status"),
        "paid"
    );
    let pending = app.hold_seats("amnesia", &passes[1], &["A-1-2"]).await;
    assert_eq!(pending.status, StatusCode::CREATED, "{}", pending.body);
    // Three more are admitted (max_active is 6); the rest wait.
    let line: Vec<String> =
        futures_util::future::join_all((0..30).map(|_| app.joined("amnesia"))).await;
    let positions_now = || futures_util::future::join_all(line.iter().map(|t| position(&app, t)));
    eventually(Duration::from_secs(5), "max_active reached", || async {
        positions_now().await.iter().flatten().count() == 27
    })
    .await;
    let mut positions = positions_now().await;
    let admitted_before: Vec<&String> = line
        .iter()
        .zip(&positions)
        .filter(|(_, p)| p.is_none())
        .map(|(t, _)| t)
        .collect();

    redis.kill();
    // While Redis is gone: joins and holds answer 503, polls answer from the
    // process's view, and nobody's position goes up.
    let joins = futures_util::future::join_all((0..10).map(|_| app.join("amnesia", None)));
    let holds = futures_util::future::join_all(
        passes
            .iter()
            .map(|p| app.hold_seats("amnesia", p, &["A-1-5"])),
    );
    let (joins, holds, polls) = tokio::join!(joins, holds, positions_now());
    for reply in joins.iter().chain(&holds) {
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            "{}",
            reply.body
        );
        assert_eq!(reply.headers["retry-after"], "1");
    }
    assert_eq!(polls, positions, "positions while Redis is down");

    redis.restart().await;
    let after = until_available("join", || app.join("amnesia", None)).await;
    assert_eq!(after.status, StatusCode::CREATED, "{}", after.body);
    // A pass from before the loss still holds seats, against the seat state
    // rebuilt from PostgreSQL: the sold and the held seats stay taken.
    let held = until_available("hold", || app.hold_seats("amnesia", &passes[2], &["A-1-3"])).await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.body);
    for seat in ["A-1-1", "A-1-2"] {
        let reply = app.hold_seats("amnesia", &passes[2], &[seat]).await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::CONFLICT, "seat_unavailable"),
            "{seat}: {}",
            reply.body
        );
    }
    assert_eq!(
        app.pay(pending.str("order_id"), &passes[1])
            .await
            .str("status"),
        "paid",
        "the pending order survived"
    );
    // The passes from before still count: nobody more is admitted past max_active.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.stats("amnesia").await.u64("active"), 6);
    let now = positions_now().await;
    for (before, now) in positions.iter().zip(&now) {
        assert!(now <= before, "a position went up: {before:?} -> {now:?}");
    }
    positions = now;
    let last_before = positions.iter().flatten().max().copied().unwrap_or(0);
    let newcomer = after.u64("position");
    assert!(
        newcomer > last_before,
        "the newcomer ({newcomer}) queues behind everyone who joined before ({last_before})"
    );

    // Every join acknowledged before the loss is still in line, and is admitted in turn.
    app.patch_event("amnesia", json!({ "admission": { "max_active": 100 } }))
        .await;
    for token in &line {
        app.poll_until(token, "admitted", Duration::from_secs(10))
            .await;
    }
    // The newcomer waits for the places reserved but never handed out to be skipped.
    let grace = Duration::from_secs(anteroom::services::admission::GAP_GRACE_SECONDS as u64 + 10);
    app.poll_until(after.str("token"), "admitted", grace).await;
    for token in admitted_before {
        assert_eq!(
            app.poll(token).await.str("state"),
            "admitted",
            "admitted before the loss, and still"
        );
    }
    let stats = app.stats("amnesia").await;
    let books = ["sold_seats", "held_seats", "available_seats"].map(|f| stats.u64(f));
    assert_eq!(books, [2, 1, 7]);
    app.finish().await;
}

/// A Redis that comes back with less than it acknowledged (restarted from an
/// older snapshot here; a failover to a replica that lagged is the same to
/// Anteroom): the line and the seats are reconciled from the record before
/// the next join or hold, not trusted as they came back.
#[tokio::test]
async fn a_redis_that_comes_back_from_an_older_snapshot_is_reconciled_before_the_next_join_or_hold()
{
    let mut redis = DisposableRedis::start_with_snapshots().await;
    let app = spawn_app_with(&fresh_namespace(), |c| c.redis_url = Some(redis.url())).await;
    let admission = json!({ "per_second": 1_000, "max_active": 3, "pass_seconds": 600 });
    sale(
        &app,
        "rollback",
        json!({ "hold_seconds": 120, "sections": one_row(10), "admission": admission }),
    )
    .await;
    let passes = app.admitted_passes("rollback", 3).await;
    let buy = async |pass: &str, seat: &str| {
        let held = app.hold_seats("rollback", pass, &[seat]).await;
        assert_eq!(held.status, StatusCode::CREATED, "{}", held.body);
        let paid = app.pay(held.str("order_id"), pass).await;
        assert_eq!(paid.str("status"), "paid", "{}", paid.body);
    };
    buy(&passes[0], "A-1-1").await;
    let mut line: Vec<String> = Vec::new();
    for _ in 0..5 {
        line.push(app.joined("rollback").await);
    }
    redis.snapshot();

    // Acknowledged after the snapshot, so missing when Redis comes back.
    buy(&passes[1], "A-1-2").await;
    let pending = app.hold_seats("rollback", &passes[2], &["A-1-3"]).await;
    assert_eq!(pending.status, StatusCode::CREATED, "{}", pending.body);
    for _ in 0..5 {
        line.push(app.joined("rollback").await);
    }
    let positions: Vec<Option<u64>> = join_all(line.iter().map(|t| position(&app, t))).await;
    assert_eq!(positions.iter().flatten().count(), 10, "all ten wait");

    redis.kill();
    redis.restart().await;

    // The first join after it lands behind everyone acknowledged before, not
    // on a place the rolled-back counters would hand out again.
    let newcomer = until_available("join", || app.join("rollback", None)).await;
    assert_eq!(newcomer.status, StatusCode::CREATED, "{}", newcomer.body);
    let last_before = positions.iter().flatten().max().copied().unwrap_or(0);
    assert!(
        newcomer.u64("position") > last_before,
        "the newcomer ({}) queues behind everyone who joined before ({last_before})",
        newcomer.u64("position")
    );
    let now: Vec<Option<u64>> = join_all(line.iter().map(|t| position(&app, t))).await;
    for (before, now) in positions.iter().zip(&now) {
        assert!(now <= before, "a position went up: {before:?} -> {now:?}");
    }
    // The seats are the record's: the sale and the hold the snapshot lacks are there.
    for seat in [["A-1-1"], ["A-1-2"], ["A-1-3"]] {
        let reply = until_available("hold", || app.hold_seats("rollback", &passes[2], &seat)).await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::CONFLICT, "seat_unavailable"),
            "{seat:?}: {}",
            reply.body
        );
    }
    eventually(
        Duration::from_secs(5),
        "the seat map and the stats follow the record",
        || async {
            let map = app.seat_states("rollback").await;
            let state = |seat: &str| map.get(seat).map(String::as_str);
            let stats = app.stats("rollback").await;
            (state("A-1-1"), state("A-1-2"), state("A-1-3"))
                == (Some("sold"), Some("sold"), Some("held"))
                && (stats.u64("sold_seats"), stats.u64("held_seats")) == (2, 1)
        },
    )
    .await;
    assert_eq!(
        app.pay(pending.str("order_id"), &passes[2])
            .await
            .str("status"),
        "paid",
        "the hold the snapshot lacks is paid"
    );

    // Everyone acknowledged before is admitted in turn, each once.
    app.patch_event("rollback", json!({ "admission": { "max_active": 100 } }))
        .await;
    for token in &line {
        app.poll_until(token, "admitted", Duration::from_secs(10))
            .await;
    }
    app.finish().await;
}

/// After a rollback (an older snapshot; a failover to a replica that lagged is
/// the same) every pass still valid counts under `max_active` once: one ended
/// before it stays ended and its place free, one the node kept counts by
/// itself, one the node lacks counts by a stand-in until it ends. Nobody is
/// let in past `max_active`, and no place stays unused until passes run out.
#[tokio::test]
async fn after_a_rollback_each_valid_pass_counts_once_and_ending_one_lets_the_next_in() {
    let mut redis = DisposableRedis::start_with_snapshots().await;
    let app = spawn_app_with(&fresh_namespace(), |c| c.redis_url = Some(redis.url())).await;
    let admission = json!({ "per_second": 1_000, "max_active": 3, "pass_seconds": 600 });
    let body = json!({ "sections": one_row(10), "admission": admission });
    sale(&app, "recount", body).await;
    let mut line = Vec::new();
    for _ in 0..6 {
        line.push(app.joined("recount").await);
    }
    let within = Duration::from_secs(10);
    let first_pass = app.poll_until(&line[0], "admitted", within).await;
    let second_pass = app.poll_until(&line[1], "admitted", within).await;
    app.poll_until(&line[2], "admitted", within).await;
    redis.snapshot();

    // Unknown to Redis when it comes back: the first pass ends, and the
    // fourth person is admitted in its place.
    assert_eq!(app.leave(&line[0]).await.str("state"), "left");
    app.poll_until(&line[3], "admitted", within).await;
    redis.kill();
    redis.restart().await;
    let newcomer = until_available("join", || app.join("recount", None)).await;
    assert_eq!(newcomer.status, StatusCode::CREATED, "{}", newcomer.body);

    // The second, third and fourth passes are valid: nobody more gets in.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(app.poll(&line[4]).await.str("state"), "waiting");
    assert_eq!(app.stats("recount").await.u64("active"), 3);
    let holds_with = async |pass: &Reply| {
        let held = app
            .hold_seats("recount", pass.str("pass"), &["A-1-1"])
            .await;
        (held.status, held.error().to_owned())
    };
    let refused = (StatusCode::UNAUTHORIZED, "invalid_pass".to_owned());
    assert_eq!(
        holds_with(&first_pass).await,
        refused,
        "a pass ended before the rollback stays ended"
    );
    // Each pass ended lets the next person in: the fourth's, which the node
    // lacked, and the second's, which it kept.
    assert_eq!(app.leave(&line[3]).await.str("state"), "left");
    app.poll_until(&line[4], "admitted", within).await;
    assert_eq!(app.leave(&line[1]).await.str("state"), "left");
    app.poll_until(&line[5], "admitted", within).await;
    assert_eq!(
        holds_with(&second_pass).await,
        refused,
        "a pass the node kept, once ended, stays ended: it takes no stand-in's place"
    );
    assert_eq!(app.leave(&line[1]).await.str("state"), "left");
    assert_eq!(app.stats("recount").await.u64("active"), 3);
    app.finish().await;
}

/// Slack on every time bound asserted below: room for a loaded machine, not for the code.
const SLACK: Duration = Duration::from_secs(2);

/// The count of admission steps of `event` that reached no replica in time, from `/metrics`.
async fn unreplicated_steps(app: &TestApp, event: &str) -> u64 {
    let metrics = app.request(Method::GET, "/metrics", None, None).await;
    let text = metrics.body.as_str().expect("the metrics as text");
    let series = format!("anteroom_admission_steps_unreplicated_total{{event=\"{event}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .map_or(0, |count| count.trim().parse().expect("a count"))
}

#[tokio::test]
async fn an_admission_step_waits_for_a_replica_and_a_hung_replica_does_not_stop_the_sale() {
    let primary = DisposableRedis::start().await;
    let replica = DisposableRedis::start_replica_of(&primary).await;
    let app = spawn_app_with(&fresh_namespace(), |c| c.redis_url = Some(primary.url())).await;
    let admission = json!({ "per_second": 1_000, "max_active": 100, "pass_seconds": 600 });
    app.event("replicated", json!({ "admission": admission }))
        .await;

    // The worker acknowledges a step's deliveries to RabbitMQ only once a
    // replica has the step (WAIT 1), so a failover cannot lose it.
    app.admitted_passes("replicated", 3).await;
    assert_eq!(unreplicated_steps(&app, "replicated").await, 0);

    // A replica that hangs, still connected: each step waits for it a moment,
    // then is acknowledged on the primary's word, and counted for the operator.
    // (The place reads admitted as soon as the step is in Redis; the wait,
    // and the count, come after.)
    let hung = replica.pause();
    app.admitted_pass("replicated").await;
    eventually(Duration::from_secs(5), "the step is counted", || async {
        unreplicated_steps(&app, "replicated").await >= 1
    })
    .await;
    drop(hung);
    app.finish().await;
}

/// A request's reply and how long it took.
async fn timed(request: impl Future<Output = Reply>) -> (Reply, Duration) {
    let started = Instant::now();
    let reply = request.await;
    (reply, started.elapsed())
}

fn assert_within(what: &str, took: Duration, bound: Duration) {
    assert!(
        took < bound,
        "{what} took {took:?}, over its bound of {bound:?}"
    );
}

/// A clear `503` that invites a retry.
fn assert_retry_later(what: &str, reply: &Reply) {
    assert_eq!(
        (reply.status, reply.error()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{what}: {}",
        reply.body
    );
    assert_eq!(reply.headers["retry-after"], "1", "{what}");
}

/// The seats that are not free on the seat map, with their states, in order.
async fn taken_seats(app: &TestApp, event: &str) -> Vec<(String, String)> {
    let mut taken: Vec<(String, String)> = app
        .seat_states(event)
        .await
        .into_iter()
        .filter(|(_, state)| state != "free")
        .collect();
    taken.sort();
    taken
}

#[tokio::test]
async fn with_redis_slower_than_its_timeout_holds_answer_503_in_bounded_time_and_nothing_is_half_done()
 {
    use anteroom::adapters::redis::COMMAND_TIMEOUT;
    let (proxy, through_proxy) = proxied(&crate::helpers::redis_url()).await;
    let app = spawn_app_with(&fresh_namespace(), |c| c.redis_url = Some(through_proxy)).await;
    sale(&app, "redisslow", json!({ "sections": one_row(8) })).await;
    let passes = app.admitted_passes("redisslow", 4).await;
    let paid_during = app.hold_seats("redisslow", &passes[0], &["A-1-1"]).await;
    assert_eq!(
        paid_during.status,
        StatusCode::CREATED,
        "{}",
        paid_during.body
    );
    let tokens = join_all((0..4).map(|_| app.joined("redisslow"))).await;
    let waiting = app.stats("redisslow").await.u64("waiting");

    // One way takes the whole timeout: no reply comes back in time.
    let latency = COMMAND_TIMEOUT;
    proxy.set_latency(latency);
    let wanted: [&[&str]; 3] = [&["A-1-2", "A-1-3"], &["A-1-4"], &["A-1-5", "A-1-6"]];
    let (holds, pay, polls, joins) = tokio::join!(
        join_all(
            wanted
                .iter()
                .zip(&passes[1..])
                .map(|(seats, pass)| timed(app.hold_seats("redisslow", pass, seats)))
        ),
        timed(app.pay(paid_during.str("order_id"), &passes[0])),
        join_all(tokens.iter().map(|token| timed(app.poll(token)))),
        join_all((0..3).map(|_| timed(app.join("redisslow", None)))),
    );
    // A hold waits for its script, then for the undo of the hold it may have made.
    for (reply, took) in &holds {
        assert_within("a hold", *took, 2 * COMMAND_TIMEOUT + SLACK);
        assert_retry_later("a hold", reply);
    }
    // The record decides a payment; the fast store follows (the sale, then the counts) when it can.
    let (paid, took) = &pay;
    assert_within("a payment", *took, 2 * COMMAND_TIMEOUT + SLACK);
    assert_eq!(
        (paid.status, paid.str("status")),
        (StatusCode::OK, "paid"),
        "{}",
        paid.body
    );
    // Polls are answered from the process's view of the line: no Redis round trip.
    for (reply, took) in &polls {
        assert_within("a poll", *took, SLACK);
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    // A join waits for one script (its place), then answers.
    for (reply, took) in &joins {
        assert_within("a join", *took, COMMAND_TIMEOUT + SLACK);
        assert_retry_later("a join", reply);
    }

    proxy.set_latency(Duration::ZERO);
    // The replies still on their way arrive within `latency`; then only the paid seat is taken.
    eventually(
        2 * latency + SLACK,
        "Redis answers again and the refused holds are undone",
        || async {
            let stats = app
                .request(
                    Method::GET,
                    "/api/admin/events/redisslow/stats",
                    None,
                    Some(ADMIN_TOKEN),
                )
                .await;
            stats.status == StatusCode::OK && stats.u64("held_seats") + stats.u64("sold_seats") == 1
        },
    )
    .await;
    // No seat is held without an order: the one seat taken is the paid order's,
    // sold, or still held by that order if the sale has not reached Redis.
    let taken = taken_seats(&app, "redisslow").await;
    assert!(
        matches!(taken.as_slice(), [(seat, _)] if seat == "A-1-1"),
        "only the paid seat is taken: {taken:?}"
    );
    // No order without its seat: a repeated payment brings the fast store in line.
    let order = app.pay(paid_during.str("order_id"), &passes[0]).await;
    assert_eq!(
        (order.status, order.str("status"), seats_of(&order)),
        (StatusCode::OK, "paid", vec!["A-1-1".to_owned()])
    );
    assert_eq!(
        taken_seats(&app, "redisslow").await,
        [("A-1-1".to_owned(), "sold".to_owned())]
    );
    let stats = app.stats("redisslow").await;
    let counts = ["held_seats", "sold_seats", "available_seats", "waiting"].map(|f| stats.u64(f));
    assert_eq!(
        counts,
        [0, 1, 7, waiting],
        "no refused hold or join left anything behind"
    );
    // The seats of the refused holds are free: holding them now succeeds exactly once.
    let again = join_all(
        passes[1..]
            .iter()
            .map(|pass| app.hold_seats("redisslow", pass, &["A-1-2", "A-1-3"])),
    )
    .await;
    let mut statuses: Vec<StatusCode> = again.iter().map(|r| r.status).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            StatusCode::CREATED,
            StatusCode::CONFLICT,
            StatusCode::CONFLICT
        ]
    );
    app.finish().await;
}

/// What the API answered to holds and payments while a server was slow.
#[derive(Default)]
struct Ledger {
    /// Acknowledged holds: the order, the index of its pass, its seats.
    held: Vec<(String, usize, Vec<String>)>,
    /// Refused holds: the index of the pass, the seats.
    refused: Vec<(usize, Vec<String>)>,
    /// Orders whose payment was acknowledged.
    paid: Vec<String>,
}

impl Ledger {
    /// Files a hold's answer: a `201`, or a `503` that invites a retry.
    fn hold(&mut self, reply: &Reply, pass: usize, seats: &[&str]) {
        let seats = seats.iter().map(|seat| seat.to_string()).collect();
        if reply.status == StatusCode::CREATED {
            self.held
                .push((reply.str("order_id").to_owned(), pass, seats));
        } else {
            assert_retry_later("a hold", reply);
            self.refused.push((pass, seats));
        }
    }

    /// Files a payment's answer: `200` paid, or a `503` that invites a retry.
    fn pay(&mut self, reply: &Reply, order: &str) {
        if reply.status == StatusCode::OK {
            assert_eq!(reply.str("status"), "paid", "{}", reply.body);
            self.paid.push(order.to_owned());
        } else {
            assert_retry_later("a payment", reply);
        }
    }
}

#[tokio::test]
async fn with_postgres_slow_holds_and_pays_answer_in_bounded_time_and_every_answer_stands() {
    use anteroom::adapters::record::ACQUIRE_TIMEOUT;
    use anteroom::http::REQUEST_TIMEOUT;
    let (proxy, through_proxy) = proxied(&crate::helpers::database_url().await).await;
    let app = spawn_app_with(&fresh_namespace(), |c| c.database_url = through_proxy).await;
    sale(&app, "pgslow", json!({ "sections": one_row(12) })).await;
    let passes = app.admitted_passes("pgslow", 6).await;
    let mut ledger = Ledger::default();
    let first: [&[&str]; 4] = [&["A-1-1", "A-1-2"], &["A-1-3"], &["A-1-4"], &["A-1-5"]];
    for (pass, seats) in first.iter().enumerate() {
        let reply = app.hold_seats("pgslow", &passes[pass], seats).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        ledger.hold(&reply, pass, seats);
    }
    let orders: Vec<String> = ledger
        .held
        .iter()
        .map(|(order, _, _)| order.clone())
        .collect();

    // Far: a round trip takes longer than an operation waits for its connection,
    // so every operation on the record fails at its first step.
    proxy.set_latency(ACQUIRE_TIMEOUT);
    let far: [&[&str]; 2] = [&["A-1-6", "A-1-7"], &["A-1-8"]];
    let (holds, pays) = tokio::join!(
        join_all(
            far.iter()
                .zip(&passes[4..])
                .map(|(seats, pass)| timed(app.hold_seats("pgslow", pass, seats)))
        ),
        join_all(
            orders[..2]
                .iter()
                .zip(&passes)
                .map(|(order, pass)| timed(app.pay(order, pass)))
        ),
    );
    // A hold takes its seats in Redis, waits for a connection, then undoes the hold.
    for ((reply, took), (i, seats)) in holds.iter().zip(far.iter().enumerate()) {
        assert_within("a hold", *took, ACQUIRE_TIMEOUT + SLACK);
        assert_retry_later("a hold", reply);
        ledger.hold(reply, 4 + i, seats);
    }
    for (reply, took) in &pays {
        assert_within("a payment", *took, ACQUIRE_TIMEOUT + SLACK);
        assert_retry_later("a payment", reply);
    }

    // Slow: a round trip fits in the connection wait, so work goes on, one slow
    // round trip at a time. Whatever the answer, it comes by the request deadline,
    // and work still going on then (it runs to its end) leaves nothing half-done.
    proxy.set_latency(ACQUIRE_TIMEOUT / 3);
    let slow: [&[&str]; 2] = [&["A-1-9"], &["A-1-10", "A-1-11"]];
    let (holds, pays) = tokio::join!(
        join_all(
            slow.iter()
                .zip(&passes[4..])
                .map(|(seats, pass)| timed(app.hold_seats("pgslow", pass, seats)))
        ),
        join_all(
            orders[..3]
                .iter()
                .zip(&passes)
                .map(|(order, pass)| timed(app.pay(order, pass)))
        ),
    );
    for ((reply, took), (i, seats)) in holds.iter().zip(slow.iter().enumerate()) {
        assert_within("a slow hold", *took, REQUEST_TIMEOUT + SLACK);
        ledger.hold(reply, 4 + i, seats);
    }
    for ((reply, took), order) in pays.iter().zip(&orders) {
        assert_within("a slow payment", *took, REQUEST_TIMEOUT + SLACK);
        ledger.pay(reply, order);
    }

    proxy.set_latency(Duration::ZERO);
    // Every acknowledged order is there with its seats, paid if its payment was
    // acknowledged; the seat map shows exactly those seats, held or sold as the record says.
    let record = async || {
        let mut taken = Vec::new();
        for (order, pass, seats) in &ledger.held {
            let reply = app.order(order, &passes[*pass]).await;
            if reply.status != StatusCode::OK {
                return None;
            }
            assert_eq!(
                &seats_of(&reply),
                seats,
                "an acknowledged order keeps its seats"
            );
            let state = match reply.str("status") {
                "paid" => "sold",
                "pending" if !ledger.paid.contains(order) => "held",
                other => panic!("an acknowledged order is {other}: {}", reply.body),
            };
            taken.extend(seats.iter().map(|seat| (seat.clone(), state.to_owned())));
        }
        taken.sort();
        Some(taken)
    };
    eventually(
        REQUEST_TIMEOUT,
        "the seat map agrees with the record",
        || async {
            let recorded = record().await;
            recorded.is_some() && recorded == Some(taken_seats(&app, "pgslow").await)
        },
    )
    .await;
    // The refused holds left no seat behind: their seats can be held now.
    for (pass, seats) in &ledger.refused {
        let seats: Vec<&str> = seats.iter().map(String::as_str).collect();
        let again = app.hold_seats("pgslow", &passes[*pass], &seats).await;
        assert_eq!(
            again.status,
            StatusCode::CREATED,
            "the seats of a refused hold are free: {}",
            again.body
        );
    }
    for (order, pass, _) in &ledger.held {
        let paid = app.pay(order, &passes[*pass]).await;
        assert_eq!(
            (paid.status, paid.str("status")),
            (StatusCode::OK, "paid"),
            "{}",
            paid.body
        );
    }
    let sold: u64 = ledger
        .held
        .iter()
        .map(|(_, _, seats)| seats.len() as u64)
        .sum();
    let held: u64 = ledger
        .refused
        .iter()
        .map(|(_, seats)| seats.len() as u64)
        .sum();
    let stats = app.stats("pgslow").await;
    let counts =
        ["sold_seats", "held_seats", "available_seats", "orders_paid"].map(|f| stats.u64(f));
    assert_eq!(
        counts,
        [sold, held, 12 - sold - held, ledger.held.len() as u64]
    );
    app.finish().await;
}

async fn poll_from(
    app: &TestApp,
    token: &str,
    last_read: Option<&str>,
) -> (serde_json::Value, Option<String>) {
    poll_echoing(&app.client, &app.address, token, last_read)
        .await
        .expect("the poll is answered")
}

/// Waits until `app`, another instance of the deployment, has loaded `event`.
async fn knows_event(app: &TestApp, event: &str) {
    let path = format!("/api/events/{event}");
    eventually(
        Duration::from_secs(5),
        "the other instance knows the event",
        || async { app.request(Method::GET, &path, None, None).await.status == StatusCode::OK },
    )
    .await;
}

#[tokio::test]
async fn a_position_never_goes_up_when_polls_reach_instances_that_have_read_less() {
    let namespace = fresh_namespace();
    let ahead = spawn_app_in(&namespace).await;
    let behind = spawn_app_in(&namespace).await;
    ahead
        .event(
            "relay",
            json!({ "admission": { "per_second": 40, "max_active": 1000, "pass_seconds": 600 } }),
        )
        .await;
    knows_event(&behind, "relay").await;
    let mut last = String::new();
    for _ in 0..60 {
        last = ahead.joined("relay").await;
    }

    // `ahead` reads the log right before each of its answers; `behind` only
    // every follow interval, so it has often read less when the client comes
    // to it next: it must catch up before it answers.
    let (mut last_read, mut last_position, mut polls) = (None, u64::MAX, 0);
    loop {
        ahead.workers.line.follow_once().await;
        let (answer, read_at) = poll_from(&ahead, &last, last_read.as_deref()).await;
        let (answer_behind, read_behind) = poll_from(&behind, &last, read_at.as_deref()).await;
        polls += 2;
        for answer in [&answer, &answer_behind] {
            match answer["state"].as_str() {
                Some("waiting") => {
                    let position = answer["position"].as_u64().expect("a position");
                    assert!(
                        position <= last_position,
                        "{position} after {last_position}, poll {polls}"
                    );
                    last_position = position;
                }
                Some("admitted") => {}
                other => panic!("unexpected state {other:?}: {answer}"),
            }
        }
        assert!(
            answer["state"] != "admitted" || answer_behind["state"] == "admitted",
            "admitted, then waiting again: {answer_behind}"
        );
        if answer_behind["state"] == "admitted" {
            break;
        }
        last_read = read_behind;
        assert!(polls < 2_000, "never admitted");
        // Visitors poll every so often, not in a busy loop.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(last_position < 60, "the line moved while it was watched");
    behind.finish().await;
    ahead.finish().await;
}

#[tokio::test]
async fn a_poll_sent_with_a_leave_answers_position_reads_left_on_an_instance_that_has_read_less() {
    let namespace = fresh_namespace();
    let here = spawn_app_in(&namespace).await;
    let there = spawn_app_in(&namespace).await;
    here.event("parting", json!({ "paused": true })).await;
    knows_event(&there, "parting").await;
    let mut tokens = Vec::new();
    for _ in 0..10 {
        tokens.push(here.joined("parting").await);
    }
    there.workers.line.follow_once().await;
    // `there` reads the log only every follow interval: right after each
    // leave it has not read it yet, unless the poll makes it catch up.
    for (i, token) in tokens.iter().enumerate() {
        let left = here.leave(token).await;
        assert_eq!(left.status, StatusCode::OK, "{}", left.body);
        let logged_at = left
            .headers
            .get("anteroom-log-position")
            .and_then(|v| v.to_str().ok())
            .expect("the leave says where it was logged");
        let (answer, _) = poll_from(&there, token, Some(logged_at)).await;
        assert_eq!(answer["state"], "left", "leave {i}: {answer}");
    }
    there.stop().await;
    here.finish().await;
}

#[tokio::test]
async fn a_process_that_has_not_yet_read_the_prequeue_close_still_counts_the_prequeue() {
    use time::format_description::well_known::Rfc3339;
    let app = spawn_app().await;
    // The other process reads Redis through a slow link: it follows the log late.
    let (proxy, through_proxy) = proxied(&crate::helpers::redis_url()).await;
    let other = spawn_app_with(&app.namespace, |c| c.redis_url = Some(through_proxy)).await;
    let opens = OffsetDateTime::now_utc() + Duration::from_secs(2);
    app.event(
        "lagging",
        json!({ "paused": true, "on_sale_at": opens.format(&Rfc3339).unwrap() }),
    )
    .await;
    for _ in 0..5 {
        assert_eq!(app.join("lagging", None).await.str("state"), "pre_queue");
    }
    proxy.set_latency(Duration::from_millis(300));
    tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_millis(2_200)).await;
    let joined: Vec<String> =
        futures_util::future::join_all((0..3).map(|_| app.joined("lagging"))).await;
    let polled = futures_util::future::join_all(joined.iter().map(|token| other.poll(token))).await;
    let mut positions: Vec<u64> = polled.iter().map(|reply| reply.u64("position")).collect();
    positions.sort_unstable();
    assert_eq!(
        positions,
        [6, 7, 8],
        "the lagging process counts the pre-queue too"
    );
    other.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn with_the_broker_slow_joins_answer_in_bounded_time_and_only_acknowledged_joins_take_a_place()
 {
    use anteroom::adapters::amqp::PUBLISH_TIMEOUT;
    let (proxy, through_proxy) = proxied(&amqp_url()).await;
    let app = spawn_app_with(&fresh_namespace(), |c| c.amqp_url = Some(through_proxy)).await;
    app.event(
        "mqslow",
        json!({ "admission": admission(100.0, 1_000, 600) }),
    )
    .await;
    let before = app.joined("mqslow").await;
    app.poll_until(&before, "admitted", Duration::from_secs(5))
        .await;
    // A join may wait for the groups already publishing (each within the timeout), then for its own publish.
    let join_bound = 2 * PUBLISH_TIMEOUT + SLACK;

    // Below the publish timeout: a confirm's round trip takes a third of it.
    proxy.set_latency(PUBLISH_TIMEOUT / 6);
    let slow = join_all((0..10).map(|_| timed(app.join("mqslow", None)))).await;
    for (reply, took) in &slow {
        assert_within("a slow join", *took, join_bound);
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }

    // Above it: one way takes all of it.
    proxy.set_latency(PUBLISH_TIMEOUT);
    let refused = join_all((0..10).map(|_| timed(app.join("mqslow", None)))).await;
    for (reply, took) in &refused {
        assert_within("a join", *took, join_bound);
        assert_retry_later("a join", reply);
    }
    // What was published before the timeout still reaches the broker, then the
    // admission worker, one latency each way: let it arrive while the link is slow.
    tokio::time::sleep(PUBLISH_TIMEOUT + SLACK).await;

    proxy.set_latency(Duration::ZERO);
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let reply = app.join("mqslow", None).await;
        if reply.status == StatusCode::CREATED {
            break reply.str("token").to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "joins did not recover: {}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Admission is in join order: once the last join is admitted, every place before it was settled.
    app.poll_until(&after, "admitted", Duration::from_secs(10))
        .await;
    for (reply, _) in &slow {
        app.poll_until(reply.str("token"), "admitted", Duration::from_secs(2))
            .await;
    }
    let stats = app.stats("mqslow").await;
    assert_eq!(
        (stats.u64("admitted_total"), stats.u64("waiting")),
        (1 + 10 + 1, 0),
        "every acknowledged join took a place, and no refused one did"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_broker_killed_mid_spike_and_started_again_loses_no_acknowledged_join() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut broker = DisposableRabbit::start().await;
    let app = std::sync::Arc::new(
        spawn_app_with(&fresh_namespace(), |c| c.amqp_url = Some(broker.url())).await,
    );
    let admission = json!({ "per_second": 5, "max_active": 100_000, "pass_seconds": 600 });
    sale(
        &app,
        "brokerdies",
        json!({ "hold_seconds": 3, "sections": one_row(4), "admission": admission }),
    )
    .await;
    let pass = app.admitted_pass("brokerdies").await;
    let held = app.hold_seats("brokerdies", &pass, &["A-1-1"]).await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.body);
    let waiting = app.joined("brokerdies").await;

    // A spike of joins, still arriving while the broker dies and comes back.
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let joiners: Vec<_> = (0..8)
        .map(|_| join_until_stopped(app.clone(), "brokerdies", stop.clone()))
        .collect();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    broker.kill();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let refused = app.join("brokerdies", None).await;
    assert_eq!(
        (refused.status, refused.error()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{}",
        refused.body
    );
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(
        app.poll(&waiting).await.status,
        StatusCode::OK,
        "polls answer without the broker"
    );
    broker.restart().await;
    // The publisher reconnects by itself.
    let after = until_available("join", || app.join("brokerdies", None)).await;
    assert_eq!(after.status, StatusCode::CREATED, "{}", after.body);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let replies = every_reply(joiners, after).await;
    let acknowledged: Vec<&str> = acknowledged_tokens(&replies)
        .chain([waiting.as_str()])
        .collect();
    assert!(
        replies.len() > acknowledged.len(),
        "some joins were refused while the broker was down"
    );

    // The consumer reconnects by itself; every acknowledged join survived the
    // broker's crash in the quorum queue and is admitted, and no refused one is.
    app.patch_event(
        "brokerdies",
        json!({ "admission": { "per_second": 1_000 } }),
    )
    .await;
    for token in &acknowledged {
        app.poll_until(token, "admitted", Duration::from_secs(30))
            .await;
    }
    let stats = app.stats("brokerdies").await;
    assert_eq!(
        (stats.u64("admitted_total"), stats.u64("waiting")),
        (1 + acknowledged.len() as u64, 0),
        "{}",
        stats.body
    );
    // The hold's expiry timer, confirmed before the crash, still ends it.
    eventually(
        Duration::from_secs(10),
        "the hold from before the crash expired",
        || async { app.order(held.str("order_id"), &pass).await.str("status") == "expired" },
    )
    .await;
    std::sync::Arc::into_inner(app)
        .expect("the joiners are done")
        .finish()
        .await;
}

/// The limit on wrong admin tokens is the deployment's, not each instance's.
#[tokio::test]
async fn wrong_admin_tokens_are_counted_across_instances() {
    use crate::door::{ALLOWED_FAILURES, admin_stats, within_one_window};
    let app = spawn_app().await;
    let other = spawn_app_in(&app.namespace).await;
    within_one_window().await;
    for attempt in 1..=ALLOWED_FAILURES {
        let instance = if attempt % 2 == 0 { &app } else { &other };
        let guess = admin_stats(instance, &format!("a-wrong-admin-token-guess-{attempt}")).await;
        assert_eq!(guess.status, StatusCode::UNAUTHORIZED, "guess {attempt}");
    }
    for instance in [&app, &other] {
        let refused = admin_stats(instance, "one-more-wrong-admin-token-guess").await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    }
    other.stop().await;
    app.finish().await;
}
