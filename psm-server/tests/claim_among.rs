//! EncoderClaim and UploderClaim with PSM's extension `privSessionIds` over HTTP, on SQLite
//! and PostgreSQL: only the named sessions are claimed (a worker names those whose files are
//! on its disk), an empty list claims nothing, more than 1000 ids is refused, and the claim
//! without the field is the seed's, unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, Harness};
use psm_client::{ClientError, HttpControlPlane};
use psm_core::{NewSession, ProcessInstance, Protocol, SessionId, Stage, WorkQueue};
use psm_server::Role;

async fn ended(h: &Harness, n: usize) -> Vec<SessionId> {
    let gw = ProcessInstance::new("gateway-a").unwrap();
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = SessionId::new();
        h.engine
            .open_session(NewSession {
                id,
                user: "alice".into(),
                target: "web-01".into(),
                protocol: Protocol::Ssh,
                checkout_id: None,
                process_instance: gw.clone(),
            })
            .await
            .unwrap();
        h.engine.end_session(id, &gw).await.unwrap();
        ids.push(id);
    }
    ids
}

async fn claims_among_the_named(backend: Backend) {
    let h = Harness::start(backend).await;
    let enc = h.client(Role::Encoder);
    let up = h.client(Role::Uploader);
    let me = ProcessInstance::new("encoder-b").unwrap();
    let ids = ended(&h, 4).await;

    // Only the named, at most `limit` of them.
    let named = [ids[3], ids[1], SessionId::new()];
    let got = enc
        .encoder_claim_among(&me, Some(10), Some(&named))
        .await
        .unwrap();
    let mut got_ids = got.session_ids.clone();
    got_ids.sort();
    let mut want = vec![ids[1], ids[3]];
    want.sort();
    assert_eq!(got_ids, want);
    assert_eq!(got.leases.len(), 2);
    for id in [ids[0], ids[2]] {
        let s = h.engine.session(id).await.unwrap();
        assert_eq!((s.stage, s.attempts), (Stage::Ended, 0));
    }
    // An empty list claims nothing.
    let none = enc
        .encoder_claim_among(&me, Some(10), Some(&[]))
        .await
        .unwrap();
    assert!(none.session_ids.is_empty());
    // More than 1000 ids is refused with the contract's error shape.
    let many: Vec<SessionId> = (0..1001).map(|_| SessionId::new()).collect();
    match enc.encoder_claim_among(&me, Some(1), Some(&many)).await {
        Err(ClientError::Api { status, .. }) => assert_eq!(status, 400),
        other => panic!("expected 400, got {other:?}"),
    }
    assert_eq!(h.engine.session(ids[0]).await.unwrap().stage, Stage::Ended);

    // The role trait over HTTP, as the workers call it; and the upload queue the same way.
    let cp = HttpControlPlane::new(enc);
    let lease = cp
        .claim_for_encoding_among(&me, 5, &[ids[0]])
        .await
        .unwrap();
    assert_eq!(lease.len(), 1);
    assert_eq!(lease[0].session, ids[0]);
    WorkQueue::complete(&cp, &lease[0], Default::default())
        .await
        .unwrap();
    let uploader = HttpControlPlane::new(up);
    let upp = ProcessInstance::new("uploader-b").unwrap();
    assert!(
        uploader
            .claim_for_upload_among(&upp, 5, &[ids[1]])
            .await
            .unwrap()
            .is_empty(),
        "ids[1] is Encoding, not Done-Encoded"
    );
    let got = uploader
        .claim_for_upload_among(&upp, 5, &[ids[1], ids[0]])
        .await
        .unwrap();
    assert_eq!(got.iter().map(|l| l.session).collect::<Vec<_>>(), [ids[0]]);

    // Without the field: the seed's claim, any queued session.
    let any = h
        .client(Role::Encoder)
        .encoder_claim(&me, Some(10))
        .await
        .unwrap();
    assert_eq!(any.session_ids, vec![ids[2]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_among_the_named_sqlite() {
    claims_among_the_named(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_among_the_named_postgres() {
    claims_among_the_named(Backend::Postgres).await;
}
