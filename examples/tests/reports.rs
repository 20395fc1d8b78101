//! Compliance reports from the real binary (docs/reports.md): `psm up` with a policy, an
//! OpenSSH target, sessions by plain `ssh` (one with a policy alert), then `psm report` in
//! every format, their content, `psm report verify` accepting them and refusing a report or
//! a recording changed afterwards, and the PDF rendered to PNG by poppler's pdftoppm.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{SshTarget, Up, psm, text, wait_for};

fn report(data: &Path, out: &Path, format: &str, extra: &[&str]) -> Output {
    let o = Command::new(psm())
        .args(["report", "--data"])
        .arg(data)
        .args([
            "--from",
            "2000-01-01",
            "--to",
            "2100-01-01",
            "--format",
            format,
            "--out",
        ])
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "psm report --format {format}: {}",
        text(&o)
    );
    o
}

fn verify(data: &Path, file: &Path) -> Output {
    Command::new(psm())
        .args(["report", "verify"])
        .arg(file)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap()
}

fn sha256(path: &Path) -> String {
    let o = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// The stored raw recording of a session, once the uploader put its set in the store.
fn stored_raw(data: &Path, id: &str) -> Option<PathBuf> {
    let dir = data.join("store").join("sessions").join(id);
    (dir.join("manifest.json").exists() && dir.join("recording.psmr").exists())
        .then(|| dir.join("recording.psmr"))
}

#[test]
fn reports_in_every_format_are_sealed_verified_and_refused_when_changed() {
    // pdftoppm and pdftotext (poppler-utils) must be there: scripts/test installs them.
    for tool in ["pdftoppm", "pdftotext", "sha256sum"] {
        assert!(
            Command::new(tool).arg("-v").output().is_ok(),
            "{tool} is missing: install poppler-utils (scripts/test does)"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = SshTarget::start(d, "psmreport");
    let policy = d.join("policy.toml");
    std::fs::write(
        &policy,
        "[[rule]]\nname = \"shadow-read\"\nglob = \"cat /etc/shadow\"\naction = \"alert\"\n\
         message = \"reading the password hashes\"\n",
    )
    .unwrap();
    let up = Up::start(d, &["--policy", policy.to_str().unwrap()]);
    up.add_ssh_target("web-01", &target, "ops");
    let alice = d.join("alice");
    common::keygen(&alice);
    up.add_user_with_key("alice", "ops", &alice);
    let bob = d.join("bob");
    common::keygen(&bob);
    up.add_user_with_key("bob", "ops", &bob);

    // Three sessions by alice; bob never connects (dormant).
    let out = up.ssh(d, &alice, "alice+web-01", "whoami");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        target.account,
        "{}",
        text(&out)
    );
    let out = up.ssh(d, &alice, "alice+web-01", "echo report-marker-$((6*7))");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("report-marker-42"),
        "{}",
        text(&out)
    );
    let _ = up.ssh(d, &alice, "alice+web-01", "cat /etc/shadow");
    let ids: Vec<String> = wait_for(20, || {
        let r = up.recordings();
        (r.len() == 3).then(|| {
            r.iter()
                .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
                .collect()
        })
    })
    .expect("three recordings");
    // Reports cite a recording's final bytes: wait until each set is stored (the encoder
    // appends its seek index to the raw file before the upload).
    for id in &ids {
        wait_for(90, || stored_raw(&up.data, id)).expect("uploaded");
    }
    wait_for(30, || up.recordings().is_empty().then_some(())).expect("local copies removed");

    let out_dir = d.join("reports");
    std::fs::create_dir_all(&out_dir).unwrap();
    let files: Vec<(&str, PathBuf)> = ["json", "csv", "html", "pdf"]
        .into_iter()
        .map(|f| (f, out_dir.join(format!("report.{f}"))))
        .collect();
    for (format, path) in &files {
        report(&up.data, path, format, &[]);
    }

    // JSON: the facts.
    let json_text = std::fs::read_to_string(&files[0].1).unwrap();
    let json: serde_json::Value = serde_json::from_str(&json_text).unwrap();
    let sessions = json["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3, "{json_text}");
    let mut commands = String::new();
    let mut policy_events = String::new();
    for s in sessions {
        assert_eq!(s["user"], "alice");
        assert_eq!(s["target"], "web-01");
        assert_eq!(s["protocol"], "ssh");
        // The client's address and port as the gateway saw them.
        assert!(
            s["client"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{s}"
        );
        assert_eq!(s["recording"]["status"], "intact", "{s}");
        assert!(
            s["recording"]["signer"]
                .as_str()
                .unwrap()
                .contains("gateway"),
            "the signer is a registered gateway: {s}"
        );
        let id = s["id"].as_str().unwrap();
        let stored = stored_raw(&up.data, id).unwrap();
        assert_eq!(s["recording"]["sha256"], sha256(&stored), "{s}");
        for c in s["commands"].as_array().unwrap() {
            commands.push_str(c["text"].as_str().unwrap());
            commands.push('\n');
        }
        for p in s["policy"].as_array().unwrap() {
            policy_events.push_str(p["text"].as_str().unwrap());
        }
    }
    for c in ["whoami", "echo report-marker-$((6*7))", "cat /etc/shadow"] {
        assert!(commands.contains(c), "{c:?} in {commands}");
    }
    assert!(policy_events.contains("shadow-read"), "{policy_events}");
    assert_eq!(json["recordings"].as_array().unwrap().len(), 3);
    let dormant = json["dormantUsers"].as_array().unwrap();
    assert!(dormant.iter().any(|u| u == "bob"), "{dormant:?}");
    assert!(!dormant.iter().any(|u| u == "alice"), "{dormant:?}");
    assert_eq!(json["byUser"][0]["user"], "alice");
    assert_eq!(json["byUser"][0]["sessions"], 3);

    // CSV and HTML say the same; the PDF's text too (pdftotext), and it renders (pdftoppm).
    let csv = std::fs::read_to_string(&files[1].1).unwrap();
    assert!(csv.starts_with("kind,session,user,target"), "{csv}");
    assert!(
        csv.lines()
            .any(|l| l.starts_with("command,") && l.contains("whoami")),
        "{csv}"
    );
    assert!(
        csv.lines()
            .any(|l| l.starts_with("policy,") && l.contains("shadow-read"))
    );
    assert!(
        csv.lines()
            .any(|l| l.starts_with("dormant,") && l.contains("bob"))
    );
    let html = std::fs::read_to_string(&files[2].1).unwrap();
    for s in [
        "alice",
        "web-01",
        "whoami",
        "shadow-read",
        "intact",
        "127.0.0.1",
    ] {
        assert!(html.contains(s), "{s} in the HTML");
    }
    let pdf = &files[3].1;
    let o = Command::new("pdftotext")
        .args(["-layout"])
        .arg(pdf)
        .arg("-")
        .output()
        .unwrap();
    assert!(o.status.success(), "pdftotext: {}", text(&o));
    let pdf_text = String::from_utf8_lossy(&o.stdout);
    for s in [
        "PSM compliance report",
        "alice",
        "web-01",
        "whoami",
        "shadow-read",
        "INTACT",
        "bob",
    ] {
        assert!(pdf_text.contains(s), "{s:?} in the PDF's text:\n{pdf_text}");
    }
    let png = out_dir.join("page");
    let o = Command::new("pdftoppm")
        .args(["-png", "-r", "80"])
        .arg(pdf)
        .arg(&png)
        .output()
        .unwrap();
    assert!(o.status.success(), "pdftoppm: {}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).trim().is_empty(),
        "poppler complains about the sealed PDF: {}",
        text(&o)
    );
    let pages: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    assert!(!pages.is_empty(), "pdftoppm wrote no page");
    if let Ok(keep) = std::env::var("PSM_REPORT_PNG_DIR") {
        for p in &pages {
            std::fs::copy(p, Path::new(&keep).join(p.file_name().unwrap())).unwrap();
        }
    }

    // The vaulted password of the target is in no report.
    for (_, path) in &files {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&target.password),
            "the target's password is in {}",
            path.display()
        );
    }

    // Every report verifies: its seal and the recordings it cites.
    for (format, path) in &files {
        let o = verify(&up.data, path);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "verify {format}: {}", text(&o));
        assert!(out.contains("signature: valid"), "{}", text(&o));
        assert!(out.contains("all 3 cited recordings match"), "{}", text(&o));
    }

    // A byte changed in a report: refused, saying why.
    for (format, path) in &files {
        let mut bytes = std::fs::read(path).unwrap();
        let at = if *format == "json" {
            // Still valid JSON: only the seal can tell.
            let t = String::from_utf8_lossy(&bytes);
            t.find("\"alice\"").unwrap() + 1
        } else {
            bytes.len() / 2
        };
        bytes[at] ^= 0x01;
        let bad = out_dir.join(format!("tampered.{format}"));
        std::fs::write(&bad, &bytes).unwrap();
        let o = verify(&up.data, &bad);
        assert_eq!(o.status.code(), Some(1), "{format}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("REFUSED"),
            "{}",
            text(&o)
        );
    }
    let mut bytes = std::fs::read(&files[0].1).unwrap();
    let at = String::from_utf8_lossy(&bytes).find("\"alice\"").unwrap() + 1;
    bytes[at] = b'A';
    let bad = out_dir.join("alice-renamed.json");
    std::fs::write(&bad, &bytes).unwrap();
    let o = verify(&up.data, &bad);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("changed after it was sealed"),
        "{}",
        text(&o)
    );

    // The same report from the web UI (an administrator's download), sealed by the same key.
    let cookie = common::web_login(up.api_port, "admin", &up.admin_password());
    let (code, head, body) = common::web_request(
        up.api_port,
        "GET",
        "/ui/api/report?from=2000-01-01&to=2100-01-01&format=json&user=alice",
        &cookie,
        "",
    );
    assert_eq!(code, 200, "{head}\n{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-disposition: attachment"),
        "{head}"
    );
    let web = out_dir.join("web.json");
    std::fs::write(&web, &body).unwrap();
    let o = verify(&up.data, &web);
    assert!(o.status.success(), "the web UI's report: {}", text(&o));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["sessions"].as_array().unwrap().len(), 3);
    assert_eq!(v["generatedBy"], "admin (web UI)");
    let (code, _, body) = common::web_request(
        up.api_port,
        "GET",
        "/ui/api/report?from=2000-01-01&to=2100-01-01&format=docx",
        &cookie,
        "",
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("unknown report format"), "{body}");

    // A filter: bob's report has no session, and bob is dormant in it.
    let bobs = out_dir.join("bob.json");
    report(&up.data, &bobs, "json", &["--user", "bob"]);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bobs).unwrap()).unwrap();
    assert_eq!(v["sessions"].as_array().unwrap().len(), 0);
    assert_eq!(v["dormantUsers"], serde_json::json!(["bob"]));

    // A recording changed after the report: the (intact) report's check says so and fails;
    // a new report lists that session's recording as not intact.
    let victim = stored_raw(&up.data, &ids[0]).unwrap();
    let mut raw = std::fs::read(&victim).unwrap();
    let mid = raw.len() / 2;
    raw[mid] ^= 0x01;
    std::fs::write(&victim, &raw).unwrap();
    let o = verify(&up.data, &files[0].1);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("recording {}: CHANGED", ids[0])),
        "{}",
        text(&o)
    );
    let again = out_dir.join("again.json");
    report(&up.data, &again, "json", &[]);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&again).unwrap()).unwrap();
    let s = v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == ids[0].as_str())
        .unwrap();
    assert_ne!(s["recording"]["status"], "intact", "{s}");
    assert!(
        v["recordingExceptions"][0]
            .as_str()
            .unwrap()
            .contains(&ids[0]),
        "{v}"
    );
    assert!(up.stop());
}
