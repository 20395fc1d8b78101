//! Issue 17 M13: the RDP browser gateway's own defences, tried with curl as an attacker
//! would: plain HTTP is refused off loopback, HTTPS is served with the gateway's certificate,
//! the page and its script carry a Content-Security-Policy and no-framing headers, and the
//! websocket and `/launch` refuse other origins (cross-site websocket hijacking, a login form
//! posted from another site) and `/launch` anything but JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::sync::Arc;

use common::*;
use psm_core::ControlPlane;
use psm_proxy::SessionRegistry;
use psm_proxy_rdp::recorder::{DirRecordings, writer_config};
use psm_proxy_rdp::tls::ServerIdentity;
use psm_proxy_rdp::web::WebGateway;
use psm_proxy_rdp::{RdpGatewayConfig, RdpGatewayDeps};

async fn web(plane: &Plane, dir: &std::path::Path, listen: &str) -> WebGateway {
    let config = RdpGatewayConfig::new(listen.parse().unwrap(), plane.gateway_pi.clone());
    let cp: Arc<dyn ControlPlane> = plane.cp.clone();
    let deps = RdpGatewayDeps {
        control_plane: cp,
        directory: plane.directory.clone(),
        targets: plane.targets(),
        recordings: Arc::new(DirRecordings::new(
            dir.join("recordings"),
            psm_recording::SigningKey::generate().unwrap(),
            writer_config(&config.recording),
        )),
        registry: SessionRegistry::new(),
        launch: psm_proxy_rdp::launch::LaunchTokens::new(),
        artifacts: None,
        taps: Arc::new(psm_proxy::NoTaps),
    };
    WebGateway::bind(listen.parse().unwrap(), config, deps)
        .await
        .unwrap()
}

/// curl's status line, headers and body for `args` (TLS certificates not checked: the
/// gateway's is self-signed here).
fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sk", "-i", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"))
}

const UPGRADE: [&str; 8] = [
    "-H",
    "Connection: Upgrade",
    "-H",
    "Upgrade: websocket",
    "-H",
    "Sec-WebSocket-Version: 13",
    "-H",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_gateway_is_https_off_loopback_with_csp_and_same_origin_only() {
    require("curl", "curl");
    let dir = tempfile::tempdir().unwrap();
    let plane = plane(free_port(), "unused-target-password").await;

    // Plain HTTP on a non-loopback listener is refused before it serves anything.
    let exposed = web(&plane, dir.path(), "0.0.0.0:0").await;
    let e = exposed.run(std::future::pending()).await.unwrap_err();
    assert!(e.to_string().contains("plain HTTP"), "{e}");

    // HTTPS with the gateway's certificate.
    let (cert, key) = self_signed(dir.path(), "gateway");
    let identity = ServerIdentity::from_pem_files(&cert, &key).unwrap();
    let gw = web(&plane, dir.path(), "127.0.0.1:0")
        .await
        .with_tls(identity.acceptor.clone());
    let base = format!("https://{}", gw.local_addr());
    let origin = base.clone();
    tokio::spawn(gw.run(std::future::pending()));
    let (base2, origin2) = (base.clone(), origin.clone());
    let checks = tokio::task::spawn_blocking(move || {
        let (base, origin) = (base2, origin2);
        // The page: CSP without inline script, no framing, no sniffing.
        let page = curl(&[&format!("{base}/")]);
        assert_eq!(status(&page), 200, "{page}");
        let lower = page.to_lowercase();
        assert!(
            lower.contains("content-security-policy: default-src 'none'; script-src 'self';"),
            "{page}"
        );
        assert!(lower.contains("x-frame-options: deny"), "{page}");
        assert!(lower.contains("x-content-type-options: nosniff"), "{page}");
        assert!(page.contains("<script src=\"rdp.js\"></script>"), "{page}");
        assert!(!page.contains("<script>"), "no inline script: {page}");
        let script = curl(&[&format!("{base}/rdp.js")]);
        assert_eq!(status(&script), 200);
        assert!(
            script
                .to_lowercase()
                .contains("content-type: text/javascript")
        );
        // The websocket from another site's page: refused.
        let mut args: Vec<&str> = UPGRADE.to_vec();
        args.extend(["-H", "Origin: https://evil.example"]);
        let ws = format!("{base}/ws");
        args.push(&ws);
        let hijack = curl(&args);
        assert_eq!(status(&hijack), 403, "{hijack}");
        // From the page itself: the upgrade is accepted.
        let mut args: Vec<&str> = UPGRADE.to_vec();
        let own = format!("Origin: {origin}");
        args.extend(["-H", &own, "--max-time", "3"]);
        args.push(&ws);
        let upgraded = curl(&args);
        assert_eq!(status(&upgraded), 101, "{upgraded}");
        // /launch: a form posted from another site, or not JSON, is refused before the
        // password is looked at; JSON from the page is checked (and these are wrong).
        let body = r#"{"user":"alice+desk-01","password":"guess"}"#;
        let launch = format!("{base}/launch");
        let cross = curl(&[
            "-H",
            "Origin: https://evil.example",
            "-H",
            "Content-Type: application/json",
            "--data",
            body,
            &launch,
        ]);
        assert_eq!(status(&cross), 403, "{cross}");
        assert!(cross.contains("JSON from this origin"), "{cross}");
        let form = curl(&[
            "-H",
            "Content-Type: application/x-www-form-urlencoded",
            "--data",
            body,
            &launch,
        ]);
        assert!(form.contains("JSON from this origin"), "{form}");
        let checked = curl(&[
            "-H",
            &own,
            "-H",
            "Content-Type: application/json",
            "--data",
            body,
            &launch,
        ]);
        assert_eq!(status(&checked), 403, "{checked}");
        assert!(checked.contains("access denied"), "{checked}");
    });
    checks.await.unwrap();
}
