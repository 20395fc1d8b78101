//! The ControlPlane conformance suite on the in-process LocalControlPlane, over memory,
//! SQLite and PostgreSQL (psm-server's tests run the same suite over HTTP).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use psm_core::clock::ManualClock;
use psm_core::control_plane::conformance::{Fixture, run_all};
use psm_core::store::{MemoryStore, SessionStore};
use psm_core::vault::{
    Keyring, MasterKey, MemoryVaultStore, PamSettings, RecipientKey, StorageMode, Vault,
    VaultConfig, VaultStore,
};
use psm_core::{Engine, EngineConfig, LocalControlPlane, Timestamp};

fn settings() -> PamSettings {
    PamSettings {
        storage_mode: StorageMode::Aws,
        encryption_key: Some(RecipientKey::from_bytes([7; 32])),
        ..PamSettings::default()
    }
}

fn fixture(sessions: Arc<dyn SessionStore>, vault_store: Arc<dyn VaultStore>) -> Fixture {
    let clock = ManualClock::new(Timestamp::from_micros(1_800_000_000_000_000));
    let engine = Engine::new(sessions, Arc::new(clock.clone()), EngineConfig::default());
    let vault = Vault::new(
        vault_store,
        Keyring::new(MasterKey::generate().unwrap()),
        engine.clone(),
        VaultConfig::default(),
    );
    let cp = LocalControlPlane::new(engine.clone(), vault.clone(), settings());
    Fixture {
        cp: Arc::new(cp),
        clock,
        engine,
        vault,
        settings: settings(),
    }
}

#[tokio::test]
async fn local_control_plane_on_memory() {
    run_all(|| async {
        fixture(
            Arc::new(MemoryStore::new()),
            Arc::new(MemoryVaultStore::new()),
        )
    })
    .await;
}

#[tokio::test]
async fn local_control_plane_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicU32::new(0);
    run_all(|| async {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let s = psm_core::store::SqliteStore::open(dir.path().join(format!("cp{i}.db")))
            .await
            .unwrap();
        fixture(Arc::new(s.clone()), Arc::new(s))
    })
    .await;
}

#[tokio::test]
async fn local_control_plane_on_postgres() {
    let stores = std::sync::Mutex::new(Vec::new());
    run_all(|| async {
        let s = common::postgres_store(4).await;
        stores.lock().unwrap().push(s.clone());
        fixture(Arc::new(s.clone()), Arc::new(s))
    })
    .await;
    for s in stores.into_inner().unwrap() {
        s.drop_schema().await.unwrap();
    }
}

#[tokio::test]
async fn engine_alone_serves_the_lifecycle_queue_and_admin_roles() {
    // The engine holds no vault, settings or live hub: it is not a whole ControlPlane (the
    // compiler says so), but a gateway's lifecycle, the workers' queue and an admin can hold it.
    use psm_core::{NewSession, ProcessInstance, Protocol, SessionAdmin, SessionId};
    use psm_core::{SessionLifecycle, WorkQueue};
    let engine = Engine::new(
        Arc::new(MemoryStore::new()),
        Arc::new(psm_core::clock::SystemClock),
        EngineConfig::default(),
    );
    let gateway: &dyn SessionLifecycle = &engine;
    let queue: &dyn WorkQueue = &engine;
    let admin: &dyn SessionAdmin = &engine;
    let gw = ProcessInstance::new("gw-1").unwrap();
    let id = SessionId::new();
    let s = gateway
        .open_session(NewSession {
            id,
            user: "alice".into(),
            target: "web-01".into(),
            protocol: Protocol::Ssh,
            checkout_id: None,
            process_instance: gw.clone(),
        })
        .await
        .unwrap();
    assert_eq!(s.stage, psm_core::Stage::Connected);
    admin
        .request_termination(id, "admin", "test")
        .await
        .unwrap();
    assert!(gateway.heartbeat(id, &gw).await.unwrap().terminate);
    gateway.end_session(id, &gw).await.unwrap();
    let encoder = ProcessInstance::new("enc-1").unwrap();
    assert_eq!(
        queue.claim_for_encoding(&encoder, 4).await.unwrap().len(),
        1
    );
}
