//! The invariants under fire: 16 concurrent workers, each with a store (and so a database
//! connection) of its own, race claims, heartbeats, completions, failures, crashes and
//! zombie commits over 1,000 sessions while a watchdog sweeps. Afterwards:
//! - every session is Done-Uploaded or Failed;
//! - every session's audit trail is one unbroken chain of legal moves, so no session was ever
//!   claimed while leased (no two live leases) and each step completed at most once;
//! - every completion in the trail carries the token of the latest claim, and every commit a
//!   worker saw succeed is in the trail: no stale token ever committed.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use psm_core::clock::SystemClock;
use psm_core::stage::check_transition;
use psm_core::store::{AuditQuery, ListQuery, SessionStore};
use psm_core::{
    AuditAction, CoreError, Engine, EngineConfig, NewSession, ProcessInstance, Protocol, SessionId,
    Stage,
};
use rand::Rng;

const SESSIONS: usize = 1000;
const WORKERS: usize = 16;

fn config() -> EngineConfig {
    EngineConfig {
        connected_stale_after: Duration::from_millis(400),
        lease_ttl: Duration::from_millis(300),
        max_attempts: 4,
        retry_backoff_base: Duration::from_millis(5),
        retry_backoff_max: Duration::from_millis(50),
        max_claim: 8,
        ..EngineConfig::default()
    }
}

#[derive(Default)]
struct Tally {
    commits: AtomicU64,
    zombie_refused: AtomicU64,
    zombie_committed: AtomicU64,
    crashes: AtomicU64,
    failures: AtomicU64,
}

/// (session, from stage, token) of every completion a worker saw succeed.
type Commits = Arc<std::sync::Mutex<Vec<(SessionId, Stage, u64)>>>;

