//! The deployment's public pass keys as a JWKS (RFC 7517), so that any site or
//! app backend verifies a pass with a standard JWT library and nothing else.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;

/// How long a verifier may cache the set. A new key is published when an
/// instance starts with it, and signs at once: a verifier that meets an
/// unknown `kid` should fetch the set again (PyJWT's `PyJWKClient`, jose and
/// most others do); one that does not waits at most this long.
const CACHE_CONTROL: &str = "public, max-age=60";

/// A JSON Web Key Set: every public key that may have signed a pass still in use.
#[derive(Serialize, ToSchema)]
pub struct JwkSet {
    /// The key that signs new passes first
    keys: Vec<PublicJwk>,
}

/// A public key (RFC 7517): Ed25519 (`kty` OKP, `crv` Ed25519, `x`) or
/// P-256 (`kty` EC, `crv` P-256, `x`, `y`).
#[derive(Serialize, Deserialize, ToSchema)]
struct PublicJwk {
    #[schema(example = "OKP")]
    kty: String,
    #[schema(example = "Ed25519")]
    crv: String,
    /// The public key (base64url)
    x: String,
    /// P-256 only: the point's y coordinate (base64url)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    y: Option<String>,
    /// The key's RFC 7638 thumbprint (SHA-256): the `kid` of the passes it signs
    kid: String,
    #[schema(example = "EdDSA")]
    alg: String,
    #[serde(rename = "use")]
    #[schema(example = "sig")]
    key_use: String,
}

#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    operation_id = "getJwks",
    summary = "The public keys that verify admission passes (JWTs), for any JWT library",
    tag = "public",
    responses(
        (status = 200, description = "Every key that may have signed a pass still in use; \
            a key stays listed until every pass it signed has ended", body = JwkSet,
            headers(("Cache-Control" = String, description = "How long the set may be cached"))),
    )
)]
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    let keys = state
        .line
        .signer()
        .passes()
        .trusted()
        .iter()
        // Every trusted key is a JWK of this shape (domain::pass).
        .filter_map(|key| serde_json::from_value(key.to_value()).ok())
        .collect();
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        )],
        Json(JwkSet { keys }),
    )
}
