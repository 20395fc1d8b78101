//! Issue 17's findings against psm-server and its web UI, each as the attack a user or a
//! stranger on the network would try, against a real server over HTTP (reqwest, raw TCP):
//! concurrent logins against the lockout (M8), unbounded password hashing (M8), a session
//! that outlives its user's removal or change (M9), slow and idle connections (M10), the
//! lockout behind a reverse proxy (L1), TOTP replay and a login that reveals the password
//! was right (L3), audit flooding by unauthenticated requests (L4), DNS rebinding (L14).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod web_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use psm_core::directory::{
    AuthorizedKey, DirectoryAdmin, DirectoryLookup, DirectoryUser, NewUser, PasswordHash,
    UserDirectory, UserUpdate,
};
use psm_core::store::AuditQuery;
use psm_core::vault::Secret;
use psm_core::{AuditAction, CoreError};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use web_support::*;

async fn audit(web: &Web) -> Vec<(AuditAction, String, String)> {
    web.cp
        .engine()
        .store()
        .audit_events(&AuditQuery::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.record.action, e.record.actor, e.record.detail))
        .collect()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// M8: logins sent all at once used to pass the lockout check together, before the first
/// failure was counted, so a burst got as many guesses as it had requests.
#[tokio::test]
async fn a_burst_of_concurrent_logins_gets_no_more_guesses_than_the_lockout_allows() {
    let web = start(|c| c.max_failed_logins = 3).await;
    let guesses: Vec<_> = (0..24)
        .map(|i| spawn_login(&web, AUDITOR.0, &format!("guess-{i}")))
        .collect();
    let mut statuses = Vec::new();
    for g in guesses {
        statuses.push(g.await.unwrap());
    }
    let checked = statuses.iter().filter(|&&s| s == 401).count();
    let refused = statuses.iter().filter(|&&s| s == 429).count();
    assert!(checked <= 3, "{checked} guesses were checked: {statuses:?}");
    assert_eq!(checked + refused, 24, "{statuses:?}");
    // The right password is refused too until the lockout ends.
    assert_eq!(
        web.try_login(AUDITOR.0, AUDITOR.1, None).await.status(),
        429
    );
    web.stop().await;
}

/// A login sent from its own task; its HTTP status.
fn spawn_login(web: &Web, user: &str, password: &str) -> tokio::task::JoinHandle<u16> {
    let request = web
        .post("/ui/api/login")
        .body(serde_json::json!({"user": user, "password": password}).to_string());
    tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
}

/// A directory whose password checks wait at a gate the test opens, counting how many run
/// at once.
struct Gated {
    inner: Arc<dyn UserDirectory>,
    gate: tokio::sync::Semaphore,
    lookups: AtomicUsize,
    running: AtomicUsize,
    peak: AtomicUsize,
}

#[async_trait]
impl DirectoryLookup for Gated {
    async fn user(&self, name: &str) -> Result<Option<DirectoryUser>, CoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.user(name).await
    }
    async fn targets_of_roles(&self, roles: &[String]) -> Result<Vec<String>, CoreError> {
        self.inner.targets_of_roles(roles).await
    }
    async fn verify_password(
        &self,
        name: &str,
        password: &Secret<String>,
    ) -> Result<bool, CoreError> {
        let n = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        let permit = self.gate.acquire().await.unwrap();
        permit.forget();
        let ok = self.inner.verify_password(name, password).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        ok
    }
    async fn verify_totp(&self, name: &str, code: &str, t: u64) -> Result<bool, CoreError> {
        self.inner.verify_totp(name, code, t).await
    }
}

