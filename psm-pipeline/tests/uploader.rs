//! The uploader against real stores (moto's S3, a local directory): verified uploads, the
//! local copy deleted only after the commit, failures kept with their data and reason.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use psm_core::Stage;
use psm_pipeline::{LocalLayout, Uploader};
use psm_storage::conformance::{self, peers};
use psm_storage::{Checksum, LocalConfig, ObjectKey, StoreConfig, VerifyDepth};

fn key(id: psm_core::SessionId, name: &str) -> ObjectKey {
    ObjectKey::new(format!("sessions/{id}/{name}")).unwrap()
}

#[tokio::test]
async fn uploads_verify_commit_then_delete_on_s3() {
    let moto = peers::Moto::start();
    moto.create_bucket("psm");
    let store =
        psm_storage::open(&StoreConfig::S3(moto.config("psm", conformance::tuning()))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path());
    layout.create().unwrap();
    let engine = memory_engine(engine_config());
    let mut sessions = Vec::new();
    // Small ones and one above the multipart threshold.
    for (i, len) in [10_000usize, 0, 7 << 20, 123].into_iter().enumerate() {
        sessions.push(encoded_session(&engine, &layout, len, i as u8).await);
    }
    let uploader = Arc::new(Uploader::new(
        engine.clone(),
        store.clone(),
        layout.clone(),
        worker("uploader-1"),
    ));
    let summary = uploader.run_until_idle().await;
    assert_eq!(summary.completed.len(), 4, "{summary:?}");
    for (id, raw) in &sessions {
        let s = engine.session(*id).await.unwrap();
        assert_eq!(s.stage, Stage::DoneUploaded);
        assert_eq!(s.recording_format.as_deref(), Some(".psmr"));
        assert!(s.ssh_logs_uploaded);
        store
            .verify(
                &key(*id, "recording.psmr"),
                &Checksum::of(raw),
                raw.len() as u64,
                VerifyDepth::Content,
            )
            .await
            .unwrap();
        assert!(
            store
                .head(&key(*id, "transcript.txt"))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .head(&key(*id, "manifest.json"))
                .await
                .unwrap()
                .is_some()
        );
        assert!(!layout.raw_recording(*id).exists(), "raw kept after upload");
        assert!(
            !layout.exports_dir(*id).exists(),
            "exports kept after upload"
        );
        // Exactly one commit to Done-Uploaded in the audit trail.
        let commits = engine
            .audit_trail(*id)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.record.to_stage == Some(Stage::DoneUploaded))
            .count();
        assert_eq!(commits, 1);
    }
    // Nothing else in the bucket.
    assert_eq!(store.list(None).await.unwrap().len(), 12);
}

