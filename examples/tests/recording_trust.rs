//! Issue 17 M12 with the real binaries: `psm up` (gateway, encoder, uploader, web UI on one
//! node), OpenSSH and a real sshd. The web UI plays an export only as the node's registered
//! encoder signed it: a forged export, or a manifest changed to list it, is not played (the
//! player converts the gateway-signed `.psmr`) and not handed out; a recording signed by a
//! key no registered gateway holds is shown as not trusted; one cut back by whoever holds the
//! node (and its gateway's key) is shown as not what the gateway committed to at EndSession.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{SshTarget, Up, psm, text, wait_for};

/// The directory of a session's set in the node's store, once its manifest is there.
fn stored_set(data: &Path, id: &str) -> Option<PathBuf> {
    let dir = data.join("store").join("sessions").join(id);
    dir.join("manifest.json").exists().then_some(dir)
}

#[test]
fn the_web_ui_plays_only_what_registered_signers_signed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = SshTarget::start(d, "psmtrust");
    let up = Up::start(d, &[]);
    up.add_ssh_target("web-01", &target, "ops");
    let key = d.join("alice");
    common::keygen(&key);
    up.add_user_with_key("alice", "ops", &key);
    let out = up.ssh(d, &key, "alice+web-01", "echo trusted-output-$((6*7))");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("trusted-output-42"),
        "{}",
        text(&out)
    );
    let raw = up.recordings().pop().expect("a recording");
    let id = raw.file_stem().unwrap().to_string_lossy().into_owned();

    // The node's gateway and encoder registered their keys.
    let signers = up.data.join("keys").join("signers");
    assert!(
        std::fs::read_dir(signers.join("gateways")).unwrap().count() >= 1
            && std::fs::read_dir(signers.join("encoders")).unwrap().count() >= 1
    );
    let set = wait_for(60, || stored_set(&up.data, &id)).expect("uploaded");
    assert!(set.join("manifest.sig").exists(), "the signature is stored");
    let export = std::fs::read_to_string(set.join("session.cast")).unwrap();

    let cookie = common::web_login(up.api_port, "admin", &up.admin_password());
    let get = |path: &str| common::web_request(up.api_port, "GET", path, &cookie, "");
    let cast_path = format!("/ui/api/recordings/{id}/cast");

    // Intact: the encoder's export is played, and the recording's signer is trusted.
    let (code, _, cast) = get(&cast_path);
    assert_eq!(code, 200, "{cast}");
    assert_eq!(cast, export, "the signed export is what plays");
    let (code, _, index) = get(&format!("/ui/api/recordings/{id}/index"));
    assert_eq!(code, 200, "{index}");
    let index: serde_json::Value = serde_json::from_str(&index).unwrap();
    assert_eq!(index["signerTrusted"], true, "{index}");
    assert_eq!(index["intact"], true, "{index}");
    // The gateway committed to the recording at EndSession; the encoder checked the file
    // against the control plane's copy and says so in the manifest it signed.
    assert_eq!(index["committed"], true, "{index}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(set.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["committed"]["chain"], manifest["recording_chain"],
        "{manifest}"
    );
    assert!(manifest["committed"]["chain"].is_string(), "{manifest}");

    // Whoever holds the node's disk (and so the gateway's own key) cuts the stored
    // recording back before its last chunk: a valid prefix the registered gateway signed,
    // which alone would read as merely truncated. The control plane's commitment says it
    // is not what the gateway wrote.
    let stored = std::fs::read(set.join("recording.psmr")).unwrap();
    let reader =
        psm_recording::Reader::from_bytes(stored.clone(), Default::default()).expect("readable");
    let cut = reader.chunks().last().expect("a chunk").offset as usize;
    std::fs::write(set.join("recording.psmr"), &stored[..cut]).unwrap();
    let (code, _, index) = get(&format!("/ui/api/recordings/{id}/index"));
    assert_eq!(code, 200, "{index}");
    let index: serde_json::Value = serde_json::from_str(&index).unwrap();
    assert_eq!(index["signerTrusted"], true, "{index}");
    assert_eq!(index["committed"], false, "{index}");
    assert_eq!(index["intact"], false, "{index}");
    assert!(
        index["integrity"]
            .as_str()
            .unwrap()
            .starts_with("Not what its gateway committed to"),
        "{index}"
    );
    std::fs::write(set.join("recording.psmr"), &stored).unwrap();

    // Someone with write access to the store forges the export.
    let forged = export.replace("trusted-output-42", "FORGED-OUTPUT-00");
    assert_ne!(forged, export);
    std::fs::write(set.join("session.cast"), &forged).unwrap();
    let (code, _, cast) = get(&cast_path);
    assert_eq!(code, 200, "{cast}");
    assert!(
        !cast.contains("FORGED"),
        "a forged export is not played: {cast}"
    );
    assert!(
        cast.contains("trusted-output-42"),
        "the player converts the signed .psmr instead: {cast}"
    );
    let (code, _, body) = get(&format!("/ui/api/recordings/{id}/files/session.cast"));
    assert_eq!(code, 409, "a forged export is not handed out: {body}");

    // ...and edits the manifest to list the forged export's hash: its signature fails.
    let manifest = std::fs::read_to_string(set.join("manifest.json")).unwrap();
    let listed = psm_storage::Checksum::of(export.as_bytes()).to_string();
    assert!(manifest.contains(&listed), "{manifest}");
    let forged_hash = psm_storage::Checksum::of(forged.as_bytes()).to_string();
    std::fs::write(
        set.join("manifest.json"),
        manifest.replace(&listed, &forged_hash),
    )
    .unwrap();
    let (code, _, cast) = get(&cast_path);
    assert_eq!(code, 200, "{cast}");
    assert!(
        !cast.contains("FORGED"),
        "a changed manifest is not believed: {cast}"
    );
    let (code, _, body) = get(&format!("/ui/api/recordings/{id}/files/session.cast"));
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("signature"), "{body}");

    // A recording signed by a key of the forger's own (valid, self-consistent) replaces the
    // gateway's: the UI says it is not trusted.
    let forged_psmr = d.join("forged.psmr");
    let cast_file = d.join("forged.cast");
    std::fs::write(&cast_file, &forged).unwrap();
    let out = Command::new(psm())
        .arg("import")
        .arg(&cast_file)
        .arg("-o")
        .arg(&forged_psmr)
        .args(["--session", &id, "--user", "alice", "--target", "web-01"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    std::fs::copy(&forged_psmr, set.join("recording.psmr")).unwrap();
    let (code, _, index) = get(&format!("/ui/api/recordings/{id}/index"));
    assert_eq!(code, 200, "{index}");
    let index: serde_json::Value = serde_json::from_str(&index).unwrap();
    assert_eq!(index["signerTrusted"], false, "{index}");
    assert_eq!(index["intact"], false, "{index}");
    assert!(
        index["integrity"]
            .as_str()
            .unwrap()
            .starts_with("Not trusted"),
        "{index}"
    );

    // `psm signers`: the node's gateway is listed; trusting the forger's key by hand (as an
    // operator adds another node's gateway) makes its recording trusted, removing it undoes
    // that, and both changes are in the audit trail.
    let signers = |args: &[&str]| {
        let out = Command::new(psm())
            .arg("signers")
            .args(args)
            .arg("--data")
            .arg(&up.data)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = signers(&["list"]);
    assert!(
        listed.lines().any(|l| l.starts_with("gateway\t")),
        "{listed}"
    );
    assert!(
        listed.lines().any(|l| l.starts_with("encoder\t")),
        "{listed}"
    );
    let forger = index["signer"].as_str().unwrap().to_owned();
    assert!(!listed.contains(&forger), "{listed}");
    signers(&["add", "--kind", "gateway", "other-node", &forger]);
    let trusted = |want: bool| {
        let (_, _, index) = get(&format!("/ui/api/recordings/{id}/index"));
        let index: serde_json::Value = serde_json::from_str(&index).unwrap();
        assert_eq!(index["signerTrusted"], want, "{index}");
        index
    };
    assert_eq!(trusted(true)["gateway"], "other-node");
    signers(&["remove", "--kind", "gateway", "other-node"]);
    trusted(false);
    let audit = Command::new(psm())
        .args([
            "signers",
            "remove",
            "--kind",
            "gateway",
            "other-node",
            "--data",
        ])
        .arg(&up.data)
        .output()
        .unwrap();
    assert!(!audit.status.success(), "removing twice is refused");
    let data = up.data.clone();
    assert!(up.stop());
    let trail = audit_trail(&data);
    assert!(
        trail.contains(&format!("signer registered: gateway other-node {forger}"))
            && trail.contains(&format!("signer removed: gateway other-node {forger}")),
        "{trail}"
    );
}

/// Every audit row's detail in the node's database, one per line.
fn audit_trail(data: &Path) -> String {
    use psm_core::store::{AuditQuery, SessionStore, SqliteStore};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(data.join("psm.db")).await.unwrap();
        let rows = store.audit_events(&AuditQuery::default()).await.unwrap();
        store.close().await;
        rows.into_iter()
            .map(|r| r.record.detail + "\n")
            .collect::<String>()
    })
}
