//! Access requests with approval (issue 20 item 1) from the real binaries: `psm up`,
//! `psm requests rule set`, `psm request`, `psm requests approve|deny|list`, and plain
//! OpenSSH through the gateway. Alice has no standing grant of the targets: OpenSSH is
//! refused and told the command to run; she files a request; she cannot approve it
//! herself although she is in the approver role; bob approves and she gets in; with two
//! approvals required one is not enough; an approved access that runs out ends her open
//! session on the gateway's next heartbeat and refuses new ones.
//!
//! Time: the binaries have no clock seam (they read the system clock), so the expiry is
//! real: the expiring request asks for 15 seconds, and the test waits (polling, bounded)
//! for the gateway's heartbeat (10 s) to end the session. Nothing asserts how fast.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::process::{Command, Output, Stdio};

use common::{SshTarget, Up, psm, text, wait_for};

const ALICE_PW: &str = "alice-pw-3141";
const BOB_PW: &str = "bob-pw-2718";
const CAROL_PW: &str = "carol-pw-1618";

fn add_user(up: &Up, name: &str, roles: &[&str], password: &str, key: Option<&std::path::Path>) {
    let mut cmd = Command::new(psm());
    cmd.args(["users", "add", name, "--data"])
        .arg(&up.data)
        .arg("--password-stdin");
    for r in roles {
        cmd.args(["--role", r]);
    }
    if let Some(k) = key {
        cmd.arg("--key-file").arg(k.with_extension("pub"));
    }
    let out = common::run_with_stdin(&mut cmd, password);
    assert!(out.status.success(), "{}", text(&out));
}

