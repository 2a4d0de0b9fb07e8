use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anteroom::domain::{EventId, QueueToken, Signer, TokenKey};
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{SECRET, fresh_namespace, spawn_app, spawn_app_with};

#[tokio::test]
async fn joins_are_placed_in_order_and_polls_read_the_same_place() {
    let app = spawn_app().await;
    app.event("line", json!({ "paused": true })).await;
    let mut tokens = Vec::new();
    for expected in 1..=5 {
        let reply = app.join("line", None).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert_eq!((reply.str("state"), reply.u64("position")), ("waiting", expected));
        assert!(reply.u64("poll_after_ms") > 0);
        tokens.push((reply.str("token").to_owned(), reply.str("token_id").to_owned()));
    }
    for (expected, (token, token_id)) in (1..).zip(&tokens) {
        let poll = app.poll(token).await;
        assert_eq!(poll.status, StatusCode::OK);
        assert_eq!(
            (poll.str("state"), poll.u64("position"), poll.str("token_id")),
            ("waiting", expected, token_id.as_str())
        );
        assert!(poll.u64("eta_max_seconds") >= poll.u64("eta_seconds"));
    }
    app.finish().await;
}

#[tokio::test]
async fn concurrent_joins_get_distinct_places_and_are_admitted_in_that_order() {
    let app = spawn_app().await;
    app.event(
        "crowd",
        json!({ "paused": true, "admission": { "per_second": 40, "max_active": 1000, "pass_seconds": 600 } }),
    )
    .await;
    let joins = join_all((0..300).map(|_| app.join("crowd", None))).await;
    let mut by_position = HashMap::new();
    for reply in &joins {
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        by_position.insert(reply.u64("position"), reply.str("token").to_owned());
    }
    assert_eq!(by_position.len(), 300, "every join has its own place");
    assert!((1..=300).all(|p| by_position.contains_key(&p)), "places are exactly 1..=300");

    app.patch_event("crowd", json!({ "paused": false })).await;
    let mut last_position: HashMap<u64, u64> = by_position.keys().map(|&p| (p, p)).collect();
    let mut admitted_prefix = 0;
    while admitted_prefix < 300 {
        let app = &app;
        let polls = join_all((1..=300u64).map(|p| {
            let token = &by_position[&p];
            async move { (p, app.poll(token).await) }
        }))
        .await;
        let mut admitted = HashSet::new();
        for (joined_at, reply) in polls {
            match reply.str("state") {
                "admitted" => {
                    admitted.insert(joined_at);
                }
                "waiting" => {
                    let position = reply.u64("position");
                    assert!(position <= last_position[&joined_at], "a position went up");
                    last_position.insert(joined_at, position);
                }
                other => panic!("unexpected state {other}"),
            }
        }
        // Admission is FIFO: once someone is seen admitted, everyone who joined
        // earlier reads admitted from then on. (One sweep of concurrent polls is
        // not a snapshot: the view may move on between two of its polls.)
        let latest = admitted.iter().copied().max().unwrap_or(0);
        let earlier: Vec<u64> = (1..latest).filter(|p| !admitted.contains(p)).collect();
        let rechecked = join_all(earlier.iter().map(|p| app.poll(&by_position[p]))).await;
        for (p, reply) in earlier.iter().zip(&rechecked) {
            assert_eq!(reply.str("state"), "admitted", "{latest} was admitted before {p}");
            admitted.insert(*p);
        }
        let prefix = (1..=300).take_while(|p| admitted.contains(p)).count();
        assert!(prefix >= admitted_prefix);
        admitted_prefix = prefix;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.finish().await;
}

#[tokio::test]
async fn joining_again_with_the_same_visitor_returns_the_same_token() {
    let app = spawn_app().await;
    app.event("again", json!({ "paused": true })).await;
    let first = app.join("again", Some("visitor-1")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let second = app.join("again", Some("visitor-1")).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.str("token"), first.str("token"));
    assert_eq!(second.u64("position"), 1);
    let other = app.join("again", Some("visitor-2")).await;
    assert_eq!((other.status, other.u64("position")), (StatusCode::CREATED, 2));

    let racing = join_all((0..20).map(|_| app.join("again", Some("racer")))).await;
    let created = racing.iter().filter(|r| r.status == StatusCode::CREATED).count();
    let tokens: HashSet<&str> = racing.iter().map(|r| r.str("token")).collect();
    assert_eq!((created, tokens.len()), (1, 1), "one place per visitor, whatever the concurrency");
    assert_eq!(app.stats("again").await.u64("waiting"), 3);
    app.finish().await;
}

#[tokio::test]
async fn bad_join_bodies_are_refused() {
    let app = spawn_app().await;
    app.event("picky", json!({ "paused": true })).await;
    let malformed =
        [json!({ "visitor": "v".repeat(65) }), json!({ "visitor": "" }), json!({ "visitor": 5 }), json!(["v"])];
    for body in malformed {
        let reply = app.request(Method::POST, "/api/events/picky/queue", Some(body.clone()), None).await;
        assert_eq!((reply.status, reply.error()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"), "{body}");
    }
    let res = app.client.post(format!("{}/api/events/picky/queue", app.address)).body("[1,").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app.client.post(format!("{}/api/events/picky/queue", app.address)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED, "the body is optional");
    app.finish().await;
}

#[tokio::test]
async fn leaving_moves_everyone_behind_up_and_the_place_is_skipped() {
    let app = spawn_app().await;
    app.event("exit", json!({ "paused": true })).await;
    let (first, second, third) = (app.joined("exit").await, app.joined("exit").await, app.joined("exit").await);
    let left = app.leave(&first).await;
    assert_eq!((left.status, left.str("state")), (StatusCode::OK, "left"));
    assert_eq!(app.poll(&first).await.str("state"), "left");
    assert_eq!(app.poll(&second).await.u64("position"), 1);
    assert_eq!(app.poll(&third).await.u64("position"), 2);
    assert_eq!(app.stats("exit").await.u64("waiting"), 2);

    app.patch_event("exit", json!({ "paused": false })).await;
    app.poll_until(&third, "admitted", Duration::from_secs(5)).await;
    assert_eq!(app.poll(&second).await.str("state"), "admitted");
    assert_eq!(app.poll(&first).await.str("state"), "left");
    let stats = app.stats("exit").await;
    assert_eq!((stats.u64("admitted_total"), stats.u64("waiting"), stats.u64("active")), (2, 0, 2));

    // Ending a pass early frees its place under max_active at once.
    assert_eq!(app.leave(&second).await.str("state"), "left");
    assert_eq!(app.poll(&second).await.str("state"), "left");
    assert_eq!(app.stats("exit").await.u64("active"), 1);
    app.finish().await;
}

#[tokio::test]
async fn forged_foreign_and_malformed_tokens_are_refused() {
    let app = spawn_app().await;
    app.event("sealed", json!({})).await;
    let real = app.joined("sealed").await;
    let event = EventId::parse("sealed").unwrap();
    let forged = |secret: &[u8], namespace: &str| {
        let token = QueueToken { event: event.clone(), key: TokenKey::regular(1), token_id: uuid::Uuid::new_v4() };
        Signer::new(secret, namespace).sign_token(&token)
    };
    let (payload, _) = real.split_once('.').unwrap();
    for bad in [
        forged(b"another-secret", &app.namespace),
        forged(SECRET.as_bytes(), "another-deployment"),
        format!("{payload}.AAAA"),
        "garbage".to_owned(),
        "a.b".to_owned(),
    ] {
        for reply in [app.poll(&bad).await, app.leave(&bad).await] {
            assert_eq!((reply.status, reply.error()), (StatusCode::UNAUTHORIZED, "invalid_token"), "{bad}");
        }
    }
    assert_eq!(app.poll(&real).await.status, StatusCode::OK);
    app.finish().await;
}

#[tokio::test]
async fn one_client_cannot_farm_places() {
    let app = spawn_app_with(&fresh_namespace(), |c| c.client_rate = 3).await;
    app.event("limited", json!({ "paused": true })).await;
    let replies = join_all((0..6).map(|_| app.join("limited", None))).await;
    let created = replies.iter().filter(|r| r.status == StatusCode::CREATED).count();
    let refused: Vec<_> = replies.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!((created, refused.len()), (3, 3), "a burst of one second's worth, then 429");
    assert_eq!(refused[0].error(), "rate_limited");
    assert_eq!(refused[0].headers["retry-after"], "1");
    assert_eq!(app.stats("limited").await.u64("waiting"), 3, "refused joins take no place");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(app.join("limited", None).await.status, StatusCode::CREATED, "the bucket refills");
    app.finish().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_the_client() {
    let app = spawn_app_with(&fresh_namespace(), |c| {
        c.client_rate = 1;
        c.trust_forwarded = true;
    })
    .await;
    app.event("proxied", json!({ "paused": true })).await;
    let join_from = |forwarded: &'static str| {
        app.client.post(format!("{}/api/events/proxied/queue", app.address)).header("x-forwarded-for", forwarded).send()
    };
    assert_eq!(join_from("203.0.113.9, 198.51.100.1").await.unwrap().status(), StatusCode::CREATED);
    // The spoofable first entry differs, the address the proxy appended does not.
    assert_eq!(join_from("192.0.2.77, 198.51.100.1").await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(join_from("198.51.100.2").await.unwrap().status(), StatusCode::CREATED);
    app.finish().await;
}
