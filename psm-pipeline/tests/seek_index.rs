//! The encoder's seek index: the stored recording seeks from keyframes, still verifies intact
//! with the gateway's signatures untouched, a retake is byte-identical, a crash before the
//! rename leaves a readable recording that the retake finishes, and recordings that have an
//! index already, or cannot have one, are left as they are.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use psm_core::{Engine, NewSession, Protocol, SessionId, Stage};
use psm_pipeline::manifest::Manifest;
use psm_pipeline::seek_index::{self, IndexOutcome, Staged};
use psm_pipeline::{Encoder, EncoderSettings, LocalLayout, Uploader};
use psm_recording::index::{IndexOptions, add_seek_index};
use psm_recording::{
    BlockingWriter, ChannelId, FsyncPolicy, Header, Micros, ReadOptions, Reader, RecipientPublic,
    RecipientSecret, SigningKey, Stream, TermSize, VerifyOptions, WriterConfig, verify,
};
use psm_storage::{Checksum, LocalConfig, ObjectKey, StoreConfig};

/// A gateway's recording of a full-screen program: a redraw every 100 ms for 5 minutes.
fn write_terminal_psmr(
    path: &Path,
    id: SessionId,
    gateway: &SigningKey,
    recipients: Vec<RecipientPublic>,
) {
    let header = Header::new(
        id,
        psm_recording::Protocol::Ssh,
        "alice",
        "web-01",
        "gw-test",
    )
    .with_terminal(TermSize::new(80, 24), "xterm");
    let config = WriterConfig {
        fsync: FsyncPolicy::Never,
        recipients,
        ..WriterConfig::default()
    };
    let mut w = BlockingWriter::create(path, header, gateway.clone(), config).unwrap();
    for i in 0..3000u64 {
        let screen = format!(
            "\x1b[H\x1b[2Jtick {i}\r\n{}\r\n$ ",
            format!("load {} ", i % 97).repeat(8)
        );
        w.output_at(
            Micros(i * 100_000),
            ChannelId(0),
            Stream::Stdout,
            screen.as_bytes(),
        )
        .unwrap();
    }
    w.finish("user logged out").unwrap();
}

async fn ended(
    engine: &Engine,
    layout: &LocalLayout,
    gateway: &SigningKey,
    recipients: Vec<RecipientPublic>,
) -> SessionId {
    let gw = instance("gateway-test");
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
    write_terminal_psmr(&layout.raw_recording(id), id, gateway, recipients);
    engine.end_session(id, &gw).await.unwrap();
    id
}

fn indexing_encoder(
    engine: &Arc<Engine>,
    layout: &LocalLayout,
    name: &str,
    key: &SigningKey,
    identity: Option<RecipientSecret>,
) -> Arc<Encoder> {
    let settings = EncoderSettings {
        index_key: Some(key.clone()),
        identity,
        ..EncoderSettings::default()
    };
    Arc::new(Encoder::new(
        engine.clone(),
        layout.clone(),
        settings,
        worker(name),
    ))
}

/// The screen at `t`, as a list of lines.
fn screen(r: &mut Reader<impl std::io::Read + std::io::Seek>, t: Micros) -> Vec<String> {
    r.screen_at(t)
        .unwrap()
        .terminal(ChannelId(0))
        .unwrap()
        .lines()
}

