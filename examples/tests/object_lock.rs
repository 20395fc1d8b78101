//! Issue 17 M12, with S3 Object Lock: `psm up` uploading to a bucket that has Object Lock
//! enabled (moto, set up with the AWS CLI as an operator would), OpenSSH through the gateway.
//! Once the stored version is under retention, whoever holds the uploader's credentials can
//! neither delete nor replace it, and a newer
//! version they put over it (a recording cut back before its last chunk, signed by the
//! registered gateway) is shown by the web UI as not what the gateway committed to at
//! EndSession, while the original stays readable by its version id.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use common::{SshTarget, Up, free_port, text, wait_for};

const BUCKET: &str = "psm-locked";

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `aws --endpoint-url ENDPOINT s3api ARGS...` with moto's test credentials.
fn s3api(endpoint: &str, args: &[&str]) -> Output {
    Command::new("aws")
        .args(["--endpoint-url", endpoint, "s3api"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .expect("the AWS CLI (pip install awscli; scripts/test installs it)")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", text(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

/// `aws s3api get-object` of `key` (its latest version, or `version`) into `to`; its bytes.
fn get_object(endpoint: &str, key: &str, version: Option<&str>, to: &Path) -> Vec<u8> {
    let mut args = vec!["get-object", "--bucket", BUCKET, "--key", key];
    if let Some(v) = version {
        args.extend(["--version-id", v]);
    }
    args.push(to.to_str().unwrap());
    json(&s3api(endpoint, &args));
    std::fs::read(to).unwrap()
}

#[test]
fn a_locked_bucket_keeps_what_the_gateway_committed_to() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // An S3 bucket with Object Lock on and a default retention of one day (COMPLIANCE).
    let port = free_port();
    let moto = Moto(
        Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server (pip install 'moto[server]'; scripts/test installs it)"),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let created = wait_for(30, || {
        s3api(
            &endpoint,
            &[
                "create-bucket",
                "--bucket",
                BUCKET,
                "--object-lock-enabled-for-bucket",
            ],
        )
        .status
        .success()
        .then_some(())
    });
    assert!(created.is_some(), "creating the bucket on moto");
    // psm up stores there; one OpenSSH session.
    let target = SshTarget::start(d, "psmlock");
    let up = Up::start(
        d,
        &[
            "--store",
            &format!("s3://{BUCKET}"),
            "--s3-endpoint",
            &endpoint,
            "--allow-http",
            "--s3-access-key-id",
            "test",
            "--s3-secret-access-key",
            "test",
        ],
    );
    up.add_ssh_target("web-01", &target, "ops");
    let key = d.join("alice");
    common::keygen(&key);
    up.add_user_with_key("alice", "ops", &key);
    let out = up.ssh(d, &key, "alice+web-01", "echo locked-output-$((6*7))");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("locked-output-42"),
        "{}",
        text(&out)
    );
    let raw = up.recordings().pop().expect("a recording");
    let id = raw.file_stem().unwrap().to_string_lossy().into_owned();
    let object = format!("sessions/{id}/recording.psmr");
    let manifest = format!("sessions/{id}/manifest.json");
    let stored = wait_for(60, || {
        s3api(
            &endpoint,
            &["head-object", "--bucket", BUCKET, "--key", &manifest],
        )
        .status
        .success()
        .then_some(())
    });
    assert!(
        stored.is_some(),
        "uploaded; psm up log:\n{}",
        up.log.lock().unwrap()
    );

    // The stored version gets a retention period (COMPLIANCE, one day). On AWS a bucket's
    // default retention does this for every upload (PSM's PUTs carry x-amz-checksum-sha256,
    // which AWS accepts for it); moto refuses default-retention uploads without an
    // x-amz-sdk-checksum-algorithm header, so here the retention is put on the version.
    let head = json(&s3api(
        &endpoint,
        &["head-object", "--bucket", BUCKET, "--key", &object],
    ));
    let version = head["VersionId"].as_str().unwrap().to_owned();
    let until = (std::time::SystemTime::now() + std::time::Duration::from_secs(86_400))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let retained = s3api(
        &endpoint,
        &[
            "put-object-retention",
            "--bucket",
            BUCKET,
            "--key",
            &object,
            "--version-id",
            &version,
            "--retention",
            &format!(r#"{{"Mode":"COMPLIANCE","RetainUntilDate":{until}}}"#),
        ],
    );
    assert!(retained.status.success(), "{}", text(&retained));
    let head = json(&s3api(
        &endpoint,
        &["head-object", "--bucket", BUCKET, "--key", &object],
    ));
    assert_eq!(head["ObjectLockMode"], "COMPLIANCE", "{head}");
    let original_bytes = get_object(&endpoint, &object, None, &d.join("original.psmr"));

    // Whoever holds the uploader's credentials cannot delete the stored version...
    let deleted = s3api(
        &endpoint,
        &[
            "delete-object",
            "--bucket",
            BUCKET,
            "--key",
            &object,
            "--version-id",
            &version,
        ],
    );
    assert!(!deleted.status.success(), "{}", text(&deleted));
    assert!(
        text(&deleted).contains("AccessDenied"),
        "{}",
        text(&deleted)
    );

    // ...but can put a newer version over it: the recording cut back before its last chunk,
    // still signed by the registered gateway.
    let reader = psm_recording::Reader::from_bytes(original_bytes.clone(), Default::default())
        .expect("readable");
    let cut_at = reader.chunks().last().expect("a chunk").offset as usize;
    let cut = d.join("cut.psmr");
    std::fs::write(&cut, &original_bytes[..cut_at]).unwrap();
    json(&s3api(
        &endpoint,
        &[
            "put-object",
            "--bucket",
            BUCKET,
            "--key",
            &object,
            "--body",
            cut.to_str().unwrap(),
        ],
    ));

    // The web UI replays from the bucket (the local copy is gone) and says it is not what
    // the gateway committed to.
    assert!(!raw.exists(), "the local copy is deleted once stored");
    let cookie = common::web_login(up.api_port, "admin", &up.admin_password());
    let (code, _, index) = common::web_request(
        up.api_port,
        "GET",
        &format!("/ui/api/recordings/{id}/index"),
        &cookie,
        "",
    );
    assert_eq!(code, 200, "{index}");
    let index: serde_json::Value = serde_json::from_str(&index).unwrap();
    assert_eq!(index["signerTrusted"], true, "{index}");
    assert_eq!(index["committed"], false, "{index}");
    assert_eq!(index["intact"], false, "{index}");

    // The locked original is still there, byte for byte, and ends where the gateway
    // committed to.
    let again = d.join("again.psmr");
    assert_eq!(
        get_object(&endpoint, &object, Some(&version), &again),
        original_bytes
    );
    check_matches_commitment(&up, &cookie, &id, &again);
    assert!(up.stop());
    drop(moto);
}

/// The session's commitment, as the control plane's audit trail shows it in the web UI, is
/// where `recording` ends.
fn check_matches_commitment(up: &Up, cookie: &str, id: &str, recording: &Path) {
    let (code, _, detail) = common::web_request(
        up.api_port,
        "GET",
        &format!("/ui/api/sessions/{id}"),
        cookie,
        "",
    );
    assert_eq!(code, 200, "{detail}");
    let chain = psm_recording::Reader::open(recording, Default::default())
        .unwrap()
        .chain_end();
    let committed = format!("EndSession; recording blake3:{}", hex(&chain));
    assert!(detail.contains(&committed), "{committed} not in {detail}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
