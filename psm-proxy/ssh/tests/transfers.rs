//! File transfers and forwarding through the gateway with real clients: scp (SFTP mode and
//! legacy `-O`), sftp, PuTTY's plink and pscp, and `ssh -L`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(300);

fn big_file(dir: &std::path::Path, name: &str, mib: usize) -> std::path::PathBuf {
    let p = dir.join(name);
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!("head -c {}M /dev/urandom > {}", mib, p.display()))
        .status()
        .unwrap();
    assert!(st.success());
    p
}

/// A path in /tmp the target account can write.
fn remote_path(tag: &str) -> String {
    format!("/tmp/psmgw-{tag}-{}.bin", uuid::Uuid::new_v4().simple())
}

async fn scp_round_trip(legacy: bool) {
    need("scp", "openssh-client");
    let sshd = Sshd::start();
    let gw = Gateway::start(&sshd).await;
    let local = big_file(gw.dir.path(), "up.bin", 100);
    let remote = remote_path(if legacy { "scp-O" } else { "scp" });
    let port = gw.addr.port().to_string();
    let mut up = Command::new("scp");
    up.args(gw.ssh_opts())
        .args(["-q", "-o", "BatchMode=yes", "-i"])
        .arg(&gw.user_key)
        .args(["-P", &port]);
    if legacy {
        up.arg("-O");
    }
    up.arg(&local).arg(format!("alice+t1@127.0.0.1:{remote}"));
    let out = run(up, LIMIT).await;
    assert!(out.status.success(), "upload: {}", text(&out.stderr));
    assert_eq!(
        sha256_file(std::path::Path::new(&remote)),
        sha256_file(&local),
        "uploaded bytes differ"
    );

    let back = gw.dir.path().join("down.bin");
    let mut down = Command::new("scp");
    down.args(gw.ssh_opts())
        .args(["-q", "-o", "BatchMode=yes", "-i"])
        .arg(&gw.user_key)
        .args(["-P", &port]);
    if legacy {
        down.arg("-O");
    }
    down.arg(format!("alice+t1@127.0.0.1:{remote}")).arg(&back);
    let out = run(down, LIMIT).await;
    assert!(out.status.success(), "download: {}", text(&out.stderr));
    assert_eq!(
        sha256_file(&back),
        sha256_file(&local),
        "downloaded bytes differ"
    );
    let _ = std::fs::remove_file(&remote);

    // The recording saw both transfers as file events.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = gw.tap.events();
    let proto = if legacy { "scp" } else { "sftp" };
    let files: Vec<&String> = events.iter().filter(|e| e.starts_with("file ")).collect();
    assert!(
        files.iter().any(|e| e.contains("ToTarget")
            && e.contains(&remote)
            && e.contains(" 104857600 ")
            && e.contains(proto)),
        "upload event missing: {files:?}"
    );
    assert!(
        files
            .iter()
            .any(|e| e.contains("ToUser") && e.contains(" 104857600 ") && e.contains(proto)),
        "download event missing: {files:?}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_100_mib_both_ways_sftp_mode() {
    scp_round_trip(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_100_mib_both_ways_legacy_mode() {
    scp_round_trip(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_lists_and_uploads() {
    need("sftp", "openssh-client");
    let sshd = Sshd::start();
    let gw = Gateway::start(&sshd).await;
    let dir = format!("/tmp/psmgw-sftp-{}", uuid::Uuid::new_v4().simple());
    std::fs::create_dir(&dir).unwrap();
    Command::new("chown")
        .args([TARGET_USER, &dir])
        .status()
        .unwrap();
    std::fs::write(format!("{dir}/existing.txt"), b"hello").unwrap();
    let local = gw.dir.path().join("up.txt");
    std::fs::write(&local, b"uploaded through PSM\n").unwrap();
    let batch = gw.dir.path().join("batch");
    std::fs::write(
        &batch,
        format!("cd {dir}\nput {} new.txt\nls -1\n", local.display()),
    )
    .unwrap();
    let mut c = Command::new("sftp");
    c.args(gw.ssh_opts())
        .args(["-o", "BatchMode=yes", "-i"])
        .arg(&gw.user_key)
        .args(["-P", &gw.addr.port().to_string(), "-b"])
        .arg(&batch)
        .arg("alice+t1@127.0.0.1");
    let out = run(c, LIMIT).await;
    let listing = text(&out.stdout);
    assert!(out.status.success(), "{listing} {}", text(&out.stderr));
    assert!(
        listing.contains("existing.txt") && listing.contains("new.txt"),
        "{listing}"
    );
    assert_eq!(
        std::fs::read(format!("{dir}/new.txt")).unwrap(),
        b"uploaded through PSM\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = gw.tap.events();
    assert!(
        events.iter().any(|e| e.contains("Subsystem(\"sftp\")")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("file") && e.contains("new.txt") && e.contains(" 21 sftp true")),
        "{events:?}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_port_forwarding_reaches_a_service_behind_the_target() {
    let sshd = Sshd::start();
    // Off by default (issue 17 M4): this gateway allows it.
    let gw = Gateway::start_with(
        &sshd,
        Options {
            configure: Box::new(|c| c.allow_local_forwarding = true),
            ..Options::default()
        },
    )
    .await;
    // An echo service the target can reach.
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let local_port = free_port();
    let mut c = gw.ssh(
        "alice+t1",
        &["-N", "-L", &format!("{local_port}:127.0.0.1:{echo_port}")],
        "",
    );
    c.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = tokio::process::Command::from(c)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stream = None;
    for _ in 0..200 {
        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", local_port)).await {
            stream = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut stream = stream.expect("ssh -L listens");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let payload = vec![0x5au8; 256 * 1024];
    stream.write_all(&payload).await.unwrap();
    let mut back = vec![0u8; payload.len()];
    tokio::time::timeout(Duration::from_secs(30), stream.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, payload);
    drop(stream);
    let _ = child.kill().await;
    let events = gw.tap.events();
    assert!(
        events
            .iter()
            .any(|e| e.contains("DirectTcpip") && e.contains(&echo_port.to_string())),
        "{events:?}"
    );

    // Policy can refuse it.
    gw.stop().await;
    let gw = Gateway::start_with(
        &sshd,
        Options {
            configure: Box::new(|c| c.allow_local_forwarding = false),
            ..Options::default()
        },
    )
    .await;
    let out = run(
        gw.ssh(
            "alice+t1",
            &[
                "-o",
                "ExitOnForwardFailure=yes",
                "-W",
                &format!("127.0.0.1:{echo_port}"),
            ],
            "",
        ),
        Duration::from_secs(60),
    )
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("prohibited") || text(&out.stderr).contains("open failed"),
        "{}",
        text(&out.stderr)
    );
    gw.stop().await;
}

fn putty_fingerprint(gw: &Gateway) -> String {
    gw.host_fingerprint.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn putty_plink_and_pscp() {
    need("plink", "putty-tools");
    need("pscp", "putty-tools");
    let sshd = Sshd::start();
    let gw = Gateway::start(&sshd).await;
    let port = gw.addr.port().to_string();
    let fp = putty_fingerprint(&gw);
    let mut c = Command::new("plink");
    c.args([
        "-ssh",
        "-batch",
        "-pw",
        ALICE_PW,
        "-hostkey",
        &fp,
        "-P",
        &port,
        "alice+t1@127.0.0.1",
        "echo plink-ok; exit 7",
    ]);
    let out = run(c, LIMIT).await;
    assert_eq!(
        text(&out.stdout).trim(),
        "plink-ok",
        "{}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(7));

    let local = big_file(gw.dir.path(), "putty.bin", 5);
    for mode in ["-scp", "-sftp"] {
        let remote = remote_path(&format!("pscp{mode}"));
        let mut up = Command::new("pscp");
        up.args([
            "-batch", "-q", mode, "-pw", ALICE_PW, "-hostkey", &fp, "-P", &port,
        ])
        .arg(&local)
        .arg(format!("alice+t1@127.0.0.1:{remote}"));
        let out = run(up, LIMIT).await;
        assert!(
            out.status.success(),
            "pscp {mode} up: {}",
            text(&out.stderr)
        );
        assert_eq!(
            sha256_file(std::path::Path::new(&remote)),
            sha256_file(&local)
        );
        let back = gw.dir.path().join(format!("back{mode}"));
        let mut down = Command::new("pscp");
        down.args([
            "-batch", "-q", mode, "-pw", ALICE_PW, "-hostkey", &fp, "-P", &port,
        ])
        .arg(format!("alice+t1@127.0.0.1:{remote}"))
        .arg(&back);
        let out = run(down, LIMIT).await;
        assert!(
            out.status.success(),
            "pscp {mode} down: {}",
            text(&out.stderr)
        );
        assert_eq!(sha256_file(&back), sha256_file(&local));
        let _ = std::fs::remove_file(&remote);
    }
    gw.stop().await;
}
