use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anteroom::domain::{EventId, QueueToken, TokenKey};
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{
    Reply, SECRET, TestApp, eventually, fresh_namespace, poll_echoing, spawn_app, spawn_app_with,
};

#[tokio::test]
async fn joins_are_placed_in_order_and_polls_read_the_same_place() {
    let app = spawn_app().await;
    app.event("line", json!({ "paused": true })).await;
    let mut tokens = Vec::new();
    for expected in 1..=5 {
        let reply = app.join("line", None).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert_eq!(
            (reply.str("state"), reply.u64("position")),
            ("waiting", expected)
        );
        assert!(reply.u64("poll_after_ms") > 0);
        tokens.push((
            reply.str("token").to_owned(),
            reply.str("token_id").to_owned(),
        ));
    }
    for (expected, (token, token_id)) in (1..).zip(&tokens) {
        let poll = app.poll(token).await;
        assert_eq!(poll.status, StatusCode::OK);
        assert_eq!(
            (
                poll.str("state"),
                poll.u64("position"),
                poll.str("token_id")
            ),
            ("waiting", expected, token_id.as_str())
        );
        assert!(poll.u64("eta_max_seconds") >= poll.u64("eta_seconds"));
    }
    app.finish().await;
}

/// The service answers a plain poll before axum's router (`http::PollFirst`)
/// and leaves the rest to it: both ways must give the same answer (and are
/// counted under the same route: `process::every_poll_is_counted_under_its_route…`,
/// where the metrics are one process's own).
#[tokio::test]
async fn a_poll_answers_the_same_whichever_way_its_token_is_written() {
    let app = spawn_app().await;
    app.event("spelled", json!({ "paused": true })).await;
    app.joined("spelled").await;
    let token = app.joined("spelled").await;
    // The clock stands still: two answers for the same place are the same bytes.
    app.clock.pause();
    // The same token with its first character percent-encoded: only the router decodes it.
    let encoded = format!("%{:02X}{}", token.as_bytes()[0], &token[1..]);
    let headers = |reply: &Reply| {
        let mut named: Vec<(String, String)> = reply
            .headers
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "date" | "content-length"))
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("?").to_owned()))
            .collect();
        named.sort();
        named
    };
    let mut answers = Vec::new();
    for written in [token.clone(), encoded, format!("{token}?from=a-bookmark")] {
        let reply = app.poll(&written).await;
        assert_eq!(reply.status, StatusCode::OK, "{written}: {}", reply.body);
        assert_eq!((reply.str("state"), reply.u64("position")), ("waiting", 2));
        answers.push(reply);
    }
    let plain = &answers[0];
    assert!(
        headers(plain)
            .iter()
            .any(|(name, _)| name == "content-security-policy"),
        "{:?}",
        plain.headers
    );
    for other in &answers[1..] {
        assert_eq!(other.body, plain.body);
        assert_eq!(headers(other), headers(plain));
    }
    let head = app
        .request(Method::HEAD, &format!("/api/queue/{token}"), None, None)
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(headers(&head), headers(plain));
    for (bad, status, code) in [
        ("garbage", StatusCode::UNAUTHORIZED, "invalid_token"),
        ("%67arbage", StatusCode::UNAUTHORIZED, "invalid_token"),
        ("", StatusCode::NOT_FOUND, "not_found"),
        ("a/b", StatusCode::NOT_FOUND, "not_found"),
    ] {
        let reply = app.poll(bad).await;
        assert_eq!((reply.status, reply.error()), (status, code), "{bad:?}");
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
    assert!(
        (1..=300).all(|p| by_position.contains_key(&p)),
        "places are exactly 1..=300"
    );

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
            assert_eq!(
                reply.str("state"),
                "admitted",
                "{latest} was admitted before {p}"
            );
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
    assert_eq!(
        (other.status, other.u64("position")),
        (StatusCode::CREATED, 2)
    );

    let racing = join_all((0..20).map(|_| app.join("again", Some("racer")))).await;
    let created = racing
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let tokens: HashSet<&str> = racing.iter().map(|r| r.str("token")).collect();
    assert_eq!(
        (created, tokens.len()),
        (1, 1),
        "one place per visitor, whatever the concurrency"
    );
    assert_eq!(app.stats("again").await.u64("waiting"), 3);
    app.finish().await;
}

