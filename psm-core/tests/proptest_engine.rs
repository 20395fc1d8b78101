//! Random sequences of engine operations and clock jumps, run in lockstep on the memory store
//! and on SQLite. After every step: both backends gave the same answer and hold the same
//! rows (differential), every stage change was legal, tokens never went back, claims only
//! took queued sessions, stale leases never committed. At the end, driving the pipeline
//! brings every session to Done-Uploaded or Failed: nothing stays in limbo.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use psm_core::clock::{Clock, ManualClock};
use psm_core::stage::check_transition;
use psm_core::store::{ListQuery, MemoryStore, SessionStore, SqliteStore};
use psm_core::{
    CoreError, Engine, EngineConfig, Lease, NewSession, PrivSession, ProcessInstance, Protocol,
    SessionId, Stage, Timestamp,
};

#[derive(Clone, Debug)]
enum Op {
    Open { gw: u8 },
    Heartbeat { s: u8, gw: u8 },
    UpdateSession { s: u8 },
    End { s: u8, gw: u8 },
    Terminate { s: u8 },
    ClaimEnc { w: u8, n: u8 },
    ClaimUp { w: u8, n: u8 },
    Renew { l: u8 },
    Complete { l: u8 },
    Fail { l: u8 },
    Advance { secs: u16 },
    Sweep,
    Requeue { s: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..2).prop_map(|gw| Op::Open { gw }),
        2 => (any::<u8>(), 0u8..2).prop_map(|(s, gw)| Op::Heartbeat { s, gw }),
        1 => any::<u8>().prop_map(|s| Op::UpdateSession { s }),
        3 => (any::<u8>(), 0u8..2).prop_map(|(s, gw)| Op::End { s, gw }),
        1 => any::<u8>().prop_map(|s| Op::Terminate { s }),
        3 => (0u8..3, 1u8..4).prop_map(|(w, n)| Op::ClaimEnc { w, n }),
        3 => (0u8..3, 1u8..4).prop_map(|(w, n)| Op::ClaimUp { w, n }),
        2 => any::<u8>().prop_map(|l| Op::Renew { l }),
        4 => any::<u8>().prop_map(|l| Op::Complete { l }),
        2 => any::<u8>().prop_map(|l| Op::Fail { l }),
        3 => (0u16..200).prop_map(|secs| Op::Advance { secs }),
        2 => Just(Op::Sweep),
        1 => any::<u8>().prop_map(|s| Op::Requeue { s }),
    ]
}

struct Side {
    engine: Engine,
    clock: ManualClock,
}

fn config() -> EngineConfig {
    EngineConfig {
        max_attempts: 3,
        ..EngineConfig::default()
    }
}

fn pi(prefix: &str, n: u8) -> ProcessInstance {
    ProcessInstance::new(format!("{prefix}-{n}")).expect("pi")
}

/// The outcome of an op, comparable across backends.
type Outcome = Result<String, String>;

fn show<T: std::fmt::Debug>(r: Result<T, CoreError>) -> Outcome {
    r.map(|v| format!("{v:?}")).map_err(|e| e.to_string())
}

async fn apply(side: &Side, op: &Op, ids: &[SessionId], leases: &mut Vec<Lease>) -> Outcome {
    let e = &side.engine;
    let pick = |s: u8| ids.get(s as usize % ids.len().max(1)).copied();
    match op {
        Op::Open { .. } => unreachable!("opened by the driver"),
        Op::Heartbeat { s, gw } => match pick(*s) {
            Some(id) => show(e.heartbeat(id, &pi("gw", *gw)).await),
            None => Ok("no session".into()),
        },
        Op::UpdateSession { s } => match pick(*s) {
            Some(id) => show(e.update_session(id).await),
            None => Ok("no session".into()),
        },
        Op::End { s, gw } => match pick(*s) {
            Some(id) => show(e.end_session(id, &pi("gw", *gw)).await),
            None => Ok("no session".into()),
        },
        Op::Terminate { s } => match pick(*s) {
            Some(id) => show(e.request_termination(id, "admin", "prop").await),
            None => Ok("no session".into()),
        },
        Op::ClaimEnc { w, n } => {
            let got = e.claim_for_encoding(&pi("enc", *w), u32::from(*n)).await;
            if let Ok(l) = &got {
                leases.extend(l.iter().cloned());
            }
            show(got.map(|l| l.into_iter().map(|l| l.session).collect::<Vec<_>>()))
        }
        Op::ClaimUp { w, n } => {
            let got = e.claim_for_upload(&pi("up", *w), u32::from(*n)).await;
            if let Ok(l) = &got {
                leases.extend(l.iter().cloned());
            }
            show(got.map(|l| l.into_iter().map(|l| l.session).collect::<Vec<_>>()))
        }
        Op::Renew { l } | Op::Complete { l } | Op::Fail { l } => {
            if leases.is_empty() {
                return Ok("no lease".into());
            }
            let lease = leases[*l as usize % leases.len()].clone();
            match op {
                Op::Renew { .. } => show(e.renew(&lease).await),
                Op::Complete { .. } => show(e.complete(&lease, Default::default()).await),
                _ => show(e.fail(&lease, "prop failure").await),
            }
        }
        Op::Advance { secs } => {
            side.clock.advance(Duration::from_secs(u64::from(*secs)));
            Ok("advanced".into())
        }
        Op::Sweep => show(e.sweep().await),
        Op::Requeue { s } => match pick(*s) {
            Some(id) => show(e.requeue_failed(id, "admin").await),
            None => Ok("no session".into()),
        },
    }
}

