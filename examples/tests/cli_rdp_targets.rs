//! `psm targets add --protocol rdp`: an RDP target and its vaulted credential are added to a
//! data directory with the real `psm` binary, listed with its default port, and the SSH-only
//! options are refused with a clear message.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

fn psm() -> Command {
    Command::new(common::psm())
}

#[test]
fn rdp_targets_are_added_listed_and_ssh_only_options_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A node's data directory, as `psm up` or `psm-controlplane` leave it on first start.
    let port = common::free_port();
    let mut cp = Command::new(env!("CARGO_BIN_EXE_psm-controlplane"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_port(port);
    let _ = Command::new("kill").arg(cp.id().to_string()).status();
    cp.wait().unwrap();
    let pin = format!("sha256:{}", "ab".repeat(32));
    let mut add = psm()
        .args(["targets", "add", "desk-01", "--data"])
        .arg(&data)
        .args([
            "--protocol",
            "rdp",
            "--host",
            "127.0.0.1",
            "--user",
            "Administrator",
            "--password-stdin",
            "--host-key",
            &pin,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(b"Desk-Secret-1")
        .unwrap();
    let out = add.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("xfreerdp"), "{printed}");
    assert!(!printed.contains("Desk-Secret-1"));

    let out = psm()
        .args(["targets", "list", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success());
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("desk-01\t127.0.0.1:3389\trdp\thost key pinned"),
        "{listed}"
    );
    assert!(!listed.contains("Desk-Secret-1"));

    let out = psm()
        .args(["targets", "add", "desk-02", "--data"])
        .arg(&data)
        .args([
            "--protocol",
            "rdp",
            "--host",
            "127.0.0.1",
            "--user",
            "a",
            "--password-stdin",
            "--scan",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--scan and --key-file are for ssh"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
