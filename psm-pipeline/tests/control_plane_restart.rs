//! Fault test (c): the control plane goes away mid-run (longer than a lease) and comes back
//! as a new engine over the same SQLite file. The workers ride it out: claims back off,
//! leases that could not be renewed are given up without committing or deleting, the
//! watchdog requeues them after the restart, and every session ends Done-Uploaded exactly
//! once with nothing lost.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::*;
use psm_core::store::SqliteStore;
use psm_core::{
    Completion, CoreError, Engine, EngineConfig, HeartbeatReply, Lease, NewSession, PrivSession,
    ProcessInstance, RecordingStatus, SessionId, SessionLifecycle, Stage, WorkQueue,
};
use psm_pipeline::{Encoder, EncoderSettings, LocalLayout, Uploader};
use psm_storage::{Checksum, LocalConfig, ObjectKey, StoreConfig, VerifyDepth};

/// A control plane that can be taken down and restarted (a new engine over the same file).
struct Restartable {
    db: PathBuf,
    config: EngineConfig,
    engine: RwLock<Option<(Arc<Engine>, SqliteStore)>>,
}

impl Restartable {
    fn current(&self) -> Result<Arc<Engine>, CoreError> {
        self.engine
            .read()
            .unwrap()
            .as_ref()
            .map(|(e, _)| e.clone())
            .ok_or_else(|| CoreError::Unavailable {
                message: "control plane restarting".into(),
                source: None,
            })
    }

    async fn stop(&self) {
        let old = self.engine.write().unwrap().take();
        if let Some((_, store)) = old {
            store.close().await;
        }
    }

    async fn start(&self) {
        let store = SqliteStore::open(&self.db).await.unwrap();
        let engine = engine_over(Arc::new(store.clone()), self.config.clone());
        *self.engine.write().unwrap() = Some((engine, store));
    }
}

#[async_trait]
impl SessionLifecycle for Restartable {
    async fn open_session(&self, new: NewSession) -> Result<PrivSession, CoreError> {
        self.current()?.open_session(new).await
    }
    async fn heartbeat(
        &self,
        s: SessionId,
        by: &ProcessInstance,
    ) -> Result<HeartbeatReply, CoreError> {
        SessionLifecycle::heartbeat(self.current()?.as_ref(), s, by).await
    }
    async fn update_session(&self, s: SessionId) -> Result<(), CoreError> {
        SessionLifecycle::update_session(self.current()?.as_ref(), s).await
    }
    async fn end_session(&self, s: SessionId, by: &ProcessInstance) -> Result<(), CoreError> {
        SessionLifecycle::end_session(self.current()?.as_ref(), s, by).await
    }
}

#[async_trait]
impl WorkQueue for Restartable {
    async fn claim_for_encoding(
        &self,
        by: &ProcessInstance,
        n: u32,
    ) -> Result<Vec<Lease>, CoreError> {
        self.current()?.claim_for_encoding(by, n).await
    }
    async fn claim_for_upload(
        &self,
        by: &ProcessInstance,
        n: u32,
    ) -> Result<Vec<Lease>, CoreError> {
        self.current()?.claim_for_upload(by, n).await
    }
    async fn claim_for_encoding_among(
        &self,
        by: &ProcessInstance,
        n: u32,
        among: &[SessionId],
    ) -> Result<Vec<Lease>, CoreError> {
        self.current()?.claim_for_encoding_among(by, n, among).await
    }
    async fn claim_for_upload_among(
        &self,
        by: &ProcessInstance,
        n: u32,
        among: &[SessionId],
    ) -> Result<Vec<Lease>, CoreError> {
        self.current()?.claim_for_upload_among(by, n, among).await
    }
    async fn renew(&self, lease: &Lease) -> Result<Lease, CoreError> {
        self.current()?.renew(lease).await
    }
    async fn complete(&self, lease: &Lease, c: Completion) -> Result<(), CoreError> {
        WorkQueue::complete(self.current()?.as_ref(), lease, c).await
    }
    async fn fail(&self, lease: &Lease, reason: &str) -> Result<(), CoreError> {
        WorkQueue::fail(self.current()?.as_ref(), lease, reason).await
    }
    async fn recording_status(&self, ids: &[SessionId]) -> Result<Vec<RecordingStatus>, CoreError> {
        self.current()?.recording_status(ids).await
    }
    async fn update_recording_status(
        &self,
        update: psm_core::RecordingStatusUpdate,
    ) -> Result<(), CoreError> {
        WorkQueue::update_recording_status(self.current()?.as_ref(), update).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ride_out_a_control_plane_restart() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path().join("data"));
    layout.create().unwrap();
    let config = EngineConfig {
        lease_ttl: Duration::from_secs(1),
        max_attempts: 1000,
        retry_backoff_base: Duration::from_millis(10),
        retry_backoff_max: Duration::from_millis(50),
        ..EngineConfig::default()
    };
    let cp = Arc::new(Restartable {
        db: dir.path().join("psm.db"),
        config: config.clone(),
        engine: RwLock::new(None),
    });
    cp.start().await;
    let store = psm_storage::open(&StoreConfig::Local(LocalConfig::new(
        dir.path().join("store"),
    )))
    .unwrap();

