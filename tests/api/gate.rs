//! The gate for sites Anteroom did not build: an event's return origins, the
//! reverse proxy's check (`GET /api/gate/{id}`), the waiting room opened with
//! `?return_to=` and its last hop back to the site with the pass.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, event_body, spawn_app, spawn_app_with};

/// A client that shows redirects instead of following them.
fn not_following() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}

fn percent(raw: &str) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes()).collect()
}

/// The gate's answer to a request with these headers (and query).
async fn gate(
    app: &TestApp,
    event: &str,
    query: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = not_following().get(format!("{}/api/gate/{event}{query}", app.address));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.expect("the gate answers")
}

fn location(res: &reqwest::Response) -> &str {
    res.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no Location in {:?}", res.headers()))
}

#[tokio::test]
async fn return_origins_are_set_at_creation_as_browsers_write_them_and_replaced_by_patch() {
    let app = spawn_app().await;
    let plain = app.event("plain", json!({})).await;
    assert_eq!(plain.body["return_origins"], json!([]));
    let created = app
        .event(
            "gated",
            json!({"return_origins": ["HTTPS://Shop.Example:443/", "http://127.0.0.1:8081"]}),
        )
        .await;
    let listed = json!(["https://shop.example", "http://127.0.0.1:8081"]);
    assert_eq!(created.body["return_origins"], listed);
    let shown = app
        .request(Method::GET, "/api/events/gated", None, None)
        .await;
    assert_eq!(shown.body["return_origins"], listed);

    let kept = app.patch_event("gated", json!({"paused": true})).await;
    assert_eq!(kept.body["return_origins"], listed, "absent: unchanged");
    let replaced = app
        .patch_event(
            "gated",
            json!({"return_origins": ["https://tickets.example"]}),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(
        replaced.body["return_origins"],
        json!(["https://tickets.example"])
    );
    let cleared = app
        .patch_event("gated", json!({"return_origins": []}))
        .await;
    assert_eq!(cleared.body["return_origins"], json!([]));

    for (origins, field) in [
        (
            json!(["https://shop.example", "https://shop.example/cart"]),
            "return_origins[1]",
        ),
        (json!(["javascript:alert(1)"]), "return_origins[0]"),
        (json!(["//shop.example"]), "return_origins[0]"),
        (json!(["https://user@shop.example"]), "return_origins[0]"),
        (json!("https://shop.example"), "return_origins"),
        (
            json!(
                (0..33)
                    .map(|i| format!("https://s{i}.example"))
                    .collect::<Vec<_>>()
            ),
            "return_origins",
        ),
    ] {
        let body = event_body("refused", json!({ "return_origins": origins }));
        let created = app.create_event(body).await;
        assert_eq!(
            created.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{origins}"
        );
        assert_eq!(created.error(), "invalid_request");
        assert!(
            created.str("message").starts_with(field),
            "{origins}: {}",
            created.body
        );
        let patched = app
            .patch_event("gated", json!({ "return_origins": origins }))
            .await;
        assert_eq!(
            patched.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{origins}"
        );
        assert!(
            patched.str("message").starts_with(field),
            "{}",
            patched.body
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn the_gate_lets_a_valid_pass_through_and_sends_anything_else_to_the_line() {
    let app = spawn_app().await;
    app.event(
        "gated",
        json!({"admission": {"per_second": 50, "max_active": 500, "pass_seconds": 60}}),
    )
    .await;
    app.event("other", json!({})).await;
    let pass = app.admitted_pass("gated").await;
    let foreign = app.admitted_pass("other").await;

    let bearer = format!("Bearer {pass}");
    let cookie = format!("lang=de; anteroom_pass={pass}");
    for headers in [
        vec![("authorization", bearer.as_str())],
        vec![("cookie", cookie.as_str())],
        // A site's own bearer token does not hide the pass in the cookie.
        vec![
            ("authorization", "Bearer the-sites-own-token"),
            ("cookie", cookie.as_str()),
        ],
    ] {
        let res = gate(&app, "gated", "", &headers).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT, "{headers:?}");
        assert_eq!(res.headers()["cache-control"], "no-store");
    }

    let line = format!("{}/events/gated", app.address);
    let (forged_payload, _) = pass.split_once('.').expect("a signed pass");
    let forged = format!("{forged_payload}.AAAA");
    let foreign_cookie = format!("anteroom_pass={foreign}");
    let forged_bearer = format!("Bearer {forged}");
    for headers in [
        vec![],
        vec![("authorization", forged_bearer.as_str())],
        vec![("cookie", foreign_cookie.as_str())],
        vec![("authorization", "Basic dXNlcjpwdw==")],
    ] {
        let res = gate(&app, "gated", "", &headers).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{headers:?}");
        assert_eq!(location(&res), line, "{headers:?}");
        let body: serde_json::Value = res.json().await.expect("an error body");
        assert_eq!(body["error"], "invalid_pass");
    }

    // Where the visitor was going comes back as return_to, without any pass it carried.
    let original = "https://shop.example/cart?item=7&anteroom_pass=stale#pay";
    let res = gate(&app, "gated", "", &[("x-original-url", original)]).await;
    assert_eq!(
        location(&res),
        format!(
            "{line}?return_to={}",
            percent("https://shop.example/cart?item=7#pay")
        )
    );
    let named = format!("?return_to={}", percent("https://shop.example/a?b=1"));
    let res = gate(&app, "gated", &named, &[("x-original-url", original)]).await;
    assert_eq!(
        location(&res),
        format!("{line}?return_to={}", percent("https://shop.example/a?b=1")),
        "the query's return_to comes first"
    );

    // Once the pass has run out, it lets nobody through.
    app.clock.advance(Duration::from_secs(61));
    let res = gate(&app, "gated", "", &[("authorization", &bearer)]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let res = gate(&app, "missing", "", &[("authorization", &bearer)]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["error"],
        "not_found"
    );
    app.finish().await;
}

#[tokio::test]
async fn the_waiting_room_says_where_it_will_send_the_visitor_and_refuses_other_addresses() {
    let app = spawn_app().await;
    app.event(
        "gated",
        json!({"name": "Gated Night", "return_origins": ["https://shop.example"]}),
    )
    .await;
    let page = |query: String| {
        let app = &app;
        async move {
            let res = not_following()
                .get(format!("{}/events/gated{query}", app.address))
                .send()
                .await
                .expect("the page answers");
            let status = res.status();
            assert!(res.headers().get(LOCATION).is_none(), "never a redirect");
            (status, res.text().await.expect("a page"))
        }
    };
    let (status, html) = page(format!(
        "?return_to={}",
        percent("https://shop.example/cart?x=1&y=2")
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("When it is your turn we will take you back to shop.example."),
        "{html}"
    );
    assert!(
        html.contains(r#"data-return-to="https://shop.example/cart?x=1&#38;y=2""#)
            || html.contains(r#"data-return-to="https://shop.example/cart?x=1&amp;y=2""#),
        "{html}"
    );

    let (status, html) = page(String::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !html.contains("data-return-to") && !html.contains(r#"id="return-note""#),
        "as before"
    );

    for (raw, why) in [
        (
            "https://evil.example/",
            "https://evil.example is not one of the sites the organiser of Gated Night lets this waiting room send visitors to",
        ),
        (
            "http://shop.example/",
            "http://shop.example is not one of the sites",
        ),
        (
            "//evil.example/",
            "starts with // and does not say whether it is http or https",
        ),
        (
            "javascript:alert(document.cookie)",
            "is not the address of a web page",
        ),
        (
            "https://user:pw@shop.example/",
            "carries a user name or password",
        ),
        ("shop.example", "does not hold a web address"),
        ("", "does not hold a web address"),
    ] {
        let (status, html) = page(format!("?return_to={}", percent(raw))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{raw}");
        assert!(html.contains(why), "{raw}: {html}");
        assert!(
            html.contains(r#"href="/events/gated""#),
            "the way into the event's own line"
        );
        assert!(
            !html.contains("evil.example/\""),
            "no link to the refused address"
        );
    }
    let (status, html) = page("?lang=de&return_to=https%3A%2F%2Fevil.example".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("gehört nicht zu den Websites"), "{html}");
    app.finish().await;
}

#[tokio::test]
async fn the_last_hop_carries_the_pass_to_the_site_and_a_bad_pass_back_to_the_line() {
    let app = spawn_app().await;
    app.event("gated", json!({"return_origins": ["https://shop.example"]}))
        .await;
    app.event("other", json!({"return_origins": ["https://shop.example"]}))
        .await;
    let pass = app.admitted_pass("gated").await;
    let foreign = app.admitted_pass("other").await;
    let back = |return_to: &str, pass: &str| {
        let url = format!(
            "{}/events/gated/return?return_to={}&anteroom_pass={}",
            app.address,
            percent(return_to),
            percent(pass)
        );
        async move { not_following().get(url).send().await.expect("an answer") }
    };

    let res = back("https://shop.example/cart?x=1&anteroom_pass=old#pay", &pass).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&res),
        format!("https://shop.example/cart?x=1&anteroom_pass={pass}#pay")
    );
    assert!(
        res.headers().get(SET_COOKIE).is_none(),
        "127.0.0.1 and shop.example share no domain: the site takes the pass from the query"
    );

    for bad in [foreign.as_str(), "forged.pass", ""] {
        let res = back("https://shop.example/cart", bad).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{bad}");
        assert_eq!(
            location(&res),
            format!(
                "/events/gated?return_to={}",
                percent("https://shop.example/cart")
            ),
            "back to the line: {bad}"
        );
    }
    let res = back("https://evil.example/", &pass).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get(LOCATION).is_none());
    let res = not_following()
        .get(format!(
            "{}/events/gated/return?anteroom_pass={pass}",
            app.address
        ))
        .send()
        .await
        .expect("an answer");
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "no return_to: nowhere to go"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_site_under_the_same_parent_domain_also_gets_the_pass_in_a_cookie() {
    let public = url::Url::parse("https://queue.shop.example").expect("a URL");
    let app = spawn_app_with(&crate::helpers::fresh_namespace(), |config| {
        config.public_url = Some(public);
    })
    .await;
    app.event(
        "gated",
        json!({
            "return_origins": ["https://www.shop.example", "https://elsewhere.example"],
            "admission": {"per_second": 50, "max_active": 500, "pass_seconds": 600},
        }),
    )
    .await;
    let pass = app.admitted_pass("gated").await;
    let hop = |site: &str| {
        let url = format!(
            "{}/events/gated/return?return_to={}&anteroom_pass={pass}",
            app.address,
            percent(site)
        );
        async move { not_following().get(url).send().await.expect("an answer") }
    };
    let res = hop("https://www.shop.example/").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = res.headers()[SET_COOKIE].to_str().expect("text");
    let max_age: u64 = cookie
        .split("; ")
        .find_map(|a| a.strip_prefix("Max-Age="))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no Max-Age in {cookie}"));
    assert!((590..=600).contains(&max_age), "{cookie}");
    assert_eq!(
        cookie.replace(&format!("Max-Age={max_age}"), "Max-Age=…"),
        format!(
            "anteroom_pass={pass}; Path=/; Max-Age=…; Secure; HttpOnly; SameSite=Lax; Domain=shop.example"
        )
    );
    let res = hop("https://elsewhere.example/").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(res.headers().get(SET_COOKIE).is_none(), "no shared domain");

    // The gate's Location is under the public URL.
    let res = gate(&app, "gated", "", &[]).await;
    assert_eq!(location(&res), "https://queue.shop.example/events/gated");
    let res = gate(
        &app,
        "gated",
        "",
        &[(AUTHORIZATION.as_str(), &format!("Bearer {pass}"))],
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = gate(
        &app,
        "gated",
        "",
        &[(COOKIE.as_str(), &format!("anteroom_pass={pass}"))],
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    app.finish().await;
}
