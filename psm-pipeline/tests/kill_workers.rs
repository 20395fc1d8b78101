//! Fault test (a): 50 random `kill -9` of encoder and uploader processes while 200 sessions
//! flow from Ended to Done-Uploaded, against one SQLite control plane file shared by every
//! process and S3 on moto. Every session ends Done-Uploaded exactly once with matching
//! checksums, no local file is deleted before its session is Done-Uploaded, and the bucket
//! holds no orphan object.
//!
//! The worker processes are this test binary run again with `worker_process_entry` and a role
//! in the environment: the same library workers the `psm-encoder` and `psm-uploader`
//! binaries assemble.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use psm_core::store::SqliteStore;
use psm_core::{AuditAction, EngineConfig, SessionId, Stage};
use psm_pipeline::manifest::Manifest;
use psm_pipeline::{Encoder, EncoderSettings, LocalLayout, Uploader};
use psm_storage::conformance::{self, peers};
use psm_storage::{Checksum, ObjectKey, StoreConfig, VerifyDepth};
use rand::{Rng, SeedableRng};

const SESSIONS: usize = 200;
const KILLS: usize = 50;

fn kill_test_engine_config() -> EngineConfig {
    EngineConfig {
        lease_ttl: Duration::from_secs(2),
        max_attempts: 1000,
        retry_backoff_base: Duration::from_millis(10),
        retry_backoff_max: Duration::from_millis(50),
        ..EngineConfig::default()
    }
}

/// Entry point of a worker process; a no-op when run as an ordinary test.
#[test]
fn worker_process_entry() {
    let Ok(role) = std::env::var("PSM_KT_ROLE") else {
        return;
    };
    let env = |k: &str| std::env::var(k).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let store = SqliteStore::open(env("PSM_KT_DB")).await.unwrap();
        let engine = engine_over(Arc::new(store), kill_test_engine_config());
        let layout = LocalLayout::new(env("PSM_KT_DATA"));
        let mut config = worker(&env("PSM_KT_INSTANCE"));
        config.lease_ttl = Duration::from_secs(2);
        config.renew_every = Duration::from_millis(400);
        config.poll_interval = Duration::from_millis(100);
        let (_tx, rx) = tokio::sync::watch::channel(false);
        if role == "encoder" {
            let enc = Arc::new(Encoder::new(
                engine,
                layout,
                EncoderSettings::default(),
                config,
            ));
            enc.run(rx).await;
        } else {
            let moto_port: u16 = env("PSM_KT_MOTO").parse().unwrap();
            let mut c = psm_storage::S3Config::new(env("PSM_KT_BUCKET"));
            c.endpoint = Some(format!("http://127.0.0.1:{moto_port}"));
            c.allow_http = true;
            c.access_key_id = Some("test".into());
            c.secret_access_key = Some(psm_storage::SecretString::from("test"));
            c.tuning = conformance::tuning();
            let store = psm_storage::open(&StoreConfig::S3(c)).unwrap();
            let up = Arc::new(Uploader::new(engine, store, layout, config));
            up.run(rx).await;
        }
    });
}

struct Workers {
    exe: PathBuf,
    db: PathBuf,
    data: PathBuf,
    logs: PathBuf,
    moto: u16,
    children: Vec<(String, Child)>,
    started: usize,
}

