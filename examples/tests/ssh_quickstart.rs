//! The README's quick start, with the real binaries: `psm up`, `psm targets add --scan`,
//! `psm users add`, then plain OpenSSH `ssh USER+TARGET@gateway` to a real sshd.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{SshTarget, Up, text};

#[test]
fn quick_start_reaches_a_real_sshd_with_plain_ssh() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The target: a private sshd and an account with a password (the credential PSM vaults).
    let target = SshTarget::start(d, "psmquick");

    let up = Up::start(d, &[]);
    assert!(
        up.printed
            .contains(&format!("ssh -p {} admin+TARGET@127.0.0.1", up.ssh_port)),
        "{}",
        up.printed
    );
    assert!(
        up.printed.contains("first admin: user admin, password "),
        "{}",
        up.printed
    );
    // Every listener is named, with the next commands spelled out.
    for line in [
        "control-plane API: http://127.0.0.1:",
        "admin web UI: http://127.0.0.1:",
        &format!("live listener: ws://127.0.0.1:{}", up.live_port),
        "targets add NAME --host HOST",
        "RDP gateway: off",
    ] {
        assert!(up.printed.contains(line), "{line:?} in:\n{}", up.printed);
    }

    // psm targets add (host key scanned and pinned), psm users add
    up.add_ssh_target("web-01", &target, "ops");
    let key = d.join("alice");
    common::keygen(&key);
    up.add_user_with_key("alice", "ops", &key);

    // alice, with plain ssh
    let out = up.ssh(d, &key, "alice+web-01", "whoami");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        target.account,
        "{}",
        text(&out)
    );
    // ...and the session was recorded.
    assert_eq!(up.recordings().len(), 1);
    // Ctrl-C stops every service cleanly.
    assert!(up.stop(), "psm up did not stop cleanly on SIGINT");
}
