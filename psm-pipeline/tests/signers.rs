//! Issue 17 M12 in the pipeline: the real encoder encodes only recordings signed by a
//! registered gateway and signs the manifest with its own key; the real uploader uploads
//! only sets whose manifest a registered encoder signed and that nobody changed since.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{engine_config, instance, memory_engine, opened_session, worker};
use psm_core::{Engine, RecordingCommitment, SessionId, Stage};
use psm_pipeline::manifest::{Manifest, verify_signature};
use psm_pipeline::{Encoder, EncoderSettings, ExportKind, LocalLayout, Uploader};
use psm_recording::layout::MANIFEST_SIGNATURE_FILE;
use psm_recording::{BlockingWriter, ChannelId, Header, Micros, SigningKey, Stream, WriterConfig};
use psm_storage::{LocalConfig, StoreConfig};

/// A session whose raw recording was signed by `key`, Ended (without a commitment).
async fn ended(engine: &Engine, layout: &LocalLayout, key: &SigningKey) -> SessionId {
    let (id, _) = recorded(engine, layout, key, b"root").await;
    engine
        .end_session(id, &instance("gateway-test"))
        .await
        .unwrap();
    id
}

/// Writes (over) session `id`'s raw recording: two chunks of output, `said` in the second.
fn write_recording(
    layout: &LocalLayout,
    id: SessionId,
    key: &SigningKey,
    said: &[u8],
) -> RecordingCommitment {
    let header = psm_recording::Header {
        terminal: Some(psm_recording::TermSize::new(80, 24)),
        ..Header::new(id, psm_recording::Protocol::Ssh, "alice", "web-01", "test")
    };
    let mut w = BlockingWriter::create(
        layout.raw_recording(id),
        header,
        key.clone(),
        WriterConfig::default(),
    )
    .unwrap();
    w.output_at(Micros(1000), ChannelId(0), Stream::Stdout, b"$ whoami\r\n")
        .unwrap();
    w.flush().unwrap();
    w.output_at(Micros(2000), ChannelId(0), Stream::Stdout, said)
        .unwrap();
    let done = w.finish("user logged out").unwrap();
    RecordingCommitment {
        chain: done.final_hash,
        chunks: done.chunks,
        events: done.events,
    }
}

/// A Connected session with its recording written: its id and what a gateway would commit
/// to at EndSession.
async fn recorded(
    engine: &Engine,
    layout: &LocalLayout,
    key: &SigningKey,
    said: &[u8],
) -> (SessionId, RecordingCommitment) {
    let id = opened_session(engine, layout).await;
    let committed = write_recording(layout, id, key, said);
    (id, committed)
}

struct Node {
    _dir: tempfile::TempDir,
    layout: LocalLayout,
    engine: Arc<Engine>,
    gateway_key: SigningKey,
    encoder_key: SigningKey,
    store_root: std::path::PathBuf,
}

fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path().join("data"));
    layout.create().unwrap();
    let gateway_key = SigningKey::generate().unwrap();
    let encoder_key = SigningKey::generate().unwrap();
    layout
        .gateway_signers()
        .register("gw-1", &gateway_key.verifying_key())
        .unwrap();
    layout
        .encoder_signers()
        .register("enc-1", &encoder_key.verifying_key())
        .unwrap();
    let store_root = dir.path().join("store");
    Node {
        layout,
        engine: memory_engine(engine_config()),
        gateway_key,
        encoder_key,
        store_root,
        _dir: dir,
    }
}

impl Node {
    fn encoder(&self) -> Arc<Encoder> {
        let settings = EncoderSettings {
            exports: [ExportKind::Asciicast, ExportKind::Transcript]
                .into_iter()
                .collect(),
            gateway_signers: Some(self.layout.gateway_signers()),
            index_key: Some(self.encoder_key.clone()),
            ..EncoderSettings::default()
        };
        Arc::new(Encoder::new(
            self.engine.clone(),
            self.layout.clone(),
            settings,
            worker("enc-1"),
        ))
    }