impl Workers {
    fn spawn(&mut self, role: &str) -> (String, Child) {
        self.started += 1;
        let instance = format!("{role}-{}", self.started);
        let log = std::fs::File::create(self.logs.join(format!("{instance}.log"))).unwrap();
        let child = Command::new(&self.exe)
            .args([
                "worker_process_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PSM_KT_ROLE", role)
            .env("PSM_KT_DB", &self.db)
            .env("PSM_KT_DATA", &self.data)
            .env("PSM_KT_MOTO", self.moto.to_string())
            .env("PSM_KT_BUCKET", "kill")
            .env("PSM_KT_INSTANCE", &instance)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        (role.to_owned(), child)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// No local raw recording is gone unless its session is Done-Uploaded.
async fn check_nothing_deleted_early(
    engine: &psm_core::Engine,
    layout: &LocalLayout,
    ids: &[SessionId],
) {
    for id in ids {
        if !layout.raw_recording(*id).exists() {
            let stage = engine.session(*id).await.unwrap().stage;
            assert_eq!(
                stage,
                Stage::DoneUploaded,
                "{id}: raw recording deleted while {stage}"
            );
        }
    }
}

fn exe() -> PathBuf {
    std::env::current_exe().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_encoders_and_uploaders_while_200_sessions_flow() {
    let moto = peers::Moto::start();
    moto.create_bucket("kill");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let layout = LocalLayout::new(&data);
    layout.create().unwrap();
    let db = dir.path().join("psm.db");
    let sqlite = SqliteStore::open(&db).await.unwrap();
    let engine = engine_over(Arc::new(sqlite), kill_test_engine_config());
    let store =
        psm_storage::open(&StoreConfig::S3(moto.config("kill", conformance::tuning()))).unwrap();

    let mut originals: HashMap<SessionId, Checksum> = HashMap::new();
    let mut ids = Vec::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut add_sessions =
        async |n: usize, rng: &mut rand::rngs::StdRng, ids: &mut Vec<SessionId>| {
            for _ in 0..n {
                let id = recorded_session(&engine, &layout, rng.random_range(20..1500)).await;
                let bytes = std::fs::read(layout.raw_recording(id)).unwrap();
                originals.insert(id, Checksum::of(&bytes));
                ids.push(id);
            }
        };
    add_sessions(SESSIONS / 2, &mut rng, &mut ids).await;

    let mut workers = Workers {
        exe: exe(),
        db: db.clone(),
        data: data.clone(),
        logs: logs.clone(),
        moto: moto.port,
        children: Vec::new(),
        started: 0,
    };
    for role in ["encoder", "encoder", "uploader", "uploader"] {
        let w = workers.spawn(role);
        workers.children.push(w);
    }
    // The watchdog, as the control plane runs it.
    let watchdog_engine = engine.clone();
    let watchdog = tokio::spawn(async move {
        loop {
            let _ = watchdog_engine.sweep().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });

    let start = Instant::now();
    for kill in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..600))).await;
        let i = rng.random_range(0..workers.children.len());
        let (role, mut child) = workers.children.swap_remove(i);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let w = workers.spawn(&role);
        workers.children.push(w);
        if kill == KILLS / 2 {
            // More sessions end while the killing goes on.
            add_sessions(SESSIONS - ids.len(), &mut rng, &mut ids).await;
        }
        check_nothing_deleted_early(&engine, &layout, &ids).await;
    }
    assert_eq!(ids.len(), SESSIONS);
    loop {
        check_nothing_deleted_early(&engine, &layout, &ids).await;
        let statuses = engine.recording_status(&ids).await.unwrap();
        let done = statuses
            .iter()
            .filter(|s| s.stage == Stage::DoneUploaded)
            .count();
        if done == SESSIONS {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "only {done} of {SESSIONS} Done-Uploaded; logs in {}; stages: {:?}",
            logs.display(),
            statuses
                .iter()
                .filter(|s| s.stage != Stage::DoneUploaded)
                .take(5)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Local copies go (a deletion cut short by a kill is finished by the next uploader).
    let deadline = Instant::now() + Duration::from_secs(60);
    while ids.iter().any(|id| layout.raw_recording(*id).exists()) {
        assert!(Instant::now() < deadline, "local copies left behind");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    watchdog.abort();
    drop(workers);

    let mut expected_keys = BTreeSet::new();
    for id in &ids {
        let trail = engine.audit_trail(*id).await.unwrap();
        let commits = trail
            .iter()
            .filter(|e| e.record.to_stage == Some(Stage::DoneUploaded))
            .count();
        assert_eq!(commits, 1, "{id}: {commits} commits to Done-Uploaded");
        assert!(
            trail
                .iter()
                .all(|e| e.record.action != AuditAction::AttemptFailed
                    || e.record.detail.contains("lease")),
            "{id}: an attempt failed for a reason other than a killed worker: {trail:?}"
        );
        let raw_key = ObjectKey::new(format!("sessions/{id}/recording.psmr")).unwrap();
        let info = store.head(&raw_key).await.unwrap().expect("raw stored");
        store
            .verify(&raw_key, &originals[id], info.size, VerifyDepth::Content)
            .await
            .unwrap();
        let manifest_key = ObjectKey::new(format!("sessions/{id}/manifest.json")).unwrap();
        let bytes = store.get(&manifest_key, 1 << 20).await.unwrap();
        let m = Manifest::from_bytes(&bytes, *id, Path::new("remote manifest")).unwrap();
        assert_eq!(m.raw.blake3, originals[id]);
        assert!(m.integrity.complete);
        expected_keys.insert(manifest_key.to_string());
        for f in m.files() {
            let k = ObjectKey::new(format!("sessions/{id}/{}", f.name)).unwrap();
            store
                .verify(&k, &f.blake3, f.size, VerifyDepth::Content)
                .await
                .unwrap();
            expected_keys.insert(k.to_string());
        }
    }
    let stored: BTreeSet<String> = store
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key.to_string())
        .collect();
    assert_eq!(stored, expected_keys, "orphan or missing objects");
}
