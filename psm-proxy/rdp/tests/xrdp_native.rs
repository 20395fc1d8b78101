//! FreeRDP (under Xvfb) → the PSM RDP gateway → xrdp + xorgxrdp, all real programs.
//!
//! Checks: the user logs in with their PSM password only (the target account's password is
//! random per run and lives only in the vault), a typed command reaches the target, the
//! recording holds the keystrokes and frames that show the screen the client saw, the
//! recording exports to video and a contact sheet (`psm export`), the target password appears nowhere in
//! the recording, and terminate from the control plane ends the session everywhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use psm_core::{SessionAdmin, Stage};
use psm_proxy_rdp::recorder::KEYBOARD_CHANNEL;
use psm_recording::graphics;
use psm_recording::{EventKind, ReadOptions, Reader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freerdp_through_the_gateway_to_xrdp() {
    require_all();
    let _lock = MachineLock::take();
    let dir = tempfile::tempdir().unwrap();
    let target_password = target_account();
    let xrdp = Xrdp::start(dir.path());
    let plane = plane_for(&xrdp, &target_password).await;
    let gw = gateway(&plane, dir.path(), |_| {}).await;

    let display = Display::start();
    let (mut client, info, live) = gw
        .native_session(&display, &["/sec:tls"], &dir.path().join("xfreerdp.log"))
        .await;
    assert_eq!(
        (info.user.as_str(), info.target.as_str()),
        (PSM_USER, "desk-01")
    );
    assert_eq!(
        plane.cp.engine().session(info.id).await.unwrap().stage,
        Stage::Connected
    );

    eventually("the FreeRDP window", Duration::from_secs(30), || {
        display.freerdp_window().is_some()
    })
    .await;
    // xterm draws after the X session starts (~3 s): wait for a drawn, settled screen.
    wait_settled_desktop(&live.screen).await;
    let before = live.screen.snapshot();

    let proof = format!(
        "/tmp/psm-rdp-proof-{}",
        hex(&std::process::id().to_be_bytes())
    );
    let _ = std::fs::remove_file(&proof);
    let window = display.freerdp_window().unwrap();
    display.type_line(&window, &format!("touch {proof}"));
    eventually(
        "the typed command to create the proof file on the target",
        Duration::from_secs(30),
        || std::path::Path::new(&proof).exists(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let shot = dir.path().join("client.png");
    display.screenshot(&shot);
    // Kept for a person to look at (the comparison below cannot tell a garbled screen
    // that both sides share).
    let _ = std::fs::copy(
        &shot,
        std::env::temp_dir().join("psm-rdp-native-client.png"),
    );
    let after = live.screen.snapshot();
    assert_ne!(
        before.rgba, after.rgba,
        "typing changed the target's screen"
    );
    // The gateway's decoded screen is the target's screen, pixel for pixel.
    assert_screen_is_the_targets(dir.path(), &after);

    // Terminate through the control plane: the gateway sees it on its next heartbeat.
    plane
        .cp
        .request_termination(info.id, "admin", "test: terminate")
        .await
        .unwrap();
    eventually(
        "the session to leave the registry",
        Duration::from_secs(20),
        || gw.registry.is_empty(),
    )
    .await;
    eventually(
        "FreeRDP to be disconnected",
        Duration::from_secs(20),
        || !client.running(),
    )
    .await;
    let s = plane.cp.engine().session(info.id).await.unwrap();
    assert_ne!(
        s.stage,
        Stage::Connected,
        "the session is not left Connected"
    );
    drop(live);

    // The recording: signed, intact, with the keystrokes and frames.
    let path = gw.recordings.join(format!("{}.psmr", info.id));
    let report =
        psm_recording::verify(&path, &psm_recording::VerifyOptions::trusting(gw.signer)).unwrap();
    assert!(report.status.is_intact(), "{report:?}");
    // PSM_RDP_KEEP_RECORDING=FILE keeps this real recording: psm-pipeline's encoder test
    // runs on one made so (psm-pipeline/tests/data/xrdp-session.psmr).
    if let Some(keep) = std::env::var_os("PSM_RDP_KEEP_RECORDING") {
        std::fs::copy(&path, keep).unwrap();
    }
    let mut reader = Reader::open(&path, ReadOptions::default()).unwrap();
    let mut typed = Vec::new();
    let mut frames = 0;
    let mut pixel_events = 0;
    let mut leaked = false;
    for ev in reader.events() {
        let ev = ev.unwrap();
        let bytes: Vec<u8> = match &ev.kind {
            EventKind::Input { channel, data, .. } => {
                if *channel == KEYBOARD_CHANNEL {
                    typed.extend_from_slice(data);
                }
                data.clone()
            }
            EventKind::Frame { png, .. } => {
                frames += 1;
                png.clone()
            }
            EventKind::Pixels { indices, .. } => {
                frames += 1;
                pixel_events += 1;
                indices.clone()
            }
            EventKind::Marker { label } | EventKind::SessionEnd { reason: label } => {
                label.clone().into_bytes()
            }
            _ => Vec::new(),
        };
        leaked |= bytes
            .windows(target_password.len())
            .any(|w| w == target_password.as_bytes());
    }
    let typed = String::from_utf8_lossy(&typed);
    assert!(
        typed.contains(&format!("touch {proof}\r")),
        "keyboard channel: {typed:?}"
    );
    assert!(frames >= 2, "{frames} frames");
    // An xterm desktop has few colours: the screen is recorded as raw palette pixels.
    assert!(
        pixel_events >= 2,
        "{pixel_events} of {frames} pictures are raw pixels"
    );
    assert!(!leaked, "the target password is in the recording");
    let raw = std::fs::read(&path).unwrap();
    assert!(
        !raw.windows(target_password.len())
            .any(|w| w == target_password.as_bytes())
    );
    let header = reader.header();
    assert_eq!(header.user, PSM_USER);

    // The recording's last screen is the screen the client showed: compare it with the
    // FreeRDP window in the client's screenshot.
    let mut reader = Reader::open(&path, ReadOptions::default()).unwrap();
    let end = reader.duration();
    let canvas = graphics::screen_at(&mut reader, end).unwrap().unwrap();
    let rec_png = dir.path().join("recording-last.png");
    std::fs::write(&rec_png, canvas.to_png().unwrap()).unwrap();
    let geometry = String::from_utf8_lossy(
        &display
            .cmd("xdotool")
            .args(["getwindowgeometry", "--shell", &window])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string();
    let _ = geometry;
    let crop = dir.path().join("client-crop.png");
    assert!(
        Command::new("convert")
            .arg(&shot)
            .args([
                "-crop",
                &format!("{}x{}+0+0", canvas.width(), canvas.height()),
                "+repage"
            ])
            .arg(&crop)
            .status()
            .unwrap()
            .success()
    );
    let differing = ae_difference(&crop, &rec_png);
    let area = u64::from(canvas.width()) * u64::from(canvas.height());
    assert!(
        differing * 50 < area,
        "the recording's last frame differs from the client's screen in {differing} of {area} pixels"
    );
    // And it is not the screen from before the command was typed.
    let before_png = dir.path().join("before.png");
    std::fs::write(
        &before_png,
        graphics::encode_png(
            before.rect.width.into(),
            before.rect.height.into(),
            &before.rgba,
        )
        .unwrap(),
    )
    .unwrap();
    assert!(
        ae_difference(&before_png, &rec_png) > 50,
        "the typed command is visible in the recording"
    );

    // Export: video and contact sheet, by the main workspace's `psm export` (psm-pipeline,
    // the encoder's exporters).
    let video = dir.path().join("session.mp4");
    let sheet = dir.path().join("sheet.png");
    for (format, out) in [("video", &video), ("sheet", &sheet)] {
        let done = Command::new(main_bin("psm"))
            .args(["export", "--format", format, "-o"])
            .arg(out)
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            done.status.success(),
            "psm export --format {format}: {}",
            String::from_utf8_lossy(&done.stderr)
        );
        assert!(
            std::fs::metadata(out).unwrap().len() > 1000,
            "{format}: {}",
            String::from_utf8_lossy(&done.stderr)
        );
    }
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(&video)
        .output()
        .unwrap();
    let probe = String::from_utf8_lossy(&probe.stdout);
    let fields: Vec<u64> = probe
        .trim()
        .split(',')
        .filter_map(|f| f.parse().ok())
        .collect();
    assert_eq!(
        fields.get(..2),
        Some(&[u64::from(canvas.width()), u64::from(canvas.height())][..]),
        "video size: {probe}"
    );
    assert!(
        fields.get(2).is_some_and(|&n| n > 5),
        "video frames: {probe}"
    );

    let _ = std::fs::remove_file(&proof);
    let mut gw = gw;
    let _ = gw.shutdown.take().unwrap().send(());
    let _ = tokio::time::timeout(Duration::from_secs(15), gw.task).await;
    client.stop();
    drop(display);
    drop(xrdp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_psm_password_opens_no_session() {
    require_all();
    let _lock = MachineLock::take();
    let dir = tempfile::tempdir().unwrap();
    let target_password = target_account();
    let xrdp = Xrdp::start(dir.path());
    let plane = plane_for(&xrdp, &target_password).await;
    let gw = gateway(&plane, dir.path(), |_| {}).await;
    let display = Display::start();
    // The target's own password is no good at the gateway either.
    for pw in ["wrong-password", target_password.as_str()] {
        let mut client = xfreerdp(
            &display,
            gw.addr.port(),
            &format!("{PSM_USER}+desk-01"),
            pw,
            &["/sec:tls"],
            &dir.path().join("xfreerdp-wrong.log"),
        );
        eventually("FreeRDP to give up", Duration::from_secs(30), || {
            !client.running()
        })
        .await;
    }
    assert!(gw.registry.is_empty());
    let sessions = plane
        .cp
        .engine()
        .store()
        .list(&Default::default())
        .await
        .unwrap();
    assert!(
        sessions.is_empty(),
        "no PrivSession was opened: {sessions:?}"
    );
    assert!(!gw.recordings.exists() || std::fs::read_dir(&gw.recordings).unwrap().next().is_none());
    drop(display);
    drop(xrdp);
}

/// A client asking for a desktop far beyond the policy gets a clamped one; a client killed
/// mid-session ends the session (recording sealed, PrivSession Ended).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_desktop_is_clamped_and_a_dropped_client_ends_the_session() {
    require_all();
    let _lock = MachineLock::take();
    let dir = tempfile::tempdir().unwrap();
    let target_password = target_account();
    let xrdp = Xrdp::start(dir.path());
    let plane = plane_for(&xrdp, &target_password).await;
    let gw = gateway(&plane, dir.path(), |c| {
        c.limits.max_width = 800;
        c.limits.max_height = 600;
    })
    .await;
    let display = Display::start();
    let mut client = Proc::spawn(
        "xfreerdp",
        display
            .cmd("xfreerdp")
            .arg(format!("/v:127.0.0.1:{}", gw.addr.port()))
            .arg(format!("/u:{PSM_USER}+desk-01"))
            .arg(format!("/p:{PSM_PASSWORD}"))
            .args([
                "/cert:ignore",
                "/sec:tls",
                "/size:4000x3000",
                "/log-level:ERROR",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    eventually("the session to be live", Duration::from_secs(60), || {
        gw.registry.len() == 1
    })
    .await;
    let info = gw.registry.list().remove(0);
    let live = common::live_rdp(&gw.registry, info.id);
    let (w, h) = live.screen.size();
    assert!(w <= 800 && h <= 600, "desktop {w}x{h} is within the policy");
    eventually("some frames", Duration::from_secs(30), || {
        live.screen.generation() > 0
    })
    .await;
    drop(live);
    client.stop(); // the client vanishes mid-session
    eventually("the session to end", Duration::from_secs(30), || {
        gw.registry.is_empty()
    })
    .await;
    assert_eq!(
        plane.cp.engine().session(info.id).await.unwrap().stage,
        Stage::Ended
    );
    let path = gw.recordings.join(format!("{}.psmr", info.id));
    let report =
        psm_recording::verify(&path, &psm_recording::VerifyOptions::trusting(gw.signer)).unwrap();
    assert!(
        report.status.is_intact(),
        "the recording up to the drop is kept and sealed: {report:?}"
    );
    drop(display);
    drop(xrdp);
}

/// A gateway that requires NLA toward targets refuses xrdp (TLS only) with a clear error,
/// and the PrivSession it opened does not stay Connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_refusing_nla_is_a_clear_error() {
    require_all();
    let _lock = MachineLock::take();
    let dir = tempfile::tempdir().unwrap();
    let target_password = target_account();
    let xrdp = Xrdp::start(dir.path());
    let plane = plane_for(&xrdp, &target_password).await;
    let gw = gateway(&plane, dir.path(), |c| {
        c.target_security = psm_proxy_rdp::TargetSecurity::NlaOnly;
    })
    .await;
    let display = Display::start();
    let mut client = xfreerdp(
        &display,
        gw.addr.port(),
        &format!("{PSM_USER}+desk-01"),
        PSM_PASSWORD,
        &["/sec:tls"],
        &dir.path().join("xfreerdp-nla.log"),
    );
    eventually(
        "FreeRDP to be disconnected",
        Duration::from_secs(60),
        || !client.running(),
    )
    .await;
    let sessions = plane
        .cp
        .engine()
        .store()
        .list(&Default::default())
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1, "one session was opened, then ended");
    assert_eq!(sessions[0].stage, Stage::Ended);
    assert!(gw.registry.is_empty());
    drop(display);
    drop(xrdp);
}

/// NLA (CredSSP) toward the gateway with a one-time launch credential: it works once; a
/// second use, and NLA with the PSM password itself, are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nla_with_a_launch_credential() {
    require_all();
    let _lock = MachineLock::take();
    let dir = tempfile::tempdir().unwrap();
    let target_password = target_account();
    let xrdp = Xrdp::start(dir.path());
    let plane = plane_for(&xrdp, &target_password).await;
    let gw = gateway(&plane, dir.path(), |_| {}).await;
    let cred = gw.launch.issue(
        psm_proxy_rdp::access::Identity {
            user: PSM_USER.into(),
            target: "desk-01".into(),
        },
        Duration::from_secs(300),
    );
    let token = cred.password.expose_secret().clone();
    let display = Display::start();
    let mut client = xfreerdp(
        &display,
        gw.addr.port(),
        &cred.username,
        &token,
        &["/sec:nla"],
        &dir.path().join("xfreerdp-nla.log"),
    );
    eventually(
        "the NLA session to be live",
        Duration::from_secs(60),
        || gw.registry.len() == 1,
    )
    .await;
    let info = gw.registry.list().remove(0);
    assert_eq!(
        (info.user.as_str(), info.target.as_str()),
        (PSM_USER, "desk-01")
    );
    client.stop();
    eventually("the session to end", Duration::from_secs(30), || {
        gw.registry.is_empty()
    })
    .await;

    // The same launch credential again, and the PSM password over NLA: both refused.
    for pw in [token.as_str(), PSM_PASSWORD] {
        let mut again = xfreerdp(
            &display,
            gw.addr.port(),
            &cred.username,
            pw,
            &["/sec:nla"],
            &dir.path().join("xfreerdp-nla2.log"),
        );
        eventually("FreeRDP to give up", Duration::from_secs(60), || {
            !again.running()
        })
        .await;
    }
    let sessions = plane
        .cp
        .engine()
        .store()
        .list(&Default::default())
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1, "only the first use opened a session");
    drop(display);
    drop(xrdp);
}
