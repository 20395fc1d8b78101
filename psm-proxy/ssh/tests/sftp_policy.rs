//! Issue 17 M5 through OpenSSH's `sftp` (and asyncssh for a `READ|WRITE` open), the gateway
//! and a real sshd: transfer rules are judged when a file is opened and the open is refused
//! there, before any byte moves; a symlink, a rename or a relative path does not take a file
//! past a rule on where it really is; remove, rename, mkdir, rmdir, setstat and symlink are
//! recorded; a `READ|WRITE` open that read and wrote is recorded both ways. Before the fix
//! the symlinked download and the rename went through, the refused upload reached the disk
//! (the rule fired at CLOSE), no operation was recorded and the read-write open was an upload
//! only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use psm_core::directory::MemoryDirectory;
use psm_core::policy::Policy;
use psm_proxy::TapFactories;
use psm_proxy::policy_tap::{Enforcement, PolicyTapFactory};
use psm_proxy::record::{RecorderConfig, RecorderFactory};
use psm_recording::{EventKind, ReadOptions, Reader, SigningKey, TransferDirection};

const LIMIT: Duration = Duration::from_secs(60);

/// A directory tree the target account owns: `pub/` (free) and `secret/` (ruled), with a
/// file in each and a symlink `pub/link` to the secret file.
fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(d.join("pub")).unwrap();
    std::fs::create_dir(d.join("secret")).unwrap();
    std::fs::write(d.join("secret/data"), b"top-secret-content\n").unwrap();
    std::fs::write(d.join("pub/plain"), b"plain-content\n").unwrap();
    std::os::unix::fs::symlink(d.join("secret/data"), d.join("pub/link")).unwrap();
    let st = Command::new("chown")
        .args(["-R", "-h", TARGET_USER])
        .arg(d)
        .status()
        .unwrap();
    assert!(st.success());
    dir
}

