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

    windows(dir).await;
    requests(dir).await;
}

/// Access requests: approval rules by target and `*`, requests filed, listed, changed only
/// from the version read, granting their target between approval and expiry.
async fn requests(dir: &dyn UserDirectory) {
    use crate::access::{
        ApprovalRule, MAX_PENDING_PER_USER, NewAccessRequest, RequestState, RequestStep,
    };
    use std::time::Duration;
    let t = |secs: u64| {
        crate::Timestamp::from_micros(1_800_000_000_000_000)
            .saturating_add(Duration::from_secs(secs))
    };

    assert!(dir.approval_rules().await.unwrap().is_empty());
    assert_eq!(dir.approval_rule("web-01").await.unwrap(), None);
    dir.set_approval_rule(&ApprovalRule::new("*", "leads", 1).unwrap())
        .await
        .unwrap();
    dir.set_approval_rule(&ApprovalRule::new("db-01", "dbas", 1).unwrap())
        .await
        .unwrap();
    // Replaced, not added.
    dir.set_approval_rule(&ApprovalRule::new("db-01", "dbas", 2).unwrap())
        .await
        .unwrap();
    let rules = dir.approval_rules().await.unwrap();
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert_eq!(
        dir.approval_rule("db-01").await.unwrap(),
        Some(ApprovalRule::new("db-01", "dbas", 2).unwrap())
    );
    assert_eq!(
        dir.approval_rule("web-01").await.unwrap(),
        Some(ApprovalRule::new("*", "leads", 1).unwrap()),
        "the * rule covers targets without their own"
    );
    let bad = ApprovalRule {
        target: "x'; DROP TABLE access_requests; --".into(),
        approver_role: "leads".into(),
        approvals: 1,
    };
    assert!(dir.set_approval_rule(&bad).await.is_err());

    let new = |user: &str, target: &str| NewAccessRequest {
        user: user.into(),
        target: target.into(),
        reason: "incident 42: disk full".into(),
        duration: Duration::from_secs(3600),
        created: t(0),
        approver_role: "dbas".into(),
        approvals_needed: 2,
    };
    let id = dir
        .create_access_request(&new("jit-alice", "db-01"))
        .await
        .unwrap();
    let r = dir.access_request(id).await.unwrap().unwrap();
    assert_eq!(
        (
            r.user.as_str(),
            r.target.as_str(),
            r.state,
            r.approvals_needed,
            r.version
        ),
        ("jit-alice", "db-01", RequestState::Pending, 2, 1)
    );
    assert_eq!(r.reason, "incident 42: disk full");
    assert_eq!(r.duration, Duration::from_secs(3600));
    assert_eq!(r.created, t(0));
    assert!(
        dir.request_grants("jit-alice", t(1))
            .await
            .unwrap()
            .is_empty()
    );

    // Two approvals from dbas; a stale write loses.
    let roles = vec!["dbas".to_owned()];
    let one = r
        .apply(
            &RequestStep::Approve {
                by: "jit-bob".into(),
            },
            &roles,
            t(10),
        )
        .unwrap();
    assert!(dir.replace_access_request(&one).await.unwrap());
    assert!(
        !dir.replace_access_request(&one).await.unwrap(),
        "written from a version that is gone"
    );
    let back = dir.access_request(id).await.unwrap().unwrap();
    assert_eq!(back, one);
    assert!(
        dir.request_grants("jit-alice", t(11))
            .await
            .unwrap()
            .is_empty()
    );
    let two = back
        .apply(
            &RequestStep::Approve {
                by: "jit-carol".into(),
            },
            &roles,
            t(20),
        )
        .unwrap();
    assert!(dir.replace_access_request(&two).await.unwrap());
    let back = dir.access_request(id).await.unwrap().unwrap();
    assert_eq!(back, two);
    assert_eq!(back.state, RequestState::Approved);
    assert_eq!(back.approvals.len(), 2);
    assert_eq!(back.expires, Some(t(3620)));
    assert_eq!(
        dir.request_grants("jit-alice", t(3619)).await.unwrap(),
        vec!["db-01".to_owned()]
    );
    assert!(
        dir.request_grants("jit-alice", t(3620))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        dir.request_grants("jit-bob", t(30))
            .await
            .unwrap()
            .is_empty()
    );

    // Listing: newest first, per user.
    let other = dir
        .create_access_request(&new("jit-dave", "web-01"))
        .await
        .unwrap();
    let all = dir.access_requests(None).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![other, id]
    );
    let mine = dir.access_requests(Some("jit-alice")).await.unwrap();
    assert_eq!(mine.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id]);
    assert_eq!(dir.access_request(i64::MAX).await.unwrap(), None);

    // Bounded: pending requests per user; malformed fields refused.
    for _ in 1..MAX_PENDING_PER_USER {
        dir.create_access_request(&new("jit-dave", "web-01"))
            .await
            .unwrap();
    }
    assert!(matches!(
        dir.create_access_request(&new("jit-dave", "web-01")).await,
        Err(CoreError::Forbidden(_))
    ));
    let mut evil = new("jit-erin", "db-01");
    evil.reason = "line\nbreak".into();
    assert!(dir.create_access_request(&evil).await.is_err());
    let mut long = new("jit-erin", "db-01");
    long.reason = "x".repeat(crate::access::MAX_REQUEST_REASON_LEN + 1);
    assert!(dir.create_access_request(&long).await.is_err());

    assert!(dir.remove_approval_rule("db-01").await.unwrap());
    assert!(!dir.remove_approval_rule("db-01").await.unwrap());
    assert_eq!(
        dir.approval_rule("db-01")
            .await
            .unwrap()
            .map(|r| r.approver_role),
        Some("leads".into())
    );
}

