//! The join challenge, solved as a client must: a nonce that makes
//! sha256(challenge ":" nonce) start with `bits` zero bits (API.md, "Proof-of-work
//! join challenge"). The load generator pays what a person's browser pays.

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// A `428 challenge_required` body: the fresh challenge and the difficulty now.
#[derive(Debug, Deserialize)]
pub struct Asked {
    pub challenge: String,
    pub bits: u32,
}

/// The first nonce (a decimal counter) that solves `challenge` at `bits`.
/// CPU-bound: 2^bits hashes on average; run it off the async threads.
pub fn solve(challenge: &str, bits: u32) -> String {
    let prefix = Sha256::new()
        .chain_update(challenge.as_bytes())
        .chain_update(b":");
    (0u64..)
        .map(|n| n.to_string())
        .find(|nonce| {
            let digest = prefix.clone().chain_update(nonce.as_bytes()).finalize();
            leading_zero_bits(&digest) >= bits
        })
        .unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_solution_has_the_zero_bits_asked_for() {
        for bits in [0, 4, 12] {
            let nonce = solve("a challenge", bits);
            let digest = Sha256::digest(format!("a challenge:{nonce}"));
            assert!(leading_zero_bits(&digest) >= bits, "{bits}: {nonce}");
        }
    }
}
