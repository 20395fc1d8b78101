//! The encoder as `psm up` runs it, with the deployment's default settings
//! (`PamSettings::default()`, what its control plane serves in GetPAMSettings), on a real RDP
//! recording and on a terminal one. The RDP recording (`tests/data/xrdp-session.psmr`) was
//! made by psm-proxy/rdp's `xrdp_native` test: FreeRDP under Xvfb through the PSM RDP gateway
//! to xrdp, a command typed with xdotool after moving the pointer (rerun that test with
//! `PSM_RDP_KEEP_RECORDING=FILE` to make another). The RDP session gets its video and
//! contact sheet, and a command index of what was typed, without pointer moves; the
//! terminal session gets its asciicast and no video.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::*;
use psm_core::vault::PamSettings;
use psm_core::{NewSession, Protocol as CoreProtocol, Stage};
use psm_pipeline::manifest::Manifest;
use psm_pipeline::settings::{EncoderOverrides, encoder_settings};
use psm_pipeline::{Encoder, EncoderSettings, ExportKind, LocalLayout};
use psm_recording::{EventKind, Protocol, ReadOptions, Reader};

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/xrdp-session.psmr")
}

fn need(tool: &str) {
    let ok = Command::new(tool)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{tool} is missing: install Debian's ffmpeg (apt-get install ffmpeg)"
    );
}

/// Width and height of a video's first stream, by ffprobe.
fn video_size(path: &Path) -> (u32, u32) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=width,height", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<u32> = text
        .trim()
        .split(',')
        .filter_map(|f| f.parse().ok())
        .collect();
    assert_eq!(v.len(), 2, "ffprobe: {text}");
    (v[0], v[1])
}

#[tokio::test]
async fn default_settings_give_rdp_sessions_video_and_terminal_sessions_none() {
    need("ffmpeg");
    need("ffprobe");
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path().join("data"));
    layout.create().unwrap();
    let engine = memory_engine(engine_config());

    // The real RDP recording, as the gateway left it for its session.
    let reader = Reader::open(fixture(), ReadOptions::default()).unwrap();
    let header = reader.header().clone();
    assert_eq!(header.protocol, Protocol::Rdp);
    let (width, height) = {
        let mut r = Reader::open(fixture(), ReadOptions::default()).unwrap();
        let end = r.duration();
        let canvas = psm_recording::graphics::screen_at(&mut r, end)
            .unwrap()
            .unwrap();
        (canvas.width(), canvas.height())
    };
    let rdp = header.session_id;
    let gw = instance("rdp-gateway");
    engine
        .open_session(NewSession {
            id: rdp,
            user: header.user.clone(),
            target: header.target.clone(),
            protocol: CoreProtocol::Rdp,
            checkout_id: None,
            process_instance: gw.clone(),
        })
        .await
        .unwrap();
    std::fs::create_dir_all(layout.recordings_dir()).unwrap();
    std::fs::copy(fixture(), layout.raw_recording(rdp)).unwrap();
    engine.end_session(rdp, &gw).await.unwrap();
    let ssh = recorded_session(&engine, &layout, 40).await;

    // What `psm up`'s encoder does with its control plane's settings and no flags.
    let (settings, warnings) = encoder_settings(
        Some(&PamSettings::default()),
        &EncoderOverrides::default(),
        EncoderSettings::default(),
    )
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let encoder = Arc::new(Encoder::new(
        engine.clone(),
        layout.clone(),
        settings,
        worker("encoder-defaults"),
    ));
    let summary = encoder.run_until_idle().await;
    assert_eq!(summary.completed.len(), 2, "{summary:?}");
    for id in [rdp, ssh] {
        assert_eq!(engine.session(id).await.unwrap().stage, Stage::DoneEncoded);
    }
    let kinds = |id| -> Vec<String> {
        Manifest::read(&layout.manifest(id), id)
            .unwrap()
            .exports
            .iter()
            .map(|f| f.kind.clone())
            .collect()
    };

    // The RDP session: video and contact sheet (what the web UI's replay page shows).
    assert_eq!(
        kinds(rdp),
        ["transcript", "commands", "video", "contact-sheet"]
    );
    let exports = layout.exports_dir(rdp);
    let video = exports.join(ExportKind::Video.file_name());
    assert_eq!(
        video_size(&video),
        (width, height),
        "the video is the desktop"
    );
    let sheet = std::fs::read(exports.join(ExportKind::ContactSheet.file_name())).unwrap();
    assert!(
        sheet.starts_with(b"\x89PNG\r\n\x1a\n"),
        "a PNG contact sheet"
    );
    assert!(!exports.join(ExportKind::Asciicast.file_name()).exists());

    // Its command index: the typed command, never a pointer move or click.
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(exports.join(ExportKind::Commands.file_name())).unwrap(),
    )
    .unwrap();
    let commands: Vec<&str> = index["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("touch /tmp/psm-rdp-proof-")),
        "{commands:?}"
    );
    for c in &commands {
        let word = c.split(' ').next().unwrap_or_default();
        assert!(
            !["move", "down", "up", "wheel"].contains(&word),
            "a pointer event in the command index: {c:?}"
        );
    }
    // The pointer did move in this session: the channel the index leaves out is not empty.
    let mut r = Reader::open(fixture(), ReadOptions::default()).unwrap();
    let moves = r
        .events()
        .map(|e| e.unwrap())
        .filter(|e| matches!(&e.kind, EventKind::Input { data, .. } if data.starts_with(b"move ")))
        .count();
    assert!(moves > 0, "the recording has pointer moves");

    // The terminal session: its asciicast, no video work at all.
    assert_eq!(kinds(ssh), ["asciicast", "transcript", "commands"]);
    let exports = layout.exports_dir(ssh);
    assert!(!exports.join(ExportKind::Video.file_name()).exists());
    assert!(!exports.join(ExportKind::ContactSheet.file_name()).exists());
}
