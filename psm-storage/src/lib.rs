//! # psm-storage
//!
//! Where finished recordings go. One trait, [`RecordingStore`] (multipart put, get, list,
//! delete, head with checksum, verify), and its backends on the `object_store` crate: a local
//! directory or mounted UNC/SMB share, S3 and S3-compatible services, Azure Blob Storage.
//!
//! Every upload is verified before it is reported done: the object's BLAKE3 is stored with it
//! (object metadata `psmblake3`, or a sidecar file locally), and the stored object is checked
//! against the bytes sent, by S3's own MD5-based ETag or by reading it back. Only a
//! [`PutReceipt`] allows a caller to delete its local copy. [`retention`] deletes stored
//! recordings after N days, per target or globally, auditing each deletion first.
//!
//! ```
//! # async fn demo() -> Result<(), psm_storage::StorageError> {
//! use psm_storage::{LocalConfig, NoProgress, ObjectKey, StoreConfig};
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("raw.psmr"), b"recording bytes").unwrap();
//!
//! // Or StoreConfig::parse("s3://bucket/prefix"), then credentials and endpoint.
//! let store = psm_storage::open(&StoreConfig::Local(LocalConfig::new(dir.path().join("store"))))?;
//! let key = ObjectKey::new("sessions/s1/recording.psmr")?;
//! let receipt = store
//!     .put_file(&key, &dir.path().join("raw.psmr"), None, &NoProgress)
//!     .await?;
//! assert_eq!(receipt.size, 15);
//! assert_eq!(store.list(None).await?.len(), 1);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! Where to look: [`store`] holds the trait, [`backend`] the implementations, [`config`] their
//! settings, [`layout`] how a session's recording set is named, [`retention`] the deleter.
//! With the `conformance` feature, `conformance` is the suite every backend passes.

pub mod backend;
pub mod checksum;
pub mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod error;
pub mod key;
pub mod layout;
pub mod retention;
pub mod store;

pub use backend::{ObjectBackend, open};
pub use checksum::Checksum;
pub use config::{
    AzureConfig, ExposeSecret, LocalConfig, S3Config, SecretString, StoreConfig, Tuning,
};
pub use error::StorageError;
pub use key::ObjectKey;
pub use retention::{
    RetentionAuditor, RetentionEvent, RetentionPolicy, RetentionReport, apply_retention,
};
pub use store::{
    NoProgress, ObjectInfo, Progress, PutReceipt, RecordingStore, Verification, VerifyDepth,
};
