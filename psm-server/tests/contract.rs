//! Every endpoint through the typed client against a real server, on SQLite and
//! PostgreSQL: the answers carry what the contract says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use common::{Backend, Harness, tiny_png};
use psm_client::wire;
use psm_core::{CheckoutId, ProcessInstance, Protocol, SessionId, Stage};
use psm_server::Role;

const SECRET: &str = "contract-secret-5c2e1";

async fn every_endpoint(backend: Backend) {
    let h = Harness::start(backend).await;
    let admin = h.client(Role::Admin);
    let gw = h.client(Role::Gateway);
    let enc = h.client(Role::Encoder);
    let up = h.client(Role::Uploader);
    let gwp = ProcessInstance::new("gateway-1").unwrap();
    let encp = ProcessInstance::new("encoder-1").unwrap();
    let upp = ProcessInstance::new("uploader-1").unwrap();

    assert_eq!(admin.health().await.unwrap()["Status"], "ok");
    assert_eq!(admin.ready().await.unwrap()["Status"], "ready");

    // Vault administration.
    let t = admin
        .put_target(&wire::PutTargetRequest {
            name: "web-01".into(),
            host: "127.0.0.1".into(),
            port: 2222,
            protocol: Protocol::Ssh,
            host_key: Some("SHA256:AAAA".into()),
        })
        .await
        .unwrap();
    assert_eq!(t.port, 2222);
    admin
        .put_target(&wire::PutTargetRequest {
            name: "tmp".into(),
            host: "127.0.0.1".into(),
            port: 3389,
            protocol: Protocol::Rdp,
            host_key: None,
        })
        .await
        .unwrap();
    assert_eq!(admin.list_targets().await.unwrap().len(), 2);
    assert_eq!(admin.delete_target("tmp").await.unwrap().result, "Success");
    assert_eq!(admin.list_targets().await.unwrap().len(), 1);
    let r = admin
        .set_credential(&wire::SetCredentialRequest {
            target: "web-01".into(),
            user_name: "root".into(),
            password: Some(SECRET.into()),
            private_key: None,
            passphrase: None,
        })
        .await
        .unwrap();
    assert!(!serde_json::to_string(&r).unwrap().contains(SECRET));
    assert_eq!(gw.get_target("web-01").await.unwrap().host, "127.0.0.1");

    // Checkout, session, credential.
    let co = gw
        .checkout(&wire::CheckoutRequestDto {
            user_name: "alice".into(),
            target: "web-01".into(),
            duration_minutes: 30,
        })
        .await
        .unwrap()
        .checkout;
    let rem = gw.get_remaining_minutes_for_checkout(&co.id).await.unwrap();
    assert_eq!((rem.remaining_minutes, rem.active), (30, true));
    let id = SessionId::new();
    let opened = gw
        .open_session(&wire::OpenSessionRequest {
            session: id,
            process_instance: gwp.clone(),
            user_name: "alice".into(),
            target: "web-01".into(),
            protocol: Protocol::Ssh,
            checkout_id: Some(co.id.clone()),
            client_address: None,
        })
        .await
        .unwrap();
    assert_eq!(opened.session.stage, Stage::Connected);
    let cred = gw.get_credential(id, &gwp).await.unwrap();
    assert_eq!(cred.user_name, "root");
    assert_eq!(cred.password.as_deref(), Some(SECRET));
    assert_eq!(cred.target.as_ref().unwrap().port, 2222);
    assert!(
        !format!("{cred:?}").contains(SECRET),
        "Debug hides the secret"
    );

    // Gateway traffic.
    let p = gw
        .polling(&wire::PollingRequest {
            session: id,
            process_instance: gwp.clone(),
            fencing_token: None,
        })
        .await
        .unwrap();
    assert!(!p.terminate_session);
    assert_eq!(gw.update_session(id).await.unwrap().result, "Success");
    assert_eq!(
        gw.save_clipboard(id, "copied").await.unwrap().result,
        "Success"
    );
    assert_eq!(
        gw.save_key_strokes(id, "ls -la\r").await.unwrap().result,
        "Success"
    );
    let png = base64::engine::general_purpose::STANDARD.encode(tiny_png());
    assert_eq!(
        gw.save_screenshot(id, format!("data:image/png;base64,{png}"))
            .await
            .unwrap()
            .result,
        "Success"
    );
    assert_eq!(
        gw.save_session_recording(id, "AAEC").await.unwrap().result,
        "Success"
    );
    assert_eq!(gw.get_user_platform().await.unwrap().platform, "Unknown");
    assert_eq!(gw.get_ip().await.unwrap().ip, "127.0.0.1");
    let settings = enc.get_pam_settings().await.unwrap();
    assert_eq!(settings, wire::PamSettingsDto::from(&h.settings));

    // Admin: join and terminate; the gateway learns of it on Polling.
    let join = admin
        .join_session(&wire::JoinSessionRequest {
            session: id,
            gateway_server_address: "127.0.0.1:8443".into(),
            width: "1280".into(),
            height: "720".into(),
            dpi: "96".into(),
        })
        .await
        .unwrap();
    assert!(join.starts_with("wss://127.0.0.1:8443/live/"), "{join}");
    admin
        .terminate_session(&wire::TerminateSessionRequest {
            session: id,
            reason: "policy".into(),
        })
        .await
        .unwrap();
    let p = gw
        .polling(&wire::PollingRequest {
            session: id,
            process_instance: gwp.clone(),
            fencing_token: None,
        })
        .await
        .unwrap();
    assert!(p.terminate_session);
    assert_eq!(p.terminate_reason.as_deref(), Some("policy"));
    let after = gw.save_clipboard(id, "late").await.unwrap();
    assert_eq!(after.result, "Terminated");
    assert_eq!(after.terminate_session, Some(true));
    gw.end_session(id, &gwp).await.unwrap();
    let checkin = gw.checkin(&co.id).await.unwrap();
    assert!(!checkin.already_checked_in);
    assert!(checkin.checkout.unwrap().ended.is_some());

    // Workers.
    let claim = enc.encoder_claim(&encp, Some(5)).await.unwrap();
    assert_eq!(claim.session_ids, vec![id]);
    let token = claim.leases[0].fencing_token;
    let p = enc
        .polling(&wire::PollingRequest {
            session: id,
            process_instance: encp.clone(),
            fencing_token: Some(token),
        })
        .await
        .unwrap();
    assert_eq!(p.lease.unwrap().fencing_token, token);
    let failed = enc
        .fail_recording_process(&wire::FailRecordingRequest {
            priv_session_id: id,
            process_instance: encp.clone(),
            fencing_token: token,
            reason: "transient".into(),
        })
        .await
        .unwrap();
    assert_eq!(failed.status, Stage::Ended);
    h.clock.advance(h.engine.config().retry_backoff_max);
    let claim = enc.encoder_claim(&encp, None).await.unwrap();
    let token = claim.leases[0].fencing_token;
    enc.update_recording_process_status(&wire::UpdateRecordingStatusRequest {
        priv_session_id: id,
        process_instance: encp.clone(),
        recording_status: Stage::DoneEncoded,
        ssh_logs_uploaded: None,
        recording_format: Some(".psmr".into()),
        fencing_token: Some(token),
        note: Some("recording damaged: 1 gap".into()),
    })
    .await
    .unwrap();
    // The encoder's note (extension) shows as the session's FailureReason.
    let st = admin.get_recording_process_status(&[id]).await.unwrap();
    assert_eq!(st[0].status, Stage::DoneEncoded);
    assert_eq!(
        st[0].failure_reason.as_deref(),
        Some("recording damaged: 1 gap")
    );
    let claim = up.uploder_claim(&upp, None).await.unwrap();
    up.update_recording_process_status(&wire::UpdateRecordingStatusRequest {
        priv_session_id: id,
        process_instance: upp.clone(),
        recording_status: Stage::DoneUploaded,
        ssh_logs_uploaded: Some(true),
        recording_format: None,
        fencing_token: Some(claim.leases[0].fencing_token),
        note: None,
    })
    .await
    .unwrap();
    let st = admin.get_recording_process_status(&[id]).await.unwrap();
    assert_eq!(st[0].status, Stage::DoneUploaded);
    let unknown = CheckoutId::new("nope").unwrap();
    let e = gw
        .get_remaining_minutes_for_checkout(&unknown)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown checkout"), "{e}");
    h.stop().await;
}

#[tokio::test]
async fn every_endpoint_on_sqlite() {
    every_endpoint(Backend::Sqlite).await;
}

#[tokio::test]
async fn every_endpoint_on_postgres() {
    every_endpoint(Backend::Postgres).await;
}
