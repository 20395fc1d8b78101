//! The session drive with real programs: FreeRDP under Xvfb → the gateway (policy: drives
//! allowed, the session drive under a temporary directory) → xrdp + xorgxrdp, whose
//! chansrv mounts the drive under `~/thinclient_drives/PSM` (FUSE, Debian `fuse3`).
//!
//! A script typed into the target's xterm copies a file the gateway's side put in the
//! drive, writes one back, makes a directory and deletes a file there. Checks: both files
//! arrive with their exact bytes, the new directory and the deletion reach the gateway's
//! folder, and the recording holds each file as a `FileTransfer` (direction, size, BLAKE3)
//! and the directory and the deletion as markers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use psm_proxy_rdp::drive::DriveConfig;
use psm_recording::{EventKind, ReadOptions, Reader, TransferDirection};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_target_reads_and_writes_the_session_drive_and_it_is_recorded() {
    require_all();
    require("fusermount3", "fuse3");
    let _lock = MachineLock::take();
    let dir = tempfile::tempdir().unwrap();
    let target_password = target_account();
    let xrdp = Xrdp::start(dir.path());
    let plane = plane_for(&xrdp, &target_password).await;
    let drives = dir.path().join("drives");
    let gw = gateway(&plane, dir.path(), |c| {
        c.channels.drives = true;
        c.drive = Some(DriveConfig::new(&drives));
    })
    .await;

    let display = Display::start();
    let (mut client, info, live) = gw
        .native_session(&display, &["/sec:tls"], &dir.path().join("xfreerdp.log"))
        .await;
    let folder = drives.join(info.id.to_string());
    assert!(folder.is_dir(), "the session's drive folder {folder:?}");
    eventually("the FreeRDP window", Duration::from_secs(30), || {
        display.freerdp_window().is_some()
    })
    .await;
    wait_settled_desktop(&live.screen).await;
    let window = display.freerdp_window().unwrap();

    // What the gateway's side offers the target.
    let tag = hex(&std::process::id().to_be_bytes());
    let offered = format!("psm-drive-in-{tag}\n").repeat(2000);
    std::fs::write(folder.join("hello.txt"), &offered).unwrap();

    let out = |what: &str| format!("/tmp/psm-drive-{tag}.{what}");
    for what in ["in", "ls", "mounts", "done", "err"] {
        let _ = std::fs::remove_file(out(what));
    }
    let script = out("sh");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
exec 2>{err}
D="$HOME/thinclient_drives/PSM"
for i in $(seq 1 120); do [ -f "$D/hello.txt" ] && break; sleep 0.5; done
ls -la "$HOME/thinclient_drives" > {mounts} 2>&1
cp "$D/hello.txt" {inp}
printf 'psm-drive-out-{tag}\n' > "$D/out.txt"
mkdir "$D/sub"
echo gone > "$D/sub/gone.txt"
rm "$D/sub/gone.txt"
ls "$D" > {ls} 2>&1
touch {done}
"#,
            err = out("err"),
            mounts = out("mounts"),
            inp = out("in"),
            ls = out("ls"),
            done = out("done"),
        ),
    )
    .unwrap();
    assert!(
        std::process::Command::new("chmod")
            .args(["755", &script])
            .status()
            .unwrap()
            .success()
    );
    display.type_line(&window, &format!("sh {script}"));
    eventually("the script on the target", Duration::from_secs(90), || {
        std::path::Path::new(&out("done")).exists()
    })
    .await;
    let mounts = std::fs::read_to_string(out("mounts")).unwrap_or_default();
    let copied = std::fs::read_to_string(out("in")).unwrap_or_default();
    assert!(
        copied == offered,
        "the target's copy of hello.txt ({} bytes, offered {}); thinclient_drives: {mounts}",
        copied.len(),
        offered.len()
    );
    let errors = std::fs::read_to_string(out("err")).unwrap_or_default();
    let written = std::fs::read_to_string(folder.join("out.txt")).unwrap_or_else(|e| {
        panic!("out.txt in the gateway's folder: {e}; the script said: {errors}")
    });
    assert_eq!(written, format!("psm-drive-out-{tag}\n"));
    assert!(folder.join("sub").is_dir());
    assert!(!folder.join("sub/gone.txt").exists());
    let listed = std::fs::read_to_string(out("ls")).unwrap();
    assert!(
        listed.lines().any(|l| l == "hello.txt") && listed.lines().any(|l| l == "out.txt"),
        "{listed}"
    );
    assert_eq!(gw.registry.len(), 1, "the session goes on");
    assert!(client.running());

    drop(live);
    let path = gw.end_session(&mut client, info.id).await;
    let mut reader = Reader::open(&path, ReadOptions::default()).unwrap();
    let mut transfers = Vec::new();
    let mut markers = Vec::new();
    for e in reader.events() {
        match e.unwrap().kind {
            EventKind::FileTransfer(t) => transfers.push(t),
            EventKind::Marker { label } => markers.push(label),
            _ => {}
        }
    }
    let read = transfers
        .iter()
        .find(|t| t.path == "PSM/hello.txt" && t.direction == TransferDirection::Upload)
        .unwrap_or_else(|| panic!("no upload of hello.txt in {transfers:?}"));
    assert_eq!(read.size, Some(offered.len() as u64));
    assert_eq!(
        read.blake3,
        Some(*blake3::hash(offered.as_bytes()).as_bytes())
    );
    assert_eq!(read.protocol, "rdp-drive");
    let wrote = transfers
        .iter()
        .find(|t| t.path == "PSM/out.txt" && t.direction == TransferDirection::Download)
        .unwrap_or_else(|| panic!("no download of out.txt in {transfers:?}"));
    assert_eq!(wrote.size, Some(written.len() as u64));
    assert_eq!(
        wrote.blake3,
        Some(*blake3::hash(written.as_bytes()).as_bytes())
    );
    assert!(
        markers
            .iter()
            .any(|m| m == "drive: created directory PSM/sub"),
        "{markers:?}"
    );
    assert!(
        markers
            .iter()
            .any(|m| m == "drive: deleted PSM/sub/gone.txt"),
        "{markers:?}"
    );
    let raw = std::fs::read(&path).unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains(&target_password));
    for what in ["in", "ls", "mounts", "done", "err", "sh"] {
        let _ = std::fs::remove_file(out(what));
    }
}