async fn snapshot(e: &Engine) -> HashMap<SessionId, PrivSession> {
    e.list(&ListQuery::default())
        .await
        .expect("list")
        .into_iter()
        .map(|s| (s.id, s))
        .collect()
}

fn check_step(
    op: &Op,
    before: &HashMap<SessionId, PrivSession>,
    after: &HashMap<SessionId, PrivSession>,
    outcome: &Outcome,
    lease: Option<&Lease>,
) {
    for (id, now) in after {
        let Some(prev) = before.get(id) else { continue };
        if prev.stage != now.stage {
            check_transition(prev.stage, now.stage)
                .unwrap_or_else(|e| panic!("{op:?} made an illegal move: {e}"));
        }
        assert!(now.fencing_token >= prev.fencing_token, "token went back");
        assert_eq!(
            now.stage.is_leased(),
            now.lease_expires.is_some(),
            "lease bookkeeping out of step with the stage: {now:?}"
        );
    }
    match op {
        Op::ClaimEnc { .. } | Op::ClaimUp { .. } => {
            if let Ok(text) = outcome {
                for (id, prev) in before {
                    let now = &after[id];
                    if now.fencing_token != prev.fencing_token {
                        assert!(
                            matches!(prev.stage, Stage::Ended | Stage::DoneEncoded),
                            "claimed a session that was {} ({text})",
                            prev.stage
                        );
                    }
                }
            }
        }
        Op::Complete { .. } | Op::Fail { .. } => {
            if let Some(lease) = lease {
                let prev = &before[&lease.session];
                let stale = prev.fencing_token != lease.token
                    || prev.stage != lease.stage
                    || prev.process_instance.as_ref() != Some(&lease.owner);
                if stale {
                    assert!(outcome.is_err(), "a stale lease committed: {lease:?}");
                    assert_eq!(before, after, "a refused commit changed the store");
                }
            }
        }
        _ => {}
    }
}

async fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = Timestamp::from_micros(1_800_000_000_000_000);
    let make = |store: Arc<dyn SessionStore>| {
        let clock = ManualClock::new(start);
        Side {
            engine: Engine::new(store, Arc::new(clock.clone()), config()),
            clock,
        }
    };
    let memory = make(Arc::new(MemoryStore::new()));
    let sqlite = make(Arc::new(
        SqliteStore::open(dir.path().join("p.db"))
            .await
            .expect("sqlite"),
    ));
    let mut ids = Vec::new();
    let (mut leases_m, mut leases_s): (Vec<Lease>, Vec<Lease>) = (Vec::new(), Vec::new());
    for op in &ops {
        if let Op::Open { gw } = op {
            let new = NewSession {
                id: SessionId::new(),
                user: "u".into(),
                target: "t".into(),
                protocol: Protocol::Ssh,
                checkout_id: None,
                process_instance: pi("gw", *gw),
            };
            let a = show(memory.engine.open_session(new.clone()).await);
            let b = show(sqlite.engine.open_session(new.clone()).await);
            assert_eq!(a, b);
            ids.push(new.id);
            continue;
        }
        let lease = match op {
            Op::Complete { l } | Op::Fail { l } if !leases_m.is_empty() => {
                Some(leases_m[*l as usize % leases_m.len()].clone())
            }
            _ => None,
        };
        let before = snapshot(&memory.engine).await;
        let a = apply(&memory, op, &ids, &mut leases_m).await;
        let b = apply(&sqlite, op, &ids, &mut leases_s).await;
        assert_eq!(a, b, "backends disagree on {op:?}");
        let after = snapshot(&memory.engine).await;
        assert_eq!(
            after,
            snapshot(&sqlite.engine).await,
            "rows differ after {op:?}"
        );
        check_step(op, &before, &after, &a, lease.as_ref());
    }

    // Drive the pipeline: no session may stay in limbo.
    for side in [&memory, &sqlite] {
        let e = &side.engine;
        for _ in 0..50 {
            side.clock.advance(Duration::from_secs(600));
            e.sweep().await.expect("sweep");
            let enc = pi("drain", 0);
            for l in e.claim_for_encoding(&enc, 100).await.expect("claim") {
                e.complete(&l, Default::default()).await.expect("complete");
            }
            for l in e.claim_for_upload(&enc, 100).await.expect("claim") {
                e.complete(&l, Default::default()).await.expect("complete");
            }
        }
        let rows = snapshot(e).await;
        for s in rows.values() {
            assert!(
                matches!(s.stage, Stage::DoneUploaded | Stage::Failed),
                "{} left in {} at {}",
                s.id,
                s.stage,
                side.clock.now()
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn random_operation_sequences_keep_the_invariants(ops in prop::collection::vec(op(), 1..120)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        rt.block_on(run(ops));
    }
}
