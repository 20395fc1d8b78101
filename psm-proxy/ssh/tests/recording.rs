//! Sessions through the gateway are recorded into `.psmr` files that replay what happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use psm_proxy::record::{RecorderConfig, RecorderFactory};
use psm_recording::{EventKind, ReadOptions, Reader, SigningKey, TransferDirection};

fn events_of(
    path: &std::path::Path,
    key: &SigningKey,
) -> (Reader<std::io::BufReader<std::fs::File>>, Vec<EventKind>) {
    let mut reader = Reader::open(
        path,
        ReadOptions {
            trusted_signers: vec![key.verifying_key()],
            full_scan: true,
            ..ReadOptions::default()
        },
    )
    .unwrap();
    let events: Vec<EventKind> = reader.events().map(|e| e.unwrap().kind).collect();
    (reader, events)
}

fn output_text(events: &[EventKind]) -> String {
    let mut s = Vec::new();
    for e in events {
        if let EventKind::Output { data, .. } = e {
            s.extend_from_slice(data);
        }
    }
    text(&s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_recorded_and_replay_what_happened() {
    let sshd = Sshd::start();
    let rec_dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let mut cfg = RecorderConfig::new(rec_dir.path(), key.clone(), "psm-gateway/test gw-test");
    cfg.writer.flush_interval = Duration::from_millis(200);
    let factory = RecorderFactory::new(cfg);
    let gw = Gateway::start_with(
        &sshd,
        Options {
            taps: Some(Arc::new(factory.clone())),
            ..Options::default()
        },
    )
    .await;

    // exec with output and an exit status
    let out = run(
        gw.ssh("alice+t1", &[], "echo recorded-output; exit 3"),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(out.status.code(), Some(3));
    let exec_id = gw.sessions().await[0].id;

    // legacy scp upload
    let local = gw.dir.path().join("small.txt");
    std::fs::write(&local, b"0123456789").unwrap();
    let remote = format!("/tmp/psmgw-rec-{}.txt", uuid::Uuid::new_v4().simple());
    let mut up = Command::new("scp");
    up.args(gw.ssh_opts())
        .args(["-q", "-O", "-o", "BatchMode=yes", "-i"])
        .arg(&gw.user_key)
        .args(["-P", &gw.addr.port().to_string()])
        .arg(&local)
        .arg(format!("alice+t1@127.0.0.1:{remote}"));
    assert!(run(up, Duration::from_secs(60)).await.status.success());
    let _ = std::fs::remove_file(&remote);

    // pty, resize and a secret typed at a prompt
    let mut c = Command::new("python3");
    c.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scripts/client.py"
    ))
    .arg("secret-prompt")
    .arg(gw.addr.port().to_string())
    .arg(&gw.known_hosts)
    .arg(&gw.user_key)
    .arg("NeverRecorded77");
    let out = run(c, Duration::from_secs(60)).await;
    assert!(text(&out.stdout).contains("OK"), "{}", text(&out.stderr));
    let mut c = Command::new("python3");
    c.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scripts/client.py"
    ))
    .arg("resize")
    .arg(gw.addr.port().to_string())
    .arg(&gw.known_hosts)
    .arg(&gw.user_key);
    assert!(text(&run(c, Duration::from_secs(60)).await.stdout).contains("OK"));

    tokio::time::sleep(Duration::from_secs(1)).await;
    let sessions = gw.sessions().await;
    assert_eq!(sessions.len(), 4);
    gw.stop().await;

    // exec
    let (reader, events) = events_of(&factory.path_of(exec_id), &key);
    assert_eq!(reader.header().user, "alice");
    assert_eq!(reader.header().target, "t1");
    assert!(reader.integrity().is_intact(), "{:?}", reader.integrity());
    assert!(reader.ending().is_some(), "sealed with a trailer");
    assert!(events.iter().any(|e| matches!(e, EventKind::ChannelOpen { kind: psm_recording::ChannelKind::Exec { command, .. }, .. } if command == "echo recorded-output; exit 3")), "{events:?}");
    assert!(output_text(&events).contains("recorded-output"));
    assert!(
        events.iter().any(|e| matches!(
            e,
            EventKind::ChannelClose {
                exit_status: Some(3),
                ..
            }
        )),
        "{events:?}"
    );

    let mut saw_upload = false;
    let mut saw_redacted = false;
    let mut saw_resize = false;
    for s in &sessions {
        let (_r, events) = events_of(&factory.path_of(s.id), &key);
        for e in &events {
            match e {
                EventKind::FileTransfer(t)
                    if t.direction == TransferDirection::Upload
                        && t.path == remote
                        && t.size == Some(10)
                        && t.protocol == "scp" =>
                {
                    saw_upload = true
                }
                EventKind::InputRedacted { .. } => saw_redacted = true,
                EventKind::Resize { size, .. } if size.cols == 132 && size.rows == 43 => {
                    saw_resize = true
                }
                EventKind::Input { data, .. } => assert!(
                    !text(data).contains("NeverRecorded77"),
                    "a secret was recorded"
                ),
                _ => {}
            }
        }
    }
    assert!(
        saw_upload && saw_redacted && saw_resize,
        "upload {saw_upload} redacted {saw_redacted} resize {saw_resize}"
    );
}
