//! The conformance suite every [`SessionStore`] backend runs (the shape of object_store's
//! shared integration tests): each function takes a fresh, empty store and panics with a
//! message on the first departure from the trait's contract. Backends call them all through
//! [`run_all`].
//!
//! Enabled by the `conformance` feature; used by psm-core's own tests for the memory, SQLite
//! and PostgreSQL stores, and available to anyone writing another backend.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use super::{
    AuditQuery, ClaimSpec, Guard, LeasePatch, ListQuery, OverdueQuery, Patch, SessionStore,
    StageSet,
};
use crate::audit::{AuditAction, AuditRecord};
use crate::clock::{Clock, ManualClock};
use crate::engine::{Engine, EngineConfig, RecordingStatusUpdate};
use crate::error::CoreError;
use crate::id::{CheckoutId, FencingToken, ProcessInstance, SessionId};
use crate::session::{Completion, NewSession, PrivSession, Protocol, RecordingCommitment};
use crate::stage::Stage;
use crate::timestamp::Timestamp;

const T0: Timestamp = Timestamp::from_micros(1_800_000_000_000_000);

fn pi(name: &str) -> ProcessInstance {
    ProcessInstance::new(name).unwrap()
}

/// A session row with every optional field filled, at stage `stage`.
pub fn sample(stage: Stage, start: Timestamp) -> PrivSession {
    PrivSession {
        id: SessionId::new(),
        stage,
        last_reported: start,
        process_instance: Some(pi("gateway-1")),
        start_time: start,
        end_time: Some(start.saturating_add(Duration::from_secs(30))),
        terminate: false,
        terminate_reason: Some("checkout expired — ünïcode".into()),
        user: "alice".into(),
        target: "db-01".into(),
        protocol: Protocol::Ssh,
        checkout_id: Some(CheckoutId::new("co-42").unwrap()),
        attempts: 0,
        recording_format: Some(".psmr".into()),
        ssh_logs_uploaded: true,
        lease_expires: None,
        fencing_token: FencingToken(0),
        retry_at: None,
        failure_reason: None,
        recording_commitment: None,
        version: 0,
    }
}

fn opened(s: &PrivSession) -> AuditRecord {
    AuditRecord {
        at: s.start_time,
        session: Some(s.id),
        actor: "gateway-1".into(),
        action: AuditAction::Opened,
        from_stage: None,
        to_stage: Some(s.stage),
        detail: "opened".into(),
    }
}

async fn audit_count(store: &dyn SessionStore) -> usize {
    store
        .audit_events(&AuditQuery::default())
        .await
        .unwrap()
        .len()
}

/// Every field written comes back equal; optional fields both set and unset.
pub async fn insert_get_round_trip(store: &dyn SessionStore) {
    let full = sample(Stage::Ended, T0);
    store.insert(&full, &opened(&full)).await.unwrap();
    assert_eq!(store.get(full.id).await.unwrap().as_ref(), Some(&full));

    let mut bare = sample(Stage::Connected, T0);
    bare.process_instance = None;
    bare.end_time = None;
    bare.terminate_reason = None;
    bare.checkout_id = None;
    bare.recording_format = None;
    bare.protocol = Protocol::Rdp;
    bare.fencing_token = FencingToken(u64::from(u32::MAX) + 7);
    bare.lease_expires = Some(T0);
    bare.retry_at = Some(T0.saturating_add(Duration::from_micros(1)));
    bare.failure_reason = Some("x".repeat(1024));
    bare.attempts = 4;
    store.insert(&bare, &opened(&bare)).await.unwrap();
    assert_eq!(store.get(bare.id).await.unwrap().as_ref(), Some(&bare));
    assert_eq!(store.get(SessionId::new()).await.unwrap(), None);
}

/// A second insert of one id is `SessionExists` and changes nothing, audit included.
pub async fn duplicate_insert_is_refused(store: &dyn SessionStore) {
    let s = sample(Stage::Connected, T0);
    store.insert(&s, &opened(&s)).await.unwrap();
    let before = audit_count(store).await;
    let mut other = sample(Stage::Ended, T0);
    other.id = s.id;
    let err = store.insert(&other, &opened(&other)).await.unwrap_err();
    assert!(
        matches!(err, CoreError::SessionExists(id) if id == s.id),
        "{err}"
    );
    assert_eq!(store.get(s.id).await.unwrap().unwrap(), s);
    assert_eq!(
        audit_count(store).await,
        before,
        "refused insert wrote audit"
    );
}

