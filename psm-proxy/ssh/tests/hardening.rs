//! Issue 17's SSH findings, as attacks with real OpenSSH clients and sshd targets: SHA-1
//! RSA signatures (L10), user enumeration through keyboard-interactive (L2), one address
//! locking everyone out before authentication (M10), and `ssh -L` (M4: off by default,
//! destinations allow-listed, channels capped, endpoints and byte counts recorded).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use psm_core::directory::{AuthorizedKey, DirectoryAdmin, NewUser};
use psm_proxy::record::{RecorderConfig, RecorderFactory};
use psm_proxy::{HostKeyCheck, StaticTarget, TargetCredential, TargetSecret};
use psm_recording::{EventKind, ReadOptions, Reader, SigningKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(60);

fn rsa_keygen(path: &std::path::Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signing_with_sha1_ssh_rsa_is_refused_and_rsa_sha2_is_accepted() {
    let sshd = Sshd::start();
    let gw = Gateway::start(&sshd).await;
    let key = gw.dir.path().join("alice-rsa");
    rsa_keygen(&key);
    let line = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    gw.directory
        .add_key("alice", &AuthorizedKey::parse(line.trim()).unwrap())
        .await
        .unwrap();
    let login = |algorithms: &str| {
        let mut c = Command::new("ssh");
        c.args(gw.ssh_opts())
            .args(["-o", "BatchMode=yes", "-o"])
            .arg(format!("PubkeyAcceptedAlgorithms={algorithms}"))
            .args(["-o", "PreferredAuthentications=publickey", "-i"])
            .arg(&key)
            .args([
                "-p",
                &gw.addr.port().to_string(),
                "alice+t1@127.0.0.1",
                "echo in",
            ]);
        c
    };
    let sha1 = run(login("ssh-rsa"), LIMIT).await;
    assert!(
        !sha1.status.success() && text(&sha1.stderr).contains("Permission denied"),
        "an ssh-rsa (SHA-1) signature logged in: {}",
        text(&sha1.stderr)
    );
    for sha2 in ["rsa-sha2-512", "rsa-sha2-256"] {
        let out = run(login(sha2), LIMIT).await;
        assert_eq!(
            text(&out.stdout).trim(),
            "in",
            "{sha2}: {}",
            text(&out.stderr)
        );
    }
    gw.stop().await;
}

/// A private sshd whose only host key is RSA, offered with the signature algorithm given.
struct RsaSshd {
    port: u16,
    host_pub: String,
    _child: Kill,
    _dir: tempfile::TempDir,
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl RsaSshd {
    fn start(host_key_algorithm: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        rsa_keygen(&d.join("host"));
        let port = free_port();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host\nPidFile {d}/sshd.pid\n\
                 HostKeyAlgorithms {host_key_algorithm}\nPasswordAuthentication yes\n\
                 KbdInteractiveAuthentication no\nUsePAM no\n",
                d = d.display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_port(port);
        let host_pub = std::fs::read_to_string(d.join("host.pub"))
            .unwrap()
            .trim()
            .to_owned();
        Self {
            port,
            host_pub,
            _child: Kill(child),
            _dir: dir,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_signing_its_host_key_with_sha1_ssh_rsa_is_refused() {
    let sshd = Sshd::start();
    let gw = Gateway::start(&sshd).await;
    target_password();
    let sha1 = RsaSshd::start("ssh-rsa");
    let sha2 = RsaSshd::start("rsa-sha2-512");
    for (name, t) in [("rsa-sha1", &sha1), ("rsa-sha2", &sha2)] {
        gw.targets.insert(
            name,
            StaticTarget {
                host: "127.0.0.1".into(),
                port: t.port,
                host_key: HostKeyCheck::Pinned(vec![t.host_pub.clone()]),
                credential: TargetCredential {
                    account: TARGET_USER.into(),
                    secret: TargetSecret::Password(target_password().into()),
                },
                lifetime: None,
            },
        );
        gw.directory.grant("ops", name).await.unwrap();
    }
    let refused = run(gw.ssh("alice+rsa-sha1", &[], "echo reached"), LIMIT).await;
    assert!(
        !text(&refused.stdout).contains("reached"),
        "a target whose host key signs with SHA-1 was reached: {}",
        text(&refused.stderr)
    );
    let ok = run(gw.ssh("alice+rsa-sha2", &[], "echo reached"), LIMIT).await;
    assert_eq!(text(&ok.stdout).trim(), "reached", "{}", text(&ok.stderr));
    gw.stop().await;
}

/// `ssh` with keyboard-interactive only, answering every prompt through an askpass script
/// that notes the prompt: what a user (or an attacker enumerating names) sees.
async fn keyboard_interactive(gw: &Gateway, login: &str, tag: &str) -> (Vec<String>, i32) {
    let dir = gw.dir.path();
    let log = dir.join(format!("prompts-{tag}"));
    let script = dir.join(format!("askpass-{tag}"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" >> {}\necho not-the-password\n",
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut c = Command::new("ssh");
    c.args(gw.ssh_opts())
        .args([
            "-o",
            "PreferredAuthentications=keyboard-interactive",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-p",
            &gw.addr.port().to_string(),
            &format!("{login}@127.0.0.1"),
            "true",
        ])
        .env("SSH_ASKPASS", &script)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0");
    let out = run(c, LIMIT).await;
    let prompts = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        // OpenSSH prefixes "(LOGIN@HOST) "; what the server sent follows.
        .map(|l| l.rsplit(") ").next().unwrap_or(l).to_owned())
        .collect();
    (prompts, out.status.code().unwrap_or(-1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_interactive_prompts_alike_whether_or_not_the_user_exists() {
    let sshd = Sshd::start();
    let gw = Gateway::start(&sshd).await;
    // bob exists but has no password (keys only): he must not stand out either.
    gw.directory
        .create_user(&NewUser {
            name: "bob".parse().unwrap(),
            roles: vec!["ops".into()],
            ..NewUser::default()
        })
        .await
        .unwrap();
    let (alice, alice_rc) = keyboard_interactive(&gw, "alice+t1", "alice").await;
    assert_eq!(alice, vec!["Password: "], "an existing user is asked");
    for (login, tag) in [
        ("nosuchuser+t1", "nobody"),
        ("bob+t1", "bob"),
        ("n0-such", "bare"),
    ] {
        let (prompts, rc) = keyboard_interactive(&gw, login, tag).await;
        assert_eq!(
            (prompts, rc),
            (alice.clone(), alice_rc),
            "{login} is told apart from an existing user"
        );
    }
    gw.stop().await;
}

/// Opens `n` TCP connections from `source` to `gw` and reads what each says first: how
/// many got the SSH banner (the others were closed before it). The connections stay open.
async fn idle_connections(
    source: &str,
    gw: SocketAddr,
    n: usize,
) -> (usize, Vec<tokio::net::TcpStream>) {
    let mut held = Vec::new();
    let mut greeted = 0;
    for _ in 0..n {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let Ok(mut s) = socket.connect(gw).await else {
            continue;
        };
        let mut first = [0u8; 4];
        if tokio::time::timeout(LIMIT, s.read_exact(&mut first))
            .await
            .is_ok_and(|r| r.is_ok())
            && &first == b"SSH-"
        {
            greeted += 1;
        }
        held.push(s);
    }
    (greeted, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_one_address_do_not_lock_out_everyone_else() {
    let sshd = Sshd::start();
    let gw = Gateway::start_with(
        &sshd,
        Options {
            // The attacker's connections stay unauthenticated for the whole test.
            configure: Box::new(|c| c.auth_timeout = Duration::from_secs(600)),
            ..Options::default()
        },
    )
    .await;
    // 300 idle connections from 127.0.0.2, more than the gateway's 256 pre-auth slots.
    let (greeted, _held) = idle_connections("127.0.0.2", gw.addr, 300).await;
    assert!(
        greeted <= 10,
        "one address held {greeted} unauthenticated connections"
    );
    // alice, from 127.0.0.1, still logs in.
    let out = run(gw.ssh("alice+t1", &[], "echo still-in"), LIMIT).await;
    assert_eq!(
        text(&out.stdout).trim(),
        "still-in",
        "{}",
        text(&out.stderr)
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_whose_connections_keep_timing_out_is_refused_for_a_while() {
    let sshd = Sshd::start();
    let gw = Gateway::start_with(
        &sshd,
        Options {
            configure: Box::new(|c| {
                // Long enough for alice's login below on a loaded machine; the idle
                // connections wait it out.
                c.auth_timeout = Duration::from_secs(5);
                c.source_penalty_after = 2;
                c.source_penalty = Some(Duration::from_secs(3600));
            }),
            ..Options::default()
        },
    )
    .await;
    let (greeted, held) = idle_connections("127.0.0.3", gw.addr, 2).await;
    assert_eq!(greeted, 2);
    // Wait for the gateway to close both (authentication timed out).
    for mut s in held {
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(LIMIT, s.read_to_end(&mut rest)).await;
    }
    let (greeted, _) = idle_connections("127.0.0.3", gw.addr, 1).await;
    assert_eq!(greeted, 0, "a penalised source was served");
    let out = run(gw.ssh("alice+t1", &[], "echo still-in"), LIMIT).await;
    assert_eq!(
        text(&out.stdout).trim(),
        "still-in",
        "{}",
        text(&out.stderr)
    );
    gw.stop().await;
}

/// An echo service on loopback, where the target (on the same host) can reach it.
async fn echo_service() -> u16 {
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

/// `ssh -W HOST:PORT` through the gateway, sending `payload`: what came back.
async fn stdio_forward(gw: &Gateway, dest: &str, payload: &[u8]) -> (Vec<u8>, String) {
    let out = run_with_stdin(
        gw.ssh("alice+t1", &["-W", dest], ""),
        payload.to_vec(),
        LIMIT,
    )
    .await;
    (out.stdout, text(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_forwarding_is_off_by_default_and_then_reaches_only_allowed_destinations() {
    let sshd = Sshd::start();
    let echo = echo_service().await;
    let gw = Gateway::start(&sshd).await;
    let (back, err) = stdio_forward(&gw, &format!("127.0.0.1:{echo}"), b"ping").await;
    assert!(back.is_empty(), "ssh -W went through by default: {err}");
    assert!(err.contains("prohibited"), "{err}");
    gw.stop().await;

    let gw = Gateway::start_with(
        &sshd,
        Options {
            configure: Box::new(|c| c.allow_local_forwarding = true),
            ..Options::default()
        },
    )
    .await;
    // The default allow-list: the target's own loopback, as written.
    let (back, err) = stdio_forward(&gw, &format!("127.0.0.1:{echo}"), b"ping").await;
    assert_eq!(back, b"ping", "{err}");
    for elsewhere in [format!("127.1:{echo}"), "192.0.2.7:80".to_owned()] {
        let (back, err) = stdio_forward(&gw, &elsewhere, b"ping").await;
        assert!(
            back.is_empty() && err.contains("prohibited"),
            "{elsewhere}: {err}"
        );
    }
    gw.stop().await;

    // A per-target list: t1 may reach only the echo port.
    let gw = Gateway::start_with(
        &sshd,
        Options {
            configure: Box::new(move |c| {
                c.allow_local_forwarding = true;
                c.forward_destinations = vec![format!("t1/127.0.0.1:{echo}").parse().unwrap()];
            }),
            ..Options::default()
        },
    )
    .await;
    let (back, err) = stdio_forward(&gw, &format!("127.0.0.1:{echo}"), b"ping").await;
    assert_eq!(back, b"ping", "{err}");
    let (back, err) = stdio_forward(&gw, &format!("127.0.0.1:{}", sshd.port), b"x").await;
    assert!(back.is_empty() && err.contains("prohibited"), "{err}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_channels_count_against_the_channel_cap() {
    let sshd = Sshd::start();
    let echo = echo_service().await;
    let gw = Gateway::start_with(
        &sshd,
        Options {
            configure: Box::new(|c| {
                c.allow_local_forwarding = true;
                c.max_channels = 4;
            }),
            ..Options::default()
        },
    )
    .await;
    let local = free_port();
    let mut c = gw.ssh(
        "alice+t1",
        &["-N", "-L", &format!("{local}:127.0.0.1:{echo}")],
        "",
    );
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut ssh = tokio::process::Command::from(c)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Each connection to the local port is one direct-tcpip channel; four fit, each echoes.
    let mut open = Vec::new();
    for i in 0..4u8 {
        let mut s = None;
        for _ in 0..200 {
            if let Ok(c) = tokio::net::TcpStream::connect(("127.0.0.1", local)).await {
                s = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut s = s.expect("ssh -L listens");
        s.write_all(&[i]).await.unwrap();
        let mut b = [0u8; 1];
        tokio::time::timeout(LIMIT, s.read_exact(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b[0], i);
        open.push(s);
    }
    // The fifth is refused: ssh closes it without a byte.
    let mut fifth = tokio::net::TcpStream::connect(("127.0.0.1", local))
        .await
        .unwrap();
    let _ = fifth.write_all(b"x").await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(LIMIT, fifth.read_to_end(&mut rest)).await;
    assert!(
        rest.is_empty(),
        "a fifth forward channel opened past the cap of 4"
    );
    // Closing one frees its place.
    drop(open.pop());
    let mut again = None;
    for _ in 0..100 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", local))
            .await
            .unwrap();
        s.write_all(b"y").await.unwrap();
        let mut b = [0u8; 1];
        if matches!(
            tokio::time::timeout(LIMIT, s.read_exact(&mut b)).await,
            Ok(Ok(_))
        ) {
            again = Some(b[0]);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(again, Some(b'y'));
    let _ = ssh.kill().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_endpoints_and_byte_counts_are_recorded() {
    let sshd = Sshd::start();
    let echo = echo_service().await;
    let rec_dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let factory = RecorderFactory::new(RecorderConfig::new(
        rec_dir.path(),
        key.clone(),
        "psm-gateway/test gw-test",
    ));
    let gw = Gateway::start_with(
        &sshd,
        Options {
            configure: Box::new(|c| c.allow_local_forwarding = true),
            taps: Some(Arc::new(factory.clone())),
            ..Options::default()
        },
    )
    .await;
    let payload = vec![0x42u8; 100_000];
    let (back, err) = stdio_forward(&gw, &format!("127.0.0.1:{echo}"), &payload).await;
    assert_eq!(back.len(), payload.len(), "{err}");
    let id = gw.sessions().await[0].id;
    gw.stop().await;
    let mut reader = Reader::open(
        factory.path_of(id),
        ReadOptions {
            trusted_signers: vec![key.verifying_key()],
            full_scan: true,
            ..ReadOptions::default()
        },
    )
    .unwrap();
    let events: Vec<EventKind> = reader.events().map(|e| e.unwrap().kind).collect();
    assert!(
        events.iter().any(|e| matches!(e, EventKind::ChannelOpen {
            kind: psm_recording::ChannelKind::PortForward { host, port, .. }, ..
        } if host == "127.0.0.1" && *port == echo)),
        "{events:?}"
    );
    let counted = format!("local port forward 127.0.0.1:{echo} on channel");
    let marker = events.iter().find_map(|e| match e {
        EventKind::Marker { label } if label.starts_with(&counted) => Some(label.clone()),
        _ => None,
    });
    let marker = marker.unwrap_or_else(|| panic!("no byte counts in {events:?}"));
    assert!(
        marker.ends_with("100000 bytes to the target, 100000 bytes to the user"),
        "{marker}"
    );
    // The tunnel's content is not in the recording.
    assert!(!events.iter().any(|e| matches!(e,
        EventKind::Output { data, .. } if data.contains(&0x42))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_is_delayed_until_after_authentication() {
    let sshd = Sshd::start();
    let gw = Gateway::start(&sshd).await;
    // OpenSSH asks for zlib@openssh.com first; the gateway offers only that (never plain
    // zlib, which compresses before authentication).
    let out = run(
        gw.ssh(
            "alice+t1",
            &["-v", "-o", "Compression=yes"],
            "echo compressed-session",
        ),
        LIMIT,
    )
    .await;
    let err = text(&out.stderr);
    assert_eq!(text(&out.stdout).trim(), "compressed-session", "{err}");
    assert!(
        err.contains("compression: zlib@openssh.com"),
        "no delayed compression negotiated: {err}"
    );
    // AES-CTR with an encrypt-then-MAC MAC works too (OpenSSH picks an -etm MAC).
    let ctr = run(
        gw.ssh(
            "alice+t1",
            &["-o", "Compression=yes", "-o", "Ciphers=aes128-ctr"],
            "true",
        ),
        LIMIT,
    )
    .await;
    assert!(ctr.status.success(), "{}", text(&ctr.stderr));
    gw.stop().await;
}
