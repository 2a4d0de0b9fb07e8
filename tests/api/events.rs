use reqwest::{Method, StatusCode};
use serde_json::json;

use anteroom::domain::EventId;

use crate::helpers::{ADMIN_TOKEN, event_body, forget, spawn_app, spawn_app_in};

#[tokio::test]
async fn creating_an_event_returns_it_with_its_live_fields() {
    let app = spawn_app().await;
    let reply = app.event("rock-2027", json!({})).await;
    assert_eq!(reply.str("id"), "rock-2027");
    assert_eq!(reply.u64("seats_total"), 200);
    assert_eq!(reply.u64("seats_available"), 200);
    assert_eq!(reply.body["paused"], false);
    assert_eq!(reply.body["admission"]["abandon_seconds"], 60);
    assert_eq!(
        reply.str("currency"),
        "EUR",
        "events are sold in euros unless created otherwise"
    );
    assert_eq!(reply.str("prequeue_commitment").len(), 64);

    let shown = app
        .request(Method::GET, "/api/events/rock-2027", None, None)
        .await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.body, reply.body);
    let listed = app.request(Method::GET, "/api/events", None, None).await;
    assert_eq!(listed.body["events"][0], reply.body);
    app.finish().await;
}

#[tokio::test]
async fn an_event_id_is_taken_once() {
    let app = spawn_app().await;
    app.event("twice", json!({})).await;
    let again = app.create_event(event_body("twice", json!({}))).await;
    assert_eq!(
        (again.status, again.error()),
        (StatusCode::CONFLICT, "event_exists")
    );
    app.finish().await;
}

#[tokio::test]
async fn invalid_events_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let section = |over: serde_json::Value| {
        let mut s = json!({ "id": "A", "name": "Floor", "price_cents": 100, "rows": 2, "seats_per_row": 2 });
        for (k, v) in over.as_object().unwrap() {
            s[k] = v.clone();
        }
        json!([s])
    };
    let cases = [
        (json!({ "id": "Bad_Id" }), "id"),
        (json!({ "name": "" }), "name"),
        (json!({ "hold_seconds": 0 }), "hold_seconds"),
        (json!({ "max_seats_per_user": 0 }), "max_seats_per_user"),
        (
            json!({ "admission": { "per_second": 0, "max_active": 1, "pass_seconds": 1 } }),
            "admission.per_second",
        ),
        (
            json!({ "admission": { "per_second": 1, "max_active": 0, "pass_seconds": 1 } }),
            "admission.max_active",
        ),
        (
            json!({ "admission": { "per_second": 1, "max_active": 1, "pass_seconds": 0 } }),
            "admission.pass_seconds",
        ),
        (
            json!({ "admission": { "per_second": 1, "max_active": 1, "pass_seconds": 1, "abandon_seconds": 0 } }),
            "admission.abandon_seconds",
        ),
        (
            json!({ "admission": { "per_second": 1, "pass_seconds": 1 } }),
            "admission",
        ),
        (json!({ "sections": [] }), "sections"),
        (
            json!({ "sections": section(json!({ "id": "A-1" })) }),
            "sections[0].id",
        ),
        (
            json!({ "sections": section(json!({ "rows": 0 })) }),
            "sections[0].rows",
        ),
        (
            json!({ "sections": section(json!({ "seats_per_row": -1 })) }),
            "sections[0].seats_per_row",
        ),
        (
            json!({ "sections": section(json!({ "price_cents": -5 })) }),
            "sections[0].price_cents",
        ),
        (json!({ "starts_at": "tomorrow" }), "starts_at"),
        (
            json!({ "starts_at": "0000-01-01T00:00:00+23:59" }),
            "starts_at",
        ),
        (
            json!({ "on_sale_at": "9999-12-31T23:59:59-23:59" }),
            "on_sale_at",
        ),
        (json!({ "hold_seconds": "300" }), "hold_seconds"),
        (json!({ "admission": [1, 1, 60] }), "admission"),
        (
            json!({ "sections": [["A", "Floor", 100, 2, 2]] }),
            "sections[0]",
        ),
        (json!({ "currency": "usd" }), "currency"),
        (json!({ "currency": "EURO" }), "currency"),
        (json!({ "currency": "XYZ" }), "currency"),
        (json!({ "currency": 978 }), "currency"),
    ];
    for (override_, field) in cases {
        let reply = app.create_event(event_body("bad", override_.clone())).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{override_}: {}",
            reply.body
        );
        assert_eq!(reply.error(), "invalid_request");
        assert!(
            reply.str("message").contains(field),
            "{override_}: {} should name {field}",
            reply.body
        );
    }
    for required in ["name", "venue"] {
        let mut missing = event_body("bad", json!({}));
        missing.as_object_mut().unwrap().remove(required);
        let reply = app.create_event(missing).await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
        );
        assert!(reply.str("message").contains(required), "{}", reply.body);
    }
    // Times are kept and shown in UTC.
    let reply = app
        .create_event(event_body(
            "local",
            json!({ "starts_at": "2027-01-01T00:00:00+05:00" }),
        ))
        .await;
    assert_eq!(
        (reply.status, reply.str("starts_at")),
        (StatusCode::CREATED, "2026-12-31T19:00:00Z"),
        "{}",
        reply.body
    );
    app.finish().await;
}