/// `update` applies exactly what [`Patch::apply`] applies, for every kind of field change.
pub async fn update_matches_reference_semantics(store: &dyn SessionStore) {
    let mut s = sample(Stage::Encoding, T0);
    s.lease_expires = Some(T0.saturating_add(Duration::from_secs(60)));
    s.fencing_token = FencingToken(3);
    store.insert(&s, &opened(&s)).await.unwrap();
    let patches = [
        Patch {
            last_reported: Some(T0.saturating_add(Duration::from_secs(1))),
            lease_expires: LeasePatch::Renew(T0.saturating_add(Duration::from_secs(61))),
            ..Patch::default()
        },
        Patch {
            recording_format: Some(None),
            ssh_logs_uploaded: Some(false),
            terminate: Some(true),
            terminate_reason: Some(None),
            ..Patch::default()
        },
        Patch {
            stage: Some(Stage::DoneEncoded),
            lease_expires: LeasePatch::Clear,
            attempts: Some(0),
            retry_at: Some(Some(T0)),
            failure_reason: Some(Some("boom".into())),
            end_time: Some(T0.saturating_add(Duration::from_secs(5))),
            recording_format: Some(Some(".mp4".into())),
            ..Patch::default()
        },
        // Renew without a lease held leaves the lease unset.
        Patch {
            lease_expires: LeasePatch::Renew(T0.saturating_add(Duration::from_secs(99))),
            retry_at: Some(None),
            failure_reason: Some(None),
            ..Patch::default()
        },
    ];
    let mut expected = s.clone();
    for patch in patches {
        patch.apply(&mut expected);
        let got = store
            .update(s.id, &Guard::default(), &patch, None)
            .await
            .unwrap()
            .expect("unguarded update applies");
        assert_eq!(got, expected, "after {patch:?}");
        assert_eq!(store.get(s.id).await.unwrap().unwrap(), expected);
    }
    assert_eq!(expected.lease_expires, None);
    assert_eq!(expected.version, 4);
}

/// Each guard condition, failing alone, makes `update` change nothing and log nothing.
pub async fn guards_refuse_without_side_effects(store: &dyn SessionStore) {
    let mut s = sample(Stage::Encoding, T0);
    s.fencing_token = FencingToken(2);
    s.process_instance = Some(pi("enc-1"));
    store.insert(&s, &opened(&s)).await.unwrap();
    let before = audit_count(store).await;
    let patch = Patch {
        stage: Some(Stage::DoneEncoded),
        ..Patch::default()
    };
    let audit = AuditRecord {
        at: T0,
        session: Some(s.id),
        actor: "enc-1".into(),
        action: AuditAction::Completed,
        from_stage: Some(Stage::Encoding),
        to_stage: Some(Stage::DoneEncoded),
        detail: String::new(),
    };
    let good = Guard {
        stages: StageSet::one(Stage::Encoding),
        owner: Some(pi("enc-1")),
        token: Some(FencingToken(2)),
        version: Some(0),
    };
    let bad_guards = [
        Guard {
            stages: StageSet::of(&[Stage::Uploading, Stage::Ended]),
            ..good.clone()
        },
        Guard {
            owner: Some(pi("enc-2")),
            ..good.clone()
        },
        Guard {
            token: Some(FencingToken(1)),
            ..good.clone()
        },
        Guard {
            version: Some(7),
            ..good.clone()
        },
    ];
    for guard in &bad_guards {
        let got = store
            .update(s.id, guard, &patch, Some(&audit))
            .await
            .unwrap();
        assert!(got.is_none(), "guard {guard:?} should refuse");
        assert_eq!(store.get(s.id).await.unwrap().unwrap(), s);
        assert_eq!(
            audit_count(store).await,
            before,
            "refused update wrote audit"
        );
    }
    let missing = store
        .update(SessionId::new(), &Guard::default(), &patch, Some(&audit))
        .await
        .unwrap();
    assert!(missing.is_none());
    assert_eq!(audit_count(store).await, before);

    let applied = store
        .update(s.id, &good, &patch, Some(&audit))
        .await
        .unwrap();
    assert_eq!(applied.unwrap().stage, Stage::DoneEncoded);
    assert_eq!(audit_count(store).await, before + 1);
}

