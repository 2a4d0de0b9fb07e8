use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::join_all;
use futures_util::stream::FuturesUnordered;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::{
    TestApp, eventually, fresh_namespace, spawn_app, spawn_app_in, spawn_app_with,
};

/// A fast-admitting event; `overrides` replaces top-level fields.
pub(crate) async fn sale(app: &TestApp, id: &str, overrides: Value) {
    let mut body =
        json!({ "admission": { "per_second": 1000, "max_active": 1000, "pass_seconds": 600 } });
    for (k, v) in overrides.as_object().unwrap() {
        body[k] = v.clone();
    }
    app.event(id, body).await;
}

pub(crate) fn one_row(seats: u32) -> Value {
    json!([{ "id": "A", "name": "Row", "price_cents": 1000, "rows": 1, "seats_per_row": seats }])
}

pub(crate) fn seats_of(reply: &crate::helpers::Reply) -> Vec<String> {
    reply.body["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_hold_becomes_a_sale_and_the_books_balance() {
    let app = spawn_app().await;
    sale(&app, "show", json!({})).await;
    let pass = app.admitted_pass("show").await;
    let held = app.hold_seats("show", &pass, &["A-1-1", "A-1-2"]).await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.body);
    assert_eq!(
        (held.str("status"), held.u64("amount_cents")),
        ("pending", 19_800)
    );
    assert_eq!(seats_of(&held), ["A-1-1", "A-1-2"]);
    let id = held.str("order_id").to_owned();
    let expires = OffsetDateTime::parse(held.str("expires_at"), &Rfc3339).unwrap();
    assert!(expires > OffsetDateTime::now_utc() + Duration::from_secs(290));

    let read = app.order(&id, &pass).await;
    assert_eq!(
        (read.status, read.str("status"), read.str("event")),
        (StatusCode::OK, "pending", "show")
    );
    assert_eq!(
        read.str("expires_at"),
        held.str("expires_at"),
        "every read shows the same instant"
    );
    eventually(Duration::from_secs(3), "the map shows the hold", || async {
        app.seat_states("show").await["A-1-1"] == "held"
    })
    .await;
    let stats = app.stats("show").await;
    assert_eq!(
        (stats.u64("held_seats"), stats.u64("available_seats")),
        (2, 198)
    );

    let paid = app.pay(&id, &pass).await;
    assert_eq!(
        (paid.status, paid.str("status")),
        (StatusCode::OK, "paid"),
        "{}",
        paid.body
    );
    let again = app.pay(&id, &pass).await;
    assert_eq!(
        (again.status, again.str("status")),
        (StatusCode::OK, "paid"),
        "paying twice changes nothing"
    );
    let cancel = app.cancel(&id, &pass).await;
    assert_eq!(
        (cancel.status, cancel.error()),
        (StatusCode::CONFLICT, "already_paid")
    );

    let stats = app.stats("show").await;
    let counts =
        ["held_seats", "sold_seats", "available_seats", "orders_paid"].map(|f| stats.u64(f));
    assert_eq!(counts, [0, 2, 198, 1]);
    eventually(Duration::from_secs(3), "the map shows the sale", || async {
        let map = app.seat_states("show").await;
        map["A-1-1"] == "sold" && map["A-1-2"] == "sold" && map["A-1-3"] == "free"
    })
    .await;
    app.finish().await;
}

#[tokio::test]
async fn a_hold_takes_all_its_seats_or_none() {
    let app = spawn_app().await;
    sale(&app, "whole", json!({})).await;
    let passes = app.admitted_passes("whole", 2).await;
    assert_eq!(
        app.hold_seats("whole", &passes[0], &["A-1-2"]).await.status,
        StatusCode::CREATED
    );
    let refused = app
        .hold_seats("whole", &passes[1], &["A-1-1", "A-1-2", "A-1-3"])
        .await;
    assert_eq!(
        (refused.status, refused.error()),
        (StatusCode::CONFLICT, "seat_unavailable")
    );
    assert_eq!(seats_of(&refused), ["A-1-2"]);
    let rest = app
        .hold_seats("whole", &passes[1], &["A-1-1", "A-1-3"])
        .await;
    assert_eq!(
        rest.status,
        StatusCode::CREATED,
        "nothing was held by the refused request: {}",
        rest.body
    );
    app.finish().await;
}

