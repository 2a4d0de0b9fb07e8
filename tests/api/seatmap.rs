//! The compact, versioned seat map: one character per seat, then only what
//! changed since the version a client has.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, ETAG, IF_NONE_MATCH};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::caching::get;
use crate::helpers::{Reply, TestApp, eventually, spawn_app};
use crate::orders::sale;

async fn seatmap(app: &TestApp, event: &str, query: &str) -> Reply {
    let reply = app
        .request(
            Method::GET,
            &format!("/api/events/{event}/seatmap{query}"),
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply
}

/// The whole map, its version, and each seat's state by id (in the map's order).
async fn whole(app: &TestApp, event: &str) -> (u64, Vec<(String, char)>) {
    let reply = seatmap(app, event, "").await;
    (reply.u64("version"), decoded(&reply))
}

/// What changed since `version`, as API.md's `changes` object; the version answered.
async fn since(app: &TestApp, event: &str, version: u64) -> (u64, HashMap<String, String>) {
    let reply = seatmap(app, event, &format!("?since={version}")).await;
    let changes = reply.body["changes"]
        .as_object()
        .unwrap_or_else(|| panic!("changes, not the whole map: {}", reply.body))
        .iter()
        .map(|(seat, state)| (seat.clone(), state.as_str().unwrap_or("").to_owned()))
        .collect();
    (reply.u64("version"), changes)
}

/// The whole map's `states`, one character per seat, paired with the seat ids its `sections` name.
fn decoded(reply: &Reply) -> Vec<(String, char)> {
    let states: Vec<char> = reply.str("states").chars().collect();
    let mut ids = Vec::new();
    for section in reply.body["sections"].as_array().expect("sections") {
        let id = section["id"].as_str().expect("a section id");
        for row in 1..=section["rows"].as_u64().expect("rows") {
            for seat in 1..=section["seats_per_row"].as_u64().expect("seats_per_row") {
                ids.push(format!("{id}-{row}-{seat}"));
            }
        }
    }
    assert_eq!(ids.len(), states.len(), "one character per seat");
    ids.into_iter().zip(states).collect()
}

fn state_of(map: &[(String, char)], seat: &str) -> char {
    map.iter()
        .find(|(id, _)| id == seat)
        .map(|&(_, state)| state)
        .unwrap_or_else(|| panic!("no seat {seat}"))
}

fn changes(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|&(seat, state)| (seat.to_owned(), state.to_owned()))
        .collect()
}

async fn held(app: &TestApp, event: &str, pass: &str, seats: &[&str]) -> String {
    let reply = app.hold_seats(event, pass, seats).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.str("order_id").to_owned()
}

#[tokio::test]
async fn a_100000_seat_map_is_small_whole_and_a_few_holds_since_are_smaller_still() {
    let app = spawn_app().await;
    let sections = json!([
        { "id": "A", "name": "North", "price_cents": 4500, "rows": 100, "seats_per_row": 500 },
        { "id": "B", "name": "South", "price_cents": 3500, "rows": 100, "seats_per_row": 500 }
    ]);
    sale(&app, "stadium", json!({ "sections": sections })).await;
    let path = "/api/events/stadium/seatmap";

    let plain = get(&app, path, &[]).await;
    assert_eq!(plain.status(), StatusCode::OK);
    let plain = plain.bytes().await.unwrap();
    let plain_size = plain.len();
    let plain: Value = serde_json::from_slice(&plain).unwrap();
    let states = plain["states"].as_str().expect("states");
    assert_eq!(states.len(), 100_000);
    assert!(states.chars().all(|c| c == 'f'), "every seat is free");
    assert_eq!(
        plain["sections"][1],
        json!({ "id": "B", "name": "South", "price_cents": 3500, "rows": 100, "seats_per_row": 500 })
    );
    let gzipped = get(&app, path, &[(ACCEPT_ENCODING, "gzip")]).await;
    assert_eq!(gzipped.headers()[CONTENT_ENCODING], "gzip");
    let gzip_size = gzipped.bytes().await.unwrap().len();
    eprintln!("100,000 seats: {plain_size} bytes plain, {gzip_size} gzip");
    assert!(plain_size <= 110_000, "{plain_size} bytes plain");
    assert!(gzip_size <= 10_000, "{gzip_size} bytes gzip");

    let version = plain["version"].as_u64().expect("a version");
    let pass = app.admitted_pass("stadium").await;
    held(&app, "stadium", &pass, &["A-1-1", "A-1-2"]).await;
    held(&app, "stadium", &pass, &["B-100-500"]).await;
    let changed_since = get(&app, &format!("{path}?since={version}"), &[]).await;
    let since_size = changed_since.bytes().await.unwrap().len();
    eprintln!("100,000 seats, since after two holds: {since_size} bytes");
    assert!(since_size <= 1_024, "{since_size} bytes");
    let (_, changed) = since(&app, "stadium", version).await;
    assert_eq!(
        changed,
        changes(&[("A-1-1", "h"), ("A-1-2", "h"), ("B-100-500", "h")])
    );
    app.finish().await;
}