#[async_trait]
impl DirectoryAdmin for Gated {
    async fn users(&self) -> Result<Vec<DirectoryUser>, CoreError> {
        self.inner.users().await
    }
    async fn create_user(&self, user: &NewUser) -> Result<(), CoreError> {
        self.inner.create_user(user).await
    }
    async fn update_user(&self, name: &str, update: &UserUpdate) -> Result<(), CoreError> {
        self.inner.update_user(name, update).await
    }
    async fn delete_user(&self, name: &str) -> Result<bool, CoreError> {
        self.inner.delete_user(name).await
    }
    async fn add_key(&self, name: &str, key: &AuthorizedKey) -> Result<(), CoreError> {
        self.inner.add_key(name, key).await
    }
    async fn remove_key(&self, name: &str, key: &AuthorizedKey) -> Result<bool, CoreError> {
        self.inner.remove_key(name, key).await
    }
    async fn grant(&self, role: &str, target: &str) -> Result<(), CoreError> {
        self.inner.grant(role, target).await
    }
    async fn revoke(&self, role: &str, target: &str) -> Result<bool, CoreError> {
        self.inner.revoke(role, target).await
    }
}

/// M8: every web login ran argon2 (about 19 MiB) at once, however many arrived; now at most
/// `max_concurrent_logins` check a password at a time and the rest wait their turn.
#[tokio::test]
async fn web_logins_check_a_bounded_number_of_passwords_at_once() {
    let gated: Arc<std::sync::OnceLock<Arc<Gated>>> = Arc::default();
    let slot = gated.clone();
    let web = start_with(
        |_| {},
        |c| {
            c.max_concurrent_logins = 2;
            c.max_failed_logins = 100;
        },
        move |inner| {
            let g = Arc::new(Gated {
                inner,
                gate: tokio::sync::Semaphore::new(0),
                lookups: AtomicUsize::new(0),
                running: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
            });
            let _ = slot.set(g.clone());
            g
        },
    )
    .await;
    let gated = gated.get().unwrap().clone();
    let logins: Vec<_> = (0..6)
        .map(|_| spawn_login(&web, ADMIN.0, ADMIN.1))
        .collect();
    // Wait until all six are in (each reads the user first) and two are checking; the
    // other four must then be waiting for a turn, however long we look.
    let mut waited = 0;
    while gated.lookups.load(Ordering::SeqCst) < 6 || gated.running.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
        assert!(waited < 1500, "the logins never reached the password check");
    }
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(gated.running.load(Ordering::SeqCst), 2);
    }
    gated.gate.add_permits(100);
    for login in logins {
        assert_eq!(login.await.unwrap(), 200);
    }
    assert_eq!(gated.peak.load(Ordering::SeqCst), 2);
    web.stop().await;
}

/// M9: a browser logged in as a user kept its session (and an admin their rights) for up to
/// 12 hours after the user was disabled, deleted, or had their password or roles changed.
#[tokio::test]
async fn disabling_or_changing_a_user_ends_their_web_sessions() {
    let web = start(|c| c.directory_recheck = Duration::ZERO).await;
    let me = |login: &Login| {
        web.get("/ui/api/me")
            .header("cookie", login.cookie.clone())
            .send()
    };
    let changes: [(&str, &str, UserUpdate); 3] = [
        (
            ADMIN.0,
            ADMIN.1,
            UserUpdate {
                disabled: Some(true),
                ..UserUpdate::default()
            },
        ),
        (
            AUDITOR.0,
            AUDITOR.1,
            UserUpdate {
                password: Some(Some(PasswordHash::hash("a-new-password").unwrap())),
                ..UserUpdate::default()
            },
        ),
        (
            USER.0,
            USER.1,
            UserUpdate {
                roles: Some(vec!["admin".into()]),
                ..UserUpdate::default()
            },
        ),
    ];
    for (name, password, change) in changes {
        let first = web.login(name, password).await;
        let second = web.login(name, password).await;
        assert_eq!(me(&first).await.unwrap().status(), 200, "{name}");
        web.directory.update_user(name, &change).await.unwrap();
        for login in [&first, &second] {
            let res = me(login).await.unwrap();
            assert_eq!(res.status(), 401, "{name} after {change:?}");
        }
    }
    // A user deleted outright.
    let tom_pw = TOTP_ADMIN.1;
    let code = web.totp.code_at(now()).unwrap();
    let res = web.try_login(TOTP_ADMIN.0, tom_pw, Some(&code)).await;
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    web.directory.delete_user(TOTP_ADMIN.0).await.unwrap();
    let res = web
        .get("/ui/api/sessions")
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        audit(&web)
            .await
            .iter()
            .any(|(_, _, d)| d.contains("ended") && d.contains("removed, disabled or changed"))
    );
    web.stop().await;
}

