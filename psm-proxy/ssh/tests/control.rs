//! Interactive sessions, second factor, live control (terminate, expiry, shutdown) and bad
//! input, driven by asyncssh and raw sockets against a real sshd behind the gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use psm_core::directory::{DirectoryAdmin, TotpSecret, UserUpdate};
use psm_core::{
    CoreError, HeartbeatReply, NewSession, PrivSession, ProcessInstance, SessionId,
    SessionLifecycle, Stage,
};
use psm_proxy::{HostKeyCheck, StaticTarget, TargetCredential, TargetSecret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(90);

fn python() -> Command {
    need("python3", "python3 (with pip package asyncssh)");
    let ok = Command::new("python3")
        .args(["-c", "import asyncssh"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python3 module asyncssh is missing: pip install asyncssh"
    );
    Command::new("python3")
}

fn client(gw: &Gateway, mode: &str, extra: &str) -> Command {
    let mut c = python();
    c.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scripts/client.py"
    ))
    .arg(mode)
    .arg(gw.addr.port().to_string())
    .arg(&gw.known_hosts)
    .arg(&gw.user_key);
    if !extra.is_empty() {
        c.arg(extra);
    }
    c
}

async fn ok(gw: &Gateway, mode: &str, extra: &str) -> String {
    let out = run(client(gw, mode, extra), LIMIT).await;
    let stdout = text(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("OK"),
        "{mode}: {stdout} {}",
        text(&out.stderr)
    );
    stdout
}

