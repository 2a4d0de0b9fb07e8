//! A graceful stop: requests already in are answered for real, then the
//! background work ends, and nothing of the process is left running.

use anteroom::domain::EventId;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{forget, spawn_app, spawn_app_in, try_send};

#[tokio::test]
async fn a_graceful_stop_answers_the_joins_waiting_for_their_group_commit() {
    let app = spawn_app().await;
    // Paused: nobody leaves the line, so every acknowledged join is counted waiting.
    app.event("closing", json!({ "paused": true })).await;
    let (client, address) = (app.client.clone(), app.address.clone());
    let mut joins: FuturesUnordered<_> = (0..400)
        .map(|_| {
            let (client, address) = (client.clone(), address.clone());
            async move {
                try_send(
                    &client,
                    &address,
                    Method::POST,
                    "/api/events/closing/queue",
                    None,
                    None,
                )
                .await
            }
        })
        .collect();
    // Joins are flowing: stop while the rest wait for their groups' confirms.
    let mut replies = vec![joins.next().await.expect("a join")];
    let (namespace, tasks) = (app.namespace.clone(), app.tasks.clone());
    let stopped = tokio::spawn(app.stop());
    replies.extend(joins.collect::<Vec<_>>().await);
    stopped.await.expect("the app stops");
    assert_eq!(tasks.running(), 0, "every task ended with the app");

    let statuses: Vec<StatusCode> = replies.iter().flatten().map(|r| r.status).collect();
    let created = statuses
        .iter()
        .filter(|&&s| s == StatusCode::CREATED)
        .count();
    assert!(
        statuses.iter().all(|&s| s == StatusCode::CREATED),
        "a join taken in is answered with its outcome, never refused for the stop: {statuses:?}"
    );
    assert!(created >= 1, "{statuses:?}");

    let again = spawn_app_in(&namespace).await;
    assert_eq!(
        again.stats("closing").await.u64("waiting"),
        created as u64,
        "every acknowledged join is in the line"
    );
    again.stop().await;
    forget(
        &namespace,
        &[EventId::parse("closing").expect("an event id")],
    )
    .await;
}