/// Hidden files beside the raw recordings (indexed copies in progress or left by a crash).
fn temporaries(layout: &LocalLayout) -> Vec<String> {
    std::fs::read_dir(layout.recordings_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[tokio::test]
async fn the_stored_recording_seeks_from_its_index_verifies_and_a_retake_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path().join("node"));
    layout.create().unwrap();
    let engine = memory_engine(engine_config());
    let gateway = SigningKey::generate().unwrap();
    let index_key = SigningKey::generate().unwrap();
    let id = ended(&engine, &layout, &gateway, Vec::new()).await;
    let raw = layout.raw_recording(id);
    let as_written = std::fs::read(&raw).unwrap();
    let unindexed = Reader::from_bytes(as_written.clone(), ReadOptions::default()).unwrap();
    assert!(unindexed.seek_index().is_none());
    let chunks = unindexed.chunks().len();

    let summary = indexing_encoder(&engine, &layout, "encoder-1", &index_key, None)
        .run_until_idle()
        .await;
    assert_eq!(summary.completed, [id]);
    assert_eq!(engine.session(id).await.unwrap().stage, Stage::DoneEncoded);

    // The gateway's bytes are untouched: the index only follows them.
    let indexed = std::fs::read(&raw).unwrap();
    assert!(indexed.len() > as_written.len());
    assert_eq!(&indexed[..as_written.len()], &as_written[..]);
    // Intact, signed by the gateway, with the index signed by the encoder's key.
    let report = verify(&raw, &VerifyOptions::trusting(gateway.verifying_key())).unwrap();
    assert!(report.is_trusted_and_intact(), "{}", report.status);
    assert_eq!(report.chunks as usize, chunks);
    let info = report.seek_index.clone().unwrap();
    assert_eq!(info.signer, index_key.verifying_key());
    assert!(info.keyframes > 1, "{info:?}");
    assert_eq!(report.seek_index_note, None);
    // A reader that trusts both keys uses the index; seeking gives the screen a replay
    // from the start gives.
    let trusting = ReadOptions {
        trusted_signers: vec![gateway.verifying_key(), index_key.verifying_key()],
        ..ReadOptions::default()
    };
    let mut r = Reader::open(&raw, trusting).unwrap();
    assert_eq!(r.chunks().len(), chunks);
    assert!(r.chunks().iter().filter(|c| c.has_keyframes).count() > 1);
    let mut plain = unindexed;
    for t in [0, 61_234_567, 150_000_000, 299_950_000] {
        let seen = screen(&mut r, Micros(t));
        assert_eq!(seen, screen(&mut plain, Micros(t)), "at {t} µs");
        assert_eq!(seen[0], format!("tick {}", t / 100_000));
    }
    for i in 0..chunks {
        r.read_chunk(i).unwrap();
    }
    // The manifest describes the file as it is stored.
    let m = Manifest::read(&layout.manifest(id), id).unwrap();
    assert!(m.integrity.complete, "{:?}", m.integrity);
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    assert_eq!(m.raw.size, indexed.len() as u64);
    assert_eq!(m.raw.blake3, Checksum::of(&indexed));
    let exports: Vec<(String, Vec<u8>)> = m
        .exports
        .iter()
        .map(|f| {
            let bytes = std::fs::read(layout.exports_dir(id).join(&f.name)).unwrap();
            (f.name.clone(), bytes)
        })
        .collect();
    let manifest_bytes = std::fs::read(layout.manifest(id)).unwrap();

    // A second encoder retakes the session: the same bytes everywhere.
    let again = indexing_encoder(&engine, &layout, "encoder-2", &index_key, None);
    again.encode(id).await.unwrap();
    assert_eq!(
        std::fs::read(&raw).unwrap(),
        indexed,
        "raw recording differs"
    );
    assert_eq!(std::fs::read(layout.manifest(id)).unwrap(), manifest_bytes);
    for (name, bytes) in &exports {
        assert_eq!(
            &std::fs::read(layout.exports_dir(id).join(name)).unwrap(),
            bytes,
            "{name}"
        );
    }
    assert!(
        temporaries(&layout).is_empty(),
        "{:?}",
        temporaries(&layout)
    );

    // The uploader stores the indexed file.
    let store = psm_storage::open(&StoreConfig::Local(LocalConfig::new(
        dir.path().join("store"),
    )))
    .unwrap();
    let uploader = Arc::new(Uploader::new(
        engine.clone(),
        store.clone(),
        layout.clone(),
        worker("uploader-1"),
    ));
    assert_eq!(uploader.run_until_idle().await.completed, [id]);
    assert_eq!(engine.session(id).await.unwrap().stage, Stage::DoneUploaded);
    let key = ObjectKey::new(format!("sessions/{id}/recording.psmr")).unwrap();
    let stored = store.get(&key, 1 << 30).await.unwrap();
    assert_eq!(&stored[..], &indexed[..]);
    let mut r = Reader::from_bytes(stored.to_vec(), ReadOptions::default()).unwrap();
    assert_eq!(r.seek_index().unwrap().signer, index_key.verifying_key());
    assert_eq!(screen(&mut r, Micros(200_000_000))[0], "tick 2000");
    assert!(!raw.exists());
}

