//! The conformance suite of [`ControlPlane`]: every implementation (the in-process
//! [`LocalControlPlane`](super::LocalControlPlane), `psm-client`'s HTTP one against
//! `psm-server`, an integrator's) must pass it. Enabled by the `conformance` feature.
//!
//! A [`Fixture`] is a control plane plus the in-process parts behind it that the suite
//! drives directly: the clock, the engine (for watchdog sweeps) and the vault (for admin
//! set-up). [`run_all`] runs every case, each on a fresh fixture from `make`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::ManualClock;
use crate::vault::{CheckoutRequest, Credential, CredentialSecret, PamSettings, Target, Vault};
use crate::{
    CheckoutId, Completion, ControlPlane, CoreError, Engine, NewSession, ProcessInstance, Protocol,
    RecordingStatusUpdate, SessionId, Stage,
};

/// What the suite needs.
pub struct Fixture {
    /// The implementation under test.
    pub cp: Arc<dyn ControlPlane>,
    /// The clock of the engine behind it.
    pub clock: ManualClock,
    /// The engine behind it.
    pub engine: Engine,
    /// The vault behind it.
    pub vault: Vault,
    /// The settings it was configured with.
    pub settings: PamSettings,
}

const SECRET: &str = "conformance-secret-7f3a9";

fn pi(name: &str) -> ProcessInstance {
    ProcessInstance::new(name).unwrap()
}

async fn open(f: &Fixture, gw: &ProcessInstance, checkout: Option<CheckoutId>) -> SessionId {
    let id = SessionId::new();
    let s =
        f.cp.open_session(NewSession {
            id,
            user: "alice".into(),
            target: "web-01".into(),
            protocol: Protocol::Ssh,
            checkout_id: checkout,
            process_instance: gw.clone(),
        })
        .await
        .unwrap();
    assert_eq!(s.stage, Stage::Connected);
    assert_eq!(s.id, id);
    id
}

/// The whole pipeline through the trait.
pub async fn lifecycle(f: Fixture) {
    let gw = pi("gateway-1");
    let id = open(&f, &gw, None).await;
    let reply = f.cp.heartbeat(id, &gw).await.unwrap();
    assert!(!reply.terminate);
    f.cp.update_session(id).await.unwrap();
    f.cp.end_session(id, &gw).await.unwrap();
    f.cp.end_session(id, &gw).await.unwrap(); // idempotent
    let enc = pi("encoder-1");
    let leases = f.cp.claim_for_encoding(&enc, 4).await.unwrap();
    assert_eq!(leases.len(), 1);
    let lease = &leases[0];
    assert_eq!(
        (lease.session, lease.stage, lease.attempt),
        (id, Stage::Encoding, 1)
    );
    assert!(lease.token.0 > 0);
    let renewed = f.cp.renew(lease).await.unwrap();
    assert_eq!(renewed.token, lease.token);
    assert!(f.cp.claim_for_encoding(&enc, 4).await.unwrap().is_empty());
    f.cp.complete(
        &renewed,
        Completion {
            recording_format: Some(".psmr".into()),
            ssh_logs_uploaded: None,
            note: Some("recording damaged: 1 gap".into()),
        },
    )
    .await
    .unwrap();
    // The encoder's note is the session's status, over any transport.
    let st = f.cp.recording_status(&[id]).await.unwrap();
    assert_eq!(st[0].stage, Stage::DoneEncoded);
    assert_eq!(
        st[0].failure_reason.as_deref(),
        Some("recording damaged: 1 gap")
    );
    let up = pi("uploader-1");
    let lease = f.cp.claim_for_upload(&up, 1).await.unwrap().remove(0);
    assert_eq!(lease.stage, Stage::Uploading);
    f.cp.complete(
        &lease,
        Completion {
            recording_format: None,
            ssh_logs_uploaded: Some(true),
            note: None,
        },
    )
    .await
    .unwrap();
    let st = f.cp.recording_status(&[id]).await.unwrap();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].stage, Stage::DoneUploaded);
    // A completion without a note clears it (the uploader repeats a note it should keep).
    assert_eq!(st[0].failure_reason, None);
    let s = f.engine.session(id).await.unwrap();
    assert_eq!(s.recording_format.as_deref(), Some(".psmr"));
    assert!(s.ssh_logs_uploaded);
}

/// Refusals come back as the same error variants.
pub async fn refusals(f: Fixture) {
    let gw = pi("gateway-1");
    let unknown = SessionId::new();
    assert!(matches!(
        f.cp.heartbeat(unknown, &gw).await,
        Err(CoreError::UnknownSession(s)) if s == unknown
    ));
    assert!(matches!(
        f.cp.recording_status(&[unknown]).await,
        Err(CoreError::UnknownSession(_))
    ));
    let id = open(&f, &gw, None).await;
    let dup =
        f.cp.open_session(NewSession {
            id,
            user: "alice".into(),
            target: "web-01".into(),
            protocol: Protocol::Ssh,
            checkout_id: None,
            process_instance: gw.clone(),
        })
        .await;
    assert!(matches!(dup, Err(CoreError::SessionExists(_))), "{dup:?}");
    let other = pi("gateway-2");
    assert!(matches!(
        f.cp.end_session(id, &other).await,
        Err(CoreError::NotOwner { .. })
    ));
    assert!(matches!(
        f.cp.heartbeat(id, &other).await,
        Err(CoreError::NotOwner { .. })
    ));
    let bad =
        f.cp.open_session(NewSession {
            id: SessionId::new(),
            user: String::new(),
            target: "t".into(),
            protocol: Protocol::Rdp,
            checkout_id: None,
            process_instance: gw.clone(),
        })
        .await;
    assert!(
        matches!(bad, Err(CoreError::InvalidInput { .. })),
        "{bad:?}"
    );
}

