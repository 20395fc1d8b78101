//! Files and folders only their owner may read: key files, recordings, the node's database
//! and data directory. One place for the modes (0600 files, 0700 folders) every crate that
//! writes secrets or recordings uses.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Creates a new file readable and writable by its owner only (mode 0600), failing if it
/// exists (a key or a recording is never overwritten).
///
/// ```
/// use std::io::Write;
/// let dir = tempfile::tempdir()?;
/// let mut f = psm_core::files::create_private(&dir.path().join("rec.psmr"))?;
/// f.write_all(b"...")?;
/// assert!(psm_core::files::create_private(&dir.path().join("rec.psmr")).is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn create_private(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// Writes a new private file ([`create_private`]) with `bytes`, synced to disk.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("key");
/// psm_core::files::write_private(&path, b"secret\n")?;
/// assert!(psm_core::files::write_private(&path, b"again\n").is_err(), "never overwritten");
/// # #[cfg(unix)] {
/// use std::os::unix::fs::PermissionsExt;
/// assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = create_private(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Creates `path` and its missing parents, and makes `path` itself accessible to its owner
/// only (mode 0700). An existing folder is narrowed to 0700 too.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let data = dir.path().join("psm-data");
/// psm_core::files::create_private_dir_all(&data)?;
/// # #[cfg(unix)] {
/// use std::os::unix::fs::PermissionsExt;
/// assert_eq!(std::fs::metadata(&data)?.permissions().mode() & 0o777, 0o700);
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn create_private_dir_all(path: &Path) -> io::Result<()> {
    std::fs::create_dir_all(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}
