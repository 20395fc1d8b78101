//! Pipeline throughput, side by side in one run:
//! - upload: psm-storage's verified `put_file` (the uploader's data path) vs `aws s3 cp
//!   --recursive` of the same files, both to one moto server;
//! - encode: the encoder (verify + asciicast + transcript + command index + manifest) on a
//!   corpus of SSH recordings, in MB of raw `.psmr` per second.
//!
//! `cargo bench -p psm-pipeline --bench pipeline` (needs moto_server and aws on PATH).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use psm_core::clock::SystemClock;
use psm_core::store::MemoryStore;
use psm_core::{Engine, EngineConfig, NewSession, ProcessInstance, Protocol, SessionId};
use psm_pipeline::{Encoder, EncoderSettings, LocalLayout, WorkerConfig};
use psm_recording::{BlockingWriter, ChannelId, Header, Micros, SigningKey, Stream, WriterConfig};
use psm_storage::conformance::{content, peers};
use psm_storage::{NoProgress, ObjectKey, StoreConfig, Tuning};

fn mib(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

fn upload_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    std::fs::create_dir_all(dir).unwrap();
    let mut files = Vec::new();
    let mut sizes = vec![48usize << 20; 3];
    sizes.extend(std::iter::repeat_n(2 << 20, 20));
    sizes.extend(std::iter::repeat_n(100 << 10, 40));
    for (i, size) in sizes.into_iter().enumerate() {
        let p = dir.join(format!("f{i:03}.bin"));
        std::fs::write(&p, content(size, i as u8)).unwrap();
        files.push((p, size as u64));
    }
    files
}

fn aws_cp(port: u16, dir: &Path, bucket: &str) -> Duration {
    let start = Instant::now();
    let status = Command::new("aws")
        .args([
            "--endpoint-url",
            &format!("http://127.0.0.1:{port}"),
            "s3",
            "cp",
        ])
        .arg(dir)
        .arg(format!("s3://{bucket}/"))
        .args(["--recursive", "--no-progress", "--only-show-errors"])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .status()
        .expect("aws CLI: pip install awscli");
    assert!(status.success());
    start.elapsed()
}

async fn psm_put(
    store: &Arc<dyn psm_storage::RecordingStore>,
    files: &[(PathBuf, u64)],
    prefix: &str,
) -> Duration {
    let start = Instant::now();
    stream::iter(files.iter().enumerate())
        .for_each_concurrent(4, |(i, (path, _))| {
            let store = store.clone();
            async move {
                let key = ObjectKey::new(format!("{prefix}/f{i:03}.bin")).unwrap();
                store.put_file(&key, path, None, &NoProgress).await.unwrap();
            }
        })
        .await;
    start.elapsed()
}

fn write_recording(path: &Path, id: SessionId, seed: u64, output_bytes: usize) -> u64 {
    let header = Header::new(id, psm_recording::Protocol::Ssh, "alice", "web-01", "bench");
    let mut w = BlockingWriter::create(
        path,
        header,
        SigningKey::generate().unwrap(),
        WriterConfig {
            fsync: psm_recording::FsyncPolicy::Never,
            ..WriterConfig::default()
        },
    )
    .unwrap();
    let mut written = 0;
    let mut t = 0u64;
    let mut i = seed;
    while written < output_bytes {
        i = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let line = match i % 4 {
            0 => format!("$ ls -la /var/log/app{}\r\n", i % 97),
            1 => format!(
                "-rw-r--r-- 1 root root {:>8} Jan {:>2} 12:{:02} file{}.log\r\n",
                i % 100000,
                i % 28 + 1,
                i % 60,
                i % 1000
            ),
            2 => format!(
                "\x1b[32mINFO\x1b[0m request id={:x} took {}ms\r\n",
                i,
                i % 500
            ),
            _ => format!("{}\r\n", "data ".repeat((i % 20) as usize)),
        };
        t += i % 20_000;
        w.output_at(Micros(t), ChannelId(0), Stream::Stdout, line.as_bytes())
            .unwrap();
        written += line.len();
    }
    w.finish("bench").unwrap();
    std::fs::metadata(path).unwrap().len()
}

async fn encode_bench(dir: &Path) -> (u64, u64, Duration) {
    let engine = Arc::new(Engine::new(
        Arc::new(MemoryStore::new()),
        Arc::new(SystemClock),
        EngineConfig::default(),
    ));
    let layout = LocalLayout::new(dir);
    layout.create().unwrap();
    let gw = ProcessInstance::new("bench-gw").unwrap();
    let mut ids = Vec::new();
    let (mut raw, mut output) = (0, 0);
    for i in 0..12u64 {
        let id = SessionId::new();
        engine
            .open_session(NewSession {
                id,
                user: "alice".into(),
                target: "web-01".into(),
                protocol: Protocol::Ssh,
                checkout_id: None,
                process_instance: gw.clone(),
            })
            .await
            .unwrap();
        let out = 4 << 20;
        raw += write_recording(&layout.raw_recording(id), id, i, out);
        output += out as u64;
        engine.end_session(id, &gw).await.unwrap();
        ids.push(id);
    }
    let encoder = Encoder::new(
        engine,
        layout,
        EncoderSettings::default(),
        WorkerConfig::new(ProcessInstance::new("bench-enc").unwrap()),
    );
    let start = Instant::now();
    for id in ids {
        encoder.encode(id).await.unwrap();
    }
    (raw, output, start.elapsed())
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let files = upload_files(&dir.path().join("upload"));
    let total: u64 = files.iter().map(|f| f.1).sum();
    let moto = peers::Moto::start();
    let tuning = Tuning::default();
    let store = psm_storage::open(&StoreConfig::S3(moto.config("bench-psm", tuning))).unwrap();
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for round in 0..2 {
        // Fresh buckets each round: moto holds everything in memory.
        moto.create_bucket(&format!("bench-aws{round}"));
        moto.create_bucket("bench-psm");
        theirs.push(aws_cp(
            moto.port,
            &dir.path().join("upload"),
            &format!("bench-aws{round}"),
        ));
        ours.push(psm_put(&store, &files, &format!("r{round}")).await);
    }
    let best = |v: &[Duration]| *v.iter().min().unwrap();
    let (o, t) = (best(&ours), best(&theirs));
    println!(
        "upload: {} files, {:.1} MiB to moto",
        files.len(),
        total as f64 / (1 << 20) as f64
    );
    println!(
        "  psm put_file (verified, 4 files x 8 parts in flight): {:.1} MiB/s  runs {:?}",
        mib(total, o),
        ours
    );
    println!(
        "  aws s3 cp --recursive:                                {:.1} MiB/s  runs {:?}",
        mib(total, t),
        theirs
    );
    println!(
        "  ratio psm / aws: {:.2}x",
        t.as_secs_f64() / o.as_secs_f64()
    );
    drop(moto);

    let (raw, output, took) = encode_bench(&dir.path().join("encode")).await;
    println!(
        "encode: 12 SSH recordings, {:.1} MiB .psmr ({:.1} MiB terminal output), all exports",
        raw as f64 / (1 << 20) as f64,
        output as f64 / (1 << 20) as f64
    );
    println!(
        "  {:.1} MiB raw/s, {:.1} MiB terminal output/s ({:.2}s)",
        mib(raw, took),
        mib(output, took),
        took.as_secs_f64()
    );
}
