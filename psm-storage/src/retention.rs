//! Retention: stored recordings are deleted after N days, per target or globally, and every
//! deletion is audited before it happens.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::error::StorageError;
use crate::key::ObjectKey;
use crate::layout::{self, MANIFEST_NAME, ManifestSummary, SESSIONS_PREFIX};
use crate::store::{ObjectInfo, RecordingStore};

/// How long stored recordings are kept.
///
/// ```
/// use psm_storage::RetentionPolicy;
/// let mut policy = RetentionPolicy::keep_days(365);
/// policy.per_target.insert("prod-db-01".into(), 2555); // seven years for this one
/// assert_eq!(policy.days_for(Some("prod-db-01")), Some(2555));
/// assert_eq!(policy.days_for(Some("web-01")), Some(365));
/// assert_eq!(RetentionPolicy::default().days_for(None), None); // keep forever
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Days to keep recordings of targets without their own rule; `None` keeps them forever.
    pub default_days: Option<u32>,
    /// Days to keep recordings of particular targets (by the manifest's `target`).
    pub per_target: BTreeMap<String, u32>,
}

impl RetentionPolicy {
    /// Keep every recording `days` days.
    pub fn keep_days(days: u32) -> Self {
        Self {
            default_days: Some(days),
            per_target: BTreeMap::new(),
        }
    }

    /// The days a recording of `target` is kept, `None` for ever.
    pub fn days_for(&self, target: Option<&str>) -> Option<u32> {
        target
            .and_then(|t| self.per_target.get(t).copied())
            .or(self.default_days)
    }

    fn shortest(&self) -> Option<u32> {
        self.per_target
            .values()
            .copied()
            .chain(self.default_days)
            .min()
    }
}

/// One recording set retention is about to delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionEvent {
    /// The store.
    pub store: String,
    /// The session id (the set's directory name).
    pub session: String,
    /// Its target, from the manifest.
    pub target: Option<String>,
    /// When it was stored (its newest object); its age counts from here.
    pub stored_at: OffsetDateTime,
    /// The days the policy keeps it.
    pub keep_days: u32,
    /// The objects deleted.
    pub keys: Vec<ObjectKey>,
    /// Their total size.
    pub bytes: u64,
}

/// Records retention deletions somewhere durable (the control plane's audit trail). Called
/// before a set is deleted; an error keeps the set, so no deletion goes unaudited.
#[async_trait]
pub trait RetentionAuditor: Send + Sync {
    /// Records that `event`'s set is about to be deleted.
    async fn record(&self, event: &RetentionEvent) -> Result<(), String>;
}

/// What one retention pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Sets looked at.
    pub examined: usize,
    /// Sets deleted (each was audited first).
    pub deleted: Vec<RetentionEvent>,
    /// Sets kept because the auditor failed.
    pub audit_failures: usize,
}

/// One retention pass over `store` at `now`: every recording set under `sessions/` stored
/// longer ago than its policy allows is audited, then deleted (data objects first, the manifest last, so an
/// interrupted pass is finished by the next one).
pub async fn apply_retention(
    store: &dyn RecordingStore,
    policy: &RetentionPolicy,
    now: OffsetDateTime,
    auditor: &dyn RetentionAuditor,
) -> Result<RetentionReport, StorageError> {
    let mut report = RetentionReport::default();
    let Some(shortest) = policy.shortest() else {
        return Ok(report);
    };
    let root = ObjectKey::new(SESSIONS_PREFIX)?;
    let mut sets: BTreeMap<String, Vec<ObjectInfo>> = BTreeMap::new();
    for object in store.list(Some(&root)).await? {
        if let Some(session) = layout::session_of(&object.key) {
            sets.entry(session.to_owned()).or_default().push(object);
        }
    }
    for (session, objects) in sets {
        report.examined += 1;
        // A set's age counts from when it was stored (its newest object, the manifest
        // written last), as object stores' own lifecycle rules count.
        let stored_at = objects.iter().map(|o| o.last_modified).max().unwrap_or(now);
        // Nothing can be due before the shortest period: skip reading the manifest.
        if now - stored_at < Duration::days(i64::from(shortest)) {
            continue;
        }
        let manifest_key = layout::manifest_key(&session)?;
        let summary = if objects.iter().any(|o| o.key == manifest_key) {
            match read_summary(store, &manifest_key).await {
                Ok(s) => s,
                Err(e @ StorageError::Malformed { .. }) => {
                    tracing::warn!(session_id = %session, error = %e,
                        "retention: unreadable manifest, recording kept");
                    continue;
                }
                Err(e) => return Err(e),
            }
        } else {
            ManifestSummary::default()
        };
        let Some(days) = policy.days_for(summary.target.as_deref()) else {
            continue;
        };
        if now - stored_at < Duration::days(i64::from(days)) {
            continue;
        }
        let mut keys: Vec<ObjectKey> = objects.iter().map(|o| o.key.clone()).collect();
        // Data first, the manifest last.
        keys.sort_by_key(|k| (k.file_name() == MANIFEST_NAME, k.clone()));
        let event = RetentionEvent {
            store: store.describe(),
            session: session.clone(),
            target: summary.target,
            stored_at,
            keep_days: days,
            bytes: objects.iter().map(|o| o.size).sum(),
            keys,
        };
        if let Err(why) = auditor.record(&event).await {
            tracing::warn!(session_id = %session, error = %why,
                "retention: audit failed, recording kept");
            report.audit_failures += 1;
            continue;
        }
        let mut deleted = BTreeSet::new();
        for key in &event.keys {
            store.delete(key).await?;
            deleted.insert(key.clone());
        }
        tracing::info!(session_id = %session, target = ?event.target, keep_days = days,
            objects = deleted.len(), bytes = event.bytes, "retention: recording deleted");
        report.deleted.push(event);
    }
    Ok(report)
}

async fn read_summary(
    store: &dyn RecordingStore,
    key: &ObjectKey,
) -> Result<ManifestSummary, StorageError> {
    let bytes = store.get(key, layout::MAX_MANIFEST_LEN).await?;
    serde_json::from_slice(&bytes).map_err(|e| StorageError::Malformed {
        what: key.to_string(),
        store: store.describe(),
        reason: e.to_string(),
    })
}
