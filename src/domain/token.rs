//! Server-signed queue tokens (and, in `challenge`, join challenges), and the
//! admission passes, which are JWTs (see `pass`).
//!
//! Tokens are `base64url(payload) "." base64url(hmac)`, verified locally on every
//! request: no database and no Redis round trip. The MAC also covers the
//! deployment's namespace, so a token from another deployment never verifies.
//! Tokens stay HMAC-signed: only this service ever reads them, and the MAC is
//! a fraction of a microsecond on the hottest route (the status poll).

use std::fmt::{self, Write as _};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;

use super::pass::Passes;
use super::{EventId, unix_ms};

type HmacSha256 = Hmac<Sha256>;

/// Whether a token joined before the sale opened (and takes part in the draw).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenKind {
    PreQueue,
    Regular,
}

/// A token's identity inside its event: its kind and its join sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenKey {
    pub kind: TokenKind,
    pub seq: u64,
}

impl TokenKey {
    pub fn regular(seq: u64) -> Self {
        Self {
            kind: TokenKind::Regular,
            seq,
        }
    }

    pub fn pre_queue(seq: u64) -> Self {
        Self {
            kind: TokenKind::PreQueue,
            seq,
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let kind = match raw.as_bytes().first()? {
            b'p' => TokenKind::PreQueue,
            b'r' => TokenKind::Regular,
            _ => return None,
        };
        let seq = raw[1..].parse().ok()?;
        Some(Self { kind, seq })
    }
}

impl fmt::Display for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.kind {
            TokenKind::PreQueue => 'p',
            TokenKind::Regular => 'r',
        };
        // Written on every poll (in the answer's log position): no format machinery.
        f.write_char(prefix)?;
        f.write_str(itoa::Buffer::new().format(self.seq))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueToken {
    pub event: EventId,
    pub key: TokenKey,
    pub token_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    pub event: EventId,
    pub key: TokenKey,
    pub token_id: Uuid,
    pub expires_at_ms: i64,
}

impl Pass {
    /// Whether the pass still admits its holder at `now_ms` (it ends at `expires_at_ms`).
    pub fn is_valid_at(&self, now_ms: i64) -> bool {
        now_ms < self.expires_at_ms
    }
}

/// Signs and verifies tokens with the deployment's secret, and passes with its key.
#[derive(Clone)]
pub struct Signer {
    keyed: HmacSha256,
    passes: Arc<Passes>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(..)")
    }
}

const TOKEN_TAG: &str = "q1";

impl Signer {
    pub fn new(secret: &[u8], namespace: &str, passes: Arc<Passes>) -> Self {
        let mut keyed =
            HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
        keyed.update(namespace.as_bytes());
        keyed.update(&[0]);
        Self { keyed, passes }
    }

    /// The pass keys: the signing key, and the keys passes verify with (the JWKS).
    pub fn passes(&self) -> &Arc<Passes> {
        &self.passes
    }

    pub fn sign_token(&self, token: &QueueToken) -> String {
        self.seal(&format!(
            "{TOKEN_TAG}|{}|{}|{}",
            token.event, token.key, token.token_id
        ))
    }

    /// The pass as a JWT signed at `now`.
    pub fn sign_pass(&self, pass: &Pass, now: OffsetDateTime) -> String {
        self.passes.sign(pass, unix_ms(now))
    }

    /// `None` for anything malformed, forged or signed by another deployment.
    pub fn verify_token(&self, raw: &str) -> Option<QueueToken> {
        let payload = self.open(raw)?;
        let mut parts = payload.split('|');
        if parts.next()? != TOKEN_TAG {
            return None;
        }
        let token = QueueToken {
            event: EventId::parse(parts.next()?).ok()?,
            key: TokenKey::parse(parts.next()?)?,
            token_id: Uuid::parse_str(parts.next()?).ok()?,
        };
        parts.next().is_none().then_some(token)
    }

    /// The pass, its signature checked with a trusted key; `None` for anything else.
    /// Whether it has ended, and whether it is for the event at hand, is the
    /// caller's to judge (order routes accept an ended pass).
    pub fn verify_pass(&self, raw: &str) -> Option<Pass> {
        self.passes.verify(raw)
    }

