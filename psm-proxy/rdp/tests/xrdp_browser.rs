//! Chromium (driven by playwright-core) → the gateway's websocket → xrdp: the browser logs
//! in with the PSM password, sees the desktop, types a command that reaches the target,
//! and is told when an administrator terminates the session.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use psm_core::{ControlPlane, Stage};
use psm_proxy_rdp::access::VaultTargets;
use psm_proxy_rdp::recorder::{DirRecordings, writer_config};
use psm_proxy_rdp::web::WebGateway;
use psm_proxy_rdp::{GatewayDeps, RdpGatewayConfig, Registry};

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
    let plane = plane(xrdp.port, &target_password).await;

    let mut config =
        RdpGatewayConfig::new("127.0.0.1:0".parse().unwrap(), plane.gateway_pi.clone());
    config.heartbeat_interval = Duration::from_millis(500);
    let key = psm_recording::SigningKey::generate().unwrap();
    let cp: Arc<dyn ControlPlane> = plane.cp.clone();
    let recordings = dir.path().join("recordings");
    let deps = GatewayDeps {
        control_plane: cp.clone(),
        directory: plane.directory.clone(),
        targets: Arc::new(VaultTargets::new(
            cp,
            plane.gateway_pi.clone(),
            Duration::from_secs(3600),
            true,
        )),
        recordings: Arc::new(DirRecordings::new(
            &recordings,
            key,
            writer_config(&config.recording),
        )),
        registry: Registry::new(),
        launch: psm_proxy_rdp::launch::LaunchTokens::new(),
        artifacts: None,
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
    let mut node = Command::new("node")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser.cjs"))
        .arg(&url)
        .arg(format!("{PSM_USER}+desk-01"))
        .arg(PSM_PASSWORD)
        .arg(format!("touch {proof}"))
        .arg(&shot)
        .env("NODE_PATH", &modules)
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
    assert_eq!(info.client, "browser");
    eventually(
        "the command typed in Chromium to reach the target",
        Duration::from_secs(120),
        || std::path::Path::new(&proof).exists(),
    )
    .await;
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
    assert!(recordings.join(format!("{}.psmr", info.id)).exists());

    let _ = std::fs::remove_file(&proof);
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    drop(xrdp);
}
