//! Writes the seed corpora of the fuzz targets (run by hand after format changes):
//! `cargo test -p psm-recording --features fuzzing --test fuzz_seeds -- --ignored`
#![cfg(feature = "fuzzing")]
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use common::*;
use psm_recording::*;

#[test]
#[ignore = "writes fuzz/seeds; run by hand"]
fn write_fuzz_seeds() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    let key = psm_recording::fuzzing::key();
    let config = WriterConfig {
        keyframe_bytes: 256,
        ..small_chunks()
    };
    let (plain, _) = write_all(&sample_session(12), &key, config.clone());
    let dir = root.join("recording_reader");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("session.psmr"), &plain).unwrap();
    std::fs::write(dir.join("truncated.psmr"), &plain[..plain.len() * 2 / 3]).unwrap();
    let alice = RecipientSecret::from_bytes([9; 32]);
    let (enc, _) = write_all(
        &sample_session(4),
        &key,
        WriterConfig {
            recipients: vec![alice.public()],
            ..config
        },
    );
    std::fs::write(dir.join("encrypted.psmr"), &enc).unwrap();

    let dir = root.join("recording_records");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, p) in psm_recording::fuzzing::payloads_of(&plain)
        .iter()
        .take(4)
        .enumerate()
    {
        // Layout of the target: meta length, meta (finished flag, then trailer bytes), payloads.
        let mut seed = vec![3u8, 0, 5, 1];
        seed.extend_from_slice(p);
        std::fs::write(dir.join(format!("chunk{i}.bin")), seed).unwrap();
    }
}
