//! Issue 17 L6 through OpenSSH, the gateway and a real sshd: a session whose control plane
//! stops answering heartbeats is locked after `max_missed` of them (the default policy) and
//! unlocked when it answers again; disabling the user ends their open session at the next
//! heartbeat. Before the fix the session went on unlocked until its checkout expired, and a
//! disabled user kept it.
//!
//! The control plane is the in-process engine behind a switch that makes its heartbeats
//! fail the way an unreachable HTTP control plane does (`CoreError::Unavailable`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use psm_core::clock::SystemClock;
use psm_core::directory::{DirectoryAdmin, UserUpdate};
use psm_core::store::MemoryStore;
use psm_core::{
    CoreError, Engine, EngineConfig, HeartbeatReply, NewSession, PrivSession, ProcessInstance,
    SessionId, SessionLifecycle, Stage,
};

/// The engine, with heartbeats that fail while `down` is set.
struct Switch {
    engine: Engine,
    down: AtomicBool,
}

#[async_trait]
impl SessionLifecycle for Switch {
    async fn open_session(&self, new: NewSession) -> Result<PrivSession, CoreError> {
        SessionLifecycle::open_session(&self.engine, new).await
    }
    async fn heartbeat(
        &self,
        session: SessionId,
        by: &ProcessInstance,
    ) -> Result<HeartbeatReply, CoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(CoreError::Unavailable {
                message: "connection refused".into(),
                source: None,
            });
        }
        SessionLifecycle::heartbeat(&self.engine, session, by).await
    }
    async fn update_session(&self, session: SessionId) -> Result<(), CoreError> {
        SessionLifecycle::update_session(&self.engine, session).await
    }
    async fn end_session(&self, session: SessionId, by: &ProcessInstance) -> Result<(), CoreError> {
        SessionLifecycle::end_session(&self.engine, session, by).await
    }
}

/// Waits until `cond` holds, giving up (as never) after 1200 polls: hundreds of heartbeat
/// intervals, so a slow machine never fails it; it is not a measure of speed.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l6_an_unreachable_control_plane_locks_the_session_and_a_disabled_user_is_ended() {
    let sshd = Sshd::start();
    let engine = Engine::new(
        Arc::new(MemoryStore::new()),
        Arc::new(SystemClock),
        EngineConfig::default(),
    );
    let switch = Arc::new(Switch {
        engine: engine.clone(),
        down: AtomicBool::new(false),
    });
    let gw = Gateway::start_with(
        &sshd,
        Options {
            control_plane: Some(switch.clone()),
            configure: Box::new(|c| c.heartbeat_interval = Duration::from_millis(100)),
            ..Options::default()
        },
    )
    .await;
    let client = tokio::spawn(run(
        gw.ssh("alice+t1", &[], "sleep 600"),
        Duration::from_secs(300),
    ));
    until("the session is live", || gw.registry.len() == 1).await;
    let id = gw.registry.list()[0].id;
    let session = gw.registry.get(id).unwrap();
    let control = session.control().clone();
    assert!(!control.is_locked());

    // The control plane goes away: the session is locked (by the gateway, saying why).
    switch.down.store(true, Ordering::SeqCst);
    until("the session is locked", || control.is_locked()).await;
    let hold = control.hold();
    assert_eq!(hold.by, "gateway");
    assert!(hold.reason.contains("control plane"), "{hold:?}");
    assert!(!client.is_finished(), "locked, not ended");

    // It answers again: unlocked.
    switch.down.store(false, Ordering::SeqCst);
    until("the session is unlocked", || !control.is_locked()).await;

    // An administrator disables alice: her open session ends at the next heartbeat.
    gw.directory
        .update_user(
            "alice",
            &UserUpdate {
                disabled: Some(true),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    let out = client.await.unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert!(
        control
            .termination()
            .is_some_and(|r| r.contains("disabled")),
        "{:?}",
        control.termination()
    );
    // And it ends in the control plane too (the gateway reports it as it tears down).
    while engine
        .list(&Default::default())
        .await
        .unwrap()
        .iter()
        .any(|s| s.stage == Stage::Connected)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.stop().await;
}
