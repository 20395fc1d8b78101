//! Issue 17 L5, as the user meets it: `psm up` with `[api] max_sessions_per_user = 1`, plain
//! OpenSSH through the gateway to a real sshd. While alice has a session open, a second one
//! is refused with a message that says why; once the first ends she gets in again.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::process::{Command, Stdio};

use common::{Kill, SshTarget, Up, text, wait_for};

#[test]
fn l5_a_second_session_past_the_cap_is_refused_with_a_message_the_user_sees() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = SshTarget::start(d, "psmcap");
    let config = d.join("psm.toml");
    std::fs::write(&config, "[api]\nmax_sessions_per_user = 1\n").unwrap();
    let up = Up::start(d, &["--config", config.to_str().unwrap()]);
    up.add_ssh_target("web-01", &target, "ops");
    let key = d.join("alice");
    common::keygen(&key);
    up.add_user_with_key("alice", "ops", &key);

    // The first session stays open.
    let first = up
        .ssh_command(d, &key, "alice+web-01", "sleep 120", false)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = Kill(first);

    // Once the first is open (the control plane lists it live)...
    let admin_key = std::fs::read_to_string(up.data.join("keys/admin.key")).unwrap();
    let open = wait_for(60, || {
        let out = Command::new("curl")
            .args(["-s", "-X", "POST", "-H", "Content-Type: application/json"])
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", admin_key.trim()))
            .args(["--data-binary", "{}"])
            .arg(format!(
                "http://127.0.0.1:{}/api/services/v1/secureaccessgateway/LiveSessions",
                up.api_port
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .contains("\"UserName\":\"alice\"")
            .then_some(())
    });
    assert!(open.is_some(), "alice's first session never opened");
    // ...a second one is refused, with the reason.
    let out = up.ssh(d, &key, "alice+web-01", "echo second-session");
    let second = text(&out);
    assert!(!out.status.success(), "{second}");
    assert!(
        second.contains("already has 1 open session,")
            && second.contains("end one to open another"),
        "the user is told why: {second}"
    );
    assert!(!second.contains("second-session\n"), "{second}");

    // The first ends: alice gets in again.
    drop(first);
    let again = wait_for(60, || {
        let out = up.ssh(d, &key, "alice+web-01", "whoami");
        (String::from_utf8_lossy(&out.stdout).trim() == target.account).then_some(())
    });
    assert!(
        again.is_some(),
        "alice could not open a session after the first ended"
    );
    assert!(up.stop(), "psm up did not stop cleanly on SIGINT");
}
