//! The gateway on the real control plane: vault targets, JIT checkouts and GetCredential
//! through `LocalControlPlane` (the same calls psm-client makes over HTTP).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use psm_core::clock::SystemClock;
use psm_core::store::MemoryStore;
use psm_core::vault::{
    Credential, Keyring, MasterKey, MemoryVaultStore, PamSettings, Target, Vault, VaultConfig,
};
use psm_core::{Engine, EngineConfig, LocalControlPlane, ProcessInstance, Protocol, Stage};
use psm_proxy::ControlPlaneTargets;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vaulted_credential_checkout_and_checkin() {
    let sshd = Sshd::start();
    let engine = Engine::new(
        Arc::new(MemoryStore::new()),
        Arc::new(SystemClock),
        EngineConfig::default(),
    );
    let vault = Vault::new(
        Arc::new(MemoryVaultStore::new()),
        Keyring::new(MasterKey::generate().unwrap()),
        engine.clone(),
        VaultConfig::default(),
    );
    vault
        .put_target(
            Target {
                name: "t1".into(),
                host: "127.0.0.1".into(),
                port: sshd.port,
                protocol: Protocol::Ssh,
                host_key: Some(sshd.host_pub.clone()),
            },
            "admin",
        )
        .await
        .unwrap();
    vault
        .set_credential(
            "t1",
            Credential::password(TARGET_USER, target_password()),
            "admin",
        )
        .await
        .unwrap();
    let cp = Arc::new(LocalControlPlane::new(
        engine.clone(),
        vault.clone(),
        PamSettings::default(),
    ));
    let targets = ControlPlaneTargets::new(
        cp.clone(),
        ProcessInstance::new("gw-test").unwrap(),
        Duration::from_secs(3600),
    );
    let gw = Gateway::start_with(
        &sshd,
        Options {
            control_plane: Some(cp.clone()),
            targets: Some(Arc::new(targets)),
            ..Options::default()
        },
    )
    .await;

    let out = run(gw.ssh("alice+t1", &[], "whoami"), Duration::from_secs(60)).await;
    assert_eq!(
        text(&out.stdout).trim(),
        TARGET_USER,
        "{}",
        text(&out.stderr)
    );
    let sessions = loop {
        let s = engine.list(&Default::default()).await.unwrap();
        if s.iter().all(|s| s.stage == Stage::Ended) {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let checkout = sessions[0]
        .checkout_id
        .clone()
        .expect("the session has its checkout");
    let status = vault.checkout_status(&checkout).await.unwrap();
    assert!(
        status.checkout.ended.is_some(),
        "checked in at session end: {status:?}"
    );
    assert_eq!(
        gw.tap.events().first().unwrap(),
        &format!("start alice t1 {TARGET_USER}")
    );

    // An unpinned target is refused (no trust-on-first-use configured). Changing the host
    // key deletes the credential (issue 17 M6): the operator sets it again.
    vault
        .put_target(
            Target {
                name: "t1".into(),
                host: "127.0.0.1".into(),
                port: sshd.port,
                protocol: Protocol::Ssh,
                host_key: None,
            },
            "admin",
        )
        .await
        .unwrap();
    vault
        .set_credential(
            "t1",
            Credential::password(TARGET_USER, target_password()),
            "admin",
        )
        .await
        .unwrap();
    let out = run(gw.ssh("alice+t1", &[], "true"), Duration::from_secs(60)).await;
    assert!(
        text(&out.stderr).contains("has no pinned host key"),
        "{}",
        text(&out.stderr)
    );
    gw.stop().await;
}
