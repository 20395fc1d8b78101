//! The credential vault on every backend (memory, SQLite, PostgreSQL): targets, sealed
//! credentials, checkouts, GetCredential's rules, checkin and expiry terminating sessions,
//! master-key rotation, and that the secret is never in an error or the audit trail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use psm_core::clock::ManualClock;
use psm_core::store::{MemoryStore, SessionStore};
use psm_core::vault::{
    CheckoutEnd, CheckoutRequest, Credential, CredentialSecret, Keyring, MasterKey,
    MemoryVaultStore, Target, Vault, VaultConfig, VaultStore,
};
use psm_core::{
    AuditAction, CoreError, Engine, EngineConfig, NewSession, ProcessInstance, Protocol, SessionId,
    Stage, Timestamp,
};

const SECRET: &str = "correct-horse-battery-staple-7731";

struct Fixture {
    engine: Engine,
    vault: Vault,
    vault_store: Arc<dyn VaultStore>,
    clock: ManualClock,
}

fn fixture(
    sessions: Arc<dyn SessionStore>,
    vault_store: Arc<dyn VaultStore>,
    key: MasterKey,
) -> Fixture {
    let clock = ManualClock::new(Timestamp::from_micros(1_800_000_000_000_000));
    let engine = Engine::new(sessions, Arc::new(clock.clone()), EngineConfig::default());
    let vault = Vault::new(
        vault_store.clone(),
        Keyring::new(key),
        engine.clone(),
        VaultConfig::default(),
    );
    Fixture {
        engine,
        vault,
        vault_store,
        clock,
    }
}

fn target(name: &str) -> Target {
    Target {
        name: name.into(),
        host: "127.0.0.1".into(),
        port: 2222,
        protocol: Protocol::Ssh,
        host_key: Some("SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG".into()),
    }
}

async fn open(
    f: &Fixture,
    user: &str,
    tgt: &str,
    checkout: Option<&psm_core::CheckoutId>,
    gw: &ProcessInstance,
) -> SessionId {
    let id = SessionId::new();
    f.engine
        .open_session(NewSession {
            id,
            user: user.into(),
            target: tgt.into(),
            protocol: Protocol::Ssh,
            checkout_id: checkout.cloned(),
            process_instance: gw.clone(),
        })
        .await
        .unwrap();
    id
}

