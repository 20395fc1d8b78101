//! The admin web UI of a real `psm up` in Chromium, as an operator uses it: Watch a live SSH
//! session, Pause and Resume it (confirmed by the gateway through the live link), Join with
//! control and type into it, Terminate it, then open the browser terminal. Nothing here is
//! wired by the test: everything is what `psm up` starts.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

#[path = "../../psm-server/tests/browser/mod.rs"]
mod browser;

use std::path::{Path, PathBuf};
use std::time::Duration;

use browser::{Browser, PtyClient};
use common::{SshTarget, Up};

/// OpenSSH in a 100x30 pseudo-terminal through `psm up`'s gateway, logged in with `key`.
fn ssh_terminal(up: &Up, dir: &Path, key: &Path, login: &str) -> PtyClient {
    let known_hosts = format!("UserKnownHostsFile={}", dir.join("known_hosts").display());
    let key = key.to_str().unwrap();
    let port = up.ssh_port.to_string();
    let dest = format!("{login}@127.0.0.1");
    PtyClient::start(
        100,
        30,
        "ssh",
        &[
            "-F",
            "/dev/null",
            "-o",
            &known_hosts,
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-i",
            key,
            "-p",
            &port,
            &dest,
        ],
    )
}

#[test]
fn an_admin_watches_controls_and_joins_a_live_ssh_session_of_psm_up_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = SshTarget::start(d, "psmlive");
    let up = Up::start(d, &[]);
    up.add_ssh_target("web-01", &target, "ops");
    let key = d.join("alice");
    common::keygen(&key);
    up.add_user_with_key("alice", "ops", &key);
    let web = format!("http://127.0.0.1:{}", up.api_port);
    let shots = std::env::var_os("PSM_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("psm-up-live-browser"));

    // Alice works in a terminal through the gateway.
    let mut ssh = ssh_terminal(&up, d, &key, "alice+web-01");
    ssh.type_line("echo ready-$((1+1))");
    ssh.wait_output("ready-2");

    let mut b = Browser::start(&shots);
    b.goto(&format!("{web}/ui/"));
    b.wait("!!document.querySelector('#password')");
    b.fill("#user", "admin");
    b.fill("#password", &up.admin_password());
    b.click("#login");
    b.wait("!!document.querySelector('#sessions-body tr[data-session].live')");
    let id =
        b.eval("document.querySelector('#sessions-body tr[data-session].live').dataset.session");
    let id = id.as_str().unwrap().to_owned();

    // Watch: what Alice types appears in the admin's view.
    b.goto(&format!("{web}/ui/session?id={id}&watch=1"));
    b.wait("window.psm.live && window.psm.live.connected");
    ssh.type_line("echo typed-by-alice-$((6*7))");
    ssh.wait_output("typed-by-alice-42");
    b.wait("window.psm.liveText && window.psm.liveText().includes('typed-by-alice-42')");
    b.shot("up-01-watch");

    // Pause: confirmed by the gateway (the live link), the user is told, input is held.
    b.fill("#reason", "checking this");
    b.click("#pause");
    b.wait("window.psm.lastControl && window.psm.lastControl.action === 'pause' && window.psm.lastControl.applied === true");
    ssh.wait_output("session paused by");
    ssh.type_line("echo held-while-paused-$((100+1))");
    std::thread::sleep(Duration::from_secs(2));
    let seen = b.eval("window.psm.liveText()");
    assert!(
        !seen.as_str().unwrap().contains("held-while-paused-101"),
        "input reached the target while paused:\n{seen}"
    );
    b.click("#resume");
    b.wait("window.psm.lastControl.action === 'resume' && window.psm.lastControl.applied === true");
    ssh.wait_output("held-while-paused-101");

    // Join with control: the admin's keystrokes reach the session.
    b.click("#join-control");
    b.wait("window.psm.live && window.psm.live.connected && window.psm.live.mode === 'control'");
    ssh.wait_output("joined with control");
    b.type_line("echo typed-by-the-admin-$((3*3))");
    ssh.wait_output("typed-by-the-admin-9");
    b.wait("window.psm.liveText().includes('typed-by-the-admin-9')");
    b.shot("up-02-join-control");

    // Terminate, with a reason Alice sees.
    b.fill("#reason", "end of the black-box test");
    b.click("#terminate");
    b.wait("window.psm.lastControl && window.psm.lastControl.action === 'terminate'");
    ssh.wait_output("end of the black-box test");
    ssh.wait_exit();
    b.wait("window.psm.live && !!window.psm.live.closed");
    b.shot("up-03-terminated");

    // The browser terminal: the admin (granted every target) opens a shell on web-01.
    b.goto(&format!("{web}/ui/terminal"));
    b.wait("!!document.querySelector('button.target[data-target=\"web-01\"]')");
    b.click("button.target[data-target=\"web-01\"]");
    b.wait("window.psm.terminal && window.psm.terminal.connected");
    b.wait("window.psm.terminalText().includes('$ ')");
    b.type_line("echo from-the-browser-$((2*21))");
    b.wait("window.psm.terminalText().includes('from-the-browser-42')");
    b.shot("up-04-browser-terminal");
    b.type_line("exit");
    b.wait("!!window.psm.terminal.closed");

    // No credential anywhere the operator or the page could see it.
    let page = b.eval("document.documentElement.outerHTML");
    assert!(!page.as_str().unwrap().contains(&target.password));
    assert!(!ssh.text().contains(&target.password));
    assert!(!up.log.lock().unwrap().contains(&target.password));
}
