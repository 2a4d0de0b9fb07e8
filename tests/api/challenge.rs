//! The proof-of-work join challenge (API.md, "Proof-of-work join challenge").

use std::time::Duration;

use anteroom::domain::Difficulty;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, spawn_app, spawn_app_in};

/// A challenge fetched for `event`, asserted to be answered.
pub async fn fetch(app: &TestApp, event: &str) -> Reply {
    let reply = app
        .request(
            Method::GET,
            &format!("/api/events/{event}/challenge"),
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply
}

/// The first nonce that gives `challenge` at least `bits` zero bits and, when
/// `below` is given, fewer than that many.
pub fn solve(challenge: &str, bits: u64, below: Option<u64>) -> String {
    let (bits, below) = (
        Difficulty::parse(bits).unwrap(),
        below.map(|b| Difficulty::parse(b).unwrap()),
    );
    (0u64..)
        .map(|n| n.to_string())
        .find(|nonce| {
            bits.solved_by(challenge, nonce) && below.is_none_or(|b| !b.solved_by(challenge, nonce))
        })
        .unwrap()
}

/// A join of `event` with `body` (`visitor`, `challenge`, `nonce`).
pub async fn join_with(app: &TestApp, event: &str, body: Value) -> Reply {
    app.request(
        Method::POST,
        &format!("/api/events/{event}/queue"),
        Some(body),
        None,
    )
    .await
}

/// A challenge for `event` and its solution at `bits`, as a join body.
pub async fn solved(app: &TestApp, event: &str, bits: u64) -> Value {
    let challenge = fetch(app, event).await.str("challenge").to_owned();
    let nonce = solve(&challenge, bits, None);
    json!({ "challenge": challenge, "nonce": nonce })
}

/// Asserts a `428` whose fresh challenge is at `bits` and buys a place once solved.
async fn assert_challenge_required(app: &TestApp, event: &str, refused: &Reply, bits: u64) {
    assert_eq!(
        (refused.status, refused.error()),
        (StatusCode::PRECONDITION_REQUIRED, "challenge_required"),
        "{}",
        refused.body
    );
    assert_eq!(refused.u64("bits"), bits, "{}", refused.body);
    let fresh = refused.str("challenge");
    let nonce = solve(fresh, bits, None);
    let joined = join_with(app, event, json!({ "challenge": fresh, "nonce": nonce })).await;
    assert_eq!(joined.status, StatusCode::CREATED, "{}", joined.body);
}

#[tokio::test]
async fn the_challenge_is_off_by_default() {
    let app = spawn_app().await;
    let created = app.event("open-door", json!({})).await;
    assert_eq!(created.body["join_challenge"], json!({ "bits": 0 }));
    assert_eq!(fetch(&app, "open-door").await.u64("bits"), 0);
    app.joined("open-door").await;
    app.finish().await;
}

#[tokio::test]
async fn bits_out_of_range_are_refused_naming_the_field() {
    let app = spawn_app().await;
    for bits in [json!(33), json!(-1), json!(1.5), json!("8")] {
        let refused = app
            .create_event(crate::helpers::event_body(
                "too-hard",
                json!({ "join_challenge": { "bits": bits } }),
            ))
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{bits}");
        assert!(
            refused.str("message").starts_with("join_challenge.bits"),
            "{}",
            refused.body
        );
    }
    app.event("door", json!({ "join_challenge": { "bits": 32 } }))
        .await;
    // A whole number written with a fraction is a whole number (JSON Schema's integer).
    let patched = app
        .patch_event("door", json!({ "join_challenge": { "bits": 11.0 } }))
        .await;
    assert_eq!(patched.body["join_challenge"], json!({ "bits": 11 }));
    let refused = app
        .patch_event("door", json!({ "join_challenge": { "bits": 40 } }))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.str("message").starts_with("join_challenge.bits"));
    let refused = join_with(
        &app,
        "door",
        json!({ "challenge": "x", "nonce": "n".repeat(65) }),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.str("message").starts_with("nonce"),
        "{}",
        refused.body
    );
    app.finish().await;
}

