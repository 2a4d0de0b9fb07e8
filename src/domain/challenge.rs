//! The proof-of-work join challenge: a join must carry a nonce that makes
//! `sha256(challenge ":" nonce)` start with the event's number of zero bits.
//!
//! A challenge is signed like tokens are (see [`Signer`]): the server keeps
//! nothing until one is used. It names its event, carries a random id (what
//! the store remembers once it has bought a place) and its expiry.

use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::event::InvalidField;
use super::{EventId, Signer};

/// How long a fetched challenge may be solved and used: long enough for a slow
/// phone at the highest sensible difficulty, short enough that a farm cannot
/// stockpile solutions before a sale.
pub const CHALLENGE_TTL_MS: i64 = 5 * 60 * 1000;
/// The longest nonce a join may send.
pub const MAX_NONCE_CHARS: usize = 64;
/// The highest difficulty: 2^32 hashes expected, far beyond what a person pays.
pub const MAX_BITS: u8 = 32;

const CHALLENGE_TAG: &str = "c1";

/// How many leading zero bits a solution's hash needs; 0 turns the challenge off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Difficulty(u8);

impl Difficulty {
    pub const OFF: Difficulty = Difficulty(0);

    pub fn parse(bits: u64) -> Result<Self, InvalidField> {
        u8::try_from(bits)
            .ok()
            .filter(|&b| b <= MAX_BITS)
            .map(Self)
            .ok_or_else(|| {
                InvalidField::new("join_challenge.bits", format!("must be 0 to {MAX_BITS}"))
            })
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn is_on(self) -> bool {
        self.0 > 0
    }

    /// Whether `nonce` solves `challenge` at this difficulty: one SHA-256.
    pub fn solved_by(self, challenge: &str, nonce: &str) -> bool {
        let digest = Sha256::new()
            .chain_update(challenge.as_bytes())
            .chain_update(b":")
            .chain_update(nonce.as_bytes())
            .finalize();
        leading_zero_bits(&digest) >= u32::from(self.0)
    }
}

impl fmt::Display for Difficulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bits", self.0)
    }
}

fn leading_zero_bits(digest: &[u8]) -> u32 {
    let mut zeros = 0;
    for byte in digest {
        zeros += byte.leading_zeros();
        if *byte != 0 {
            break;
        }
    }
    zeros
}

/// An issued challenge, as its signature vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub event: EventId,
    /// Random, hex: what the store remembers once the challenge has bought a place.
    pub id: String,
    pub expires_at_ms: i64,
}

impl Challenge {
    /// A fresh challenge for `event`, valid for [`CHALLENGE_TTL_MS`] from `now_ms`.
    pub fn issue(event: &EventId, random: [u8; 16], now_ms: i64) -> Self {
        Self {
            event: event.clone(),
            id: hex::encode(random),
            expires_at_ms: now_ms.saturating_add(CHALLENGE_TTL_MS),
        }
    }
}

/// A challenge that verified and was solved: one new place may be bought with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Solved {
    pub id: String,
    pub expires_at_ms: i64,
}

/// What a join brings to the door: the store decides with it whether the join
/// may take a new place (a visitor's live place is returned whatever it brings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ticket {
    /// The event asks for no challenge.
    NotAsked,
    /// The event asks for one and the join brought none that holds.
    Unsolved,
    /// A solved challenge, used up by the place it buys.
    Solved(Solved),
}

/// Why a join's challenge does not hold; each says so to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsolved {
    Missing,
    /// Malformed, tampered with, or signed by another deployment.
    Invalid,
    OtherEvent,
    Expired,
    /// Its hash lacks the event's zero bits (the difficulty may have risen
    /// since the challenge was fetched).
    NotSolved(Difficulty),
}

impl fmt::Display for Unsolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsolved::Missing => {
                f.write_str("this event asks for a solved challenge with each join")
            }
            Unsolved::Invalid => f.write_str("the challenge is malformed or was altered"),
            Unsolved::OtherEvent => f.write_str("the challenge was issued for another event"),
            Unsolved::Expired => f.write_str("the challenge has expired"),
            Unsolved::NotSolved(bits) => write!(
                f,
                "the nonce does not solve the challenge at the event's current difficulty, \
                 {bits} (it may have been raised since the challenge was fetched)"
            ),
        }
    }
}

/// Checks a join's `challenge` and `nonce` against its event at difficulty
/// `bits`: one HMAC and one SHA-256.
pub fn check(
    signer: &Signer,
    event: &EventId,
    bits: Difficulty,
    answer: Option<(&str, &str)>,
    now_ms: i64,
) -> Result<Solved, Unsolved> {
    let (raw, nonce) = answer.ok_or(Unsolved::Missing)?;
    let challenge = signer.verify_challenge(raw).ok_or(Unsolved::Invalid)?;
    if &challenge.event != event {
        return Err(Unsolved::OtherEvent);
    }
    if now_ms >= challenge.expires_at_ms {
        return Err(Unsolved::Expired);
    }
    if !bits.solved_by(raw, nonce) {
        return Err(Unsolved::NotSolved(bits));
    }
    Ok(Solved {
        id: challenge.id,
        expires_at_ms: challenge.expires_at_ms,
    })
}

impl Signer {
    pub fn sign_challenge(&self, challenge: &Challenge) -> String {
        self.seal(&format!(
            "{CHALLENGE_TAG}|{}|{}|{}",
            challenge.event, challenge.id, challenge.expires_at_ms
        ))
    }

