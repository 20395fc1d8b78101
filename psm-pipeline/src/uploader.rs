//! The uploader: claims Done-Encoded sessions, stores each file of their recording set,
//! verifies every one, commits Done-Uploaded with its fencing token, and only then deletes
//! the local copy.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use psm_core::{Completion, CoreError, Lease, SessionId, Stage, WorkQueue};
use psm_storage::{Checksum, ObjectKey, RecordingStore, VerifyDepth, layout as remote};
use tokio::sync::watch;

use crate::error::PipelineError;
use crate::events::{EventSink, NoEvents, PipelineEvent, SessionProgress, Step};
use crate::layout::{LocalLayout, MANIFEST_FILE};
use crate::manifest::{Manifest, ManifestFile, sync_dir, verify_signature};
use crate::worker::{RunSummary, StepWorker, WorkerConfig, run_loop};
use psm_recording::keys::{DetachedSignature, SignerRegistry};
use psm_recording::layout::MANIFEST_SIGNATURE_FILE;

/// The uploader worker.
///
/// ```no_run
/// # async fn demo(cp: std::sync::Arc<dyn psm_core::WorkQueue>) -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use psm_pipeline::{LocalLayout, Uploader, WorkerConfig};
/// use psm_storage::{StoreConfig, LocalConfig};
///
/// let store = psm_storage::open(&StoreConfig::parse("/mnt/recordings")?)?;
/// let config = WorkerConfig::new(psm_core::ProcessInstance::new("uploader-1")?);
/// let uploader = Arc::new(Uploader::new(cp, store, LocalLayout::new("/var/lib/psm"), config));
/// let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
/// let summary = uploader.run(stop_rx).await; // until stop_tx.send(true)
/// # Ok(()) }
/// ```
pub struct Uploader {
    cp: Arc<dyn WorkQueue>,
    store: Arc<dyn RecordingStore>,
    layout: LocalLayout,
    config: WorkerConfig,
    sink: Arc<dyn EventSink>,
    manifest_signers: Option<SignerRegistry>,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader")
            .field("store", &self.store.describe())
            .field("layout", &self.layout)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The local path of one file of a set.
fn local_path(layout: &LocalLayout, session: SessionId, file: &ManifestFile, raw: bool) -> PathBuf {
    if raw {
        layout.raw_recording(session)
    } else {
        layout.exports_dir(session).join(&file.name)
    }
}

fn object_key(session: SessionId, name: &str) -> Result<ObjectKey, PipelineError> {
    Ok(remote::session_prefix(&session.to_string())?.join(name)?)
}

impl Uploader {
    /// An uploader over a control plane, a store and the node's local layout.
    pub fn new(
        cp: Arc<dyn WorkQueue>,
        store: Arc<dyn RecordingStore>,
        layout: LocalLayout,
        config: WorkerConfig,
    ) -> Self {
        Self {
            cp,
            store,
            layout,
            config,
            sink: Arc::new(NoEvents),
            manifest_signers: None,
        }
    }

    /// Uploads only sets whose manifest is signed (`manifest.sig`) by a key in `registry`
    /// (`DATA/keys/signers/encoders`, read at each upload): a set whose manifest is unsigned,
    /// signed by another key, or changed since it was signed fails its attempt (and, retried,
    /// ends Failed with the reason), its local files kept. Without it, manifests are not
    /// checked.
    pub fn with_manifest_signers(mut self, registry: SignerRegistry) -> Self {
        self.manifest_signers = Some(registry);
        self
    }

    /// Sends events to `sink` too (progress bars).
    pub fn with_events(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.sink = sink;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn RecordingStore> {
        &self.store
    }

    /// Serves until `stop` turns true, then finishes the sessions in hand.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) -> RunSummary {
        if let Err(e) = self.cleanup_uploaded().await {
            tracing::warn!(error = %e, "cleanup of already uploaded local data failed");
        }
        run_loop(self, stop, false).await
    }

    /// Uploads every session that can be claimed now, then returns (the `psm upload` command).
    pub async fn run_until_idle(self: Arc<Self>) -> RunSummary {
        let (_tx, rx) = watch::channel(false);
        run_loop(self, rx, true).await
    }

