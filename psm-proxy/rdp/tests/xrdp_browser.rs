//! Chromium (driven by playwright-core) → the gateway's websocket → xrdp: the browser logs
//! in with the PSM password, sees the desktop, uploads a file to the session drive through
//! the page, types a command that reaches the target (it copies the file on the drive),
//! downloads the copy through the page, and is told when an administrator terminates the
//! session. Every file moved is in the recording.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use psm_core::{ControlPlane, SessionAdmin, Stage};
use psm_proxy::SessionRegistry;
use psm_proxy_rdp::recorder::{DirRecordings, writer_config};
use psm_proxy_rdp::session::ClientKind;
use psm_proxy_rdp::web::WebGateway;
use psm_proxy_rdp::{RdpGatewayConfig, RdpGatewayDeps};

fn node_modules() -> PathBuf {
    let candidates = [
        std::env::var_os("PSM_ROOT").map(|r| PathBuf::from(r).join("node_modules")),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../node_modules")),
        Some(PathBuf::from("/work/main/node_modules")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("playwright-core").is_dir())
        .expect("playwright-core is missing: run `npm ci` at the repository root (package.json lists it)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_through_the_web_gateway_to_xrdp() {
    require_all();
    require("node", "nodejs");
    require("chromium", "chromium");
    let modules = node_modules();
    let _lock = MachineLock::take();
    let dir = tempfile::tempdir().unwrap();
    let target_password = target_account();
    let xrdp = Xrdp::start(dir.path());
    let plane = plane_for(&xrdp, &target_password).await;

    let mut config =
        RdpGatewayConfig::new("127.0.0.1:0".parse().unwrap(), plane.gateway_pi.clone());
    config.heartbeat_interval = Duration::from_millis(500);
    let drives = dir.path().join("drives");
    config.channels.drives = true;
    config.drive = Some(psm_proxy_rdp::drive::DriveConfig::new(&drives));
    let key = psm_recording::SigningKey::generate().unwrap();
    let cp: Arc<dyn ControlPlane> = plane.cp.clone();
    let recordings = dir.path().join("recordings");
    let deps = RdpGatewayDeps {
        control_plane: cp.clone(),
        directory: plane.directory.clone(),
        targets: plane.targets(),
        recordings: Arc::new(DirRecordings::new(
            &recordings,
            key,
            writer_config(&config.recording),
        )),
        registry: SessionRegistry::new(),
        launch: psm_proxy_rdp::launch::LaunchTokens::new(),
        artifacts: None,
        taps: Arc::new(psm_proxy::NoTaps),
    };
    let registry = deps.registry.clone();
    let web = WebGateway::bind("127.0.0.1:0".parse().unwrap(), config, deps)
        .await
        .unwrap();
    let url = format!("http://{}/", web.local_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(web.run(async {
        let _ = stop_rx.await;
    }));

    let proof = format!("/tmp/psm-rdp-web-proof-{}", std::process::id());
    let _ = std::fs::remove_file(&proof);
    let shot = dir.path().join("browser.png");
    // The file the browser uploads, and the script that copies it on the target's drive.
    let tag = hex(&std::process::id().to_be_bytes());
    let up_name = format!("up-{tag}.txt");
    let back_name = format!("back-{tag}.txt");
    let up = dir.path().join(&up_name);
    let up_data = format!("from the browser {tag}\n").repeat(100);
    std::fs::write(&up, &up_data).unwrap();
    let script = format!("/tmp/psm-rdp-web-{tag}.sh");
    std::fs::write(
        &script,
        format!(
            "D=$HOME/thinclient_drives/PSM\nfor i in $(seq 1 120); do [ -f $D/{up_name} ] && break; sleep 0.5; done\n\
             (cat $D/{up_name}; echo copied on the target) > $D/{back_name}\ntouch {proof}\n"
        ),
    )
    .unwrap();
    let downloaded = dir.path().join("downloaded.txt");
    let files_shot = dir.path().join("files.png");
    let mut node = Command::new("node")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser.cjs"))
        .arg(&url)
        .arg(format!("{PSM_USER}+desk-01"))
        .arg(PSM_PASSWORD)
        .arg(format!("sh {script}"))
        .arg(&shot)
        .env("NODE_PATH", &modules)
        .env("PSM_UPLOAD", &up)
        .env(
            "PSM_DOWNLOAD",
            format!("{back_name}={}", downloaded.display()),
        )
        .env("PSM_FILES_SHOT", &files_shot)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node");
    let stdout = node.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });

    eventually(
        "the browser session to be live",
        Duration::from_secs(90),
        || registry.len() == 1,
    )
    .await;
    let info = registry.list().remove(0);
    assert_eq!(
        common::live_rdp(&registry, info.id).client,
        ClientKind::Browser
    );
    eventually(
        "the command typed in Chromium to reach the target",
        Duration::from_secs(120),
        || std::path::Path::new(&proof).exists(),
    )
    .await;
    let folder = drives.join(info.id.to_string());
    assert_eq!(
        std::fs::read_to_string(folder.join(&up_name)).unwrap(),
        up_data
    );
    eventually(
        "the browser to download the target's file",
        Duration::from_secs(120),
        || downloaded.exists(),
    )
    .await;
    let back_data = format!("{up_data}copied on the target\n");
    assert_eq!(std::fs::read_to_string(&downloaded).unwrap(), back_data);
    plane
        .cp
        .request_termination(info.id, "admin", "test: terminate browser session")
        .await
        .unwrap();
    eventually("the session to end", Duration::from_secs(20), || {
        registry.is_empty()
    })
    .await;
    let status = tokio::task::spawn_blocking(move || node.wait())
        .await
        .unwrap()
        .unwrap();
    let out = lines.join().unwrap();
    assert!(status.success(), "node failed: {out:?}");
    let result = out.last().cloned().unwrap_or_default();
    assert!(
        result.contains("\"ended\":\"terminated: test: terminate browser session\""),
        "{out:?}"
    );
    let frames: u64 = serde_json::from_str::<serde_json::Value>(&result).unwrap()["frames"]
        .as_u64()
        .unwrap();
    assert!(frames > 0, "the browser drew {frames} tiles");
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000);
    assert_ne!(
        plane.cp.engine().session(info.id).await.unwrap().stage,
        Stage::Connected
    );
    let recording = recordings.join(format!("{}.psmr", info.id));
    let mut reader =
        psm_recording::Reader::open(&recording, psm_recording::ReadOptions::default()).unwrap();
    let transfers: Vec<_> = reader
        .events()
        .filter_map(|e| match e.unwrap().kind {
            psm_recording::EventKind::FileTransfer(t) => {
                Some((t.protocol, t.direction, t.path, t.size, t.blake3))
            }
            _ => None,
        })
        .collect();
    use psm_recording::TransferDirection::{Download, Upload};
    let hash = |d: &str| Some(*blake3::hash(d.as_bytes()).as_bytes());
    let size = |d: &str| Some(d.len() as u64);
    for expected in [
        (
            "rdp-drive-web",
            Upload,
            format!("PSM/{up_name}"),
            size(&up_data),
            hash(&up_data),
        ),
        (
            "rdp-drive",
            Upload,
            format!("PSM/{up_name}"),
            size(&up_data),
            hash(&up_data),
        ),
        (
            "rdp-drive",
            Download,
            format!("PSM/{back_name}"),
            size(&back_data),
            hash(&back_data),
        ),
        (
            "rdp-drive-web",
            Download,
            format!("PSM/{back_name}"),
            size(&back_data),
            hash(&back_data),
        ),
    ] {
        let expected = (
            expected.0.to_owned(),
            expected.1,
            expected.2,
            expected.3,
            expected.4,
        );
        assert!(
            transfers.contains(&expected),
            "{expected:?} not in {transfers:?}"
        );
    }
    let _ = std::fs::copy(&files_shot, "/tmp/psm-rdp-web-files.png");
    let _ = std::fs::remove_file(&script);

    let _ = std::fs::remove_file(&proof);
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    drop(xrdp);
}
