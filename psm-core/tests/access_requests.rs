//! Access requests in the engine, time driven by a manual clock: a request approved by
//! others (never the requester; N of M) lets a session open; when it expires (or is
//! cancelled) the next heartbeat ends the session and new sessions are refused; standing
//! access is untouched. Every step is an audit event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use psm_core::access::{AccessRequests, ApprovalRule, RequestState};
use psm_core::clock::ManualClock;
use psm_core::directory::{DirectoryAdmin, MemoryDirectory, NewUser};
use psm_core::store::{AuditQuery, MemoryStore, SessionStore};
use psm_core::{
    CoreError, Engine, EngineConfig, NewSession, ProcessInstance, Protocol, SessionId,
    SessionLifecycle, Stage, Timestamp,
};

struct World {
    engine: Engine,
    clock: ManualClock,
    store: Arc<MemoryStore>,
    requests: AccessRequests,
}

async fn setup() -> World {
    let dir = Arc::new(MemoryDirectory::new());
    for (name, roles) in [
        ("alice", vec!["dev", "leads"]),
        ("bob", vec!["leads"]),
        ("carol", vec!["leads"]),
        ("olga", vec!["ops"]),
    ] {
        dir.create_user(&NewUser {
            name: name.parse().unwrap(),
            roles: roles.into_iter().map(String::from).collect(),
            ..NewUser::default()
        })
        .await
        .unwrap();
    }
    dir.grant("ops", "web-01").await.unwrap();
    dir.set_approval_rule(&ApprovalRule::new("web-01", "leads", 2).unwrap())
        .await
        .unwrap();
    let clock = ManualClock::new(Timestamp::from_micros(1_796_601_600_000_000));
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::new(
        store.clone(),
        Arc::new(clock.clone()),
        EngineConfig::default(),
    )
    .with_access_windows(dir.clone());
    let requests = AccessRequests::new(dir, store.clone(), Arc::new(clock.clone()));
    World {
        engine,
        clock,
        store,
        requests,
    }
}

fn new_session(user: &str, gw: &ProcessInstance) -> NewSession {
    NewSession {
        id: SessionId::new(),
        user: user.into(),
        target: "web-01".into(),
        protocol: Protocol::Ssh,
        checkout_id: None,
        process_instance: gw.clone(),
    }
}

