use futures_util::future::join_all;
use portcullis_domain::{SigningAlgorithm, SigningKey};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::ContractStore;

const NOW: OffsetDateTime = datetime!(2026-02-03 12:00:00 UTC);

fn key(generation: i64, algorithm: SigningAlgorithm) -> SigningKey {
    SigningKey {
        kid: format!("kid-{}", uuid::Uuid::new_v4().simple()),
        algorithm,
        generation,
        public_jwk: format!(r#"{{"kty":"EC","crv":"P-256","x":"x{generation}","y":"y{generation}"}}"#),
        // Every byte value, so a store that mangles binary shows it.
        sealed_private: (0..=255u8).rev().collect(),
        created_at: NOW,
        activates_at: NOW + Duration::minutes(10),
    }
}

async fn next_generation<S: ContractStore + ?Sized>(store: &S) -> i64 {
    let keys = store.list_signing_keys().await.expect("list_signing_keys succeeds");
    keys.iter().map(|k| k.generation).max().unwrap_or(0) + 1
}

pub async fn signing_keys_round_trip_and_are_only_added<S: ContractStore + ?Sized>(store: &S) {
    let first = next_generation(store).await;
    let es = key(first, SigningAlgorithm::Es256);
    let ed = key(first + 1, SigningAlgorithm::EdDsa);
    assert!(store.insert_signing_key(es.clone()).await.expect("insert succeeds"));
    assert!(store.insert_signing_key(ed.clone()).await.expect("insert succeeds"));
    let listed = store.list_signing_keys().await.expect("list succeeds");
    for stored in [&es, &ed] {
        let found = listed.iter().find(|k| k.kid == stored.kid).expect("the key is listed");
        assert_eq!(found, stored, "every field round-trips, the sealed bytes exactly");
    }
    let same_generation = key(first, SigningAlgorithm::Es256);
    assert!(
        !store.insert_signing_key(same_generation).await.expect("a taken generation is no error"),
        "a second key of one generation is refused"
    );
    let same_kid = SigningKey { generation: first + 2, ..es.clone() };
    assert!(!store.insert_signing_key(same_kid).await.expect("a taken kid is no error"), "kids are unique");
    let after = store.list_signing_keys().await.expect("list succeeds");
    assert_eq!(after.len(), listed.len(), "a refused insert writes nothing");
    assert_eq!(after.iter().find(|k| k.kid == es.kid), Some(&es), "the first key is untouched");
}

pub async fn of_concurrent_inserts_of_one_generation_one_wins<S: ContractStore + ?Sized>(store: &S) {
    let generation = next_generation(store).await;
    let attempts = (0..8).map(|_| store.insert_signing_key(key(generation, SigningAlgorithm::Es256)));
    let won =
        join_all(attempts).await.into_iter().map(|r| r.expect("insert succeeds")).filter(|w| *w).count();
    assert_eq!(won, 1, "exactly one instance adds the key of a generation");
    let keys = store.list_signing_keys().await.expect("list succeeds");
    assert_eq!(keys.iter().filter(|k| k.generation == generation).count(), 1);
}
