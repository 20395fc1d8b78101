//! What `psm up` leaves on disk is its owner's only (issue 17 M11), and the vault's master key
//! is never taken from a file others can read (L7): the real binary, as an operator runs it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::Up;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn psm_up_keeps_its_data_directory_and_database_private() {
    let dir = tempfile::tempdir().unwrap();
    // A data directory and database as an older version left them under umask 022.
    let data = dir.path().join("psm-data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let up = Up::start(dir.path(), &[]);
    assert_eq!(mode(&up.data), 0o700, "the data directory");
    for name in ["psm.db", "psm.db-wal", "psm.db-shm", "vault.key"] {
        let p = up.data.join(name);
        if name == "psm.db" || name == "vault.key" {
            assert!(p.exists(), "{name}");
        }
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{name}");
        }
    }
    assert!(up.stop());

    // Restarted over a database someone made world-readable: narrowed again.
    std::fs::set_permissions(data.join("psm.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let up = Up::start(dir.path(), &[]);
    assert_eq!(mode(&up.data.join("psm.db")), 0o600);
    assert!(up.stop());
}