#[tokio::test]
async fn an_event_is_sold_in_the_currency_it_was_created_with() {
    let app = spawn_app().await;
    let created = app.event("in-dollars", json!({ "currency": "USD" })).await;
    assert_eq!(created.str("currency"), "USD");
    let shown = app
        .request(Method::GET, "/api/events/in-dollars", None, None)
        .await;
    assert_eq!(shown.str("currency"), "USD");
    let listed = app.request(Method::GET, "/api/events", None, None).await;
    assert_eq!(listed.body["events"][0]["currency"], "USD");
    let patched = app
        .patch_event("in-dollars", json!({ "paused": true }))
        .await;
    assert_eq!(
        (patched.status, patched.str("currency")),
        (StatusCode::OK, "USD")
    );

    let refused = app
        .create_event(event_body("in-pesetas", json!({ "currency": "ESP" })))
        .await;
    assert_eq!(
        (refused.status, refused.error()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
    );
    assert!(
        refused
            .str("message")
            .starts_with("currency: must be one of"),
        "{}",
        refused.body
    );
    app.event("in-euros", json!({})).await;

    // The currency is in the record: a restarted service reads it back.
    let namespace = app.namespace.clone();
    app.stop().await;
    let restarted = spawn_app_in(&namespace).await;
    let shown = restarted
        .request(Method::GET, "/api/events/in-dollars", None, None)
        .await;
    assert_eq!(
        (shown.status, shown.str("currency")),
        (StatusCode::OK, "USD")
    );
    let shown = restarted
        .request(Method::GET, "/api/events/in-euros", None, None)
        .await;
    assert_eq!(shown.str("currency"), "EUR");
    restarted.finish().await;
    let made_before: Vec<EventId> = ["in-dollars", "in-euros"]
        .map(|id| EventId::parse(id).unwrap())
        .into();
    forget(&namespace, &made_before).await;
}

#[tokio::test]
async fn refusals_of_the_create_body_are_sentences_naming_the_field_first() {
    let app = spawn_app().await;
    let mut nameless = event_body("bad", json!({}));
    nameless.as_object_mut().unwrap().remove("name");
    let cases = [
        (
            event_body("bad", json!({ "hold_seconds": null })),
            "hold_seconds: must be a whole number, 0 or more",
        ),
        (
            event_body("bad", json!({ "hold_seconds": "300" })),
            "hold_seconds: must be a whole number, 0 or more",
        ),
        (
            event_body("bad", json!({ "paused": "yes" })),
            "paused: must be true or false",
        ),
        (
            event_body(
                "bad",
                json!({ "admission": { "per_second": "fast", "max_active": 1, "pass_seconds": 1 } }),
            ),
            "admission.per_second: must be a number",
        ),
        (
            event_body(
                "bad",
                json!({ "admission": { "per_second": 1, "pass_seconds": 1 } }),
            ),
            "admission.max_active: is required",
        ),
        (nameless, "name: is required"),
        (
            event_body("bad", json!({ "starts_at": "tomorrow" })),
            "starts_at: must be a date and time such as 2027-06-01T19:00:00Z (RFC 3339)",
        ),
        (
            event_body("bad", json!({ "on_sale_at": 1_700_000_000 })),
            "on_sale_at: must be a date and time such as 2027-06-01T19:00:00Z (RFC 3339)",
        ),
    ];
    for (body, sentence) in cases {
        let reply = app.create_event(body).await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
        );
        assert_eq!(reply.str("message"), sentence);
    }
    app.finish().await;
}

