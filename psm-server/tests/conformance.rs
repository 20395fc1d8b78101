//! The ControlPlane conformance suite over HTTP: psm-client's HttpControlPlane against a
//! real psm-server, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::{Backend, Harness};
use psm_core::control_plane::conformance::{Fixture, run_all};

async fn run(backend: Backend) {
    let harnesses: Mutex<Vec<Harness>> = Mutex::new(Vec::new());
    run_all(|| async {
        let h = Harness::start(backend).await;
        let f = Fixture {
            cp: Arc::new(h.router()),
            clock: h.clock.clone(),
            engine: h.engine.clone(),
            vault: h.vault.clone(),
            settings: h.settings.clone(),
        };
        harnesses.lock().unwrap().push(h);
        f
    })
    .await;
    for h in harnesses.into_inner().unwrap() {
        h.stop().await;
    }
}

#[tokio::test]
async fn http_control_plane_on_sqlite() {
    run(Backend::Sqlite).await;
}

#[tokio::test]
async fn http_control_plane_on_postgres() {
    run(Backend::Postgres).await;
}
