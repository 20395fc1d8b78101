//! A local directory or mounted UNC/SMB share.

use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::{ObjectStoreExt, PutPayload};

use super::{Flavor, ObjectBackend};
use crate::checksum::Checksum;
use crate::config::LocalConfig;
use crate::error::StorageError;
use crate::key::ObjectKey;

/// The directory (under the store's prefix) holding checksum sidecars. Object keys never start
/// with a dot, so it never collides with a recording.
pub(super) const META_DIR: &str = ".psm-meta";

/// Longest sidecar accepted when reading one back.
const MAX_SIDECAR: u64 = 1024;

#[derive(serde::Serialize, serde::Deserialize)]
struct Sidecar {
    blake3: Checksum,
    size: u64,
}

pub(super) fn build(c: &LocalConfig) -> Result<ObjectBackend, StorageError> {
    std::fs::create_dir_all(&c.root).map_err(|source| StorageError::LocalFile {
        path: c.root.clone(),
        source,
    })?;
    let fs = LocalFileSystem::new_with_prefix(&c.root)
        .map_err(|e| StorageError::InvalidConfig(format!("local store {}: {e}", c.root.display())))?
        .with_automatic_cleanup(true)
        .with_fsync(c.fsync);
    let mut name = format!("file://{}", c.root.display());
    if let Some(p) = &c.prefix {
        name = format!("{name}/{p}");
    }
    Ok(ObjectBackend {
        inner: Arc::new(fs),
        prefix: c.prefix.clone(),
        name,
        flavor: Flavor::Local,
        tuning: c.tuning.clone(),
    })
}

pub(super) async fn write_sidecar(
    b: &ObjectBackend,
    key: &ObjectKey,
    checksum: &Checksum,
    size: u64,
) -> Result<(), StorageError> {
    let body = serde_json::to_vec(&Sidecar {
        blake3: *checksum,
        size,
    })
    .map_err(|e| StorageError::InvalidConfig(format!("serializing a sidecar: {e}")))?;
    b.inner
        .put(&b.sidecar(key), PutPayload::from(body))
        .await
        .map_err(|e| b.err("put checksum sidecar", key, e))?;
    Ok(())
}

pub(super) async fn read_sidecar(
    b: &ObjectBackend,
    key: &ObjectKey,
) -> Result<Option<Checksum>, StorageError> {
    let result = match b.inner.get(&b.sidecar(key)).await {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(b.err("read checksum sidecar", key, e)),
    };
    let malformed = |reason: String| StorageError::Malformed {
        what: format!("checksum sidecar of {key}"),
        store: b.name.clone(),
        reason,
    };
    if result.meta.size > MAX_SIDECAR {
        return Err(malformed(format!("{} bytes long", result.meta.size)));
    }
    let bytes = result
        .bytes()
        .await
        .map_err(|e| b.err("read checksum sidecar", key, e))?;
    let sidecar: Sidecar = serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))?;
    Ok(Some(sidecar.blake3))
}