#[tokio::test]
async fn the_version_grows_with_each_hold_payment_and_cancel_and_since_lists_each_changed_seat_once_as_it_is_now()
 {
    let app = spawn_app().await;
    sale(&app, "versions", json!({})).await;
    let (start, map) = whole(&app, "versions").await;
    assert_eq!(map.len(), 200);
    let pass = app.admitted_pass("versions").await;

    let paid = held(&app, "versions", &pass, &["A-1-1", "A-1-2"]).await;
    let (after_hold, map) = whole(&app, "versions").await;
    assert!(after_hold > start, "{after_hold} > {start}");
    assert_eq!(
        (state_of(&map, "A-1-1"), state_of(&map, "A-1-2")),
        ('h', 'h')
    );
    assert_eq!(app.pay(&paid, &pass).await.status, StatusCode::OK);
    let (after_pay, map) = whole(&app, "versions").await;
    assert!(after_pay > after_hold, "{after_pay} > {after_hold}");
    assert_eq!(state_of(&map, "A-1-1"), 's');

    let cancelled = held(&app, "versions", &pass, &["A-2-5"]).await;
    let (after_second_hold, _) = whole(&app, "versions").await;
    assert_eq!(app.cancel(&cancelled, &pass).await.status, StatusCode::OK);
    let (after_cancel, map) = whole(&app, "versions").await;
    assert!(after_second_hold > after_pay && after_cancel > after_second_hold);
    assert_eq!(state_of(&map, "A-2-5"), 'f');

    assert_eq!(
        since(&app, "versions", start).await,
        (
            after_cancel,
            changes(&[("A-1-1", "s"), ("A-1-2", "s"), ("A-2-5", "f")])
        ),
        "each changed seat once, in its latest state"
    );
    assert_eq!(
        since(&app, "versions", after_pay).await,
        (after_cancel, changes(&[("A-2-5", "f")]))
    );
    assert_eq!(
        since(&app, "versions", after_cancel).await,
        (after_cancel, changes(&[])),
        "nothing changed since the current version"
    );
    app.finish().await;
}

#[tokio::test]
async fn an_expired_hold_frees_its_seats_at_a_new_version() {
    let app = spawn_app().await;
    sale(&app, "lapsing", json!({ "hold_seconds": 1 })).await;
    let pass = app.admitted_pass("lapsing").await;
    held(&app, "lapsing", &pass, &["A-3-3"]).await;
    let (while_held, map) = whole(&app, "lapsing").await;
    assert_eq!(state_of(&map, "A-3-3"), 'h');
    eventually(Duration::from_secs(4), "the hold expires", || async {
        state_of(&whole(&app, "lapsing").await.1, "A-3-3") == 'f'
    })
    .await;
    assert_eq!(
        since(&app, "lapsing", while_held).await.1,
        changes(&[("A-3-3", "f")])
    );
    app.finish().await;
}