/// L1: behind a reverse proxy every login came from the proxy's address, so five wrong
/// passwords from anyone locked everybody out. With the proxy trusted, the lockout counts
/// per client address the proxy forwards; from an untrusted peer the header counts for
/// nothing.
#[tokio::test]
async fn behind_a_trusted_proxy_the_lockout_counts_per_client() {
    let login_from = |web: &Web, client: &str, user: &str, password: &str| {
        web.post("/ui/api/login")
            .header("x-forwarded-for", client.to_owned())
            .body(serde_json::json!({"user": user, "password": password}).to_string())
            .send()
    };
    let web = start_with(
        |s| s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()],
        |c| c.max_failed_logins = 3,
        |d| d,
    )
    .await;
    for i in 0..3 {
        let res = login_from(&web, "203.0.113.5", &format!("nobody{i}"), "x")
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let res = login_from(&web, "203.0.113.5", ADMIN.0, ADMIN.1)
        .await
        .unwrap();
    assert_eq!(res.status(), 429, "the guessing client is locked out");
    let res = login_from(&web, "203.0.113.6", ADMIN.0, ADMIN.1)
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "another client behind the proxy is not");
    assert!(
        audit(&web)
            .await
            .iter()
            .any(|(_, actor, _)| actor == "web:nobody0@203.0.113.5")
    );
    web.stop().await;

    // Without trusting the peer, a forged header changes nothing.
    let web = start(|c| c.max_failed_logins = 3).await;
    for i in 0..3 {
        let res = login_from(&web, &format!("203.0.113.{i}"), &format!("nobody{i}"), "x")
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let res = login_from(&web, "203.0.113.99", ADMIN.0, ADMIN.1)
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    web.stop().await;
}

/// A six-digit code that is none of `web.totp`'s codes around now.
fn wrong_code(web: &Web) -> String {
    let t = now();
    let near: Vec<String> = (0..5)
        .map(|i| web.totp.code_at(t - 60 + i * 30).unwrap())
        .collect();
    (0..6u32)
        .map(|i| format!("{:06}", i * 111_111))
        .find(|c| !near.contains(c))
        .unwrap()
}

/// L3: a TOTP code could be used again within its window (shoulder surfing, a captured
/// login), and the login answered "enter your code" only once the password was right, so
/// the password could be guessed without the second factor.
#[tokio::test]
async fn a_totp_code_logs_in_once_and_no_answer_tells_the_password_was_right() {
    let web = start(|c| c.max_failed_logins = 100).await;
    let body = |res: reqwest::Response| async move {
        let status = res.status().as_u16();
        let v: Value = res.json().await.unwrap();
        (status, v["Code"].clone(), v["Content"].clone())
    };
    // Without a code: the same answer whether the password is right or not.
    let right = body(web.try_login(TOTP_ADMIN.0, TOTP_ADMIN.1, None).await).await;
    let wrong = body(web.try_login(TOTP_ADMIN.0, "wrong", None).await).await;
    assert_eq!(right.1, "totp-required");
    assert_eq!(right, wrong);
    // With a code: one error for a wrong password and for a wrong code.
    let code = web.totp.code_at(now()).unwrap();
    let bad_password = body(web.try_login(TOTP_ADMIN.0, "wrong", Some(&code)).await).await;
    let bad_code = body(
        web.try_login(TOTP_ADMIN.0, TOTP_ADMIN.1, Some(&wrong_code(&web)))
            .await,
    )
    .await;
    assert_eq!(bad_password.0, 401);
    assert_eq!(bad_password, bad_code);
    // The right code logs in once; replayed, it is refused with that same error.
    let res = web.try_login(TOTP_ADMIN.0, TOTP_ADMIN.1, Some(&code)).await;
    assert_eq!(res.status(), 200);
    let replay = body(web.try_login(TOTP_ADMIN.0, TOTP_ADMIN.1, Some(&code)).await).await;
    assert_eq!(replay, bad_code);
    web.stop().await;
}

