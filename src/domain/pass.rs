//! Admission passes as standard JWTs (RFC 7519, compact JWS), so that any JWT
//! library verifies one with nothing but the deployment's JWKS.
//!
//! Header: `alg` (`EdDSA`, or `ES256` for a P-256 key), `kid` (the key's RFC 7638
//! thumbprint), `typ: JWT`. Claims: `iss` (the deployment's public URL), `aud`
//! (the event id), `sub` (the token id), `iat` = `nbf` (when it was signed),
//! `exp` (the pass's end, rounded up to the whole second), and two claims of
//! the service's own: `exp_ms`, the same end to the millisecond, and `key`, the
//! place's token key (`r123`), naming the place in the fast store.
//!
//! `jsonwebtoken` does the JWS work; nothing outside this module knows it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use super::{EventId, Pass, TokenKey};

/// How far apart the clocks of the issuer and of a verifier may be. Anteroom's
/// own checks need none (the fast store decides whether a pass is still
/// admitted); it is the margin by which a key outlives its last pass in the
/// JWKS, so that a verifier whose clock is behind still finds it, and the
/// leeway a gate in front of another site should allow on `exp` and `nbf`.
pub const CLOCK_SKEW_LEEWAY: Duration = Duration::from_secs(60);

/// Longer than any pass this service signs (an `iss` of a few hundred
/// characters included): anything longer is refused before it is parsed.
const MAX_PASS_CHARS: usize = 2048;

/// The PKCS#8 v1 DER of an Ed25519 private key (RFC 8410, section 7) up to its
/// 32-byte seed, which follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Separates the derived signing key from every other use of the secret.
const DERIVATION_LABEL: &[u8] = b"anteroom pass signing key v1";

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error(
        "not a PEM private key in PKCS#8 form (-----BEGIN PRIVATE KEY-----) for Ed25519 or EC P-256 \
         (make one with `openssl genpkey -algorithm ed25519`)"
    )]
    NotAPrivateKey,
    #[error("not a public JWK of this service: {0}")]
    NotAPublicKey(&'static str),
}

/// A public key that may have signed passes: its JWK as the JWKS lists it
/// (`kid`, `alg`, `use: sig`) and the verifier's form of it, parsed once.
#[derive(Clone)]
pub struct PublicKey {
    jwk: Jwk,
    kid: String,
    algorithm: Algorithm,
    decoding: DecodingKey,
    /// What a pass signed with it must show besides its signature (see `Passes::verify`).
    validation: Validation,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({:?}, {})", self.algorithm, self.kid)
    }
}

impl PublicKey {
    /// The key of `jwk`, named by its thumbprint and marked for signatures with `algorithm`.
    fn new(mut jwk: Jwk, algorithm: Algorithm) -> Result<Self, KeyError> {
        let bad = KeyError::NotAPublicKey;
        match (&jwk.algorithm, algorithm) {
            (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA)
                if p.curve == EllipticCurve::Ed25519 => {}
            (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256)
                if p.curve == EllipticCurve::P256 => {}
            _ => {
                return Err(bad(
                    "only Ed25519 (EdDSA) and P-256 (ES256) keys sign passes",
                ));
            }
        }
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| bad("no thumbprint"))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(match algorithm {
            Algorithm::ES256 => KeyAlgorithm::ES256,
            _ => KeyAlgorithm::EdDSA,
        });
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| bad("not a usable key"))?;
        let mut validation = Validation::new(algorithm);
        // Whether a pass has ended, and for which event it counts, is for the route to
        // judge (order routes accept ended passes, API.md); nbf is the signing instant
        // of a pass this deployment signed itself, so checking it here could only
        // refuse a genuine pass across two instances' clock skew.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        Ok(Self {
            jwk,
            kid,
            algorithm,
            decoding,
            validation,
        })
    }

    /// A key as [`Self::to_json`] wrote it; its `kid` must be its thumbprint.
    pub fn from_json(json: &str) -> Result<Self, KeyError> {
        let jwk: Jwk =
            serde_json::from_str(json).map_err(|_| KeyError::NotAPublicKey("not a JWK"))?;
        let algorithm = match jwk.common.key_algorithm {
            Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
            Some(KeyAlgorithm::ES256) => Algorithm::ES256,
            _ => return Err(KeyError::NotAPublicKey("alg is not EdDSA or ES256")),
        };
        let stated = jwk.common.key_id.clone();
        let key = Self::new(jwk, algorithm)?;
        if stated.as_deref() != Some(key.kid()) {
            return Err(KeyError::NotAPublicKey("kid is not the key's thumbprint"));
        }
        Ok(key)
    }

    /// The JWK (RFC 7517) as JSON text.
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }

    /// The JWK (RFC 7517), as the JWKS lists it.
    pub fn to_value(&self) -> serde_json::Value {
        // A JWK of strings and enums: serializing it cannot fail.
        serde_json::to_value(&self.jwk).unwrap_or_default()
    }

    /// Its RFC 7638 thumbprint (SHA-256, base64url), the `kid` of the passes it signs.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// The private key that signs passes, parsed once.
