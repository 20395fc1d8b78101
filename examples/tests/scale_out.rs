//! Scale-out, black-box (docs/deployment.md, issue 22): the shipped binaries as a deployment.
//! One `psm-controlplane` (SQLite) serving the API and the admin web UI; two nodes, each with
//! its own data directory and its own `psm-gateway`, `psm-encoder` and `psm-uploader`, all
//! against the control plane over HTTP; S3 is moto. Real OpenSSH sessions through both
//! gateways to a real sshd. Node b's encoder starts late: meanwhile node a's sessions are
//! uploaded and node b's wait, untouched (Ended, 0 attempts). Then every session reaches the
//! bucket (Done-Uploaded, its set closed by its manifest), none is Failed or has a failed
//! attempt, each step of each session was done by the workers of the node that recorded it,
//! and the web UI of psm-controlplane (an admin logs in) lists the sessions of both gateways
//! and replays each from the bucket.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::{Kill, SshTarget, free_port, keygen, psm, text, wait_for, wait_port};
use psm_core::store::{AuditQuery, ListQuery, SessionStore, SqliteStore};
use psm_core::{AuditAction, Stage};
use psm_storage::{ObjectKey, S3Config, SecretString, StoreConfig};

const BUCKET: &str = "psm-scale-out";
const SESSIONS_PER_GATEWAY: usize = 4;

/// Spawns `program args` with its output in `DIR/LOG-NAME.log`.
fn spawn(program: &str, args: &[&str], env: &[(&str, &str)], dir: &Path, name: &str) -> Kill {
    let log = File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"));
    Kill(child)
}

fn log_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
}

fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    let (status, _, body) = common::http_request(port, method, path, &[], "");
    (status, body)
}

struct Node {
    name: &'static str,
    data: PathBuf,
    ssh_port: u16,
    processes: Vec<Kill>,
}

