//! Runs the real `psm-embed-ssh` binary in front of a private sshd and drives it with
//! OpenSSH: the command runs on the target, and the embedder's own control plane sees the
//! session open and end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tests/common/ssh_target.rs"]
mod ssh_target;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ssh_target::{Kill, SshTarget, free_port, keygen, wait_port};

#[test]
fn openssh_through_the_embedded_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let target = SshTarget::start(dir.path(), "psmembed");
    let host_key = std::fs::read_to_string(dir.path().join("sshd-host-psmembed.pub")).unwrap();
    let key = dir.path().join("alice");
    keygen(&key);
    let data = dir.path().join("recordings");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_psm-embed-ssh"))
        .arg(format!("127.0.0.1:{port}"))
        .arg(key.with_extension("pub"))
        .arg("web")
        .arg(format!("{}@127.0.0.1:{}", target.account, target.port))
        .arg(host_key.trim())
        .arg(&data)
        .env("PSM_TARGET_PASSWORD", &target.password)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _gateway = Kill(child);
    let (tx, events) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    wait_port(port);

    let out = Command::new("ssh")
        .args(["-F", "/dev/null", "-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes"])
        .args(["-o", "IdentitiesOnly=yes", "-i"])
        .arg(&key)
        .args(["-p", &port.to_string(), "alice+web@127.0.0.1"])
        .arg("echo ran on the target as $(whoami)")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "ran on the target as psmembed\n");

    // The control plane's log: listening, then the session opened and ended.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.iter().any(|l: &String| l.starts_with("ended ")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("no end of session in {seen:?}"),
        }
    }
    let opened = seen.iter().find(|l| l.starts_with("opened ")).unwrap();
    let id = opened.split_whitespace().nth(1).unwrap();
    assert!(opened.ends_with(" alice+web"), "{opened}");
    assert!(seen.contains(&format!("ended {id}")), "{seen:?}");
    assert!(
        data.join(format!("{id}.psmr")).exists(),
        "no recording of {id}"
    );
}
