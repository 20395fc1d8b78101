//! Issue 17 M6 over the API, as an admin holding the admin key would try it: PUT the target
//! to another host, then let a gateway fetch the credential. The credential is gone until it
//! is set again, and an ALERT audit row says who repointed what.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, Harness};
use psm_client::wire;
use psm_core::store::AuditQuery;
use psm_core::{ProcessInstance, Protocol, SessionId};
use psm_server::Role;

const SECRET: &str = "repoint-secret-8812";

fn target(host: &str, port: u16) -> wire::PutTargetRequest {
    wire::PutTargetRequest {
        name: "web-01".into(),
        host: host.into(),
        port,
        protocol: Protocol::Ssh,
        host_key: Some("SHA256:AAAA".into()),
    }
}

#[tokio::test]
async fn repointing_a_target_over_the_api_withholds_its_credential() {
    let h = Harness::start(Backend::Sqlite).await;
    let admin = h.client(Role::Admin);
    let gw = h.client(Role::Gateway);
    let gwp = ProcessInstance::new("gateway-1").unwrap();
    admin.put_target(&target("127.0.0.1", 2222)).await.unwrap();
    admin
        .set_credential(&wire::SetCredentialRequest {
            target: "web-01".into(),
            user_name: "root".into(),
            password: Some(SECRET.into()),
            private_key: None,
            passphrase: None,
        })
        .await
        .unwrap();
    let co = gw
        .checkout(&wire::CheckoutRequestDto {
            user_name: "alice".into(),
            target: "web-01".into(),
            duration_minutes: 30,
        })
        .await
        .unwrap()
        .checkout;
    let id = SessionId::new();
    gw.open_session(&wire::OpenSessionRequest {
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
    assert_eq!(
        gw.get_credential(id, &gwp)
            .await
            .unwrap()
            .password
            .as_deref(),
        Some(SECRET)
    );

    // The attack: the same target, now at the attacker's machine.
    admin.put_target(&target("203.0.113.66", 22)).await.unwrap();
    let err = gw.get_credential(id, &gwp).await.unwrap_err().to_string();
    assert!(!err.contains(SECRET), "{err}");
    let events = h
        .engine
        .store()
        .audit_events(&AuditQuery::default())
        .await
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.record.detail.starts_with(
                "ALERT: target web-01 repointed from 127.0.0.1:2222 to 203.0.113.66:22"
            )),
        "{:?}",
        events.iter().map(|e| &e.record.detail).collect::<Vec<_>>()
    );
}
