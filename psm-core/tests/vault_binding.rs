//! Issue 17 M6: a credential is bound to where its target is. Repointing a target (host, port,
//! host key) through the vault invalidates its credential (audited as an alert); a repoint
//! written straight to the store leaves a credential that does not open; credentials sealed
//! before the binding (version 1) stay readable and are re-sealed bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use psm_core::clock::SystemClock;
use psm_core::store::{AuditQuery, SqliteStore};
use psm_core::vault::{
    CheckoutRequest, Credential, Keyring, MasterKey, SealedCredential, Target, Vault, VaultConfig,
    VaultStore,
};
use psm_core::{CoreError, Engine, EngineConfig, NewSession, ProcessInstance, Protocol, SessionId};

const SECRET: &str = "vaulted-password-5521";

fn target(host: &str, port: u16, host_key: Option<&str>) -> Target {
    Target {
        name: "web-01".into(),
        host: host.into(),
        port,
        protocol: Protocol::Ssh,
        host_key: host_key.map(str::to_owned),
    }
}

struct Fixture {
    engine: Engine,
    vault: Vault,
    store: SqliteStore,
    key: MasterKey,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("psm.db")).await.unwrap();
    let engine = Engine::new(
        Arc::new(store.clone()),
        Arc::new(SystemClock),
        EngineConfig::default(),
    );
    let key = MasterKey::generate().unwrap();
    let vault = Vault::new(
        Arc::new(store.clone()),
        Keyring::new(key.clone()),
        engine.clone(),
        VaultConfig::default(),
    );
    Fixture {
        engine,
        vault,
        store,
        key,
        _dir: dir,
    }
}

/// A Connected session of alice on web-01 under a fresh checkout; what the gateway fetches.
async fn fetch(f: &Fixture) -> Result<Credential, CoreError> {
    let checkout = f
        .vault
        .checkout(
            CheckoutRequest {
                user: "alice".into(),
                target: "web-01".into(),
                duration: Duration::from_secs(600),
            },
            "admin",
        )
        .await?;
    let gw = ProcessInstance::new("gateway-1").unwrap();
    let id = SessionId::new();
    f.engine
        .open_session(NewSession {
            id,
            user: "alice".into(),
            target: "web-01".into(),
            protocol: Protocol::Ssh,
            checkout_id: Some(checkout.id),
            process_instance: gw.clone(),
        })
        .await?;
    f.vault.get_credential(id, &gw).await
}

fn password(c: &Credential) -> String {
    match &c.secret {
        psm_core::vault::CredentialSecret::Password(p) => p.expose_secret().clone(),
        other => panic!("not a password: {other:?}"),
    }
}

#[tokio::test]
async fn repointing_a_target_invalidates_its_credential_and_alerts() {
    let f = fixture().await;
    f.vault
        .put_target(target("10.0.0.5", 22, Some("SHA256:aaaa")), "admin")
        .await
        .unwrap();
    f.vault
        .set_credential("web-01", Credential::password("root", SECRET), "admin")
        .await
        .unwrap();
    assert_eq!(password(&fetch(&f).await.unwrap()), SECRET);

    // Put again unchanged: the credential stays.
    f.vault
        .put_target(target("10.0.0.5", 22, Some("SHA256:aaaa")), "admin")
        .await
        .unwrap();
    assert_eq!(password(&fetch(&f).await.unwrap()), SECRET);

    for (i, moved) in [
        target("203.0.113.9", 22, Some("SHA256:aaaa")),
        target("203.0.113.9", 2222, Some("SHA256:aaaa")),
        target("203.0.113.9", 2222, Some("SHA256:bbbb")),
        target("203.0.113.9", 2222, None),
    ]
    .into_iter()
    .enumerate()
    {
        f.vault.put_target(moved.clone(), "mallory").await.unwrap();
        assert!(
            f.store.credential("web-01").await.unwrap().is_none(),
            "repoint {i} leaves no credential"
        );
        let err = fetch(&f).await.unwrap_err();
        assert!(
            matches!(err, CoreError::NoCredential { .. }),
            "repoint {i}: {err}"
        );
        let events = f
            .engine
            .store()
            .audit_events(&AuditQuery::default())
            .await
            .unwrap();
        let alerts: Vec<_> = events
            .iter()
            .filter(|e| {
                e.record
                    .detail
                    .starts_with("ALERT: target web-01 repointed")
            })
            .collect();
        assert_eq!(alerts.len(), i + 1, "one alert per repoint");
        assert_eq!(alerts[i].record.actor, "mallory");
        assert!(events.iter().all(|e| !e.record.detail.contains(SECRET)));
        // Set again, it works at the new place.
        f.vault
            .set_credential("web-01", Credential::password("root", SECRET), "admin")
            .await
            .unwrap();
        assert_eq!(password(&fetch(&f).await.unwrap()), SECRET);
    }
}

