//! Issue 17 M11: TOTP secrets are sealed with the vault's keyring in the database; secrets
//! stored in clear by earlier versions are still read (and written sealed from then on); a
//! process without the keyring sees the factor as configured but cannot verify it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use psm_core::directory::{
    DirectoryAdmin, DirectoryLookup, Factor, NewUser, PasswordHash, TotpSecret, UserUpdate,
};
use psm_core::store::SqliteStore;
use psm_core::vault::{Keyring, MasterKey};

async fn column(path: &std::path::Path, user: &str) -> String {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    let v: String = sqlx::query_scalar("SELECT totp_secret FROM directory_users WHERE name = $1")
        .bind(user)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    v
}

#[tokio::test]
async fn totp_secrets_are_sealed_and_clear_ones_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("psm.db");
    let keyring = Keyring::new(MasterKey::generate().unwrap());
    let old = SqliteStore::open(&db).await.unwrap();
    let sealed = SqliteStore::open(&db)
        .await
        .unwrap()
        .with_totp_keyring(keyring.clone());

    // As an earlier version wrote it: in clear.
    let first = TotpSecret::generate();
    old.create_user(&NewUser {
        name: "alice".parse().unwrap(),
        password: Some(PasswordHash::hash("pw").unwrap()),
        totp: Some(first.clone()),
        ..NewUser::default()
    })
    .await
    .unwrap();
    assert_eq!(column(&db, "alice").await, first.as_base32());
    let u = sealed.user("alice").await.unwrap().unwrap();
    assert_eq!(
        u.totp,
        Factor::Local(first.clone()),
        "a clear secret still reads"
    );

    // Written from now on: sealed, and read back the same.
    let second = TotpSecret::generate();
    sealed
        .update_user(
            "alice",
            &UserUpdate {
                totp: Some(Some(second.clone())),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    let stored = column(&db, "alice").await;
    assert!(stored.starts_with("sealed-v1:"), "{stored}");
    assert!(!stored.contains(second.as_base32()));
    let u = sealed.user("alice").await.unwrap().unwrap();
    assert_eq!(u.totp, Factor::Local(second.clone()));
    let now = 1_900_000_000;
    let code = second.code_at(now).unwrap();
    assert!(sealed.verify_totp("alice", &code, now).await.unwrap());

    let bob = TotpSecret::generate();
    sealed
        .create_user(&NewUser {
            name: "bob".parse().unwrap(),
            password: Some(PasswordHash::hash("pw").unwrap()),
            totp: Some(bob.clone()),
            ..NewUser::default()
        })
        .await
        .unwrap();
    assert!(column(&db, "bob").await.starts_with("sealed-v1:"));

    // Without the keyring: configured, not verifiable (a login fails closed).
    let u = old.user("bob").await.unwrap().unwrap();
    assert_eq!(u.totp, Factor::Remote);
    let code = bob.code_at(now + 60).unwrap();
    assert!(!old.verify_totp("bob", &code, now + 60).await.unwrap());
    assert_eq!(old.users().await.unwrap().len(), 2, "listing still works");

    // Under another master key it does not open.
    let other = Keyring::new(MasterKey::generate().unwrap());
    let wrong_key = SqliteStore::open(&db)
        .await
        .unwrap()
        .with_totp_keyring(other);
    assert!(wrong_key.user("bob").await.is_err());
}