#[tokio::test]
async fn a_since_older_than_the_kept_changes_or_from_the_future_gets_the_whole_map() {
    let app = spawn_app().await;
    sale(&app, "gaps", json!({})).await;
    let pass = app.admitted_pass("gaps").await;
    held(&app, "gaps", &pass, &["A-1-4"]).await;
    let (version, map) = whole(&app, "gaps").await;
    // Version 0 is older than anything the store keeps: the map began at a later version.
    for asked in [0, version + 1_000] {
        let reply = seatmap(&app, "gaps", &format!("?since={asked}")).await;
        assert!(reply.body.get("changes").is_none(), "{}", reply.body);
        assert_eq!(reply.u64("version"), version);
        assert_eq!(decoded(&reply), map, "since={asked}");
    }
    app.finish().await;
}

#[tokio::test]
async fn a_since_that_is_not_a_version_is_refused_and_an_unknown_event_is_not_found() {
    let app = spawn_app().await;
    sale(&app, "asked", json!({})).await;
    for bad in ["abc", "-1", "1.5", "", "18446744073709551616"] {
        let reply = app
            .request(
                Method::GET,
                &format!("/api/events/asked/seatmap?since={bad}"),
                None,
                None,
            )
            .await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            "since={bad}"
        );
    }
    for path in [
        "/api/events/nowhere/seatmap",
        "/api/events/nowhere/seatmap?since=1",
    ] {
        let reply = app.request(Method::GET, path, None, None).await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::NOT_FOUND, "not_found")
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn the_etag_is_the_version_and_a_client_that_has_it_gets_304_until_a_seat_changes() {
    let app = spawn_app().await;
    sale(&app, "tagged", json!({})).await;
    let path = "/api/events/tagged/seatmap";
    let (version, _) = whole(&app, "tagged").await;
    let first = get(&app, path, &[]).await;
    let etag = first.headers()[ETAG].to_str().unwrap().to_owned();
    assert_eq!(etag, format!("W/\"{version}\""));
    for sent in [etag.as_str(), &format!("\"{version}\"")] {
        let again = get(&app, path, &[(IF_NONE_MATCH, sent)]).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{sent}");
        assert_eq!(again.headers()[ETAG], etag.as_str());
        assert!(again.bytes().await.unwrap().is_empty(), "a 304 has no body");
    }

    let pass = app.admitted_pass("tagged").await;
    held(&app, "tagged", &pass, &["A-1-1"]).await;
    let after = get(&app, path, &[(IF_NONE_MATCH, &etag)]).await;
    assert_eq!(
        after.status(),
        StatusCode::OK,
        "a changed map is sent again"
    );
    assert_ne!(after.headers()[ETAG].to_str().unwrap(), etag);
    app.finish().await;
}

#[tokio::test]
async fn the_compact_map_agrees_with_the_seat_list_seat_by_seat() {
    let app = spawn_app().await;
    sale(&app, "agree", json!({})).await;
    let pass = app.admitted_pass("agree").await;
    let paid = held(&app, "agree", &pass, &["A-1-1", "A-10-20"]).await;
    assert_eq!(app.pay(&paid, &pass).await.status, StatusCode::OK);
    held(&app, "agree", &pass, &["A-5-7", "A-5-8"]).await;
    let (version, map) = whole(&app, "agree").await;
    let spelled = |state: char| match state {
        'f' => "free",
        'h' => "held",
        's' => "sold",
        other => panic!("unknown state {other:?}"),
    };
    let compact: HashMap<String, String> = map
        .iter()
        .map(|(seat, state)| (seat.clone(), spelled(*state).to_owned()))
        .collect();
    // The seat list may lag the truth by up to 1 s (API.md); nothing changes meanwhile.
    eventually(
        Duration::from_secs(3),
        "the seat list shows the same states",
        || async { app.seat_states("agree").await == compact },
    )
    .await;
    assert_eq!(compact.values().filter(|state| *state != "free").count(), 4);
    assert_eq!(
        whole(&app, "agree").await.0,
        version,
        "nothing changed meanwhile"
    );
    app.finish().await;
}
