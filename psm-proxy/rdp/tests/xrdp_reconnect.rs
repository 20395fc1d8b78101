//! A second session to a target desktop that already exists at another size: FreeRDP logs
//! in through the gateway at 1024x768 and leaves (xrdp keeps the desktop), then logs in
//! again at 800x600 and gets the existing desktop back. The session goes on: a typed
//! command reaches the target, the gateway's screen is the target's screen, pixel for pixel
//! and at the same size, and the recording ends with a picture of that size.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use psm_recording::{ReadOptions, Reader, graphics};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reattached_desktop_of_another_size_is_followed() {
    require_all();
    let _lock = MachineLock::take();
    let dir = tempfile::tempdir().unwrap();
    let target_password = target_account();
    let xrdp = Xrdp::start(dir.path());
    let plane = plane_for(&xrdp, &target_password).await;
    let gw = gateway(&plane, dir.path(), |_| {}).await;
    let display = Display::start();

    // 1. A first session creates the desktop at 1024x768, then the client leaves.
    let (mut first, info, live) = gw
        .native_session(&display, &["/sec:tls"], &dir.path().join("first.log"))
        .await;
    wait_settled_desktop(&live.screen).await;
    assert_eq!(live.screen.size(), (1024, 768));
    drop(live);
    gw.end_session(&mut first, info.id).await;

    // 2. The second asks for 800x600 and gets the existing desktop.
    let (mut second, info, live) = gw
        .native_session(
            &display,
            &["/sec:tls", "/size:800x600"],
            &dir.path().join("second.log"),
        )
        .await;
    wait_settled_desktop(&live.screen).await;
    assert_eq!(gw.registry.len(), 1, "the session goes on");
    assert!(second.running());

    let proof = format!(
        "/tmp/psm-rdp-reconnect-{}",
        hex(&std::process::id().to_be_bytes())
    );
    let _ = std::fs::remove_file(&proof);
    let window = display.freerdp_window().unwrap();
    display.type_line(&window, &format!("touch {proof}"));
    eventually(
        "the typed command to reach the target",
        Duration::from_secs(30),
        || std::path::Path::new(&proof).exists(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The gateway's screen is the target's screen.
    let after = live.screen.snapshot();
    assert_screen_is_the_targets(dir.path(), &after);

    drop(live);
    let path = gw.end_session(&mut second, info.id).await;
    let mut reader = Reader::open(&path, ReadOptions::default()).unwrap();
    let end = reader.duration();
    let canvas = graphics::screen_at(&mut reader, end).unwrap().unwrap();
    assert_eq!(
        (canvas.width(), canvas.height()),
        (u32::from(after.rect.width), u32::from(after.rect.height)),
        "the recording has the desktop's size"
    );
    let _ = std::fs::remove_file(&proof);
}
