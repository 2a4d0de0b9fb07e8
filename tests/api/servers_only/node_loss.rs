//! A node of a clustered engine dies mid-sale, and nothing acknowledged is
//! lost. They need `infra/cluster.sh up`, with `TEST_REDIS_URL` and
//! `TEST_AMQP_URL` naming its Redis Cluster and RabbitMQ cluster, and they kill
//! shared nodes: ignored by default, `infra/test.sh` runs them alone with
//! `--ignored` after the suite. Each one starts its victim again at the end.

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use super::balancer::a_sale_through_nginx_survives;
use super::{acknowledged_tokens, every_reply, join_until_stopped, until_available};
use crate::helpers::{TestApp, amqp_url, eventually, redis_url, spawn_app};
use crate::orders::{one_row, sale};

/// `infra/cluster.sh` with `args`; its standard output.
fn cluster(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/infra/cluster.sh");
    let output = Command::new("bash")
        .arg(script)
        .args(args)
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "infra/cluster.sh {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn require_clusters() {
    assert!(
        redis_url().starts_with("redis-cluster://") && amqp_url().contains(','),
        "TEST_REDIS_URL and TEST_AMQP_URL must name infra/cluster.sh's clusters \
         (eval \"$(bash infra/cluster.sh urls)\")"
    );
}

