//! Storage faults: a proxy in front of moto that answers 503, resets connections, stalls and
//! truncates responses; a local store on a full disk. No recording is lost: each session is
//! uploaded (verified) once the fault clears, or Failed with its local data intact.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fault_proxy::FaultProxy;
use common::tmpfs::Tmpfs;
use common::*;
use psm_core::{Engine, SessionId, Stage};
use psm_pipeline::{DiskGuard, LocalLayout, Uploader};
use psm_storage::conformance::{self, peers};
use psm_storage::{Checksum, LocalConfig, ObjectKey, RecordingStore, StoreConfig, VerifyDepth};

fn key(id: SessionId, name: &str) -> ObjectKey {
    ObjectKey::new(format!("sessions/{id}/{name}")).unwrap()
}

/// Every session is either Done-Uploaded with its stored raw recording matching the original,
/// or still has its local raw recording intact.
async fn assert_nothing_lost(
    engine: &Engine,
    store: &dyn RecordingStore,
    layout: &LocalLayout,
    originals: &HashMap<SessionId, Vec<u8>>,
) {
    for (id, raw) in originals {
        let local = layout.raw_recording(*id);
        // File first, then stage: an uploader deletes only after committing.
        let local_bytes = std::fs::read(&local).ok();
        let stage = engine.session(*id).await.unwrap().stage;
        match local_bytes {
            Some(bytes) => assert_eq!(&bytes, raw, "{id}: local raw recording changed"),
            None => {
                assert_eq!(
                    stage,
                    Stage::DoneUploaded,
                    "{id}: local data gone before Done-Uploaded"
                );
                store
                    .verify(
                        &key(*id, "recording.psmr"),
                        &Checksum::of(raw),
                        raw.len() as u64,
                        VerifyDepth::Content,
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{id}: deleted locally but not stored intact: {e}"));
            }
        }
    }
}

async fn drain(
    engine: &Engine,
    uploader: &Arc<Uploader>,
    ids: &[SessionId],
    until: impl Fn(Stage) -> bool,
    limit: Duration,
) {
    let start = Instant::now();
    loop {
        uploader.clone().run_until_idle().await;
        let done = engine
            .recording_status(ids)
            .await
            .unwrap()
            .iter()
            .all(|s| until(s.stage));
        if done || start.elapsed() > limit {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_in_front_of_s3_lose_nothing_and_clear() {
    let moto = peers::Moto::start();
    moto.create_bucket("faults");
    let proxy = FaultProxy::start(moto.port, 7).await;
    let mut tuning = conformance::tuning();
    tuning.request_timeout = Duration::from_secs(2);
    tuning.connect_timeout = Duration::from_secs(1);
    tuning.max_retries = 1;
    tuning.retry_timeout = Duration::from_secs(5);
    let store = psm_storage::open(&StoreConfig::S3(moto.config_at(
        &proxy.endpoint(),
        "faults",
        tuning,
    )))
    .unwrap();
    let direct = psm_storage::open(&StoreConfig::S3(
        moto.config("faults", conformance::tuning()),
    ))
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path());
    layout.create().unwrap();
    let engine = memory_engine(engine_config());
    let mut originals = HashMap::new();
    for i in 0..16u8 {
        let len = if i % 5 == 0 {
            7 << 20
        } else {
            20_000 + usize::from(i) * 1000
        };
        let (id, raw) = encoded_session(&engine, &layout, len, i).await;
        originals.insert(id, raw);
    }
    let ids: Vec<SessionId> = originals.keys().copied().collect();
    let uploader = Arc::new(Uploader::new(
        engine.clone(),
        store.clone(),
        layout.clone(),
        worker("uploader-faulty"),
    ));

    // Phase 1: a third of all requests fail one way or another.
    proxy.set_fault_ratio(0.35);
    drain(
        &engine,
        &uploader,
        &ids,
        |s| matches!(s, Stage::DoneUploaded | Stage::Failed),
        Duration::from_secs(90),
    )
    .await;
    let injected = proxy.stats.injected();
    assert!(
        injected.iter().all(|&n| n > 0),
        "every kind of fault was injected: {injected:?}"
    );
    assert_nothing_lost(&engine, direct.as_ref(), &layout, &originals).await;
    let failed_attempts = {
        let mut n = 0;
        for id in &ids {
            n += engine
                .audit_trail(*id)
                .await
                .unwrap()
                .iter()
                .filter(|e| e.record.action == psm_core::AuditAction::AttemptFailed)
                .count();
        }
        n
    };
    assert!(failed_attempts > 0, "the faults made some attempts fail");
    for s in engine.recording_status(&ids).await.unwrap() {
        if s.stage == Stage::Failed {
            assert!(s.failure_reason.is_some());
            assert!(
                layout.raw_recording(s.session).exists(),
                "Failed session lost its data"
            );
        }
    }

    // Phase 2: the fault clears; an admin requeues what failed; everything is uploaded.
    proxy.set_fault_ratio(0.0);
    for s in engine.recording_status(&ids).await.unwrap() {
        if s.stage == Stage::Failed {
            engine.requeue_failed(s.session, "admin").await.unwrap();
        }
    }
    drain(
        &engine,
        &uploader,
        &ids,
        |s| s == Stage::DoneUploaded,
        Duration::from_secs(60),
    )
    .await;
    for s in engine.recording_status(&ids).await.unwrap() {
        assert_eq!(s.stage, Stage::DoneUploaded, "{:?}", s);
    }
    assert_nothing_lost(&engine, direct.as_ref(), &layout, &originals).await;
    for id in &ids {
        assert!(!layout.raw_recording(*id).exists());
    }
    // No orphans: exactly the three objects of each set.
    let objects = direct.list(None).await.unwrap();
    assert_eq!(objects.len(), ids.len() * 3, "{objects:?}");
}

#[tokio::test]
async fn a_full_local_store_stops_the_uploader_and_nothing_is_lost() {
    let disk = Tmpfs::mount(16);
    let root = disk.path().join("store");
    let store = psm_storage::open(&StoreConfig::Local(LocalConfig::new(&root))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path());
    layout.create().unwrap();
    let engine = memory_engine(engine_config());
    let mut originals = HashMap::new();
    for i in 0..4u8 {
        let (id, raw) = encoded_session(&engine, &layout, 2 << 20, i).await;
        originals.insert(id, raw);
    }
    let ids: Vec<SessionId> = originals.keys().copied().collect();

    // 1. The guard: with 4 MiB free and 5 MiB required, the uploader takes no work.
    let filler = disk.path().join("filler");
    std::fs::write(&filler, vec![0u8; 12 << 20]).unwrap();
    let mut config = worker("uploader-guarded");
    config.disk_guard = Some(DiskGuard::new(
        &root,
        psm_pipeline::MinFreeSpace {
            bytes: 5 << 20,
            ratio: 0.05,
        },
    ));
    let guarded = Arc::new(Uploader::new(
        engine.clone(),
        store.clone(),
        layout.clone(),
        config,
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(guarded.clone().run(stop_rx));
    tokio::time::sleep(Duration::from_millis(500)).await;
    for s in engine.recording_status(&ids).await.unwrap() {
        assert_eq!(s.stage, Stage::DoneEncoded, "claimed with a full disk");
    }
    // 2. Space is freed: the same running uploader resumes and uploads everything.
    std::fs::remove_file(&filler).unwrap();
    let start = Instant::now();
    while !engine
        .recording_status(&ids)
        .await
        .unwrap()
        .iter()
        .all(|s| s.stage == Stage::DoneUploaded)
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "uploads did not resume"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_tx.send(true).unwrap();
    run.await.unwrap();
    assert_nothing_lost(&engine, store.as_ref(), &layout, &originals).await;
}

#[tokio::test]
async fn running_out_of_space_mid_upload_fails_with_data_kept_then_recovers() {
    let disk = Tmpfs::mount(8);
    let root = disk.path().join("store");
    let store = psm_storage::open(&StoreConfig::Local(LocalConfig::new(&root))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path());
    layout.create().unwrap();
    let engine = memory_engine(engine_config());
    let filler = disk.path().join("filler");
    std::fs::write(&filler, vec![0u8; 7 << 20]).unwrap();
    let (id, raw) = encoded_session(&engine, &layout, 3 << 20, 1).await;
    let originals = HashMap::from([(id, raw)]);
    let uploader = Arc::new(Uploader::new(
        engine.clone(),
        store.clone(),
        layout.clone(),
        worker("uploader-nospace"),
    ));
    drain(
        &engine,
        &uploader,
        &[id],
        |s| s == Stage::Failed,
        Duration::from_secs(30),
    )
    .await;
    let s = engine.session(id).await.unwrap();
    assert_eq!(s.stage, Stage::Failed);
    let reason = s.failure_reason.unwrap();
    assert!(reason.to_lowercase().contains("no space"), "{reason}");
    assert_nothing_lost(&engine, store.as_ref(), &layout, &originals).await;
    // Nothing half-written is visible in the store.
    assert!(
        store
            .head(&key(id, "recording.psmr"))
            .await
            .unwrap()
            .is_none()
    );

    std::fs::remove_file(&filler).unwrap();
    engine.requeue_failed(id, "admin").await.unwrap();
    drain(
        &engine,
        &uploader,
        &[id],
        |s| s == Stage::DoneUploaded,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(engine.session(id).await.unwrap().stage, Stage::DoneUploaded);
    assert_nothing_lost(&engine, store.as_ref(), &layout, &originals).await;
}
