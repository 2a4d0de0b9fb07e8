use reqwest::{Method, StatusCode};

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = spawn_app().await;
    assert_eq!(
        app.request(Method::GET, "/healthz", None, None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.request(Method::GET, "/readyz", None, None).await.status,
        StatusCode::OK
    );
    app.event("metered", serde_json::json!({})).await;
    app.joined("metered").await;
    let metrics = app.request(Method::GET, "/metrics", None, None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.body.as_str().expect("prometheus text");
    assert!(text.contains("anteroom_joins_total"), "{text}");
    assert!(
        text.contains("anteroom_http_request_duration_seconds"),
        "{text}"
    );
    // How long each group commit took, and group sizes counted in sizes (not seconds).
    assert!(
        text.contains(r#"anteroom_group_commit_seconds_bucket{group="join",le="0.005"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"anteroom_group_commit_size_bucket{group="join",le="2048"}"#),
        "{text}"
    );
    app.finish().await;
}

#[tokio::test]
async fn responses_carry_security_headers_and_unknown_routes_are_json_404s() {
    let app = spawn_app().await;
    let reply = app.request(Method::GET, "/no/such/route", None, None).await;
    assert_eq!(
        (reply.status, reply.error()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert_eq!(reply.headers["x-content-type-options"], "nosniff");
    assert_eq!(reply.headers["x-frame-options"], "DENY");
    assert_eq!(reply.headers["referrer-policy"], "no-referrer");
    assert_eq!(
        reply.headers["content-security-policy"], "default-src 'none'; frame-ancestors 'none'",
        "a JSON answer loads nothing"
    );
    let page = app.request(Method::GET, "/", None, None).await;
    let policy = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"),
        "a page loads scripts from this origin only: {policy}"
    );
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    // The challenge's solver runs as a worker under its script's policy.
    let worker = app.request(Method::GET, "/static/pow.js", None, None).await;
    assert_eq!(
        worker.headers["content-security-policy"],
        page.headers["content-security-policy"]
    );
    let reply = app.request(Method::PUT, "/api/events", None, None).await;
    assert_eq!(
        (reply.status, reply.error()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    // Paths that do not even decode name nothing: the API's error shape, not a bare 400.
    let reply = app
        .request(Method::GET, "/api/events/%FF", None, None)
        .await;
    assert_eq!(
        (reply.status, reply.error()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let reply = app.request(Method::GET, "/api/queue/%FF", None, None).await;
    assert_eq!(
        (reply.status, reply.error()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    let home = app.request(Method::GET, "/", None, None).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(
        home.body
            .as_str()
            .is_some_and(|html| html.contains("<h1>Events</h1>")),
        "{}",
        home.body
    );
    app.finish().await;
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = spawn_app().await;
    let doc = app
        .request(Method::GET, "/api/openapi.json", None, None)
        .await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.str("openapi").starts_with("3."));
    let routes = [
        ("post", "/api/admin/events"),
        ("patch", "/api/admin/events/{id}"),
        ("get", "/api/admin/events/{id}/stats"),
        ("get", "/api/events"),
        ("get", "/api/events/{id}"),
        ("post", "/api/events/{id}/queue"),
        ("get", "/api/queue/{token}"),
        ("delete", "/api/queue/{token}"),
        ("get", "/api/events/{id}/seats"),
        ("post", "/api/events/{id}/holds"),
        ("get", "/api/events/{id}/best_available"),
        ("get", "/api/orders/{order_id}"),
        ("delete", "/api/orders/{order_id}"),
        ("post", "/api/orders/{order_id}/pay"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    ];
    for (method, path) in routes {
        assert!(
            doc.body["paths"][path][method].is_object(),
            "{method} {path} is not described"
        );
    }
    let hold = &doc.body["paths"]["/api/events/{id}/holds"]["post"]["responses"];
    for status in ["201", "401", "409", "422"] {
        assert!(hold[status].is_object(), "holds: {status}");
    }
    app.finish().await;
}