#[tokio::test]
async fn a_crash_between_writing_and_renaming_leaves_a_readable_recording_the_retake_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path());
    layout.create().unwrap();
    let engine = memory_engine(engine_config());
    let gateway = SigningKey::generate().unwrap();
    let index_key = SigningKey::generate().unwrap();
    let id = ended(&engine, &layout, &gateway, Vec::new()).await;
    let raw = layout.raw_recording(id);
    let as_written = std::fs::read(&raw).unwrap();
    // What a run that does not crash produces, on a copy elsewhere.
    let reference = dir.path().join("reference.psmr");
    std::fs::write(&reference, &as_written).unwrap();
    let options = IndexOptions::new(index_key.clone());
    assert!(matches!(
        seek_index::index_recording(&reference, &options).unwrap(),
        IndexOutcome::Added(_)
    ));
    let reference = std::fs::read(&reference).unwrap();

    // The encoder that claimed the session wrote its indexed copy, then died before the
    // rename (the copy stays); another died while copying (a torn copy stays).
    let Staged::Ready(staged) = seek_index::stage(&raw, &options).unwrap() else {
        panic!("the recording has no index yet");
    };
    let temp = staged.temp_path().to_owned();
    assert_eq!(std::fs::read(&temp).unwrap(), reference);
    std::mem::forget(staged);
    let torn = layout
        .recordings_dir()
        .join(format!(".{id}.psmr.4242-0-0.index.tmp"));
    std::fs::write(&torn, &reference[..reference.len() / 2]).unwrap();
    assert_eq!(temporaries(&layout).len(), 2);

    // The raw recording is the gateway's, whole: every chunk reads, it verifies intact.
    assert_eq!(std::fs::read(&raw).unwrap(), as_written);
    let report = verify(&raw, &VerifyOptions::trusting(gateway.verifying_key())).unwrap();
    assert!(report.is_trusted_and_intact(), "{}", report.status);
    assert!(report.decoded);
    let mut r = Reader::open(&raw, ReadOptions::default()).unwrap();
    assert!(r.seek_index().is_none());
    for i in 0..r.chunks().len() {
        r.read_chunk(i).unwrap();
    }
    // Local sessions are still just the one.
    assert_eq!(layout.local_sessions().unwrap(), [id]);

    // The retake finishes the job, with the bytes the uninterrupted run gives.
    indexing_encoder(&engine, &layout, "encoder-2", &index_key, None)
        .run_until_idle()
        .await;
    assert_eq!(engine.session(id).await.unwrap().stage, Stage::DoneEncoded);
    assert_eq!(std::fs::read(&raw).unwrap(), reference);
    assert!(
        temporaries(&layout).is_empty(),
        "{:?}",
        temporaries(&layout)
    );
    let m = Manifest::read(&layout.manifest(id), id).unwrap();
    assert_eq!(m.raw.blake3, Checksum::of(&reference));
    assert!(m.integrity.complete);
}