#[tokio::test]
async fn holds_and_orders_answer_every_error_code() {
    let app = spawn_app().await;
    sale(&app, "strict", json!({ "max_seats_per_user": 2 })).await;
    sale(&app, "other", json!({})).await;
    let pass = app.admitted_pass("strict").await;
    let foreign = app.admitted_pass("other").await;

    let no_pass = app
        .request(
            Method::POST,
            "/api/events/strict/holds",
            Some(json!({ "seats": ["A-1-1"] })),
            None,
        )
        .await;
    assert_eq!(
        (no_pass.status, no_pass.error()),
        (StatusCode::UNAUTHORIZED, "invalid_pass")
    );
    for bad in ["forged.pass", foreign.as_str()] {
        let reply = app.hold_seats("strict", bad, &["A-1-1"]).await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::UNAUTHORIZED, "invalid_pass"),
            "{bad}"
        );
    }
    let invalid = [
        json!({ "seats": ["Z-1-1"] }),
        json!({ "seats": ["A-11-1"] }),
        json!({ "seats": ["A-1-1", "A-1-1"] }),
        json!({ "seats": [] }),
        json!({ "seats": "A-1-1" }),
        json!({}),
        json!({ "seats": ["A-1-1"], "best_available": { "count": 1 } }),
        json!({ "best_available": { "count": 0 } }),
        json!({ "best_available": { "count": 1, "section": "Z" } }),
    ];
    for body in invalid {
        let reply = app.hold("strict", &pass, body.clone()).await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            "{body}"
        );
    }
    for body in [
        json!({ "seats": ["A-1-1", "A-1-2", "A-1-3"] }),
        json!({ "best_available": { "count": 3 } }),
    ] {
        let reply = app.hold("strict", &pass, body.clone()).await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded"),
            "{body}"
        );
    }

    let order = app.hold_seats("strict", &pass, &["A-1-1"]).await;
    let id = order.str("order_id").to_owned();
    let other_pass = app.admitted_pass("strict").await;
    for (reply, what) in [
        (app.order(&id, &other_pass).await, "another pass's order"),
        (
            app.order(&uuid::Uuid::new_v4().to_string(), &pass).await,
            "an unknown order",
        ),
        (app.order("not-a-uuid", &pass).await, "a malformed id"),
        (
            app.pay(&id, &other_pass).await,
            "paying another pass's order",
        ),
        (
            app.cancel(&id, &other_pass).await,
            "cancelling another pass's order",
        ),
    ] {
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{what}"
        );
    }
    let no_ref = app
        .request(
            Method::POST,
            &format!("/api/orders/{id}/pay"),
            Some(json!({})),
            Some(&pass),
        )
        .await;
    assert_eq!(
        (no_ref.status, no_ref.error()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
    );
    let long_ref = json!({ "payment_ref": "x".repeat(129) });
    let reply = app
        .request(
            Method::POST,
            &format!("/api/orders/{id}/pay"),
            Some(long_ref),
            Some(&pass),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = app.hold_seats("nope", &pass, &["A-1-1"]).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    app.finish().await;
}

#[tokio::test]
async fn a_pass_never_owns_more_than_its_limit_even_concurrently() {
    let app = spawn_app().await;
    sale(&app, "limit", json!({ "max_seats_per_user": 4 })).await;
    let pass = app.admitted_pass("limit").await;
    assert_eq!(
        app.hold_seats("limit", &pass, &["A-1-1", "A-1-2", "A-1-3"])
            .await
            .status,
        StatusCode::CREATED
    );
    let over = app.hold_seats("limit", &pass, &["A-2-1", "A-2-2"]).await;
    assert_eq!(
        (over.status, over.error()),
        (StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded")
    );

    let seats: Vec<String> = (1..=10).map(|n| format!("A-3-{n}")).collect();
    let racing = join_all(
        seats
            .iter()
            .map(|s| app.hold("limit", &pass, json!({ "seats": [s] }))),
    )
    .await;
    let created = racing
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let limited = racing
        .iter()
        .filter(|r| r.status == StatusCode::UNPROCESSABLE_ENTITY)
        .count();
    assert_eq!(
        (created, limited),
        (1, 9),
        "exactly one more seat fits under the limit"
    );
    assert_eq!(app.stats("limit").await.u64("held_seats"), 4);
    app.finish().await;
}

#[tokio::test]
async fn one_client_cannot_hold_over_its_rate_and_a_refused_hold_holds_nothing() {
    let app = spawn_app_with(&fresh_namespace(), |c| c.client_rate = 3).await;
    sale(&app, "hurried", json!({ "max_seats_per_user": 6 })).await;
    let pass = app.admitted_pass("hurried").await;
    // The join spent one of the client's three a second: joins and holds share a bucket,
    // full again a second later. The clock stands still for the burst: no refill within it.
    app.clock.pause();
    app.clock.advance(Duration::from_secs(1));

    let seats: Vec<String> = (1..=6).map(|n| format!("A-1-{n}")).collect();
    let mut burst: FuturesUnordered<_> = seats
        .iter()
        .map(|seat| {
            let (app, pass) = (&app, &pass);
            async move { (seat.clone(), app.hold_seats("hurried", pass, &[seat]).await) }
        })
        .collect();
    let (mut held, mut refused, mut join_when_empty) = (Vec::new(), Vec::new(), None);
    while let Some((seat, reply)) = burst.next().await {
        match reply.status {
            StatusCode::CREATED => held.push(seat),
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(reply.error(), "rate_limited");
                assert_eq!(reply.headers["retry-after"], "1");
                if join_when_empty.is_none() {
                    // Answered at once, so the bucket is still empty: a join is refused too.
                    join_when_empty = Some(app.join("hurried", None).await.status);
                }
                refused.push(seat);
            }
            other => panic!("{seat}: {other} {}", reply.body),
        }
    }
    drop(burst);
    app.clock.resume();
    assert_eq!(
        (held.len(), refused.len()),
        (3, 3),
        "a burst of one second's worth, then 429"
    );
    assert_eq!(
        join_when_empty,
        Some(StatusCode::TOO_MANY_REQUESTS),
        "joins and holds share the client's rate"
    );

    assert_eq!(
        app.stats("hurried").await.u64("held_seats"),
        3,
        "refused holds hold nothing"
    );
    eventually(
        Duration::from_secs(3),
        "the map shows the held seats, and the refused ones free",
        || async {
            let map = app.seat_states("hurried").await;
            held.iter().all(|s| map[s] == "held") && refused.iter().all(|s| map[s] == "free")
        },
    )
    .await;

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let refused: Vec<&str> = refused.iter().map(String::as_str).collect();
    let later = app.hold_seats("hurried", &pass, &refused).await;
    assert_eq!(
        later.status,
        StatusCode::CREATED,
        "the bucket refills and the seats are free: {}",
        later.body
    );
    let (mut got, mut wanted) = (seats_of(&later), refused.clone());
    got.sort();
    wanted.sort();
    assert_eq!(got, wanted);
    app.finish().await;
}

#[tokio::test]
async fn many_racers_for_few_seats_never_share_a_seat() {
    let app = spawn_app().await;
    sale(&app, "scarce", json!({ "sections": one_row(10) })).await;
    let passes = app.admitted_passes("scarce", 30).await;
    let attempts = passes.iter().enumerate().map(|(i, pass)| {
        let first = i % 10 + 1;
        let second = (i * 7 + 3) % 10 + 1;
        let seats: Vec<String> = if first == second {
            vec![format!("A-1-{first}")]
        } else {
            vec![format!("A-1-{first}"), format!("A-1-{second}")]
        };
        let app = &app;
        async move { app.hold("scarce", pass, json!({ "seats": seats })).await }
    });
    let replies = join_all(attempts).await;
    let mut taken: HashSet<String> = HashSet::new();
    for reply in replies.iter().filter(|r| r.status == StatusCode::CREATED) {
        for seat in seats_of(reply) {
            assert!(taken.insert(seat.clone()), "{seat} was held twice");
        }
    }
    assert!(
        replies
            .iter()
            .all(|r| [StatusCode::CREATED, StatusCode::CONFLICT].contains(&r.status))
    );
    let stats = app.stats("scarce").await;
    assert_eq!(stats.u64("held_seats"), taken.len() as u64);
    assert_eq!(
        stats.u64("available_seats") + stats.u64("held_seats") + stats.u64("sold_seats"),
        10
    );
    app.finish().await;
}

#[tokio::test]
async fn fifty_racers_for_the_last_seat_make_exactly_one_order() {
    let app = spawn_app().await;
    sale(&app, "last", json!({ "sections": one_row(1) })).await;
    let passes = app.admitted_passes("last", 50).await;
    let replies = join_all(passes.iter().map(|p| app.hold_seats("last", p, &["A-1-1"]))).await;
    let won = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let lost = replies
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT && r.error() == "seat_unavailable")
        .count();
    assert_eq!((won, lost), (1, 49));
    app.finish().await;
}

