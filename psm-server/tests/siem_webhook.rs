//! The SIEM forwarder's webhook sink against a real HTTP receiver (axum, on loopback):
//! the JSON body, the HMAC-SHA256 signature as a receiver verifies it, retries with backoff
//! through 5xx answers and a receiver that is down, and no credential in any event.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use psm_core::clock::SystemClock;
use psm_core::store::{AuditQuery, MemoryStore, SessionStore};
use psm_core::vault::{
    CheckoutRequest, Credential, Keyring, MasterKey, MemoryVaultStore, Secret, Target, Vault,
    VaultConfig,
};
use psm_core::{
    AuditAction, AuditRecord, Engine, EngineConfig, NewSession, ProcessInstance, Protocol,
    SessionId, Stage, Timestamp,
};
use psm_server::siem::{
    CursorStore, DELIVERY_HEADER, MemoryCursorStore, SIGNATURE_HEADER, SiemConfig, SiemForwarder,
    SinkConfig, SyslogConfig, WebhookConfig, syslog_message, verify_signature,
};

const KEY: &str = "webhook-shared-hmac-key";

#[derive(Default)]
struct Received {
    /// Bodies whose signature verified, with their delivery header.
    good: Vec<(serde_json::Value, String)>,
    /// Requests whose signature did not verify.
    bad: usize,
    /// Requests answered 503 on purpose.
    refused: usize,
    /// How many requests to refuse first.
    refuse_first: usize,
    /// Raw bodies, for the leak check.
    raw: Vec<u8>,
}

type Shared = Arc<Mutex<Received>>;

