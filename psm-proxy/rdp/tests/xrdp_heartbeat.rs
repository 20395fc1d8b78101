//! Issue 17 L6 for RDP: FreeRDP (under Xvfb) through the PSM RDP gateway to a real xrdp;
//! an administrator disables alice while her session is open, and the gateway ends it at
//! its next heartbeat (psm-proxy's `HeartbeatWatch`, shared with the SSH gateway). Before
//! the fix the session went on until its checkout expired (8 h).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use psm_core::directory::{DirectoryAdmin, UserUpdate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_users_open_rdp_session_ends_at_the_next_heartbeat() {
    require_all();
    let _lock = MachineLock::take();
    let dir = tempfile::tempdir().unwrap();
    let target_password = target_account();
    let xrdp = Xrdp::start(dir.path());
    let plane = plane_for(&xrdp, &target_password).await;
    let gw = gateway(&plane, dir.path(), |_| {}).await;
    let display = Display::start();
    let (mut client, _info, live) = gw
        .native_session(&display, &["/sec:tls"], &dir.path().join("client.log"))
        .await;
    assert!(live.control.termination().is_none());

    plane
        .directory
        .update_user(
            PSM_USER,
            &UserUpdate {
                disabled: Some(true),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    eventually(
        "the disabled user's session to end",
        Duration::from_secs(60),
        || gw.registry.is_empty(),
    )
    .await;
    let why = live.control.termination().unwrap_or_default();
    assert!(why.contains("disabled"), "{why:?}");
    client.stop();
}