/// A worker whose lease ran out cannot commit; the session goes to another worker.
pub async fn fencing(f: Fixture) {
    let gw = pi("gateway-1");
    let id = open(&f, &gw, None).await;
    f.cp.end_session(id, &gw).await.unwrap();
    let a = pi("encoder-a");
    let old = f.cp.claim_for_encoding(&a, 1).await.unwrap().remove(0);
    f.clock
        .advance(f.engine.config().lease_ttl + Duration::from_secs(1));
    f.engine.sweep().await.unwrap();
    let lost = f.cp.complete(&old, Completion::default()).await;
    assert!(matches!(lost, Err(CoreError::LeaseLost { .. })), "{lost:?}");
    f.clock.advance(f.engine.config().retry_backoff_max);
    let b = pi("encoder-b");
    let new = f.cp.claim_for_encoding(&b, 1).await.unwrap().remove(0);
    assert_eq!(new.session, id);
    assert!(new.token > old.token);
    assert_eq!(new.attempt, 2);
    let stale = f.cp.renew(&old).await;
    assert!(
        matches!(stale, Err(CoreError::StaleToken { .. })),
        "{stale:?}"
    );
    let stale = f.cp.fail(&old, "late").await;
    assert!(
        matches!(stale, Err(CoreError::StaleToken { .. })),
        "{stale:?}"
    );
    f.cp.complete(&new, Completion::default()).await.unwrap();
    assert_eq!(
        f.engine.session(id).await.unwrap().stage,
        Stage::DoneEncoded
    );
}

/// A failed attempt goes back to the queue with backoff; the last one makes it Failed.
pub async fn failures(f: Fixture) {
    let gw = pi("gateway-1");
    let id = open(&f, &gw, None).await;
    f.cp.end_session(id, &gw).await.unwrap();
    let enc = pi("encoder-1");
    let max = f.engine.config().max_attempts;
    for attempt in 1..=max {
        let lease = f.cp.claim_for_encoding(&enc, 1).await.unwrap().remove(0);
        assert_eq!(lease.attempt, attempt);
        f.cp.fail(&lease, "ffmpeg exploded").await.unwrap();
        if attempt < max {
            assert!(
                f.cp.claim_for_encoding(&enc, 1).await.unwrap().is_empty(),
                "backoff"
            );
            f.clock.advance(f.engine.config().retry_backoff_max);
        }
    }
    let st = f.cp.recording_status(&[id]).await.unwrap().remove(0);
    assert_eq!(st.stage, Stage::Failed);
    assert_eq!(st.failure_reason.as_deref(), Some("ffmpeg exploded"));
}

/// The seed's UpdateRecordingProcessStatus without a token, and termination through
/// Polling.
pub async fn seed_calls_and_termination(f: Fixture) {
    let gw = pi("gateway-1");
    let id = open(&f, &gw, None).await;
    f.cp.request_termination(id, "admin", "policy violation")
        .await
        .unwrap();
    let reply = f.cp.heartbeat(id, &gw).await.unwrap();
    assert!(reply.terminate);
    assert_eq!(reply.reason.as_deref(), Some("policy violation"));
    f.cp.end_session(id, &gw).await.unwrap();
    let up = pi("Uploader_01");
    let enc = pi("encoder-1");
    let lease = f.cp.claim_for_encoding(&enc, 1).await.unwrap().remove(0);
    f.cp.update_recording_status(RecordingStatusUpdate {
        session: id,
        process_instance: enc.clone(),
        status: Stage::Encoding,
        token: None,
        ssh_logs_uploaded: None,
        recording_format: Some(".mp4".into()),
        note: None,
    })
    .await
    .unwrap();
    f.cp.update_recording_status(RecordingStatusUpdate {
        session: id,
        process_instance: enc.clone(),
        status: Stage::DoneEncoded,
        token: Some(lease.token),
        ssh_logs_uploaded: None,
        recording_format: None,
        note: None,
    })
    .await
    .unwrap();
    f.cp.claim_for_upload(&up, 1).await.unwrap().remove(0);
    let wrong =
        f.cp.update_recording_status(RecordingStatusUpdate {
            session: id,
            process_instance: pi("Uploader_02"),
            status: Stage::DoneUploaded,
            token: None,
            ssh_logs_uploaded: Some(true),
            recording_format: None,
            note: None,
        })
        .await;
    assert!(
        matches!(wrong, Err(CoreError::NotOwner { .. })),
        "{wrong:?}"
    );
    f.cp.update_recording_status(RecordingStatusUpdate {
        session: id,
        process_instance: up,
        status: Stage::DoneUploaded,
        token: None,
        ssh_logs_uploaded: Some(true),
        recording_format: None,
        note: None,
    })
    .await
    .unwrap();
    let st = f.cp.recording_status(&[id]).await.unwrap().remove(0);
    assert_eq!(st.stage, Stage::DoneUploaded);
}

