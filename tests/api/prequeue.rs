use std::time::Duration;

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;

use crate::helpers::{eventually, spawn_app};

#[tokio::test]
async fn the_prequeue_is_placed_ahead_in_a_verifiable_draw() {
    let app = spawn_app().await;
    let opens = app.clock.now() + Duration::from_secs(3);
    let opens_at = opens.format(&Rfc3339).unwrap();
    let created = app
        .event("early", json!({ "paused": true, "on_sale_at": opens_at }))
        .await;
    let commitment = created.str("prequeue_commitment").to_owned();
    assert!(
        created.body.get("prequeue_seed").is_none(),
        "the seed stays secret until the sale opens"
    );

    let joins = join_all((0..8).map(|_| app.join("early", None))).await;
    let mut early = Vec::new();
    for reply in &joins {
        assert_eq!(
            (reply.status, reply.str("state")),
            (StatusCode::CREATED, "pre_queue"),
            "{}",
            reply.body
        );
        assert!(reply.body.get("opens_at").is_some() && reply.body.get("poll_after_ms").is_some());
        early.push((
            reply.str("token").to_owned(),
            reply.str("token_id").to_owned(),
        ));
    }
    assert_eq!(app.poll(&early[0].0).await.str("state"), "pre_queue");

    app.clock.advance(Duration::from_millis(3_200));
    let late = app.joined("early").await;

    let shown = app
        .request(Method::GET, "/api/events/early", None, None)
        .await;
    let seed = hex::decode(shown.str("prequeue_seed")).expect("a hex seed");
    assert_eq!(
        hex::encode(Sha256::digest(&seed)),
        commitment,
        "the revealed seed matches the commitment"
    );

    // Anyone can recompute the draw from the seed and the token ids.
    let mut expected: Vec<&(String, String)> = early.iter().collect();
    expected.sort_by_key(|(_, id)| {
        let mut h = Sha256::new();
        h.update(&seed);
        h.update(id.as_bytes());
        hex::encode(h.finalize())
    });
    eventually(
        Duration::from_secs(5),
        "the draw places the pre-queue",
        || async {
            let positions = join_all(expected.iter().map(|(token, _)| app.poll(token))).await;
            positions
                .iter()
                .zip(1..)
                .all(|(reply, place)| reply.body["position"] == place)
        },
    )
    .await;
    assert_eq!(
        app.poll(&late).await.u64("position"),
        9,
        "late joiners queue behind the whole pre-queue"
    );

    app.patch_event("early", json!({ "paused": false })).await;
    app.poll_until(&expected[0].0, "admitted", Duration::from_secs(3))
        .await;
    app.finish().await;
}