    fn uploader(&self) -> Arc<Uploader> {
        let store =
            psm_storage::open(&StoreConfig::Local(LocalConfig::new(&self.store_root))).unwrap();
        Arc::new(
            Uploader::new(
                self.engine.clone(),
                store,
                self.layout.clone(),
                worker("up-1"),
            )
            .with_manifest_signers(self.layout.encoder_signers()),
        )
    }
}

#[tokio::test]
async fn a_recording_signed_by_an_unregistered_key_is_kept_but_not_encoded() {
    let n = node();
    let trusted = ended(&n.engine, &n.layout, &n.gateway_key).await;
    let foreign_key = SigningKey::generate().unwrap();
    let foreign = ended(&n.engine, &n.layout, &foreign_key).await;

    let summary = n.encoder().run_until_idle().await;
    assert_eq!(summary.completed.len(), 2, "{summary:?}");

    let good = Manifest::read(&n.layout.manifest(trusted), trusted).unwrap();
    assert!(good.integrity.complete);
    assert_eq!(good.gateway.as_deref(), Some("gw-1"));
    assert_eq!(good.exports.len(), 2);

    let bad = Manifest::read(&n.layout.manifest(foreign), foreign).unwrap();
    assert!(!bad.integrity.complete);
    assert!(bad.exports.is_empty(), "nothing derived from it: {bad:?}");
    assert_eq!(bad.gateway, None);
    assert_eq!(
        bad.recording_signer.as_deref(),
        Some(foreign_key.verifying_key().to_string().as_str())
    );
    let note = n.engine.session(foreign).await.unwrap().failure_reason;
    assert!(
        note.as_deref()
            .is_some_and(|t| t.contains("not a registered gateway's key")),
        "the session says why: {note:?}"
    );
    // Kept as evidence.
    assert!(n.layout.raw_recording(foreign).exists());

    // Both manifests are signed by the encoder's key.
    for id in [trusted, foreign] {
        let dir = n.layout.exports_dir(id);
        let bytes = std::fs::read(dir.join("manifest.json")).unwrap();
        let sig = std::fs::read(dir.join(MANIFEST_SIGNATURE_FILE)).unwrap();
        let by =
            verify_signature(&bytes, Some(&sig), &n.layout.encoder_signers().keys(), &dir).unwrap();
        assert_eq!(by, n.encoder_key.verifying_key());
    }
}

#[tokio::test]
async fn the_uploader_refuses_a_set_whose_manifest_changed_or_is_not_signed_by_a_registered_encoder()
 {
    let n = node();
    let changed = ended(&n.engine, &n.layout, &n.gateway_key).await;
    let unsigned = ended(&n.engine, &n.layout, &n.gateway_key).await;
    let intact = ended(&n.engine, &n.layout, &n.gateway_key).await;
    assert_eq!(n.encoder().run_until_idle().await.completed.len(), 3);

    // Someone with access to the disk edits a manifest (to list a forged export) after the
    // encoder signed it, and removes another one's signature.
    let path = n.layout.manifest(changed);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("\"complete\": true", "\"complete\": false"),
    )
    .unwrap();
    std::fs::remove_file(n.layout.exports_dir(unsigned).join(MANIFEST_SIGNATURE_FILE)).unwrap();

    let uploader = n.uploader();
    for _ in 0..4 {
        let _ = uploader.clone().run_until_idle().await;
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    let stage = |id| {
        let e = n.engine.clone();
        async move { e.session(id).await.unwrap() }
    };
    assert_eq!(stage(intact).await.stage, Stage::DoneUploaded);
    assert!(
        n.store_root
            .join(format!("sessions/{intact}/{MANIFEST_SIGNATURE_FILE}"))
            .exists(),
        "the signature is stored beside the manifest"
    );
    for (id, why) in [
        (changed, "does not match the document"),
        (unsigned, "not signed"),
    ] {
        let s = stage(id).await;
        assert_ne!(s.stage, Stage::DoneUploaded, "{id}");
        let reason = s.failure_reason.unwrap_or_default();
        assert!(reason.contains(why), "{id}: {reason}");
        assert!(
            n.layout.raw_recording(id).exists(),
            "local data kept: nothing is lost"
        );
        assert!(
            !n.store_root
                .join(format!("sessions/{id}/manifest.json"))
                .exists(),
            "no set closed in the store"
        );
    }
}

