//! Issue 22 item 3 with the real binaries: targets are administered against a remote
//! control plane (`psm targets add|list|remove --control-plane URL --api-key-file F`), as on
//! a host without the control plane's files. The target added over HTTP, with its vaulted
//! password, is the one OpenSSH then reaches through the gateway; the password is in nothing
//! the CLI printed and in no log line; without the admin key the control plane refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::process::Command;

use common::{SshTarget, Up, psm, run_with_stdin, text};

#[test]
fn targets_are_added_listed_and_removed_over_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = SshTarget::start(d, "psmremote");
    let up = Up::start(d, &[]);
    let url = format!("http://127.0.0.1:{}", up.api_port);
    let admin_key = up.data.join("keys").join("admin.key");
    let remote = |args: &[&str], input: &str| {
        let mut cmd = Command::new(psm());
        cmd.args(args)
            .args(["--control-plane", &url, "--api-key-file"])
            .arg(&admin_key);
        run_with_stdin(&mut cmd, input)
    };

    let port = target.port.to_string();
    let add = target.add_args("web-01", "ops");
    let add: Vec<&str> = add.iter().map(String::as_str).collect();
    let added = remote(&add, &target.password);
    assert!(added.status.success(), "{}", text(&added));
    assert!(
        text(&added).contains("pinned") && text(&added).contains("Role ops may reach web-01"),
        "{}",
        text(&added)
    );

    // Listed over HTTP and in the node's own vault alike.
    let listed = remote(&["targets", "list"], "");
    assert!(listed.status.success(), "{}", text(&listed));
    let line = format!("web-01\t127.0.0.1:{port}\tssh\thost key pinned");
    assert!(text(&listed).contains(&line), "{}", text(&listed));
    let local = up.psm_with_stdin(&["targets", "list"], "");
    assert!(text(&local).contains(&line), "{}", text(&local));

    // The vaulted password, sent over the API, is the one the gateway logs in with.
    let key = d.join("alice");
    common::keygen(&key);
    up.add_user_with_key("alice", "ops", &key);
    let out = up.ssh(d, &key, "alice+web-01", "echo through-the-remote-vault");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "through-the-remote-vault",
        "{}",
        text(&out)
    );

    // No admin key, no administration: the control plane refuses and the CLI says so.
    let refused = run_with_stdin(
        Command::new(psm()).args(["targets", "list", "--control-plane", &url]),
        "",
    );
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(!text(&refused).contains("web-01"), "{}", text(&refused));

    let removed = remote(&["targets", "remove", "web-01"], "");
    assert!(removed.status.success(), "{}", text(&removed));
    let listed = remote(&["targets", "list"], "");
    assert!(!text(&listed).contains("web-01"), "{}", text(&listed));
    let out = up.ssh(d, &key, "alice+web-01", "echo gone");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("gone"),
        "{}",
        text(&out)
    );

    for (what, said) in [
        ("add", text(&added)),
        ("list", text(&listed)),
        ("psm up's log", up.log.lock().unwrap().clone()),
        ("psm up's printout", up.printed.clone()),
    ] {
        assert!(
            !said.contains(&target.password),
            "the vaulted password is in {what}"
        );
    }
    assert!(up.stop(), "psm up did not stop cleanly on SIGINT");
}