async fn audit(store: &MemoryStore) -> Vec<String> {
    store
        .audit_events(&AuditQuery::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {} {}", e.record.action, e.record.actor, e.record.detail))
        .collect()
}

#[tokio::test]
async fn an_approved_request_opens_the_target_until_it_expires() {
    let w = setup().await;
    let gw = ProcessInstance::new("gw").unwrap();

    // Without a request: refused at open, told how to ask.
    let e = w
        .engine
        .open_session(new_session("alice", &gw))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CoreError::Forbidden(m) if m.contains("psm request web-01")),
        "{e}"
    );
    // Standing access is untouched, and needs no request.
    let olga = w
        .engine
        .open_session(new_session("olga", &gw))
        .await
        .unwrap();
    assert!(
        w.requests
            .request("olga", "web-01", Duration::from_secs(60), "x")
            .await
            .is_err()
    );

    let r = w
        .requests
        .request("alice", "web-01", Duration::from_secs(3600), "incident 42")
        .await
        .unwrap();
    assert_eq!(r.state, RequestState::Pending);
    assert!(
        w.requests
            .request("alice", "web-02", Duration::from_secs(60), "x")
            .await
            .is_err(),
        "web-02 has no rule"
    );
    let own = w.requests.approve(r.id, "alice").await.unwrap_err();
    assert!(own.to_string().contains("cannot decide"), "{own}");
    assert!(
        w.requests.approve(r.id, "olga").await.is_err(),
        "not a lead"
    );
    w.clock.advance(Duration::from_secs(60));
    let one = w.requests.approve(r.id, "bob").await.unwrap();
    assert_eq!(one.state, RequestState::Pending, "one of two");
    assert!(
        w.engine
            .open_session(new_session("alice", &gw))
            .await
            .is_err()
    );
    let two = w.requests.approve(r.id, "carol").await.unwrap();
    assert_eq!(two.state, RequestState::Approved);
    assert_eq!(
        two.expires,
        Some(psm_core::clock::Clock::now(&w.clock).saturating_add(Duration::from_secs(3600)))
    );

    let s = w
        .engine
        .open_session(new_session("alice", &gw))
        .await
        .unwrap();
    assert_eq!(s.stage, Stage::Connected);
    w.clock.advance(Duration::from_secs(3599));
    let reply = SessionLifecycle::heartbeat(&w.engine, s.id, &gw)
        .await
        .unwrap();
    assert!(!reply.terminate);

    // Expired: the next heartbeat ends it, saying why; new sessions are refused.
    w.clock.advance(Duration::from_secs(2));
    let reply = SessionLifecycle::heartbeat(&w.engine, s.id, &gw)
        .await
        .unwrap();
    assert!(reply.terminate);
    assert!(
        reply
            .reason
            .as_deref()
            .unwrap()
            .contains("approved access to web-01 has ended"),
        "{reply:?}"
    );
    assert!(
        w.engine
            .open_session(new_session("alice", &gw))
            .await
            .is_err()
    );
    // Olga's standing session goes on.
    let reply = SessionLifecycle::heartbeat(&w.engine, olga.id, &gw)
        .await
        .unwrap();
    assert!(!reply.terminate);

    let listed = w.requests.list(None).await.unwrap();
    assert_eq!(listed[0].state, RequestState::Expired);
    let trail = audit(&w.store).await;
    let find = |needle: &str| {
        assert!(
            trail.iter().any(|l| l.contains(needle)),
            "{needle:?} in {trail:#?}"
        )
    };
    find("other alice access request 1 filed: alice asks for web-01 for 1h");
    find("refused alice approval of access request 1 by alice refused");
    find("other bob access request 1 approved by bob (1 of 2)");
    find("other carol access request 1 approved by carol (2 of 2): alice may reach web-01");
    find("terminate-requested access-request your approved access to web-01 has ended");
    find("other access-request access request 1 of alice for web-01 expired");
}

#[tokio::test]
async fn a_cancelled_or_denied_request_grants_nothing() {
    let w = setup().await;
    let gw = ProcessInstance::new("gw").unwrap();
    let r = w
        .requests
        .request("alice", "web-01", Duration::from_secs(3600), "change 7")
        .await
        .unwrap();
    w.requests.approve(r.id, "bob").await.unwrap();
    w.requests.approve(r.id, "carol").await.unwrap();
    let s = w
        .engine
        .open_session(new_session("alice", &gw))
        .await
        .unwrap();
    assert!(w.requests.cancel(r.id, "bob").await.is_err(), "not bob's");
    w.requests.cancel(r.id, "alice").await.unwrap();
    let reply = SessionLifecycle::heartbeat(&w.engine, s.id, &gw)
        .await
        .unwrap();
    assert!(reply.terminate, "cancelled: the session ends");

    let r2 = w
        .requests
        .request("alice", "web-01", Duration::from_secs(3600), "again")
        .await
        .unwrap();
    let denied = w
        .requests
        .deny(r2.id, "bob", "use the runbook")
        .await
        .unwrap();
    assert_eq!(denied.state, RequestState::Denied);
    assert!(w.requests.approve(r2.id, "carol").await.is_err());
    assert!(
        w.engine
            .open_session(new_session("alice", &gw))
            .await
            .is_err()
    );
    // Unanswered for a day: expired, no longer approvable.
    let r3 = w
        .requests
        .request("alice", "web-01", Duration::from_secs(60), "later")
        .await
        .unwrap();
    w.clock.advance(psm_core::access::PENDING_TTL);
    assert!(w.requests.approve(r3.id, "bob").await.is_err());
    assert_eq!(
        w.requests.get(r3.id).await.unwrap().state,
        RequestState::Expired
    );
}
