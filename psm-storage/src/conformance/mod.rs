//! The conformance suite every [`RecordingStore`] backend passes (the shape of object_store's
//! own `integration.rs`): one function per behaviour, and [`run_all`] calling them in turn.
//!
//! Run it on a fresh, empty store (a new directory, bucket or container) configured with
//! [`tuning`], so the multipart path is exercised with small files. Failures panic with a
//! message naming the behaviour and the store.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use time::OffsetDateTime;

use crate::checksum::Checksum;
use crate::config::Tuning;
use crate::error::StorageError;
use crate::key::ObjectKey;
use crate::layout;
use crate::retention::{RetentionAuditor, RetentionEvent, RetentionPolicy, apply_retention};
use crate::store::{NoProgress, Progress, RecordingStore, VerifyDepth};

pub mod peers;

/// The transfer settings the suite expects: multipart from 6 MiB, in 5 MiB parts.
pub fn tuning() -> Tuning {
    Tuning {
        multipart_threshold: 6 << 20,
        part_size: 5 << 20,
        part_concurrency: 3,
        request_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(5),
        max_retries: 2,
        retry_timeout: Duration::from_secs(30),
    }
}

/// Deterministic, incompressible-looking test content.
pub fn content(len: usize, seed: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = u64::from(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn key(s: &str) -> ObjectKey {
    ObjectKey::new(s).unwrap()
}

/// Runs every behaviour against `store`; `scratch` is an empty local directory for files.
pub async fn run_all(store: &dyn RecordingStore, scratch: &Path) {
    put_get_head_delete(store).await;
    empty_object(store).await;
    overwrite_is_idempotent(store).await;
    list_is_sorted_and_segment_wise(store).await;
    delete_is_idempotent(store).await;
    get_limit_and_range(store).await;
    small_file_roundtrip(store, scratch).await;
    multipart_file_roundtrip(store, scratch).await;
    changed_local_file_is_refused(store, scratch).await;
    vanished_local_file_is_a_clear_error(store, scratch).await;
    verify_detects_mismatch(store).await;
    download_roundtrip(store, scratch).await;
    retention_deletes_due_sets_after_auditing(store).await;
}

/// put, get, head (with the stored checksum), delete.
pub async fn put_get_head_delete(store: &dyn RecordingStore) {
    let k = key("conformance/basic/object.bin");
    let body = Bytes::from(content(1000, 1));
    let receipt = store.put_bytes(&k, body.clone()).await.unwrap();
    assert_eq!(receipt.size, 1000);
    assert_eq!(receipt.checksum, Checksum::of(&body));
    let info = store.head(&k).await.unwrap().expect("head after put");
    assert_eq!(info.size, 1000, "{}", store.describe());
    assert_eq!(
        info.checksum,
        Some(receipt.checksum),
        "{}",
        store.describe()
    );
    assert_eq!(store.get(&k, 1 << 20).await.unwrap(), body);
    store.delete(&k).await.unwrap();
    assert!(store.head(&k).await.unwrap().is_none(), "head after delete");
    assert!(matches!(
        store.get(&k, 1 << 20).await,
        Err(StorageError::NotFound { .. })
    ));
}

/// A zero-byte object round-trips.
pub async fn empty_object(store: &dyn RecordingStore) {
    let k = key("conformance/empty/zero");
    let r = store.put_bytes(&k, Bytes::new()).await.unwrap();
    assert_eq!(r.size, 0);
    assert_eq!(store.get(&k, 10).await.unwrap().len(), 0);
    store
        .verify(&k, &Checksum::of(b""), 0, VerifyDepth::Content)
        .await
        .unwrap();
    store.delete(&k).await.unwrap();
}

/// Writing the same key again (a retaken upload) succeeds and leaves the new content.
pub async fn overwrite_is_idempotent(store: &dyn RecordingStore) {
    let k = key("conformance/overwrite/o");
    store
        .put_bytes(&k, Bytes::from_static(b"one"))
        .await
        .unwrap();
    store
        .put_bytes(&k, Bytes::from_static(b"one"))
        .await
        .unwrap();
    let r = store
        .put_bytes(&k, Bytes::from_static(b"two!"))
        .await
        .unwrap();
    assert_eq!(store.get(&k, 100).await.unwrap(), "two!");
    assert_eq!(
        store.head(&k).await.unwrap().unwrap().checksum,
        Some(r.checksum)
    );
    store.delete(&k).await.unwrap();
}

/// list returns exactly the objects under a prefix, by whole segments, in key order, and
/// never a backend's bookkeeping.
pub async fn list_is_sorted_and_segment_wise(store: &dyn RecordingStore) {
    for k in [
        "conformance/list/b/2",
        "conformance/list/a",
        "conformance/list/b/1",
        "conformance/listx/c",
    ] {
        store
            .put_bytes(&key(k), Bytes::from_static(b"x"))
            .await
            .unwrap();
    }
    let listed: Vec<String> = store
        .list(Some(&key("conformance/list")))
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.key.to_string())
        .collect();
    assert_eq!(
        listed,
        [
            "conformance/list/a",
            "conformance/list/b/1",
            "conformance/list/b/2"
        ],
        "{}",
        store.describe()
    );
    let all = store.list(None).await.unwrap();
    assert!(
        all.iter().all(|i| !i.key.as_str().contains("/.")),
        "bookkeeping listed"
    );
    assert!(all.iter().any(|i| i.key.as_str() == "conformance/listx/c"));
    for k in [
        "conformance/list/b/2",
        "conformance/list/a",
        "conformance/list/b/1",
        "conformance/listx/c",
    ] {
        store.delete(&key(k)).await.unwrap();
    }
    assert!(
        store
            .list(Some(&key("conformance/list")))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Deleting an absent object succeeds.
pub async fn delete_is_idempotent(store: &dyn RecordingStore) {
    store
        .delete(&key("conformance/never/written"))
        .await
        .unwrap();
}

/// get refuses objects above the caller's limit; get_range reads a slice.
pub async fn get_limit_and_range(store: &dyn RecordingStore) {
    let k = key("conformance/range/r");
    let body = content(4096, 2);
    store
        .put_bytes(&k, Bytes::from(body.clone()))
        .await
        .unwrap();
    assert!(matches!(
        store.get(&k, 100).await,
        Err(StorageError::TooLarge { size: 4096, .. })
    ));
    assert_eq!(store.get_range(&k, 100..200).await.unwrap(), body[100..200]);
    store.delete(&k).await.unwrap();
}

struct Counter(std::sync::atomic::AtomicU64);
impl Progress for Counter {
    fn advance(&self, bytes: u64) {
        self.0
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A file below the multipart threshold.
pub async fn small_file_roundtrip(store: &dyn RecordingStore, scratch: &Path) {
    let path = scratch.join("small.bin");
    let body = content(100_000, 3);
    std::fs::write(&path, &body).unwrap();
    let k = key("conformance/files/small.bin");
    let counter = Counter(0.into());
    let r = store.put_file(&k, &path, None, &counter).await.unwrap();
    assert_eq!(r.checksum, Checksum::of(&body));
    assert_eq!(counter.0.into_inner(), 100_000);
    store
        .verify(&k, &r.checksum, r.size, VerifyDepth::Content)
        .await
        .unwrap();
    store.delete(&k).await.unwrap();
}

/// A file above the threshold goes in parts (three here), with a known checksum given.
pub async fn multipart_file_roundtrip(store: &dyn RecordingStore, scratch: &Path) {
    let path = scratch.join("large.bin");
    let body = content((11 << 20) + 12_345, 4);
    std::fs::write(&path, &body).unwrap();
    let expected = Checksum::of(&body);
    let k = key("conformance/files/large.bin");
    let counter = Counter(0.into());
    let r = store
        .put_file(&k, &path, Some(expected), &counter)
        .await
        .unwrap();
    assert_eq!(r.size, body.len() as u64);
    assert_eq!(r.checksum, expected);
    assert_eq!(counter.0.into_inner(), body.len() as u64);
    let info = store.head(&k).await.unwrap().unwrap();
    assert_eq!(info.checksum, Some(expected), "{}", store.describe());
    store
        .verify(&k, &expected, r.size, VerifyDepth::Content)
        .await
        .unwrap();
    // Again without the checksum: hashed first, same result.
    let again = store.put_file(&k, &path, None, &NoProgress).await.unwrap();
    assert_eq!(again.checksum, expected);
    store.delete(&k).await.unwrap();
}

/// A local file that does not hash to the announced checksum is refused, small or large, and
/// leaves no object behind that claims the announced checksum.
pub async fn changed_local_file_is_refused(store: &dyn RecordingStore, scratch: &Path) {
    let wrong = Checksum::of(b"something else");
    for (name, len) in [("changed-small", 1000usize), ("changed-large", 7 << 20)] {
        let path = scratch.join(name);
        std::fs::write(&path, content(len, 5)).unwrap();
        let k = key(&format!("conformance/files/{name}"));
        let err = store
            .put_file(&k, &path, Some(wrong), &NoProgress)
            .await
            .expect_err("a mismatching local file was accepted");
        assert!(matches!(err, StorageError::LocalChanged { .. }), "{err}");
        if let Some(info) = store.head(&k).await.unwrap() {
            assert_ne!(info.checksum, Some(wrong));
        }
        store.delete(&k).await.unwrap();
    }
}

/// A file that is not there is an error naming it.
pub async fn vanished_local_file_is_a_clear_error(store: &dyn RecordingStore, scratch: &Path) {
    let path = scratch.join("never-existed.psmr");
    let err = store
        .put_file(&key("conformance/files/gone"), &path, None, &NoProgress)
        .await
        .expect_err("missing file uploaded");
    assert!(matches!(err, StorageError::LocalFile { .. }), "{err}");
    assert!(err.to_string().contains("never-existed.psmr"), "{err}");
}

/// verify notices a wrong size or checksum, at both depths.
pub async fn verify_detects_mismatch(store: &dyn RecordingStore) {
    let k = key("conformance/verify/v");
    let r = store
        .put_bytes(&k, Bytes::from_static(b"verified"))
        .await
        .unwrap();
    for depth in [VerifyDepth::Metadata, VerifyDepth::Content] {
        store.verify(&k, &r.checksum, 8, depth).await.unwrap();
        assert!(store.verify(&k, &r.checksum, 9, depth).await.is_err());
        assert!(
            store
                .verify(&k, &Checksum::of(b"other"), 8, depth)
                .await
                .is_err()
        );
    }
    assert!(
        store
            .verify(
                &key("conformance/verify/absent"),
                &r.checksum,
                8,
                VerifyDepth::Metadata
            )
            .await
            .is_err()
    );
    store.delete(&k).await.unwrap();
}

/// download writes the object to a file, checked against the stored checksum.
pub async fn download_roundtrip(store: &dyn RecordingStore, scratch: &Path) {
    let k = key("conformance/download/d");
    let body = content(300_000, 6);
    store
        .put_bytes(&k, Bytes::from(body.clone()))
        .await
        .unwrap();
    let path = scratch.join("downloaded.bin");
    let info = store.download(&k, &path, &NoProgress).await.unwrap();
    assert_eq!(info.checksum, Some(Checksum::of(&body)));
    assert_eq!(std::fs::read(&path).unwrap(), body);
    store.delete(&k).await.unwrap();
}

#[derive(Default)]
struct Recorder {
    events: std::sync::Mutex<Vec<RetentionEvent>>,
    refuse: Option<String>,
}

#[async_trait]
impl RetentionAuditor for Recorder {
    async fn record(&self, event: &RetentionEvent) -> Result<(), String> {
        if let Some(t) = &self.refuse
            && event.target.as_deref() == Some(t)
        {
            return Err("audit store down".into());
        }
        self.events.lock().unwrap().push(event.clone());
        Ok(())
    }
}

/// Retention deletes sets stored longer ago than their policy (global or per target),
/// audits each first, keeps a set whose audit failed, and leaves everything else alone.
pub async fn retention_deletes_due_sets_after_auditing(store: &dyn RecordingStore) {
    let sets = [
        ("s-default", "web-01"),
        ("s-longkeep", "prod-db"),
        ("s-audit-refused", "refused"),
    ];
    for (session, target) in sets {
        let prefix = layout::session_prefix(session).unwrap();
        store
            .put_bytes(
                &prefix.join("recording.psmr").unwrap(),
                Bytes::from_static(b"raw"),
            )
            .await
            .unwrap();
        let manifest = format!(r#"{{"target":"{target}","extra":{{"ignored":true}}}}"#);
        store
            .put_bytes(
                &layout::manifest_key(session).unwrap(),
                Bytes::from(manifest),
            )
            .await
            .unwrap();
    }
    // A set without a manifest (an interrupted upload) falls under the default policy.
    store
        .put_bytes(
            &key("sessions/s-no-manifest/recording.psmr"),
            Bytes::from_static(b"raw"),
        )
        .await
        .unwrap();
    let mut policy = RetentionPolicy::keep_days(30);
    policy.per_target.insert("prod-db".into(), 365);
    let auditor = Recorder {
        refuse: Some("refused".into()),
        ..Recorder::default()
    };
    let now = OffsetDateTime::now_utc();
    let early = apply_retention(store, &policy, now + time::Duration::days(10), &auditor)
        .await
        .unwrap();
    assert_eq!(
        (early.examined, early.deleted.len(), early.audit_failures),
        (4, 0, 0)
    );

    let report = apply_retention(store, &policy, now + time::Duration::days(40), &auditor)
        .await
        .unwrap();
    assert_eq!(report.examined, 4);
    assert_eq!(report.audit_failures, 1);
    let deleted: Vec<&str> = report.deleted.iter().map(|e| e.session.as_str()).collect();
    assert_eq!(
        deleted,
        ["s-default", "s-no-manifest"],
        "{}",
        store.describe()
    );
    assert_eq!(auditor.events.lock().unwrap().len(), 2);
    let event = &report.deleted[0];
    assert_eq!(event.target.as_deref(), Some("web-01"));
    assert_eq!(event.keep_days, 30);
    assert_eq!(
        event.keys.last().unwrap().file_name(),
        layout::MANIFEST_NAME
    );
    let left: Vec<String> = store
        .list(Some(&key(layout::SESSIONS_PREFIX)))
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.key.to_string())
        .collect();
    assert_eq!(
        left,
        [
            "sessions/s-audit-refused/manifest.json",
            "sessions/s-audit-refused/recording.psmr",
            "sessions/s-longkeep/manifest.json",
            "sessions/s-longkeep/recording.psmr",
        ]
    );
    // Nothing is due under a policy of "forever".
    let none = apply_retention(
        store,
        &RetentionPolicy::default(),
        now + time::Duration::days(4000),
        &auditor,
    )
    .await
    .unwrap();
    assert!(none.deleted.is_empty());
    for k in left {
        store.delete(&key(&k)).await.unwrap();
    }
}
