//! The [`RecordingStore`] trait: what PSM needs from wherever finished recordings go.

use std::ops::Range;
use std::path::Path;

use async_trait::async_trait;
use bytes::Bytes;
use time::OffsetDateTime;

use crate::checksum::Checksum;
use crate::error::StorageError;
use crate::key::ObjectKey;

/// What a store knows about one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The key.
    pub key: ObjectKey,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub last_modified: OffsetDateTime,
    /// The BLAKE3 checksum stored with it (`None` from [`RecordingStore::list`], which does not
    /// read metadata, and for objects written by something other than PSM).
    pub checksum: Option<Checksum>,
    /// The service's ETag, if it has one.
    pub e_tag: Option<String>,
}

/// How an upload was verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verification {
    /// The service's own checksum of what it stored (S3's MD5-based ETag) matched the one
    /// computed over the bytes sent, and the stored size and `psmblake3` metadata match.
    ServiceChecksum,
    /// The object was read back whole and its BLAKE3 matched.
    ReadBack,
}

/// The proof an upload is durable and intact: only after receiving one may a caller delete its
/// local copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutReceipt {
    /// The key written.
    pub key: ObjectKey,
    /// Bytes stored.
    pub size: u64,
    /// BLAKE3 of the content, as stored in the object's metadata.
    pub checksum: Checksum,
    /// How the stored object was checked against it.
    pub verified_by: Verification,
}

/// How thoroughly [`RecordingStore::verify`] checks a stored object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyDepth {
    /// Size and stored checksum metadata (one HEAD request).
    Metadata,
    /// Reads the whole object back and hashes it.
    Content,
}

/// Receives upload and download progress, in bytes; called from the transfer task.
pub trait Progress: Send + Sync {
    /// `bytes` more have been transferred.
    fn advance(&self, bytes: u64);
}

/// Progress nobody watches.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn advance(&self, _bytes: u64) {}
}

/// Where finished recordings go: a local directory or mounted UNC/SMB share, an S3 or
/// S3-compatible bucket, or an Azure Blob container, each under a key prefix.
///
/// Every write is verified before it returns: [`put_file`](RecordingStore::put_file) and
/// [`put_bytes`](RecordingStore::put_bytes) return a [`PutReceipt`] only once the stored
/// object's size and BLAKE3 checksum are known to match what was sent. Writes of the same key
/// with the same content are idempotent, so a worker that retakes an interrupted upload simply
/// writes again.
///
/// ```
/// # async fn demo() -> Result<(), psm_storage::StorageError> {
/// use psm_storage::{LocalConfig, NoProgress, ObjectKey, RecordingStore, StoreConfig, VerifyDepth};
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = psm_storage::open(&StoreConfig::Local(LocalConfig::new(dir.path())))?;
/// let key = ObjectKey::new("sessions/s1/transcript.txt")?;
/// let receipt = store.put_bytes(&key, "$ ls\n".into()).await?;
/// assert_eq!(store.head(&key).await?.and_then(|i| i.checksum), Some(receipt.checksum));
/// store.verify(&key, &receipt.checksum, receipt.size, VerifyDepth::Content).await?;
/// assert_eq!(store.get(&key, 1024).await?, "$ ls\n");
/// store.delete(&key).await?;
/// assert!(store.head(&key).await?.is_none());
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[async_trait]
pub trait RecordingStore: Send + Sync + std::fmt::Debug {
    /// A short description for logs and errors (`s3://bucket/prefix`, `file:///srv/psm`);
    /// never a credential.
    fn describe(&self) -> String;

    /// Uploads a local file (multipart above the backend's threshold), stores its BLAKE3 as
    /// metadata and verifies the stored object. When the caller already knows the checksum
    /// (`expected`), the file is read once and the upload is refused with
    /// [`StorageError::LocalChanged`] if the bytes sent do not hash to it.
    async fn put_file(
        &self,
        key: &ObjectKey,
        path: &Path,
        expected: Option<Checksum>,
        progress: &dyn Progress,
    ) -> Result<PutReceipt, StorageError>;

    /// Uploads bytes held in memory and verifies them.
    async fn put_bytes(&self, key: &ObjectKey, bytes: Bytes) -> Result<PutReceipt, StorageError>;

    /// Reads a whole object into memory, refusing objects larger than `limit` bytes.
    async fn get(&self, key: &ObjectKey, limit: u64) -> Result<Bytes, StorageError>;

    /// Reads a byte range of an object (for seeking replay).
    async fn get_range(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes, StorageError>;

    /// Downloads an object to a local file (written beside it and renamed into place),
    /// checking its content against the stored checksum when there is one.
    async fn download(
        &self,
        key: &ObjectKey,
        path: &Path,
        progress: &dyn Progress,
    ) -> Result<ObjectInfo, StorageError>;

    /// What the store knows about an object, with its stored checksum; `None` if absent.
    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, StorageError>;

    /// Every object under `prefix` (all objects with `None`), in key order, without checksums.
    async fn list(&self, prefix: Option<&ObjectKey>) -> Result<Vec<ObjectInfo>, StorageError>;

    /// Deletes an object; deleting an absent object succeeds.
    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError>;

    /// Checks that a stored object has `size` bytes and content hashing to `checksum`.
    async fn verify(
        &self,
        key: &ObjectKey,
        checksum: &Checksum,
        size: u64,
        depth: VerifyDepth,
    ) -> Result<(), StorageError>;
}