#[tokio::test]
async fn indexed_torn_damaged_and_encrypted_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path());
    layout.create().unwrap();
    let engine = memory_engine(engine_config());
    let gateway = SigningKey::generate().unwrap();
    let index_key = SigningKey::generate().unwrap();
    let auditor = RecipientSecret::generate().unwrap();

    // Indexed already, by another key (a tool, or an earlier encoder): left as it is.
    let has_index = ended(&engine, &layout, &gateway, Vec::new()).await;
    let other = SigningKey::generate().unwrap();
    add_seek_index(
        layout.raw_recording(has_index),
        &IndexOptions::new(other.clone()),
    )
    .unwrap();
    let has_index_bytes = std::fs::read(layout.raw_recording(has_index)).unwrap();

    // An append to the file in place that a crash cut short: the unfinished index after the
    // footer is replaced, the recording before it kept.
    let torn = ended(&engine, &layout, &gateway, Vec::new()).await;
    let torn_written = std::fs::read(layout.raw_recording(torn)).unwrap();
    add_seek_index(
        layout.raw_recording(torn),
        &IndexOptions::new(index_key.clone()),
    )
    .unwrap();
    let torn_reference = std::fs::read(layout.raw_recording(torn)).unwrap();
    let cut = torn_written.len() + (torn_reference.len() - torn_written.len()) / 3;
    std::fs::write(layout.raw_recording(torn), &torn_reference[..cut]).unwrap();

    // Truncated by a gateway crash: stored as it is, without an index.
    let truncated = ended(&engine, &layout, &gateway, Vec::new()).await;
    let full = std::fs::read(layout.raw_recording(truncated)).unwrap();
    let truncated_bytes = full[..full.len() / 2].to_vec();
    std::fs::write(layout.raw_recording(truncated), &truncated_bytes).unwrap();

    // Encrypted for the auditor, whose key the encoder holds: indexed, keyframes sealed.
    let encrypted = ended(&engine, &layout, &gateway, vec![auditor.public()]).await;
    let encrypted_written = std::fs::read(layout.raw_recording(encrypted)).unwrap();

    let summary = indexing_encoder(
        &engine,
        &layout,
        "encoder-1",
        &index_key,
        Some(auditor.clone()),
    )
    .run_until_idle()
    .await;
    assert_eq!(summary.completed.len(), 4, "{summary:?}");

    let bytes = std::fs::read(layout.raw_recording(has_index)).unwrap();
    assert_eq!(bytes, has_index_bytes);
    let m = Manifest::read(&layout.manifest(has_index), has_index).unwrap();
    assert_eq!(m.raw.blake3, Checksum::of(&bytes));
    assert!(m.integrity.complete && m.warnings.is_empty(), "{m:?}");
    let r = Reader::open(layout.raw_recording(has_index), ReadOptions::default()).unwrap();
    assert_eq!(r.seek_index().unwrap().signer, other.verifying_key());

    let bytes = std::fs::read(layout.raw_recording(torn)).unwrap();
    assert_eq!(bytes, torn_reference);
    let report = verify(
        layout.raw_recording(torn),
        &VerifyOptions::trusting(gateway.verifying_key()),
    )
    .unwrap();
    assert!(report.is_trusted_and_intact(), "{}", report.status);
    assert_eq!(report.seek_index.unwrap().signer, index_key.verifying_key());

    let bytes = std::fs::read(layout.raw_recording(truncated)).unwrap();
    assert_eq!(bytes, truncated_bytes);
    let m = Manifest::read(&layout.manifest(truncated), truncated).unwrap();
    assert!(!m.integrity.complete);
    assert_eq!(m.raw.blake3, Checksum::of(&truncated_bytes));

    let bytes = std::fs::read(layout.raw_recording(encrypted)).unwrap();
    assert_eq!(&bytes[..encrypted_written.len()], &encrypted_written[..]);
    let report = verify(
        layout.raw_recording(encrypted),
        &VerifyOptions {
            identity: Some(auditor.clone()),
            ..VerifyOptions::trusting(gateway.verifying_key())
        },
    )
    .unwrap();
    assert!(
        report.is_trusted_and_intact() && report.decoded,
        "{}",
        report.status
    );
    assert!(report.seek_index.unwrap().keyframes > 1);
    let mut r = Reader::open(
        layout.raw_recording(encrypted),
        ReadOptions {
            identity: Some(auditor),
            ..ReadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(screen(&mut r, Micros(123_456_789))[0], "tick 1234");
    let m = Manifest::read(&layout.manifest(encrypted), encrypted).unwrap();
    assert_eq!(m.raw.blake3, Checksum::of(&bytes));
}

#[tokio::test]
async fn an_encrypted_recording_the_encoder_cannot_read_is_stored_without_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path());
    layout.create().unwrap();
    let engine = memory_engine(engine_config());
    let gateway = SigningKey::generate().unwrap();
    let auditor = RecipientSecret::generate().unwrap();
    let id = ended(&engine, &layout, &gateway, vec![auditor.public()]).await;
    let written = std::fs::read(layout.raw_recording(id)).unwrap();
    let key = SigningKey::generate().unwrap();
    indexing_encoder(&engine, &layout, "encoder-1", &key, None)
        .run_until_idle()
        .await;
    assert_eq!(engine.session(id).await.unwrap().stage, Stage::DoneEncoded);
    assert_eq!(std::fs::read(layout.raw_recording(id)).unwrap(), written);
    // And the function says why, leaving the file alone.
    let e = seek_index::index_recording(&layout.raw_recording(id), &IndexOptions::new(key))
        .unwrap_err();
    assert!(e.to_string().contains("encrypted"), "{e}");
    assert_eq!(std::fs::read(layout.raw_recording(id)).unwrap(), written);
    assert!(temporaries(&layout).is_empty());
}
