//! Processes sharing a data directory start together (two encoders, a gateway and an
//! encoder): each loads the signing key or creates it. Exactly one key is created, whole,
//! and every starter gets that key; none fails with "File exists" or reads a half-written
//! file (issue 22).
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Barrier};

#[test]
fn starters_racing_for_the_signing_key_all_get_the_one_that_was_created() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = Arc::new(dir.path().join("keys").join("index-signing.key"));
        let starters = 8;
        let barrier = Arc::new(Barrier::new(starters));
        let handles: Vec<_> = (0..starters)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    psm_proxy::record::load_or_create_signing_key(&path)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let mut created = 0;
        let mut publics = std::collections::BTreeSet::new();
        for r in results {
            let (key, was_created) = r.unwrap_or_else(|e| panic!("round {round}: {e}"));
            created += usize::from(was_created);
            publics.insert(key.verifying_key().to_string());
        }
        assert_eq!(created, 1, "round {round}: one key created");
        assert_eq!(publics.len(), 1, "round {round}: everyone has the same key");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("keys"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }
}