async fn run_suite(f: Fixture) {
    let gw = ProcessInstance::new("gateway-1").unwrap();
    let other_gw = ProcessInstance::new("gateway-2").unwrap();

    // Targets.
    assert!(matches!(
        f.vault.target("web-01").await,
        Err(CoreError::UnknownTarget(_))
    ));
    f.vault.put_target(target("web-01"), "admin").await.unwrap();
    f.vault.put_target(target("db-01"), "admin").await.unwrap();
    assert_eq!(f.vault.target("web-01").await.unwrap(), target("web-01"));
    assert_eq!(f.vault.targets().await.unwrap().len(), 2);
    let mut bad = target("x");
    bad.port = 0;
    assert!(matches!(
        f.vault.put_target(bad, "admin").await,
        Err(CoreError::InvalidInput { .. })
    ));

    // Credentials need a target; sealed at rest.
    let err = f
        .vault
        .set_credential("nope", Credential::password("root", SECRET), "admin")
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::UnknownTarget(_)), "{err}");
    assert!(!err.to_string().contains(SECRET));
    f.vault
        .set_credential("web-01", Credential::password("root", SECRET), "admin")
        .await
        .unwrap();
    let row = f.vault_store.credential("web-01").await.unwrap().unwrap();
    assert!(
        !row.sealed
            .ciphertext
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes())
    );

    // A checkout needs a credential and a bounded duration.
    let req = |tgt: &str, d: u64| CheckoutRequest {
        user: "alice".into(),
        target: tgt.into(),
        duration: Duration::from_secs(d),
    };
    assert!(matches!(
        f.vault.checkout(req("db-01", 600), "admin").await,
        Err(CoreError::NoCredential { .. })
    ));
    assert!(matches!(
        f.vault.checkout(req("web-01", 5), "admin").await,
        Err(CoreError::InvalidInput { .. })
    ));
    let co = f.vault.checkout(req("web-01", 600), "admin").await.unwrap();
    let st = f.vault.checkout_status(&co.id).await.unwrap();
    assert_eq!(st.remaining_minutes, 10);
    assert!(st.active);

    // GetCredential: only the owning gateway, only while Connected and under a valid checkout.
    let s = open(&f, "alice", "web-01", Some(&co.id), &gw).await;
    let cred = f.vault.get_credential(s, &gw).await.unwrap();
    assert_eq!(cred.username, "root");
    match &cred.secret {
        CredentialSecret::Password(p) => assert_eq!(p.expose_secret(), SECRET),
        other => panic!("{other:?}"),
    }
    let err = f.vault.get_credential(s, &other_gw).await.unwrap_err();
    assert!(matches!(err, CoreError::Forbidden(_)), "{err}");
    let no_checkout = open(&f, "alice", "web-01", None, &gw).await;
    assert!(matches!(
        f.vault.get_credential(no_checkout, &gw).await,
        Err(CoreError::Forbidden(_))
    ));
    let wrong_user = open(&f, "mallory", "web-01", Some(&co.id), &gw).await;
    assert!(matches!(
        f.vault.get_credential(wrong_user, &gw).await,
        Err(CoreError::Forbidden(_))
    ));
    assert!(matches!(
        f.vault.get_credential(SessionId::new(), &gw).await,
        Err(CoreError::UnknownSession(_))
    ));

    // Time passes: remaining minutes go down; at expiry the sweep ends it and terminates.
    f.clock.advance(Duration::from_secs(270));
    assert_eq!(
        f.vault
            .checkout_status(&co.id)
            .await
            .unwrap()
            .remaining_minutes,
        6
    );
    f.clock.advance(Duration::from_secs(330));
    assert!(matches!(
        f.vault.get_credential(s, &gw).await,
        Err(CoreError::CheckoutEnded { .. })
    ));
    assert_eq!(f.vault.sweep_expired().await.unwrap(), 1);
    assert_eq!(f.vault.sweep_expired().await.unwrap(), 0);
    let session = f.engine.session(s).await.unwrap();
    assert!(session.terminate, "expiry asks the gateway to terminate");
    assert!(session.terminate_reason.unwrap().contains("expired"));
    let ended = f.vault.get_checkout(&co.id).await.unwrap();
    assert_eq!(ended.end_reason, Some(CheckoutEnd::Expired));

    // Checkin ends the checkout and terminates its live sessions; repeating it is a success.
    let co2 = f
        .vault
        .checkout(req("web-01", 3600), "admin")
        .await
        .unwrap();
    let s2 = open(&f, "alice", "web-01", Some(&co2.id), &gw).await;
    let s3 = open(&f, "alice", "web-01", Some(&co2.id), &gw).await;
    f.engine.end_session(s3, &gw).await.unwrap();
    f.vault.get_credential(s2, &gw).await.unwrap();
    let checkin = f.vault.checkin(&co2.id, "gateway-1").await.unwrap();
    assert!(!checkin.already_ended);
    assert_eq!(checkin.sessions_terminated, vec![s2], "only live sessions");
    assert!(f.engine.session(s2).await.unwrap().terminate);
    assert!(
        f.vault
            .checkin(&co2.id, "admin")
            .await
            .unwrap()
            .already_ended
    );
    assert!(matches!(
        f.vault.get_credential(s2, &gw).await,
        Err(CoreError::CheckoutEnded { .. })
    ));
    let unknown = psm_core::CheckoutId::new("no-such-checkout").unwrap();
    assert!(matches!(
        f.vault.checkin(&unknown, "admin").await,
        Err(CoreError::UnknownCheckout(_))
    ));

    // Ended sessions get no credential.
    let co3 = f
        .vault
        .checkout(req("web-01", 3600), "admin")
        .await
        .unwrap();
    let s4 = open(&f, "alice", "web-01", Some(&co3.id), &gw).await;
    f.engine.end_session(s4, &gw).await.unwrap();
    assert_eq!(f.engine.session(s4).await.unwrap().stage, Stage::Ended);
    assert!(matches!(
        f.vault.get_credential(s4, &gw).await,
        Err(CoreError::Forbidden(_))
    ));

    // Every refusal is audited; no audit event carries the secret.
    let events = f
        .engine
        .store()
        .audit_events(&psm_core::store::AuditQuery::default())
        .await
        .unwrap();
    let refused = events
        .iter()
        .filter(|e| e.record.action == AuditAction::Refused)
        .count();
    assert!(refused >= 6, "refusals audited: {refused}");
    assert!(events.iter().all(|e| !e.record.detail.contains(SECRET)));

    // Private keys too.
    f.vault
        .set_credential(
            "db-01",
            Credential::private_key(
                "deploy",
                "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n",
                Some("pp".into()),
            ),
            "admin",
        )
        .await
        .unwrap();
    let co4 = f
        .vault
        .checkout(
            CheckoutRequest {
                user: "bob".into(),
                target: "db-01".into(),
                duration: Duration::from_secs(60),
            },
            "admin",
        )
        .await
        .unwrap();
    let s5 = open(&f, "bob", "db-01", Some(&co4.id), &gw).await;
    let key = f.vault.get_credential(s5, &gw).await.unwrap();
    assert!(matches!(
        key.secret,
        CredentialSecret::PrivateKey {
            passphrase: Some(_),
            ..
        }
    ));

    // Removing a target removes its credential.
    f.vault.remove_target("db-01", "admin").await.unwrap();
    assert!(f.vault_store.credential("db-01").await.unwrap().is_none());
    assert!(matches!(
        f.vault.remove_target("db-01", "admin").await,
        Err(CoreError::UnknownTarget(_))
    ));
}

