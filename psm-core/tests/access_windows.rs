//! Access windows in the engine, time driven by a manual clock: a session opens only
//! inside a window and from its networks; a window closing during a session warns the user
//! on the heartbeats before, then ends the session (or locks it, as configured, and lifts
//! the lock when a window opens again). Every refusal is audited.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use psm_core::access::{NewWindow, WindowCloseAction, WindowsConfig};
use psm_core::clock::ManualClock;
use psm_core::directory::{DirectoryAdmin, MemoryDirectory, NewUser};
use psm_core::store::{AuditQuery, MemoryStore, SessionStore};
use psm_core::{
    AuditAction, CoreError, Engine, EngineConfig, NewSession, ProcessInstance, Protocol, SessionId,
    SessionLifecycle, Stage, Timestamp,
};

/// Monday 2026-12-07 at `h:m` UTC.
fn monday(h: i64, m: i64) -> Timestamp {
    Timestamp::from_micros((1_796_601_600 + h * 3600 + m * 60) * 1_000_000)
}

async fn setup(on_close: WindowCloseAction) -> (Engine, ManualClock, Arc<MemoryStore>) {
    let dir = Arc::new(MemoryDirectory::new());
    dir.create_user(&NewUser {
        name: "alice".parse().unwrap(),
        roles: vec!["ops".into()],
        ..NewUser::default()
    })
    .await
    .unwrap();
    dir.grant("ops", "web-01").await.unwrap();
    // 09:00-18:00 in Paris (UTC+1 in December) on weekdays, from 10.0.0.0/8.
    dir.add_window(
        &NewWindow::new(
            "ops",
            "web-01",
            "days=mon-fri hours=09:00-18:00 tz=Europe/Paris from=10.0.0.0/8"
                .parse()
                .unwrap(),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let clock = ManualClock::new(monday(10, 0));
    let store = Arc::new(MemoryStore::new());
    let config = EngineConfig {
        windows: WindowsConfig {
            warning: Duration::from_secs(300),
            on_close,
        },
        ..EngineConfig::default()
    };
    let engine =
        Engine::new(store.clone(), Arc::new(clock.clone()), config).with_access_windows(dir);
    (engine, clock, store)
}

fn new_session(gw: &ProcessInstance) -> NewSession {
    NewSession {
        id: SessionId::new(),
        user: "alice".into(),
        target: "web-01".into(),
        protocol: Protocol::Ssh,
        checkout_id: None,
        process_instance: gw.clone(),
    }
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

async fn refusals(store: &MemoryStore) -> Vec<String> {
    store
        .audit_events(&AuditQuery::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.record.action == AuditAction::Refused)
        .map(|e| e.record.detail)
        .collect()
}

#[tokio::test]
async fn opens_only_inside_the_window_and_from_its_networks() {
    let (engine, clock, store) = setup(WindowCloseAction::End).await;
    let gw = ProcessInstance::new("gw").unwrap();

    // 10:00 UTC = 11:00 Paris, Monday, from 10.1.2.3: in.
    let s = engine
        .open_session_from(new_session(&gw), ip("10.1.2.3"))
        .await
        .unwrap();
    assert_eq!(s.stage, Stage::Connected);

    // From another network: refused, saying why.
    let err = engine
        .open_session_from(new_session(&gw), ip("192.0.2.1"))
        .await
        .unwrap_err();
    let CoreError::Forbidden(m) = err else {
        panic!("{err:?}")
    };
    assert!(m.contains("192.0.2.1 is not in an allowed network"), "{m}");
    // Without an address (a gateway that does not report it): refused too.
    assert!(matches!(
        engine.open_session(new_session(&gw)).await,
        Err(CoreError::Forbidden(_))
    ));

    // 17:30 UTC = 18:30 Paris: outside, from anywhere.
    clock.set(monday(17, 30));
    let err = engine
        .open_session_from(new_session(&gw), ip("10.1.2.3"))
        .await
        .unwrap_err();
    let CoreError::Forbidden(m) = err else {
        panic!("{err:?}")
    };
    assert!(m.contains("no access window is open now"), "{m}");
    assert!(
        m.contains("days=mon-fri hours=09:00-18:00 tz=Europe/Paris"),
        "{m}"
    );
    // Saturday 11:00 UTC: outside.
    clock.set(monday(5 * 24 + 11, 0));
    assert!(
        engine
            .open_session_from(new_session(&gw), ip("10.1.2.3"))
            .await
            .is_err()
    );

    let refused = refusals(&store).await;
    assert_eq!(refused.len(), 4, "{refused:?}");
    assert!(refused[0].contains("from 192.0.2.1 refused"), "{refused:?}");
    assert!(
        refused[1].contains("from an unreported address"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_closing_window_warns_then_ends_the_session() {
    let (engine, clock, store) = setup(WindowCloseAction::End).await;
    let gw = ProcessInstance::new("gw").unwrap();
    clock.set(monday(16, 0)); // 17:00 Paris
    let s = engine
        .open_session_from(new_session(&gw), ip("10.9.9.9"))
        .await
        .unwrap();

    let reply = SessionLifecycle::heartbeat(&engine, s.id, &gw)
        .await
        .unwrap();
    assert!(!reply.terminate && reply.notice.is_none() && reply.lock.is_none());

    // 17:56 Paris: closes at 18:00 Paris = 17:00 UTC, within the 5-minute warning.
    clock.set(monday(16, 56));
    let reply = SessionLifecycle::heartbeat(&engine, s.id, &gw)
        .await
        .unwrap();
    assert!(!reply.terminate, "{reply:?}");
    let notice = reply.notice.expect("warned");
    assert!(
        notice.contains("closes at 2026-12-07 17:00 UTC") && notice.contains("will then be ended"),
        "{notice}"
    );

    // 18:00 Paris: closed; the heartbeat tells the gateway to end it, with the reason.
    clock.set(monday(17, 0));
    let reply = SessionLifecycle::heartbeat(&engine, s.id, &gw)
        .await
        .unwrap();
    assert!(reply.terminate, "{reply:?}");
    assert!(
        reply
            .reason
            .as_deref()
            .unwrap()
            .contains("access window to web-01 has closed"),
        "{reply:?}"
    );
    let trail = engine.audit_trail(s.id).await.unwrap();
    let asked: Vec<_> = trail
        .iter()
        .filter(|e| e.record.action == AuditAction::TerminateRequested)
        .collect();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].record.actor, "access-window");
    // Later heartbeats keep saying terminate, without asking (and auditing) again.
    clock.advance(Duration::from_secs(10));
    assert!(
        SessionLifecycle::heartbeat(&engine, s.id, &gw)
            .await
            .unwrap()
            .terminate
    );
    assert_eq!(
        engine
            .audit_trail(s.id)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.record.action == AuditAction::TerminateRequested)
            .count(),
        1
    );
    engine.end_session(s.id, &gw).await.unwrap();
    let _ = store;
}

#[tokio::test]
async fn configured_to_lock_it_locks_and_unlocks() {
    let (engine, clock, _store) = setup(WindowCloseAction::Lock).await;
    let gw = ProcessInstance::new("gw").unwrap();
    clock.set(monday(16, 58));
    let s = engine
        .open_session_from(new_session(&gw), ip("10.9.9.9"))
        .await
        .unwrap();
    let reply = SessionLifecycle::heartbeat(&engine, s.id, &gw)
        .await
        .unwrap();
    assert!(reply.notice.unwrap().contains("will then be locked"));
    clock.set(monday(17, 0));
    let reply = SessionLifecycle::heartbeat(&engine, s.id, &gw)
        .await
        .unwrap();
    assert!(!reply.terminate);
    assert!(reply.lock.unwrap().contains("input is locked"));
    // Tuesday 08:00 UTC = 09:00 Paris: open again, the lock is lifted (no lock asked).
    clock.set(monday(24 + 8, 0));
    let reply = SessionLifecycle::heartbeat(&engine, s.id, &gw)
        .await
        .unwrap();
    assert!(reply.lock.is_none() && !reply.terminate, "{reply:?}");
}

#[tokio::test]
async fn a_role_without_windows_and_an_engine_without_them_are_unaffected() {
    let (engine, clock, _store) = setup(WindowCloseAction::End).await;
    let gw = ProcessInstance::new("gw").unwrap();
    clock.set(monday(22, 0));
    // bob is not in the directory: no window applies to him (the gateway checks users).
    let mut bob = new_session(&gw);
    bob.user = "bob".into();
    engine.open_session(bob).await.unwrap();
    // An engine without windows configured opens anything.
    let plain = Engine::new(
        Arc::new(MemoryStore::new()),
        Arc::new(clock.clone()),
        EngineConfig::default(),
    );
    plain.open_session(new_session(&gw)).await.unwrap();
}

#[tokio::test]
async fn a_lock_no_gateway_can_apply_ends_the_session_instead() {
    let (engine, clock, _store) = setup(WindowCloseAction::Lock).await;
    let gw = ProcessInstance::new("gw").unwrap();
    clock.set(monday(16, 0));
    // An RDP session: its gateway does not apply HeartbeatReply::lock.
    let mut rdp = new_session(&gw);
    rdp.protocol = Protocol::Rdp;
    let rdp = engine.open_session_from(rdp, ip("10.0.0.1")).await.unwrap();
    // An SSH session heartbeating over HTTP (psm-server's Polling: Engine::heartbeat).
    let ssh = engine
        .open_session_from(new_session(&gw), ip("10.0.0.1"))
        .await
        .unwrap();
    clock.set(monday(17, 1));
    let reply = SessionLifecycle::heartbeat(&engine, rdp.id, &gw)
        .await
        .unwrap();
    assert!(reply.terminate && reply.lock.is_none(), "{reply:?}");
    let polled = engine.heartbeat(ssh.id, &gw).await.unwrap();
    assert!(polled.terminate, "{polled:?}");
    assert!(
        polled
            .terminate_reason
            .unwrap()
            .contains("the session is ended")
    );
}