/// `psm ARGS --data DATA` as `user` (password in PSM_PASSWORD).
fn psm_as(up: &Up, user: Option<(&str, &str)>, args: &[&str]) -> Output {
    let mut cmd = Command::new(psm());
    cmd.args(args).arg("--data").arg(&up.data);
    if let Some((name, pw)) = user {
        cmd.args(["--user", name]).env("PSM_PASSWORD", pw);
    }
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The id in "Request N filed: ...".
fn filed_id(stdout: &str) -> String {
    assert!(stdout.starts_with("Request "), "{stdout}");
    stdout.split_whitespace().nth(1).unwrap().to_owned()
}

#[test]
fn a_user_requests_access_an_approver_grants_it_and_it_ends_when_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = SshTarget::start(d, "psmjit");
    let up = Up::start(d, &[]);
    // Three names for the same sshd; role ops (nobody here) holds the standing grants.
    for name in ["web-01", "web-02", "web-03"] {
        up.add_ssh_target(name, &target, "ops");
    }
    let key = d.join("alice");
    common::keygen(&key);
    add_user(&up, "alice", &["dev", "leads"], ALICE_PW, Some(&key));
    add_user(&up, "bob", &["leads"], BOB_PW, None);
    add_user(&up, "carol", &["leads"], CAROL_PW, None);
    let alice = Some(("alice", ALICE_PW));
    let bob = Some(("bob", BOB_PW));
    let carol = Some(("carol", CAROL_PW));
    let mut said_all = String::new();

    // web-01 and web-03 take requests approved by one lead, web-02 by two.
    ok(psm_as(
        &up,
        None,
        &["requests", "rule", "set", "*", "--approvers", "leads"],
    ));
    ok(psm_as(
        &up,
        None,
        &[
            "requests",
            "rule",
            "set",
            "web-02",
            "--approvers",
            "leads",
            "--approvals",
            "2",
        ],
    ));
    let rules = ok(psm_as(&up, None, &["requests", "rule", "list"]));
    assert!(
        rules.contains("*\tleads\t1") && rules.contains("web-02\tleads\t2"),
        "{rules}"
    );

    // No standing access: refused, and told the exact command to run.
    let out = up.ssh(d, &key, "alice+web-01", "echo got-in");
    let said = text(&out);
    said_all.push_str(&said);
    assert!(!out.status.success(), "{said}");
    assert!(!said.contains("got-in\n"), "{said}");
    assert!(
        said.contains("may not reach target web-01")
            && said.contains("psm request web-01 --for 1h --reason")
            && said.contains("role leads"),
        "the user is told how to ask: {said}"
    );

    // A wrong password files nothing.
    let out = psm_as(
        &up,
        Some(("alice", "not-her-password")),
        &[
            "request",
            "web-01",
            "--for",
            "1h",
            "--reason",
            "incident 42",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("authentication failed"),
        "{}",
        text(&out)
    );

    // She asks; she cannot approve her own request, though she is a lead.
    let filed = ok(psm_as(
        &up,
        alice,
        &[
            "request",
            "web-01",
            "--for",
            "1h",
            "--reason",
            "incident 42: disk full",
        ],
    ));
    let id1 = filed_id(&filed);
    assert!(
        filed.contains("waiting for 1 approval from role leads"),
        "{filed}"
    );
    let out = psm_as(&up, alice, &["requests", "approve", &id1]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("cannot decide"), "{}", text(&out));
    let awaiting = ok(psm_as(&up, None, &["requests", "list", "--of", "alice"]));
    assert!(
        awaiting.contains(&format!(
            "{id1}\tpending\talice\tweb-01\t3600s\t0/1 of leads"
        )),
        "{awaiting}"
    );
    let queue = ok(psm_as(&up, bob, &["requests", "list", "--awaiting"]));
    assert!(
        queue.starts_with(&format!("{id1}\tpending\talice")),
        "{queue}"
    );
    let queue = ok(psm_as(&up, alice, &["requests", "list", "--awaiting"]));
    assert!(queue.trim().is_empty(), "not her own: {queue}");
    let out = up.ssh(d, &key, "alice+web-01", "echo got-in");
    assert!(!out.status.success(), "still pending: {}", text(&out));

    // Bob approves: she gets in with OpenSSH and runs a command.
    let approved = ok(psm_as(&up, bob, &["requests", "approve", &id1]));
    assert!(
        approved.contains(&format!(
            "Request {id1} approved: alice may reach web-01 until"
        )),
        "{approved}"
    );
    let out = up.ssh(d, &key, "alice+web-01", "whoami");
    said_all.push_str(&text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        target.account,
        "{}",
        text(&out)
    );
    // The grant is for web-01 only.
    let out = up.ssh(d, &key, "alice+web-03", "echo got-in");
    assert!(!out.status.success(), "{}", text(&out));

    // Two approvals needed: one is not enough.
    let id2 = filed_id(&ok(psm_as(
        &up,
        alice,
        &["request", "web-02", "--for", "2h", "--reason", "change 7"],
    )));
    let one = ok(psm_as(&up, bob, &["requests", "approve", &id2]));
    assert!(one.contains("approval 1 of 2 recorded"), "{one}");
    let again = psm_as(&up, bob, &["requests", "approve", &id2]);
    assert!(!again.status.success(), "bob counts once: {}", text(&again));
    let out = up.ssh(d, &key, "alice+web-02", "echo got-in");
    assert!(
        !out.status.success(),
        "one of two approvals: {}",
        text(&out)
    );
    assert!(!text(&out).contains("got-in\n"));
    ok(psm_as(&up, carol, &["requests", "approve", &id2]));
    let out = up.ssh(d, &key, "alice+web-02", "echo got-in");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("got-in"),
        "{}",
        text(&out)
    );

    // A denied request grants nothing, and cannot be approved afterwards.
    let id3 = filed_id(&ok(psm_as(
        &up,
        alice,
        &["request", "web-03", "--for", "1h", "--reason", "curious"],
    )));
    ok(psm_as(
        &up,
        carol,
        &["requests", "deny", &id3, "--note", "not without a ticket"],
    ));
    assert!(
        !psm_as(&up, bob, &["requests", "approve", &id3])
            .status
            .success()
    );
    assert!(!up.ssh(d, &key, "alice+web-03", "true").status.success());

    // Expiry: 15 seconds of access to web-03; her session outlives it and is ended.
    let id4 = filed_id(&ok(psm_as(
        &up,
        alice,
        &["request", "web-03", "--for", "15s", "--reason", "quick fix"],
    )));
    ok(psm_as(&up, bob, &["requests", "approve", &id4]));
    let long = up
        .ssh_command(
            d,
            &key,
            "alice+web-03",
            "echo started; sleep 300; echo outlived",
            false,
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut long = common::Kill(long);
    let status = wait_for(120, || long.0.try_wait().unwrap());
    assert!(status.is_some(), "the session outlived its approved access");
    let mut out = String::new();
    let mut err = String::new();
    std::io::Read::read_to_string(long.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    std::io::Read::read_to_string(long.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    said_all.push_str(&out);
    said_all.push_str(&err);
    assert!(out.contains("started"), "the session ran: {out} {err}");
    assert!(!out.contains("outlived"), "{out} {err}");
    assert!(
        format!("{out}{err}").contains("approved access to web-03 has ended"),
        "the user is told why: {out} {err}"
    );
    let out = up.ssh(d, &key, "alice+web-03", "echo got-in");
    assert!(
        !out.status.success(),
        "refused once expired: {}",
        text(&out)
    );
    assert!(!text(&out).contains("got-in\n"));

    // The list tells each request's fate.
    let list = ok(psm_as(&up, None, &["requests", "list"]));
    for (id, state) in [
        (&id1, "approved"),
        (&id2, "approved"),
        (&id3, "denied"),
        (&id4, "expired"),
    ] {
        assert!(
            list.lines()
                .any(|l| l.starts_with(&format!("{id}\t{state}\t"))),
            "request {id} is {state}: {list}"
        );
    }
    // Nothing is left for carol to decide.
    let queue = ok(psm_as(&up, carol, &["requests", "list", "--awaiting"]));
    assert!(queue.trim().is_empty(), "{queue}");

    // The target's secret is in nothing the users saw, nor in the log.
    said_all.push_str(&list);
    assert!(!said_all.contains(&target.password));
    assert!(!up.log.lock().unwrap().contains(&target.password));

    assert!(up.stop(), "psm up did not stop cleanly");
}