async fn worker(engine: Engine, me: usize, tally: Arc<Tally>, commits: Commits) {
    let pi = ProcessInstance::new(format!("worker-{me}")).expect("pi");
    let mut idle_rounds = 0;
    loop {
        let encode = rand::rng().random_bool(0.5);
        let limit = rand::rng().random_range(1..=4);
        let claimed = if encode {
            engine.claim_for_encoding(&pi, limit).await
        } else {
            engine.claim_for_upload(&pi, limit).await
        };
        let leases = match claimed {
            Ok(l) => l,
            Err(e) if e.is_transient() => continue,
            Err(e) => panic!("claim failed: {e}"),
        };
        if leases.is_empty() {
            idle_rounds += 1;
            if idle_rounds > 4000 {
                return; // the driver decides when the run is over; this is a backstop
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        idle_rounds = 0;
        for lease in leases {
            let roll: f64 = rand::rng().random();
            if roll < 0.08 {
                // Crash: the lease is simply abandoned; the watchdog must requeue it.
                tally.crashes.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if roll < 0.16 {
                tally.failures.fetch_add(1, Ordering::Relaxed);
                match engine.fail(&lease, "simulated error").await {
                    Ok(_) | Err(CoreError::LeaseLost { .. } | CoreError::StaleToken { .. }) => {}
                    Err(e) if e.is_transient() => {}
                    Err(e) => panic!("fail refused unexpectedly: {e}"),
                }
                continue;
            }
            if roll < 0.24 {
                // Zombie: stalls past its lease, then tries to commit anyway.
                let engine = engine.clone();
                let tally = tally.clone();
                let commits = commits.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(engine.config().lease_ttl * 2).await;
                    match engine.complete(&lease, Default::default()).await {
                        Ok(_) => {
                            tally.zombie_committed.fetch_add(1, Ordering::Relaxed);
                            commits.lock().expect("lock").push((
                                lease.session,
                                lease.stage,
                                lease.token.0,
                            ));
                        }
                        Err(CoreError::StaleToken { .. } | CoreError::LeaseLost { .. }) => {
                            tally.zombie_refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) if e.is_transient() => {}
                        Err(e) => panic!("zombie got an unexpected error: {e}"),
                    }
                });
                continue;
            }
            let lease = if rand::rng().random_bool(0.5) {
                match engine.renew(&lease).await {
                    Ok(l) => l,
                    Err(_) => continue,
                }
            } else {
                lease
            };
            match engine.complete(&lease, Default::default()).await {
                Ok(_) => {
                    tally.commits.fetch_add(1, Ordering::Relaxed);
                    commits
                        .lock()
                        .expect("lock")
                        .push((lease.session, lease.stage, lease.token.0));
                }
                Err(CoreError::LeaseLost { .. } | CoreError::StaleToken { .. }) => {}
                Err(e) if e.is_transient() => {}
                Err(e) => panic!("complete refused unexpectedly: {e}"),
            }
        }
    }
}

fn token_in(detail: &str) -> Option<u64> {
    detail
        .strip_prefix("fencing token ")?
        .split(',')
        .next()?
        .trim()
        .parse()
        .ok()
}

async fn race(stores: Vec<Arc<dyn SessionStore>>) {
    assert!(stores.len() >= WORKERS);
    let engines: Vec<Engine> = stores
        .iter()
        .map(|s| Engine::new(s.clone(), Arc::new(SystemClock), config()))
        .collect();
    let main = engines[0].clone();

    // Gateways: open every session; 90% end it, 10% die (the watchdog must end those).
    let mut ids = Vec::with_capacity(SESSIONS);
    let mut opens = Vec::new();
    for (chunk, engine) in engines.iter().enumerate().take(WORKERS) {
        let engine = engine.clone();
        opens.push(tokio::spawn(async move {
            let gw = ProcessInstance::new(format!("gateway-{chunk}")).expect("pi");
            let mut mine = Vec::new();
            for _ in 0..SESSIONS / WORKERS + 1 {
                let s = engine
                    .open_session(NewSession {
                        id: SessionId::new(),
                        user: "alice".into(),
                        target: "db".into(),
                        protocol: Protocol::Ssh,
                        checkout_id: None,
                        process_instance: gw.clone(),
                    })
                    .await
                    .expect("open");
                engine.heartbeat(s.id, &gw).await.expect("heartbeat");
                if !rand::rng().random_bool(0.1) {
                    engine.end_session(s.id, &gw).await.expect("end");
                }
                mine.push(s.id);
            }
            mine
        }));
    }
    for o in opens {
        ids.extend(o.await.expect("gateway task"));
    }
    assert!(ids.len() >= SESSIONS);

    let tally = Arc::new(Tally::default());
    let commits: Commits = Arc::default();
    let mut tasks = Vec::new();
    for (i, engine) in engines.iter().enumerate().take(WORKERS) {
        tasks.push(tokio::spawn(worker(
            engine.clone(),
            i,
            tally.clone(),
            commits.clone(),
        )));
    }
    let watchdog_engine = main.clone();
    let watchdog = tokio::spawn(async move {
        loop {
            watchdog_engine.sweep().await.expect("sweep");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    });

    // Wait until every session is final (bounded: a hang is a failure, not a slow pass).
    let mut finished = false;
    for _ in 0..3000 {
        let open = main
            .list(&ListQuery::default())
            .await
            .expect("list")
            .iter()
            .filter(|s| !s.stage.is_final())
            .count();
        if open == 0 {
            finished = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watchdog.abort();
    for t in tasks {
        t.abort();
    }
    // Let zombies that are mid-flight land or give up.
    tokio::time::sleep(config().lease_ttl * 3).await;
    assert!(finished, "sessions still in flight after 300 s");

    let all = main.list(&ListQuery::default()).await.expect("list");
    assert_eq!(all.len(), ids.len());
    let by_stage = all.iter().fold(HashMap::new(), |mut m, s| {
        *m.entry(s.stage).or_insert(0) += 1;
        m
    });
    assert!(
        all.iter()
            .all(|s| matches!(s.stage, Stage::DoneUploaded | Stage::Failed)),
        "{by_stage:?}"
    );

    // Every session's trail is one chain of legal moves.
    let events = stores[0]
        .audit_events(&AuditQuery {
            limit: 0,
            ..AuditQuery::default()
        })
        .await
        .expect("audit");
    let mut trails: HashMap<SessionId, Vec<_>> = HashMap::new();
    let mut total = events.len();
    let mut page = events;
    loop {
        for e in &page {
            if let Some(id) = e.record.session {
                trails.entry(id).or_default().push(e.record.clone());
            }
        }
        if page.len() < 10_000 {
            break;
        }
        let after = page.last().map(|e| e.seq);
        page = stores[0]
            .audit_events(&AuditQuery {
                after_seq: after,
                ..AuditQuery::default()
            })
            .await
            .expect("audit page");
        total += page.len();
    }
    assert!(total > ids.len() * 4, "audit trail too short: {total}");
    let mut completions: HashMap<(SessionId, Stage), u32> = HashMap::new();
    let mut committed_tokens: HashMap<(SessionId, Stage), u64> = HashMap::new();
    for (id, trail) in &trails {
        let mut stage: Option<Stage> = None;
        let mut last_claim_token = 0u64;
        for ev in trail {
            let (Some(from), Some(to)) = (ev.from_stage, ev.to_stage) else {
                if ev.action == AuditAction::Opened {
                    assert_eq!(stage, None, "{id}: opened twice");
                    stage = ev.to_stage;
                }
                continue;
            };
            assert_eq!(stage, Some(from), "{id}: broken chain at {ev:?}");
            check_transition(from, to).unwrap_or_else(|e| panic!("{id}: {e}"));
            match ev.action {
                AuditAction::Claimed => {
                    let t = token_in(&ev.detail).expect("claim token");
                    assert_eq!(
                        t,
                        last_claim_token + 1,
                        "{id}: tokens grow by one per claim"
                    );
                    last_claim_token = t;
                }
                AuditAction::Completed => {
                    let t = token_in(&ev.detail).expect("completion token");
                    assert_eq!(t, last_claim_token, "{id}: a stale token committed");
                    *completions.entry((*id, from)).or_default() += 1;
                    committed_tokens.insert((*id, from), t);
                }
                _ => {}
            }
            stage = Some(to);
        }
        let final_stage = all.iter().find(|s| s.id == *id).map(|s| s.stage);
        assert_eq!(
            stage, final_stage,
            "{id}: trail ends elsewhere than the row"
        );
    }
    for s in &all {
        if s.stage == Stage::DoneUploaded {
            assert_eq!(
                completions.get(&(s.id, Stage::Encoding)),
                Some(&1),
                "{}",
                s.id
            );
            assert_eq!(
                completions.get(&(s.id, Stage::Uploading)),
                Some(&1),
                "{}",
                s.id
            );
        }
    }
    // Every commit a worker saw succeed is the one in the trail, with its token.
    let seen = commits.lock().expect("lock").clone();
    assert_eq!(
        seen.len(),
        completions.values().map(|n| *n as usize).sum::<usize>(),
        "commits seen by workers vs completions in the audit trail"
    );
    for (id, stage, token) in seen {
        assert_eq!(
            committed_tokens.get(&(id, stage)),
            Some(&token),
            "{id} {stage}"
        );
    }
    let t = &tally;
    eprintln!(
        "race: {} sessions {:?}; commits {}, failures {}, crashes {}, zombies refused {} / \
         committed {} (lease not yet taken)",
        all.len(),
        by_stage,
        t.commits.load(Ordering::Relaxed),
        t.failures.load(Ordering::Relaxed),
        t.crashes.load(Ordering::Relaxed),
        t.zombie_refused.load(Ordering::Relaxed),
        t.zombie_committed.load(Ordering::Relaxed),
    );
    assert!(t.crashes.load(Ordering::Relaxed) > 0 && t.zombie_refused.load(Ordering::Relaxed) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn race_sqlite_16_workers_separate_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("psm.db");
    let mut stores: Vec<Arc<dyn SessionStore>> = Vec::new();
    for _ in 0..WORKERS {
        stores.push(Arc::new(
            psm_core::store::SqliteStore::open(&path)
                .await
                .expect("open"),
        ));
    }
    race(stores).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn race_postgres_16_workers_separate_connections() {
    let first = common::postgres_store(2).await;
    let schema = first.schema().expect("schema").to_owned();
    let mut stores: Vec<Arc<dyn SessionStore>> = vec![Arc::new(first.clone())];
    for _ in 1..WORKERS {
        let s = psm_core::store::PostgresStore::connect(&psm_core::store::PostgresOptions {
            url: common::postgres_url(),
            schema: Some(schema.clone()),
            max_connections: 2,
        })
        .await
        .expect("connect");
        stores.push(Arc::new(s));
    }
    race(stores).await;
    first.drop_schema().await.expect("drop");
}