/// Claims take the oldest eligible first, respect the limit and `retry_at`, and set owner,
/// lease, token, attempts and version as [`ClaimSpec`] says, with one audit event each.
pub async fn claim_semantics(store: &dyn SessionStore) {
    let mut ids = Vec::new();
    for i in 0..5u64 {
        let mut s = sample(Stage::Ended, T0);
        s.end_time = Some(T0.saturating_add(Duration::from_secs(100 - i * 10))); // later inserts end earlier
        s.fencing_token = FencingToken(i);
        store.insert(&s, &opened(&s)).await.unwrap();
        ids.push(s);
    }
    // Not eligible: wrong stage, or backing off.
    let other = sample(Stage::Connected, T0);
    store.insert(&other, &opened(&other)).await.unwrap();
    let mut backing_off = sample(Stage::Ended, T0);
    backing_off.end_time = Some(T0);
    backing_off.retry_at = Some(T0.saturating_add(Duration::from_secs(500)));
    store
        .insert(&backing_off, &opened(&backing_off))
        .await
        .unwrap();

    let now = T0.saturating_add(Duration::from_secs(200));
    let spec = ClaimSpec {
        from: Stage::Ended,
        to: Stage::Encoding,
        owner: pi("enc-9"),
        now,
        lease_expires: now.saturating_add(Duration::from_secs(60)),
        limit: 2,
        among: None,
    };
    let before = audit_count(store).await;
    let mut claimed = store.claim(&spec).await.unwrap();
    claimed.sort_by_key(|s| s.end_time);
    assert_eq!(claimed.len(), 2);
    let want: Vec<SessionId> = vec![ids[4].id, ids[3].id];
    assert_eq!(claimed.iter().map(|s| s.id).collect::<Vec<_>>(), want);
    for c in &claimed {
        let orig = ids.iter().find(|s| s.id == c.id).unwrap();
        assert_eq!(c.stage, Stage::Encoding);
        assert_eq!(c.process_instance, Some(pi("enc-9")));
        assert_eq!(c.fencing_token.0, orig.fencing_token.0 + 1);
        assert_eq!(c.attempts, orig.attempts + 1);
        assert_eq!(c.lease_expires, Some(spec.lease_expires));
        assert_eq!(c.last_reported, now);
        assert_eq!(c.retry_at, None);
        assert_eq!(c.version, orig.version + 1);
        assert_eq!(&store.get(c.id).await.unwrap().unwrap(), c);
        let trail = store
            .audit_events(&AuditQuery {
                session: Some(c.id),
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        let last = &trail.last().unwrap().record;
        assert_eq!(last.action, AuditAction::Claimed);
        assert_eq!(last.actor, "enc-9");
        assert_eq!(
            (last.from_stage, last.to_stage),
            (Some(Stage::Ended), Some(Stage::Encoding))
        );
        assert_eq!(
            last.detail,
            format!("fencing token {}, attempt {}", c.fencing_token, c.attempts)
        );
    }
    assert_eq!(audit_count(store).await, before + 2);

    let rest = store
        .claim(&ClaimSpec {
            limit: 100,
            ..spec.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        rest.len(),
        3,
        "backing-off and Connected sessions are not eligible"
    );
    assert!(
        rest.iter()
            .all(|s| s.id != backing_off.id && s.id != other.id)
    );
    assert!(store.claim(&spec).await.unwrap().is_empty());

    // Once its backoff has passed, the session is eligible.
    let later = ClaimSpec {
        now: T0.saturating_add(Duration::from_secs(501)),
        ..spec
    };
    let got = store.claim(&later).await.unwrap();
    assert_eq!(
        got.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![backing_off.id]
    );
}

/// A claim restricted to given sessions (`among`) takes only those, still oldest first,
/// within the limit and the backoff, and leaves every other session as it was.
pub async fn claim_among_takes_only_the_named(store: &dyn SessionStore) {
    let mut queued = Vec::new();
    for i in 0..6u64 {
        let mut s = sample(Stage::Ended, T0);
        s.end_time = Some(T0.saturating_add(Duration::from_secs(i)));
        store.insert(&s, &opened(&s)).await.unwrap();
        queued.push(s);
    }
    let mut backing_off = sample(Stage::Ended, T0);
    backing_off.retry_at = Some(T0.saturating_add(Duration::from_secs(500)));
    store
        .insert(&backing_off, &opened(&backing_off))
        .await
        .unwrap();
    let now = T0.saturating_add(Duration::from_secs(200));
    // Node A has sessions 1, 3 and 5 (and one that is backing off, and one unknown id).
    let mine = vec![
        queued[5].id,
        queued[1].id,
        queued[3].id,
        backing_off.id,
        SessionId::new(),
    ];
    let spec = ClaimSpec {
        from: Stage::Ended,
        to: Stage::Encoding,
        owner: pi("enc-a"),
        now,
        lease_expires: now.saturating_add(Duration::from_secs(60)),
        limit: 2,
        among: Some(mine.clone()),
    };
    let mut got = store.claim(&spec).await.unwrap();
    got.sort_by_key(|s| s.end_time);
    assert_eq!(
        got.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![queued[1].id, queued[3].id],
        "the oldest of the named sessions, within the limit"
    );
    let rest = store
        .claim(&ClaimSpec {
            limit: 100,
            ..spec.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![queued[5].id],
        "a backing-off session stays out, an unknown id is ignored"
    );
    for s in [&queued[0], &queued[2], &queued[4], &backing_off] {
        let now_row = store.get(s.id).await.unwrap().unwrap();
        assert_eq!(
            now_row.stage,
            Stage::Ended,
            "an unnamed session is untouched"
        );
        assert_eq!(now_row.attempts, s.attempts);
        assert_eq!(now_row.version, s.version);
    }
    // Another node names the others; an unrestricted claim sees whatever is left.
    let theirs = store
        .claim(&ClaimSpec {
            owner: pi("enc-b"),
            limit: 100,
            among: Some(vec![queued[0].id, queued[2].id]),
            ..spec.clone()
        })
        .await
        .unwrap();
    assert_eq!(theirs.len(), 2);
    assert!(
        theirs
            .iter()
            .all(|s| s.process_instance == Some(pi("enc-b")))
    );
    let any = store
        .claim(&ClaimSpec {
            limit: 100,
            among: None,
            ..spec
        })
        .await
        .unwrap();
    assert_eq!(
        any.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![queued[4].id]
    );
}

/// Concurrent claims never hand one session to two callers.
pub async fn concurrent_claims_are_disjoint(store: Arc<dyn SessionStore>) {
    let n = 60;
    for _ in 0..n {
        let s = sample(Stage::DoneEncoded, T0);
        store.insert(&s, &opened(&s)).await.unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim(&ClaimSpec {
                        from: Stage::DoneEncoded,
                        to: Stage::Uploading,
                        owner: pi(&format!("up-{w}")),
                        now: T0,
                        lease_expires: T0.saturating_add(Duration::from_secs(60)),
                        limit: 3,
                        among: None,
                    })
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|s| (s.id, s.process_instance)));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    assert_eq!(all.len(), n, "every session claimed exactly once");
    let mut ids: Vec<_> = all.iter().map(|(id, _)| *id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "no session claimed twice");
    for (id, owner) in all {
        assert_eq!(
            store.get(id).await.unwrap().unwrap().process_instance,
            owner
        );
    }
}

/// The watchdog query finds stale Connected sessions and expired leases, nothing else.
pub async fn overdue_finds_exactly_the_silent(store: &dyn SessionStore) {
    let now = T0.saturating_add(Duration::from_secs(1000));
    let mut stale = sample(Stage::Connected, T0);
    stale.last_reported = now.saturating_sub(Duration::from_secs(91));
    let mut fresh = sample(Stage::Connected, T0);
    fresh.last_reported = now.saturating_sub(Duration::from_secs(10));
    let mut expired = sample(Stage::Uploading, T0);
    expired.lease_expires = Some(now.saturating_sub(Duration::from_secs(1)));
    let mut live = sample(Stage::Encoding, T0);
    live.lease_expires = Some(now.saturating_add(Duration::from_secs(1)));
    let mut queued = sample(Stage::Ended, T0);
    queued.last_reported = T0;
    for s in [&stale, &fresh, &expired, &live, &queued] {
        store.insert(s, &opened(s)).await.unwrap();
    }
    let q = OverdueQuery {
        connected_before: now.saturating_sub(Duration::from_secs(90)),
        now,
        limit: 100,
    };
    let mut got: Vec<SessionId> = store
        .overdue(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    got.sort();
    let mut want = vec![stale.id, expired.id];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        store
            .overdue(&OverdueQuery { limit: 1, ..q })
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Listing filters by ids and stages, orders newest first, honours the limit.
pub async fn list_filters_and_orders(store: &dyn SessionStore) {
    let mut all = Vec::new();
    for (i, stage) in Stage::ALL.into_iter().enumerate() {
        let s = sample(stage, T0.saturating_add(Duration::from_secs(i as u64)));
        store.insert(&s, &opened(&s)).await.unwrap();
        all.push(s);
    }
    let listed = store.list(&ListQuery::default()).await.unwrap();
    assert_eq!(listed.len(), all.len());
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].start_time >= w[1].start_time)
    );
    let some = store
        .list(&ListQuery {
            stages: StageSet::of(&[Stage::Failed, Stage::Ended]),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        some.iter().map(|s| s.stage).collect::<Vec<_>>(),
        vec![Stage::Failed, Stage::Ended]
    );
    let by_id = store
        .list(&ListQuery {
            ids: vec![all[2].id, SessionId::new(), all[0].id],
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        by_id.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![all[2].id, all[0].id]
    );
    let limited = store
        .list(&ListQuery {
            limit: 3,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 3);

    // Pages: each starts after the last session of the one before, none is lost or
    // repeated, ties on the start time included.
    let mut tied = Vec::new();
    for _ in 0..3 {
        let s = sample(Stage::Ended, T0.saturating_add(Duration::from_secs(3)));
        store.insert(&s, &opened(&s)).await.unwrap();
        tied.push(s.id);
    }
    let everything = store.list(&ListQuery::default()).await.unwrap();
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list(&ListQuery {
                limit: 2,
                after,
                ..ListQuery::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(crate::store::ListCursor::of(last));
        paged.extend(page.iter().map(|s| s.id));
    }
    assert_eq!(
        paged,
        everything.iter().map(|s| s.id).collect::<Vec<_>>(),
        "paging walks the whole listing in order"
    );
    assert!(tied.iter().all(|t| paged.contains(t)));
}

/// The audit log: ordered by seq, filterable by session, pageable, append-only through the
/// trait (no method removes or rewrites an event).
pub async fn audit_log_is_ordered_and_pageable(store: &dyn SessionStore) {
    let s = sample(Stage::Connected, T0);
    store.insert(&s, &opened(&s)).await.unwrap();
    let mut seqs = Vec::new();
    for i in 0..5 {
        let seq = store
            .append_audit(&AuditRecord {
                at: T0.saturating_add(Duration::from_secs(i)),
                session: if i % 2 == 0 { Some(s.id) } else { None },
                actor: format!("actor-{i}"),
                action: AuditAction::Refused,
                from_stage: None,
                to_stage: None,
                detail: format!("detail {i} with 'quotes' and \"dq\""),
            })
            .await
            .unwrap();
        seqs.push(seq);
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq grows: {seqs:?}");
    let all = store.audit_events(&AuditQuery::default()).await.unwrap();
    assert_eq!(all.len(), 6);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(all[3].record.detail, "detail 2 with 'quotes' and \"dq\"");
    let mine = store
        .audit_events(&AuditQuery {
            session: Some(s.id),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.len(), 4, "opened + three of the five");
    let page = store
        .audit_events(&AuditQuery {
            after_seq: Some(seqs[2]),
            limit: 1,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].seq, seqs[3]);
}

fn engine(store: Arc<dyn SessionStore>, clock: &ManualClock) -> Engine {
    Engine::new(store, Arc::new(clock.clone()), EngineConfig::default())
}

fn new_session(gateway: &ProcessInstance) -> NewSession {
    NewSession {
        id: SessionId::new(),
        user: "alice".into(),
        target: "db-01".into(),
        protocol: Protocol::Ssh,
        checkout_id: Some(CheckoutId::new("co-1").unwrap()),
        process_instance: gateway.clone(),
    }
}

/// The whole happy path through the engine, with its audit trail.
pub async fn engine_full_lifecycle(store: Arc<dyn SessionStore>) {
    let clock = ManualClock::new(T0);
    let e = engine(store, &clock);
    let gw = pi("gateway-1");
    let id = e.open_session(new_session(&gw)).await.unwrap().id;
    clock.advance(Duration::from_secs(10));
    let hb = e.heartbeat(id, &gw).await.unwrap();
    assert_eq!(hb.last_reported, clock.now());
    assert_eq!(hb.lease_expires, None, "a gateway holds no lease");
    e.update_session(id).await.unwrap();
    clock.advance(Duration::from_secs(10));
    let ended = e.end_session(id, &gw).await.unwrap();
    assert_eq!(ended.stage, Stage::Ended);
    assert!(ended.terminate);
    assert_eq!(ended.end_time, Some(clock.now()));
    // Idempotent retry.
    assert_eq!(e.end_session(id, &gw).await.unwrap(), ended);

    let enc = pi("encoder-1");
    let lease = e.claim_for_encoding(&enc, 10).await.unwrap().remove(0);
    assert_eq!(
        (lease.session, lease.stage, lease.attempt),
        (id, Stage::Encoding, 1)
    );
    assert_eq!(lease.token, FencingToken(1));
    clock.advance(Duration::from_secs(30));
    let renewed = e.renew(&lease).await.unwrap();
    assert!(renewed.expires > lease.expires);
    let s = e
        .update_recording_status(RecordingStatusUpdate {
            session: id,
            process_instance: enc.clone(),
            status: Stage::DoneEncoded,
            token: Some(lease.token),
            ssh_logs_uploaded: None,
            recording_format: Some(".psmr".into()),
            note: None,
        })
        .await
        .unwrap();
    assert_eq!(s.stage, Stage::DoneEncoded);
    assert_eq!(s.attempts, 0);
    assert_eq!(s.lease_expires, None);

    let up = pi("Uploader_01");
    let lease = e.claim_for_upload(&up, 1).await.unwrap().remove(0);
    assert_eq!(lease.token, FencingToken(2));
    let s = e
        .update_recording_status(RecordingStatusUpdate {
            session: id,
            process_instance: up.clone(),
            status: Stage::Uploading,
            token: None,
            ssh_logs_uploaded: Some(true),
            recording_format: Some(".mp4".into()),
            note: None,
        })
        .await
        .unwrap();
    assert!(s.ssh_logs_uploaded);
    e.complete(&lease, Completion::default()).await.unwrap();
    let done = e.session(id).await.unwrap();
    assert_eq!(done.stage, Stage::DoneUploaded);
    assert_eq!(done.recording_format.as_deref(), Some(".mp4"));
    let status = e.recording_status(&[id]).await.unwrap();
    assert_eq!(status[0].stage, Stage::DoneUploaded);

    let trail: Vec<_> = e
        .audit_trail(id)
        .await
        .unwrap()
        .into_iter()
        .map(|ev| (ev.record.action, ev.record.from_stage, ev.record.to_stage))
        .collect();
    use AuditAction as A;
    use Stage as S;
    assert_eq!(
        trail,
        vec![
            (A::Opened, None, Some(S::Connected)),
            (A::Ended, Some(S::Connected), Some(S::Ended)),
            (A::Claimed, Some(S::Ended), Some(S::Encoding)),
            (A::Completed, Some(S::Encoding), Some(S::DoneEncoded)),
            (A::Claimed, Some(S::DoneEncoded), Some(S::Uploading)),
            (A::RecordingStatusUpdated, None, None),
            (A::Completed, Some(S::Uploading), Some(S::DoneUploaded)),
        ]
    );
}

/// Bad input gets a typed error with a clear message and leaves the store unchanged.
pub async fn engine_bad_input_changes_nothing(store: Arc<dyn SessionStore>) {
    let clock = ManualClock::new(T0);
    let e = engine(store.clone(), &clock);
    let gw = pi("gateway-1");
    let id = e.open_session(new_session(&gw)).await.unwrap().id;
    let enc = pi("encoder-1");

    let snapshot = |store: Arc<dyn SessionStore>| async move {
        (
            store.list(&ListQuery::default()).await.unwrap(),
            store.audit_events(&AuditQuery::default()).await.unwrap(),
        )
    };
    let before = snapshot(store.clone()).await;

    let unknown = SessionId::new();
    let err = e.heartbeat(unknown, &gw).await.unwrap_err();
    assert_eq!(err.to_string(), format!("unknown session {unknown}"));
    let err = e.heartbeat(id, &enc).await.unwrap_err();
    assert!(matches!(err, CoreError::NotOwner { .. }), "{err}");
    assert!(err.to_string().contains("not held by encoder-1"), "{err}");
    assert!(
        !err.to_string().contains("gateway-1"),
        "the owner is not named to another caller: {err}"
    );
    let err = e.end_session(id, &enc).await.unwrap_err();
    assert!(matches!(err, CoreError::NotOwner { .. }), "{err}");
    let err = e.end_session(unknown, &gw).await.unwrap_err();
    assert!(matches!(err, CoreError::UnknownSession(_)), "{err}");
    assert!(e.claim_for_encoding(&enc, 5).await.unwrap().is_empty());
    let err = e
        .update_recording_status(RecordingStatusUpdate {
            session: id,
            process_instance: enc.clone(),
            status: Stage::DoneEncoded,
            token: None,
            ssh_logs_uploaded: None,
            recording_format: None,
            note: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::WrongStage { .. }), "{err}");
    let err = e.recording_status(&[id, unknown]).await.unwrap_err();
    assert!(
        matches!(err, CoreError::UnknownSession(u) if u == unknown),
        "{err}"
    );
    let err = e
        .open_session(NewSession {
            user: String::new(),
            ..new_session(&gw)
        })
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("invalid user"), "{err}");
    let err = e
        .open_session(NewSession {
            id,
            ..new_session(&gw)
        })
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::SessionExists(_)), "{err}");
    assert_eq!(
        snapshot(store.clone()).await,
        before,
        "refusals changed the store"
    );

    // Out of order and stale tokens, once the session is leased.
    e.end_session(id, &gw).await.unwrap();
    let lease = e.claim_for_encoding(&enc, 1).await.unwrap().remove(0);
    let before = snapshot(store.clone()).await;
    let err = e.heartbeat(id, &gw).await.unwrap_err();
    assert!(matches!(err, CoreError::NotOwner { .. }), "{err}");
    let err = e.update_session(id).await.unwrap_err();
    assert!(matches!(err, CoreError::WrongStage { .. }), "{err}");
    let mut stale = lease.clone();
    stale.token = FencingToken(lease.token.0 - 1);
    let err = e.complete(&stale, Completion::default()).await.unwrap_err();
    assert!(matches!(err, CoreError::StaleToken { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("stale fencing token 0 for session"),
        "{err}"
    );
    let err = e.fail(&stale, "nope").await.unwrap_err();
    assert!(matches!(err, CoreError::StaleToken { .. }), "{err}");
    let mut wrong_owner = lease.clone();
    wrong_owner.owner = pi("encoder-2");
    let err = e
        .complete(&wrong_owner, Completion::default())
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::NotOwner { .. }), "{err}");
    let err = e
        .update_recording_status(RecordingStatusUpdate {
            session: id,
            process_instance: enc.clone(),
            status: Stage::Ended,
            token: Some(lease.token),
            ssh_logs_uploaded: None,
            recording_format: None,
            note: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::IllegalTransition { .. }), "{err}");
    let err = e
        .update_recording_status(RecordingStatusUpdate {
            session: id,
            process_instance: enc.clone(),
            status: Stage::DoneUploaded,
            token: Some(lease.token),
            ssh_logs_uploaded: None,
            recording_format: None,
            note: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::IllegalTransition { .. }), "{err}");
    let err = e
        .complete(
            &lease,
            Completion {
                recording_format: Some("x".repeat(100)),
                ssh_logs_uploaded: None,
                note: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::InvalidInput { .. }), "{err}");
    assert_eq!(
        snapshot(store.clone()).await,
        before,
        "refusals changed the store"
    );

    // A lease lost to the watchdog can't commit, even with the still-current token.
    clock.advance(e.config().lease_ttl + Duration::from_secs(1));
    let report = e.sweep().await.unwrap();
    assert_eq!(report.requeued, 1);
    let err = e.complete(&lease, Completion::default()).await.unwrap_err();
    assert!(matches!(err, CoreError::LeaseLost { .. }), "{err}");
    let err = e.renew(&lease).await.unwrap_err();
    assert!(matches!(err, CoreError::LeaseLost { .. }), "{err}");
}

/// The watchdog: stale gateways end, expired leases requeue with backoff, the last attempt
/// fails with its reason, a fresh heartbeat wins.
pub async fn engine_watchdog(store: Arc<dyn SessionStore>) {
    let clock = ManualClock::new(T0);
    let config = EngineConfig {
        max_attempts: 2,
        ..EngineConfig::default()
    };
    let e = Engine::new(store, Arc::new(clock.clone()), config.clone());
    let gw = pi("gateway-1");
    let alive = e.open_session(new_session(&gw)).await.unwrap().id;
    let dead = e.open_session(new_session(&gw)).await.unwrap().id;
    clock.advance(config.connected_stale_after);
    e.heartbeat(alive, &gw).await.unwrap();
    clock.advance(Duration::from_secs(1));
    let r = e.sweep().await.unwrap();
    assert_eq!(r.ended_stale, 1);
    let d = e.session(dead).await.unwrap();
    assert_eq!(d.stage, Stage::Ended);
    assert!(d.terminate);
    assert_eq!(
        d.end_time,
        Some(T0),
        "end time is the last time the gateway reported"
    );
    assert_eq!(e.session(alive).await.unwrap().stage, Stage::Connected);

    // Attempt 1 expires -> back to Ended, with backoff.
    let enc = pi("encoder-1");
    let lease = e.claim_for_encoding(&enc, 1).await.unwrap().remove(0);
    assert_eq!(lease.session, dead);
    clock.advance(config.lease_ttl + Duration::from_secs(1));
    assert_eq!(e.sweep().await.unwrap().requeued, 1);
    let s = e.session(dead).await.unwrap();
    assert_eq!(s.stage, Stage::Ended);
    assert!(
        s.failure_reason
            .as_deref()
            .unwrap()
            .contains("lease of encoder-1 expired")
    );
    let during_backoff = e.claim_for_encoding(&enc, 10).await.unwrap();
    assert!(
        during_backoff.iter().all(|l| l.session != dead),
        "backing off"
    );
    clock.advance(config.backoff(1));
    let lease = e.claim_for_encoding(&enc, 1).await.unwrap().remove(0);
    assert_eq!((lease.attempt, lease.token), (2, FencingToken(2)));
    // Attempt 2 (the last) expires -> Failed, reason kept.
    clock.advance(config.lease_ttl + Duration::from_secs(1));
    assert_eq!(e.sweep().await.unwrap().failed, 1);
    let s = e.session(dead).await.unwrap();
    assert_eq!(s.stage, Stage::Failed);
    assert!(
        s.failure_reason
            .as_deref()
            .unwrap()
            .contains("attempt 2 of 2")
    );
    // An admin requeues it to the step that failed.
    let s = e.requeue_failed(dead, "admin").await.unwrap();
    assert_eq!((s.stage, s.attempts), (Stage::Ended, 0));
    assert!(e.sweep().await.unwrap().moved() == 0);

    // fail(): retry with backoff, then Failed with the reason.
    let lease = e.claim_for_encoding(&enc, 1).await.unwrap().remove(0);
    let s = e.fail(&lease, "disk full").await.unwrap();
    assert_eq!(s.stage, Stage::Ended);
    assert_eq!(
        s.retry_at,
        Some(clock.now().saturating_add(config.backoff(1)))
    );
    clock.advance(config.backoff(1));
    let lease = e.claim_for_encoding(&enc, 1).await.unwrap().remove(0);
    let s = e.fail(&lease, "disk still full").await.unwrap();
    assert_eq!(s.stage, Stage::Failed);
    assert_eq!(s.failure_reason.as_deref(), Some("disk still full"));
    let after = e.claim_for_encoding(&enc, 10).await.unwrap();
    assert!(
        after.iter().all(|l| l.session != dead),
        "a Failed session is never claimed"
    );
}

/// Termination requested by an admin reaches the gateway through its heartbeat.
pub async fn engine_termination_request(store: Arc<dyn SessionStore>) {
    let clock = ManualClock::new(T0);
    let e = engine(store, &clock);
    let gw = pi("gateway-1");
    let id = e.open_session(new_session(&gw)).await.unwrap().id;
    assert!(!e.heartbeat(id, &gw).await.unwrap().terminate);
    e.request_termination(id, "admin:bob", "suspicious rm -rf")
        .await
        .unwrap();
    let hb = e.heartbeat(id, &gw).await.unwrap();
    assert!(hb.terminate);
    assert_eq!(hb.terminate_reason.as_deref(), Some("suspicious rm -rf"));
    assert_eq!(hb.stage, Stage::Connected, "the gateway ends it");
    e.end_session(id, &gw).await.unwrap();
    // Asking again after the end changes nothing.
    let s = e
        .request_termination(id, "admin:bob", "again")
        .await
        .unwrap();
    assert_eq!(s.terminate_reason.as_deref(), Some("suspicious rm -rf"));
}

/// Runs every check, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Arc<dyn SessionStore>>,
{
    insert_get_round_trip(&*make().await).await;
    duplicate_insert_is_refused(&*make().await).await;
    update_matches_reference_semantics(&*make().await).await;
    guards_refuse_without_side_effects(&*make().await).await;
    claim_semantics(&*make().await).await;
    claim_among_takes_only_the_named(&*make().await).await;
    concurrent_claims_are_disjoint(make().await).await;
    overdue_finds_exactly_the_silent(&*make().await).await;
    list_filters_and_orders(&*make().await).await;
    audit_log_is_ordered_and_pageable(&*make().await).await;
    engine_full_lifecycle(make().await).await;
    engine_bad_input_changes_nothing(make().await).await;
    engine_watchdog(make().await).await;
    engine_termination_request(make().await).await;
    engine_keeps_the_recording_commitment(make().await).await;
}

/// EndSession's commitment to the recording (docs/threat-model.md M12) is kept with the
/// session, written into the audit row, handed out with both claims, and not replaced by a
/// retry.
pub async fn engine_keeps_the_recording_commitment(store: Arc<dyn SessionStore>) {
    let clock = ManualClock::new(T0);
    let e = engine(store, &clock);
    let gw = pi("gateway-1");
    let committed = RecordingCommitment {
        chain: [7; 32],
        chunks: 3,
        events: 41,
    };
    let id = e.open_session(new_session(&gw)).await.unwrap().id;
    let plain = e.open_session(new_session(&gw)).await.unwrap().id;
    let ended = e
        .end_session_committed(id, &gw, Some(&committed))
        .await
        .unwrap();
    assert_eq!(ended.recording_commitment, Some(committed));
    let other = RecordingCommitment {
        chain: [9; 32],
        ..committed
    };
    let again = e
        .end_session_committed(id, &gw, Some(&other))
        .await
        .unwrap();
    assert_eq!(
        again.recording_commitment,
        Some(committed),
        "the first stands"
    );
    e.end_session(plain, &gw).await.unwrap();
    assert_eq!(e.session(plain).await.unwrap().recording_commitment, None);

    let trail = e.audit_trail(id).await.unwrap();
    let row = trail
        .iter()
        .find(|ev| ev.record.action == AuditAction::Ended)
        .unwrap();
    assert_eq!(
        row.record.detail,
        format!("EndSession; recording {committed}")
    );

    let enc = pi("encoder-1");
    let leases = e.claim_for_encoding(&enc, 10).await.unwrap();
    let lease = leases.iter().find(|l| l.session == id).unwrap();
    assert_eq!(lease.recording, Some(committed));
    assert_eq!(
        leases
            .iter()
            .find(|l| l.session == plain)
            .unwrap()
            .recording,
        None
    );
    e.complete(lease, Completion::default()).await.unwrap();
    let up = pi("Uploader_01");
    let lease = e
        .claim_for_upload(&up, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.session == id)
        .unwrap();
    assert_eq!(lease.recording, Some(committed));
}
