//! What keeps polled reads cheap on the wire: `ETag` / `304` and compression.

use reqwest::StatusCode;
use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, ETAG, IF_NONE_MATCH};
use serde_json::json;

use crate::helpers::{TestApp, spawn_app};

/// A GET with extra headers, answered as it is on the wire (no decompression).
pub(crate) async fn get(
    app: &TestApp,
    path: &str,
    headers: &[(reqwest::header::HeaderName, &str)],
) -> reqwest::Response {
    let mut request = app.client.get(format!("{}{path}", app.address));
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    request.send().await.expect("the request is answered")
}

#[tokio::test]
async fn a_client_with_the_current_seat_map_or_event_gets_304_until_it_changes() {
    let app = spawn_app().await;
    app.event("tagged", json!({})).await;
    for path in ["/api/events/tagged/seats", "/api/events/tagged"] {
        let first = get(&app, path, &[]).await;
        assert_eq!(first.status(), StatusCode::OK, "{path}");
        let etag = first.headers()[ETAG].to_str().unwrap().to_owned();
        let again = get(&app, path, &[(IF_NONE_MATCH, &etag)]).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(again.headers()[ETAG], etag.as_str());
        assert!(again.bytes().await.unwrap().is_empty(), "a 304 has no body");
    }

    let seats = get(&app, "/api/events/tagged/seats", &[]).await;
    let before = seats.headers()[ETAG].to_str().unwrap().to_owned();
    let pass = app.admitted_pass("tagged").await;
    assert_eq!(
        app.hold_seats("tagged", &pass, &["A-1-1"]).await.status,
        StatusCode::CREATED
    );
    // The map may lag the truth by up to 1 s (API.md): wait for the hold to show, then its tag is new.
    crate::helpers::eventually(
        std::time::Duration::from_secs(3),
        "the hold shows on the map",
        || async { app.seat_states("tagged").await["A-1-1"] == "held" },
    )
    .await;
    let after = get(
        &app,
        "/api/events/tagged/seats",
        &[(IF_NONE_MATCH, &before)],
    )
    .await;
    assert_eq!(
        after.status(),
        StatusCode::OK,
        "a changed map is sent again"
    );
    assert_ne!(after.headers()[ETAG].to_str().unwrap(), before);
    app.finish().await;
}

#[tokio::test]
async fn answers_over_a_kilobyte_are_compressed_as_the_client_allows_and_small_ones_are_not() {
    let app = spawn_app().await;
    app.event("squeezed", json!({})).await;
    let plain = get(&app, "/api/events/squeezed/seats", &[]).await;
    assert!(plain.headers().get(CONTENT_ENCODING).is_none());
    let plain_size = plain.bytes().await.unwrap().len();
    assert!(
        plain_size > 1024,
        "200 seats make more than a kilobyte: {plain_size}"
    );

    for (accepted, coding) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("br;q=1.0, gzip;q=0.5", "br"),
    ] {
        let packed = get(
            &app,
            "/api/events/squeezed/seats",
            &[(ACCEPT_ENCODING, accepted)],
        )
        .await;
        assert_eq!(packed.status(), StatusCode::OK);
        assert_eq!(packed.headers()[CONTENT_ENCODING], coding, "for {accepted}");
        let size = packed.bytes().await.unwrap().len();
        assert!(
            size * 4 < plain_size,
            "{coding}: {size} bytes of {plain_size}"
        );
    }
    let page = get(&app, "/events/squeezed", &[(ACCEPT_ENCODING, "gzip")]).await;
    assert_eq!(page.headers()[CONTENT_ENCODING], "gzip", "HTML pages too");

    let small = get(&app, "/healthz", &[(ACCEPT_ENCODING, "gzip")]).await;
    assert!(
        small.headers().get(CONTENT_ENCODING).is_none(),
        "a body under 1 KB goes as it is"
    );
    app.finish().await;
}
