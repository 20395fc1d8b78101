//! The vaulted target password must appear nowhere but on the wire to the target: not in
//! what the client received, not in the gateway's logs (at TRACE, russh included), not in
//! the recording taps, not in the control plane's sessions or audit trail, not in errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use psm_proxy::{HostKeyCheck, StaticTarget, TargetCredential, TargetSecret};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_target_password_appears_nowhere() {
    let logs = Buf::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("the only subscriber of this test binary");

    let sshd = Sshd::start();
    let gw = Gateway::start(&sshd).await;
    let password = target_password().to_owned();
    let wrong = format!("WrongVault-{}", uuid::Uuid::new_v4().simple());
    gw.targets.insert(
        "bad",
        StaticTarget {
            host: "127.0.0.1".into(),
            port: sshd.port,
            host_key: HostKeyCheck::Pinned(vec![sshd.host_pub.clone()]),
            credential: TargetCredential {
                account: TARGET_USER.into(),
                secret: TargetSecret::Password(wrong.clone()),
            },
            lifetime: None,
        },
    );
    gw.directory_grant_bad().await;

    let mut received = Vec::new();
    let out = run(
        gw.ssh(
            "alice+t1",
            &["-vvv"],
            "echo in-session; env; cat /proc/self/cmdline",
        ),
        Duration::from_secs(60),
    )
    .await;
    assert!(
        text(&out.stdout).contains("in-session"),
        "{}",
        text(&out.stderr)
    );
    received.extend(out.stdout);
    received.extend(out.stderr);
    let out = run(
        gw.ssh("alice+bad", &["-vvv"], "true"),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("refused the vaulted credential"),
        "{}",
        text(&out.stderr)
    );
    received.extend(out.stdout);
    received.extend(out.stderr);
    // A password-typing user at a pty: nothing of the vault either.
    let out = run(
        gw.ssh("alice+t1", &["-tt", "-vvv"], "echo pty-session"),
        Duration::from_secs(60),
    )
    .await;
    received.extend(out.stdout);
    received.extend(out.stderr);

    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut control_plane = String::new();
    for s in gw.sessions().await {
        control_plane.push_str(&format!("{s:?}\n"));
        for a in gw.engine.audit_trail(s.id).await.unwrap() {
            control_plane.push_str(&format!("{a:?}\n"));
        }
    }
    assert!(!control_plane.is_empty());
    let recording = format!(
        "{:?}\n{}\n{}",
        gw.tap.events(),
        gw.tap.output_text(),
        gw.tap.input_text()
    );
    let debug_of_types = format!(
        "{:?} {:?}",
        TargetCredential {
            account: "a".into(),
            secret: TargetSecret::Password(password.clone())
        },
        TargetSecret::PrivateKey {
            key: password.clone(),
            passphrase: Some(password.clone())
        }
    );
    gw.stop().await;
    let logs = text(&logs.0.lock().unwrap());
    assert!(logs.contains("session opened"), "logs were captured");
    assert!(
        logs.contains("russh"),
        "russh's own TRACE logs were captured too"
    );

    for secret in [&password, &wrong] {
        for (what, hay) in [
            ("what the client received", text(&received)),
            ("gateway logs", logs.clone()),
            ("recording", recording.clone()),
            ("control plane", control_plane.clone()),
            ("Debug of credential types", debug_of_types.clone()),
        ] {
            assert!(
                !hay.contains(secret.as_str()),
                "the vaulted password leaked into {what}"
            );
        }
    }
}

trait GrantBad {
    async fn directory_grant_bad(&self);
}

impl GrantBad for Gateway {
    async fn directory_grant_bad(&self) {
        use psm_core::directory::DirectoryAdmin;
        self.directory.grant("ops", "bad").await.unwrap();
    }
}