#[tokio::test]
async fn malformed_and_oversized_bodies_get_the_error_shape() {
    let app = spawn_app().await;
    let url = format!("{}/api/admin/events", app.address);
    let res = app
        .client
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_request"
    );

    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(70 * 1024));
    let res = app
        .client
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["error"],
        "payload_too_large"
    );
    app.finish().await;
}

#[tokio::test]
async fn admin_routes_need_the_admin_token() {
    let app = spawn_app().await;
    app.event("guarded", json!({})).await;
    for bearer in [None, Some("wrong"), Some("")] {
        let create = app
            .request(
                Method::POST,
                "/api/admin/events",
                Some(event_body("x", json!({}))),
                bearer,
            )
            .await;
        let patch = app
            .request(
                Method::PATCH,
                "/api/admin/events/guarded",
                Some(json!({"paused": true})),
                bearer,
            )
            .await;
        let stats = app
            .request(Method::GET, "/api/admin/events/guarded/stats", None, bearer)
            .await;
        for reply in [create, patch, stats] {
            assert_eq!(
                (reply.status, reply.error()),
                (StatusCode::UNAUTHORIZED, "unauthorized"),
                "{bearer:?}"
            );
        }
    }
    app.finish().await;
}

#[tokio::test]
async fn unknown_events_are_not_found() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::GET, "/api/events/nope"),
        (Method::GET, "/api/events/NOT%20VALID"),
        (Method::POST, "/api/events/nope/queue"),
        (Method::PATCH, "/api/admin/events/nope"),
        (Method::GET, "/api/admin/events/nope/stats"),
    ] {
        let reply = app
            .request(method.clone(), path, Some(json!({})), Some(ADMIN_TOKEN))
            .await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{method} {path}"
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn a_patch_changes_admission_live() {
    let app = spawn_app().await;
    app.event("live", json!({})).await;
    let reply = app
        .patch_event(
            "live",
            json!({ "admission": { "per_second": 2.5, "max_active": 7 }, "paused": true }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["admission"]["per_second"], 2.5);
    assert_eq!(reply.body["admission"]["max_active"], 7);
    assert_eq!(
        reply.body["admission"]["pass_seconds"], 600,
        "untouched fields stay"
    );
    assert_eq!(reply.body["paused"], true);

    let shown = app
        .request(Method::GET, "/api/events/live", None, None)
        .await;
    assert_eq!(
        (
            shown.body["admission"]["max_active"].as_u64(),
            shown.body["paused"].as_bool()
        ),
        (Some(7), Some(true))
    );

    for bad in [
        json!({ "admission": { "per_second": 0 } }),
        json!({ "admission": { "max_active": 0 } }),
        json!({ "paused": "yes" }),
    ] {
        let reply = app.patch_event("live", bad.clone()).await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            "{bad}"
        );
    }
    app.finish().await;
}
