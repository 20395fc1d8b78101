//! `psm up` as an operator runs it: the real binary, a configuration file, plain OpenSSH and
//! the `psm` tools. What docs/configuration.md promises for the command policy and recording
//! encryption is tried here from the outside.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{SshTarget, Up, psm, text, wait_for};

/// Every `.psmr` under `dir` (raw recordings, and the store once uploaded).
fn psmr_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "psmr") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_policy_file_given_to_psm_up_stops_a_command_over_ssh() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = SshTarget::start(d, "psmpolicy");
    let policy = d.join("policy.toml");
    std::fs::write(
        &policy,
        r#"
[[rule]]
name = "no-forbidden-files"
glob = "touch *forbidden*"
action = "terminate"
message = "Creating forbidden files is not allowed here"
"#,
    )
    .unwrap();
    let up = Up::start(d, &["--policy", policy.to_str().unwrap()]);
    assert!(
        up.printed.contains("command policy:") && up.printed.contains("(1 rules"),
        "{}",
        up.printed
    );
    up.add_ssh_target("web-01", &target, "ops");
    let key = d.join("alice");
    common::keygen(&key);
    up.add_user_with_key("alice", "ops", &key);

    // An allowed command runs...
    let out = up.ssh(d, &key, "alice+web-01", "echo allowed-$((6*7))");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "allowed-42",
        "{}",
        text(&out)
    );
    // ...the forbidden one never reaches the target, and the user is told why.
    let marker = format!("/tmp/psm-forbidden-{}", std::process::id());
    let _ = std::fs::remove_file(&marker);
    let out = up.ssh(d, &key, "alice+web-01", &format!("touch {marker}"));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        !Path::new(&marker).exists(),
        "the target ran a command the policy terminates"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Creating forbidden files")
            || String::from_utf8_lossy(&out.stdout).contains("Creating forbidden files"),
        "{}",
        text(&out)
    );
    // The vaulted password appears nowhere the user or the operator can see.
    assert!(!text(&out).contains(&target.password));
    assert!(!up.printed.contains(&target.password));
    assert!(!up.log.lock().unwrap().contains(&target.password));
}

#[test]
fn a_policy_file_that_does_not_parse_stops_the_start_and_names_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[rule]]\nname = \"broken\"\nregex = \"(unclosed\"\naction = \"terminate\"\n",
    )
    .unwrap();
    let out = Command::new(psm())
        .args([
            "up",
            "--no-rdp",
            "--ssh-listen",
            "127.0.0.1:0",
            "--api-listen",
        ])
        .arg(format!("127.0.0.1:{}", common::free_port()))
        .args(["--live-listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("psm-data"))
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken") && err.contains("policy.file"),
        "{}",
        text(&out)
    );
}

#[test]
fn psm_up_encrypts_recordings_for_the_configured_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = SshTarget::start(d, "psmcrypt");
    // The auditor's key pair: PSM is given the public half only.
    let identity = d.join("auditor.key");
    let out = Command::new(psm())
        .args(["recording-keygen", "--kind", "recipient", "-o"])
        .arg(&identity)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let public = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let config = d.join("psm.toml");
    std::fs::write(
        &config,
        format!("[settings]\nencryption_key = \"{public}\"\n"),
    )
    .unwrap();
    let up = Up::start(d, &["--config", config.to_str().unwrap()]);
    assert!(
        up.printed.contains("recordings encrypted for x25519:"),
        "{}",
        up.printed
    );
    up.add_ssh_target("db-01", &target, "ops");
    let key = d.join("bob");
    common::keygen(&key);
    up.add_user_with_key("bob", "ops", &key);
    let mark = format!("ENCRYPTED-MARK-{}", std::process::id());
    let out = up.ssh(d, &key, "bob+db-01", &format!("echo {mark}"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&mark),
        "{}",
        text(&out)
    );

    // The recording, once complete (the encoder and uploader may move it meanwhile: each
    // try takes a copy of whatever .psmr is there).
    let export = |file: &Path, identity: Option<&Path>| {
        let mut c = Command::new(psm());
        c.args(["export", "--format", "text", "-o", "-"]);
        if let Some(i) = identity {
            c.arg("--identity").arg(i);
        }
        c.arg(file).output().unwrap()
    };
    let copy = d.join("copy.psmr");
    let mut last = String::new();
    let with = wait_for(60, || {
        psmr_files(&up.data).into_iter().find_map(|f| {
            std::fs::copy(&f, &copy).ok()?;
            let out = export(&copy, Some(&identity));
            last = text(&out);
            (out.status.success() && String::from_utf8_lossy(&out.stdout).contains(&mark))
                .then_some(out)
        })
    });
    assert!(
        with.is_some(),
        "no recording decrypts with the auditor's key to the session's output: {:?}\nlast export: {last}",
        psmr_files(&up.data)
    );
    let bytes = std::fs::read(&copy).unwrap();
    assert!(
        !bytes.windows(mark.len()).any(|w| w == mark.as_bytes()),
        "the recording holds the output in clear text"
    );
    // Without the auditor's secret key (the gateway never has it) it cannot be read.
    let without = export(&copy, None);
    assert!(!without.status.success(), "{}", text(&without));
    assert!(!String::from_utf8_lossy(&without.stdout).contains(&mark));
}
