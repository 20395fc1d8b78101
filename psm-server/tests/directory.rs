//! The user directory over HTTP: psm-client's HttpDirectory against a real server, so a
//! remote gateway authenticates users exactly as an in-process one; reads for gateways,
//! writes for admins only; and checkouts honour the directory's role grants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Backend, Harness};
use psm_client::HttpDirectory;
use psm_core::directory::{
    AuthorizedKey, NewUser, PasswordHash, TotpSecret, UserDirectory, UserUpdate,
};
use psm_core::vault::{
    CheckoutRequest, Credential, DirectoryPolicy, Keyring, MasterKey, Target, Vault, VaultConfig,
};
use psm_core::{CoreError, Protocol};
use psm_server::Role;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop";

async fn run(backend: Backend) {
    let h = Harness::start(backend).await;
    let admin = HttpDirectory::new(h.client(Role::Admin));
    let gateway = HttpDirectory::new(h.client(Role::Gateway));
    let totp = TotpSecret::generate();
    admin
        .create_user(&NewUser {
            name: "alice".parse().unwrap(),
            password: Some(PasswordHash::hash("alice-pw").unwrap()),
            keys: vec![AuthorizedKey::parse(KEY).unwrap()],
            totp: Some(totp.clone()),
            roles: vec!["ops".into()],
        })
        .await
        .unwrap();
    assert!(matches!(
        admin
            .create_user(&NewUser {
                name: "alice".parse().unwrap(),
                ..NewUser::default()
            })
            .await,
        Err(CoreError::UserExists(_))
    ));
    admin.grant("ops", "web-01").await.unwrap();

    // The gateway reads and authenticates as it would in-process.
    let u = gateway.user("alice").await.unwrap().unwrap();
    assert!(u.verify_password("alice-pw"));
    assert!(!u.verify_password("wrong"));
    assert!(u.has_key(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    ));
    let now = 1_800_000_000;
    assert!(u.verify_totp(&totp.code_at(now).unwrap(), now));
    assert!(gateway.may_reach(&u, "web-01").await.unwrap());
    assert!(!gateway.may_reach(&u, "db-01").await.unwrap());
    assert_eq!(
        gateway.targets_of_roles(&["ops".into()]).await.unwrap(),
        vec!["web-01"]
    );
    assert!(gateway.user("nobody").await.unwrap().is_none());
    assert!(
        !format!(
            "{:?}",
            h.client(Role::Gateway).get_user("alice").await.unwrap()
        )
        .contains("argon2"),
        "Debug hides the hash"
    );

    // A gateway cannot write.
    assert!(matches!(
        gateway.grant("ops", "*").await,
        Err(CoreError::Forbidden(_))
    ));
    assert!(matches!(
        gateway.users().await,
        Err(CoreError::Forbidden(_))
    ));

    // Admin writes.
    admin
        .update_user(
            "alice",
            &UserUpdate {
                password: Some(None),
                roles: Some(vec!["ops".into(), "dba".into()]),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    let u = admin.user("alice").await.unwrap().unwrap();
    assert!(u.password.is_none());
    assert!(u.totp.is_some(), "absent field left as it is");
    assert_eq!(u.roles, vec!["dba", "ops"], "sorted by the directory");
    let k = AuthorizedKey::parse(KEY).unwrap();
    assert!(admin.remove_key("alice", &k).await.unwrap());
    assert!(!admin.remove_key("alice", &k).await.unwrap());
    admin.add_key("alice", &k).await.unwrap();
    assert_eq!(admin.users().await.unwrap().len(), 1);
    assert!(admin.revoke("ops", "web-01").await.unwrap());
    assert!(!admin.revoke("ops", "web-01").await.unwrap());
    assert!(matches!(
        admin.update_user("nobody", &UserUpdate::default()).await,
        Err(CoreError::UnknownUser(_))
    ));

    // Checkouts under the directory policy.
    admin.grant("dba", "db-01").await.unwrap();
    let vault = Vault::new(
        h.vault_store.clone(),
        Keyring::new(MasterKey::generate().unwrap()),
        h.engine.clone(),
        VaultConfig::default(),
    )
    .with_policy(Arc::new(DirectoryPolicy::new(h.directory.clone())));
    for name in ["db-01", "web-01"] {
        vault
            .put_target(
                Target {
                    name: name.into(),
                    host: "127.0.0.1".into(),
                    port: 22,
                    protocol: Protocol::Ssh,
                    host_key: None,
                },
                "admin",
            )
            .await
            .unwrap();
        vault
            .set_credential(name, Credential::password("root", "pw"), "admin")
            .await
            .unwrap();
    }
    let req = |user: &str, target: &str| CheckoutRequest {
        user: user.into(),
        target: target.into(),
        duration: Duration::from_secs(600),
    };
    vault
        .checkout(req("alice", "db-01"), "admin")
        .await
        .unwrap();
    assert!(matches!(
        vault.checkout(req("alice", "web-01"), "admin").await,
        Err(CoreError::Forbidden(_))
    ));
    assert!(matches!(
        vault.checkout(req("mallory", "db-01"), "admin").await,
        Err(CoreError::Forbidden(_))
    ));
    assert!(admin.delete_user("alice").await.unwrap());
    assert!(!admin.delete_user("alice").await.unwrap());
    h.stop().await;
}

#[tokio::test]
async fn directory_over_http_on_sqlite() {
    run(Backend::Sqlite).await;
}

#[tokio::test]
async fn directory_over_http_on_postgres() {
    run(Backend::Postgres).await;
}