/// L4: every request without a key was one audit row and one SIEM event, so anyone who can
/// reach the port could fill the audit trail at line rate. Now one row per client and
/// window, then one summary with the exact count.
#[tokio::test]
async fn unauthenticated_refusals_are_audited_once_per_client_with_a_count() {
    let web = start(|_| {}).await;
    for _ in 0..30 {
        let res = web
            .get("/api/services/v1/secureaccessgateway/GetPAMSettings")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    for _ in 0..10 {
        let res = web.post("/ui/api/logout").send().await.unwrap();
        assert_eq!(res.status(), 401);
    }
    let anonymous = |rows: &[(AuditAction, String, String)]| -> Vec<String> {
        rows.iter()
            .filter(|(a, actor, _)| {
                *a == AuditAction::Refused
                    && (actor.starts_with("anonymous@") || actor.starts_with("web@"))
            })
            .map(|(_, _, d)| d.clone())
            .collect()
    };
    let rows = anonymous(&audit(&web).await);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].contains("GetPAMSettings"), "{rows:?}");
    let cp = web.cp.clone();
    web.stop().await;
    // At shutdown (or once the window is over) the rest are summed up in one row.
    let rows: Vec<String> = cp
        .engine()
        .store()
        .audit_events(&AuditQuery::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.record.detail)
        .filter(|d| d.contains("unauthenticated requests refused"))
        .collect();
    assert_eq!(
        rows,
        vec!["39 more unauthenticated requests refused from 127.0.0.1 in the last 60 s"]
    );
}

/// L14: the UI never looked at `Host`, so a page whose own name was made to resolve to the
/// UI's address (DNS rebinding) was same-origin with it: it could log in with a guessed or
/// known password and read everything, its `Origin` matching its `Host`.
#[tokio::test]
async fn the_ui_answers_only_to_host_names_it_knows() {
    let web = start(|c| {
        c.allowed_hosts = vec!["psm.example.com".into()];
        c.public_origins = vec!["https://psm-public.example.com:8443".into()];
    })
    .await;
    let port = web.url.rsplit(':').next().unwrap().to_owned();
    let evil = format!("rebind.attacker.example:{port}");
    let res = web
        .http
        .post(format!("{}/ui/api/login", web.url))
        .header("host", &evil)
        .header("origin", format!("http://{evil}"))
        .header("content-type", "application/json")
        .body(serde_json::json!({"user": ADMIN.0, "password": ADMIN.1}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 421);
    assert!(res.headers().get("set-cookie").is_none());
    let res = web.get("/ui/").header("host", &evil).send().await.unwrap();
    assert_eq!(res.status(), 421);
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "psm.example.com".to_owned(),
        "PSM.example.com.:443".to_owned(),
        "psm-public.example.com:8443".to_owned(),
    ] {
        let res = web.get("/ui/").header("host", &host).send().await.unwrap();
        assert_eq!(res.status(), 200, "{host}");
    }
    // The API (keys, not cookies) is not the UI's to refuse.
    let res = web
        .get("/healthz")
        .header("host", &evil)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    web.stop().await;
}

/// Reads until the server closes the connection; what it sent before.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    out
}

/// M10: a client that opens a connection and never finishes its headers held it forever
/// (no hyper timer), so a few hundred such sockets starved everyone.
#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let web = start_with(
        |s| s.header_read_timeout = Duration::from_secs(1),
        |_| {},
        |d| d,
    )
    .await;
    let addr = web.url.trim_start_matches("http://").to_owned();
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let answer = read_to_close(&mut slow).await;
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // And an idle connection that never sends a byte.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    read_to_close(&mut idle).await;
    web.stop().await;
}

