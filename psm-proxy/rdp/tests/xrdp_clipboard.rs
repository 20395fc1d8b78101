//! The clipboard through the gateway, with real programs on both sides: FreeRDP under Xvfb
//! (whose X clipboard `xclip` sets and reads) → the gateway (policy: clipboard allowed, a
//! 64 KiB limit) → xrdp + xorgxrdp, where commands typed into the xterm set and read the
//! target's X clipboard with `xclip`.
//!
//! Checks: text copied on the user's machine can be pasted on the target and the other way
//! round; both are recorded as `Clipboard` events with their direction; a paste larger than
//! the limit (a clipboard bomb) reaches neither the target nor the recording, is marked in
//! the recording, and the session goes on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use psm_recording::{ClipboardDirection, EventKind, ReadOptions, Reader};

const LIMIT: usize = 64 << 10;

/// Puts `text` on the client display's CLIPBOARD (xclip keeps serving it in the background
/// until another owner takes the selection).
fn set_client_clipboard(display: &Display, text: &str) -> Proc {
    let mut c = display
        .cmd("xclip")
        .args(["-selection", "clipboard", "-i", "-quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    // Killed and waited for on drop.
    Proc {
        child: c,
        name: "xclip",
    }
}

/// Reads the client display's CLIPBOARD (what FreeRDP offers from the target).
fn client_clipboard(display: &Display) -> String {
    let out = display
        .cmd("timeout")
        .args(["10", "xclip", "-selection", "clipboard", "-o"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Types `command` into the target's xterm until `done` holds (FreeRDP and xrdp announce a
/// new clipboard owner asynchronously, so the first try may be too early).
async fn type_until(
    display: &Display,
    window: &str,
    what: &str,
    command: &str,
    mut done: impl FnMut() -> bool,
) {
    let start = Instant::now();
    loop {
        display.type_line(window, command);
        let tried = Instant::now();
        while tried.elapsed() < Duration::from_secs(5) {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for: {what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_crosses_both_ways_is_recorded_and_a_bomb_is_refused() {
    require_all();
    require("xclip", "xclip");
    let _lock = MachineLock::take();
    let dir = tempfile::tempdir().unwrap();
    let target_password = target_account();
    let xrdp = Xrdp::start(dir.path());
    let plane = plane_for(&xrdp, &target_password).await;
    let gw = gateway(&plane, dir.path(), |c| {
        c.channels.clipboard = true;
        c.limits.max_clipboard_bytes = LIMIT;
    })
    .await;

    let display = Display::start();
    let (mut client, info, live) = gw
        .native_session(
            &display,
            &["/sec:tls", "+clipboard"],
            &dir.path().join("xfreerdp.log"),
        )
        .await;
    eventually("the FreeRDP window", Duration::from_secs(30), || {
        display.freerdp_window().is_some()
    })
    .await;
    // Wait for the xterm to be drawn and settled.
    wait_settled_desktop(&live.screen).await;
    let window = display.freerdp_window().unwrap();
    let tag = hex(&std::process::id().to_be_bytes());

    // 1. The user copies on their machine; the target pastes it.
    let to_target = format!("psm-clip-to-target-{tag}");
    let _owner = set_client_clipboard(&display, &to_target);
    let pasted = format!("/tmp/psm-clip-{tag}-in");
    let _ = std::fs::remove_file(&pasted);
    type_until(
        &display,
        &window,
        "the target to paste the user's clipboard",
        &format!("xclip -selection clipboard -o > {pasted}"),
        || std::fs::read_to_string(&pasted).is_ok_and(|t| t == to_target),
    )
    .await;

    // 2. The target copies; the user pastes it on their machine.
    let to_user = format!("psm-clip-to-user-{tag}");
    let mut got = String::new();
    let start = Instant::now();
    while got != to_user {
        display.type_line(
            &window,
            &format!("echo -n {to_user} | xclip -selection clipboard -i"),
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        got = client_clipboard(&display);
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the user's clipboard never got the target's text (last: {got:?})"
        );
    }

    // 3. A paste over the limit: the target gets nothing, the session goes on.
    let bomb = "B".repeat(LIMIT * 4);
    let _bomb_owner = set_client_clipboard(&display, &bomb);
    let bombed = format!("/tmp/psm-clip-{tag}-bomb");
    let done = format!("{bombed}.done");
    let _ = std::fs::remove_file(&done);
    tokio::time::sleep(Duration::from_secs(2)).await;
    display.type_line(
        &window,
        &format!("timeout 5 xclip -selection clipboard -o > {bombed}; touch {done}"),
    );
    eventually(
        "the target's paste attempt",
        Duration::from_secs(30),
        || std::path::Path::new(&done).exists(),
    )
    .await;
    let pasted_bomb = std::fs::read(&bombed).unwrap_or_default();
    assert!(
        pasted_bomb.len() < LIMIT,
        "the target got {} bytes of a {}-byte paste",
        pasted_bomb.len(),
        bomb.len()
    );
    assert_eq!(gw.registry.len(), 1, "the session goes on");
    assert!(client.running());

    // End the session and read the recording.
    drop(live);
    let path = gw.end_session(&mut client, info.id).await;
    let mut reader = Reader::open(&path, ReadOptions::default()).unwrap();
    let mut clips = Vec::new();
    let mut markers = Vec::new();
    for e in reader.events() {
        match e.unwrap().kind {
            EventKind::Clipboard {
                direction, data, ..
            } => clips.push((direction, String::from_utf8(data).unwrap())),
            EventKind::Marker { label } => markers.push(label),
            _ => {}
        }
    }
    assert!(
        clips.contains(&(ClipboardDirection::ClientToTarget, to_target.clone())),
        "{clips:?}"
    );
    assert!(
        clips.contains(&(ClipboardDirection::TargetToClient, to_user.clone())),
        "{clips:?}"
    );
    assert!(
        clips.iter().all(|(_, t)| t.len() <= LIMIT),
        "the bomb is not recorded"
    );
    assert!(
        markers
            .iter()
            .any(|m| m.starts_with("clipboard refused") && m.contains(&format!("limit {LIMIT}"))),
        "{markers:?}"
    );
    let raw = std::fs::read(&path).unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains(&target_password));
    let _ = std::fs::remove_file(&pasted);
    let _ = std::fs::remove_file(&bombed);
    let _ = std::fs::remove_file(&done);
}
