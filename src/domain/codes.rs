//! Invitation codes: who may join an invitation-only event's line.
//!
//! A code is shown to its fan once and never stored: the record keeps only a
//! keyed hash of it (HMAC-SHA256 with the deployment's secret), by which a join's
//! code is looked up. Without the secret, a copy of the record reveals no code
//! and lets nobody test guesses offline.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;

use super::EventId;
use super::event::InvalidField;

/// Who may join an event's line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Anyone.
    #[default]
    Open,
    /// Only a join that brings an invitation code issued for the event.
    Codes,
}

impl Access {
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        match raw {
            "open" => Ok(Self::Open),
            "codes" => Ok(Self::Codes),
            _ => Err(InvalidField::new("access", "must be \"open\" or \"codes\"")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Codes => "codes",
        }
    }
}

/// The most codes one request may generate.
pub const MAX_GENERATED: u64 = 1_000_000;
/// An imported code's length, dashes and spaces left out: short codes can be
/// guessed (six of 32 symbols are a billion; a million codes among them is one
/// guess in a thousand), long ones are not typed.
pub const MIN_CODE_CHARS: usize = 6;
pub const MAX_CODE_CHARS: usize = 64;

/// The symbols of generated codes: digits and capitals without the look-alikes
/// 0/O and 1/I, 32 of them, so that each carries 5 bits.
const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Random bytes per generated code: 80 bits, 16 symbols.
pub const CODE_RANDOM_BYTES: usize = 10;
/// Symbols per dash-separated group of a generated code.
const GROUP: usize = 4;

/// A code as it is compared: capitals, without the dashes and spaces people
/// type or leave out (`k7qm-2xpa` and `K7QM2XPA` are the same code).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InviteCode(String);

impl InviteCode {
    /// An operator's code (`field` names it in the refusal): letters and digits,
    /// grouped by dashes or spaces if they like, [`MIN_CODE_CHARS`] to
    /// [`MAX_CODE_CHARS`] of them.
    pub fn parse(raw: &str, field: &str) -> Result<Self, InvalidField> {
        if raw.chars().count() > MAX_CODE_CHARS * 2 {
            return Err(InvalidField::new(field, "is too long"));
        }
        let mut code = String::with_capacity(raw.len());
        for c in raw.chars() {
            match c {
                '-' | ' ' => {}
                c if c.is_ascii_alphanumeric() => code.push(c.to_ascii_uppercase()),
                _ => {
                    return Err(InvalidField::new(
                        field,
                        "may hold only letters A-Z, digits, dashes and spaces",
                    ));
                }
            }
        }
        if !(MIN_CODE_CHARS..=MAX_CODE_CHARS).contains(&code.len()) {
            return Err(InvalidField::new(
                field,
                format!(
                    "must have {MIN_CODE_CHARS} to {MAX_CODE_CHARS} letters and digits (dashes and spaces aside)"
                ),
            ));
        }
        Ok(Self(code))
    }

    /// A new code from `random` (80 bits): `K7QM-2XPA-9HTW-4RNB`.
    pub fn generate(random: [u8; CODE_RANDOM_BYTES]) -> String {
        let bits = random
            .iter()
            .fold(0u128, |acc, b| acc << 8 | u128::from(*b));
        let symbols = CODE_RANDOM_BYTES * 8 / 5;
        let mut code = String::with_capacity(symbols + symbols / GROUP);
        for i in 0..symbols {
            if i > 0 && i % GROUP == 0 {
                code.push('-');
            }
            let shift = (symbols - 1 - i) * 5;
            code.push(char::from(ALPHABET[(bits >> shift) as usize & 31]));
        }
        code
    }
}

impl fmt::Display for InviteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A code's keyed hash, as the record keeps it (the whole HMAC-SHA256, hex).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CodeHash(String);

impl CodeHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The identity a code's place is kept under in the line, in place of a
    /// visitor id: longer than any visitor id a client may send, so that no
    /// client can name it.
    pub fn place_key(&self) -> String {
        format!("code:{}", self.0)
    }
}

/// Hashes codes with the deployment's secret.
#[derive(Clone)]
pub struct CodeHasher {
    key: Hmac<Sha256>,
}

impl fmt::Debug for CodeHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeHasher(..)")
    }
}

