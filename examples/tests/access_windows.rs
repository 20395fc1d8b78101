//! Access windows (issue 20 item 2) from the real binaries: `psm up`, `psm windows add`,
//! and plain OpenSSH through the gateway, allowed inside a window and refused outside it in
//! time and from a source network the window does not allow (`ssh -b 127.0.0.2`).
//!
//! Time: the windows are computed from the test's wall clock in a named zone
//! (Asia/Kolkata, UTC+05:30 all year), an open one around now (an hour before to two
//! after) and a closed one three hours ahead, so nothing sleeps and no clock is faked in
//! the binary. What happens when a window closes during a session is tested at the engine
//! with a manual clock (psm-core/tests/access_windows.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{SshTarget, Up, psm, text};

/// The local hour in Asia/Kolkata now.
fn kolkata_hour() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let minutes = (secs / 60 + 330) % (24 * 60);
    (minutes / 60) as u32
}

fn hhmm(h: u32) -> String {
    format!("{:02}:00", h % 24)
}

/// `ssh` as in `Up::ssh`, from source address `bind`.
fn ssh_from(up: &Up, dir: &Path, key: &Path, bind: &str, command: &str) -> Output {
    Command::new("ssh")
        .args(["-F", "/dev/null", "-o", "StrictHostKeyChecking=accept-new"])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            dir.join("known_hosts").display()
        ))
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-b",
            bind,
            "-i",
        ])
        .arg(key)
        .args([
            "-p",
            &up.ssh_port.to_string(),
            "alice+web-01@127.0.0.1",
            command,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn ssh_is_allowed_inside_a_window_and_refused_outside_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = SshTarget::start(d, "psmwindow");
    let up = Up::start(d, &[]);
    up.add_ssh_target("web-01", &target, "ops");
    let key = d.join("alice");
    common::keygen(&key);
    up.add_user_with_key("alice", "ops", &key);

    // Standing access first: no window, alice gets in from anywhere.
    let out = ssh_from(&up, d, &key, "127.0.0.2", "whoami");
    assert!(out.status.success(), "{}", text(&out));

    // A window open now, from 127.0.0.1 only.
    let h = kolkata_hour();
    let open = format!("{}-{}", hhmm(h + 23), hhmm(h + 2));
    let added = up.windows(&[
        "add",
        "ops",
        "web-01",
        "--days",
        "mon-sun",
        "--hours",
        &open,
        "--tz",
        "Asia/Kolkata",
        "--from",
        "127.0.0.1/32",
    ]);
    assert!(added.starts_with("Window "), "{added}");
    let id = added.split_whitespace().nth(1).unwrap().to_owned();
    let listed = up.windows(&["list"]);
    assert!(
        listed.contains(&format!(
            "{id}\tops\tweb-01\thours={open} tz=Asia/Kolkata from=127.0.0.1/32"
        )),
        "{listed}"
    );

    // Inside the window, from the allowed network: in.
    let out = ssh_from(&up, d, &key, "127.0.0.1", "whoami");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        target.account,
        "{}",
        text(&out)
    );
    // Inside the window in time, from another network: refused, and told why.
    let out = ssh_from(&up, d, &key, "127.0.0.2", "echo got-in");
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(!said.contains("got-in\n"), "{said}");
    assert!(
        said.contains("outside your access windows")
            && said.contains("your address 127.0.0.2 is not in an allowed network"),
        "the user is told why: {said}"
    );

    // The window replaced by one that opens in three hours: refused from anywhere.
    up.windows(&["remove", &id]);
    let later = format!("{}-{}", hhmm(h + 3), hhmm(h + 4));
    up.windows(&["add", "ops", "*", "--hours", &later, "--tz", "Asia/Kolkata"]);
    let out = ssh_from(&up, d, &key, "127.0.0.1", "echo got-in");
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(!said.contains("got-in\n"), "{said}");
    assert!(
        said.contains("no access window is open now") && said.contains(&later),
        "the user is told why, with the windows: {said}"
    );

    // A malformed window is refused by the command, naming what is wrong.
    let out = Command::new(psm())
        .args([
            "windows",
            "add",
            "ops",
            "web-01",
            "--tz",
            "Mars/Olympus",
            "--data",
        ])
        .arg(&up.data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("unknown time zone"), "{}", text(&out));

    assert!(up.stop(), "psm up did not stop cleanly");
}