#[tokio::test]
async fn bad_sessions_fail_with_reason_keep_data_and_others_still_upload() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path().join("data"));
    layout.create().unwrap();
    let store = psm_storage::open(&StoreConfig::Local(LocalConfig::new(
        dir.path().join("store"),
    )))
    .unwrap();
    let engine = memory_engine(engine_config());

    let (good, _) = encoded_session(&engine, &layout, 5000, 1).await;
    let (vanished_raw, _) = encoded_session(&engine, &layout, 5000, 2).await;
    std::fs::remove_file(layout.raw_recording(vanished_raw)).unwrap();
    let (no_manifest, _) = encoded_session(&engine, &layout, 5000, 3).await;
    std::fs::remove_file(layout.manifest(no_manifest)).unwrap();
    let (corrupted, _) = encoded_session(&engine, &layout, 5000, 4).await;
    let mut bytes = std::fs::read(layout.raw_recording(corrupted)).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(layout.raw_recording(corrupted), &bytes).unwrap();
    let (vanished_export, _) = encoded_session(&engine, &layout, 5000, 5).await;
    std::fs::remove_file(layout.exports_dir(vanished_export).join("transcript.txt")).unwrap();

    let uploader = Arc::new(Uploader::new(
        engine.clone(),
        store.clone(),
        layout.clone(),
        worker("uploader-1"),
    ));
    // Run until every attempt is spent (3 attempts, short backoff).
    for _ in 0..50 {
        uploader.clone().run_until_idle().await;
        let failed = engine
            .recording_status(&[vanished_raw, no_manifest, corrupted, vanished_export])
            .await
            .unwrap()
            .iter()
            .all(|s| s.stage == Stage::Failed);
        if failed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(
        engine.session(good).await.unwrap().stage,
        Stage::DoneUploaded
    );
    for (id, needle) in [
        (vanished_raw, "raw recording"),
        (no_manifest, "manifest"),
        (corrupted, "hashes to"),
        (vanished_export, "vanished"),
    ] {
        let s = engine.session(id).await.unwrap();
        assert_eq!(s.stage, Stage::Failed, "{id}");
        let reason = s.failure_reason.unwrap();
        assert!(reason.contains(needle), "{reason}");
        assert!(reason.contains(&id.to_string()), "{reason}");
    }
    // Local data kept for every failed session.
    assert!(layout.exports_dir(vanished_raw).exists());
    assert!(layout.raw_recording(no_manifest).exists());
    assert_eq!(
        std::fs::read(layout.raw_recording(corrupted)).unwrap(),
        bytes
    );
    assert!(layout.raw_recording(vanished_export).exists());
    // The corrupted file never got a manifest stored: the set is not closed remotely.
    assert!(
        store
            .head(&key(corrupted, "manifest.json"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn wrong_bucket_fails_with_the_service_error_and_keeps_data() {
    let moto = peers::Moto::start();
    let store = psm_storage::open(&StoreConfig::S3(
        moto.config("absent", conformance::tuning()),
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path());
    layout.create().unwrap();
    let engine = memory_engine(engine_config());
    let (id, raw) = encoded_session(&engine, &layout, 1000, 1).await;
    let uploader = Arc::new(Uploader::new(
        engine.clone(),
        store,
        layout.clone(),
        worker("uploader-1"),
    ));
    for _ in 0..50 {
        uploader.clone().run_until_idle().await;
        if engine.session(id).await.unwrap().stage == Stage::Failed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let s = engine.session(id).await.unwrap();
    assert_eq!(s.stage, Stage::Failed);
    assert!(
        s.failure_reason
            .as_deref()
            .unwrap()
            .contains("NoSuchBucket"),
        "{:?}",
        s.failure_reason
    );
    assert_eq!(std::fs::read(layout.raw_recording(id)).unwrap(), raw);
    assert!(layout.manifest(id).exists());
}

#[tokio::test]
async fn cleanup_finishes_a_deletion_interrupted_after_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path().join("data"));
    layout.create().unwrap();
    let store = psm_storage::open(&StoreConfig::Local(LocalConfig::new(
        dir.path().join("store"),
    )))
    .unwrap();
    let engine = memory_engine(engine_config());
    let (id, _) = encoded_session(&engine, &layout, 3000, 1).await;
    // An uploader stored and committed, then died before deleting.
    let lease = engine
        .claim_for_upload(&instance("dead-uploader"), 1)
        .await
        .unwrap()
        .remove(0);
    let uploader = Uploader::new(
        engine.clone(),
        store.clone(),
        layout.clone(),
        worker("uploader-2"),
    );
    uploader.upload(&lease).await.unwrap();
    engine.complete(&lease, Default::default()).await.unwrap();
    // A Done-Uploaded session whose stored copy is gone keeps its local data.
    let (other, _) = encoded_session(&engine, &layout, 3000, 2).await;
    let lease = engine
        .claim_for_upload(&instance("dead-uploader"), 1)
        .await
        .unwrap()
        .remove(0);
    uploader.upload(&lease).await.unwrap();
    engine.complete(&lease, Default::default()).await.unwrap();
    store.delete(&key(other, "transcript.txt")).await.unwrap();
    // And a session still in the pipeline is untouched.
    let (pending, _) = encoded_session(&engine, &layout, 3000, 3).await;

    assert_eq!(uploader.cleanup_uploaded().await.unwrap(), 1);
    assert!(!layout.raw_recording(id).exists());
    assert!(!layout.exports_dir(id).exists());
    assert!(layout.raw_recording(other).exists());
    assert!(layout.raw_recording(pending).exists());
}

#[tokio::test]
async fn a_worker_that_lost_its_lease_commits_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path().join("data"));
    layout.create().unwrap();
    let store = psm_storage::open(&StoreConfig::Local(LocalConfig::new(
        dir.path().join("store"),
    )))
    .unwrap();
    let clock = psm_core::clock::ManualClock::new(psm_core::Timestamp::now_utc());
    let engine = Arc::new(psm_core::Engine::new(
        Arc::new(psm_core::store::MemoryStore::new()),
        Arc::new(clock.clone()),
        engine_config(),
    ));
    let (id, _) = encoded_session(&engine, &layout, 3000, 1).await;
    let stale = engine
        .claim_for_upload(&instance("slow-uploader"), 1)
        .await
        .unwrap()
        .remove(0);
    // The slow uploader's lease expires; the watchdog requeues; another uploader claims.
    clock.advance(Duration::from_secs(60));
    engine.sweep().await.unwrap();
    clock.advance(Duration::from_secs(60));
    let fresh = engine
        .claim_for_upload(&instance("uploader-2"), 1)
        .await
        .unwrap()
        .remove(0);
    assert!(fresh.token > stale.token);
    let slow = Uploader::new(
        engine.clone(),
        store.clone(),
        layout.clone(),
        worker("slow-uploader"),
    );
    slow.upload(&stale).await.unwrap();
    assert!(
        engine.complete(&stale, Default::default()).await.is_err(),
        "stale token accepted"
    );
    assert!(layout.raw_recording(id).exists());
    assert_eq!(engine.session(id).await.unwrap().stage, Stage::Uploading);
}