    /// Uploads one claimed session: every file of its set, then its manifest, each verified.
    /// Does not commit; returns what to commit with.
    pub async fn upload(&self, lease: &Lease) -> Result<Completion, PipelineError> {
        let session = lease.session;
        let manifest_path = self.layout.manifest(session);
        // A missing manifest is NotEncoded; the set is then parsed from the bytes it uploads.
        Manifest::read(&manifest_path, session)?;
        let raw_path = self.layout.raw_recording(session);
        if !raw_path.exists() {
            return Err(PipelineError::RawMissing {
                session,
                path: raw_path,
            });
        }
        let manifest_bytes =
            std::fs::read(&manifest_path).map_err(PipelineError::local(&manifest_path))?;
        let manifest = Manifest::from_bytes(&manifest_bytes, session, &manifest_path)?;
        let sig_path = self
            .layout
            .exports_dir(session)
            .join(MANIFEST_SIGNATURE_FILE);
        let signature = match std::fs::read(&sig_path) {
            Ok(b) if b.len() <= DetachedSignature::MAX_TEXT_LEN => Some(b),
            Ok(_) => {
                return Err(PipelineError::Manifest {
                    path: sig_path,
                    reason: "too large to be a signature".into(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(PipelineError::local(&sig_path)(e)),
        };
        if let Some(registry) = &self.manifest_signers {
            let by = verify_signature(
                &manifest_bytes,
                signature.as_deref(),
                &registry.keys(),
                &manifest_path,
            )?;
            tracing::debug!(session_id = %session, encoder = %by, "manifest signature verified");
        }
        // The encoder checked the recording against the commitment its claim carried; this
        // claim carries the control plane's copy: they must be the same.
        if let Some(c) = lease.recording
            && manifest.committed != Some(c)
        {
            return Err(PipelineError::Manifest {
                path: manifest_path,
                reason: format!(
                    "not checked against the commitment its gateway sent at EndSession ({c}): \
                     the manifest says {}",
                    manifest
                        .committed
                        .map_or_else(|| "nothing was committed".to_owned(), |m| m.to_string())
                ),
            });
        }
        let total: u64 =
            manifest.files().map(|f| f.size).sum::<u64>() + manifest_bytes.len() as u64;
        self.sink.event(&PipelineEvent::Started {
            step: Step::Upload,
            session,
            total_bytes: total,
        });
        let progress = SessionProgress {
            sink: self.sink.as_ref(),
            step: Step::Upload,
            session,
        };
        for (i, file) in manifest.files().enumerate() {
            let path = local_path(&self.layout, session, file, i == 0);
            let key = object_key(session, &file.name)?;
            let receipt = self
                .store
                .put_file(&key, &path, Some(file.blake3), &progress)
                .await
                .map_err(|e| match e {
                    psm_storage::StorageError::LocalFile { path, source }
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        PipelineError::LocalMismatch {
                            session,
                            path,
                            reason: "vanished: it is listed in the manifest but not on disk".into(),
                        }
                    }
                    psm_storage::StorageError::LocalChanged {
                        path,
                        expected,
                        actual,
                    } => PipelineError::LocalMismatch {
                        session,
                        path,
                        reason: format!("hashes to {actual}, the manifest says {expected}"),
                    },
                    other => other.into(),
                })?;
            if receipt.size != file.size {
                return Err(PipelineError::LocalMismatch {
                    session,
                    path,
                    reason: format!("is {} bytes, the manifest says {}", receipt.size, file.size),
                });
            }
            tracing::debug!(session_id = %session, key = %key, size = receipt.size,
                verified_by = ?receipt.verified_by, "file stored and verified");
        }
        // Its signature, then the manifest last: its presence in the store closes the set.
        if let Some(signature) = &signature {
            let key = object_key(session, MANIFEST_SIGNATURE_FILE)?;
            self.store
                .put_file(&key, &sig_path, Some(Checksum::of(signature)), &progress)
                .await?;
        }
        let key = object_key(session, MANIFEST_FILE)?;
        self.store
            .put_file(
                &key,
                &manifest_path,
                Some(Checksum::of(&manifest_bytes)),
                &progress,
            )
            .await?;
        Ok(Completion {
            recording_format: Some(".psmr".into()),
            ssh_logs_uploaded: (manifest.protocol.as_deref() == Some("ssh")).then_some(true),
            // The encoder's note stays on the session: a Done-Uploaded recording that was
            // damaged still says so in its status.
            note: manifest.note(),
        })
    }

    /// Deletes the local copy of a session whose upload was verified and committed: the
    /// files the manifest lists, then encoder leftovers, then the manifest.
    async fn delete_local(&self, session: SessionId) -> Result<(), PipelineError> {
        let manifest_path = self.layout.manifest(session);
        let manifest = match Manifest::read(&manifest_path, session) {
            Ok(m) => Some(m),
            Err(PipelineError::NotEncoded { .. }) => None,
            Err(e) => return Err(e),
        };
        let raw = self.layout.raw_recording(session);
        remove_if_present(&raw)?;
        // Indexed copies of an encoder that crashed before its rename.
        crate::seek_index::remove_leftovers(&raw)?;
        if let Some(dir) = raw.parent() {
            sync_dir(dir)?;
        }
        let dir = self.layout.exports_dir(session);
        if let Some(m) = &manifest {
            for f in &m.exports {
                remove_if_present(&dir.join(&f.name))?;
            }
        }
        // Temporaries of an encoder that crashed (".name.tmp"): never recording data.
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') && name.ends_with(".tmp") {
                    remove_if_present(&entry.path())?;
                }
            }
        }
        remove_if_present(&dir.join(MANIFEST_SIGNATURE_FILE))?;
        remove_if_present(&manifest_path)?;
        match std::fs::remove_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(session_id = %session, dir = %dir.display(), error = %e,
                    "exports directory holds files the manifest does not list; left in place");
            }
        }
        tracing::info!(session_id = %session, "local copy deleted after verified upload");
        Ok(())
    }

    /// Finds local data of sessions already Done-Uploaded (an uploader died between its commit
    /// and its deletion), checks the stored copy once more, and deletes the local one.
    pub async fn cleanup_uploaded(&self) -> Result<usize, PipelineError> {
        let ids = self
            .layout
            .local_sessions()
            .map_err(PipelineError::local(self.layout.root()))?;
        let mut cleaned = 0;
        for id in ids {
            let stage = match self.cp.recording_status(&[id]).await {
                Ok(s) => s.first().map(|s| s.stage),
                Err(CoreError::UnknownSession(_)) => None,
                Err(e) => return Err(e.into()),
            };
            if stage != Some(Stage::DoneUploaded) {
                continue;
            }
            match self.stored_copy_is_complete(id).await {
                Ok(true) => {
                    self.delete_local(id).await?;
                    cleaned += 1;
                }
                Ok(false) => tracing::warn!(session_id = %id,
                    "Done-Uploaded, but the stored copy does not match the local one: local kept"),
                Err(e) => tracing::warn!(session_id = %id, error = %e,
                    "could not check the stored copy: local kept"),
            }
        }
        Ok(cleaned)
    }

    async fn stored_copy_is_complete(&self, id: SessionId) -> Result<bool, PipelineError> {
        let manifest_path = self.layout.manifest(id);
        let mut checks: Vec<(ObjectKey, Checksum, u64)> = Vec::new();
        match Manifest::read(&manifest_path, id) {
            Ok(m) => {
                for f in m.files() {
                    checks.push((object_key(id, &f.name)?, f.blake3, f.size));
                }
                let bytes =
                    std::fs::read(&manifest_path).map_err(PipelineError::local(&manifest_path))?;
                checks.push((
                    object_key(id, MANIFEST_FILE)?,
                    Checksum::of(&bytes),
                    bytes.len() as u64,
                ));
                let sig_path = self.layout.exports_dir(id).join(MANIFEST_SIGNATURE_FILE);
                if let Ok(sig) = std::fs::read(&sig_path) {
                    checks.push((
                        object_key(id, MANIFEST_SIGNATURE_FILE)?,
                        Checksum::of(&sig),
                        sig.len() as u64,
                    ));
                }
            }
            Err(PipelineError::NotEncoded { .. }) => {
                let raw = self.layout.raw_recording(id);
                if raw.exists() {
                    let (c, size) = Checksum::of_file(&raw).await?;
                    checks.push((object_key(id, crate::layout::RAW_OBJECT_NAME)?, c, size));
                }
            }
            Err(e) => return Err(e),
        }
        for (key, checksum, size) in checks {
            if self
                .store
                .verify(&key, &checksum, size, VerifyDepth::Metadata)
                .await
                .is_err()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn remove_if_present(path: &Path) -> Result<(), PipelineError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PipelineError::local(path)(e)),
    }
}

