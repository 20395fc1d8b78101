//! The directory in the SQLite store's database.

use sqlx::SqlitePool;

use crate::store::SqliteStore;

impl SqliteStore {
    fn directory_reader(&self) -> &SqlitePool {
        self.pools().1
    }

    fn directory_writer(&self) -> &SqlitePool {
        self.pools().0
    }
}

super::sql::sql_directory!(SqliteStore, directory_reader, directory_writer);

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn conformance() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::SqliteStore::open(dir.path().join("psm.db"))
            .await
            .expect("open");
        super::super::conformance::run(&store).await;
    }
}
