//! The one test suite every [`UserDirectory`] backend runs.
#![allow(clippy::unwrap_used)]

use super::*;

fn pw(s: &str) -> Secret<String> {
    Secret::new(s.to_owned())
}

/// A six-digit code that is not `totp`'s at `t` nor one step either side.
fn wrong_code(totp: &TotpSecret, t: u64) -> String {
    let near: Vec<String> = [t - 30, t, t + 30]
        .iter()
        .map(|&at| totp.code_at(at).unwrap())
        .collect();
    (0..4)
        .map(|i| format!("{:06}", i * 111_111))
        .find(|c| !near.contains(c))
        .unwrap()
}

/// Runs every check against an empty directory.
pub(crate) async fn run(dir: &dyn UserDirectory) {
    let key =
        AuthorizedKey::parse("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBfoo alice@laptop").unwrap();
    let key2 = AuthorizedKey::parse("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBbar").unwrap();
    let totp = TotpSecret::generate();
    dir.create_user(&NewUser {
        name: "alice".parse().unwrap(),
        password: Some(PasswordHash::hash("pw-alice").unwrap()),
        keys: vec![key.clone()],
        totp: Some(totp.clone()),
        roles: vec!["ops".into(), "dba".into(), "ops".into()],
    })
    .await
    .unwrap();
    assert!(matches!(
        dir.create_user(&NewUser {
            name: "alice".parse().unwrap(),
            ..NewUser::default()
        })
        .await,
        Err(CoreError::UserExists(_))
    ));

    let alice = dir.user("alice").await.unwrap().unwrap();
    assert!(alice.verify_password("pw-alice"));
    assert!(!alice.verify_password("pw-bob"));
    assert!(alice.has_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBfoo"));
    assert!(!alice.has_key(&key2.key()));
    assert_eq!(alice.keys[0].comment(), "alice@laptop");
    assert_eq!(alice.roles, vec!["dba".to_owned(), "ops".to_owned()]);
    let t = 1_800_000_000;
    assert!(alice.verify_totp(&totp.code_at(t).unwrap(), t));
    assert!(alice.has_password() && alice.needs_totp());
    assert!(dir.user("nobody").await.unwrap().is_none());
    assert!(dir.user("bad+name").await.unwrap().is_none());

    // The directory verifies where the secrets live: accepted or refused, nothing more.
    assert!(dir.verify_password("alice", &pw("pw-alice")).await.unwrap());
    assert!(!dir.verify_password("alice", &pw("pw-bob")).await.unwrap());
    assert!(!dir.verify_password("alice", &pw("")).await.unwrap());
    assert!(
        !dir.verify_password("alice", &pw(&"x".repeat(5000)))
            .await
            .unwrap()
    );
    assert!(
        !dir.verify_password("nobody", &pw("pw-alice"))
            .await
            .unwrap()
    );
    assert!(
        !dir.verify_password("bad+name", &pw("pw-alice"))
            .await
            .unwrap()
    );
    // A code is accepted once: the record check above used step t, so that code is spent.
    let code = totp.code_at(t).unwrap();
    assert!(
        !dir.verify_totp("alice", &code, t).await.unwrap(),
        "a used code is refused"
    );
    let t = t + 300;
    let code = totp.code_at(t).unwrap();
    assert!(!dir.verify_totp("alice", &code, t + 300).await.unwrap());
    assert!(
        !dir.verify_totp("alice", &wrong_code(&totp, t), t)
            .await
            .unwrap()
    );
    assert!(!dir.verify_totp("alice", "abcdef", t).await.unwrap());
    assert!(!dir.verify_totp("nobody", &code, t).await.unwrap());
    assert!(dir.verify_totp("alice", &code, t).await.unwrap());
    assert!(
        !dir.verify_totp("alice", &code, t + 30).await.unwrap(),
        "replayed within its window"
    );
    let t = t + 60;
    let code = totp.code_at(t).unwrap();
    dir.update_user(
        "alice",
        &UserUpdate {
            disabled: Some(true),
            ..UserUpdate::default()
        },
    )
    .await
    .unwrap();
    assert!(!dir.verify_password("alice", &pw("pw-alice")).await.unwrap());
    assert!(!dir.verify_totp("alice", &code, t).await.unwrap());
    dir.update_user(
        "alice",
        &UserUpdate {
            disabled: Some(false),
            ..UserUpdate::default()
        },
    )
    .await
    .unwrap();
    assert!(dir.verify_password("alice", &pw("pw-alice")).await.unwrap());

    // keys
    dir.add_key("alice", &key2).await.unwrap();
    dir.add_key("alice", &key2).await.unwrap();
    assert_eq!(dir.user("alice").await.unwrap().unwrap().keys.len(), 2);
    assert!(dir.remove_key("alice", &key).await.unwrap());
    assert!(!dir.remove_key("alice", &key).await.unwrap());
    assert!(matches!(
        dir.add_key("nobody", &key).await,
        Err(CoreError::UnknownUser(_))
    ));

    // grants
    dir.grant("ops", "web-01").await.unwrap();
    dir.grant("ops", "web-01").await.unwrap();
    dir.grant("dba", "db-01").await.unwrap();
    dir.grant("other", "secret-01").await.unwrap();
    assert!(dir.grant("ops", "bad target").await.is_err());
    let alice = dir.user("alice").await.unwrap().unwrap();
    assert_eq!(
        dir.allowed_targets(&alice).await.unwrap(),
        vec!["db-01", "web-01"]
    );
    assert!(dir.may_reach(&alice, "web-01").await.unwrap());
    assert!(!dir.may_reach(&alice, "secret-01").await.unwrap());
    dir.grant("dba", ALL_TARGETS).await.unwrap();
    assert!(dir.may_reach(&alice, "secret-01").await.unwrap());
    assert!(dir.revoke("dba", ALL_TARGETS).await.unwrap());
    assert!(!dir.revoke("dba", ALL_TARGETS).await.unwrap());
    assert!(!dir.may_reach(&alice, "secret-01").await.unwrap());

    // updates
    dir.update_user(
        "alice",
        &UserUpdate {
            password: Some(None),
            totp: Some(None),
            roles: Some(vec!["other".into()]),
            disabled: None,
        },
    )
    .await
    .unwrap();
    let alice = dir.user("alice").await.unwrap().unwrap();
    assert!(alice.password.is_none() && alice.totp.is_none());
    assert!(!alice.verify_password("pw-alice"));
    assert!(!dir.verify_password("alice", &pw("pw-alice")).await.unwrap());
    assert!(
        !dir.verify_totp("alice", &code, t).await.unwrap(),
        "no second factor: nothing to accept"
    );
    assert!(dir.may_reach(&alice, "secret-01").await.unwrap());
    dir.update_user(
        "alice",
        &UserUpdate {
            disabled: Some(true),
            ..UserUpdate::default()
        },
    )
    .await
    .unwrap();
    let alice = dir.user("alice").await.unwrap().unwrap();
    assert!(alice.disabled && !alice.has_key(&key2.key()));
    assert!(dir.allowed_targets(&alice).await.unwrap().is_empty());
    assert!(matches!(
        dir.update_user("nobody", &UserUpdate::default()).await,
        Err(CoreError::UnknownUser(_))
    ));
    assert!(
        dir.update_user(
            "alice",
            &UserUpdate {
                roles: Some(vec!["a b".into()]),
                ..UserUpdate::default()
            }
        )
        .await
        .is_err()
    );

    // listing and deletion
    dir.create_user(&NewUser {
        name: "bob".parse().unwrap(),
        ..NewUser::default()
    })
    .await
    .unwrap();
    let names: Vec<String> = dir
        .users()
        .await
        .unwrap()
        .iter()
        .map(|u| u.name.to_string())
        .collect();
    assert_eq!(names, vec!["alice", "bob"]);
    assert!(dir.delete_user("alice").await.unwrap());
    assert!(!dir.delete_user("alice").await.unwrap());
    assert!(dir.user("alice").await.unwrap().is_none());
    // a user created again under a deleted name starts clean
    dir.create_user(&NewUser {
        name: "alice".parse().unwrap(),
        ..NewUser::default()
    })
    .await
    .unwrap();
    let alice = dir.user("alice").await.unwrap().unwrap();
    assert!(alice.keys.is_empty() && alice.roles.is_empty());
}