async fn run_rotation(sessions: Arc<dyn SessionStore>, store: Arc<dyn VaultStore>) {
    let old = MasterKey::generate().unwrap();
    let f = fixture(sessions.clone(), store.clone(), old.clone());
    for name in ["a", "b", "c"] {
        f.vault.put_target(target(name), "admin").await.unwrap();
        f.vault
            .set_credential(name, Credential::password("u", SECRET), "admin")
            .await
            .unwrap();
    }
    let new = MasterKey::generate().unwrap();
    // Without the old key, the credentials do not open, and the error names the key.
    let lost = Vault::new(
        store.clone(),
        Keyring::new(new.clone()),
        f.engine.clone(),
        VaultConfig::default(),
    );
    let co = lost
        .checkout(
            CheckoutRequest {
                user: "alice".into(),
                target: "a".into(),
                duration: Duration::from_secs(600),
            },
            "admin",
        )
        .await
        .unwrap();
    let gw = ProcessInstance::new("gw").unwrap();
    let s = open(&f, "alice", "a", Some(&co.id), &gw).await;
    let err = lost.get_credential(s, &gw).await.unwrap_err();
    assert!(err.to_string().contains(old.id().as_str()), "{err}");
    assert!(!err.to_string().contains(SECRET));
    // Rotation re-seals everything under the new key.
    let ring = Keyring::new(new.clone()).with_previous(old);
    let rotating = Vault::new(
        store.clone(),
        ring,
        f.engine.clone(),
        VaultConfig::default(),
    );
    assert_eq!(rotating.rotate().await.unwrap(), 3);
    assert_eq!(rotating.rotate().await.unwrap(), 0);
    let only_new = Vault::new(
        store,
        Keyring::new(new),
        f.engine.clone(),
        VaultConfig::default(),
    );
    assert_eq!(only_new.get_credential(s, &gw).await.unwrap().username, "u");
}

#[tokio::test]
async fn vault_on_memory() {
    let store: Arc<dyn VaultStore> = Arc::new(MemoryVaultStore::new());
    run_suite(fixture(
        Arc::new(MemoryStore::new()),
        store,
        MasterKey::generate().unwrap(),
    ))
    .await;
    run_rotation(
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryVaultStore::new()),
    )
    .await;
}

#[tokio::test]
async fn vault_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = psm_core::store::SqliteStore::open(dir.path().join("psm.db"))
        .await
        .unwrap();
    run_suite(fixture(
        Arc::new(store.clone()),
        Arc::new(store),
        MasterKey::generate().unwrap(),
    ))
    .await;
    let store = psm_core::store::SqliteStore::open(dir.path().join("rot.db"))
        .await
        .unwrap();
    run_rotation(Arc::new(store.clone()), Arc::new(store.clone())).await;
    // Nothing of the secret is in the database file in clear.
    store.close().await;
    for name in ["psm.db", "psm.db-wal", "rot.db", "rot.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(name)) {
            assert!(
                !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                "{name}"
            );
        }
    }
}

#[tokio::test]
async fn vault_on_postgres() {
    let store = common::postgres_store(4).await;
    run_suite(fixture(
        Arc::new(store.clone()),
        Arc::new(store.clone()),
        MasterKey::generate().unwrap(),
    ))
    .await;
    store.drop_schema().await.unwrap();
    let store = common::postgres_store(4).await;
    run_rotation(Arc::new(store.clone()), Arc::new(store.clone())).await;
    store.drop_schema().await.unwrap();
}
