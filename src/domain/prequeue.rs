//! The verifiable pre-queue draw: arriving early buys a fair draw, not a head start.
//!
//! The seed is committed (its SHA-256 published) when the event is created and
//! revealed when the sale opens; tokens are ordered by ascending
//! `sha256(seed || token_id)`, so anyone can recompute the order.

use sha2::{Digest, Sha256};
use uuid::Uuid;

pub fn commitment(seed: &[u8; 32]) -> String {
    hex::encode(Sha256::digest(seed))
}

pub fn draw_key(seed: &[u8; 32], token_id: &Uuid) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed);
    h.update(token_id.to_string().as_bytes());
    h.finalize().into()
}

/// Sorts entries into draw order; lowercase hex compares exactly as the bytes do.
pub fn draw_order<T>(seed: &[u8; 32], entries: &mut [T], token_id: impl Fn(&T) -> Uuid) {
    entries.sort_by_cached_key(|e| draw_key(seed, &token_id(e)));
}

/// A draw as stored: each rank as a little-endian `u32`, indexed by pre-queue sequence number.
pub fn draw_to_bytes(draw: &[u32]) -> Vec<u8> {
    draw.iter().flat_map(|rank| rank.to_le_bytes()).collect()
}

pub fn draw_from_bytes(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draw_round_trips_through_its_stored_bytes() {
        let draw = vec![0, 1, 70_000, u32::MAX];
        assert_eq!(draw_from_bytes(&draw_to_bytes(&draw)), draw);
        assert_eq!(draw_from_bytes(&[]), Vec::<u32>::new());
    }

    #[test]
    fn the_commitment_is_the_hex_sha256_of_the_seed() {
        assert_eq!(
            commitment(&[0; 32]),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
    }

    #[test]
    fn the_draw_orders_by_ascending_hex_hash_of_seed_and_token_id() {
        let seed = [7u8; 32];
        let mut ids: Vec<Uuid> = (0..200).map(|_| Uuid::new_v4()).collect();
        draw_order(&seed, &mut ids, |id| *id);
        let hexes: Vec<String> = ids
            .iter()
            .map(|id| {
                let mut bytes = seed.to_vec();
                bytes.extend_from_slice(id.to_string().as_bytes());
                hex::encode(Sha256::digest(&bytes))
            })
            .collect();
        assert!(hexes.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn the_draw_does_not_follow_arrival_order() {
        let seed = [1u8; 32];
        let arrivals: Vec<Uuid> = (0..100).map(|_| Uuid::new_v4()).collect();
        let mut drawn = arrivals.clone();
        draw_order(&seed, &mut drawn, |id| *id);
        assert_ne!(arrivals, drawn);
    }

    use proptest::prelude::*;

    /// Pre-queue entrants as the admission worker draws them: `(seq, token id)`,
    /// token ids distinct, in an arbitrary arrival order.
    fn entrants() -> impl Strategy<Value = Vec<(u64, Uuid)>> {
        prop::collection::hash_set(any::<u128>(), 0..60).prop_map(|ids| {
            ids.into_iter()
                .enumerate()
                .map(|(i, id)| (i as u64 + 1, Uuid::from_u128(id)))
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn the_draw_is_a_permutation_in_ascending_key_order(seed in any::<[u8; 32]>(), entrants in entrants()) {
            let mut drawn = entrants.clone();
            draw_order(&seed, &mut drawn, |e| e.1);
            let mut sorted_in = entrants.clone();
            let mut sorted_out = drawn.clone();
            sorted_in.sort();
            sorted_out.sort();
            prop_assert_eq!(sorted_in, sorted_out);
            let keys: Vec<[u8; 32]> = drawn.iter().map(|e| draw_key(&seed, &e.1)).collect();
            prop_assert!(keys.windows(2).all(|w| w[0] < w[1]));
        }

        /// The same seed and entrants give the same order whatever order they arrived in.
        #[test]
        fn the_draw_depends_on_the_seed_and_entrants_only(
            seed in any::<[u8; 32]>(),
            (entrants, arrived) in entrants().prop_flat_map(|e| (Just(e.clone()), Just(e).prop_shuffle())),
        ) {
            let (mut once, mut again, mut shuffled) = (entrants.clone(), entrants, arrived);
            draw_order(&seed, &mut once, |e| e.1);
            draw_order(&seed, &mut again, |e| e.1);
            draw_order(&seed, &mut shuffled, |e| e.1);
            prop_assert_eq!(&once, &again);
            prop_assert_eq!(&once, &shuffled);
        }
    }
}
