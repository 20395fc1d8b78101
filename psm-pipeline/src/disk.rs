//! The disk guard: a worker stops taking work while a disk it writes to is nearly full.

use std::path::PathBuf;

/// A minimum of free space on the file system holding `path`.
#[derive(Clone, Debug, PartialEq)]
pub struct DiskGuard {
    /// A directory on the guarded file system.
    pub path: PathBuf,
    /// Free bytes below which no new work is taken.
    pub min_free_bytes: u64,
    /// Free fraction of the file system (0.0 to 1.0) below which no new work is taken.
    pub min_free_ratio: f64,
}

/// How much room a file system has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskSpace {
    /// Bytes available to this process.
    pub free: u64,
    /// Size of the file system.
    pub total: u64,
}

impl DiskGuard {
    /// A guard on `path` needing `min_free_bytes` and 5 % free.
    pub fn new(path: impl Into<PathBuf>, min_free_bytes: u64) -> Self {
        Self {
            path: path.into(),
            min_free_bytes,
            min_free_ratio: 0.05,
        }
    }

    /// The file system's free and total bytes.
    pub fn space(&self) -> std::io::Result<DiskSpace> {
        let s = rustix::fs::statvfs(&self.path).map_err(std::io::Error::from)?;
        Ok(DiskSpace {
            free: s.f_bavail.saturating_mul(s.f_frsize),
            total: s.f_blocks.saturating_mul(s.f_frsize),
        })
    }

    /// `Ok(space)` when there is room, `Err(space)` when the disk is nearly full. A disk
    /// that cannot be measured counts as full (and the error is logged).
    pub fn check(&self) -> Result<DiskSpace, DiskSpace> {
        match self.space() {
            Ok(s) => {
                let ratio = if s.total == 0 {
                    0.0
                } else {
                    s.free as f64 / s.total as f64
                };
                if s.free < self.min_free_bytes || ratio < self.min_free_ratio {
                    Err(s)
                } else {
                    Ok(s)
                }
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot measure free disk space");
                Err(DiskSpace { free: 0, total: 0 })
            }
        }
    }
}