impl CodeHasher {
    pub fn new(secret: &[u8]) -> Self {
        let key = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
        Self { key }
    }

    /// The hash of `code` for `event`: the same code of two events hashes apart.
    pub fn hash(&self, event: &EventId, code: &InviteCode) -> CodeHash {
        let digest = self
            .key
            .clone()
            .chain_update(b"invite-code:")
            .chain_update(event.as_str().as_bytes())
            .chain_update(b":")
            .chain_update(code.0.as_bytes())
            .finalize()
            .into_bytes();
        CodeHash(hex::encode(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_are_grouped_symbols_of_the_alphabet_that_read_back() {
        let code = InviteCode::generate([0xA5; CODE_RANDOM_BYTES]);
        assert_eq!(code.len(), 19, "{code}");
        let groups: Vec<&str> = code.split('-').collect();
        assert_eq!(groups.len(), 4, "{code}");
        assert!(groups.iter().all(|g| g.len() == 4));
        assert!(
            code.bytes().all(|b| b == b'-' || ALPHABET.contains(&b)),
            "{code}"
        );
        assert!(InviteCode::parse(&code, "code").is_ok());
    }

    #[test]
    fn every_random_bit_shows_in_the_code() {
        let zero = InviteCode::generate([0; CODE_RANDOM_BYTES]);
        assert_eq!(zero, "2222-2222-2222-2222");
        for byte in 0..CODE_RANDOM_BYTES {
            for bit in 0..8 {
                let mut random = [0; CODE_RANDOM_BYTES];
                random[byte] = 1 << bit;
                assert_ne!(InviteCode::generate(random), zero, "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn the_alphabet_has_no_look_alikes() {
        for confusable in [b'0', b'O', b'1', b'I'] {
            assert!(!ALPHABET.contains(&confusable));
        }
        let mut sorted = ALPHABET.to_vec();
        sorted.dedup();
        assert_eq!(sorted.len(), 32);
    }

    #[test]
    fn codes_compare_without_case_dashes_or_spaces() {
        let typed = InviteCode::parse("k7qm 2xpa-9htw", "code").unwrap();
        assert_eq!(typed, InviteCode::parse("K7QM2XPA9HTW", "code").unwrap());
        assert_eq!(typed.to_string(), "K7QM2XPA9HTW");
    }

    #[test]
    fn malformed_codes_are_refused_naming_the_field() {
        for bad in [
            "",
            "ABC12",
            "AB-C1-2",
            "K7QM_2XPA",
            "CAFÉ1234",
            &"A".repeat(65),
        ] {
            let refused = InviteCode::parse(bad, "codes[3]").unwrap_err();
            assert_eq!(refused.field, "codes[3]", "{bad:?}");
        }
        assert!(InviteCode::parse(&"A".repeat(64), "code").is_ok());
    }

    #[test]
    fn hashes_depend_on_the_secret_the_event_and_the_code() {
        let event = EventId::parse("rock").unwrap();
        let other_event = EventId::parse("pop").unwrap();
        let code = InviteCode::parse("K7QM-2XPA", "code").unwrap();
        let hasher = CodeHasher::new(b"secret");
        let hash = hasher.hash(&event, &code);
        assert_eq!(hash.as_str().len(), 64);
        assert_eq!(hash, hasher.hash(&event, &code));
        assert_ne!(hash, hasher.hash(&other_event, &code));
        assert_ne!(hash, CodeHasher::new(b"other").hash(&event, &code));
        assert_ne!(
            hash,
            hasher.hash(&event, &InviteCode::parse("K7QM-2XPB", "code").unwrap())
        );
    }

    #[test]
    fn a_code_place_key_is_longer_than_any_visitor_id() {
        let hash = CodeHasher::new(b"s").hash(
            &EventId::parse("e").unwrap(),
            &InviteCode::parse("ABCDEF", "code").unwrap(),
        );
        assert!(hash.place_key().chars().count() > crate::domain::line::MAX_VISITOR_CHARS);
    }

    #[test]
    fn access_reads_its_two_words_only() {
        assert_eq!(Access::parse("open"), Ok(Access::Open));
        assert_eq!(Access::parse("codes"), Ok(Access::Codes));
        assert_eq!(Access::parse("Codes").unwrap_err().field, "access");
    }
}