#[tokio::test]
async fn an_unpaid_hold_expires_on_time_and_frees_its_seats() {
    let app = spawn_app().await;
    sale(&app, "brief", json!({ "hold_seconds": 2 })).await;
    let pass = app.admitted_pass("brief").await;
    let held = app.hold_seats("brief", &pass, &["A-1-1"]).await;
    let created = Instant::now();
    let id = held.str("order_id").to_owned();
    eventually(
        Duration::from_secs(4),
        "expired within hold_seconds + 2",
        || async { app.order(&id, &pass).await.str("status") == "expired" },
    )
    .await;
    assert!(
        created.elapsed() >= Duration::from_millis(1_900),
        "not before its time"
    );
    let late = app.pay(&id, &pass).await;
    assert_eq!((late.status, late.error()), (StatusCode::GONE, "expired"));
    let stats = app.stats("brief").await;
    assert_eq!(
        (
            stats.u64("held_seats"),
            stats.u64("orders_expired"),
            stats.u64("available_seats")
        ),
        (0, 1, 200)
    );
    let again = app.hold_seats("brief", &pass, &["A-1-1"]).await;
    assert_eq!(
        again.status,
        StatusCode::CREATED,
        "the seat is free again: {}",
        again.body
    );
    app.finish().await;
}

#[tokio::test]
async fn payment_racing_expiry_either_sells_or_frees_never_both() {
    let app = spawn_app().await;
    sale(
        &app,
        "photo",
        json!({ "hold_seconds": 1, "sections": one_row(20), "max_seats_per_user": 1 }),
    )
    .await;
    let passes = app.admitted_passes("photo", 20).await;
    let races = passes.iter().enumerate().map(|(i, pass)| {
        let app = &app;
        async move {
            let seat = format!("A-1-{}", i + 1);
            let held = app.hold_seats("photo", pass, &[seat.as_str()]).await;
            assert_eq!(held.status, StatusCode::CREATED, "{}", held.body);
            // Pay around the moment the hold runs out, some just before, some just after.
            tokio::time::sleep(Duration::from_millis(850 + (i as u64 % 5) * 60)).await;
            let paid = app.pay(held.str("order_id"), pass).await;
            (seat, held.str("order_id").to_owned(), paid.status)
        }
    });
    let outcomes = join_all(races).await;
    let mut sold = 0;
    for (seat, id, status) in &outcomes {
        let pass = &passes[seat.trim_start_matches("A-1-").parse::<usize>().unwrap() - 1];
        let order = app.order(id, pass).await;
        match *status {
            StatusCode::OK => {
                assert_eq!(order.str("status"), "paid");
                sold += 1;
            }
            StatusCode::GONE => assert_eq!(order.str("status"), "expired"),
            other => panic!("pay answered {other}"),
        }
    }
    eventually(Duration::from_secs(5), "every hold ended", || async {
        app.stats("photo").await.u64("held_seats") == 0
    })
    .await;
    let stats = app.stats("photo").await;
    assert_eq!(
        (stats.u64("sold_seats"), stats.u64("orders_paid")),
        (sold, sold)
    );
    assert_eq!(stats.u64("orders_expired"), 20 - sold);
    assert_eq!(stats.u64("available_seats"), 20 - sold);
    let map = app.seat_states("photo").await;
    for (seat, _, status) in &outcomes {
        let want = if *status == StatusCode::OK {
            "sold"
        } else {
            "free"
        };
        eventually(Duration::from_secs(2), "the map agrees", || async {
            app.seat_states("photo").await[seat] == want
        })
        .await;
    }
    assert_eq!(map.len(), 20);
    app.finish().await;
}