/// Targets, checkouts, GetCredential, remaining minutes, checkin, settings.
pub async fn vault(f: Fixture) {
    f.vault
        .put_target(
            Target {
                name: "web-01".into(),
                host: "127.0.0.1".into(),
                port: 2222,
                protocol: Protocol::Ssh,
                host_key: Some("SHA256:pin".into()),
            },
            "admin",
        )
        .await
        .unwrap();
    f.vault
        .set_credential("web-01", Credential::password("root", SECRET), "admin")
        .await
        .unwrap();
    let t = f.cp.target("web-01").await.unwrap();
    assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 2222));
    assert!(matches!(
        f.cp.target("nope").await,
        Err(CoreError::UnknownTarget(_))
    ));
    let co =
        f.cp.checkout(
            CheckoutRequest {
                user: "alice".into(),
                target: "web-01".into(),
                duration: Duration::from_secs(600),
            },
            "gateway-1",
        )
        .await
        .unwrap();
    assert_eq!(co.target, "web-01");
    let gw = pi("gateway-1");
    let id = open(&f, &gw, Some(co.id.clone())).await;
    let c = f.cp.get_credential(id, &gw).await.unwrap();
    assert_eq!(c.username, "root");
    assert!(matches!(&c.secret, CredentialSecret::Password(p) if p.expose_secret() == SECRET));
    let refused = f.cp.get_credential(id, &pi("gateway-2")).await.unwrap_err();
    assert!(matches!(refused, CoreError::Forbidden(_)), "{refused:?}");
    assert!(!refused.to_string().contains(SECRET));
    f.clock.advance(Duration::from_secs(150));
    let st = f.cp.checkout_status(&co.id).await.unwrap();
    assert_eq!(st.remaining_minutes, 8);
    assert_eq!(st.remaining, Duration::from_secs(450));
    assert!(st.active);
    assert_eq!(st.checkout.user, "alice");
    let done = f.cp.checkin(&co.id, "gateway-1").await.unwrap();
    assert!(!done.already_ended);
    assert_eq!(done.sessions_terminated, vec![id]);
    assert!(f.cp.heartbeat(id, &gw).await.unwrap().terminate);
    assert!(
        f.cp.checkin(&co.id, "gateway-1")
            .await
            .unwrap()
            .already_ended
    );
    let after = f.cp.get_credential(id, &gw).await.unwrap_err();
    assert!(
        matches!(after, CoreError::CheckoutEnded { .. }),
        "{after:?}"
    );
    let st = f.cp.checkout_status(&co.id).await.unwrap();
    assert_eq!((st.remaining_minutes, st.active), (0, false));
    let unknown = CheckoutId::new("does-not-exist").unwrap();
    assert!(matches!(
        f.cp.checkout_status(&unknown).await,
        Err(CoreError::UnknownCheckout(_))
    ));
    assert_eq!(f.cp.pam_settings().await.unwrap(), f.settings);
}

/// An expired checkout: the sweep asks the gateway to terminate.
pub async fn checkout_expiry(f: Fixture) {
    f.vault
        .put_target(
            Target {
                name: "web-01".into(),
                host: "127.0.0.1".into(),
                port: 22,
                protocol: Protocol::Ssh,
                host_key: None,
            },
            "admin",
        )
        .await
        .unwrap();
    f.vault
        .set_credential(
            "web-01",
            Credential::private_key("deploy", "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n", None),
            "admin",
        )
        .await
        .unwrap();
    let co =
        f.cp.checkout(
            CheckoutRequest {
                user: "alice".into(),
                target: "web-01".into(),
                duration: Duration::from_secs(60),
            },
            "admin",
        )
        .await
        .unwrap();
    let gw = pi("gateway-1");
    let id = open(&f, &gw, Some(co.id.clone())).await;
    assert!(matches!(
        f.cp.get_credential(id, &gw).await.unwrap().secret,
        CredentialSecret::PrivateKey { .. }
    ));
    f.clock.advance(Duration::from_secs(61));
    assert_eq!(f.vault.sweep_expired().await.unwrap(), 1);
    let reply = f.cp.heartbeat(id, &gw).await.unwrap();
    assert!(reply.terminate);
    assert!(reply.reason.unwrap_or_default().contains("expired"));
}

/// Runs every case, each on a fresh fixture.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Fixture>,
{
    lifecycle(make().await).await;
    refusals(make().await).await;
    fencing(make().await).await;
    failures(make().await).await;
    seed_calls_and_termination(make().await).await;
    vault(make().await).await;
    checkout_expiry(make().await).await;
}
