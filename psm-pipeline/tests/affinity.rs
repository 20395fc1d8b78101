//! Claim affinity: two nodes, each with its own data directory, share one control plane.
//! Every session is encoded and uploaded by the workers of the node whose gateway recorded
//! it; none is claimed, let alone failed, by a worker that cannot read its files; and a
//! node whose encoder is down keeps its sessions queued, attempts untouched, until it is back.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use psm_core::store::{AuditQuery, SqliteStore};
use psm_core::{AuditAction, Engine, SessionId, Stage};
use psm_pipeline::{Encoder, EncoderSettings, LocalLayout, RunSummary, Uploader};
use psm_storage::{LocalConfig, RecordingStore, StoreConfig};
use tokio::sync::watch;

struct Node {
    layout: LocalLayout,
    name: &'static str,
}

fn start_encoder(
    engine: &Arc<Engine>,
    node: &Node,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<RunSummary> {
    let enc = Arc::new(Encoder::new(
        engine.clone(),
        node.layout.clone(),
        EncoderSettings::default(),
        worker(&format!("encoder-{}", node.name)),
    ));
    tokio::spawn(enc.run(stop))
}

fn start_uploader(
    engine: &Arc<Engine>,
    store: &Arc<dyn RecordingStore>,
    node: &Node,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<RunSummary> {
    let up = Arc::new(Uploader::new(
        engine.clone(),
        store.clone(),
        node.layout.clone(),
        worker(&format!("uploader-{}", node.name)),
    ));
    tokio::spawn(up.run(stop))
}

async fn wait_for(engine: &Engine, ids: &[SessionId], stage: Stage) {
    // A bound so that a regression fails instead of hanging (not a timing assertion).
    for _ in 0..6000 {
        let st = engine.recording_status(ids).await.unwrap();
        assert!(
            st.iter().all(|s| s.stage != Stage::Failed),
            "a session failed: {st:?}"
        );
        if st.iter().all(|s| s.stage == stage) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "not all in {stage}: {:?}",
        engine.recording_status(ids).await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_node_processes_its_own_sessions_and_none_fails_for_files_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(dir.path().join("psm.db")).await.unwrap();
    let engine = engine_over(Arc::new(sqlite), engine_config());
    let store: Arc<dyn RecordingStore> = psm_storage::open(&StoreConfig::Local(LocalConfig::new(
        dir.path().join("store"),
    )))
    .unwrap();
    let nodes = [
        Node {
            layout: LocalLayout::new(dir.path().join("node-a")),
            name: "a",
        },
        Node {
            layout: LocalLayout::new(dir.path().join("node-b")),
            name: "b",
        },
    ];
    let mut on_node: [Vec<SessionId>; 2] = [Vec::new(), Vec::new()];
    for (i, node) in nodes.iter().enumerate() {
        node.layout.create().unwrap();
        for _ in 0..8 {
            on_node[i].push(recorded_session(&engine, &node.layout, 40).await);
        }
    }
    let all: Vec<SessionId> = on_node.iter().flatten().copied().collect();

    // Node b's encoder is down: node a's encoder runs alone and leaves b's sessions queued.
    let (stop_tx, stop) = watch::channel(false);
    let enc_a = start_encoder(&engine, &nodes[0], stop.clone());
    wait_for(&engine, &on_node[0], Stage::DoneEncoded).await;
    let enc_a_summary = {
        stop_tx.send(true).unwrap();
        enc_a.await.unwrap()
    };
    assert!(enc_a_summary.failed.is_empty(), "{enc_a_summary:?}");
    for id in &on_node[1] {
        let s = engine.session(*id).await.unwrap();
        assert_eq!(
            (s.stage, s.attempts),
            (Stage::Ended, 0),
            "node b's session {id} waits for node b"
        );
    }

    // Every worker of both nodes at once.
    let (stop_tx, stop) = watch::channel(false);
    let mut tasks = Vec::new();
    for node in &nodes {
        tasks.push(start_encoder(&engine, node, stop.clone()));
        tasks.push(start_uploader(&engine, &store, node, stop.clone()));
    }
    wait_for(&engine, &all, Stage::DoneUploaded).await;
    stop_tx.send(true).unwrap();
    let mut failed = Vec::new();
    let mut completed = 0;
    for t in tasks {
        let summary = t.await.unwrap();
        completed += summary.completed.len();
        failed.extend(summary.failed);
    }
    assert!(failed.is_empty(), "failed attempts: {failed:?}");
    assert_eq!(completed, all.len() * 2 - on_node[0].len());

    // Each step of each session was claimed once, by its own node's worker.
    for (i, node) in nodes.iter().enumerate() {
        for id in &on_node[i] {
            let trail = engine
                .store()
                .audit_events(&AuditQuery {
                    session: Some(*id),
                    ..AuditQuery::default()
                })
                .await
                .unwrap();
            assert!(
                trail
                    .iter()
                    .all(|e| e.record.action != AuditAction::AttemptFailed),
                "{id}: {trail:?}"
            );
            let claimers: Vec<&str> = trail
                .iter()
                .filter(|e| e.record.action == AuditAction::Claimed)
                .map(|e| e.record.actor.as_str())
                .collect();
            assert_eq!(
                claimers,
                [
                    format!("encoder-{}", node.name),
                    format!("uploader-{}", node.name)
                ],
                "{id}"
            );
            assert!(
                store
                    .head(
                        &psm_storage::ObjectKey::new(format!("sessions/{id}/manifest.json"))
                            .unwrap()
                    )
                    .await
                    .unwrap()
                    .is_some(),
                "{id} closed in the store"
            );
            assert!(!node.layout.raw_recording(*id).exists());
        }
    }
}
