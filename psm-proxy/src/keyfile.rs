//! Key files the gateway creates for itself (the SSH host key, the recording signing key):
//! written once, readable by their owner only.

use std::path::Path;

use crate::error::ProxyError;

/// Writes a new file readable by its owner only (mode 0600), failing if it exists
/// ([`psm_core::files::write_private`], with the path in the error).
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("key");
/// psm_proxy::keyfile::write_private(&path, b"secret\n")?;
/// assert!(psm_proxy::keyfile::write_private(&path, b"again\n").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ProxyError> {
    psm_core::files::write_private(path, bytes).map_err(|source| ProxyError::Io {
        what: format!("writing {}", path.display()),
        source,
    })
}
