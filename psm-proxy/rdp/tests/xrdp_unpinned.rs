//! Issue 17 L13: toward a target whose certificate is not pinned the gateway logs in with
//! NLA only. A TLS-only server with an unknown certificate (here the real xrdp, which
//! offers TLS only; to the gateway it is indistinguishable from a man in the middle that
//! refuses NLA) never gets a login, so the password never travels in a Client Info PDU;
//! pinned, the same xrdp is logged in to over TLS as before.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use psm_proxy::{Authorization, HostKeyCheck};
use psm_proxy_rdp::access::TargetLogin;
use psm_proxy_rdp::upstream;

fn auth(port: u16, host_key: HostKeyCheck) -> Authorization {
    Authorization {
        target: "desk-01".into(),
        host: "127.0.0.1".into(),
        port,
        host_key,
        account: String::new(),
        checkout: None,
        expires: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpinned_tls_only_target_gets_no_login_and_a_pinned_one_does() {
    require_all();
    let _lock = MachineLock::take();
    let dir = tempfile::tempdir().unwrap();
    let target_password = target_account();
    let xrdp = Xrdp::start(dir.path());
    let login = TargetLogin::new(TARGET_USER, &target_password);
    let connect = |host_key| {
        let login = login.clone();
        async move {
            upstream::connect(
                &auth(xrdp.port, host_key),
                &login,
                1024,
                768,
                psm_proxy_rdp::TargetSecurity::NlaOrTls,
                Duration::from_secs(30),
            )
            .await
        }
    };
    let refused = connect(HostKeyCheck::AcceptAny)
        .await
        .expect_err("an unpinned TLS-only target was logged in to");
    let text = refused.to_string();
    assert!(!text.contains(&target_password), "{text}");
    let pinned = connect(HostKeyCheck::Pinned(vec![xrdp.pin()]))
        .await
        .expect("the pinned target");
    assert_eq!((pinned.width, pinned.height), (1024, 768));
    drop(pinned);
}