#[tokio::test]
async fn bad_join_bodies_are_refused() {
    let app = spawn_app().await;
    app.event("picky", json!({ "paused": true })).await;
    let malformed = [
        json!({ "visitor": "v".repeat(65) }),
        json!({ "visitor": "" }),
        json!({ "visitor": 5 }),
        json!(["v"]),
    ];
    for body in malformed {
        let reply = app
            .request(
                Method::POST,
                "/api/events/picky/queue",
                Some(body.clone()),
                None,
            )
            .await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            "{body}"
        );
    }
    let res = app
        .client
        .post(format!("{}/api/events/picky/queue", app.address))
        .body("[1,")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .client
        .post(format!("{}/api/events/picky/queue", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED, "the body is optional");
    app.finish().await;
}

#[tokio::test]
async fn leaving_moves_everyone_behind_up_and_the_place_is_skipped() {
    let app = spawn_app().await;
    app.event("exit", json!({ "paused": true })).await;
    let (first, second, third) = (
        app.joined("exit").await,
        app.joined("exit").await,
        app.joined("exit").await,
    );
    let left = app.leave(&first).await;
    assert_eq!((left.status, left.str("state")), (StatusCode::OK, "left"));
    let logged_at = left.headers.get("anteroom-log-position");
    assert!(
        logged_at.is_some_and(|mark| mark.to_str().is_ok_and(|mark| mark.contains('.'))),
        "the leave says how far into the log it was written: {logged_at:?}"
    );
    assert_eq!(app.poll(&first).await.str("state"), "left");
    assert_eq!(app.poll(&second).await.u64("position"), 1);
    assert_eq!(app.poll(&third).await.u64("position"), 2);
    assert_eq!(app.stats("exit").await.u64("waiting"), 2);

    app.patch_event("exit", json!({ "paused": false })).await;
    app.poll_until(&third, "admitted", Duration::from_secs(5))
        .await;
    assert_eq!(app.poll(&second).await.str("state"), "admitted");
    assert_eq!(app.poll(&first).await.str("state"), "left");
    let stats = app.stats("exit").await;
    assert_eq!(
        (
            stats.u64("admitted_total"),
            stats.u64("waiting"),
            stats.u64("active")
        ),
        (2, 0, 2)
    );

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
        let token = QueueToken {
            event: event.clone(),
            key: TokenKey::regular(1),
            token_id: uuid::Uuid::new_v4(),
        };
        crate::helpers::signer(secret, namespace).sign_token(&token)
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
            assert_eq!(
                (reply.status, reply.error()),
                (StatusCode::UNAUTHORIZED, "invalid_token"),
                "{bad}"
            );
        }
    }
    assert_eq!(app.poll(&real).await.status, StatusCode::OK);
    app.finish().await;
}

#[tokio::test]
async fn one_client_cannot_farm_places() {
    let app = spawn_app_with(&fresh_namespace(), |c| c.client_rate = 3).await;
    app.event("limited", json!({ "paused": true })).await;
    // A stopped clock refills no bucket, however slowly the joins are answered.
    app.clock.pause();
    let replies = join_all((0..6).map(|_| app.join("limited", None))).await;
    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let refused: Vec<_> = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(
        (created, refused.len()),
        (3, 3),
        "a burst of one second's worth, then 429"
    );
    assert_eq!(refused[0].error(), "rate_limited");
    assert_eq!(refused[0].headers["retry-after"], "1");
    assert_eq!(
        app.stats("limited").await.u64("waiting"),
        3,
        "refused joins take no place"
    );
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(
        app.join("limited", None).await.status,
        StatusCode::CREATED,
        "the bucket refills"
    );
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
    // A stopped clock refills no bucket between the first two joins.
    app.clock.pause();
    let join_from = |forwarded: &'static str| {
        app.client
            .post(format!("{}/api/events/proxied/queue", app.address))
            .header("x-forwarded-for", forwarded)
            .send()
    };
    assert_eq!(
        join_from("203.0.113.9, 198.51.100.1")
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    // The spoofable first entry differs, the address the proxy appended does not.
    assert_eq!(
        join_from("192.0.2.77, 198.51.100.1")
            .await
            .unwrap()
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        join_from("198.51.100.2").await.unwrap().status(),
        StatusCode::CREATED
    );
    app.finish().await;
}

