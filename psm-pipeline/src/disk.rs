//! The disk guard: a worker stops taking work while a disk it writes to is nearly full.

use std::path::PathBuf;

pub use psm_core::files::{DiskSpace, MinFreeSpace};

/// A minimum of free space ([`MinFreeSpace`], the threshold the gateways' recorders keep too)
/// on the file system holding `path`.
#[derive(Clone, Debug, PartialEq)]
pub struct DiskGuard {
    /// A directory on the guarded file system.
    pub path: PathBuf,
    /// The free space below which no new work is taken.
    pub min_free: MinFreeSpace,
}

impl DiskGuard {
    /// A guard on `path` keeping `min_free`.
    pub fn new(path: impl Into<PathBuf>, min_free: MinFreeSpace) -> Self {
        Self {
            path: path.into(),
            min_free,
        }
    }

    /// The file system's free and total bytes.
    pub fn space(&self) -> std::io::Result<DiskSpace> {
        DiskSpace::of(&self.path)
    }

    /// `Ok(space)` when there is room, `Err(space)` when the disk is nearly full. A disk
    /// that cannot be measured counts as full (and the error is logged).
    pub fn check(&self) -> Result<DiskSpace, DiskSpace> {
        match self.space() {
            Ok(s) if self.min_free.allows(s) => Ok(s),
            Ok(s) => Err(s),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot measure free disk space");
                Err(DiskSpace { free: 0, total: 0 })
            }
        }
    }
}
