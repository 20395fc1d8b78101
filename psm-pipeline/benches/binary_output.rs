//! The work after a session of bulk binary output: what one `ssh gw 'head -c 400000000
//! /dev/urandom' > file` session costs the encoder and the uploader, against what recording
//! it cost while it ran.
//!
//! ```text
//! cargo bench -p psm-pipeline --bench binary_output -- [--mb 400] [--dir /var/tmp/psm-binary-bench]
//! ```
//!
//! One process, phases measured apart (CPU seconds of the whole process, all threads, from
//! `/proc/self/stat`): (1) the gateway's recorder: the async `RecordingWriter` with the
//! default configuration, an exec channel without a pty, the output in 32 KiB pieces (an SSH
//! channel's packets) of random bytes; (2) the encoder with the exports and seek index
//! `psm up` configures (every export, an index key); (3) the uploader into a local store
//! (fsync on). Sizes: the raw recording, each export, and the stored set.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use psm_core::clock::SystemClock;
use psm_core::store::MemoryStore;
use psm_core::{Engine, EngineConfig, NewSession, ProcessInstance, Protocol, SessionId};
use psm_pipeline::{Encoder, EncoderSettings, LocalLayout, Uploader, WorkerConfig};
use psm_recording::{
    ChannelId, ChannelKind, EventKind, Header, RecordingWriter, SigningKey, WriterConfig,
};
use psm_storage::{LocalConfig, StoreConfig};

/// CPU seconds (user + system) of this process so far.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn tree_bytes(p: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if m.is_dir() {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| tree_bytes(&e.unwrap().path()))
            .sum()
    } else {
        m.len()
    }
}

fn files(p: &Path, out: &mut Vec<(PathBuf, u64)>) {
    if let Ok(d) = std::fs::read_dir(p) {
        for e in d {
            let path = e.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else {
                let len = std::fs::metadata(&path).unwrap().len();
                out.push((path, len));
            }
        }
    }
}

fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let total: usize = arg("--mb").map_or(400, |v| v.parse().unwrap()) * 1_000_000;
    let root = PathBuf::from(arg("--dir").unwrap_or_else(|| "/var/tmp/psm-binary-bench".into()));
    let _ = std::fs::remove_dir_all(&root);
    let data = root.join("data");
    let store_dir = root.join("store");
    let layout = LocalLayout::new(&data);
    layout.create().unwrap();

    let engine = Arc::new(Engine::new(
        Arc::new(MemoryStore::new()),
        Arc::new(SystemClock),
        EngineConfig::default(),
    ));
    let gw = ProcessInstance::new("bench-gw").unwrap();
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

    // 1. The gateway's recorder.
    let header = Header::new(id, psm_recording::Protocol::Ssh, "alice", "web-01", "bench");
    let mut piece = vec![0u8; 32 << 10];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let (c0, t0) = (cpu_secs(), Instant::now());
    let w = RecordingWriter::create(
        layout.raw_recording(id),
        header,
        SigningKey::generate().unwrap(),
        WriterConfig::default(),
    )
    .await
    .unwrap();
    w.record(EventKind::ChannelOpen {
        channel: ChannelId(0),
        kind: ChannelKind::Exec {
            command: "head -c 400000000 /dev/urandom".into(),
            pty: None,
        },
    })
    .await
    .unwrap();
    let mut written = 0;
    let mut gen_cpu = 0.0;
    while written < total {
        let g = cpu_secs();
        for b in piece.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b.copy_from_slice(&state.to_le_bytes()[..b.len()]);
        }
        gen_cpu += cpu_secs() - g;
        let n = piece.len().min(total - written);
        w.output(ChannelId(0), &piece[..n]).await.unwrap();
        written += n;
    }
    w.record(EventKind::ChannelClose {
        channel: ChannelId(0),
        exit_status: Some(0),
        exit_signal: None,
    })
    .await
    .unwrap();
    w.finish("client disconnected").await.unwrap();
    let (record_cpu, record_wall) = (cpu_secs() - c0 - gen_cpu, t0.elapsed());
    engine.end_session(id, &gw).await.unwrap();
    let raw = std::fs::metadata(layout.raw_recording(id)).unwrap().len();

    // 2. The encoder, as `psm up` configures it.
    let settings = EncoderSettings {
        index_key: Some(SigningKey::generate().unwrap()),
        ..EncoderSettings::default()
    };
    let encoder = Arc::new(Encoder::new(
        engine.clone(),
        layout.clone(),
        settings,
        WorkerConfig::new(ProcessInstance::new("bench-enc").unwrap()),
    ));
    let (c1, t1) = (cpu_secs(), Instant::now());
    let s = encoder.run_until_idle().await;
    assert_eq!(s.completed.len(), 1, "{s:?}");
    let (encode_cpu, encode_wall) = (cpu_secs() - c1, t1.elapsed());
    let after_encode = tree_bytes(&data);
    let mut exports = Vec::new();
    files(&layout.exports_dir(id), &mut exports);
    exports.sort();

    // 3. The uploader, into a local store.
    let store = psm_storage::open(&StoreConfig::Local(LocalConfig::new(&store_dir))).unwrap();
    let uploader = Arc::new(Uploader::new(
        engine.clone(),
        store,
        layout.clone(),
        WorkerConfig::new(ProcessInstance::new("bench-up").unwrap()),
    ));
    let (c2, t2) = (cpu_secs(), Instant::now());
    let s = uploader.run_until_idle().await;
    assert_eq!(s.completed.len(), 1, "{s:?}");
    let (upload_cpu, upload_wall) = (cpu_secs() - c2, t2.elapsed());
    let stored = tree_bytes(&store_dir);

    println!(
        "binary session: {} of random output on an exec channel without a pty\n",
        mb(total as u64)
    );
    println!("| phase | CPU s | wall s |");
    println!("|---|---|---|");
    println!(
        "| recording (gateway's writer, data generation excluded) | {record_cpu:.2} | {:.2} |",
        record_wall.as_secs_f64()
    );
    println!(
        "| encoder (verify, exports, seek index, manifest) | {encode_cpu:.2} | {:.2} |",
        encode_wall.as_secs_f64()
    );
    println!(
        "| uploader (local store, fsync) | {upload_cpu:.2} | {:.2} |",
        upload_wall.as_secs_f64()
    );
    println!(
        "| **after the session** | **{:.2}** ({:.2}× the recording's) | {:.2} |\n",
        encode_cpu + upload_cpu,
        (encode_cpu + upload_cpu) / record_cpu,
        (encode_wall + upload_wall).as_secs_f64()
    );
    println!("| file | size | × raw |");
    println!("|---|---|---|");
    println!("| raw `.psmr` as written | {} | 1.00× |", mb(raw));
    for (p, len) in &exports {
        println!(
            "| {} | {} | {:.2}× |",
            p.file_name().unwrap().to_string_lossy(),
            mb(*len),
            *len as f64 / raw as f64
        );
    }
    println!(
        "| data directory after encoding | {} | {:.2}× |",
        mb(after_encode),
        after_encode as f64 / raw as f64
    );
    println!(
        "| **stored set** (the store after upload) | **{}** | **{:.2}×** |",
        mb(stored),
        stored as f64 / raw as f64
    );
    let _ = std::fs::remove_dir_all(&root);
}
