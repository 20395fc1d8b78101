//! Shared test support: engines, sessions brought to a stage, recording sets on disk, a
//! fault-injecting proxy, a small tmpfs.

#![allow(clippy::unwrap_used, dead_code)]

pub mod fault_proxy;
pub mod tmpfs;

use std::sync::Arc;
use std::time::Duration;

use psm_core::clock::SystemClock;
use psm_core::store::{MemoryStore, SessionStore};
use psm_core::{Engine, EngineConfig, NewSession, ProcessInstance, Protocol, SessionId};
use psm_pipeline::LocalLayout;
use psm_pipeline::manifest::{Manifest, ManifestFile, write_atomic};
use psm_storage::Checksum;
use psm_storage::conformance::content;

/// Engine settings for tests: short leases, quick retries, 3 attempts.
pub fn engine_config() -> EngineConfig {
    EngineConfig {
        lease_ttl: Duration::from_secs(3),
        max_attempts: 3,
        retry_backoff_base: Duration::from_millis(20),
        retry_backoff_max: Duration::from_millis(100),
        ..EngineConfig::default()
    }
}

pub fn memory_engine(config: EngineConfig) -> Arc<Engine> {
    engine_over(Arc::new(MemoryStore::new()), config)
}

pub fn engine_over(store: Arc<dyn SessionStore>, config: EngineConfig) -> Arc<Engine> {
    Arc::new(Engine::new(store, Arc::new(SystemClock), config))
}

pub fn instance(name: &str) -> ProcessInstance {
    ProcessInstance::new(name).unwrap()
}

/// Worker settings for tests: quick polling and renewal.
pub fn worker(name: &str) -> psm_pipeline::WorkerConfig {
    let mut c = psm_pipeline::WorkerConfig::new(instance(name));
    c.poll_interval = Duration::from_millis(50);
    c.renew_every = Duration::from_millis(500);
    c.lease_ttl = Duration::from_secs(3);
    c.concurrency = 3;
    c
}

/// Opens and ends a session whose raw recording (`raw` bytes) the "gateway" wrote.
pub async fn ended_session(
    engine: &Engine,
    layout: &LocalLayout,
    raw: &[u8],
    target: &str,
) -> SessionId {
    let gw = instance("gateway-test");
    let id = SessionId::new();
    engine
        .open_session(NewSession {
            id,
            user: "alice".into(),
            target: target.into(),
            protocol: Protocol::Ssh,
            checkout_id: None,
            process_instance: gw.clone(),
        })
        .await
        .unwrap();
    std::fs::create_dir_all(layout.recordings_dir()).unwrap();
    std::fs::write(layout.raw_recording(id), raw).unwrap();
    engine.end_session(id, &gw).await.unwrap();
    id
}

/// Writes a recording set as an encoder would (a transcript export and the manifest).
pub fn write_set(
    layout: &LocalLayout,
    id: SessionId,
    raw: &[u8],
    transcript: &[u8],
    target: &str,
) -> Manifest {
    let dir = layout.exports_dir(id);
    std::fs::create_dir_all(&dir).unwrap();
    write_atomic(&dir.join("transcript.txt"), transcript).unwrap();
    let mut m = Manifest::new(
        id,
        ManifestFile {
            name: "recording.psmr".into(),
            kind: "raw".into(),
            size: raw.len() as u64,
            blake3: Checksum::of(raw),
        },
    );
    m.target = Some(target.into());
    m.protocol = Some("ssh".into());
    m.exports.push(ManifestFile {
        name: "transcript.txt".into(),
        kind: "transcript".into(),
        size: transcript.len() as u64,
        blake3: Checksum::of(transcript),
    });
    m.write(&dir).unwrap();
    m
}

/// A session brought to Done-Encoded with its set on disk; returns its id and raw bytes.
pub async fn encoded_session(
    engine: &Engine,
    layout: &LocalLayout,
    raw_len: usize,
    seed: u8,
) -> (SessionId, Vec<u8>) {
    let raw = content(raw_len, seed);
    let id = ended_session(engine, layout, &raw, "web-01").await;
    let lease = engine
        .claim_for_encoding(&instance("encoder-test"), 1)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(lease.session, id, "tests create sessions one at a time");
    write_set(
        layout,
        id,
        &raw,
        format!("transcript of {id}\n").as_bytes(),
        "web-01",
    );
    engine.complete(&lease, Default::default()).await.unwrap();
    (id, raw)
}

/// Writes a real, signed `.psmr` recording of `lines` lines of shell output for `id`.
pub fn write_psmr(path: &std::path::Path, id: SessionId, lines: usize) {
    use psm_recording::{
        BlockingWriter, ChannelId, Header, Micros, Protocol, SigningKey, Stream, WriterConfig,
    };
    let header = Header::new(id, Protocol::Ssh, "alice", "web-01", "psm-pipeline-test");
    let config = WriterConfig {
        chunk_bytes: 4096,
        fsync: psm_recording::FsyncPolicy::Never,
        ..WriterConfig::default()
    };
    let mut w =
        BlockingWriter::create(path, header, SigningKey::generate().unwrap(), config).unwrap();
    for i in 0..lines {
        let line = format!("$ echo {i}\r\n{i} {}\r\n", "x".repeat(i % 60));
        w.output_at(
            Micros(i as u64 * 1000),
            ChannelId(0),
            Stream::Stdout,
            line.as_bytes(),
        )
        .unwrap();
    }
    w.finish("user logged out").unwrap();
}

/// Opens a session of alice's on web-01 through gateway `gateway-test` (Connected), with the
/// node's recordings directory ready for its recording.
pub async fn opened_session(engine: &Engine, layout: &LocalLayout) -> SessionId {
    let id = SessionId::new();
    engine
        .open_session(NewSession {
            id,
            user: "alice".into(),
            target: "web-01".into(),
            protocol: Protocol::Ssh,
            checkout_id: None,
            process_instance: instance("gateway-test"),
        })
        .await
        .unwrap();
    std::fs::create_dir_all(layout.recordings_dir()).unwrap();
    id
}

/// Opens and ends a session whose gateway wrote a real recording of `lines` lines.
pub async fn recorded_session(engine: &Engine, layout: &LocalLayout, lines: usize) -> SessionId {
    let id = opened_session(engine, layout).await;
    write_psmr(&layout.raw_recording(id), id, lines);
    engine
        .end_session(id, &instance("gateway-test"))
        .await
        .unwrap();
    id
}
