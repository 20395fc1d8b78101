//! Issue 17 M7 and L5 against the shipped `psm-controlplane`, with curl as the caller: one
//! key per process instance (`psm keys issue`), a key that acts only as its own instance,
//! refusals that never name another gateway, GetCredential probing rate-limited and alerted,
//! the shared role key still working for instances without a key of their own, and the
//! per-user session cap across gateways.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Kill, free_port, psm, text, wait_for, wait_port};
use psm_core::store::{AuditQuery, SessionStore, SqliteStore};

const PREFIX: &str = "/api/services/v1/secureaccessgateway";

fn controlplane(data: &Path, port: u16, extra: &[&str]) -> Kill {
    let log = File::create(data.with_extension("log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_psm-controlplane"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data")
        .arg(data)
        .arg("--no-web")
        .args(extra)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_port(port);
    Kill(child)
}

/// curl as the caller: `(status, body)`.
fn call(port: u16, key: &str, method: &str, endpoint: &str, body: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-X", method, "-w", "\n%{http_code}"])
        .args(["-H", "Content-Type: application/json"])
        .arg("-H")
        .arg(format!("Authorization: Bearer {key}"))
        .args(["--data-binary", body])
        .arg(format!("http://127.0.0.1:{port}{PREFIX}/{endpoint}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "curl: {}", text(&out));
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = all.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_owned())
}

fn issue(data: &Path, role: &str, instance: &str) -> String {
    let out_file = data.parent().unwrap().join(format!("{instance}.key"));
    let out = Command::new(psm())
        .args(["keys", "issue", role, instance, "--data"])
        .arg(data)
        .arg("--out")
        .arg(&out_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    std::fs::read_to_string(out_file).unwrap().trim().to_owned()
}

fn open_body(session: &str, instance: &str, user: &str) -> String {
    format!(
        r#"{{"session":"{session}","processInstance":"{instance}","userName":"{user}","target":"web-01","protocol":"ssh"}}"#
    )
}

#[test]
fn m7_a_gateway_key_acts_only_as_its_own_instance() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("psm-data");
    let port = free_port();
    let cp = controlplane(&data, port, &[]);
    let shared = std::fs::read_to_string(data.join("keys/gateway.key"))
        .unwrap()
        .trim()
        .to_owned();
    let admin = std::fs::read_to_string(data.join("keys/admin.key"))
        .unwrap()
        .trim()
        .to_owned();
    // Issued while the control plane runs: picked up without a restart.
    let gw1 = issue(&data, "gateway", "gw-1");
    let gw2 = issue(&data, "gateway", "gw-2");
    let listed = Command::new(psm())
        .args(["keys", "list", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let listed_text = String::from_utf8_lossy(&listed.stdout);
    assert!(listed_text.contains("gw-1\tgateway"), "{}", text(&listed));
    assert!(
        !listed_text.contains(&gw1[10..]),
        "the list never shows a key"
    );
    let on_disk = std::fs::read_to_string(data.join("keys/instances/gw-1")).unwrap();
    assert!(!on_disk.contains(&gw1), "only the key's hash is kept");

    // gw-1 opens a session and advertises its live URL.
    let s = "6f1c2a7e-0000-4000-8000-000000000001";
    let opened = wait_for(10, || {
        let (st, _) = call(
            port,
            &gw1,
            "POST",
            "OpenSession",
            &open_body(s, "gw-1", "alice"),
        );
        (st == 200).then_some(())
    });
    assert!(opened.is_some(), "gw-1's new key is accepted");
    let (st, b) = call(
        port,
        &gw1,
        "POST",
        "LiveCommands",
        r#"{"processInstance":"gw-1","waitSeconds":0,"liveUrl":"wss://gw1.example:2223"}"#,
    );
    assert_eq!(st, 200, "{b}");

    // gw-2's key, acting as gw-1: every call is refused, and nothing changes.
    let as_gw1 = format!(r#"{{"session":"{s}","processInstance":"gw-1"}}"#);
    for endpoint in ["Polling", "EndSession", "GetCredential"] {
        let (st, b) = call(port, &gw2, "POST", endpoint, &as_gw1);
        assert_eq!(st, 403, "{endpoint} as gw-1 with gw-2's key: {b}");
    }
    let (st, b) = call(
        port,
        &gw2,
        "POST",
        "UpdateSession",
        &format!(r#"{{"session":"{s}"}}"#),
    );
    assert_eq!(st, 403, "UpdateSession of gw-1's session: {b}");
    assert!(!b.contains("gw-1"), "{b}");
    let (st, b) = call(
        port,
        &gw2,
        "POST",
        "LiveCommands",
        r#"{"processInstance":"gw-1","waitSeconds":0,"liveUrl":"wss://evil.example:1"}"#,
    );
    assert_eq!(st, 403, "draining gw-1's queue, rewriting its URL: {b}");
    // The shared gateway key no longer acts as gw-1 either (gw-1 has a key of its own)...
    let (st, b) = call(
        port,
        &shared,
        "POST",
        "LiveCommands",
        r#"{"processInstance":"gw-1","waitSeconds":0,"liveUrl":"wss://evil.example:1"}"#,
    );
    assert_eq!(st, 403, "shared key as gw-1: {b}");
    // ...but still as an instance without a key of its own (the single-node default).
    let (st, b) = call(
        port,
        &shared,
        "POST",
        "LiveCommands",
        r#"{"processInstance":"gateway-1","waitSeconds":0}"#,
    );
    assert_eq!(st, 200, "shared key as gateway-1: {b}");
    let (st, b) = call(port, &admin, "POST", "LiveSessions", "{}");
    assert_eq!(st, 200, "{b}");
    assert!(b.contains("wss://gw1.example:2223"), "{b}");
    assert!(
        !b.contains("evil.example"),
        "the advertised URL is gw-1's: {b}"
    );

    // As itself, gw-2 is told the session is not its own, without naming the owner.
    let as_gw2 = format!(r#"{{"session":"{s}","processInstance":"gw-2"}}"#);
    for endpoint in ["Polling", "EndSession", "GetCredential"] {
        let (st, b) = call(port, &gw2, "POST", endpoint, &as_gw2);
        assert!(st == 403 || st == 409, "{endpoint}: {st} {b}");
        assert!(!b.contains("gw-1"), "{endpoint} names the owner: {b}");
    }

    // GetCredential probing: past the limit (5 per minute), answered 429 and alerted.
    let mut limited = false;
    for _ in 0..6 {
        let (st, b) = call(port, &gw2, "POST", "GetCredential", &as_gw2);
        assert!(st == 403 || st == 429, "{st} {b}");
        limited |= st == 429;
    }
    assert!(limited, "GetCredential refusals are rate-limited");

    // gw-1 itself still works, and its session is intact.
    let (st, b) = call(port, &gw1, "POST", "Polling", &as_gw1);
    assert_eq!(st, 200, "{b}");

    // Revoked: gw-2's key is refused from then on.
    let out = Command::new(psm())
        .args(["keys", "revoke", "gw-2", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let refused = wait_for(10, || {
        let (st, _) = call(port, &gw2, "POST", "Polling", &as_gw2);
        (st == 401).then_some(())
    });
    assert!(refused.is_some(), "a revoked key is refused");
    drop(cp);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows = rt.block_on(async {
        let store = SqliteStore::open(data.join("psm.db")).await.unwrap();
        let rows = store.audit_events(&AuditQuery::default()).await.unwrap();
        store.close().await;
        rows
    });
    assert!(
        rows.iter().any(
            |r| r.record.detail.starts_with("ALERT: GetCredential refused")
                && r.record.actor == "gw-2"
        ),
        "an ALERT audit row names the prober"
    );
    assert!(
        rows.iter()
            .any(|r| r.record.actor == "gw-2" && r.record.detail.contains("may not act as")),
        "refusals are audited under the key's own principal"
    );
}

#[test]
fn m7_without_shared_role_keys_only_instance_keys_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("psm-data");
    let port = free_port();
    let _cp = controlplane(&data, port, &["--no-shared-role-keys"]);
    assert!(
        !data.join("keys/gateway.key").exists(),
        "no shared gateway key is generated"
    );
    let gw = issue(&data, "gateway", "gw-1");
    let ok = wait_for(10, || {
        let (st, _) = call(
            port,
            &gw,
            "POST",
            "LiveCommands",
            r#"{"processInstance":"gw-1","waitSeconds":0}"#,
        );
        (st == 200).then_some(())
    });
    assert!(ok.is_some());
}

#[test]
fn l5_a_user_gets_no_more_open_sessions_than_the_cap_across_gateways() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("psm-data");
    let port = free_port();
    let _cp = controlplane(&data, port, &["--max-sessions-per-user", "2"]);
    let key = std::fs::read_to_string(data.join("keys/gateway.key"))
        .unwrap()
        .trim()
        .to_owned();
    let ids: Vec<String> = (1..=4)
        .map(|i| format!("6f1c2a7e-0000-4000-8000-00000000010{i}"))
        .collect();
    // Two sessions through two gateways: the cap holds across them.
    let (st, b) = call(
        port,
        &key,
        "POST",
        "OpenSession",
        &open_body(&ids[0], "gw-a", "alice"),
    );
    assert_eq!(st, 200, "{b}");
    let (st, b) = call(
        port,
        &key,
        "POST",
        "OpenSession",
        &open_body(&ids[1], "gw-b", "alice"),
    );
    assert_eq!(st, 200, "{b}");
    let (st, b) = call(
        port,
        &key,
        "POST",
        "OpenSession",
        &open_body(&ids[2], "gw-a", "alice"),
    );
    assert_eq!(st, 403, "{b}");
    assert!(
        b.contains("already has 2 open sessions") && b.contains("end one"),
        "the refusal says why: {b}"
    );
    // Another user is not affected; alice may open again once one of hers ended.
    let (st, b) = call(
        port,
        &key,
        "POST",
        "OpenSession",
        &open_body(&ids[3], "gw-a", "bob"),
    );
    assert_eq!(st, 200, "{b}");
    let (st, b) = call(
        port,
        &key,
        "POST",
        "EndSession",
        &format!(r#"{{"session":"{}","processInstance":"gw-b"}}"#, ids[1]),
    );
    assert_eq!(st, 200, "{b}");
    let (st, b) = call(
        port,
        &key,
        "POST",
        "OpenSession",
        &open_body(&ids[2], "gw-a", "alice"),
    );
    assert_eq!(st, 200, "{b}");
}
