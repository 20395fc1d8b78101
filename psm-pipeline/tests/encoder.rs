//! The encoder on real `.psmr` recordings: exports and manifest, byte-identical output on a
//! retake, damaged and truncated recordings encoded as far as intact with the gap marked and
//! the raw file kept, and the whole pipeline through to moto.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use psm_core::Stage;
use psm_pipeline::manifest::Manifest;
use psm_pipeline::{Encoder, EncoderSettings, LocalLayout, Uploader};
use psm_storage::conformance::{self, peers};
use psm_storage::{Checksum, ObjectKey, StoreConfig, VerifyDepth};

fn snapshot(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn encoder(engine: &Arc<psm_core::Engine>, layout: &LocalLayout, name: &str) -> Arc<Encoder> {
    Arc::new(Encoder::new(
        engine.clone(),
        layout.clone(),
        EncoderSettings::default(),
        worker(name),
    ))
}

#[tokio::test]
async fn encodes_exports_and_a_retake_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path());
    layout.create().unwrap();
    let engine = memory_engine(engine_config());
    let id = recorded_session(&engine, &layout, 500).await;
    let raw_before = std::fs::read(layout.raw_recording(id)).unwrap();

    let summary = encoder(&engine, &layout, "encoder-1")
        .run_until_idle()
        .await;
    assert_eq!(summary.completed, [id]);
    let s = engine.session(id).await.unwrap();
    assert_eq!(s.stage, Stage::DoneEncoded);
    assert_eq!(s.recording_format.as_deref(), Some(".psmr"));

    let m = Manifest::read(&layout.manifest(id), id).unwrap();
    assert!(m.integrity.complete, "{:?}", m.integrity);
    assert_eq!(m.target.as_deref(), Some("web-01"));
    assert_eq!(m.raw.blake3, Checksum::of(&raw_before));
    let names: Vec<&str> = m.exports.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["session.cast", "transcript.txt", "commands.json"]);
    let first = snapshot(&layout.exports_dir(id));
    let transcript = String::from_utf8(first["transcript.txt"].clone()).unwrap();
    assert!(transcript.contains("echo 499"), "{transcript}");
    assert!(first["session.cast"].starts_with(b"{\"version\":2"));
    for f in &m.exports {
        assert_eq!(Checksum::of(&first[&f.name]), f.blake3);
    }

    // A second encoder retakes after a crash that left a temporary and a stray file behind.
    std::fs::write(layout.exports_dir(id).join(".session.cast.tmp"), b"half").unwrap();
    std::fs::write(layout.exports_dir(id).join("transcript.txt"), b"torn").unwrap();
    let again = encoder(&engine, &layout, "encoder-2");
    again.encode(id).await.unwrap();
    assert_eq!(snapshot(&layout.exports_dir(id)), first, "retake differs");
    assert_eq!(std::fs::read(layout.raw_recording(id)).unwrap(), raw_before);
}

#[tokio::test]
async fn truncated_and_garbage_recordings_are_encoded_as_far_as_intact_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path());
    layout.create().unwrap();
    let engine = memory_engine(engine_config());

    let truncated = recorded_session(&engine, &layout, 2000).await;
    let full = std::fs::read(layout.raw_recording(truncated)).unwrap();
    let cut = &full[..full.len() * 2 / 3];
    std::fs::write(layout.raw_recording(truncated), cut).unwrap();

    let tampered = recorded_session(&engine, &layout, 2000).await;
    let mut bytes = std::fs::read(layout.raw_recording(tampered)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(layout.raw_recording(tampered), &bytes).unwrap();

    let garbage = recorded_session(&engine, &layout, 10).await;
    std::fs::write(
        layout.raw_recording(garbage),
        b"this is not a recording at all",
    )
    .unwrap();

    let summary = encoder(&engine, &layout, "encoder-1")
        .run_until_idle()
        .await;
    assert_eq!(summary.completed.len(), 3, "{summary:?}");
    for (id, raw) in [(truncated, cut.to_vec()), (tampered, bytes.clone())] {
        assert_eq!(engine.session(id).await.unwrap().stage, Stage::DoneEncoded);
        let m = Manifest::read(&layout.manifest(id), id).unwrap();
        assert!(!m.integrity.complete, "{id}");
        assert!(!m.integrity.gaps.is_empty(), "{id}");
        // What was intact is in the transcript; the raw file is kept as it was.
        let transcript =
            std::fs::read_to_string(layout.exports_dir(id).join("transcript.txt")).unwrap();
        assert!(
            transcript.contains("echo 1\n") || transcript.contains("echo 1"),
            "{transcript:.300}"
        );
        assert_eq!(std::fs::read(layout.raw_recording(id)).unwrap(), raw);
        assert_eq!(m.raw.blake3, Checksum::of(&raw));
    }
    let m = Manifest::read(&layout.manifest(garbage), garbage).unwrap();
    assert!(!m.integrity.complete);
    assert!(
        m.integrity.gaps[0].reason.contains("unreadable"),
        "{:?}",
        m.integrity
    );
    assert!(m.exports.is_empty());
    assert!(layout.raw_recording(garbage).exists());
}

