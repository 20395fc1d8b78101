//! The crash window, black-box: a line printed through `psm up`'s SSH gateway (real OpenSSH
//! client, real sshd) survives `kill -9` of `psm up` 1.5 s later, while the session goes on
//! printing; `psm verify` calls the recording truncated (not tampered) and `psm export`
//! shows the line.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Kill, SshTarget, Up, psm, text};

#[test]
fn a_line_printed_over_a_second_before_kill_9_is_in_the_recording() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = SshTarget::start(d, "psmcrash");
    let up = Up::start(d, &[]);
    up.add_ssh_target("web-01", &target, "ops");
    let key = d.join("alice");
    common::keygen(&key);
    up.add_user_with_key("alice", "ops", &key);

    // A session that keeps printing: the open chunk never runs dry, so only the writer's
    // timer can make the line durable.
    let mut ssh = up
        .ssh_command(
            d,
            &key,
            "alice+web-01",
            "for i in 1 2 3; do echo tick; sleep 0.2; done; echo the-line-before-the-kill; \
             while true; do echo tick; sleep 0.2; done",
            false,
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(ssh.stdout.take().unwrap());
    let ssh = Kill(ssh);
    let mut line = String::new();
    while !line.contains("the-line-before-the-kill") {
        line.clear();
        assert_ne!(out.read_line(&mut line).unwrap(), 0, "ssh ended early");
    }
    std::thread::sleep(Duration::from_millis(1500));
    let recordings = up.recordings();
    drop(up); // SIGKILL: nothing is flushed or finished
    drop(ssh);
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    let file = &recordings[0];

    let verify = Command::new(psm())
        .arg("verify")
        .arg(file)
        .output()
        .unwrap();
    let said = text(&verify);
    assert!(said.contains("truncated after chunk"), "{said}");
    assert!(!said.contains("tampered"), "{said}");

    let export = Command::new(psm())
        .args(["export", "--format", "text", "-o", "-"])
        .arg(file)
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", text(&export));
    assert!(
        String::from_utf8_lossy(&export.stdout).contains("the-line-before-the-kill"),
        "{}",
        text(&export)
    );
}
