//! Test helpers shared by psm-core's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use psm_core::store::{PostgresOptions, PostgresStore, SessionStore, SqliteStore};

/// The PostgreSQL server the tests use (`PSM_TEST_DATABASE_URL`, default the local one).
pub fn postgres_url() -> String {
    std::env::var("PSM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A store in a schema of its own, so test runs never collide.
pub async fn postgres_store(max_connections: u32) -> PostgresStore {
    let schema = format!("psm_test_{}", uuid::Uuid::new_v4().simple());
    let url = postgres_url();
    PostgresStore::connect(&PostgresOptions {
        url: url.clone(),
        schema: Some(schema),
        max_connections,
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is needed at {url} (set PSM_TEST_DATABASE_URL, or start the local \
             server: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start): {e}"
        )
    })
}

/// Schemas to drop when the test ends.
#[derive(Default, Clone)]
pub struct PgSchemas(Arc<Mutex<Vec<PostgresStore>>>);

impl PgSchemas {
    pub async fn make(&self, max_connections: u32) -> Arc<dyn SessionStore> {
        let store = postgres_store(max_connections).await;
        self.0.lock().unwrap().push(store.clone());
        Arc::new(store)
    }

    pub async fn drop_all(&self) {
        let stores: Vec<_> = std::mem::take(&mut *self.0.lock().unwrap());
        for s in stores {
            s.drop_schema().await.expect("drop schema");
        }
    }
}

/// A SQLite store in a fresh temp directory (kept alive by the returned guard).
pub async fn sqlite_store() -> (Arc<dyn SessionStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("psm.db")).await.unwrap();
    (Arc::new(store), dir)
}