#[tokio::test]
async fn a_cancelled_hold_frees_its_seats_at_once() {
    let app = spawn_app().await;
    sale(&app, "change", json!({})).await;
    let pass = app.admitted_pass("change").await;
    let held = app.hold_seats("change", &pass, &["A-2-5", "A-2-6"]).await;
    let id = held.str("order_id").to_owned();
    let cancelled = app.cancel(&id, &pass).await;
    assert_eq!(
        (cancelled.status, cancelled.str("status")),
        (StatusCode::OK, "cancelled")
    );
    assert_eq!(
        app.cancel(&id, &pass).await.str("status"),
        "cancelled",
        "cancelling twice is harmless"
    );
    let late = app.pay(&id, &pass).await;
    assert_eq!((late.status, late.error()), (StatusCode::GONE, "expired"));
    let other = app.admitted_pass("change").await;
    assert_eq!(
        app.hold_seats("change", &other, &["A-2-5", "A-2-6"])
            .await
            .status,
        StatusCode::CREATED
    );
    app.finish().await;
}

#[tokio::test]
async fn best_available_picks_adjacent_seats_lowest_first() {
    let app = spawn_app().await;
    let sections = json!([
        { "id": "A", "name": "Front", "price_cents": 5000, "rows": 2, "seats_per_row": 3 },
        { "id": "B", "name": "Back", "price_cents": 2000, "rows": 1, "seats_per_row": 4 }
    ]);
    sale(&app, "best", json!({ "sections": sections })).await;
    let passes = app.admitted_passes("best", 4).await;
    let best = |pass: &str, count: u32, section: Option<&str>| {
        let body = json!({ "best_available": { "count": count, "section": section } });
        let (app, pass) = (&app, pass.to_owned());
        async move { app.hold("best", &pass, body).await }
    };
    let first = best(&passes[0], 2, None).await;
    assert_eq!(seats_of(&first), ["A-1-1", "A-1-2"]);
    assert_eq!(first.u64("amount_cents"), 10_000);
    let second = best(&passes[1], 2, None).await;
    assert_eq!(
        seats_of(&second),
        ["A-2-1", "A-2-2"],
        "no two adjacent seats left in row 1"
    );
    let back = best(&passes[2], 3, Some("B")).await;
    assert_eq!(seats_of(&back), ["B-1-1", "B-1-2", "B-1-3"]);
    let none = best(&passes[3], 3, None).await;
    assert_eq!(
        (none.status, none.error()),
        (StatusCode::CONFLICT, "seat_unavailable")
    );
    assert_eq!(seats_of(&none), Vec::<String>::new());
    app.finish().await;
}

