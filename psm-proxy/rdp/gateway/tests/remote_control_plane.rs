//! The `psm-rdp-gateway` binary against a remote control plane: a real `psm-controlplane`
//! process (the main workspace's binary) holds the users, the RDP target and its vaulted
//! credential; the gateway process knows only the control plane's URL and the gateway
//! role's API key. FreeRDP (under Xvfb) logs in through the gateway to xrdp with the PSM
//! password; the session appears as live in the control plane, the gateway pushes its
//! screenshots there (savescreenshot), an admin's TerminateSession ends it within a
//! heartbeat, and the control plane no longer lists it as live.
//!
//! `psm-controlplane` is found through `PSM_CONTROLPLANE_BIN`, else in the main workspace's
//! target directory (`scripts/test` builds every binary before the RDP tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use psm_client::{Client, ClientConfig, HttpDirectory, wire};
use psm_core::Protocol;

fn controlplane_bin() -> PathBuf {
    std::env::var_os("PSM_CONTROLPLANE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| main_bin("psm-controlplane"))
}

fn client(url: &str, key_file: &std::path::Path) -> Client {
    let key = std::fs::read_to_string(key_file).unwrap();
    Client::new(ClientConfig::new(url).with_api_key(key.trim())).unwrap()
}

fn log_file(path: PathBuf) -> Stdio {
    Stdio::from(std::fs::File::create(path).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_binary_works_against_a_remote_control_plane() {
    require_all();
    let cp_bin = controlplane_bin();
    let _lock = MachineLock::take();
    let dir = tempfile::tempdir().unwrap();
    let target_password = target_account();
    let xrdp = Xrdp::start(dir.path());

    // The control plane, in its own process and data directory.
    let cp_data = dir.path().join("cp");
    let cp_addr = format!("127.0.0.1:{}", free_port());
    let _cp = Proc::spawn(
        "psm-controlplane",
        Command::new(&cp_bin)
            .args(["--listen", &cp_addr, "--sweep-interval", "1", "--data"])
            .arg(&cp_data)
            .stdout(log_file(dir.path().join("cp.out")))
            .stderr(log_file(dir.path().join("cp.err"))),
    );
    wait_addr(cp_addr.parse().unwrap(), Duration::from_secs(60));
    let url = format!("http://{cp_addr}");
    let admin = client(&url, &cp_data.join("keys").join("admin.key"));
    let directory = HttpDirectory::new(admin.clone());
    add_psm_user(&directory).await;
    admin
        .put_target(&wire::PutTargetRequest {
            name: "desk-01".into(),
            host: "127.0.0.1".into(),
            port: xrdp.port,
            protocol: Protocol::Rdp,
            // Pinned as an operator pins it: xrdp speaks TLS only, which the gateway uses
            // only toward a pinned target.
            host_key: Some(xrdp.pin()),
        })
        .await
        .unwrap();
    admin
        .set_credential(&wire::SetCredentialRequest {
            target: "desk-01".into(),
            user_name: TARGET_USER.into(),
            password: Some(target_password.clone()),
            private_key: None,
            passphrase: None,
        })
        .await
        .unwrap();

    // The gateway binary: only the URL and the gateway key; its own data directory.
    let gw_data = dir.path().join("gw");
    let (cert, key) = self_signed(dir.path(), "gateway");
    let gw_port = free_port();
    let gw_err = dir.path().join("gw.err");
    let _gw = Proc::spawn(
        "psm-rdp-gateway",
        Command::new(env!("CARGO_BIN_EXE_psm-rdp-gateway"))
            .arg("--data")
            .arg(&gw_data)
            .args(["--listen", &format!("127.0.0.1:{gw_port}")])
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .args(["--control-plane", &url, "--api-key-file"])
            .arg(cp_data.join("keys").join("gateway.key"))
            .args([
                "--heartbeat-seconds",
                "1",
                "--screenshot-seconds",
                "1",
                "--process-instance",
                "rdp-remote-1",
            ])
            .env("RUST_LOG", "info")
            .stdout(log_file(dir.path().join("gw.out")))
            .stderr(log_file(gw_err.clone())),
    );
    wait_addr(
        format!("127.0.0.1:{gw_port}").parse().unwrap(),
        Duration::from_secs(60),
    );
    assert!(
        !gw_data.join("psm.db").exists() && !gw_data.join("vault.key").exists(),
        "a remote gateway keeps no node state"
    );

    let display = Display::start();
    let mut freerdp = xfreerdp(
        &display,
        gw_port,
        &format!("{PSM_USER}+desk-01"),
        PSM_PASSWORD,
        &["/sec:tls"],
        &dir.path().join("xfreerdp.log"),
    );

    // The control plane sees the session live, opened by this gateway.
    let mut live = None;
    for _ in 0..600 {
        let sessions = admin.live_sessions().await.unwrap().sessions;
        if let Some(s) = sessions.into_iter().next() {
            live = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let live = live.unwrap_or_else(|| {
        panic!(
            "no live session in the control plane; gateway log:\n{}",
            std::fs::read_to_string(&gw_err).unwrap_or_default()
        )
    });
    assert_eq!(live.user, PSM_USER);
    assert_eq!(live.target, "desk-01");
    assert_eq!(live.protocol, Protocol::Rdp);
    assert_eq!(live.gateway.as_deref(), Some("rdp-remote-1"));
    eventually("the FreeRDP window", Duration::from_secs(30), || {
        display.freerdp_window().is_some()
    })
    .await;
    // The gateway pushes screenshots to the control plane (savescreenshot), which keeps them
    // as PNG files under DATA/artifacts/SESSION/screenshots/.
    let shots = cp_data
        .join("artifacts")
        .join(live.session.to_string())
        .join("screenshots");
    eventually(
        "screenshots in the control plane",
        Duration::from_secs(30),
        || {
            std::fs::read_dir(&shots).is_ok_and(|d| {
                d.filter_map(Result::ok).any(|e| {
                    std::fs::read(e.path()).is_ok_and(|b| b.starts_with(b"\x89PNG\r\n\x1a\n"))
                })
            })
        },
    )
    .await;

    // An admin terminates it in the control plane; the gateway's heartbeat carries it out.
    admin
        .terminate_session(&wire::TerminateSessionRequest {
            session: live.session,
            reason: "remote terminate test".into(),
        })
        .await
        .unwrap();
    eventually(
        "FreeRDP to be disconnected",
        Duration::from_secs(30),
        || !freerdp.running(),
    )
    .await;
    let mut ended = false;
    for _ in 0..300 {
        if admin.live_sessions().await.unwrap().sessions.is_empty() {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ended,
        "the session is still Connected in the control plane; gateway log:\n{}\ncontrol plane log:\n{}",
        std::fs::read_to_string(&gw_err).unwrap_or_default(),
        std::fs::read_to_string(dir.path().join("cp.err")).unwrap_or_default()
    );

    // The recording is on the gateway's disk, and nothing leaked the target's password.
    let recording = gw_data
        .join("recordings")
        .join(format!("{}.psmr", live.session));
    let bytes =
        std::fs::read(&recording).unwrap_or_else(|e| panic!("{}: {e}", recording.display()));
    assert!(bytes.len() > 1000);
    let stderr = std::fs::read_to_string(&gw_err).unwrap();
    assert!(!stderr.contains(&target_password), "the gateway's log");
    assert!(!String::from_utf8_lossy(&bytes).contains(&target_password));
    let key_mode = std::fs::metadata(gw_data.join("keys").join("recording-signing.key"))
        .unwrap()
        .permissions();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(key_mode.mode() & 0o077, 0, "the signing key is private");
    // The gateway registered the key it signs with, under its process instance (M12), so
    // the node's encoder encodes its recordings.
    let registered = psm_recording::layout::LocalLayout::new(&gw_data)
        .gateway_signers()
        .entries();
    let signer = psm_recording::Reader::open(&recording, Default::default())
        .unwrap()
        .signer();
    assert!(
        registered
            .iter()
            .any(|(name, key)| name == "rdp-remote-1" && *key == signer),
        "{registered:?}"
    );
}