#[async_trait]
impl StepWorker for Uploader {
    fn step(&self) -> Step {
        Step::Upload
    }
    fn control_plane(&self) -> &Arc<dyn WorkQueue> {
        &self.cp
    }
    fn config(&self) -> &WorkerConfig {
        &self.config
    }
    fn sink(&self) -> &Arc<dyn EventSink> {
        &self.sink
    }
    async fn claim(&self, limit: u32) -> Result<Vec<Lease>, CoreError> {
        self.cp.claim_for_upload(&self.config.instance, limit).await
    }
    async fn claim_among(&self, limit: u32, among: &[SessionId]) -> Result<Vec<Lease>, CoreError> {
        self.cp
            .claim_for_upload_among(&self.config.instance, limit, among)
            .await
    }
    fn local_candidates(&self) -> std::io::Result<Vec<SessionId>> {
        crate::affinity::local_sets(&self.layout)
    }
    async fn process(&self, lease: &Lease) -> Result<Completion, PipelineError> {
        self.upload(lease).await
    }
    async fn after_commit(&self, session: SessionId) {
        match self.delete_local(session).await {
            Ok(()) => self.sink.event(&PipelineEvent::Finished {
                step: Step::Upload,
                session,
                bytes: 0,
            }),
            Err(e) => tracing::warn!(session_id = %session, error = %e,
                "uploaded and committed, but deleting the local copy failed; the next cleanup retries"),
        }
    }
}
