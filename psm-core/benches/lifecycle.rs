//! Lifecycle throughput: claim + heartbeat + complete cycles per second, on SQLite and
//! PostgreSQL, with 1, 8 and 64 concurrent workers.
//!
//! `cargo bench -p psm-core --bench lifecycle` (add `-- --sessions N` to change the
//! work per run, `-- --backend sqlite|postgres` to run one). PostgreSQL is the server at
//! `PSM_TEST_DATABASE_URL` (default postgres://postgres@127.0.0.1:5432/test), in a schema of
//! its own that is dropped afterwards. Results go to docs/benchmarks.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use psm_core::clock::SystemClock;
use psm_core::store::{PostgresOptions, PostgresStore, SessionStore, SqliteStore};
use psm_core::{
    AuditAction, AuditRecord, Engine, EngineConfig, FencingToken, PrivSession, ProcessInstance,
    Protocol, SessionId, Stage, Timestamp,
};

fn ended_session(now: Timestamp) -> PrivSession {
    PrivSession {
        id: SessionId::new(),
        stage: Stage::Ended,
        last_reported: now,
        process_instance: None,
        start_time: now,
        end_time: Some(now),
        terminate: true,
        terminate_reason: None,
        user: "bench".into(),
        target: "bench-target".into(),
        protocol: Protocol::Ssh,
        checkout_id: None,
        attempts: 0,
        recording_format: None,
        ssh_logs_uploaded: false,
        lease_expires: None,
        fencing_token: FencingToken(0),
        retry_at: None,
        failure_reason: None,
        recording_commitment: None,
        version: 0,
    }
}

async fn fill(store: Arc<dyn SessionStore>, n: usize) {
    let now = Timestamp::now_utc();
    let per = n.div_ceil(16);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                let s = ended_session(now);
                let audit = AuditRecord {
                    at: now,
                    session: Some(s.id),
                    actor: "bench".into(),
                    action: AuditAction::Opened,
                    from_stage: None,
                    to_stage: Some(Stage::Ended),
                    detail: String::new(),
                };
                store.insert(&s, &audit).await.expect("insert");
            }
        }));
    }
    for t in tasks {
        t.await.expect("fill task");
    }
}

/// Runs `workers` workers until the queue is empty; returns cycles per second.
async fn cycles(store: Arc<dyn SessionStore>, workers: usize) -> (u64, f64) {
    let engine = Engine::new(store, Arc::new(SystemClock), EngineConfig::default());
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let engine = engine.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let me = ProcessInstance::new(format!("bench-{w}")).expect("pi");
            loop {
                let leases = engine.claim_for_encoding(&me, 1).await.expect("claim");
                let Some(lease) = leases.into_iter().next() else {
                    return;
                };
                engine
                    .heartbeat(lease.session, &me)
                    .await
                    .expect("heartbeat");
                engine
                    .complete(&lease, Default::default())
                    .await
                    .expect("complete");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    let n = done.load(Ordering::Relaxed);
    (n, n as f64 / start.elapsed().as_secs_f64())
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let sessions: usize = arg("--sessions")
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let only = arg("--backend");
    let url = std::env::var("PSM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    println!("| backend | workers | pool | cycles | cycles/s |");
    println!("|---|---:|---:|---:|---:|");
    for workers in [1usize, 8, 64] {
        if only.as_deref().is_none_or(|b| b == "sqlite") {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = Arc::new(
                SqliteStore::open(dir.path().join("b.db"))
                    .await
                    .expect("open"),
            );
            fill(store.clone(), sessions).await;
            let (n, rate) = cycles(store.clone(), workers).await;
            println!("| SQLite (WAL, 1 writer) | {workers} | 1+4 | {n} | {rate:.0} |");
            store.close().await;
        }
        if only.as_deref().is_none_or(|b| b == "postgres") {
            let pool = workers.min(32) as u32;
            let schema = format!("psm_bench_{}", uuid::Uuid::new_v4().simple());
            let store = PostgresStore::connect(&PostgresOptions {
                url: url.clone(),
                schema: Some(schema),
                max_connections: pool,
            })
            .await
            .expect("PostgreSQL at PSM_TEST_DATABASE_URL");
            let shared: Arc<dyn SessionStore> = Arc::new(store.clone());
            fill(shared.clone(), sessions).await;
            let (n, rate) = cycles(shared, workers).await;
            println!("| PostgreSQL | {workers} | {pool} | {n} | {rate:.0} |");
            store.drop_schema().await.expect("drop schema");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