#[tokio::test]
async fn a_join_without_a_valid_solution_gets_428_with_a_fresh_challenge() {
    let app = spawn_app().await;
    app.event("gate", json!({ "join_challenge": { "bits": 8 } }))
        .await;
    app.event("other-gate", json!({ "join_challenge": { "bits": 8 } }))
        .await;

    let missing = join_with(&app, "gate", json!({})).await;
    assert_challenge_required(&app, "gate", &missing, 8).await;

    let garbage = join_with(
        &app,
        "gate",
        json!({ "challenge": "garbage", "nonce": "1" }),
    )
    .await;
    assert_challenge_required(&app, "gate", &garbage, 8).await;

    let body = solved(&app, "gate", 8).await;
    let challenge = body["challenge"].as_str().unwrap();
    // Another expiry in the payload, with the original signature.
    let (payload, tag) = challenge.split_once('.').unwrap();
    let mut altered = payload.as_bytes().to_vec();
    altered[payload.len() - 2] = if altered[payload.len() - 2] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let tampered = format!("{}.{tag}", String::from_utf8(altered).unwrap());
    let refused = join_with(
        &app,
        "gate",
        json!({ "challenge": tampered, "nonce": solve(&tampered, 8, None) }),
    )
    .await;
    assert_challenge_required(&app, "gate", &refused, 8).await;

    let elsewhere = solved(&app, "other-gate", 8).await;
    let refused = join_with(&app, "gate", elsewhere).await;
    assert_challenge_required(&app, "gate", &refused, 8).await;
    assert!(refused.str("message").contains("another event"));

    let unsolved = json!({ "challenge": challenge, "nonce": solve(challenge, 0, Some(8)) });
    let refused = join_with(&app, "gate", unsolved).await;
    assert_challenge_required(&app, "gate", &refused, 8).await;

    app.clock.advance(Duration::from_secs(5 * 60));
    let refused = join_with(&app, "gate", body).await;
    assert_challenge_required(&app, "gate", &refused, 8).await;
    assert!(
        refused.str("message").contains("expired"),
        "{}",
        refused.body
    );
    app.finish().await;
}

#[tokio::test]
async fn a_solved_challenge_buys_one_place_and_a_live_visitor_keeps_theirs() {
    let app = spawn_app().await;
    app.event("once", json!({ "join_challenge": { "bits": 8 } }))
        .await;
    let mut body = solved(&app, "once", 8).await;
    body["visitor"] = json!("fan-1");
    let first = join_with(&app, "once", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);

    // The same visitor again: their place, whether the challenge is used or absent.
    let again = join_with(&app, "once", body.clone()).await;
    let bare = join_with(&app, "once", json!({ "visitor": "fan-1" })).await;
    for retried in [&again, &bare] {
        assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
        assert_eq!(retried.str("token_id"), first.str("token_id"));
    }

    // Anyone else with the used challenge: refused, with or without a visitor id.
    body["visitor"] = json!("fan-2");
    for replay in [
        body.clone(),
        json!({ "challenge": body["challenge"], "nonce": body["nonce"] }),
    ] {
        let refused = join_with(&app, "once", replay).await;
        assert_eq!(
            (refused.status, refused.error()),
            (StatusCode::CONFLICT, "challenge_used"),
            "{}",
            refused.body
        );
    }
    // A challenge brought by a retried join that got its place back is not
    // used up: it still buys a new place.
    let mut fresh = solved(&app, "once", 8).await;
    fresh["visitor"] = json!("fan-1");
    assert_eq!(
        join_with(&app, "once", fresh.clone()).await.status,
        StatusCode::OK
    );
    fresh["visitor"] = json!("fan-3");
    assert_eq!(
        join_with(&app, "once", fresh).await.status,
        StatusCode::CREATED
    );
    app.finish().await;
}

#[tokio::test]
async fn raising_bits_mid_sale_refuses_solutions_to_the_lower_difficulty() {
    let app = spawn_app().await;
    app.event("harder", json!({ "join_challenge": { "bits": 4 } }))
        .await;
    let challenge = fetch(&app, "harder").await.str("challenge").to_owned();
    let easy = solve(&challenge, 4, Some(16));
    let patched = app
        .patch_event("harder", json!({ "join_challenge": { "bits": 16 } }))
        .await;
    assert_eq!(patched.body["join_challenge"], json!({ "bits": 16 }));

    let refused = join_with(
        &app,
        "harder",
        json!({ "challenge": challenge, "nonce": easy }),
    )
    .await;
    assert_challenge_required(&app, "harder", &refused, 16).await;
    assert!(
        refused.str("message").contains("16 bits"),
        "{}",
        refused.body
    );
    app.finish().await;
}

#[tokio::test]
async fn a_used_challenge_stays_used_after_a_restart() {
    let app = spawn_app().await;
    app.event("durable-door", json!({ "join_challenge": { "bits": 8 } }))
        .await;
    let body = solved(&app, "durable-door", 8).await;
    assert_eq!(
        join_with(&app, "durable-door", body.clone()).await.status,
        StatusCode::CREATED
    );
    let namespace = app.namespace.clone();
    app.stop().await;

    let restarted = spawn_app_in(&namespace).await;
    let replay = join_with(&restarted, "durable-door", body).await;
    assert_eq!(
        (replay.status, replay.error()),
        (StatusCode::CONFLICT, "challenge_used"),
        "{}",
        replay.body
    );
    restarted.finish().await;
    let made_before = [anteroom::domain::EventId::parse("durable-door").unwrap()];
    crate::helpers::forget(&namespace, &made_before).await;
}