#[tokio::test]
async fn a_missing_or_foreign_recording_fails_with_the_reason_and_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path());
    layout.create().unwrap();
    let engine = memory_engine(engine_config());
    let missing = recorded_session(&engine, &layout, 10).await;
    std::fs::remove_file(layout.raw_recording(missing)).unwrap();
    let foreign = recorded_session(&engine, &layout, 10).await;
    let other = psm_core::SessionId::new();
    std::fs::remove_file(layout.raw_recording(foreign)).unwrap();
    write_psmr(&layout.raw_recording(foreign), other, 10);
    let good = recorded_session(&engine, &layout, 10).await;
    // A worker that takes any session (by default it claims only those whose raw recording
    // is on its disk, and the missing one would wait for the node that has it).
    let mut config = worker("encoder-1");
    config.claim_scope = psm_pipeline::ClaimScope::Any;
    let enc = Arc::new(Encoder::new(
        engine.clone(),
        layout.clone(),
        EncoderSettings::default(),
        config,
    ));
    for _ in 0..50 {
        enc.clone().run_until_idle().await;
        let st = engine.recording_status(&[missing, foreign]).await.unwrap();
        if st.iter().all(|s| s.stage == Stage::Failed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(
        engine.session(good).await.unwrap().stage,
        Stage::DoneEncoded
    );
    let m = engine.session(missing).await.unwrap();
    assert_eq!(m.stage, Stage::Failed);
    assert!(m.failure_reason.unwrap().contains("missing"));
    let f = engine.session(foreign).await.unwrap();
    assert_eq!(f.stage, Stage::Failed);
    assert!(f.failure_reason.unwrap().contains(&other.to_string()));
    assert!(layout.raw_recording(foreign).exists());
}

#[tokio::test]
async fn ended_to_done_uploaded_on_moto() {
    let moto = peers::Moto::start();
    moto.create_bucket("e2e");
    let store =
        psm_storage::open(&StoreConfig::S3(moto.config("e2e", conformance::tuning()))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path());
    layout.create().unwrap();
    let engine = memory_engine(engine_config());
    let mut raws = Vec::new();
    for n in [10, 300, 3000] {
        let id = recorded_session(&engine, &layout, n).await;
        raws.push((id, std::fs::read(layout.raw_recording(id)).unwrap()));
    }
    encoder(&engine, &layout, "encoder-1")
        .run_until_idle()
        .await;
    let uploader = Arc::new(Uploader::new(
        engine.clone(),
        store.clone(),
        layout.clone(),
        worker("uploader-1"),
    ));
    uploader.run_until_idle().await;
    for (id, raw) in raws {
        assert_eq!(engine.session(id).await.unwrap().stage, Stage::DoneUploaded);
        let key = ObjectKey::new(format!("sessions/{id}/recording.psmr")).unwrap();
        store
            .verify(
                &key,
                &Checksum::of(&raw),
                raw.len() as u64,
                VerifyDepth::Content,
            )
            .await
            .unwrap();
        let manifest = store
            .get(
                &ObjectKey::new(format!("sessions/{id}/manifest.json")).unwrap(),
                1 << 20,
            )
            .await
            .unwrap();
        let m = Manifest::from_bytes(&manifest, id, "remote".as_ref()).unwrap();
        assert_eq!(m.exports.len(), 3);
        assert!(!layout.raw_recording(id).exists());
    }
}
