//! The crash window: a writer process killed with SIGKILL keeps every event it recorded more
//! than the flush interval (1 s by default) before the kill, while the session is still
//! printing (the open chunk never runs dry, so only the timer can close it).
//!
//! The writer runs in a child process (this test binary again, running `child_writer`), as a
//! gateway would: the default `WriterConfig`, a real file. The parent waits until the child
//! says it recorded the line, waits 1.5 s, kills it with SIGKILL and reads the file back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use psm_recording::*;

const CHILD_ENV: &str = "PSM_CRASH_WINDOW_CHILD";
const LINE: &[u8] = b"the line printed 1.5 s before the kill\r\n";

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

/// Not a test on its own: the writer process of `a_writer_killed_with_sigkill_keeps_...`
/// (it does nothing unless that test started it).
#[test]
fn child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let header = Header::new(
            psm_core::SessionId::new(),
            Protocol::Ssh,
            "alice",
            "web-01",
            "crash-test",
        );
        let w = RecordingWriter::create(&path, header, key(), WriterConfig::default())
            .await
            .unwrap();
        w.record(EventKind::ChannelOpen {
            channel: ChannelId(0),
            kind: ChannelKind::Shell {
                pty: Some(Pty {
                    term: "xterm".into(),
                    size: TermSize::new(80, 24),
                }),
            },
        })
        .await
        .unwrap();
        // Output every 100 ms, before and after the line: the open chunk always has events.
        for _ in 0..3 {
            w.output(ChannelId(0), b".").await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        w.output(ChannelId(0), LINE).await.unwrap();
        println!("recorded");
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            w.output(ChannelId(0), b".").await.unwrap();
        }
    });
}

#[test]
fn a_writer_killed_with_sigkill_keeps_what_it_recorded_over_a_second_before() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.psmr");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("recorded") {
        line.clear();
        assert_ne!(
            out.read_line(&mut line).unwrap(),
            0,
            "the writer process ended early"
        );
    }
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap(); // SIGKILL: no destructor, no flush
    child.wait().unwrap();

    let r = Reader::open(&path, ReadOptions::default()).unwrap();
    assert!(
        r.integrity()
            .to_string()
            .starts_with("truncated after chunk"),
        "{}",
        r.integrity()
    );
    let report = verify(&path, &VerifyOptions::trusting(key().verifying_key())).unwrap();
    assert!(
        matches!(report.status, Integrity::Truncated { .. }),
        "{}",
        report.status
    );
    let mut r = r;
    let mut output = Vec::new();
    for i in 0..r.chunks().len() {
        for e in r.read_chunk(i).unwrap().events {
            if let EventKind::Output { data, .. } = e.kind {
                output.extend_from_slice(&data);
            }
        }
    }
    assert!(
        output.windows(LINE.len()).any(|w| w == LINE),
        "the line recorded 1.5 s before the kill is missing; the file holds {} chunks, output {:?}",
        r.chunks().len(),
        String::from_utf8_lossy(&output)
    );
}