    /// `None` for anything malformed, forged or signed by another deployment.
    pub fn verify_challenge(&self, raw: &str) -> Option<Challenge> {
        let payload = self.open(raw)?;
        let mut parts = payload.split('|');
        if parts.next()? != CHALLENGE_TAG {
            return None;
        }
        let challenge = Challenge {
            event: EventId::parse(parts.next()?).ok()?,
            id: parts.next()?.to_owned(),
            expires_at_ms: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(challenge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::token::tests::test_signer;

    const NOW_MS: i64 = 1_800_000_000_000;

    fn event(id: &str) -> EventId {
        EventId::parse(id).unwrap()
    }

    fn issued(signer: &Signer) -> String {
        signer.sign_challenge(&Challenge::issue(&event("rock"), [7; 16], NOW_MS))
    }

    /// The first nonce (as a decimal counter, as the page counts) that solves `challenge`.
    fn solve(challenge: &str, bits: Difficulty) -> String {
        (0u64..)
            .map(|n| n.to_string())
            .find(|nonce| bits.solved_by(challenge, nonce))
            .unwrap()
    }

    fn bits(n: u64) -> Difficulty {
        Difficulty::parse(n).unwrap()
    }

    #[test]
    fn difficulty_is_0_to_32_bits_and_names_its_field() {
        assert_eq!(bits(0), Difficulty::OFF);
        assert!(!Difficulty::OFF.is_on() && bits(1).is_on());
        assert_eq!(bits(32).bits(), 32);
        for out_of_range in [33, 256, u64::MAX] {
            assert_eq!(
                Difficulty::parse(out_of_range).unwrap_err().field,
                "join_challenge.bits"
            );
        }
    }

    #[test]
    fn zero_bits_are_counted_across_bytes_and_within_one() {
        assert_eq!(leading_zero_bits(&[0x80]), 0);
        assert_eq!(leading_zero_bits(&[0x00, 0x10]), 11);
        assert_eq!(leading_zero_bits(&[0x00, 0x00, 0x01]), 23);
        assert_eq!(leading_zero_bits(&[0x00; 4]), 32);
    }

    #[test]
    fn a_solution_has_at_least_the_bits_asked_for() {
        let challenge = "some challenge";
        // 12 bits: not a whole number of bytes.
        let nonce = solve(challenge, bits(12));
        let digest = Sha256::digest(format!("{challenge}:{nonce}"));
        assert!(leading_zero_bits(&digest) >= 12);
        assert!(
            digest[0] == 0 && digest[1] < 0x10,
            "{:x?}",
            digest.as_slice()
        );
        // Any nonce solves 0 bits; a random one almost never 32.
        assert!(Difficulty::OFF.solved_by(challenge, "anything"));
        assert!(!bits(32).solved_by(challenge, "anything"));
    }

    #[test]
    fn a_solved_challenge_verifies_for_its_event() {
        let signer = test_signer(b"secret", "ns");
        let challenge = issued(&signer);
        let nonce = solve(&challenge, bits(8));
        let solved = check(
            &signer,
            &event("rock"),
            bits(8),
            Some((&challenge, &nonce)),
            NOW_MS,
        )
        .unwrap();
        assert_eq!(solved.id, hex::encode([7; 16]));
        assert_eq!(solved.expires_at_ms, NOW_MS + CHALLENGE_TTL_MS);
    }

    #[test]
    fn every_way_a_challenge_fails_is_told_apart() {
        let signer = test_signer(b"secret", "ns");
        let challenge = issued(&signer);
        let nonce = solve(&challenge, bits(8));
        let rock = event("rock");
        let at = |bits, raw: &str, now| check(&signer, &rock, bits, Some((raw, &nonce)), now);

        assert_eq!(
            check(&signer, &rock, bits(8), None, NOW_MS),
            Err(Unsolved::Missing)
        );
        let mut tampered = challenge.clone().into_bytes();
        tampered[3] ^= 1;
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(at(bits(8), &tampered, NOW_MS), Err(Unsolved::Invalid));
        let elsewhere = test_signer(b"secret", "other-deployment");
        assert_eq!(
            check(
                &elsewhere,
                &rock,
                bits(8),
                Some((&challenge, &nonce)),
                NOW_MS
            ),
            Err(Unsolved::Invalid)
        );
        assert_eq!(
            check(
                &signer,
                &event("jazz"),
                bits(8),
                Some((&challenge, &nonce)),
                NOW_MS
            ),
            Err(Unsolved::OtherEvent)
        );
        assert_eq!(
            at(bits(8), &challenge, NOW_MS + CHALLENGE_TTL_MS),
            Err(Unsolved::Expired)
        );
        assert!(at(bits(8), &challenge, NOW_MS + CHALLENGE_TTL_MS - 1).is_ok());
        // Solved for 8 bits, asked 32 after a raise: refused at the new difficulty.
        assert_eq!(
            at(bits(32), &challenge, NOW_MS),
            Err(Unsolved::NotSolved(bits(32)))
        );
    }

    #[test]
    fn a_challenge_is_not_a_token() {
        let signer = test_signer(b"secret", "ns");
        let challenge = issued(&signer);
        assert_eq!(signer.verify_token(&challenge), None);
    }
}
