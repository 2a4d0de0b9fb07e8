//! Invitation-only events (API.md, "Invitation-only events") and the limit on
//! places per client address.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::challenge::{join_with, solved};
use crate::helpers::{ADMIN_TOKEN, Reply, TestApp, spawn_app, spawn_app_in};

/// Ten unknown codes per client address per minute (`services::door`).
const ALLOWED_UNKNOWN_CODES: usize = 10;

pub async fn issue_codes(app: &TestApp, event: &str, body: Value) -> Reply {
    app.request(
        Method::POST,
        &format!("/api/admin/events/{event}/codes"),
        Some(body),
        Some(ADMIN_TOKEN),
    )
    .await
}

/// `count` new codes of `event`, asserted to be issued.
pub async fn generated(app: &TestApp, event: &str, count: u64) -> Vec<String> {
    let reply = issue_codes(app, event, json!({ "count": count })).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    serde_json::from_value(reply.body["codes"].clone()).unwrap()
}

pub async fn code_stats(app: &TestApp, event: &str) -> (u64, u64) {
    let reply = app
        .request(
            Method::GET,
            &format!("/api/admin/events/{event}/codes/stats"),
            None,
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    (reply.u64("issued"), reply.u64("used"))
}

fn retry_after(reply: &Reply) -> u64 {
    reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn access_and_the_address_limit_are_set_at_creation_and_by_patch() {
    let app = spawn_app().await;
    let open = app.event("open-door", json!({})).await;
    assert_eq!(open.body["access"], "open");
    assert_eq!(open.body.get("address_limit"), None);
    let presale = app
        .event(
            "presale",
            json!({ "access": "codes", "address_limit": { "places": 2, "window_seconds": 600 } }),
        )
        .await;
    assert_eq!(presale.body["access"], "codes");
    assert_eq!(
        presale.body["address_limit"],
        json!({ "places": 2, "window_seconds": 600 })
    );
    let patched = app
        .patch_event(
            "presale",
            json!({ "access": "open", "address_limit": { "places": 0, "window_seconds": 60 } }),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["access"], "open");
    assert_eq!(
        patched.body.get("address_limit"),
        None,
        "0 places: no limit"
    );

    for (field, bad) in [
        ("access", json!({ "access": "closed" })),
        ("access", json!({ "access": 1 })),
        (
            "address_limit.places",
            json!({ "address_limit": { "places": -1, "window_seconds": 60 } }),
        ),
        (
            "address_limit.places",
            json!({ "address_limit": { "places": 1_000_001, "window_seconds": 60 } }),
        ),
        (
            "address_limit.window_seconds",
            json!({ "address_limit": { "places": 1, "window_seconds": 0 } }),
        ),
        (
            "address_limit.window_seconds",
            json!({ "address_limit": { "places": 1 } }),
        ),
        ("address_limit", json!({ "address_limit": [1, 60] })),
    ] {
        let created = app
            .create_event(crate::helpers::event_body("refused", bad.clone()))
            .await;
        let patched = app.patch_event("open-door", bad.clone()).await;
        for refused in [created, patched] {
            assert_eq!(
                (refused.status, refused.error()),
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
                "{bad}: {}",
                refused.body
            );
            assert!(
                refused.str("message").starts_with(field),
                "{bad}: {}",
                refused.body
            );
        }
    }
    app.finish().await;
}

#[tokio::test]
async fn codes_are_generated_once_imported_without_double_counting_and_counted() {
    let app = spawn_app().await;
    app.event("invited", json!({ "access": "codes" })).await;
    let codes = generated(&app, "invited", 5).await;
    assert_eq!(codes.len(), 5);
    for code in &codes {
        let groups: Vec<&str> = code.split('-').collect();
        assert_eq!(groups.len(), 4, "{code}");
        assert!(
            groups
                .iter()
                .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_alphanumeric())),
            "{code}"
        );
    }
    let distinct: std::collections::HashSet<&String> = codes.iter().collect();
    assert_eq!(distinct.len(), 5);
    assert_eq!(code_stats(&app, "invited").await, (5, 0));

    let imported = issue_codes(
        &app,
        "invited",
        json!({ "codes": ["FAN-CLUB-0001", "fan club 0002", "FANCLUB0001"] }),
    )
    .await;
    assert_eq!(imported.status, StatusCode::CREATED, "{}", imported.body);
    assert_eq!(imported.u64("added"), 2, "the same code written twice");
    let again = issue_codes(&app, "invited", json!({ "codes": ["fanclub-0002"] })).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(again.u64("added"), 0);
    assert_eq!(code_stats(&app, "invited").await, (7, 0));

    for (field, bad) in [
        ("count", json!({ "count": 0 })),
        ("count", json!({ "count": 1_000_001 })),
        ("count", json!({ "count": "ten" })),
        ("count", json!({})),
        ("count", json!({ "count": 1, "codes": ["ABCDEFGH"] })),
        ("codes", json!({ "codes": [] })),
        ("codes[1]", json!({ "codes": ["ABCDEFGH", "ABC"] })),
        ("codes[0]", json!({ "codes": ["ABC_DEFGH"] })),
        ("codes[0]", json!({ "codes": ["A".repeat(65)] })),
        ("codes[0]", json!({ "codes": [7] })),
        ("the body", json!([1])),
    ] {
        let refused = issue_codes(&app, "invited", bad.clone()).await;
        assert_eq!(
            (refused.status, refused.error()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            "{bad}: {}",
            refused.body
        );
        assert!(
            refused.str("message").starts_with(field),
            "{bad}: {}",
            refused.body
        );
    }
    assert_eq!(
        code_stats(&app, "invited").await,
        (7, 0),
        "nothing refused was kept"
    );
    let unknown = issue_codes(&app, "no-such-event", json!({ "count": 1 })).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let anonymous = app
        .request(
            Method::POST,
            "/api/admin/events/invited/codes",
            Some(json!({ "count": 1 })),
            None,
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    app.finish().await;
}

/// API.md's largest request: a million codes in one answer, each distinct, each
/// admitting. (The clusters' passes skip it: it is the record's work.)
#[tokio::test]
async fn a_million_codes_come_in_one_answer() {
    let app = spawn_app().await;
    app.event("stadium-presale", json!({ "access": "codes" }))
        .await;
    let codes = generated(&app, "stadium-presale", 1_000_000).await;
    assert_eq!(codes.len(), 1_000_000);
    let distinct: std::collections::HashSet<&String> = codes.iter().collect();
    assert_eq!(distinct.len(), codes.len());
    assert_eq!(code_stats(&app, "stadium-presale").await, (1_000_000, 0));
    for code in [&codes[0], &codes[codes.len() / 2], &codes[codes.len() - 1]] {
        let joined = join_with(&app, "stadium-presale", json!({ "code": code })).await;
        assert_eq!(
            joined.status,
            StatusCode::CREATED,
            "{code}: {}",
            joined.body
        );
    }
    assert_eq!(code_stats(&app, "stadium-presale").await, (1_000_000, 3));
    app.finish().await;
}

#[tokio::test]
async fn an_invitation_only_event_admits_codes_only_and_a_code_takes_one_place() {
    let app = spawn_app().await;
    app.event("presale", json!({ "access": "codes" })).await;
    let codes = generated(&app, "presale", 3).await;

    let bare = app.join("presale", Some("fan-1")).await;
    assert_eq!(
        (bare.status, bare.error()),
        (StatusCode::FORBIDDEN, "code_required"),
        "{}",
        bare.body
    );
    let wrong = join_with(&app, "presale", json!({ "code": "AAAA-BBBB-CCCC-DDDD" })).await;
    assert_eq!(
        (wrong.status, wrong.error()),
        (StatusCode::FORBIDDEN, "invalid_code"),
        "{}",
        wrong.body
    );
    let malformed = join_with(&app, "presale", json!({ "code": "no such code!" })).await;
    assert_eq!(malformed.error(), "invalid_code", "{}", malformed.body);
    let too_long = join_with(&app, "presale", json!({ "code": "A".repeat(129) })).await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(too_long.str("message").starts_with("code"));

    let first = join_with(
        &app,
        "presale",
        json!({ "code": codes[0], "visitor": "phone" }),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    // Another device, another visitor id, the code typed in lower case without dashes.
    let typed = codes[0].replace('-', "").to_lowercase();
    let second = join_with(
        &app,
        "presale",
        json!({ "code": typed, "visitor": "laptop" }),
    )
    .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.str("token"), first.str("token"));
    let anonymous = join_with(&app, "presale", json!({ "code": codes[0] })).await;
    assert_eq!(anonymous.status, StatusCode::OK);
    assert_eq!(anonymous.str("token"), first.str("token"));

    let other = join_with(
        &app,
        "presale",
        json!({ "code": codes[1], "visitor": "phone" }),
    )
    .await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);
    assert_ne!(other.str("token"), first.str("token"), "a place per code");
    assert_eq!(code_stats(&app, "presale").await, (3, 2));

    let refused = &app.stats("presale").await.body["refused"];
    assert_eq!(refused["code_required"], 1, "{refused}");
    assert_eq!(refused["invalid_code"], 2, "{refused}");
    app.finish().await;
}

#[tokio::test]
async fn unknown_codes_are_limited_per_client_and_then_even_a_right_one_waits() {
    let app = spawn_app().await;
    // A stopped clock keeps every attempt in one window.
    app.clock.pause();
    app.event("guarded", json!({ "access": "codes" })).await;
    let codes = generated(&app, "guarded", 1).await;
    // A right code is not a failure: it does not use up the allowance.
    for _ in 0..3 {
        let right = join_with(&app, "guarded", json!({ "code": codes[0] })).await;
        assert!(right.status.is_success(), "{}", right.body);
    }
    for guess in 0..ALLOWED_UNKNOWN_CODES {
        let wrong = join_with(
            &app,
            "guarded",
            json!({ "code": format!("GUESS-{guess:04}") }),
        )
        .await;
        assert_eq!(
            wrong.error(),
            "invalid_code",
            "guess {guess}: {}",
            wrong.body
        );
    }
    let limited = join_with(&app, "guarded", json!({ "code": "GUESS-9999" })).await;
    assert_eq!(
        (limited.status, limited.error()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        "{}",
        limited.body
    );
    let wait = retry_after(&limited);
    assert!((1..=60).contains(&wait), "{wait}");
    let right = join_with(&app, "guarded", json!({ "code": codes[0] })).await;
    assert_eq!(
        right.status,
        StatusCode::TOO_MANY_REQUESTS,
        "guessing waits, whatever the guess"
    );
    app.clock.advance(Duration::from_secs(wait));
    let next_window = join_with(&app, "guarded", json!({ "code": codes[0] })).await;
    assert_eq!(next_window.status, StatusCode::OK, "{}", next_window.body);
    let refused = &app.stats("guarded").await.body["refused"];
    assert_eq!(refused["invalid_code"], ALLOWED_UNKNOWN_CODES, "{refused}");
    assert_eq!(refused["rate_limited"], 2, "{refused}");
    app.finish().await;
}

#[tokio::test]
async fn a_code_live_place_is_returned_without_a_new_proof_of_work() {
    let app = spawn_app().await;
    app.event(
        "hard-presale",
        json!({ "access": "codes", "join_challenge": { "bits": 8 } }),
    )
    .await;
    let codes = generated(&app, "hard-presale", 1).await;
    let unsolved = join_with(&app, "hard-presale", json!({ "code": codes[0] })).await;
    assert_eq!(unsolved.error(), "challenge_required", "{}", unsolved.body);
    let mut body = solved(&app, "hard-presale", 8).await;
    body["code"] = json!(codes[0]);
    let first = join_with(&app, "hard-presale", body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = join_with(&app, "hard-presale", json!({ "code": codes[0] })).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.str("token"), first.str("token"));
    app.finish().await;
}

#[tokio::test]
async fn codes_and_their_places_survive_a_restart() {
    let app = spawn_app().await;
    app.event("durable-presale", json!({ "access": "codes" }))
        .await;
    let codes = generated(&app, "durable-presale", 2).await;
    let first = join_with(&app, "durable-presale", json!({ "code": codes[0] })).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let namespace = app.namespace.clone();
    app.stop().await;

    let restarted = spawn_app_in(&namespace).await;
    let again = join_with(&restarted, "durable-presale", json!({ "code": codes[0] })).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.str("token"), first.str("token"));
    let other = join_with(&restarted, "durable-presale", json!({ "code": codes[1] })).await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);
    assert_eq!(code_stats(&restarted, "durable-presale").await, (2, 2));
    restarted.finish().await;
    let made_before = [anteroom::domain::EventId::parse("durable-presale").unwrap()];
    crate::helpers::forget(&namespace, &made_before).await;
}

