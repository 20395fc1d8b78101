//! Issue 17 M11: the SQLite database, its `-wal` and `-shm` files are readable by their owner
//! only, whether the store creates them or an older version left them with the umask's mode.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use psm_core::store::SqliteStore;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn assert_private(db: &Path) {
    assert_eq!(mode(db), 0o600, "{}", db.display());
    for suffix in ["-wal", "-shm"] {
        let p = db.with_file_name(format!(
            "{}{suffix}",
            db.file_name().unwrap().to_string_lossy()
        ));
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
}

#[tokio::test]
async fn a_new_database_and_its_wal_are_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("psm.db");
    let store = SqliteStore::open(&db).await.unwrap();
    assert!(
        db.with_file_name("psm.db-wal").exists(),
        "WAL mode makes a -wal file"
    );
    assert_private(&db);
    store.close().await;
}

#[tokio::test]
async fn a_database_left_world_readable_is_narrowed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("psm.db");
    let store = SqliteStore::open(&db).await.unwrap();
    store.close().await;
    // As an older version left it under umask 022.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = SqliteStore::open(&db).await.unwrap();
    assert_private(&db);
    store.close().await;
}
