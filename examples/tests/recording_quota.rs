//! Issue 17 L5 (recorder) with the real binaries: `psm up` with `[recording] quota_mib = 1`
//! ends an OpenSSH session that prints more than a MiB, with the reason on the user's
//! screen, in the recording's end and in the control plane's audit trail.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::process::Command;

use common::{SshTarget, Up, psm, text, wait_for};
use psm_core::store::{AuditQuery, SessionStore, SqliteStore};

#[test]
fn a_session_over_its_recording_quota_is_ended_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = SshTarget::start(d, "psmquota");
    let conf = d.join("psm.toml");
    std::fs::write(&conf, "[recording]\nquota_mib = 1\n").unwrap();
    let up = Up::start(d, &["--config", conf.to_str().unwrap()]);
    up.add_ssh_target("web-01", &target, "ops");
    let key = d.join("alice");
    common::keygen(&key);
    up.add_user_with_key("alice", "ops", &key);

    // Under the quota: untouched.
    let out = up.ssh(d, &key, "alice+web-01", "echo small");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "small",
        "{}",
        text(&out)
    );

    // 8 MiB of output against a 1 MiB quota, slowly enough to be cut off before the end.
    let out = up.ssh(
        d,
        &key,
        "alice+web-01",
        "for i in $(seq 1 64); do head -c 131072 /dev/zero | tr '\\0' x; sleep 0.05; done",
    );
    let said = text(&out);
    assert!(
        out.stdout.len() < 8 << 20,
        "the session was ended before all its output ({} bytes)",
        out.stdout.len()
    );
    assert!(
        said.contains("recording quota"),
        "the user is told why: {said}"
    );

    // The recording ends with the reason (raw, or uploaded to the node's store by now).
    let ended = wait_for(30, || {
        psmr_files(&up.data).iter().find_map(|r| {
            let info = Command::new(psm()).arg("info").arg(r).output().ok()?;
            let t = text(&info);
            t.contains("recording quota").then_some(t)
        })
    });
    assert!(ended.is_some(), "a recording ends with the quota's reason");

    // The control plane's audit trail says who ended it and why.
    let data = up.data.clone();
    assert!(up.stop());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows = rt.block_on(async {
        let store = SqliteStore::open(data.join("psm.db")).await.unwrap();
        let rows = store.audit_events(&AuditQuery::default()).await.unwrap();
        store.close().await;
        rows
    });
    assert!(
        rows.iter()
            .any(|r| r.record.detail.contains("terminated by recorder")
                && r.record.detail.contains("recording quota of 1048576 bytes")),
        "{:#?}",
        rows.iter().map(|r| &r.record.detail).collect::<Vec<_>>()
    );
}

/// Every `.psmr` under `dir`.
fn psmr_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(psmr_files(&p));
        } else if p.extension().is_some_and(|x| x == "psmr") {
            out.push(p);
        }
    }
    out
}
