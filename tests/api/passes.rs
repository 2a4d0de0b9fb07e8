//! Passes are standard JWTs verified by the JWKS, and the signing key rotates
//! without ending the passes the previous key signed.

use std::time::Duration;

use anteroom::domain::{EventId, SigningKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually, forget, fresh_namespace, spawn_app_in, spawn_app_with};

const PUBLIC_URL: &str = "https://tickets.example";

/// `openssl genpkey -algorithm ed25519`: the key a rotation moves to.
const NEXT_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIMapFDBrmLRII0EZicxNFbG861RmcW8NcfYWOI6xRiUD
-----END PRIVATE KEY-----
";

/// The JSON of a JWT's `part` (0: header, 1: claims).
fn jwt_part(raw: &str, part: usize) -> Value {
    let segment = raw.split('.').nth(part).expect("three parts");
    serde_json::from_slice(&B64.decode(segment).expect("base64url")).expect("JSON")
}

fn kid(pass: &str) -> String {
    jwt_part(pass, 0)["kid"].as_str().expect("a kid").to_owned()
}

/// The `kid`s the JWKS lists, in its order.
async fn published(app: &TestApp) -> Vec<String> {
    let reply = app
        .request(Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["keys"]
        .as_array()
        .expect("a key list")
        .iter()
        .map(|k| k["kid"].as_str().expect("a kid").to_owned())
        .collect()
}

#[tokio::test]
async fn a_pass_is_a_jwt_whose_key_the_jwks_lists() {
    let app = spawn_app_with(&fresh_namespace(), |c| {
        c.public_url = Some(url::Url::parse(PUBLIC_URL).expect("a URL"));
    })
    .await;
    app.event("jwt-sale", json!({})).await;
    let joined = app.join("jwt-sale", None).await;
    let admitted = app
        .poll_until(joined.str("token"), "admitted", Duration::from_secs(10))
        .await;
    let pass = admitted.str("pass");

    let header = jwt_part(pass, 0);
    assert_eq!(
        (&header["alg"], &header["typ"]),
        (&json!("EdDSA"), &json!("JWT"))
    );
    let claims = jwt_part(pass, 1);
    assert_eq!(claims["iss"], PUBLIC_URL);
    assert_eq!(claims["aud"], "jwt-sale");
    assert_eq!(claims["sub"], joined.body["token_id"]);
    assert_eq!(claims["iat"], claims["nbf"]);
    let ends = time::OffsetDateTime::parse(
        admitted.str("pass_expires_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("an RFC 3339 time");
    let exp = claims["exp"].as_i64().expect("a numeric exp");
    assert!(
        (0..=1).contains(&(exp - ends.unix_timestamp())),
        "exp {exp} is the pass's end ({ends}) rounded up to the second"
    );
    assert_eq!(
        claims["exp_ms"].as_i64(),
        i64::try_from(ends.unix_timestamp_nanos() / 1_000_000).ok(),
        "exp_ms is the pass's end to the millisecond"
    );
    assert!(claims["key"].as_str().is_some_and(|k| k.starts_with('r')));

    let jwks = app
        .request(Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    assert_eq!(
        jwks.headers["cache-control"].to_str().ok(),
        Some("public, max-age=60")
    );
    let key = &jwks.body["keys"][0];
    assert_eq!(key["kid"].as_str(), Some(kid(pass).as_str()));
    assert_eq!(
        (&key["kty"], &key["crv"], &key["alg"], &key["use"]),
        (
            &json!("OKP"),
            &json!("Ed25519"),
            &json!("EdDSA"),
            &json!("sig")
        )
    );
    assert_eq!(jwks.body["keys"].as_array().map(Vec::len), Some(1));

    let held = app.hold_seats("jwt-sale", pass, &["A-1-1"]).await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.body);
    app.finish().await;
}

#[tokio::test]
async fn a_pass_holds_on_an_instance_published_under_another_url() {
    let namespace = fresh_namespace();
    let app = spawn_app_in(&namespace).await;
    app.event("moved", json!({})).await;
    let pass = app.admitted_pass("moved").await;
    let events = [EventId::parse("moved").expect("an id")];
    app.stop().await;
    // The same deployment (same secret, same key), now reached at another URL:
    // the key names the deployment, not the address an instance answers at.
    let moved = spawn_app_with(&namespace, |c| {
        c.public_url = Some(url::Url::parse(PUBLIC_URL).expect("a URL"));
    })
    .await;
    let reply = moved.hold_seats("moved", &pass, &["A-1-1"]).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    moved.finish().await;
    forget(&namespace, &events).await;
}

#[tokio::test]
async fn a_rotated_key_verifies_until_its_passes_have_ended_then_leaves_the_jwks() {
    let namespace = fresh_namespace();
    let first = spawn_app_in(&namespace).await;
    first
        .event(
            "rotation",
            json!({ "hold_seconds": 30, "admission": { "per_second": 50, "max_active": 500, "pass_seconds": 60 } }),
        )
        .await;
    let old_pass = first.admitted_pass("rotation").await;
    let old_kid = kid(&old_pass);
    assert_eq!(published(&first).await, std::slice::from_ref(&old_kid));
    let events = [EventId::parse("rotation").expect("an id")];
    first.stop().await;

    let next_key = SigningKey::from_pem(NEXT_KEY_PEM).expect("a PEM key");
    let new_kid = next_key.public().kid().to_owned();
    let second = spawn_app_with(&namespace, |c| c.signing_key = Some(next_key)).await;
    assert_eq!(
        published(&second).await,
        [new_kid.clone(), old_kid.clone()],
        "the new key first, the old one while its passes may be in use"
    );
    let new_pass = second.admitted_pass("rotation").await;
    assert_eq!(
        kid(&new_pass),
        new_kid,
        "new passes are signed by the new key"
    );
    let old_hold = second.hold_seats("rotation", &old_pass, &["A-1-1"]).await;
    assert_eq!(old_hold.status, StatusCode::CREATED, "{}", old_hold.body);
    let new_hold = second.hold_seats("rotation", &new_pass, &["A-1-2"]).await;
    assert_eq!(new_hold.status, StatusCode::CREATED, "{}", new_hold.body);
    let old_order = old_hold.str("order_id").to_owned();
    assert_eq!(
        second.order(&old_order, &old_pass).await.status,
        StatusCode::OK
    );

    // Long after every pass of the old key, and every hold made with one, ended:
    // 60 s of pass, 30 s of hold, and the margins (services::pass_keys::retention).
    second
        .clock
        .advance(Duration::from_secs(60 + 30 + 2 + 120 + 60 + 60));
    let app = &second;
    eventually(
        Duration::from_secs(10),
        "the old key leaves the JWKS",
        || async { published(app).await == [new_kid.clone()] },
    )
    .await;
    let reply = second.order(&old_order, &old_pass).await;
    assert_eq!(
        (reply.status, reply.error()),
        (StatusCode::UNAUTHORIZED, "invalid_pass"),
        "the old key verifies nothing any more"
    );
    let new_order = new_hold.str("order_id");
    assert_eq!(
        second.order(new_order, &new_pass).await.status,
        StatusCode::OK,
        "the signing key's ended passes still read their orders"
    );
    second.finish().await;
    forget(&namespace, &events).await;
}
