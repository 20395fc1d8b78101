//! Key files the gateway creates for itself (the SSH host key, the recording signing key):
//! written once, readable by their owner only.

use std::path::Path;

use crate::error::ProxyError;

/// Writes a new file readable by its owner only (mode 0600), failing if it exists.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("key");
/// psm_proxy::keyfile::write_private(&path, b"secret\n")?;
/// assert!(psm_proxy::keyfile::write_private(&path, b"again\n").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ProxyError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let io = |source| ProxyError::Io {
        what: format!("writing {}", path.display()),
        source,
    };
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}