/// M12: what a gateway committed to at EndSession is what gets encoded and uploaded. A
/// recording cut back to an earlier chunk (alone it reads as merely truncated), or replaced
/// by another one signed with the same registered gateway key, is kept as evidence but not
/// encoded; a set whose manifest was not checked against the commitment is not uploaded.
#[tokio::test]
async fn a_recording_that_is_not_what_its_gateway_committed_to_is_kept_but_not_encoded() {
    let n = node();
    let gw = instance("gateway-test");
    let mut committed = Vec::new();
    for said in [&b"root\r\n"[..], b"cut", b"swapped", b"unchecked"] {
        let (id, c) = recorded(&n.engine, &n.layout, &n.gateway_key, said).await;
        n.engine
            .end_session_committed(id, &gw, Some(&c))
            .await
            .unwrap();
        committed.push((id, c));
    }
    let [(intact, c_intact), (cut, _), (swapped, _), (unchecked, _)] = committed[..] else {
        unreachable!()
    };
    // Someone with access to the disk cuts one recording back to its first chunk, and
    // writes another again with the same (registered) gateway key.
    let raw = n.layout.raw_recording(cut);
    let bytes = std::fs::read(&raw).unwrap();
    let r = psm_recording::Reader::from_bytes(bytes.clone(), Default::default()).unwrap();
    let second = r.chunks()[1].offset as usize;
    std::fs::write(&raw, &bytes[..second]).unwrap();
    std::fs::remove_file(n.layout.raw_recording(swapped)).unwrap();
    write_recording(&n.layout, swapped, &n.gateway_key, b"nothing to see");

    // `unchecked` is encoded without its commitment (as `psm encode` would) and committed
    // by hand; the others by the encoder's claims.
    let encoder = n.encoder();
    encoder.encode(unchecked).await.unwrap();
    let lease = n
        .engine
        .claim_for_encoding_among(&instance("enc-1"), 1, &[unchecked])
        .await
        .unwrap()
        .remove(0);
    n.engine
        .complete(&lease, psm_core::Completion::default())
        .await
        .unwrap();
    let summary = encoder.run_until_idle().await;
    assert_eq!(summary.completed.len(), 3, "{summary:?}");

    let good = Manifest::read(&n.layout.manifest(intact), intact).unwrap();
    assert!(good.integrity.complete, "{good:?}");
    assert_eq!(good.committed, Some(c_intact));
    assert_eq!(good.recording_chain, Some(c_intact.chain_hex()));
    assert_eq!(good.exports.len(), 2);
    for id in [cut, swapped] {
        let m = Manifest::read(&n.layout.manifest(id), id).unwrap();
        assert!(!m.integrity.complete);
        assert!(m.exports.is_empty(), "nothing derived from it: {m:?}");
        let note = n.engine.session(id).await.unwrap().failure_reason;
        assert!(
            note.as_deref().is_some_and(
                |t| t.contains("does not match what its gateway committed to at EndSession")
            ),
            "{id}: {note:?}"
        );
        assert!(n.layout.raw_recording(id).exists(), "kept as evidence");
    }

    let uploader = n.uploader();
    for _ in 0..4 {
        let _ = uploader.clone().run_until_idle().await;
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    for id in [intact, cut, swapped] {
        assert_eq!(
            n.engine.session(id).await.unwrap().stage,
            Stage::DoneUploaded,
            "{id}: stored, with the reason in its manifest"
        );
    }
    let s = n.engine.session(unchecked).await.unwrap();
    assert_ne!(s.stage, Stage::DoneUploaded);
    let reason = s.failure_reason.unwrap_or_default();
    assert!(
        reason.contains("not checked against the commitment its gateway sent"),
        "{reason}"
    );
    assert!(
        n.layout.raw_recording(unchecked).exists(),
        "nothing is lost"
    );
}