#[tokio::test]
async fn best_available_keeps_to_a_price_and_says_what_is_left_when_nothing_fits() {
    let app = spawn_app().await;
    let sections = json!([
        { "id": "A", "name": "Front", "price_cents": 5000, "rows": 1, "seats_per_row": 6 },
        { "id": "B", "name": "Back", "price_cents": 2000, "rows": 1, "seats_per_row": 5 }
    ]);
    sale(&app, "priced", json!({ "sections": sections })).await;
    let passes = app.admitted_passes("priced", 4).await;
    let best = |pass: &str, asked: Value| {
        let (app, pass) = (&app, pass.to_owned());
        async move {
            app.hold("priced", &pass, json!({ "best_available": asked }))
                .await
        }
    };
    let cheap = best(&passes[0], json!({ "count": 2, "max_price_cents": 2000 })).await;
    assert_eq!(cheap.status, StatusCode::CREATED, "{}", cheap.body);
    assert_eq!(seats_of(&cheap), ["B-1-1", "B-1-2"], "A costs more");
    // B-1-3 and B-1-5 stay free: single seats, no pair.
    assert_eq!(
        app.hold_seats("priced", &passes[1], &["B-1-4"])
            .await
            .status,
        StatusCode::CREATED
    );
    let refused = best(&passes[2], json!({ "count": 2, "max_price_cents": 2000 })).await;
    assert_eq!(
        (refused.status, refused.error()),
        (StatusCode::CONFLICT, "seat_unavailable")
    );
    assert_eq!(seats_of(&refused), Vec::<String>::new());
    assert_eq!(refused.body["available"], json!({ "largest_block": 1 }));
    assert_eq!(
        refused.str("message"),
        "no 2 adjacent seats are free in one row at 2000 cents a seat or less; only single seats are"
    );
    let in_a = best(
        &passes[2],
        json!({ "count": 4, "section": "A", "max_price_cents": 4999 }),
    )
    .await;
    assert_eq!(in_a.body["available"], json!({ "largest_block": 0 }));
    assert_eq!(
        in_a.str("message"),
        "no seat is free in section A at 4999 cents a seat or less"
    );
    let proposal = app
        .request(
            Method::GET,
            "/api/events/priced/best_available?count=4&max_price_cents=",
            None,
            None,
        )
        .await;
    assert_eq!(
        seats_of(&proposal),
        ["A-1-1", "A-1-2", "A-1-3", "A-1-4"],
        "an empty price is any price"
    );
    let too_many = app
        .request(
            Method::GET,
            "/api/events/priced/best_available?count=3&section=B",
            None,
            None,
        )
        .await;
    assert_eq!(
        (too_many.status, &too_many.body["available"]),
        (StatusCode::CONFLICT, &json!({ "largest_block": 1 }))
    );
    assert_eq!(
        too_many.str("message"),
        "no 3 adjacent seats are free in one row in section B; only single seats are"
    );
    for (body, field) in [
        (
            json!({ "count": 1, "max_price_cents": -1 }),
            "best_available.max_price_cents",
        ),
        (
            json!({ "count": 1, "max_price_cents": "cheap" }),
            "best_available.max_price_cents",
        ),
    ] {
        let reply = best(&passes[3], body.clone()).await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            "{body}"
        );
        assert!(
            reply.str("message").starts_with(&format!("{field}:")),
            "{body}: {}",
            reply.body
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn concurrent_best_available_holds_never_share_a_seat_and_refuse_only_when_no_pair_is_left() {
    let app = spawn_app().await;
    let sections = json!([
        { "id": "A", "name": "Front", "price_cents": 5000, "rows": 3, "seats_per_row": 7 },
        { "id": "B", "name": "Back", "price_cents": 2000, "rows": 2, "seats_per_row": 5 }
    ]);
    sale(&app, "rush", json!({ "sections": sections })).await;
    let passes = app.admitted_passes("rush", 64).await;
    let replies = join_all(
        passes
            .iter()
            .map(|pass| app.hold("rush", pass, json!({ "best_available": { "count": 2 } }))),
    )
    .await;

    let mut held: HashSet<String> = HashSet::new();
    let mut orders = Vec::new();
    for (reply, pass) in replies.iter().zip(&passes) {
        match reply.status {
            StatusCode::CREATED => {
                let seats = seats_of(reply);
                let coords: Vec<(&str, &str, u32)> = seats
                    .iter()
                    .map(|id| {
                        let mut parts = id.split('-');
                        let (section, row) = (parts.next().unwrap(), parts.next().unwrap());
                        (section, row, parts.next().unwrap().parse().unwrap())
                    })
                    .collect();
                assert!(
                    coords.len() == 2
                        && coords[0].0 == coords[1].0
                        && coords[0].1 == coords[1].1
                        && coords[0].2 + 1 == coords[1].2,
                    "not two adjacent seats in one row: {seats:?}"
                );
                for seat in seats {
                    assert!(held.insert(seat.clone()), "{seat} is in two orders");
                }
                orders.push((reply.str("order_id").to_owned(), pass));
            }
            StatusCode::CONFLICT => {
                assert_eq!(reply.error(), "seat_unavailable");
                assert_eq!(seats_of(reply), Vec::<String>::new());
                assert!(
                    matches!(
                        reply.body["available"]["largest_block"].as_u64(),
                        Some(0 | 1)
                    ),
                    "refused while a pair looked free: {}",
                    reply.body
                );
            }
            other => panic!("{other}: {}", reply.body),
        }
    }
    for (id, pass) in &orders {
        let order = app.order(id, pass).await;
        assert_eq!(order.str("status"), "pending", "{}", order.body);
    }
    assert!(orders.len() < 64, "64 pairs cannot fit 31 seats");

    eventually(
        Duration::from_secs(3),
        "the seat map shows exactly the held seats held",
        || async {
            let map = app.seat_states("rush").await;
            map.len() == 31
                && map
                    .iter()
                    .all(|(seat, state)| (state == "held") == held.contains(seat))
        },
    )
    .await;
    let map = app.seat_states("rush").await;
    let free = |section: &str, row: u32, seat: u32| {
        map.get(&format!("{section}-{row}-{seat}"))
            .is_some_and(|state| state == "free")
    };
    let pair_left = [("A", 3, 7), ("B", 2, 5)]
        .iter()
        .any(|&(section, rows, per_row)| {
            (1..=rows).any(|row| {
                (1..per_row).any(|seat| free(section, row, seat) && free(section, row, seat + 1))
            })
        });
    assert!(
        !pair_left,
        "a request was refused while a pair was free: {map:?}"
    );
    assert_eq!(app.stats("rush").await.u64("held_seats"), held.len() as u64);
    app.finish().await;
}

#[tokio::test]
async fn a_best_available_proposal_is_what_a_hold_would_take_and_holds_nothing() {
    let app = spawn_app().await;
    let sections = json!([
        { "id": "A", "name": "Front", "price_cents": 5000, "rows": 2, "seats_per_row": 3 },
        { "id": "B", "name": "Back", "price_cents": 2000, "rows": 1, "seats_per_row": 4 }
    ]);
    sale(
        &app,
        "propose",
        json!({ "sections": sections, "max_seats_per_user": 3 }),
    )
    .await;
    let propose = |query: &str| {
        let path = format!("/api/events/propose/best_available?{query}");
        let app = &app;
        async move { app.request(Method::GET, &path, None, None).await }
    };
    let passes = app.admitted_passes("propose", 2).await;
    assert_eq!(
        app.hold_seats("propose", &passes[0], &["A-1-2"])
            .await
            .status,
        StatusCode::CREATED
    );

    let proposal = propose("count=2").await;
    assert_eq!(proposal.status, StatusCode::OK, "{}", proposal.body);
    assert_eq!(
        seats_of(&proposal),
        ["A-2-1", "A-2-2"],
        "no two adjacent seats left in row 1"
    );
    assert_eq!(
        seats_of(&propose("count=2").await),
        ["A-2-1", "A-2-2"],
        "a proposal holds nothing"
    );
    assert_eq!(app.stats("propose").await.u64("held_seats"), 1);
    assert_eq!(
        seats_of(&propose("count=3&section=B").await),
        ["B-1-1", "B-1-2", "B-1-3"]
    );
    assert_eq!(
        seats_of(&propose("count=1&section=").await),
        ["A-1-1"],
        "an empty section is any section"
    );
    let held = app
        .hold(
            "propose",
            &passes[1],
            json!({ "best_available": { "count": 2 } }),
        )
        .await;
    assert_eq!(
        seats_of(&held),
        seats_of(&proposal),
        "the hold takes what was proposed"
    );

    let none = propose("count=3&section=A").await;
    assert_eq!(
        (none.status, none.error()),
        (StatusCode::CONFLICT, "seat_unavailable")
    );
    assert_eq!(seats_of(&none), Vec::<String>::new());
    for (query, field) in [
        ("", "count"),
        ("count=0", "count"),
        ("count=4", "count"),
        ("count=two", "count"),
        ("count=-1", "count"),
        ("count=99999999999", "count"),
        ("count=1&section=Z", "section"),
    ] {
        let reply = propose(query).await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            "{query}"
        );
        assert!(
            reply.str("message").starts_with(&format!("{field}:")),
            "{query}: {}",
            reply.body
        );
    }
    let unknown = app
        .request(
            Method::GET,
            "/api/events/nope/best_available?count=1",
            None,
            None,
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.error()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    app.finish().await;
}

#[tokio::test]
async fn once_every_seat_is_sold_joins_and_waiting_tokens_read_sold_out() {
    let app = spawn_app().await;
    sale(
        &app,
        "gone",
        json!({ "sections": one_row(2), "admission": { "per_second": 1000, "max_active": 1, "pass_seconds": 600 } }),
    )
    .await;
    let pass = app.admitted_pass("gone").await;
    let waiting = app.joined("gone").await;
    assert_eq!(app.poll(&waiting).await.str("state"), "waiting");
    let held = app.hold_seats("gone", &pass, &["A-1-1", "A-1-2"]).await;
    assert_eq!(
        app.join("gone", None).await.status,
        StatusCode::CREATED,
        "held seats may still come free"
    );
    app.pay(held.str("order_id"), &pass).await;
    eventually(Duration::from_secs(3), "waiting tokens read sold_out", || async {
        app.poll(&waiting).await.body
            == json!({ "state": "sold_out", "token_id": app.poll(&waiting).await.body["token_id"] })
    })
    .await;
    let join = app.join("gone", None).await;
    assert_eq!((join.status, join.error()), (StatusCode::GONE, "sold_out"));
    let shown = app
        .request(Method::GET, "/api/events/gone", None, None)
        .await;
    assert_eq!(shown.u64("seats_available"), 0);
    app.finish().await;
}

#[tokio::test]
async fn holds_made_before_a_restart_still_expire() {
    let app = spawn_app().await;
    sale(&app, "durable", json!({ "hold_seconds": 3 })).await;
    let pass = app.admitted_pass("durable").await;
    let held = app.hold_seats("durable", &pass, &["A-1-1"]).await;
    let id = held.str("order_id").to_owned();
    let namespace = app.namespace.clone();
    app.stop().await;

    let restarted = spawn_app_in(&namespace).await;
    eventually(
        Duration::from_secs(6),
        "expired within hold_seconds + 2 of the hold",
        || async { restarted.order(&id, &pass).await.str("status") == "expired" },
    )
    .await;
    assert_eq!(restarted.stats("durable").await.u64("held_seats"), 0);
    restarted.finish().await;
}

#[tokio::test]
async fn a_venue_of_100000_seats_is_created_with_every_seat_free() {
    // How fast is for the benchmarks: a bound here would only measure the machine's load.
    let app = spawn_app().await;
    let sections = json!([{ "id": "S", "name": "Stadium", "price_cents": 4500, "rows": 250, "seats_per_row": 400 }]);
    let created = app
        .create_event(crate::helpers::event_body(
            "stadium",
            json!({ "sections": sections }),
        ))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.u64("seats_total"), 100_000);
    let map = app.seat_states("stadium").await;
    assert_eq!(map.len(), 100_000);
    assert_eq!(map.get("S-250-400").map(String::as_str), Some("free"));
    let _: HashMap<String, String> = map;
    app.finish().await;
}