async fn wait_stage(gw: &Gateway, stage: Stage) -> PrivSession {
    for _ in 0..150 {
        if let Some(s) = gw.sessions().await.into_iter().next()
            && s.stage == stage
        {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no session reached {stage}: {:?}", gw.sessions().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pty_resize_reaches_the_target_and_menu_picks_a_target() {
    let sshd = Sshd::start();
    let gw = Gateway::start(&sshd).await;
    ok(&gw, "resize", "").await;
    let events = gw.tap.events();
    assert!(
        events
            .iter()
            .any(|e| e.contains("WindowChange(TermSize { cols: 132, rows: 43 })")),
        "{events:?}"
    );
    assert!(gw.tap.output_text().contains("43 132"));
    ok(&gw, "menu", "").await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_second_factor_by_keyboard_interactive() {
    let sshd = Sshd::start();
    let gw = Gateway::start(&sshd).await;
    let secret = TotpSecret::generate();
    gw.directory
        .update_user(
            "alice",
            &UserUpdate {
                totp: Some(Some(secret.clone())),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    ok(&gw, "totp", &secret.code_at(now).unwrap()).await;
    ok(&gw, "totp-wrong", "").await;
    // Key alone is no longer enough.
    let out = run(gw.ssh("alice+t1", &[], "true"), LIMIT).await;
    assert!(!out.status.success());
    gw.stop().await;
}

/// A directory that keeps its secrets (as the control plane does behind psm-client's
/// HttpDirectory): the gateway authenticates password and TOTP logins by asking it, never
/// by checking the record it read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_and_totp_checked_by_a_directory_that_keeps_its_secrets() {
    use std::sync::atomic::Ordering::SeqCst;
    need("sshpass", "sshpass");
    let sshd = Sshd::start();
    let remote = SecretsElsewhere::new(Arc::new(psm_core::directory::MemoryDirectory::new()));
    let gw = Gateway::start_with(
        &sshd,
        Options {
            secrets_elsewhere: Some(remote.clone()),
            ..Options::default()
        },
    )
    .await;
    let password_login =
        |password: &str| gw.ssh_password(password, "alice+t1", &[], "echo password-ok");
    let out = run(password_login(ALICE_PW), LIMIT).await;
    assert_eq!(
        text(&out.stdout).trim(),
        "password-ok",
        "{}",
        text(&out.stderr)
    );
    let out = run(password_login("wrong"), LIMIT).await;
    assert!(!out.status.success(), "a wrong password was accepted");
    assert!(remote.password_checks.load(SeqCst) >= 2);

    let secret = TotpSecret::generate();
    gw.directory
        .update_user(
            "alice",
            &UserUpdate {
                totp: Some(Some(secret.clone())),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    ok(&gw, "totp", &secret.code_at(now).unwrap()).await;
    ok(&gw, "totp-wrong", "").await;
    assert!(remote.totp_checks.load(SeqCst) >= 2);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_at_a_password_prompt_is_hidden_from_taps() {
    let sshd = Sshd::start();
    let gw = Gateway::start(&sshd).await;
    ok(&gw, "secret-prompt", "TypedSecret42").await;
    let input = gw.tap.input_text();
    assert!(!input.contains("TypedSecret42"), "{input}");
    assert!(
        input.contains("<hidden>") && input.contains("echo visible-after"),
        "{input}"
    );
    gw.stop().await;
}

async fn hold(gw: &Gateway) -> tokio::process::Child {
    let mut c = tokio::process::Command::from(client(gw, "hold", ""));
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = c.spawn().unwrap();
    let stdout = child.stdout.as_mut().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"READY\n") {
        let n = tokio::time::timeout(LIMIT, stdout.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "client ended before READY: {}", text(&line));
        line.push(byte[0]);
    }
    child
}

async fn closed_output(child: tokio::process::Child) -> String {
    let out = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let s = text(&out.stdout);
    assert!(s.contains("CLOSED"), "{s} {}", text(&out.stderr));
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_request_closes_the_session_with_a_notice() {
    let sshd = Sshd::start();
    let gw = Gateway::start(&sshd).await;
    let child = hold(&gw).await;
    let s = wait_stage(&gw, Stage::Connected).await;
    assert_eq!(gw.registry.list().len(), 1);
    gw.engine
        .request_termination(s.id, "admin", "policy violation")
        .await
        .unwrap();
    let out = closed_output(child).await;
    assert!(
        out.contains("session terminated: policy violation"),
        "{out}"
    );
    wait_stage(&gw, Stage::Ended).await;
    assert!(gw.registry.list().is_empty());
    assert!(
        gw.tap
            .events()
            .iter()
            .any(|e| e.contains("end Terminated(\"policy violation\")"))
    );

    // Through the registry too (the live-control hook).
    let child = hold(&gw).await;
    let id = loop {
        if let Some(i) = gw.registry.list().first() {
            break i.id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(gw.registry.terminate(id, "by registry"));
    assert!(closed_output(child).await.contains("by registry"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_expiry_warns_then_ends_and_shutdown_ends_cleanly() {
    let sshd = Sshd::start();
    let gw = Gateway::start_with(
        &sshd,
        Options {
            configure: Box::new(|c| c.expiry_warning = Duration::from_secs(2)),
            ..Options::default()
        },
    )
    .await;
    gw.targets.insert(
        "t1",
        StaticTarget {
            host: "127.0.0.1".into(),
            port: sshd.port,
            host_key: HostKeyCheck::Pinned(vec![sshd.host_pub.clone()]),
            credential: TargetCredential {
                account: TARGET_USER.into(),
                secret: TargetSecret::Password(target_password().into()),
            },
            lifetime: Some(Duration::from_secs(5)),
        },
    );
    let child = hold(&gw).await;
    let out = closed_output(child).await;
    assert!(out.contains("expires in"), "{out}");
    assert!(out.contains("has expired"), "{out}");
    wait_stage(&gw, Stage::Ended).await;
    assert!(
        gw.tap.events().iter().any(|e| e == "end CheckoutExpired"),
        "{:?}",
        gw.tap.events()
    );

    gw.targets.insert(
        "t1",
        StaticTarget {
            host: "127.0.0.1".into(),
            port: sshd.port,
            host_key: HostKeyCheck::Pinned(vec![sshd.host_pub.clone()]),
            credential: TargetCredential {
                account: TARGET_USER.into(),
                secret: TargetSecret::Password(target_password().into()),
            },
            lifetime: None,
        },
    );
    let child = hold(&gw).await;
    let tap = gw.tap.clone();
    let engine = gw.engine.clone();
    gw.stop().await;
    let out = closed_output(child).await;
    assert!(out.contains("shutting down"), "{out}");
    let sessions = engine.list(&Default::default()).await.unwrap();
    assert!(
        sessions.iter().all(|s| s.stage == Stage::Ended),
        "{sessions:?}"
    );
    assert!(tap.events().iter().any(|e| e == "end GatewayShutdown"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_host_key_is_refused_with_a_clear_message() {
    let sshd = Sshd::start();
    let gw = Gateway::start(&sshd).await;
    gw.targets.insert(
        "t1",
        StaticTarget {
            host: "127.0.0.1".into(),
            port: sshd.port,
            host_key: HostKeyCheck::Pinned(vec![
                "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
            ]),
            credential: TargetCredential {
                account: TARGET_USER.into(),
                secret: TargetSecret::Password(target_password().into()),
            },
            lifetime: None,
        },
    );
    let out = run(gw.ssh("alice+t1", &[], "true"), LIMIT).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("does not match its pinned key"),
        "{}",
        text(&out.stderr)
    );
    wait_stage(&gw, Stage::Ended).await;

    // Trust on first use writes the key, then holds it.
    let kh = gw.dir.path().join("target_known_hosts");
    gw.targets.insert(
        "t1",
        StaticTarget {
            host: "127.0.0.1".into(),
            port: sshd.port,
            host_key: HostKeyCheck::KnownHosts {
                path: kh.clone(),
                learn: true,
            },
            credential: TargetCredential {
                account: TARGET_USER.into(),
                secret: TargetSecret::Password(target_password().into()),
            },
            lifetime: None,
        },
    );
    let out = run(gw.ssh("alice+t1", &[], "echo tofu"), LIMIT).await;
    assert_eq!(text(&out.stdout).trim(), "tofu", "{}", text(&out.stderr));
    assert!(
        std::fs::read_to_string(&kh)
            .unwrap()
            .contains(sshd.host_pub.split_whitespace().nth(1).unwrap())
    );
    gw.stop().await;
}

/// A control plane that is down.
struct Down;

#[async_trait]
impl SessionLifecycle for Down {
    async fn open_session(&self, _n: NewSession) -> Result<PrivSession, CoreError> {
        Err(CoreError::Unavailable {
            message: "connection refused".into(),
            source: None,
        })
    }
    async fn heartbeat(
        &self,
        _s: SessionId,
        _b: &ProcessInstance,
    ) -> Result<HeartbeatReply, CoreError> {
        Err(CoreError::Unavailable {
            message: "connection refused".into(),
            source: None,
        })
    }
    async fn update_session(&self, _s: SessionId) -> Result<(), CoreError> {
        Ok(())
    }
    async fn end_session(&self, _s: SessionId, _b: &ProcessInstance) -> Result<(), CoreError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_control_plane_is_explained() {
    let sshd = Sshd::start();
    let gw = Gateway::start_with(
        &sshd,
        Options {
            control_plane: Some(Arc::new(Down)),
            ..Options::default()
        },
    )
    .await;
    let out = run(gw.ssh("alice+t1", &[], "true"), LIMIT).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("control plane is unreachable"),
        "{}",
        text(&out.stderr)
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_stalls_floods_and_huge_requests_leave_others_served() {
    let sshd = Sshd::start();
    let gw = Gateway::start_with(
        &sshd,
        Options {
            configure: Box::new(|c| {
                c.auth_timeout = Duration::from_secs(2);
                c.max_unauthenticated = 4;
                c.max_channels = 16;
            }),
            ..Options::default()
        },
    )
    .await;
    // Garbage instead of an SSH identification.
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff\xfe garbage")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(LIMIT, s.read_to_end(&mut buf))
        .await
        .expect("garbage connection closed");
    // Garbage after a valid identification.
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"SSH-2.0-evil\r\n").await.unwrap();
    s.write_all(&[0xffu8; 70000]).await.unwrap_or(());
    let _ = tokio::time::timeout(LIMIT, s.read_to_end(&mut Vec::new()))
        .await
        .expect("closed");

    // Stalled handshakes fill the unauthenticated slots; one more is dropped at once; they
    // all time out, and then logins work again.
    let mut stalled = Vec::new();
    for _ in 0..4 {
        stalled.push(tokio::net::TcpStream::connect(gw.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let mut first = Vec::new();
    let n = tokio::time::timeout(LIMIT, extra.read_to_end(&mut first))
        .await
        .expect("dropped")
        .unwrap_or(0);
    assert!(
        !text(&first[..n]).contains("SSH-2.0"),
        "over the limit a connection gets no banner"
    );
    for mut st in stalled {
        let mut b = Vec::new();
        tokio::time::timeout(LIMIT, st.read_to_end(&mut b))
            .await
            .expect("stalled connection closed")
            .unwrap_or(0);
    }
    let out = run(gw.ssh("alice+t1", &[], "echo alive"), LIMIT).await;
    assert_eq!(text(&out.stdout).trim(), "alive", "{}", text(&out.stderr));
    // The authentication deadline is for logging in only: a session lives past it.
    let out = run(gw.ssh("alice+t1", &[], "sleep 5; echo still-here"), LIMIT).await;
    assert_eq!(
        text(&out.stdout).trim(),
        "still-here",
        "a session outlived the 2 s authentication timeout: {}",
        text(&out.stderr)
    );

    // Thousands of channels: capped, the connection and others still work.
    let out = ok(&gw, "channels", "2000").await;
    assert!(
        out.contains("opened=16") && out.contains("refused=1984"),
        "{out}"
    );
    // Enormous window sizes and env values.
    ok(&gw, "huge-requests", "").await;

    // A client disconnecting mid-session leaves no session Connected.
    let mut c = tokio::process::Command::from(gw.ssh("alice+t1", &[], "sleep 30"));
    c.kill_on_drop(true);
    let mut child = c.spawn().unwrap();
    for _ in 0..100 {
        if gw
            .sessions()
            .await
            .iter()
            .any(|s| s.stage == Stage::Connected)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().await.unwrap();
    for _ in 0..100 {
        if gw
            .sessions()
            .await
            .iter()
            .all(|s| s.stage != Stage::Connected)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gw.sessions()
            .await
            .iter()
            .all(|s| s.stage != Stage::Connected)
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_traffic_until_resume() {
    let sshd = Sshd::start();
    let gw = Gateway::start(&sshd).await;
    let mut c = tokio::process::Command::from(client(&gw, "pause", ""));
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = c.spawn().unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    use tokio::io::AsyncBufReadExt;
    tokio::time::timeout(LIMIT, stdout.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(line.trim(), "READY");
    let id = gw.registry.list()[0].id;
    assert!(gw.registry.pause(id));
    let mut viewer = gw.registry.join(id).unwrap();
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"go\n")
        .await
        .unwrap();
    line.clear();
    // Held: nothing comes back while paused.
    let held = tokio::time::timeout(Duration::from_secs(2), stdout.read_line(&mut line)).await;
    assert!(held.is_err(), "output passed a paused session: {line}");
    assert!(gw.registry.resume(id));
    tokio::time::timeout(LIMIT, stdout.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(line.trim(), "GOT");
    // The viewer saw the pause, the resume and the output.
    let mut seen = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(2), viewer.recv()).await {
        seen.push(e);
        if seen.iter().any(|e| matches!(e, psm_proxy::LiveEvent::Output { bytes, .. } if String::from_utf8_lossy(bytes).contains("after-42"))) {
            break;
        }
    }
    assert!(
        seen.iter()
            .any(|e| matches!(e, psm_proxy::LiveEvent::State(s) if !s.paused && s.by == "admin")),
        "{seen:?}"
    );
    let _ = child.wait().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_never_answers_times_out_with_a_message() {
    let sshd = Sshd::start();
    let gw = Gateway::start_with(
        &sshd,
        Options {
            configure: Box::new(|c| c.target_connect_timeout = Duration::from_secs(2)),
            ..Options::default()
        },
    )
    .await;
    // Accepts TCP, never speaks SSH.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    gw.targets.insert(
        "t1",
        StaticTarget {
            host: "127.0.0.1".into(),
            port,
            host_key: HostKeyCheck::Pinned(vec![sshd.host_pub.clone()]),
            credential: TargetCredential {
                account: TARGET_USER.into(),
                secret: TargetSecret::Password(target_password().into()),
            },
            lifetime: None,
        },
    );
    let out = run(gw.ssh("alice+t1", &[], "true"), LIMIT).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no SSH answer within 2 s"),
        "{}",
        text(&out.stderr)
    );
    wait_stage(&gw, Stage::Ended).await;
    // Others are still served meanwhile.
    gw.targets.insert(
        "t1",
        StaticTarget {
            host: "127.0.0.1".into(),
            port: sshd.port,
            host_key: HostKeyCheck::Pinned(vec![sshd.host_pub.clone()]),
            credential: TargetCredential {
                account: TARGET_USER.into(),
                secret: TargetSecret::Password(target_password().into()),
            },
            lifetime: None,
        },
    );
    let out = run(gw.ssh("alice+t1", &[], "echo fine"), LIMIT).await;
    assert_eq!(text(&out.stdout).trim(), "fine");
    gw.stop().await;
}