/// Access windows: added, listed by role, read back deciding the same, removed by id.
async fn windows(dir: &dyn UserDirectory) {
    use crate::access::{NewWindow, SourceCheck};
    assert!(dir.windows().await.unwrap().is_empty());
    let w1 = NewWindow::new(
        "ops",
        "web-01",
        "days=mon-fri hours=08:00-18:00 tz=Europe/Paris from=10.0.0.0/8"
            .parse()
            .unwrap(),
    )
    .unwrap();
    let w2 = NewWindow::new("ops", "*", "dates=2026-12-24..2026-12-26".parse().unwrap()).unwrap();
    let w3 = NewWindow::new("dba", "db-01", "hours=22:00-06:00".parse().unwrap()).unwrap();
    let id1 = dir.add_window(&w1).await.unwrap();
    let id2 = dir.add_window(&w2).await.unwrap();
    let id3 = dir.add_window(&w3).await.unwrap();
    assert!(id1 != id2 && id2 != id3 && id1 != id3);
    let all = dir.windows().await.unwrap();
    let listed: Vec<(i64, &str, &str)> = all
        .iter()
        .map(|w| (w.id, w.role.as_str(), w.target.as_str()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (id3, "dba", "db-01"),
            (id2, "ops", "*"),
            (id1, "ops", "web-01")
        ],
        "by role, target, id"
    );
    let read = all.iter().find(|w| w.id == id1).unwrap();
    assert_eq!(read.window, w1.window);
    assert_eq!(
        read.window.to_string(),
        "days=mon-fri hours=08:00-18:00 tz=Europe/Paris from=10.0.0.0/8"
    );
    // Wednesday 2026-12-09 08:30 UTC is 09:30 in Paris.
    let at = crate::Timestamp::from_micros(1_796_805_000_000_000);
    assert!(
        read.window
            .allows(at, SourceCheck::Known("10.1.1.1".parse().unwrap()))
    );
    assert!(
        !read
            .window
            .allows(at, SourceCheck::Known("11.1.1.1".parse().unwrap()))
    );

    let of_ops = dir.windows_of_roles(&["ops".into()]).await.unwrap();
    let mut ids: Vec<i64> = of_ops.iter().map(|w| w.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![id1, id2]);
    assert!(
        dir.windows_of_roles(&["nobody".into()])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        dir.windows_of_roles(&["ops".into(), "dba".into()])
            .await
            .unwrap()
            .len(),
        3
    );

    // Names are checked as grants' are.
    assert!(NewWindow::new("bad role", "x", "tz=UTC".parse().unwrap()).is_err());
    let sneaky = NewWindow {
        role: "ops".into(),
        target: "a b".into(),
        window: "tz=UTC".parse().unwrap(),
    };
    assert!(dir.add_window(&sneaky).await.is_err());

    assert!(dir.remove_window(id2).await.unwrap());
    assert!(!dir.remove_window(id2).await.unwrap());
    assert!(!dir.remove_window(i64::MAX).await.unwrap());
    assert_eq!(dir.windows().await.unwrap().len(), 2);
}