#[tokio::test]
#[ignore = "kills a node of the shared clusters: infra/test.sh runs it alone, with --ignored"]
async fn the_rabbitmq_node_leading_a_line_dies_and_every_acknowledged_join_is_admitted() {
    require_clusters();
    let app = Arc::new(spawn_app().await);
    let admission = json!({ "per_second": 5, "max_active": 100_000, "pass_seconds": 600 });
    sale(
        &app,
        "leaderdies",
        json!({ "sections": one_row(4), "admission": admission }),
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let joiners: Vec<_> = (0..8)
        .map(|_| join_until_stopped(app.clone(), "leaderdies", stop.clone()))
        .collect();
    tokio::time::sleep(Duration::from_millis(1_000)).await;

    // The node the service declared the queue on leads it, and is the one the
    // service is connected to: both the queue and the connection move.
    let queue = format!("{}.line.leaderdies", app.namespace);
    let killed = cluster(&["kill-rabbit-leader", &queue]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = until_available("join", || app.join("leaderdies", None)).await;
    assert_eq!(after.status, StatusCode::CREATED, "{}", after.body);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.store(true, Ordering::Relaxed);
    let replies = every_reply(joiners, after).await;
    let acknowledged: Vec<&str> = acknowledged_tokens(&replies).collect();

    // The queue's new leader has every acknowledged join, and the admission
    // consumer found it on a live node.
    app.patch_event(
        "leaderdies",
        json!({ "admission": { "per_second": 1_000 } }),
    )
    .await;
    for token in &acknowledged {
        app.poll_until(token, "admitted", Duration::from_secs(30))
            .await;
    }
    let stats = app.stats("leaderdies").await;
    assert_eq!(
        (stats.u64("admitted_total"), stats.u64("waiting")),
        (acknowledged.len() as u64, 0),
        "node {killed} died; {}",
        stats.body
    );
    Arc::into_inner(app)
        .expect("the joiners are done")
        .finish()
        .await;
    cluster(&["up"]);
}

/// One buyer: holds one best-available seat and pays for it, as a browser
/// would through an outage (retrying after `Retry-After`, holding again if
/// the hold ran out). The seat and order it paid for.
async fn buy_one_seat(app: Arc<TestApp>, event: &'static str, pass: String) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(45);
    let retry = async |reply: &crate::helpers::Reply| {
        assert!(Instant::now() < deadline, "no seat bought: {}", reply.body);
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    loop {
        let held = app
            .hold(event, &pass, json!({ "best_available": { "count": 1 } }))
            .await;
        if held.status == StatusCode::SERVICE_UNAVAILABLE {
            retry(&held).await;
            continue;
        }
        assert_eq!(held.status, StatusCode::CREATED, "{}", held.body);
        let order = held.str("order_id").to_owned();
        loop {
            let paid = app.pay(&order, &pass).await;
            match paid.status {
                StatusCode::OK => {
                    return (held.body["seats"][0].as_str().unwrap().to_owned(), order);
                }
                StatusCode::GONE => break,
                StatusCode::SERVICE_UNAVAILABLE => retry(&paid).await,
                other => panic!("payment answered {other}: {}", paid.body),
            }
        }
    }
}

#[tokio::test]
#[ignore = "kills a node of the shared clusters: infra/test.sh runs it alone, with --ignored"]
async fn the_redis_master_serving_an_event_dies_and_every_paid_seat_reads_sold() {
    require_clusters();
    const BUYERS: usize = 24;
    let app = Arc::new(spawn_app().await);
    let admission = json!({ "per_second": 1_000, "max_active": 100_000, "pass_seconds": 600 });
    sale(
        &app,
        "masterdies",
        json!({ "hold_seconds": 30, "sections": one_row(40), "admission": admission }),
    )
    .await;
    let passes = app.admitted_passes("masterdies", BUYERS).await;
    // Buyers arrive over three seconds; the master dies one second in.
    let buyers: Vec<_> = passes
        .into_iter()
        .enumerate()
        .map(|(i, pass)| {
            let app = app.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(125 * i as u64)).await;
                buy_one_seat(app, "masterdies", pass).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let killed = cluster(&[
        "kill-redis-owner",
        &format!("{{{}:masterdies}}", app.namespace),
    ]);
    let mut bought = Vec::new();
    for buyer in buyers {
        bought.push(buyer.await.expect("a buyer got a seat"));
    }
    cluster(&["up"]);

    let seats: HashSet<&str> = bought.iter().map(|(seat, _)| seat.as_str()).collect();
    assert_eq!(seats.len(), BUYERS, "no seat was sold twice: {bought:?}");
    // A payment answered during the failover is in the record; the seat map
    // follows it at the next sweep, not at the reaper's time.
    eventually(
        Duration::from_secs(10),
        "every paid seat reads sold and the counts agree",
        || async {
            let map = app.seat_states("masterdies").await;
            let sold: HashSet<&str> = map
                .iter()
                .filter(|(_, state)| state.as_str() == "sold")
                .map(|(seat, _)| seat.as_str())
                .collect();
            sold == seats && app.stats("masterdies").await.u64("sold_seats") == BUYERS as u64
        },
    )
    .await;
    assert!(!killed.is_empty());
    Arc::into_inner(app)
        .expect("the buyers are done")
        .finish()
        .await;
}

/// Each event's keys are one slot of one master. While that master is gone,
/// until its replica is promoted, its events wait; an event another master
/// serves keeps taking joins, not one refused.
#[tokio::test]
#[ignore = "kills a node of the shared clusters: infra/test.sh runs it alone, with --ignored"]
async fn while_a_redis_master_fails_over_an_event_on_another_master_keeps_taking_joins() {
    require_clusters();
    const DYING: &str = "failsover";
    let app = Arc::new(spawn_app().await);
    let owner = |event: &str| cluster(&["redis-owner", &format!("{{{}:{event}}}", app.namespace)]);
    let dying_owner = owner(DYING);
    // Three masters: one of a dozen names is served by another, but for a
    // chance of one in half a million.
    let elsewhere: &'static str = [
        "elsewhere1",
        "elsewhere2",
        "elsewhere3",
        "elsewhere4",
        "elsewhere5",
        "elsewhere6",
        "elsewhere7",
        "elsewhere8",
        "elsewhere9",
        "elsewhere10",
        "elsewhere11",
        "elsewhere12",
    ]
    .into_iter()
    .find(|event| owner(event) != dying_owner)
    .expect("an event served by another master");
    let admission = json!({ "per_second": 5, "max_active": 100_000, "pass_seconds": 600 });
    for event in [DYING, elsewhere] {
        sale(
            &app,
            event,
            json!({ "sections": one_row(4), "admission": admission }),
        )
        .await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let joiners: Vec<_> = (0..4)
        .map(|_| join_until_stopped(app.clone(), elsewhere, stop.clone()))
        .collect();
    let waiting = join_until_stopped(app.clone(), DYING, stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;

    let killed = cluster(&[
        "kill-redis-owner",
        &format!("{{{}:{DYING}}}", app.namespace),
    ]);
    assert_eq!(killed, dying_owner);
    let failed_over = until_available("join", || app.join(DYING, None)).await;
    assert_eq!(
        failed_over.status,
        StatusCode::CREATED,
        "{}",
        failed_over.body
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);

    let waited = waiting.await.expect("the joiner ran");
    assert!(
        waited
            .iter()
            .any(|r| r.status == StatusCode::SERVICE_UNAVAILABLE),
        "the dying master's event waited for the failover"
    );
    let replies = every_reply(joiners, failed_over).await;
    let refused: Vec<_> = replies[1..]
        .iter()
        .filter(|r| r.status != StatusCode::CREATED)
        .map(|r| (r.status, r.body.to_string()))
        .collect();
    assert!(
        refused.is_empty(),
        "the other master's event refused {} of {} joins: {refused:?}",
        refused.len(),
        replies.len() - 1
    );
    Arc::into_inner(app)
        .expect("the joiners are done")
        .finish()
        .await;
    cluster(&["up"]);
}

/// A planned failover of the master serving an event, mid-sale (`CLUSTER
/// FAILOVER`: its replica takes over without losing a write). The former
/// master answers `MOVED`; the command goes again to the new one: no join is
/// refused, and every one is admitted.
#[tokio::test]
#[ignore = "fails over a master of the shared cluster: infra/test.sh runs it alone, with --ignored"]
async fn a_planned_failover_of_an_events_redis_master_refuses_no_join() {
    require_clusters();
    let app = Arc::new(spawn_app().await);
    let admission = json!({ "per_second": 5, "max_active": 100_000, "pass_seconds": 600 });
    sale(
        &app,
        "planned",
        json!({ "sections": one_row(4), "admission": admission }),
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let joiners: Vec<_> = (0..4)
        .map(|_| join_until_stopped(app.clone(), "planned", stop.clone()))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let key = format!("{{{}:planned}}", app.namespace);
    let before = cluster(&["redis-owner", &key]);
    let after = cluster(&["failover-redis-owner", &key]);
    assert_ne!(before, after, "another node serves the event");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let last = app.join("planned", None).await;
    stop.store(true, Ordering::Relaxed);
    let replies = every_reply(joiners, last).await;
    let refused: Vec<_> = replies
        .iter()
        .filter(|r| r.status != StatusCode::CREATED)
        .map(|r| (r.status, r.body.to_string()))
        .collect();
    assert!(refused.is_empty(), "joins refused: {refused:?}");

    app.patch_event("planned", json!({ "admission": { "per_second": 1_000 } }))
        .await;
    let acknowledged: Vec<&str> = acknowledged_tokens(&replies).collect();
    for token in &acknowledged {
        app.poll_until(token, "admitted", Duration::from_secs(30))
            .await;
    }
    Arc::into_inner(app)
        .expect("the joiners are done")
        .finish()
        .await;
}

/// Three instances behind nginx on the clusters, through the death of the
/// Redis master that serves the event's keys.
#[tokio::test]
#[ignore = "kills a node of the shared clusters: infra/test.sh runs it alone, with --ignored"]
async fn three_instances_behind_nginx_keep_a_sale_going_when_the_redis_master_dies() {
    require_clusters();
    a_sale_through_nginx_survives("nginxredis", async |_, namespace| {
        cluster(&["kill-redis-owner", &format!("{{{namespace}:nginxredis}}")]);
    })
    .await;
    cluster(&["up"]);
}

/// Three instances behind nginx on the clusters, through the death of the
/// RabbitMQ node that leads the event's line queue.
#[tokio::test]
#[ignore = "kills a node of the shared clusters: infra/test.sh runs it alone, with --ignored"]
async fn three_instances_behind_nginx_keep_a_sale_going_when_the_line_leader_dies() {
    require_clusters();
    a_sale_through_nginx_survives("nginxrabbit", async |_, namespace| {
        cluster(&[
            "kill-rabbit-leader",
            &format!("{namespace}.line.nginxrabbit"),
        ]);
    })
    .await;
    cluster(&["up"]);
}

/// Three instances behind nginx on the Sentinel set (`TEST_REDIS_URL` its
/// `redis-sentinel://` URL), through a failover of its primary.
#[tokio::test]
#[ignore = "fails over the shared Sentinel set: infra/test.sh runs it alone, with --ignored"]
async fn three_instances_behind_nginx_keep_a_sale_going_through_a_sentinel_failover() {
    assert!(
        redis_url().starts_with("redis-sentinel://"),
        "TEST_REDIS_URL must name infra/cluster.sh's Sentinel set"
    );
    a_sale_through_nginx_survives("nginxsentinel", async |_, _| {
        cluster(&["failover-sentinel"]);
    })
    .await;
}