#[tokio::test]
async fn an_address_gets_its_limit_of_new_places_per_window() {
    let app = spawn_app().await;
    app.clock.pause();
    app.event(
        "fair",
        json!({ "address_limit": { "places": 2, "window_seconds": 60 } }),
    )
    .await;
    let first = app.join("fair", Some("tab-1")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(
        app.join("fair", Some("tab-2")).await.status,
        StatusCode::CREATED
    );
    let third = app.join("fair", Some("tab-3")).await;
    assert_eq!(
        (third.status, third.error()),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_places"),
        "{}",
        third.body
    );
    let wait = retry_after(&third);
    assert!((1..=60).contains(&wait), "{wait}");
    // A live place joined again is not a new place: it is returned.
    let again = app.join("fair", Some("tab-1")).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.str("token"), first.str("token"));

    app.clock.advance(Duration::from_secs(wait));
    let next_window = app.join("fair", Some("tab-3")).await;
    assert_eq!(
        next_window.status,
        StatusCode::CREATED,
        "{}",
        next_window.body
    );
    let refused = &app.stats("fair").await.body["refused"];
    assert_eq!(refused["too_many_places"], 1, "{refused}");

    // Turned off while live: the address joins freely.
    app.patch_event(
        "fair",
        json!({ "address_limit": { "places": 0, "window_seconds": 60 } }),
    )
    .await;
    for tab in 4..8 {
        let joined = app.join("fair", Some(&format!("tab-{tab}"))).await;
        assert_eq!(joined.status, StatusCode::CREATED, "{}", joined.body);
    }
    app.finish().await;
}