/// Joins as `visitor` and asserts a new place at the back of the line; returns its token.
async fn joined_anew(app: &TestApp, event: &str, visitor: &str, ended: &str) -> String {
    let again = app.join(event, Some(visitor)).await;
    assert_eq!(
        again.status,
        StatusCode::CREATED,
        "a visitor whose place ended gets a new one: {}",
        again.body
    );
    assert_ne!(again.str("token"), ended, "a new token");
    again.str("token").to_owned()
}

/// Joins as `visitor` and asserts the live place `token` is answered.
async fn joined_same(app: &TestApp, event: &str, visitor: &str, token: &str) -> Reply {
    let again = app.join(event, Some(visitor)).await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "a live place is kept: {}",
        again.body
    );
    assert_eq!(again.str("token"), token);
    again
}

#[tokio::test]
async fn a_visitor_who_left_joins_again_at_the_back_of_the_line() {
    let app = spawn_app().await;
    app.event("rejoin", json!({ "paused": true })).await;
    let first = app.join("rejoin", Some("comes-back")).await;
    assert_eq!(
        (first.status, first.u64("position")),
        (StatusCode::CREATED, 1)
    );
    let first = first.str("token").to_owned();
    app.join("rejoin", Some("stays")).await;
    joined_same(&app, "rejoin", "comes-back", &first).await;

    assert_eq!(app.leave(&first).await.str("state"), "left");
    let second = joined_anew(&app, "rejoin", "comes-back", &first).await;
    let place = app.poll(&second).await;
    assert_eq!(
        (place.str("state"), place.u64("position")),
        ("waiting", 2),
        "behind the one who stayed"
    );
    assert_eq!(
        app.poll(&first).await.str("state"),
        "left",
        "the old place stays ended"
    );
    joined_same(&app, "rejoin", "comes-back", &second).await;

    // Racing joins after leaving still make exactly one new place.
    assert_eq!(app.leave(&second).await.str("state"), "left");
    let racing = join_all((0..20).map(|_| app.join("rejoin", Some("comes-back")))).await;
    let created = racing
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let tokens: HashSet<&str> = racing.iter().map(|r| r.str("token")).collect();
    assert_eq!(
        (created, tokens.len()),
        (1, 1),
        "one new place, whatever the concurrency"
    );
    assert!(!tokens.contains(second.as_str()));
    assert_eq!(app.stats("rejoin").await.u64("waiting"), 2);
    app.finish().await;
}

#[tokio::test]
async fn a_visitor_whose_place_was_abandoned_joins_again() {
    let app = spawn_app().await;
    let admission =
        json!({ "per_second": 50, "max_active": 1, "pass_seconds": 600, "abandon_seconds": 1 });
    app.event("dozed", json!({ "admission": admission })).await;
    // The only pass is taken: the visitor waits, stops polling, and is abandoned.
    app.admitted_pass("dozed").await;
    let dozed = app.join("dozed", Some("dozer")).await;
    assert_eq!(
        (dozed.status, dozed.str("state")),
        (StatusCode::CREATED, "waiting")
    );
    let dozed = dozed.str("token").to_owned();
    // Past `abandon_seconds` without a poll: the next admission step abandons the
    // place (polling before it does would be a sign of life).
    app.clock.advance(Duration::from_secs(2));
    eventually(Duration::from_secs(5), "the dozer is abandoned", || async {
        app.stats("dozed").await.u64("waiting") == 0
    })
    .await;
    app.poll_until(&dozed, "expired", Duration::from_secs(5))
        .await;
    let fresh = joined_anew(&app, "dozed", "dozer", &dozed).await;
    assert_eq!(app.poll(&fresh).await.str("state"), "waiting");
    joined_same(&app, "dozed", "dozer", &fresh).await;
    app.finish().await;
}

#[tokio::test]
async fn a_visitor_whose_pass_ran_out_joins_again() {
    let app = spawn_app().await;
    let admission = json!({ "per_second": 50, "max_active": 10, "pass_seconds": 1 });
    app.event("brief", json!({ "admission": admission })).await;
    let first = app
        .join("brief", Some("slow-buyer"))
        .await
        .str("token")
        .to_owned();
    app.poll_until(&first, "admitted", Duration::from_secs(10))
        .await;
    app.poll_until(&first, "expired", Duration::from_secs(5))
        .await;
    let second = joined_anew(&app, "brief", "slow-buyer", &first).await;
    app.poll_until(&second, "admitted", Duration::from_secs(10))
        .await;
    app.finish().await;
}

