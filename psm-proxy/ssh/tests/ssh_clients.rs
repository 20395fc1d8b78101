//! The gateway in front of a real OpenSSH sshd, driven by real OpenSSH and PuTTY clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use psm_core::Stage;

const LIMIT: Duration = Duration::from_secs(60);

async fn wait_ended(gw: &Gateway) -> Vec<psm_core::PrivSession> {
    for _ in 0..100 {
        let s = gw.sessions().await;
        if !s.is_empty() && s.iter().all(|s| s.stage != Stage::Connected) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("sessions still Connected: {:?}", gw.sessions().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_as_the_vaulted_account_with_its_exit_status() {
    let sshd = Sshd::start();
    let gw = Gateway::start(&sshd).await;
    let out = run(
        gw.ssh("alice+t1", &[], "whoami; echo to-stderr >&2; exit 3"),
        LIMIT,
    )
    .await;
    assert_eq!(
        text(&out.stdout).trim(),
        TARGET_USER,
        "stderr: {}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("to-stderr"));
    assert_eq!(out.status.code(), Some(3));

    let sessions = wait_ended(&gw).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].user, "alice");
    assert_eq!(sessions[0].target, "t1");
    assert_eq!(sessions[0].stage, Stage::Ended);
    let events = gw.tap.events();
    assert!(
        events.iter().any(|e| e.starts_with("start alice t1")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.contains("Exec(\"whoami; echo to-stderr >&2; exit 3\")")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.contains("exit") && e.contains("Status(3)")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e.starts_with("end UserDisconnected")),
        "{events:?}"
    );
    assert!(gw.tap.output_text().contains(TARGET_USER));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_credential_and_password_login() {
    let sshd = Sshd::start();
    let gw = Gateway::start(&sshd).await;
    let c = gw.ssh_password(ALICE_PW, "alice+t2", &[], "echo via-key-credential");
    let out = run(c, LIMIT).await;
    assert_eq!(
        text(&out.stdout).trim(),
        "via-key-credential",
        "{}",
        text(&out.stderr)
    );

    let c = gw.ssh_password("wrong", "alice+t1", &[], "true");
    let out = run(c, LIMIT).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_target_is_explained_and_no_session_stays_connected() {
    let sshd = Sshd::start();
    let gw = Gateway::start(&sshd).await;
    let out = run(gw.ssh("alice+down", &[], "true"), LIMIT).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("target down") && err.contains("unreachable"),
        "{err}"
    );
    let sessions = wait_ended(&gw).await;
    assert_eq!(sessions[0].stage, Stage::Ended);

    let out = run(gw.ssh("alice+nope", &[], "true"), LIMIT).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("may not reach target nope"),
        "{}",
        text(&out.stderr)
    );

    let out = run(gw.ssh("alice", &[], "true"), LIMIT).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("ssh alice+TARGET@gateway"),
        "{}",
        text(&out.stderr)
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_passwords_lock_the_name_out() {
    let sshd = Sshd::start();
    let gw = Gateway::start(&sshd).await;
    let login = |password: &str| {
        gw.ssh_password(
            password,
            "alice+t1",
            &["-o", "NumberOfPasswordPrompts=1"],
            "echo in",
        )
    };
    let out = run(login(ALICE_PW), LIMIT).await;
    assert_eq!(text(&out.stdout).trim(), "in", "{}", text(&out.stderr));
    let opened = gw.sessions().await.len();
    for _ in 0..5 {
        let out = run(login("wrong"), LIMIT).await;
        assert!(!out.status.success(), "{}", text(&out.stderr));
    }
    // The sixth attempt, with the right password, is refused like a wrong one.
    let out = run(login(ALICE_PW), LIMIT).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(gw.sessions().await.len(), opened, "no session was opened");
    gw.stop().await;
}
