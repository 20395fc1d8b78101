//! The async writer: idle flushes, concurrent clones, drops, failing disks.
#![allow(clippy::unwrap_used)]

mod common;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use psm_recording::*;

/// Polls until `f` holds, failing after a generous deadline (this checks that something
/// happens, not how fast).
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

fn chunks_in(sink: &MemorySink) -> usize {
    Reader::from_bytes(sink.bytes(), ReadOptions::default())
        .map(|r| r.chunks().len())
        .unwrap_or(0)
}

#[tokio::test]
async fn an_idle_session_is_flushed_by_the_timer() {
    let sink = MemorySink::new();
    let key = SigningKey::generate().unwrap();
    let config = WriterConfig {
        flush_interval: Duration::from_millis(200),
        ..WriterConfig::default()
    };
    let w = RecordingWriter::with_sink(Box::new(sink.clone()), header(), key, config)
        .await
        .unwrap();
    w.output(ChannelId(0), b"$ ").await.unwrap();
    assert_eq!(chunks_in(&sink), 0);
    eventually("the open chunk is written without further events", || {
        chunks_in(&sink) == 1
    })
    .await;
    let r = Reader::from_bytes(sink.bytes(), ReadOptions::default()).unwrap();
    assert_eq!(
        r.integrity().to_string(),
        format!("truncated after chunk 0 at {}", r.chunks()[0].t_end)
    );
    w.finish("done").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_write_concurrently_and_nothing_is_lost() {
    let sink = MemorySink::new();
    let key = SigningKey::generate().unwrap();
    let config = WriterConfig {
        chunk_bytes: 4096,
        fsync: FsyncPolicy::Never,
        ..WriterConfig::default()
    };
    let w = RecordingWriter::with_sink(Box::new(sink.clone()), header(), key, config)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for ch in 0..2u32 {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..2000u32 {
                w.output(ChannelId(ch), format!("{ch}:{i}\n").as_bytes())
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let done = w.finish("done").await.unwrap();
    assert_eq!(done.events, 4001);
    let mut r = Reader::from_bytes(sink.bytes(), ReadOptions::default()).unwrap();
    assert!(r.integrity().is_intact());
    let events = r.events().collect::<Result<Vec<_>, _>>().unwrap();
    assert!(events.windows(2).all(|p| p[0].time <= p[1].time));
    for ch in 0..2u32 {
        let got: Vec<_> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Output { channel, data, .. } if channel.0 == ch => Some(data.clone()),
                _ => None,
            })
            .collect();
        let want: Vec<_> = (0..2000u32)
            .map(|i| format!("{ch}:{i}\n").into_bytes())
            .collect();
        assert_eq!(got, want);
    }
}

#[tokio::test]
async fn dropping_the_writer_leaves_a_truncated_recording_with_everything_written() {
    let sink = MemorySink::new();
    let key = SigningKey::generate().unwrap();
    let w = RecordingWriter::with_sink(
        Box::new(sink.clone()),
        header(),
        key,
        WriterConfig::default(),
    )
    .await
    .unwrap();
    w.output(ChannelId(0), b"first\r\n").await.unwrap();
    w.flush().await.unwrap();
    assert_eq!(chunks_in(&sink), 1);
    w.output(ChannelId(0), b"second\r\n").await.unwrap();
    drop(w);
    eventually("the open chunk is handed over on drop", || {
        chunks_in(&sink) == 2
    })
    .await;
    let mut r = Reader::from_bytes(sink.bytes(), ReadOptions::default()).unwrap();
    assert!(
        r.integrity()
            .to_string()
            .starts_with("truncated after chunk 1")
    );
    assert_eq!(r.events().count(), 2);
}

#[tokio::test]
async fn finish_on_one_clone_stops_the_others() {
    let sink = MemorySink::new();
    let key = SigningKey::generate().unwrap();
    let w = RecordingWriter::with_sink(Box::new(sink), header(), key, WriterConfig::default())
        .await
        .unwrap();
    let other = w.clone();
    w.finish("bye").await.unwrap();
    assert!(matches!(
        other.output(ChannelId(0), b"late").await,
        Ok(()) | Err(RecordingError::WriterStopped(_))
    ));
    assert!(matches!(
        other.finish("again").await,
        Err(RecordingError::WriterStopped(_))
    ));
}

/// A disk that fills up after `limit` bytes.
#[derive(Clone)]
struct FullDisk {
    inner: MemorySink,
    written: Arc<AtomicUsize>,
    limit: usize,
}

impl RecordingSink for FullDisk {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.written.fetch_add(bytes.len(), Ordering::SeqCst) + bytes.len() > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device",
            ));
        }
        self.inner.append(bytes)
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_full_disk_stops_the_writer_loudly_and_keeps_what_was_written() {
    let disk = FullDisk {
        inner: MemorySink::new(),
        written: Arc::new(AtomicUsize::new(0)),
        limit: 20_000,
    };
    let key = SigningKey::generate().unwrap();
    let config = WriterConfig {
        chunk_bytes: 4096,
        compression_level: 1,
        ..WriterConfig::default()
    };
    let w = RecordingWriter::with_sink(Box::new(disk.clone()), header(), key, config)
        .await
        .unwrap();
    let mut failed = None;
    let mut x = 1u64;
    for _ in 0..10_000 {
        // Incompressible output, so the disk fills quickly.
        let data: Vec<u8> = (0..512)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        if let Err(e) = w.output(ChannelId(0), &data).await {
            failed = Some(e);
            break;
        }
        tokio::task::yield_now().await;
    }
    let e = failed.expect("the writer never reported the full disk");
    assert!(matches!(e, RecordingError::WriterStopped(_)), "{e}");
    assert!(e.to_string().contains("no space left on device"), "{e}");
    let r = Reader::from_bytes(disk.inner.bytes(), ReadOptions::default()).unwrap();
    assert!(
        r.integrity()
            .to_string()
            .starts_with("truncated after chunk"),
        "{}",
        r.integrity()
    );
}

#[tokio::test]
async fn create_refuses_an_existing_file_and_writes_a_verifiable_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.psmr");
    let key = SigningKey::generate().unwrap();
    let w = RecordingWriter::create(&path, header(), key.clone(), WriterConfig::default())
        .await
        .unwrap();
    w.output(ChannelId(0), b"hello\r\n").await.unwrap();
    let e = RecordingWriter::create(&path, header(), key.clone(), WriterConfig::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("creating"), "{e}");
    w.finish("done").await.unwrap();
    let report = verify(&path, &VerifyOptions::trusting(key.verifying_key())).unwrap();
    assert!(report.is_trusted_and_intact());
    assert_eq!(report.end_reason.as_deref(), Some("done"));
    // Readable by its owner only, whatever the umask (issue 17 M11).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
    }
}
