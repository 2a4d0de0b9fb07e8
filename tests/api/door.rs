//! The operator's door: wrong admin tokens are limited per client address.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use time::OffsetDateTime;

use crate::helpers::{ADMIN_TOKEN, Reply, TestApp, spawn_app};

/// Ten wrong admin tokens per client address per minute (`services::door`).
pub const ALLOWED_FAILURES: usize = 10;

/// Waits out the end of a minute, so that a test's attempts fall in one window.
pub async fn within_one_window() {
    let second = OffsetDateTime::now_utc().second();
    if second >= 50 {
        tokio::time::sleep(Duration::from_secs(u64::from(61 - second))).await;
    }
}

pub async fn admin_stats(app: &TestApp, token: &str) -> Reply {
    app.request(
        Method::GET,
        "/api/admin/events/none/stats",
        None,
        Some(token),
    )
    .await
}

#[tokio::test]
async fn wrong_admin_tokens_are_limited_per_client_and_then_even_the_right_one_waits() {
    let app = spawn_app().await;
    // A stopped clock keeps every attempt in one window.
    app.clock.pause();
    // A request with no token at all guesses nothing: it is not counted.
    for _ in 0..ALLOWED_FAILURES {
        let bare = app
            .request(Method::GET, "/api/admin/events/none/stats", None, None)
            .await;
        assert_eq!(bare.status, StatusCode::UNAUTHORIZED);
    }
    for attempt in 1..=ALLOWED_FAILURES {
        let guess = admin_stats(&app, &format!("a-wrong-admin-token-guess-{attempt}")).await;
        assert_eq!(
            (guess.status, guess.error()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "guess {attempt}"
        );
    }
    let refused = admin_stats(&app, "one-more-wrong-admin-token-guess").await;
    assert_eq!(
        (refused.status, refused.error()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Guessing must not go on: the right token waits for the next minute too.
    let right = admin_stats(&app, ADMIN_TOKEN).await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    app.clock.advance(Duration::from_secs(retry_after));
    let next_window = admin_stats(&app, ADMIN_TOKEN).await;
    assert_ne!(
        next_window.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the right token is let in once the next minute opens"
    );
    app.finish().await;
}