#[tokio::test]
async fn a_visitor_who_ended_the_pass_joins_again_and_a_valid_pass_is_kept() {
    let app = spawn_app().await;
    app.event("done", json!({})).await;
    let first = app
        .join("done", Some("buyer"))
        .await
        .str("token")
        .to_owned();
    app.poll_until(&first, "admitted", Duration::from_secs(10))
        .await;
    let kept = joined_same(&app, "done", "buyer", &first).await;
    assert_eq!(
        kept.str("state"),
        "admitted",
        "a valid pass is the visitor's place"
    );
    assert_eq!(app.leave(&first).await.str("state"), "left");
    let second = joined_anew(&app, "done", "buyer", &first).await;
    app.poll_until(&second, "admitted", Duration::from_secs(10))
        .await;
    app.finish().await;
}

#[tokio::test]
async fn estimates_account_for_the_rate_the_passes_and_a_pause() {
    let app = spawn_app().await;
    // Early in a sale, nothing measured yet: the rate alone, 5 s a place.
    let slow = json!({ "per_second": 0.2, "max_active": 500, "pass_seconds": 600 });
    app.event("slow", json!({ "admission": slow })).await;
    let mut last = None;
    for _ in 0..36 {
        last = Some(app.join("slow", None).await);
    }
    let last = last.unwrap();
    assert_eq!(last.str("limited_by"), "rate", "{}", last.body);
    assert_eq!(
        last.u64("eta_seconds"),
        5 * last.u64("position"),
        "{}",
        last.body
    );
    assert!(last.u64("eta_max_seconds") >= last.u64("eta_seconds"));

    // Every pass taken: the front waits for one to run out, not one second.
    let full = json!({ "per_second": 50, "max_active": 1, "pass_seconds": 600 });
    app.event("full", json!({ "admission": full })).await;
    app.admitted_pass("full").await;
    let next = app.join("full", None).await;
    assert_eq!(
        (next.str("state"), next.u64("position")),
        ("waiting", 1),
        "{}",
        next.body
    );
    assert_eq!(next.str("limited_by"), "passes");
    assert!(next.u64("eta_seconds") >= 590, "{}", next.body);
    assert!(next.u64("eta_max_seconds") >= next.u64("eta_seconds"));

    app.event("still", json!({ "paused": true })).await;
    assert_eq!(app.join("still", None).await.str("limited_by"), "paused");
    app.finish().await;
}

/// A poll of `token` sending back `mark`: the position shown, and the mark to send next.
async fn poll_with_mark(app: &TestApp, token: &str, mark: Option<&str>) -> (u64, Option<String>) {
    let (body, next) = poll_echoing(&app.client, &app.address, token, mark)
        .await
        .expect("the poll is answered");
    (body["position"].as_u64().expect("waiting"), next)
}

#[tokio::test]
async fn a_poll_never_shows_a_place_further_back_than_the_last_answer_did() {
    let app = spawn_app().await;
    app.event("marks", json!({ "paused": true })).await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(app.join("marks", None).await.str("token").to_owned());
    }
    let mut marks = Vec::new();
    for token in &tokens {
        // The first answers may come before this process has read the line's log.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mark = loop {
            if let (_, Some(mark)) = poll_with_mark(&app, token, None).await {
                break mark;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no answer carried a mark"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        marks.push(mark);
    }
    // The mark names the position shown: the third place, shown 3.
    let (read, shown) = marks[2].rsplit_once('.').expect("a mark with a position");
    assert_eq!(shown, "3", "{}", marks[2]);
    assert_eq!(poll_with_mark(&app, &tokens[2], Some(&marks[2])).await.0, 3);
    // An answer that would place it further back than the last one did (a
    // view behind a restored log, after a failover) shows the last position.
    let earlier = format!("{read}.1");
    let (position, next) = poll_with_mark(&app, &tokens[2], Some(&earlier)).await;
    assert_eq!(position, 1);
    assert!(
        next.is_some_and(|mark| mark.ends_with(".1")),
        "the next mark carries it on"
    );
    // Another token's mark, or one that does not read, moves nothing.
    assert_eq!(poll_with_mark(&app, &tokens[2], Some(&marks[0])).await.0, 3);
    assert_eq!(poll_with_mark(&app, &tokens[2], Some("1.2.r3")).await.0, 3);
    app.finish().await;
}
