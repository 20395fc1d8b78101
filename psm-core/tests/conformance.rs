//! The SessionStore conformance suite on every backend: memory, SQLite, PostgreSQL.

mod common;

use std::sync::{Arc, Mutex};

use psm_core::store::{MemoryStore, SessionStore, conformance};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    conformance::run_all(|| async { Arc::new(MemoryStore::new()) as Arc<dyn SessionStore> }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_conforms() {
    let dirs = Arc::new(Mutex::new(Vec::new()));
    conformance::run_all(|| {
        let dirs = dirs.clone();
        async move {
            let (store, dir) = common::sqlite_store().await;
            dirs.lock().expect("lock").push(dir);
            store
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_conforms() {
    let schemas = common::PgSchemas::default();
    conformance::run_all(|| {
        let schemas = schemas.clone();
        async move { schemas.make(8).await }
    })
    .await;
    schemas.drop_all().await;
}
