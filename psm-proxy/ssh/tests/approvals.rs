//! Issue 17 L9: a command held for approval in a user's session can never be approved by
//! that same user (an administrator who is also the session's user), whichever way the
//! decision arrives: the live server and the control plane's queue both end in
//! `psm_proxy::registry::apply`. Through OpenSSH, the gateway with the policy tap and a real
//! sshd: before the fix, alice's own approval ran her held command.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use psm_core::directory::MemoryDirectory;
use psm_core::live::{LiveAction, LiveCommand};
use psm_core::policy::Policy;
use psm_proxy::TapFactories;
use psm_proxy::policy_tap::{Enforcement, PolicyTapFactory};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn l9_the_sessions_own_user_cannot_approve_a_held_command() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let flag = dir.path().join("psm-held");
    let policy = Policy::from_toml(&format!(
        "[[rule]]\nname = \"needs-approval\"\nglob = \"touch {}\"\naction = \"require-approval\"\n",
        flag.display()
    ))
    .unwrap();
    let taps = TapFactories::new(vec![
        Arc::new(PolicyTapFactory::new(
            policy,
            Arc::new(MemoryDirectory::new()),
            Enforcement {
                approval_timeout: None,
                ..Enforcement::default()
            },
        )),
        Arc::new(SharedTapFactory(Arc::new(MemoryTap::default()))),
    ]);
    let gw = Gateway::start_with(
        &sshd,
        Options {
            taps: Some(Arc::new(taps)),
            ..Options::default()
        },
    )
    .await;
    let ssh = gw.ssh("alice+t2", &[], &format!("touch {}", flag.display()));
    let client = tokio::spawn(run(ssh, LIMIT));

    // Wait (without asserting on time) until the command is held.
    let (session, approval) = loop {
        let held = gw.registry.list().into_iter().find_map(|info| {
            let s = gw.registry.get(info.id)?;
            let a = s.control().approvals().into_iter().next()?;
            Some((info.id, a.id))
        });
        if let Some(h) = held {
            break h;
        }
        assert!(!client.is_finished(), "the command was never held");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let decide = |actor: &str, action: LiveAction| LiveCommand {
        id: 1,
        session,
        action,
        actor: actor.into(),
        reason: Some("looks fine".into()),
        approval: Some(approval),
        viewer: None,
    };

    // Her own approval, under any spelling of her name, is refused with a clear message
    // and decides nothing.
    for me in ["alice", "Alice", " alice "] {
        let err = gw
            .registry
            .apply(&decide(me, LiveAction::Approve))
            .expect_err("the session's own user approved her command");
        assert!(
            err.contains("cannot approve") && err.contains("own"),
            "{err}"
        );
    }
    assert!(
        !flag.exists(),
        "the held command ran on its user's approval"
    );
    let s = gw.registry.get(session).unwrap();
    assert_eq!(s.control().approvals().len(), 1, "still pending");

    // Another administrator's approval lets it run.
    assert_eq!(
        gw.registry.apply(&decide("bob", LiveAction::Approve)),
        Ok("approved".into())
    );
    let out = client.await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(flag.exists(), "approved by bob, the command ran");
    gw.stop().await;
}
