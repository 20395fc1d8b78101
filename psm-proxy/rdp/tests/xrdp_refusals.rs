//! A refused RDP user learns why: FreeRDP (under Xvfb) through the PSM RDP gateway with a
//! wrong PSM password, a target the user has no grant for, an unknown target (for a user
//! granted every target; without such a grant it is refused like any target not granted,
//! //! so users cannot probe which targets exist), a checkout the vault refuses (a target with no
//! credential in the vault), and a target that does not answer. Each time FreeRDP's own output names the
//! refusal (the ERRINFO_* code the gateway sent in a Set Error Info PDU), no session is left
//! open, and the target's password appears nowhere in what the client printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use psm_core::directory::{DirectoryAdmin, NewUser, PasswordHash};

/// Runs FreeRDP once as `login` with `password` and returns what it printed.
async fn refused(
    gw: &Gateway,
    display: &Display,
    dir: &std::path::Path,
    name: &str,
    login: &str,
    password: &str,
) -> String {
    let log = dir.join(format!("xfreerdp-{name}.log"));
    let mut client = xfreerdp(
        display,
        gw.addr.port(),
        login,
        password,
        &["/sec:tls"],
        &log,
    );
    eventually(
        &format!("FreeRDP to be sent away ({name})"),
        Duration::from_secs(60),
        || !client.running(),
    )
    .await;
    assert!(gw.registry.is_empty(), "{name}: no session stays open");
    std::fs::read_to_string(&log).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_users_are_told_why() {
    require_all();
    // No xrdp here, but the X displays are picked the same way as the other RDP tests'.
    let _lock = MachineLock::take();
    let dir = tempfile::tempdir().unwrap();
    // No target runs on this port: the vault's desk-01 cannot be reached. The credential is
    // fetched for that session only, and must never reach the client.
    let target_password = random_password();
    let plane = plane(free_port(), &target_password).await;
    plane
        .directory
        .create_user(&NewUser {
            name: "bob".parse().unwrap(),
            password: Some(PasswordHash::hash(PSM_PASSWORD).unwrap()),
            roles: vec!["nobody".into()],
            ..NewUser::default()
        })
        .await
        .unwrap();
    // carol may reach every target by her roles, so her unknown target gets as far as the
    // vault.
    plane
        .directory
        .create_user(&NewUser {
            name: "carol".parse().unwrap(),
            password: Some(PasswordHash::hash(PSM_PASSWORD).unwrap()),
            roles: vec!["everything".into()],
            ..NewUser::default()
        })
        .await
        .unwrap();
    plane.directory.grant("everything", "*").await.unwrap();
    // desk-02 is granted to alice but has no credential: the vault refuses its checkout.
    plane
        .cp
        .vault()
        .put_target(
            psm_core::vault::Target {
                name: "desk-02".into(),
                host: "127.0.0.1".into(),
                port: free_port(),
                protocol: psm_core::Protocol::Rdp,
                host_key: None,
            },
            "admin",
        )
        .await
        .unwrap();
    plane
        .directory
        .grant("desktop-ops", "desk-02")
        .await
        .unwrap();
    let gw = gateway(&plane, dir.path(), |_| {}).await;
    let display = Display::start();

    let cases = [
        // Not authenticated: the reason stays generic.
        (
            "wrong-password",
            format!("{PSM_USER}+desk-01"),
            "not-the-password",
            "ERRINFO_SERVER_DENIED_CONNECTION",
        ),
        (
            "no-grant",
            "bob+desk-01".to_owned(),
            PSM_PASSWORD,
            "ERRINFO_SERVER_INSUFFICIENT_PRIVILEGES",
        ),
        (
            "not-granted-unknown-target",
            format!("{PSM_USER}+no-such-desk"),
            PSM_PASSWORD,
            "ERRINFO_SERVER_INSUFFICIENT_PRIVILEGES",
        ),
        (
            "unknown-target",
            "carol+no-such-desk".to_owned(),
            PSM_PASSWORD,
            "ERRINFO_CB_DESTINATION_NOT_FOUND",
        ),
        (
            "checkout-refused",
            format!("{PSM_USER}+desk-02"),
            PSM_PASSWORD,
            "ERRINFO_CB_CONNECTION_CANCELLED",
        ),
        (
            "target-down",
            format!("{PSM_USER}+desk-01"),
            PSM_PASSWORD,
            "ERRINFO_CB_REDIRECTING_TO_DESTINATION",
        ),
    ];
    for (name, login, password, expected) in cases {
        let out = refused(&gw, &display, dir.path(), name, &login, password).await;
        assert!(
            out.contains(expected),
            "{name}: FreeRDP's output names the refusal ({expected}):\n{out}"
        );
        assert!(
            !out.contains(&target_password),
            "{name}: the target's password reached the client"
        );
    }
    let sessions = plane
        .cp
        .engine()
        .store()
        .list(&Default::default())
        .await
        .unwrap();
    assert!(
        sessions
            .iter()
            .all(|s| s.stage != psm_core::Stage::Connected),
        "every session opened for a refused user was ended: {sessions:?}"
    );
    drop(display);
}