#[derive(Clone)]
pub struct SigningKey {
    encoding: EncodingKey,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.public.kid)
    }
}

impl SigningKey {
    /// The Ed25519 key a deployment without `ANTEROOM_SIGNING_KEY` signs with: the
    /// same for every instance that shares the secret and the namespace (as queue
    /// tokens are), so that existing deployments need no new setting. The seed is
    /// HMAC-SHA256 of a label under the secret: knowing the key tells nothing of
    /// the secret, which also signs queue tokens.
    pub fn derive(secret: &[u8], namespace: &str) -> Self {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
        mac.update(DERIVATION_LABEL);
        mac.update(&[0]);
        mac.update(namespace.as_bytes());
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&mac.finalize().into_bytes());
        Self::new(EncodingKey::from_ed_der(&der), Algorithm::EdDSA)
            .expect("any 32-byte seed is an Ed25519 key")
    }

    /// A PKCS#8 PEM private key: Ed25519 (signs EdDSA) or EC P-256 (signs ES256).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let pem = pem.as_bytes();
        if let Ok(encoding) = EncodingKey::from_ed_pem(pem) {
            return Self::new(encoding, Algorithm::EdDSA);
        }
        let encoding = EncodingKey::from_ec_pem(pem).map_err(|_| KeyError::NotAPrivateKey)?;
        Self::new(encoding, Algorithm::ES256)
    }

    /// Checks the key by signing with it and verifying with its public half,
    /// so that a key which cannot sign is refused at start-up, not at the first pass.
    fn new(encoding: EncodingKey, algorithm: Algorithm) -> Result<Self, KeyError> {
        let jwk =
            Jwk::from_encoding_key(&encoding, algorithm).map_err(|_| KeyError::NotAPrivateKey)?;
        let public = PublicKey::new(jwk, algorithm).map_err(|_| KeyError::NotAPrivateKey)?;
        let key = Self { encoding, public };
        let probe = Pass {
            event: EventId::parse("probe").map_err(|_| KeyError::NotAPrivateKey)?,
            key: TokenKey::regular(0),
            token_id: Uuid::nil(),
            expires_at_ms: 0,
        };
        let trusted = Trusted::of([key.public.clone()]);
        let signed = key
            .try_sign(&probe, "probe", 0)
            .ok_or(KeyError::NotAPrivateKey)?;
        trusted
            .verify(&signed)
            .filter(|verified| *verified == probe)
            .ok_or(KeyError::NotAPrivateKey)?;
        Ok(key)
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    fn try_sign(&self, pass: &Pass, issuer: &str, now_ms: i64) -> Option<String> {
        let signed_at = now_ms.div_euclid(1000);
        let claims = Claims {
            iss: issuer.to_owned(),
            aud: pass.event.to_string(),
            sub: pass.token_id,
            iat: signed_at,
            nbf: signed_at,
            // NumericDate in whole seconds (what every library reads), never before the pass's end.
            exp: pass.expires_at_ms.div_euclid(1000)
                + i64::from(pass.expires_at_ms.rem_euclid(1000) != 0),
            exp_ms: Some(pass.expires_at_ms),
            key: pass.key.to_string(),
        };
        let mut header = Header::new(self.public.algorithm);
        header.kid = Some(self.public.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).ok()
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: Uuid,
    iat: i64,
    nbf: i64,
    exp: i64,
    /// The pass's end to the millisecond, as the line has it: the store decides
    /// by the pass's issue time (its end less its lifetime) whether a pass came
    /// before a restore, and a whole second's doubt would refuse one issued
    /// within a second before it. Absent from passes signed before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp_ms: Option<i64>,
    key: String,
}

impl Claims {
    /// The pass's end: `exp_ms` where it falls within the second `exp` rounds
    /// it up to, else `exp`. `exp` is what every other verifier enforces, so
    /// the end Anteroom reads is never later than it.
    fn expires_at_ms(&self) -> Option<i64> {
        let rounded = self.exp.checked_mul(1000)?;
        Some(
            self.exp_ms
                .filter(|&ms| ms <= rounded && ms > rounded - 1000)
                .unwrap_or(rounded),
        )
    }
}

/// Passes remembered as verified in one generation: a pass is about 400
/// bytes, so two generations are some 40 MB when full.
const PASSES_PER_GENERATION: usize = 50_000;

/// The keys passes are verified with, by `kid`, and the passes they have
/// verified. A gate sees a visitor's pass on every request of theirs, and a
/// signature check costs tens of microseconds; a remembered pass is a lookup
/// by its whole text. The memory goes with the keys: a new set of keys starts
/// with none.
struct Trusted {
    keys: HashMap<String, PublicKey>,
    verified: RwLock<Remembered>,
}

/// The latest passes verified or signed, in two generations: when the current
/// one is full it becomes the previous one, and the previous one is forgotten,
/// so that the last generation's worth is always remembered (a buyer admitted
/// just before the memory filled still holds without a signature check).
#[derive(Default)]
struct Remembered {
    current: HashMap<String, Pass>,
    previous: HashMap<String, Pass>,
}

impl Remembered {
    fn get(&self, raw: &str) -> Option<&Pass> {
        self.current.get(raw).or_else(|| self.previous.get(raw))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

impl Trusted {
    fn of(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        Self {
            keys: keys.into_iter().map(|k| (k.kid.clone(), k)).collect(),
            verified: RwLock::default(),
        }
    }

    /// The same keys (a `kid` names its key: it is the key's thumbprint).
    fn same_keys(&self, other: &Self) -> bool {
        self.keys.len() == other.keys.len()
            && self.keys.keys().all(|kid| other.keys.contains_key(kid))
    }

    fn verify(&self, raw: &str) -> Option<Pass> {
        if raw.len() > MAX_PASS_CHARS {
            return None;
        }
        let remembered = self
            .verified
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(raw)
            .cloned();
        if remembered.is_some() {
            return remembered;
        }
        let pass = self.check_signature(raw)?;
        self.remember(raw.to_owned(), pass.clone());
        Some(pass)
    }

    /// `raw` verifies to `pass` from now on without its signature being checked.
    fn remember(&self, raw: String, pass: Pass) {
        let mut verified = self.verified.write().unwrap_or_else(|p| p.into_inner());
        // Full: a new generation, and the oldest freed after the lock is let go.
        let forgotten = (verified.current.len() >= PASSES_PER_GENERATION).then(|| {
            let full = std::mem::take(&mut verified.current);
            std::mem::replace(&mut verified.previous, full)
        });
        verified.current.insert(raw, pass);
        drop(verified);
        drop(forgotten);
    }

    fn check_signature(&self, raw: &str) -> Option<Pass> {
        let kid = jsonwebtoken::decode_header(raw).ok()?.kid?;
        let key = self.keys.get(&kid)?;
        let claims = jsonwebtoken::decode::<Claims>(raw, &key.decoding, &key.validation)
            .ok()?
            .claims;
        Some(Pass {
            event: EventId::parse(&claims.aud).ok()?,
            key: TokenKey::parse(&claims.key)?,
            token_id: claims.sub,
            expires_at_ms: claims.expires_at_ms()?,
        })
    }
}

/// Signs passes with the deployment's key and verifies them with every key
/// that may have signed one still in use (rotation, see `services::pass_keys`).
pub struct Passes {
    issuer: String,
    signing: SigningKey,
    /// Replaced whole by [`Self::trust`]; a verification reads one snapshot.
    trusted: RwLock<Arc<Trusted>>,
}

impl fmt::Debug for Passes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Passes({}, {:?})", self.issuer, self.signing)
    }
}

impl Passes {
    /// Passes issued by `issuer` (the `iss` claim), signed with `signing`.
    pub fn new(issuer: impl Into<String>, signing: SigningKey) -> Self {
        let trusted = Trusted::of([signing.public.clone()]);
        Self {
            issuer: issuer.into(),
            signing,
            trusted: RwLock::new(Arc::new(trusted)),
        }
    }

    pub fn signing_key(&self) -> &PublicKey {
        self.signing.public()
    }

    /// The pass as a JWT signed at `now_ms`. It is remembered as verified: the
    /// buyer's first hold, usually on the instance that answered the poll, then
    /// costs no signature check (Ed25519's is a large part of a hold's work).
    pub fn sign(&self, pass: &Pass, now_ms: i64) -> String {
        let raw = self
            .signing
            .try_sign(pass, &self.issuer, now_ms)
            .expect("the signing key signed a probe when it was loaded");
        // JWT times are unsigned: before 1970 the signature check would refuse
        // what the memory would accept.
        if now_ms >= 0 && pass.expires_at_ms >= 0 {
            self.snapshot().remember(raw.clone(), pass.clone());
        }
        raw
    }

    /// The trusted keys and their memory as they are now; a reader never holds
    /// the lock that [`Self::trust`] replaces them under.
    fn snapshot(&self) -> Arc<Trusted> {
        self.trusted
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `None` for anything malformed, forged or signed by a key not trusted
    /// (any more). The `iss` is not compared: the key already names the
    /// deployment, and its instances may each be reached at their own address. Whether the pass has ended, and
    /// whether it is for the event at hand, is the caller's to judge.
    pub fn verify(&self, raw: &str) -> Option<Pass> {
        self.snapshot().verify(raw)
    }

    /// From now on, passes verify with `keys` and the signing key, and no others.
    pub fn trust(&self, keys: impl IntoIterator<Item = PublicKey>) {
        let trusted = Trusted::of(std::iter::once(self.signing.public.clone()).chain(keys));
        let mut current = self.trusted.write().unwrap_or_else(|p| p.into_inner());
        // Read again every few seconds: the same keys keep the passes they verified.
        if !current.same_keys(&trusted) {
            *current = Arc::new(trusted);
        }
    }

    /// The keys passes verify with, the signing key first, then by `kid`: the JWKS.
    pub fn trusted(&self) -> Vec<PublicKey> {
        let trusted = self.snapshot();
        let mut others: Vec<PublicKey> = trusted
            .keys
            .values()
            .filter(|k| k.kid != self.signing.public.kid)
            .cloned()
            .collect();
        others.sort_by(|a, b| a.kid.cmp(&b.kid));
        std::iter::once(self.signing.public.clone())
            .chain(others)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use serde_json::{Value, json};

    use super::*;

    /// `openssl genpkey -algorithm ed25519`; its public key and RFC 7638
    /// thumbprint computed with openssl (`pkey -pubout`, `dgst -sha256`).
    const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIMapFDBrmLRII0EZicxNFbG861RmcW8NcfYWOI6xRiUD
-----END PRIVATE KEY-----
";
    const ED25519_X: &str = "m-XDZEGYTDZgtFtYiBpA39i_3aWjZBRgB-8RGeCterY";
    const ED25519_KID: &str = "L4qhqvNwEcvLmlR0ODBo8XKsWtNfZge6IVH4udCPQF0";
    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`
    const P256_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgd04fsSFJZVw1g5b7
axJ8nlyssuejOGhIvVxPhT3iRbuhRANCAAQv3kw+gx957Y1yE/tE9I7G7d5yW8bs
W9palFc/k6ehb08UAgXoWIIjaqBVYenu/laRpDDgNgA4bB5qc1VG+E9D
-----END PRIVATE KEY-----
";
    /// A P-384 key: EC, but not a curve passes are signed on.
    const P384_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDA1C3+RKlIaNCUDX1rz
1YBzJRxw7jaQbMGOWo/n1TPyFYUi7zv6jKDgFx+OkWswI1KhZANiAAQyhvCYfdCf
2gNn0GfWO+yxVs+Alddc9CIHP4bv2fJUZBsJ37RuHAI65kRXv8+jYRg4YQXdBZdZ
nH+cqxtYMY6mXB0bzbZTgQFSlPgB04Qz9T25TsQclkznoGEDisKtkUw=
-----END PRIVATE KEY-----
";
    const ISSUER: &str = "https://tickets.example";
    const NOW_MS: i64 = 1_800_000_000_250;

    fn pass() -> Pass {
        Pass {
            event: EventId::parse("rock-2027").unwrap(),
            key: TokenKey::regular(123),
            token_id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            expires_at_ms: NOW_MS + 600_000,
        }
    }

    fn passes(key: SigningKey) -> Passes {
        Passes::new(ISSUER, key)
    }

    fn derived() -> SigningKey {
        SigningKey::derive(b"secret", "ns")
    }

    /// The JSON of a JWT's `part` (0: header, 1: claims).
    fn part(raw: &str, part: usize) -> Value {
        let segment = raw.split('.').nth(part).unwrap();
        serde_json::from_slice(&B64.decode(segment).unwrap()).unwrap()
    }

    /// A JWT of `header` and `claims`, signed by `key`.
    fn forge(header: &Value, claims: &Value, key: &SigningKey) -> String {
        let header: Header = serde_json::from_value(header.clone()).unwrap();
        jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
    }

    #[test]
    fn a_pass_is_a_jwt_with_the_standard_claims() {
        let passes = passes(derived());
        let raw = passes.sign(&pass(), NOW_MS);
        let header = part(&raw, 0);
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["kid"], passes.signing_key().kid());
        let signed_at = NOW_MS / 1000;
        assert_eq!(
            part(&raw, 1),
            json!({
                "iss": ISSUER,
                "aud": "rock-2027",
                "sub": "01234567-89ab-cdef-0123-456789abcdef",
                "iat": signed_at,
                "nbf": signed_at,
                // 600.25 s from now, rounded up to the second.
                "exp": signed_at + 601,
                "exp_ms": NOW_MS + 600_000,
                "key": "r123",
            })
        );
    }

    #[test]
    fn a_signed_pass_verifies_to_itself_to_the_millisecond() {
        let passes = passes(derived());
        assert_eq!(passes.verify(&passes.sign(&pass(), NOW_MS)), Some(pass()));
        let on_the_second = Pass {
            expires_at_ms: 1_800_000_600_000,
            ..pass()
        };
        assert_eq!(
            passes.verify(&passes.sign(&on_the_second, NOW_MS)),
            Some(on_the_second)
        );
    }

    #[test]
    fn without_a_consistent_exp_ms_a_pass_ends_on_its_exp() {
        let key = derived();
        let passes = passes(key.clone());
        let raw = passes.sign(&pass(), NOW_MS);
        let (header, mut claims) = (part(&raw, 0), part(&raw, 1));
        let on_exp = Some(Pass {
            expires_at_ms: (NOW_MS / 1000 + 601) * 1000,
            ..pass()
        });
        claims.as_object_mut().unwrap().remove("exp_ms");
        assert_eq!(passes.verify(&forge(&header, &claims, &key)), on_exp);
        // An exp_ms outside the second exp rounds up to is not the same pass's end.
        claims["exp_ms"] = json!(NOW_MS + 900_000);
        assert_eq!(passes.verify(&forge(&header, &claims, &key)), on_exp);
    }

    #[test]
    fn an_ended_pass_still_verifies_its_end_is_for_the_route() {
        let passes = passes(derived());
        let ended = Pass {
            expires_at_ms: 1_000,
            ..pass()
        };
        let verified = passes.verify(&passes.sign(&ended, NOW_MS)).unwrap();
        assert!(!verified.is_valid_at(NOW_MS));
    }

    #[test]
    fn an_untrusted_key_verifies_nothing_whatever_the_instances_address() {
        let home = passes(derived());
        let raw = home.sign(&pass(), NOW_MS);
        // Another instance of the deployment, reached at its own address.
        assert_eq!(
            Passes::new("http://127.0.0.1:8081", derived()).verify(&raw),
            home.verify(&raw)
        );
        assert!(home.verify(&raw).is_some());
        assert_eq!(
            passes(SigningKey::derive(b"other", "ns")).verify(&raw),
            None
        );
        assert_eq!(
            passes(SigningKey::derive(b"secret", "other")).verify(&raw),
            None
        );
    }

    #[test]
    fn forged_altered_and_confused_passes_are_refused() {
        let key = derived();
        let passes = passes(key.clone());
        let raw = passes.sign(&pass(), NOW_MS);
        let (header, claims) = (part(&raw, 0), part(&raw, 1));
        let segments: Vec<&str> = raw.split('.').collect();
        // Another event in the claims, under the original signature.
        let mut other_event = claims.clone();
        other_event["aud"] = json!("other-event");
        let altered = format!(
            "{}.{}.{}",
            segments[0],
            B64.encode(other_event.to_string()),
            segments[2]
        );
        // The public key used as an HMAC secret (algorithm confusion).
        let x = key.public.to_value()["x"].as_str().unwrap().to_owned();
        let hs256 = jsonwebtoken::encode(
            &Header {
                kid: Some(key.public.kid.clone()),
                ..Header::new(Algorithm::HS256)
            },
            &claims,
            &EncodingKey::from_secret(x.as_bytes()).unwrap(),
        )
        .unwrap();
        let unsigned = format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), segments[1]);
        let mut no_kid = header.clone();
        no_kid.as_object_mut().unwrap().remove("kid");
        let mut no_issuer = claims.clone();
        no_issuer.as_object_mut().unwrap().remove("iss");
        let mut no_key = claims.clone();
        no_key.as_object_mut().unwrap().remove("key");
        let mut bad_audience = claims.clone();
        bad_audience["aud"] = json!("Not An Event");
        for bad in [
            altered,
            hs256,
            unsigned,
            forge(&no_kid, &claims, &key),
            forge(&header, &no_issuer, &key),
            forge(&header, &no_key, &key),
            forge(&header, &bad_audience, &key),
            raw[..raw.len() - 2].to_owned(),
            String::new(),
            "a.b.c".into(),
            format!("{raw}{}", "A".repeat(MAX_PASS_CHARS)),
        ] {
            assert_eq!(passes.verify(&bad), None, "{bad}");
        }
        assert_eq!(
            passes.verify(&forge(&header, &claims, &key)),
            passes.verify(&raw),
            "the forging helper signs as the service does"
        );
    }

    #[test]
    fn the_derived_key_is_stable_and_its_kid_is_its_thumbprint() {
        let key = derived();
        assert_eq!(
            key.public().kid(),
            SigningKey::derive(b"secret", "ns").public().kid()
        );
        assert_ne!(
            key.public().kid(),
            SigningKey::derive(b"secret", "ns2").public().kid()
        );
        // Fixed here: a change would end every pass of every deployment that derives its key.
        assert_eq!(
            key.public().kid(),
            "UXIFJMpRgDsAuHvDRyZgvJHrXrbsDGifj9Ga0quakw8"
        );
    }

    #[test]
    fn a_pem_key_is_named_by_its_rfc_7638_thumbprint() {
        let key = SigningKey::from_pem(ED25519_PEM).unwrap();
        assert_eq!(key.public().kid(), ED25519_KID);
        assert_eq!(
            key.public().to_value(),
            json!({"kty": "OKP", "crv": "Ed25519", "x": ED25519_X, "kid": ED25519_KID, "alg": "EdDSA", "use": "sig"})
        );
    }

    #[test]
    fn a_p256_key_signs_es256_passes() {
        let key = SigningKey::from_pem(P256_PEM).unwrap();
        let jwk = key.public().to_value();
        assert_eq!(
            (&jwk["kty"], &jwk["crv"], &jwk["alg"]),
            (&json!("EC"), &json!("P-256"), &json!("ES256"))
        );
        let passes = passes(key);
        let raw = passes.sign(&pass(), NOW_MS);
        assert_eq!(part(&raw, 0)["alg"], "ES256");
        assert_eq!(
            passes.verify(&raw).map(|p| p.key),
            Some(TokenKey::regular(123))
        );
    }

    #[test]
    fn what_is_not_an_ed25519_or_p256_private_key_is_refused() {
        let public_pem = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAm+XDZEGYTDZgtFtYiBpA39i/3aWjZBRgB+8RGeCterY=
-----END PUBLIC KEY-----
";
        for bad in [
            "",
            "not a key",
            P384_PEM,
            public_pem,
            &ED25519_PEM.replace('M', "N"),
        ] {
            assert_eq!(
                SigningKey::from_pem(bad).map(|_| ()),
                Err(KeyError::NotAPrivateKey),
                "{bad}"
            );
        }
    }

    #[test]
    fn public_keys_round_trip_through_their_json_and_a_wrong_kid_is_refused() {
        for key in [derived(), SigningKey::from_pem(P256_PEM).unwrap()] {
            let json = key.public().to_json();
            assert_eq!(
                PublicKey::from_json(&json).unwrap().kid(),
                key.public().kid()
            );
            let mut renamed = key.public().to_value();
            renamed["kid"] = json!("someone-else");
            assert!(PublicKey::from_json(&renamed.to_string()).is_err());
        }
        assert!(PublicKey::from_json("{}").is_err());
    }

    #[test]
    fn rotation_signs_with_the_new_key_and_verifies_the_trusted_old_one() {
        let old = derived();
        let new = SigningKey::from_pem(ED25519_PEM).unwrap();
        let old_pass = passes(old.clone()).sign(&pass(), NOW_MS);
        let passes = passes(new.clone());
        assert_eq!(passes.verify(&old_pass), None, "not trusted yet");
        passes.trust([old.public().clone()]);
        assert!(passes.verify(&old_pass).is_some());
        // The same keys read again (every few seconds): the remembered pass still verifies.
        passes.trust([old.public().clone()]);
        assert!(passes.verify(&old_pass).is_some());
        assert_eq!(part(&passes.sign(&pass(), NOW_MS), 0)["kid"], ED25519_KID);
        let listed: Vec<String> = passes
            .trusted()
            .iter()
            .map(|k| k.kid().to_owned())
            .collect();
        assert_eq!(listed, [new.public().kid(), old.public().kid()]);
        // Trusting a new set drops the old key, never the signing one, and
        // forgets the passes the old set verified.
        passes.trust([]);
        assert_eq!(passes.verify(&old_pass), None);
        let listed: Vec<String> = passes
            .trusted()
            .iter()
            .map(|k| k.kid().to_owned())
            .collect();
        assert_eq!(listed, [new.public().kid()]);
    }

    #[test]
    fn a_pass_this_instance_signed_verifies_from_memory_as_itself() {
        let passes = passes(derived());
        let remembered = || passes.snapshot().verified.read().unwrap().len();
        let raw = passes.sign(&pass(), NOW_MS);
        assert_eq!(remembered(), 1, "remembered when signed");
        assert_eq!(passes.verify(&raw), Some(pass()));
        assert_eq!(
            remembered(),
            1,
            "verified from memory, not remembered again"
        );
        // What it remembers is what the signature check would give.
        assert_eq!(passes.snapshot().check_signature(&raw), Some(pass()));
    }

    #[test]
    fn the_memory_keeps_the_last_generation_of_passes_when_it_fills() {
        let trusted = Trusted::of([derived().public().clone()]);
        let nth = |n: usize| Pass {
            expires_at_ms: NOW_MS + n as i64,
            ..pass()
        };
        for n in 0..=PASSES_PER_GENERATION * 2 {
            trusted.remember(format!("pass {n}"), nth(n));
        }
        let verified = trusted.verified.read().unwrap();
        assert_eq!(verified.len(), PASSES_PER_GENERATION + 1);
        assert!(
            verified.get("pass 0").is_none(),
            "the oldest generation is forgotten"
        );
        for n in [
            PASSES_PER_GENERATION,
            PASSES_PER_GENERATION * 2 - 1,
            PASSES_PER_GENERATION * 2,
        ] {
            assert_eq!(verified.get(&format!("pass {n}")), Some(&nth(n)), "{n}");
        }
    }
}