#[test]
fn two_nodes_every_session_reaches_the_bucket_and_one_ui_serves_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let logs = d.join("logs");
    std::fs::create_dir_all(&logs).unwrap();

    // S3.
    let moto_port = free_port();
    let _moto = spawn(
        "moto_server",
        &["-H", "127.0.0.1", "-p", &moto_port.to_string()],
        &[],
        &logs,
        "moto",
    );
    wait_port(moto_port);
    let created = wait_for(30, || {
        let (code, _) = http(moto_port, "PUT", &format!("/{BUCKET}"));
        (code == 200).then_some(())
    });
    assert!(created.is_some(), "creating the bucket on moto");
    let s3_endpoint = format!("http://127.0.0.1:{moto_port}");
    let aws = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];

    // The target and the control plane (its PSMStorageLocation is the bucket).
    let target = SshTarget::start(d, "psmscale");
    let cp_data = d.join("controlplane");
    let api_port = free_port();
    let api = format!("http://127.0.0.1:{api_port}");
    let _cp = spawn(
        env!("CARGO_BIN_EXE_psm-controlplane"),
        &[
            "--listen",
            &format!("127.0.0.1:{api_port}"),
            "--data",
            cp_data.to_str().unwrap(),
            "--storage-mode",
            "AWS",
            "--storage-location",
            &format!("s3://{BUCKET}"),
            "--s3-endpoint",
            &s3_endpoint,
            "--allow-http",
            "--lease-ttl",
            "20",
            "--sweep-interval",
            "1",
        ],
        &aws,
        &logs,
        "controlplane",
    );
    wait_port(api_port);

    // Administration against the control plane's data directory: a target, a user.
    let out = common::run_with_stdin(
        Command::new(psm())
            .args(target.add_args("web-01", "ops"))
            .arg("--data")
            .arg(&cp_data),
        &target.password,
    );
    assert!(out.status.success(), "{}", text(&out));
    let key = d.join("alice");
    keygen(&key);
    // Users are administered over HTTP, as on a host without the control plane's files: the
    // CLI hashes passwords itself and sends only hashes.
    let admin_key = cp_data.join("keys").join("admin.key");
    let out = Command::new(psm())
        .args([
            "users",
            "add",
            "alice",
            "--control-plane",
            &api,
            "--api-key-file",
        ])
        .arg(&admin_key)
        .args(["--role", "ops", "--key-file"])
        .arg(key.with_extension("pub"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let mut add = Command::new(psm())
        .args([
            "users",
            "add",
            "webadmin",
            "--control-plane",
            &api,
            "--api-key-file",
        ])
        .arg(&admin_key)
        .args(["--role", "admin", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(b"scale-out-web-password-7f3\n")
        .unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = Command::new(psm())
        .args(["users", "list", "--control-plane", &api, "--api-key-file"])
        .arg(&admin_key)
        .output()
        .unwrap();
    let listed = text(&out);
    assert!(out.status.success(), "{listed}");
    assert!(
        listed.contains("alice\troles=ops\tkeys=1\tpassword=no"),
        "{listed}"
    );
    assert!(
        listed.contains("webadmin\troles=admin\tkeys=0\tpassword=yes"),
        "{listed}"
    );
    assert!(!listed.contains("scale-out-web-password"), "{listed}");
    // Without the admin key the control plane refuses, and the CLI says so.
    let out = Command::new(psm())
        .args(["users", "list", "--control-plane", &api])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));

    // Two nodes: gateway, encoder, uploader, each against its own data directory.
    let keys = cp_data.join("keys");
    let mut nodes = Vec::new();
    for name in ["a", "b"] {
        let data = d.join(format!("node-{name}"));
        std::fs::create_dir_all(&data).unwrap();
        let (ssh_port, live_port) = (free_port(), free_port());
        let config = data.join("gateway.toml");
        std::fs::write(
            &config,
            format!(
                "[ssh]\nlisten = \"127.0.0.1:{ssh_port}\"\nprocess_instance = \"gateway-{name}\"\n\
                 [live]\nlisten = \"127.0.0.1:{live_port}\"\n\
                 [control_plane]\nurl = \"{api}\"\napi_key_file = \"{}\"\n",
                keys.join("gateway.key").display(),
            ),
        )
        .unwrap();
        let gateway = spawn(
            env!("CARGO_BIN_EXE_psm-gateway"),
            &[
                "--config",
                config.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
            ],
            &[],
            &logs,
            &format!("gateway-{name}"),
        );
        let worker = |role: &str, program: &str, extra: &[&str]| {
            let mut args = vec![
                "--data".to_owned(),
                data.display().to_string(),
                "--control-plane".to_owned(),
                api.clone(),
                "--api-key-file".to_owned(),
                keys.join(format!("{role}.key")).display().to_string(),
                "--instance".to_owned(),
                format!("{role}-{name}"),
                "--poll-secs".to_owned(),
                "0.2".to_owned(),
                "--min-free-mib".to_owned(),
                "1".to_owned(),
                "--lease-ttl-secs".to_owned(),
                "20".to_owned(),
            ];
            args.extend(extra.iter().map(|s| s.to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            spawn(program, &args, &aws, &logs, &format!("{role}-{name}"))
        };
        // Node b's encoder starts late: until then its sessions must wait for it, not burn
        // their attempts on node a.
        let encoder =
            (name == "a").then(|| worker("encoder", env!("CARGO_BIN_EXE_psm-encoder"), &[]));
        let uploader = worker(
            "uploader",
            env!("CARGO_BIN_EXE_psm-uploader"),
            &["--s3-endpoint", &s3_endpoint, "--allow-http"],
        );
        wait_port(ssh_port);
        nodes.push(Node {
            name,
            data,
            ssh_port,
            processes: [Some(gateway), encoder, Some(uploader)]
                .into_iter()
                .flatten()
                .collect(),
        });
    }

    // OpenSSH sessions through both gateways, interleaved, several at once.
    let mut clients = Vec::new();
    for i in 0..SESSIONS_PER_GATEWAY {
        for node in &nodes {
            let (port, name, key, known) =
                (node.ssh_port, node.name, key.clone(), d.join("known_hosts"));
            clients.push(std::thread::spawn(move || {
                let marker = format!("scale-out-{name}-{i}");
                let out = Command::new("ssh")
                    .args(["-F", "/dev/null", "-o", "StrictHostKeyChecking=no"])
                    .arg("-o")
                    .arg(format!("UserKnownHostsFile={}", known.display()))
                    .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i"])
                    .arg(&key)
                    .args([
                        "-p",
                        &port.to_string(),
                        "alice+web-01@127.0.0.1",
                        &format!("echo {marker}; sleep 0.3; echo done"),
                    ])
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                assert!(
                    String::from_utf8_lossy(&out.stdout).contains(&marker),
                    "{}",
                    text(&out)
                );
            }));
        }
    }
    for c in clients {
        c.join().unwrap();
    }
    let expected = SESSIONS_PER_GATEWAY * nodes.len();

    // Every session reaches Done-Uploaded; none fails on the way.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sessions_db: Arc<dyn SessionStore> = Arc::new(
        rt.block_on(SqliteStore::open(cp_data.join("psm.db")))
            .unwrap(),
    );
    let diagnostics = |what: &str| {
        let mut s = format!("{what}\n");
        for name in [
            "controlplane",
            "gateway-a",
            "gateway-b",
            "encoder-a",
            "encoder-b",
            "uploader-a",
            "uploader-b",
        ] {
            let log = log_of(&logs, name);
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            s.push_str(&format!("--- {name}:\n"));
            for l in tail.into_iter().rev() {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    };
    let by_gateway = |all: &[psm_core::PrivSession], stage: Stage| {
        let mut count = [0usize; 2];
        for s in all.iter().filter(|s| s.stage == stage) {
            let trail = rt
                .block_on(sessions_db.audit_events(&AuditQuery {
                    session: Some(s.id),
                    ..AuditQuery::default()
                }))
                .unwrap();
            match trail.first().map(|e| e.record.actor.as_str()) {
                Some("gateway-a") => count[0] += 1,
                Some("gateway-b") => count[1] += 1,
                other => panic!("{}: opened by {other:?}", s.id),
            }
        }
        count
    };
    // Node a's sessions go all the way; node b's wait for node b's encoder, untouched.
    let first = wait_for(180, || {
        let all = rt
            .block_on(sessions_db.list(&ListQuery::default()))
            .unwrap();
        assert!(all.iter().all(|s| s.stage != Stage::Failed), "{all:?}");
        (by_gateway(&all, Stage::DoneUploaded)[0] == SESSIONS_PER_GATEWAY).then_some(all)
    })
    .unwrap_or_else(|| panic!("{}", diagnostics("node a's sessions not uploaded")));
    for s in &first {
        if s.stage != Stage::DoneUploaded {
            assert_eq!(
                (s.stage, s.attempts),
                (Stage::Ended, 0),
                "{}: a session of node b was touched while node b's encoder was down",
                s.id
            );
        }
    }
    assert_eq!(by_gateway(&first, Stage::Ended), [0, SESSIONS_PER_GATEWAY]);
    let late_encoder = spawn(
        env!("CARGO_BIN_EXE_psm-encoder"),
        &[
            "--data",
            nodes[1].data.to_str().unwrap(),
            "--control-plane",
            &api,
            "--api-key-file",
            keys.join("encoder.key").to_str().unwrap(),
            "--instance",
            "encoder-b",
            "--poll-secs",
            "0.2",
            "--min-free-mib",
            "1",
            "--lease-ttl-secs",
            "20",
        ],
        &aws,
        &logs,
        "encoder-b",
    );
    nodes[1].processes.push(late_encoder);

    let sessions = wait_for(180, || {
        let all = rt
            .block_on(sessions_db.list(&ListQuery::default()))
            .unwrap();
        let failed: Vec<_> = all
            .iter()
            .filter(|s| s.stage == Stage::Failed)
            .map(|s| (s.id, s.failure_reason.clone()))
            .collect();
        assert!(
            failed.is_empty(),
            "{}",
            diagnostics(&format!("Failed sessions: {failed:?}"))
        );
        (all.len() == expected && all.iter().all(|s| s.stage == Stage::DoneUploaded)).then_some(all)
    })
    .unwrap_or_else(|| {
        let all = rt
            .block_on(sessions_db.list(&ListQuery::default()))
            .unwrap();
        let stages: Vec<_> = all.iter().map(|s| (s.id, s.stage)).collect();
        panic!(
            "{}",
            diagnostics(&format!("not all Done-Uploaded: {stages:?}"))
        )
    });

    // Each in the bucket, closed by its manifest; each step done on the node that recorded
    // it, at the first attempt.
    let mut s3 = S3Config::new(BUCKET);
    s3.endpoint = Some(s3_endpoint.clone());
    s3.allow_http = true;
    s3.access_key_id = Some("test".into());
    s3.secret_access_key = Some(SecretString::from("test"));
    let bucket = psm_storage::open(&StoreConfig::S3(s3)).unwrap();
    let mut per_gateway = std::collections::BTreeMap::<String, usize>::new();
    let mut committed = 0;
    for s in &sessions {
        for name in ["manifest.json", "recording.psmr"] {
            let key = ObjectKey::new(format!("sessions/{}/{name}", s.id)).unwrap();
            let head = rt.block_on(bucket.head(&key)).unwrap();
            assert!(head.is_some(), "{key:?} is not in the bucket");
        }
        let trail = rt
            .block_on(sessions_db.audit_events(&AuditQuery {
                session: Some(s.id),
                ..AuditQuery::default()
            }))
            .unwrap();
        assert!(
            trail
                .iter()
                .all(|e| e.record.action != AuditAction::AttemptFailed),
            "{}: {trail:?}",
            s.id
        );
        let gateway = trail
            .iter()
            .find(|e| e.record.action == AuditAction::Opened)
            .map(|e| e.record.actor.clone())
            .unwrap();
        // A session its gateway ended (not the watchdog, after a kill) carries the
        // gateway's commitment to its recording, sent over HTTP with EndSession; the encoder
        // got it with its claim and checked the file against it (docs/threat-model.md M12).
        let ended_by_gateway = trail
            .iter()
            .any(|e| e.record.action == AuditAction::Ended && e.record.actor == gateway);
        if ended_by_gateway {
            let c = s
                .recording_commitment
                .unwrap_or_else(|| panic!("{}: ended by its gateway without a commitment", s.id));
            let key = ObjectKey::new(format!("sessions/{}/manifest.json", s.id)).unwrap();
            let manifest: serde_json::Value =
                serde_json::from_slice(&rt.block_on(bucket.get(&key, 1 << 20)).unwrap()).unwrap();
            assert_eq!(manifest["committed"]["chain"], c.chain_hex(), "{manifest}");
            assert_eq!(manifest["recording_chain"], c.chain_hex(), "{manifest}");
            committed += 1;
        }
        let node = gateway.strip_prefix("gateway-").unwrap().to_owned();
        let claimers: Vec<String> = trail
            .iter()
            .filter(|e| e.record.action == AuditAction::Claimed)
            .map(|e| e.record.actor.clone())
            .collect();
        assert_eq!(
            claimers,
            [format!("encoder-{node}"), format!("uploader-{node}")],
            "{}",
            s.id
        );
        *per_gateway.entry(gateway).or_default() += 1;
        let data = &nodes.iter().find(|n| n.name == node).unwrap().data;
        assert!(
            !data
                .join("recordings")
                .join(format!("{}.psmr", s.id))
                .exists(),
            "the local copy is deleted once stored"
        );
    }
    assert_eq!(
        per_gateway.values().copied().collect::<Vec<_>>(),
        [SESSIONS_PER_GATEWAY, SESSIONS_PER_GATEWAY],
        "{per_gateway:?}"
    );
    assert_eq!(
        committed,
        sessions.len(),
        "every session here ends by its gateway, with a commitment"
    );

    // One admin web UI, on the control plane: it lists the sessions of both gateways and
    // replays them from the bucket (their local copies are gone).
    let (code, page) = http(api_port, "GET", "/ui/");
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("<title>PSM</title>"), "{page}");
    let cookie = common::web_login(api_port, "webadmin", "scale-out-web-password-7f3");
    let (code, _, body) = common::http_request(
        api_port,
        "GET",
        "/ui/api/sessions",
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(code, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let listed = list["sessions"].as_array().unwrap();
    let mut ui_gateways = std::collections::BTreeSet::new();
    for s in &sessions {
        assert!(
            listed
                .iter()
                .any(|v| v["id"] == s.id.to_string() && v["stage"] == "Done-Uploaded"),
            "{} not listed: {body}",
            s.id
        );
        let (code, _, detail) = common::http_request(
            api_port,
            "GET",
            &format!("/ui/api/sessions/{}", s.id),
            &[("Cookie", &cookie)],
            "",
        );
        assert_eq!(code, 200, "{detail}");
        let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
        let gateway = detail["gateway"]
            .as_str()
            .or_else(|| detail["session"]["gateway"].as_str())
            .unwrap_or_else(|| panic!("no gateway in {detail}"))
            .to_owned();
        ui_gateways.insert(gateway);
        let (code, _, cast) = common::http_request(
            api_port,
            "GET",
            &format!("/ui/api/recordings/{}/cast", s.id),
            &[("Cookie", &cookie)],
            "",
        );
        assert_eq!(code, 200, "{cast}");
        assert!(cast.contains("scale-out-"), "{} replays: {cast}", s.id);
        // The nodes' gateways and encoders registered their keys with the control plane
        // (RegisterSigner) when they started: its UI trusts what they signed, with no key
        // file copied by hand, and plays the encoders' exports.
        let (code, _, index) = common::http_request(
            api_port,
            "GET",
            &format!("/ui/api/recordings/{}/index", s.id),
            &[("Cookie", &cookie)],
            "",
        );
        assert_eq!(code, 200, "{index}");
        let index: serde_json::Value = serde_json::from_str(&index).unwrap();
        assert_eq!(index["signerTrusted"], true, "{index}");
        assert_eq!(index["committed"], true, "{index}");
        assert_eq!(index["intact"], true, "{index}");
        assert!(
            index["gateway"]
                .as_str()
                .is_some_and(|g| g.starts_with("gateway-")),
            "{index}"
        );
        let (code, _, _) = common::http_request(
            api_port,
            "GET",
            &format!("/ui/api/recordings/{}/files/session.cast", s.id),
            &[("Cookie", &cookie)],
            "",
        );
        assert_eq!(code, 200, "the encoder's signed export is handed out");
    }
    assert_eq!(
        ui_gateways.into_iter().collect::<Vec<_>>(),
        ["gateway-a", "gateway-b"]
    );
    eprintln!(
        "{} sessions through 2 gateways: {} Done-Uploaded, 0 failed",
        expected,
        sessions.len()
    );
}