async fn health_over(addr: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may already have closed a refused connection: a failed write is an answer.
    let _ = s
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut out)).await;
    out
}

/// M10: there was no cap on open connections; now past `max_connections` (and past
/// `max_connections_per_peer` from one address) a connection is closed unanswered, and a
/// slot frees as soon as a connection ends.
#[tokio::test]
async fn connections_beyond_the_caps_are_closed_unanswered() {
    for (total, per_peer) in [(2, 100), (100, 2)] {
        let web = start_with(
            |s| {
                s.max_connections = total;
                s.max_connections_per_peer = per_peer;
            },
            |_| {},
            |d| d,
        )
        .await;
        let addr = web.url.trim_start_matches("http://").to_owned();
        let first = TcpStream::connect(&addr).await.unwrap();
        let _second = TcpStream::connect(&addr).await.unwrap();
        let refused = health_over(&addr).await;
        assert!(
            refused.is_empty(),
            "caps {total}/{per_peer}: {}",
            String::from_utf8_lossy(&refused)
        );
        drop(first);
        let mut tries = 0;
        loop {
            if health_over(&addr).await.starts_with(b"HTTP/1.1 200") {
                break;
            }
            tries += 1;
            assert!(tries < 200, "the freed slot was never reused");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        web.stop().await;
    }
}

/// M10 over TLS: a client that completes the handshake and then sends nothing was held
/// forever too (hyper's auto builder waits for the first bytes without a deadline); the
/// protocol now comes from ALPN, so hyper's header-read timer runs from the start.
#[tokio::test]
async fn over_tls_a_client_that_sends_nothing_after_the_handshake_is_disconnected() {
    use psm_core::clock::SystemClock;
    use psm_core::store::MemoryStore;
    use psm_core::vault::{Keyring, MasterKey, MemoryVaultStore, PamSettings, Vault, VaultConfig};
    use psm_core::{Engine, EngineConfig, LocalControlPlane};
    use psm_server::{ApiKeys, Server, ServerConfig, TlsSettings};

    let engine = Engine::new(
        Arc::new(MemoryStore::new()),
        Arc::new(SystemClock),
        EngineConfig::default(),
    );
    let vault = Vault::new(
        Arc::new(MemoryVaultStore::new()),
        Keyring::new(MasterKey::generate().unwrap()),
        engine.clone(),
        VaultConfig::default(),
    );
    let cp = LocalControlPlane::new(engine, vault, PamSettings::default());
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let tls = TlsSettings {
        cert_chain_pem: generated.cert.pem().into_bytes(),
        key_pem: Secret::new(generated.signing_key.serialize_pem().into_bytes()),
        client_ca_pem: None,
        client_principals: std::collections::HashMap::new(),
    };
    let data = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(
        cp,
        ApiKeys::new(),
        data.path().join("artifacts"),
        ServerConfig {
            header_read_timeout: Duration::from_secs(1),
            ..ServerConfig::default()
        },
    )
    .start(listener, Some(&tls))
    .unwrap();
    for alpn in [None, Some("h2"), Some("http/1.1")] {
        let mut args = vec![
            "s_client".to_owned(),
            "-connect".to_owned(),
            server.addr().to_string(),
            "-quiet".to_owned(),
        ];
        if let Some(p) = alpn {
            args.extend(["-alpn".to_owned(), p.to_owned()]);
        }
        // stdin stays open and silent: the client says nothing after the handshake.
        let mut client = tokio::process::Command::new("openssl")
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the openssl command is needed for this test");
        let ended = tokio::time::timeout(Duration::from_secs(60), client.wait()).await;
        assert!(
            ended.is_ok(),
            "ALPN {alpn:?}: the server kept a silent TLS connection open"
        );
    }
    server.stop().await;
}