async fn sftp(gw: &Gateway, batch: &str) -> std::process::Output {
    need("sftp", "openssh-client");
    let file = gw
        .dir
        .path()
        .join(format!("batch-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, batch).unwrap();
    let mut c = Command::new("sftp");
    c.args(gw.ssh_opts())
        .args(["-o", "BatchMode=yes", "-i"])
        .arg(&gw.user_key)
        .args(["-P", &gw.addr.port().to_string(), "-b"])
        .arg(&file)
        .arg("alice+t1@127.0.0.1");
    run(c, LIMIT).await
}

async fn gateway_with(sshd: &Sshd, rules: String, extra: RecorderFactory) -> Gateway {
    let policy = Policy::from_toml(&rules).unwrap();
    let taps = TapFactories::new(vec![
        Arc::new(PolicyTapFactory::new(
            policy,
            Arc::new(MemoryDirectory::new()),
            Enforcement::default(),
        )),
        Arc::new(extra),
    ]);
    Gateway::start_with(
        sshd,
        Options {
            taps: Some(Arc::new(taps)),
            ..Options::default()
        },
    )
    .await
}

fn recorder(dir: &Path) -> (RecorderFactory, SigningKey) {
    let key = SigningKey::generate().unwrap();
    let mut cfg = RecorderConfig::new(dir, key.clone(), "psm-gateway/test gw-test");
    cfg.writer.flush_interval = Duration::from_millis(100);
    (RecorderFactory::new(cfg), key)
}

/// Every event of every recording in `dir`.
fn recorded(dir: &Path, key: &SigningKey) -> Vec<EventKind> {
    let mut all = Vec::new();
    for entry in walk(dir) {
        if entry.extension().is_some_and(|e| e == "psmr") {
            let mut reader = Reader::open(
                &entry,
                ReadOptions {
                    trusted_signers: vec![key.verifying_key()],
                    full_scan: true,
                    ..ReadOptions::default()
                },
            )
            .unwrap();
            all.extend(reader.events().map(|e| e.unwrap().kind));
        }
    }
    all
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Waits (no assertion on time) until the gateway has no session left, so every recording
/// is sealed.
async fn all_ended(gw: &Gateway) {
    while !gw.registry.is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m5_sftp_transfer_rules_refuse_at_open_even_through_a_symlink_or_a_rename() {
    let sshd = Sshd::start();
    let tree = tree();
    let d = tree.path().display().to_string();
    let rules = format!(
        "[[rule]]\nname = \"no-secret\"\non = \"transfer\"\nglob = \"{d}/secret/*\"\n\
         action = \"terminate\"\nmessage = \"the secret directory is off limits\"\n"
    );
    let rec = tempfile::tempdir().unwrap();
    let gw = gateway_with(&sshd, rules, recorder(rec.path()).0).await;
    let local = gw.dir.path();
    std::fs::write(local.join("up"), b"uploaded-content\n").unwrap();

    // A free file comes down as before (the gate passes what it does not refuse).
    let out = sftp(
        &gw,
        &format!("get {d}/pub/plain {}/plain\n", local.display()),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read(local.join("plain")).unwrap(),
        b"plain-content\n"
    );

    // A download through a symlink into the ruled directory: refused at OPEN.
    let out = sftp(&gw, &format!("get {d}/pub/link {}/got\n", local.display())).await;
    assert!(!out.status.success(), "{out:?}");
    let got = std::fs::read(local.join("got")).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&got).contains("top-secret"),
        "the secret came down through the symlink"
    );

    // An upload into the ruled directory never reaches the disk.
    let out = sftp(&gw, &format!("put {}/up {d}/secret/new\n", local.display())).await;
    assert!(!out.status.success(), "{out:?}");
    assert!(
        !tree.path().join("secret/new").exists(),
        "the refused upload reached the target"
    );

    // Nor through a relative path with `..`.
    let out = sftp(
        &gw,
        &format!("cd {d}/pub\nput {}/up ../secret/rel\n", local.display()),
    )
    .await;
    assert!(!out.status.success(), "{out:?}");
    assert!(
        !tree.path().join("secret/rel").exists(),
        "`..` escaped the rule"
    );

    // Nor by uploading elsewhere and renaming it in.
    let out = sftp(
        &gw,
        &format!(
            "put {}/up {d}/pub/stage\nrename {d}/pub/stage {d}/secret/moved\n",
            local.display()
        ),
    )
    .await;
    assert!(!out.status.success(), "{out:?}");
    assert!(
        !tree.path().join("secret/moved").exists(),
        "a rename moved a file past the rule"
    );
    assert!(
        tree.path().join("pub/stage").exists(),
        "the free upload ran"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m5_sftp_operations_are_recorded_and_read_write_opens_count_both_ways() {
    let sshd = Sshd::start();
    let tree = tree();
    let d = tree.path().display().to_string();
    let rec = tempfile::tempdir().unwrap();
    let (factory, key) = recorder(rec.path());
    let gw = gateway_with(&sshd, String::new(), factory).await;
    let local = gw.dir.path();
    std::fs::write(local.join("up"), b"uploaded-content\n").unwrap();
    let out = sftp(
        &gw,
        &format!(
            "mkdir {d}/pub/newdir\nput {0}/up {d}/pub/newdir/f\nrename {d}/pub/newdir/f {d}/pub/g\n\
             chmod 600 {d}/pub/g\nsymlink {d}/pub/g {d}/pub/l\nrm {d}/pub/l\nrmdir {d}/pub/newdir\n\
             -rm {d}/pub/missing\n",
            local.display()
        ),
    )
    .await;
    assert!(out.status.success(), "{out:?}");

    // A READ|WRITE open that reads 5 bytes and writes 3.
    need("python3", "python3 (with pip package asyncssh)");
    let script = r#"
import asyncio, sys, asyncssh
async def main():
    port, known, key, path = sys.argv[1:5]
    async with asyncssh.connect("127.0.0.1", port=int(port), known_hosts=known,
            client_keys=[key], agent_path=None, config=[], username="alice+t1") as c:
        async with c.start_sftp_client() as s:
            async with s.open(path, "r+b") as f:
                assert await f.read(5, 0) == b"plain"
                await f.write(b"XYZ", 0)
    print("OK")
asyncio.run(main())
"#;
    let mut py = Command::new("python3");
    py.args(["-c", script])
        .arg(gw.addr.port().to_string())
        .arg(&gw.known_hosts)
        .arg(&gw.user_key)
        .arg(format!("{d}/pub/plain"));
    let out = run(py, LIMIT).await;
    assert!(text(&out.stdout).contains("OK"), "{out:?}");
    assert_eq!(
        std::fs::read(tree.path().join("pub/plain")).unwrap(),
        b"XYZin-content\n"
    );
    all_ended(&gw).await;
    gw.stop().await;

    let events = recorded(rec.path(), &key);
    let markers: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            EventKind::Marker { label } => Some(label.as_str()),
            _ => None,
        })
        .collect();
    for want in [
        format!("sftp mkdir \"{d}/pub/newdir\": done"),
        format!("sftp rename \"{d}/pub/newdir/f\" to \"{d}/pub/g\": done"),
        format!("sftp setstat \"{d}/pub/g\": done"),
        format!("sftp symlink \"{d}/pub/l\" -> \"{d}/pub/g\": done"),
        format!("sftp remove \"{d}/pub/l\": done"),
        format!("sftp rmdir \"{d}/pub/newdir\": done"),
        format!("sftp remove \"{d}/pub/missing\": failed (status 2"),
    ] {
        assert!(
            markers.iter().any(|m| m.starts_with(&want)),
            "{want} not in {markers:#?}"
        );
    }
    let plain = format!("{d}/pub/plain");
    let moved: Vec<(TransferDirection, Option<u64>)> = events
        .iter()
        .filter_map(|e| match e {
            EventKind::FileTransfer(t) if t.path == plain => Some((t.direction, t.size)),
            _ => None,
        })
        .collect();
    assert!(
        moved.contains(&(TransferDirection::Download, Some(5)))
            && moved.contains(&(TransferDirection::Upload, Some(3))),
        "{moved:?}"
    );
}