    pub(super) fn seal(&self, payload: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(payload.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{}.{}", B64.encode(payload), B64.encode(tag))
    }

    pub(super) fn open(&self, raw: &str) -> Option<String> {
        if raw.len() > 512 {
            return None;
        }
        let (payload, tag) = raw.split_once('.')?;
        let payload = B64.decode(payload).ok()?;
        let tag = B64.decode(tag).ok()?;
        let mut mac = self.keyed.clone();
        mac.update(&payload);
        mac.verify_slice(&tag).ok()?;
        String::from_utf8(payload).ok()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::pass::SigningKey;

    /// A deployment's signer: tokens under the secret, passes under the key derived from it.
    pub(crate) fn test_signer(secret: &[u8], namespace: &str) -> Signer {
        let passes = Passes::new(
            "https://anteroom.test",
            SigningKey::derive(secret, namespace),
        );
        Signer::new(secret, namespace, Arc::new(passes))
    }

    fn token() -> QueueToken {
        QueueToken {
            event: EventId::parse("ev-1").unwrap(),
            key: TokenKey::regular(42),
            token_id: Uuid::new_v4(),
        }
    }

    #[test]
    fn a_signed_token_verifies_to_itself() {
        let signer = test_signer(b"secret", "ns");
        let t = token();
        assert_eq!(signer.verify_token(&signer.sign_token(&t)), Some(t));
    }

    #[test]
    fn a_signed_pass_verifies_to_itself_and_is_not_a_token() {
        let signer = test_signer(b"secret", "ns");
        let t = token();
        let pass = Pass {
            event: t.event,
            key: TokenKey::pre_queue(7),
            token_id: t.token_id,
            expires_at_ms: 1_700_000_000_000,
        };
        let raw = signer.sign_pass(&pass, OffsetDateTime::UNIX_EPOCH);
        assert_eq!(signer.verify_pass(&raw), Some(pass));
        assert_eq!(signer.verify_token(&raw), None);
    }

    #[test]
    fn a_pass_ends_when_its_time_comes() {
        let pass = Pass {
            event: token().event,
            key: TokenKey::regular(1),
            token_id: Uuid::nil(),
            expires_at_ms: 2_000,
        };
        assert!(pass.is_valid_at(1_999));
        assert!(!pass.is_valid_at(2_000));
    }

    #[test]
    fn tokens_from_another_secret_or_namespace_are_rejected() {
        let raw = test_signer(b"secret", "ns").sign_token(&token());
        assert_eq!(test_signer(b"other", "ns").verify_token(&raw), None);
        assert_eq!(test_signer(b"secret", "other").verify_token(&raw), None);
    }

    #[test]
    fn tampered_and_malformed_tokens_are_rejected() {
        let signer = test_signer(b"secret", "ns");
        let raw = signer.sign_token(&token());
        let (payload, tag) = raw.split_once('.').unwrap();
        let forged_payload = B64.encode(
            String::from_utf8(B64.decode(payload).unwrap())
                .unwrap()
                .replace("|r42|", "|r1|"),
        );
        for bad in [
            format!("{forged_payload}.{tag}"),
            format!("{payload}.{}", B64.encode([0u8; 32])),
            payload.to_owned(),
            String::new(),
            "..".into(),
            "%%%.%%%".into(),
            "a".repeat(600),
        ] {
            assert_eq!(signer.verify_token(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn token_keys_round_trip() {
        for key in [
            TokenKey::regular(0),
            TokenKey::regular(u64::MAX),
            TokenKey::pre_queue(9),
        ] {
            assert_eq!(TokenKey::parse(&key.to_string()), Some(key));
        }
        for bad in ["", "x1", "r", "r-1", "p1.5"] {
            assert_eq!(TokenKey::parse(bad), None);
        }
    }

    use proptest::prelude::*;

    fn keys() -> impl Strategy<Value = TokenKey> {
        (any::<bool>(), any::<u64>()).prop_map(|(pre, seq)| {
            if pre {
                TokenKey::pre_queue(seq)
            } else {
                TokenKey::regular(seq)
            }
        })
    }

    fn tokens() -> impl Strategy<Value = QueueToken> {
        ("[a-z0-9-]{1,64}", keys(), any::<u128>()).prop_map(|(event, key, id)| QueueToken {
            event: EventId::parse(&event).unwrap(),
            key,
            token_id: Uuid::from_u128(id),
        })
    }

    /// Passes end on a whole second (a JWT's `exp` is in seconds), at or after 1970.
    fn passes() -> impl Strategy<Value = Pass> {
        (tokens(), 0..=i64::MAX / 1000).prop_map(|(t, expires_s)| Pass {
            event: t.event,
            key: t.key,
            token_id: t.token_id,
            expires_at_ms: expires_s * 1000,
        })
    }

    /// Payloads shaped like the signed ones, each field either well-formed or garbage.
    fn payloads() -> impl Strategy<Value = String> {
        let tag = prop_oneof![Just(TOKEN_TAG.to_owned()), "[a-z0-9]{0,3}"];
        let event = prop_oneof!["[a-z0-9-]{1,64}", ".{0,70}"];
        let key = prop_oneof![
            keys().prop_map(|k| k.to_string()),
            "[pr]?[+-]?[0-9]{0,22}",
            ".{0,4}"
        ];
        let id = prop_oneof![
            any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
            "[0-9a-fA-F{}-]{0,40}"
        ];
        let ms = prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            "[+-]?[0-9]{0,22}",
            ".{0,4}"
        ];
        let fields = prop::collection::vec(".{0,4}", 0..2);
        (tag, event, key, id, prop::option::of(ms), fields).prop_map(
            |(tag, event, key, id, ms, extra)| {
                let mut parts = vec![tag, event, key, id];
                parts.extend(ms);
                parts.extend(extra);
                parts.join("|")
            },
        )
    }

    /// Deployment secrets as configuration carries them: text, never a NUL (HMAC pads
    /// short keys with zeros, so `"k"` and `"k\0"` are the same key by design).
    fn secrets() -> impl Strategy<Value = String> {
        "[ -~]{1,80}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn token_key_parse_never_panics(raw in any::<String>(), shaped in "[pr]?[+-]?[0-9]{0,25}") {
            for raw in [raw, shaped] {
                if let Some(key) = TokenKey::parse(&raw) {
                    prop_assert_eq!(TokenKey::parse(&key.to_string()), Some(key));
                }
            }
        }

        #[test]
        fn token_keys_display_then_parse_to_themselves(key in keys()) {
            prop_assert_eq!(TokenKey::parse(&key.to_string()), Some(key));
        }

        #[test]
        fn verifying_arbitrary_text_never_panics(raw in any::<String>(), shaped in "[A-Za-z0-9_.=+/-]{0,600}") {
            let signer = test_signer(b"secret", "ns");
            for raw in [raw, shaped] {
                prop_assert_eq!(signer.verify_token(&raw), None);
                prop_assert_eq!(signer.verify_pass(&raw), None);
            }
        }

        /// Past the MAC, the payload parsers see every shape a signer could have
        /// sealed: none panics, whatever verifies signs back to itself, and no
        /// sealed payload is a pass.
        #[test]
        fn parsing_any_sealed_payload_never_panics(payload in payloads()) {
            let signer = test_signer(b"secret", "ns");
            let sealed = signer.seal(&payload);
            if let Some(token) = signer.verify_token(&sealed) {
                prop_assert_eq!(signer.verify_token(&signer.sign_token(&token)), Some(token));
            }
            prop_assert_eq!(signer.verify_pass(&sealed), None);
        }

        #[test]
        fn signed_tokens_and_passes_verify_to_themselves_and_only_as_their_kind(
            token in tokens(),
            pass in passes(),
            secret in secrets(),
            namespace in "[a-z0-9_]{0,20}",
        ) {
            let signer = test_signer(secret.as_bytes(), &namespace);
            let raw_token = signer.sign_token(&token);
            let raw_pass = signer.sign_pass(&pass, OffsetDateTime::UNIX_EPOCH);
            prop_assert_eq!(signer.verify_token(&raw_token), Some(token));
            prop_assert_eq!(signer.verify_pass(&raw_pass), Some(pass));
            prop_assert_eq!(signer.verify_pass(&raw_token), None);
            prop_assert_eq!(signer.verify_token(&raw_pass), None);
        }

        #[test]
        fn any_single_character_change_is_rejected(
            token in tokens(),
            pass in passes(),
            at in any::<prop::sample::Index>(),
            replacement in prop_oneof![
                prop::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=".to_vec())
                    .prop_map(char::from),
                any::<char>(),
            ],
        ) {
            let signer = test_signer(b"secret", "ns");
            for raw in [signer.sign_token(&token), signer.sign_pass(&pass, OffsetDateTime::UNIX_EPOCH)] {
                let mut chars: Vec<char> = raw.chars().collect();
                let i = at.index(chars.len());
                if chars[i] == replacement {
                    continue;
                }
                chars[i] = replacement;
                let forged: String = chars.into_iter().collect();
                prop_assert_eq!(signer.verify_token(&forged), None, "{} from {}", forged, raw);
                prop_assert_eq!(signer.verify_pass(&forged), None, "{} from {}", forged, raw);
            }
        }

        #[test]
        fn another_secret_or_namespace_verifies_nothing(
            token in tokens(),
            pass in passes(),
            (secret, other_secret) in (secrets(), secrets()),
            (namespace, other_namespace) in ("[a-z0-9_]{0,20}", "[a-z0-9_]{0,20}"),
        ) {
            let signer = test_signer(secret.as_bytes(), &namespace);
            let (raw_token, raw_pass) = (
                signer.sign_token(&token),
                signer.sign_pass(&pass, OffsetDateTime::UNIX_EPOCH),
            );
            let mut others = Vec::new();
            if other_secret != secret {
                others.push(test_signer(other_secret.as_bytes(), &namespace));
            }
            if other_namespace != namespace {
                others.push(test_signer(secret.as_bytes(), &other_namespace));
            }
            for other in others {
                prop_assert_eq!(other.verify_token(&raw_token), None);
                prop_assert_eq!(other.verify_pass(&raw_pass), None);
            }
        }
    }
}
