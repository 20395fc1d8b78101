//! A session of binary output (`ssh host 'head -c N /dev/urandom' > file`): the text exports
//! leave the binary data out and say so, the manifest lists what was left out, and a
//! recording without any terminal gets no seek index (it would hold no keyframe).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use psm_pipeline::manifest::Manifest;
use psm_pipeline::{Encoder, EncoderSettings, LocalLayout};
use psm_recording::{
    BlockingWriter, ChannelId, ChannelKind, EventKind, Header, Micros, Protocol, ReadOptions,
    Reader, SigningKey, Stream, WriterConfig,
};

const BINARY: usize = 1 << 20;

#[tokio::test]
async fn binary_output_is_left_out_of_the_exports_and_noted_in_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path());
    layout.create().unwrap();
    let engine = memory_engine(engine_config());
    let id = recorded_session(&engine, &layout, 1).await;
    // Replace the recording with a binary session.
    let raw = layout.raw_recording(id);
    std::fs::remove_file(&raw).unwrap();
    let header = Header::new(id, Protocol::Ssh, "alice", "web-01", "psm-pipeline-test");
    let mut w = BlockingWriter::create(
        &raw,
        header,
        SigningKey::generate().unwrap(),
        WriterConfig::default(),
    )
    .unwrap();
    w.record_at(
        Micros(0),
        &EventKind::ChannelOpen {
            channel: ChannelId(0),
            kind: ChannelKind::Exec {
                command: "head -c 1048576 /dev/urandom".into(),
                pty: None,
            },
        },
    )
    .unwrap();
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..BINARY)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    for (i, piece) in data.chunks(32 << 10).enumerate() {
        w.output_at(Micros(1000 + i as u64), ChannelId(0), Stream::Stdout, piece)
            .unwrap();
    }
    w.finish("client disconnected").unwrap();
    let raw_len = std::fs::metadata(&raw).unwrap().len();

    let settings = EncoderSettings {
        index_key: Some(SigningKey::generate().unwrap()),
        ..EncoderSettings::default()
    };
    let encoder = Arc::new(Encoder::new(
        engine.clone(),
        layout.clone(),
        settings,
        worker("encoder-binary"),
    ));
    let summary = encoder.run_until_idle().await;
    assert_eq!(summary.completed.len(), 1, "{summary:?}");

    let m = Manifest::read(&layout.manifest(id), id).unwrap();
    assert!(m.integrity.complete, "{:?}", m.integrity);
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    assert_eq!(m.left_out.len(), 1, "{:?}", m.left_out);
    assert!(
        m.left_out[0]
            .starts_with("asciicast, transcript: channel 0: 1048576 bytes of binary output"),
        "{:?}",
        m.left_out
    );
    let exports: u64 = m.exports.iter().map(|f| f.size).sum();
    assert!(exports < 4096, "{:?}", m.exports);
    let cast = std::fs::read_to_string(layout.exports_dir(id).join("session.cast")).unwrap();
    assert!(
        cast.contains("binary output from here on is not in this export"),
        "{cast}"
    );
    // No terminal: no seek index, and the raw file is as the gateway wrote it.
    assert_eq!(std::fs::metadata(&raw).unwrap().len(), raw_len);
    let r = Reader::open(&raw, ReadOptions::default()).unwrap();
    assert!(r.seek_index().is_none());
    assert!(r.integrity().is_intact());
}
