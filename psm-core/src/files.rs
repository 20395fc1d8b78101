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

/// Publishes a new private file at `path` atomically, once: the bytes are written to a
/// temporary private file beside it and hard-linked to `path`, so a reader never sees a
/// partial file and of several processes racing to create it exactly one wins. Returns
/// `false` (and leaves the winner's file) when `path` existed already.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("index-signing.key");
/// assert!(psm_core::files::publish_private(&path, b"first\n")?);
/// assert!(!psm_core::files::publish_private(&path, b"second\n")?);
/// assert_eq!(std::fs::read(&path)?, b"first\n");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn publish_private(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a path without a file name"))?
        .to_string_lossy();
    let nonce: u64 = rand::random();
    let temp = path.with_file_name(format!(".{name}.{}.{nonce:016x}.tmp", std::process::id()));
    write_private(&temp, bytes)?;
    let linked = std::fs::hard_link(&temp, path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => {
            if let Some(dir) = path.parent()
                && let Ok(d) = File::open(if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                })
            {
                let _ = d.sync_all();
            }
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
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

/// Narrows an existing file to its owner (mode 0600: group and others lose every right);
/// `Ok(false)` if there is no file at `path`. For files made by older versions or by a
/// library that applies the umask (SQLite's database, `-wal` and `-shm` files).
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("psm.db");
/// std::fs::write(&path, b"")?;
/// assert!(psm_core::files::restrict_to_owner(&path)?);
/// assert!(!psm_core::files::restrict_to_owner(&dir.path().join("none"))?);
/// # #[cfg(unix)] {
/// use std::os::unix::fs::PermissionsExt;
/// assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn restrict_to_owner(path: &Path) -> io::Result<bool> {
    match std::fs::metadata(path) {
        Ok(_meta) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if _meta.permissions().mode() & 0o077 != 0 {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
                }
            }
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether a file gives any right to its group or to others (always `false` off Unix).
pub fn readable_by_others(meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o077 != 0
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        false
    }
}

/// How much room a file system has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskSpace {
    /// Bytes available to this process.
    pub free: u64,
    /// Size of the file system.
    pub total: u64,
}

impl DiskSpace {
    /// The free and total bytes of the file system holding `path`.
    pub fn of(path: &Path) -> io::Result<Self> {
        let s = rustix::fs::statvfs(path).map_err(io::Error::from)?;
        Ok(Self {
            free: s.f_bavail.saturating_mul(s.f_frsize),
            total: s.f_blocks.saturating_mul(s.f_frsize),
        })
    }

    /// The free fraction (0.0 to 1.0; 0.0 for a file system of no size).
    pub fn free_ratio(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.free as f64 / self.total as f64
        }
    }
}

impl std::fmt::Display for DiskSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} MiB free of {} MiB ({:.1} %)",
            self.free >> 20,
            self.total >> 20,
            self.free_ratio() * 100.0
        )
    }
}

/// The free space a node's recordings disk must keep: below either bound it counts as nearly
/// full. One threshold for the gateways' recorders (which refuse new sessions and lock running
/// ones) and the encoder (which stops taking work), so that a node never records what it
/// then cannot process, nor stops processing while it still records.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MinFreeSpace {
    /// Free bytes below which the disk counts as nearly full.
    pub bytes: u64,
    /// Free fraction (0.0 to 1.0) below which the disk counts as nearly full.
    pub ratio: f64,
}

impl Default for MinFreeSpace {
    /// 1 GiB free, whatever the disk's size. No share by default: on a large disk a share is
    /// many gigabytes (2 % of 250 GB is 5 GB), and a node that stops recording with gigabytes
    /// free surprises more than it protects; an operator who wants one sets it.
    fn default() -> Self {
        Self {
            bytes: Self::DEFAULT_MIB << 20,
            ratio: 0.0,
        }
    }
}

impl MinFreeSpace {
    /// The default free MiB (1 GiB).
    pub const DEFAULT_MIB: u64 = 1024;

    /// Whether `space` keeps both bounds.
    pub fn allows(&self, space: DiskSpace) -> bool {
        space.free >= self.bytes && space.free_ratio() >= self.ratio
    }
}

#[cfg(test)]
mod space_tests {
    use super::*;

    #[test]
    fn both_bounds_hold() {
        let min = MinFreeSpace {
            bytes: 100,
            ratio: 0.1,
        };
        assert!(min.allows(DiskSpace {
            free: 100,
            total: 1000
        }));
        assert!(
            !min.allows(DiskSpace {
                free: 99,
                total: 500
            }),
            "too few bytes"
        );
        assert!(
            !min.allows(DiskSpace {
                free: 200,
                total: 10_000
            }),
            "too small a share"
        );
        assert!(!min.allows(DiskSpace { free: 0, total: 0 }));
        let none = MinFreeSpace {
            bytes: 0,
            ratio: 0.0,
        };
        assert!(none.allows(DiskSpace { free: 0, total: 0 }));
        let dir = tempfile::tempdir().unwrap();
        let here = DiskSpace::of(dir.path()).unwrap();
        assert!(here.total >= here.free && here.total > 0, "{here}");
        assert!(
            !MinFreeSpace {
                bytes: u64::MAX,
                ratio: 0.0
            }
            .allows(here)
        );
        assert!(DiskSpace::of(&dir.path().join("gone")).is_err());
    }
}