#[tokio::test]
async fn a_repoint_written_past_the_vault_leaves_a_credential_that_does_not_open() {
    let f = fixture().await;
    f.vault
        .put_target(target("10.0.0.5", 22, Some("SHA256:aaaa")), "admin")
        .await
        .unwrap();
    f.vault
        .set_credential("web-01", Credential::password("root", SECRET), "admin")
        .await
        .unwrap();
    for moved in [
        target("203.0.113.9", 22, Some("SHA256:aaaa")),
        target("10.0.0.5", 23, Some("SHA256:aaaa")),
        target("10.0.0.5", 22, Some("SHA256:evil")),
        target("10.0.0.5", 22, None),
    ] {
        // Straight to the database, as someone with write access to psm.db would.
        f.store
            .put_target(&moved, psm_core::Timestamp::from_micros(1))
            .await
            .unwrap();
        let err = fetch(&f).await.unwrap_err();
        assert!(
            matches!(err, CoreError::Vault { .. }) && err.to_string().contains("repointed"),
            "{err}"
        );
        assert!(!err.to_string().contains(SECRET));
    }
    f.store
        .put_target(
            &target("10.0.0.5", 22, Some("SHA256:aaaa")),
            psm_core::Timestamp::from_micros(1),
        )
        .await
        .unwrap();
    assert_eq!(password(&fetch(&f).await.unwrap()), SECRET);
}

#[tokio::test]
async fn credentials_sealed_before_the_binding_stay_readable_and_are_rebound() {
    let f = fixture().await;
    f.vault
        .put_target(target("10.0.0.5", 22, Some("SHA256:aaaa")), "admin")
        .await
        .unwrap();
    // A row as the vault wrote it before the binding: associated data version 1.
    let plaintext = [&(SECRET.len() as u32).to_be_bytes()[..], SECRET.as_bytes()].concat();
    let old = Keyring::new(f.key.clone())
        .seal(
            &SealedCredential::aad_v1("web-01", "root", "password"),
            &plaintext,
        )
        .unwrap();
    f.store
        .put_credential(&SealedCredential {
            target: "web-01".into(),
            username: "root".into(),
            kind: "password".into(),
            sealed: old.clone(),
            updated: psm_core::Timestamp::from_micros(1),
        })
        .await
        .unwrap();
    assert_eq!(f.vault.upgrade_bindings().await.unwrap(), 1);
    assert_eq!(f.vault.upgrade_bindings().await.unwrap(), 0, "once");
    let row = f.store.credential("web-01").await.unwrap().unwrap();
    assert_ne!(row.sealed.nonce, old.nonce, "re-sealed");
    assert_eq!(password(&fetch(&f).await.unwrap()), SECRET);
    // Bound from now on.
    f.store
        .put_target(
            &target("203.0.113.9", 22, Some("SHA256:aaaa")),
            psm_core::Timestamp::from_micros(1),
        )
        .await
        .unwrap();
    assert!(matches!(
        fetch(&f).await.unwrap_err(),
        CoreError::Vault { .. }
    ));
}
