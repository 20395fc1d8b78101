//! The one error type of psm-storage.

use std::path::PathBuf;

/// Everything that can go wrong storing, reading or verifying a recording. Each variant names
/// the object or file and the store it concerns; none carries a credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An object key or prefix is not acceptable.
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey {
        /// The key (cut to 200 bytes).
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The store's configuration is incomplete or contradictory.
    #[error("invalid storage configuration: {0}")]
    InvalidConfig(String),

    /// A local file could not be read or written.
    #[error("local file {path}: {source}")]
    LocalFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The local file changed while it was being uploaded (its content no longer hashes to
    /// what was announced): the upload is not trusted.
    #[error("local file {path} changed during upload: expected BLAKE3 {expected}, sent {actual}")]
    LocalChanged {
        /// The file.
        path: PathBuf,
        /// The checksum announced before the upload.
        expected: String,
        /// The checksum of the bytes actually sent.
        actual: String,
    },

    /// The object does not exist.
    #[error("object {key} not found in {store}")]
    NotFound {
        /// The key.
        key: String,
        /// The store.
        store: String,
    },

    /// The object is larger than the caller allowed to read into memory.
    #[error("object {key} in {store} is {size} bytes, more than the {limit} allowed")]
    TooLarge {
        /// The key.
        key: String,
        /// The store.
        store: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },

    /// The stored object does not match what was uploaded: size, stored checksum or content.
    #[error("verification of {key} in {store} failed: {reason}")]
    VerificationFailed {
        /// The key.
        key: String,
        /// The store.
        store: String,
        /// What did not match.
        reason: String,
    },

    /// The storage service refused the credentials or the operation.
    #[error("{store} refused {operation} on {key}: {message}")]
    Denied {
        /// The store.
        store: String,
        /// What was attempted.
        operation: &'static str,
        /// The key.
        key: String,
        /// The service's answer.
        message: String,
    },

    /// The storage service failed or could not be reached.
    #[error("{store}: {operation} of {key} failed: {source}")]
    Backend {
        /// The store.
        store: String,
        /// What was attempted.
        operation: &'static str,
        /// The key (or prefix).
        key: String,
        /// The cause.
        #[source]
        source: Box<object_store::Error>,
    },

    /// A stored manifest or metadata value could not be read.
    #[error("malformed {what} in {store}: {reason}")]
    Malformed {
        /// What (e.g. the manifest's key).
        what: String,
        /// The store.
        store: String,
        /// What is wrong.
        reason: String,
    },
}

impl StorageError {
    /// Whether retrying later may succeed (the service or the network failed), as opposed to a
    /// refusal or a bad request that will repeat.
    pub fn is_transient(&self) -> bool {
        match self {
            StorageError::Backend { source, .. } => !matches!(
                source.as_ref(),
                object_store::Error::NotSupported { .. }
                    | object_store::Error::InvalidPath { .. }
                    | object_store::Error::UnknownConfigurationKey { .. }
            ),
            StorageError::VerificationFailed { .. } | StorageError::LocalChanged { .. } => true,
            _ => false,
        }
    }
}

/// Cuts outside text for an error message.
pub(crate) fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}
