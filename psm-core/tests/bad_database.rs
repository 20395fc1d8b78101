//! A database file that is not PSM's is refused with a clear error and left byte for byte as
//! it was.

use psm_core::CoreError;
use psm_core::store::SqliteStore;

#[tokio::test]
async fn garbage_file_is_reported_corrupt_and_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("psm.db");
    let garbage: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&path, &garbage).expect("write");
    let err = SqliteStore::open(&path)
        .await
        .expect_err("garbage accepted");
    assert!(matches!(err, CoreError::CorruptDatabase { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("corrupt or not a PSM database"), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        std::fs::read(&path).expect("read") == garbage,
        "file was modified"
    );
}

#[tokio::test]
async fn damaged_psm_database_is_reported_and_not_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("psm.db");
    {
        let store = SqliteStore::open(&path).await.expect("create");
        store.close().await;
    }
    // Overwrite the middle of the file (schema pages) with junk, keeping the header.
    let mut bytes = std::fs::read(&path).expect("read");
    assert!(bytes.len() > 8192, "database unexpectedly small");
    for b in &mut bytes[4096..8192] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).expect("write");
    let err = SqliteStore::open(&path)
        .await
        .expect_err("damaged file accepted");
    assert!(
        matches!(
            err,
            CoreError::CorruptDatabase { .. }
                | CoreError::Migration(_)
                | CoreError::Database { .. }
        ),
        "{err:?}"
    );
    assert!(
        std::fs::read(&path).expect("read") == bytes,
        "file was modified"
    );
}

#[tokio::test]
async fn foreign_sqlite_database_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.db");
    {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .connect()
            .await
            .expect("create");
        sqlx::query("CREATE TABLE sessions (id INTEGER PRIMARY KEY, note TEXT)")
            .execute(&mut conn)
            .await
            .expect("create table");
        sqlx::query("INSERT INTO sessions (note) VALUES ('keep me')")
            .execute(&mut conn)
            .await
            .expect("insert");
    }
    let before = std::fs::read(&path).expect("read");
    let err = SqliteStore::open(&path)
        .await
        .expect_err("foreign db accepted");
    assert!(matches!(err, CoreError::ForeignDatabase { .. }), "{err:?}");
    assert!(err.to_string().contains("is not a PSM database"), "{err}");
    assert!(
        std::fs::read(&path).expect("read") == before,
        "foreign file was modified"
    );
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .expect("reopen");
    let (note,): (String,) = sqlx::query_as("SELECT note FROM sessions")
        .fetch_one(&mut conn)
        .await
        .expect("their data");
    assert_eq!(note, "keep me");
}