async fn hook(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut r = s.lock().unwrap();
    r.raw.extend_from_slice(&body);
    if r.refused < r.refuse_first {
        r.refused += 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let sig = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !verify_signature(
        KEY.as_bytes(),
        sig,
        &body,
        SystemTime::now(),
        Duration::from_secs(300),
    ) {
        r.bad += 1;
        return StatusCode::UNAUTHORIZED;
    }
    assert_eq!(
        headers.get("content-type").unwrap().to_str().unwrap(),
        "application/json"
    );
    let delivery = headers
        .get(DELIVERY_HEADER)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    r.good
        .push((serde_json::from_slice(&body).unwrap(), delivery));
    StatusCode::NO_CONTENT
}

/// A receiver on a loopback port; `refuse_first` requests get a 503.
async fn receiver(
    listener: tokio::net::TcpListener,
    refuse_first: usize,
) -> (Shared, tokio::task::JoinHandle<()>) {
    let shared: Shared = Arc::new(Mutex::new(Received {
        refuse_first,
        ..Received::default()
    }));
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(shared.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (shared, task)
}

fn config(url: String, secret: &str) -> SiemConfig {
    SiemConfig {
        sinks: vec![SinkConfig::Webhook {
            name: "hook".into(),
            config: WebhookConfig::new(url, Secret::new(secret.to_owned()), "node-7"),
        }],
        poll_interval: Duration::from_millis(100),
        batch_size: 25,
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        ..SiemConfig::default()
    }
}

async fn audit(store: &MemoryStore, n: usize) {
    for i in 0..n {
        store
            .append_audit(&AuditRecord {
                at: Timestamp::from_micros(1_780_000_000_000_000 + i as i64),
                session: Some(SessionId::new()),
                actor: format!("gw-{i}"),
                action: if i % 2 == 0 {
                    AuditAction::Opened
                } else {
                    AuditAction::Refused
                },
                from_stage: None,
                to_stage: (i % 2 == 0).then_some(Stage::Connected),
                detail: format!("detail \"{i}\"\nline 2 | = \\"),
            })
            .await
            .unwrap();
    }
}

fn delivered_seqs(r: &Received) -> Vec<i64> {
    r.good
        .iter()
        .flat_map(|(b, _)| b["events"].as_array().unwrap().clone())
        .map(|e| e["seq"].as_i64().unwrap())
        .collect()
}

async fn wait<F: Fn() -> bool>(what: &str, f: F) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_body_and_signature() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (received, _server) = receiver(listener, 0).await;
    let store = Arc::new(MemoryStore::new());
    audit(&store, 60).await;
    let events = store.audit_events(&AuditQuery::default()).await.unwrap();
    let cursors = Arc::new(MemoryCursorStore::new());
    let siem = SiemForwarder::spawn(store.clone(), cursors.clone(), config(url, KEY)).unwrap();

    wait("60 events", || {
        delivered_seqs(&received.lock().unwrap()).len() >= 60
    })
    .await;
    {
        let r = received.lock().unwrap();
        assert_eq!(r.bad, 0);
        assert_eq!(
            delivered_seqs(&r),
            events.iter().map(|e| e.seq).collect::<Vec<_>>()
        );
        // Batches of at most 25, each naming its range.
        assert_eq!(r.good.len(), 3);
        let (first, delivery) = &r.good[0];
        assert_eq!(delivery, &format!("{}-{}", events[0].seq, events[24].seq));
        assert_eq!(first["source"], "psm");
        assert_eq!(first["host"], "node-7");
        let e0 = &first["events"][0];
        let r0 = &events[0].record;
        assert_eq!(e0["seq"], events[0].seq);
        assert_eq!(e0["at"], r0.at.to_string());
        assert_eq!(e0["session"], r0.session.unwrap().to_string());
        assert_eq!(e0["actor"], "gw-0");
        assert_eq!(e0["action"], "opened");
        assert_eq!(e0["from_stage"], serde_json::Value::Null);
        assert_eq!(e0["to_stage"], Stage::Connected.as_str());
        assert_eq!(e0["detail"], "detail \"0\"\nline 2 | = \\");
        assert_eq!(first["events"][1]["action"], "refused");
    }
    // Each 2xx confirms its batch: the cursor reaches the last event.
    let deadline = Instant::now() + Duration::from_secs(30);
    while cursors.load("hook").await.unwrap() != Some(events[59].seq) {
        assert!(Instant::now() < deadline, "{:?}", siem.status());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    siem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_refused_by_the_receiver_and_retried() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (received, _server) = receiver(listener, 0).await;
    let store = Arc::new(MemoryStore::new());
    audit(&store, 3).await;
    let cursors = Arc::new(MemoryCursorStore::new());
    let siem =
        SiemForwarder::spawn(store.clone(), cursors.clone(), config(url, "not-the-key")).unwrap();
    wait("refusals", || received.lock().unwrap().bad >= 3).await;
    let status = siem.status();
    assert!(
        status[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("HTTP 401"),
        "{status:?}"
    );
    assert_eq!(status[0].confirmed, 0, "a refused batch is never skipped");
    assert!(received.lock().unwrap().good.is_empty());
    siem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_through_5xx_and_a_receiver_that_is_down() {
    // Take a port, then free it: nothing listens there yet.
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let url = format!("http://{addr}/hook");
    let store = Arc::new(MemoryStore::new());
    audit(&store, 40).await;
    let siem = SiemForwarder::spawn(
        store.clone(),
        Arc::new(MemoryCursorStore::new()),
        config(url, KEY),
    )
    .unwrap();
    wait("connection failures", || siem.status()[0].failures >= 2).await;

    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (received, _server) = receiver(listener, 3).await;
    audit(&store, 10).await;
    siem.wake();
    wait("every event", || {
        let got: BTreeSet<i64> = delivered_seqs(&received.lock().unwrap())
            .into_iter()
            .collect();
        got.len() == 50
    })
    .await;
    assert_eq!(received.lock().unwrap().refused, 3);
    let status = siem.status();
    assert!(status[0].failures >= 5, "{status:?}");
    assert_eq!(status[0].last_error, None);
    siem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_in_any_event() {
    const PASSWORD: &str = "PSM-canary-password-5f3a9c";
    const KEY_TEXT: &str = "PSM-canary-private-key-b81e";
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::new(
        store.clone(),
        Arc::new(SystemClock),
        EngineConfig::default(),
    );
    let vault = Vault::new(
        Arc::new(MemoryVaultStore::new()),
        Keyring::new(MasterKey::generate().unwrap()),
        engine.clone(),
        VaultConfig::default(),
    );
    for (name, cred) in [
        ("web-01", Credential::password("root", PASSWORD)),
        ("web-02", Credential::password("admin", KEY_TEXT)),
    ] {
        vault
            .put_target(
                Target {
                    name: name.into(),
                    host: "127.0.0.1".into(),
                    port: 22,
                    protocol: Protocol::Ssh,
                    host_key: None,
                },
                "admin",
            )
            .await
            .unwrap();
        vault.set_credential(name, cred, "admin").await.unwrap();
    }
    let checkout = vault
        .checkout(
            CheckoutRequest {
                user: "alice".into(),
                target: "web-01".into(),
                duration: Duration::from_secs(3600),
            },
            "admin",
        )
        .await
        .unwrap();
    let gateway = ProcessInstance::new("gateway-1").unwrap();
    let id = SessionId::new();
    engine
        .open_session(NewSession {
            id,
            user: "alice".into(),
            target: "web-01".into(),
            protocol: Protocol::Ssh,
            checkout_id: Some(checkout.id.clone()),
            process_instance: gateway.clone(),
        })
        .await
        .unwrap();
    let credential = vault.get_credential(id, &gateway).await.unwrap();
    assert_eq!(credential.username, "root");
    // A refusal (another gateway asks) is audited too.
    let intruder = ProcessInstance::new("gateway-2").unwrap();
    assert!(vault.get_credential(id, &intruder).await.is_err());
    vault.checkin(&checkout.id, "admin").await.unwrap();

    let events = store.audit_events(&AuditQuery::default()).await.unwrap();
    assert!(events.len() >= 8, "{events:?}");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (received, _server) = receiver(listener, 0).await;
    let siem = SiemForwarder::spawn(
        store.clone(),
        Arc::new(MemoryCursorStore::new()),
        config(url, KEY),
    )
    .unwrap();
    let n = events.len();
    wait("every event", || {
        delivered_seqs(&received.lock().unwrap()).len() >= n
    })
    .await;
    siem.shutdown().await;

    let raw = String::from_utf8(received.lock().unwrap().raw.clone()).unwrap();
    assert!(
        raw.contains("credential of target web-01 set"),
        "the events are there"
    );
    let syslog: String = events
        .iter()
        .map(|e| syslog_message(e, &SyslogConfig::tcp("127.0.0.1:1", "node")))
        .collect();
    for secret in [PASSWORD, KEY_TEXT, KEY] {
        assert!(!raw.contains(secret), "{secret} reached the webhook");
        assert!(!syslog.contains(secret), "{secret} reached syslog");
    }
    // Nor does any sink configuration print its secret.
    let cfg = format!("{:?}", config("http://127.0.0.1:1/".into(), KEY));
    assert!(!cfg.contains(KEY), "{cfg}");
}