    let mut originals = HashMap::new();
    for i in 0..60 {
        let engine = cp.current().unwrap();
        let id = recorded_session(&engine, &layout, 200 + i * 40).await;
        originals.insert(
            id,
            Checksum::of(&std::fs::read(layout.raw_recording(id)).unwrap()),
        );
    }
    let ids: Vec<SessionId> = originals.keys().copied().collect();

    let mut wc = worker("encoder-r");
    wc.lease_ttl = Duration::from_secs(1);
    wc.renew_every = Duration::from_millis(250);
    let encoder = Arc::new(Encoder::new(
        cp.clone(),
        layout.clone(),
        EncoderSettings::default(),
        wc.clone(),
    ));
    wc.instance = instance("uploader-r");
    let uploader = Arc::new(Uploader::new(cp.clone(), store.clone(), layout.clone(), wc));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let runs = [
        tokio::spawn(encoder.run(stop_rx.clone())),
        tokio::spawn(uploader.run(stop_rx)),
    ];
    // Watchdog against whichever engine is up.
    let wd_cp = cp.clone();
    let watchdog = tokio::spawn(async move {
        loop {
            if let Ok(e) = wd_cp.current() {
                let _ = e.sweep().await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    // Wait until a worker holds a session, then take the control plane away for three lease
    // lifetimes; twice. (Polled, not slept: how fast work starts depends on the machine.)
    let mut went_down_mid_work = false;
    for _ in 0..2 {
        let waiting = Instant::now();
        while waiting.elapsed() < Duration::from_secs(30) {
            let st = cp.current().unwrap().recording_status(&ids).await.unwrap();
            if st
                .iter()
                .any(|s| matches!(s.stage, Stage::Encoding | Stage::Uploading))
            {
                went_down_mid_work = true;
                break;
            }
            if st.iter().all(|s| s.stage == Stage::DoneUploaded) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cp.stop().await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        cp.start().await;
    }
    assert!(
        went_down_mid_work,
        "the restart did not catch any session in hand"
    );

    let start = Instant::now();
    loop {
        let engine = cp.current().unwrap();
        for id in &ids {
            if !layout.raw_recording(*id).exists() {
                assert_eq!(
                    engine.session(*id).await.unwrap().stage,
                    Stage::DoneUploaded,
                    "{id} deleted early"
                );
            }
        }
        let st = engine.recording_status(&ids).await.unwrap();
        if st.iter().all(|s| s.stage == Stage::DoneUploaded) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "stuck: {:?}",
            st.iter()
                .filter(|s| s.stage != Stage::DoneUploaded)
                .take(3)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop_tx.send(true).unwrap();
    for r in runs {
        r.await.unwrap();
    }
    watchdog.abort();
    let engine = cp.current().unwrap();
    for (id, checksum) in &originals {
        let commits = engine
            .audit_trail(*id)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.record.to_stage == Some(Stage::DoneUploaded))
            .count();
        assert_eq!(commits, 1, "{id}");
        let key = ObjectKey::new(format!("sessions/{id}/recording.psmr")).unwrap();
        let size = store.head(&key).await.unwrap().unwrap().size;
        store
            .verify(&key, checksum, size, VerifyDepth::Content)
            .await
            .unwrap();
    }
}
