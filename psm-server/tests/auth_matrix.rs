//! The authorisation matrix: every role (and no key, and a forged key) against every
//! endpoint. A refused call is 401 (no or unknown key) or 403 (wrong role) in the contract's
//! error shape and is audited; an allowed call is never refused for its role. Plus the
//! finer rules: an encoder cannot poll a gateway's session, a gateway that does not own a
//! session gets no credential.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, Harness};
use psm_core::store::AuditQuery;
use psm_core::{AuditAction, NewSession, ProcessInstance, Protocol, SessionId};
use psm_server::Role;
use psm_server::auth::Endpoint;
use reqwest::Method;

fn method(e: Endpoint) -> Method {
    match e {
        Endpoint::GetPamSettings
        | Endpoint::GetUserPlatform
        | Endpoint::GetIp
        | Endpoint::ListTargets
        | Endpoint::ListUsers => Method::GET,
        Endpoint::UpdateRecordingProcessStatus | Endpoint::PutTarget | Endpoint::SetCredential => {
            Method::PUT
        }
        _ => Method::POST,
    }
}

async fn refusals(h: &Harness) -> usize {
    h.engine
        .store()
        .audit_events(&AuditQuery::default())
        .await
        .unwrap()
        .iter()
        .filter(|e| e.record.action == AuditAction::Refused)
        .count()
}

#[tokio::test]
async fn every_role_against_every_endpoint() {
    let h = Harness::start(Backend::Sqlite).await;
    let body = r#"{"session":"123e4567-e89b-12d3-a456-426614174000","processInstance":"p"}"#;
    let mut checked = 0;
    let mut first_anonymous = true;
    for endpoint in Endpoint::ALL {
        let path = format!("{}/{}", psm_client::wire::PREFIX, endpoint.name());
        let m = method(endpoint);
        let b = (m != Method::GET).then_some(body);

        // No key, and a forged key: 401; audited once per client and window, then
        // counted (issue 17 L4: tests/hardening.rs checks the count).
        let before = refusals(&h).await;
        let (st, a) = h.raw(None, m.clone(), &path, b).await;
        assert_eq!(st, 401, "{path} without a key: {a}");
        assert_eq!(a["StatusCode"], 401);
        let audited = usize::from(std::mem::take(&mut first_anonymous));
        assert_eq!(refusals(&h).await, before + audited, "refusal audited once");
        let http = reqwest::Client::new();
        let mut forged = h.keys[&Role::Admin].clone();
        forged.pop();
        forged.push('!');
        let mut req = http
            .request(m.clone(), format!("{}{}", h.url, path))
            .bearer_auth(forged);
        if let Some(b) = b {
            req = req.body(b);
        }
        assert_eq!(
            req.send().await.unwrap().status().as_u16(),
            401,
            "{path} forged key"
        );

        for role in Role::ALL {
            let before = refusals(&h).await;
            let (st, a) = h.raw(Some(role), m.clone(), &path, b).await;
            let refused_for_role = st == 403
                && a["Content"]
                    .as_str()
                    .is_some_and(|c| c.contains("may not call"));
            if endpoint.allows(role) {
                assert!(!refused_for_role && st != 401, "{role} on {path}: {st} {a}");
            } else {
                assert!(
                    refused_for_role,
                    "{role} on {path} must be refused: {st} {a}"
                );
                assert_eq!(a["Code"], "forbidden");
                assert_eq!(refusals(&h).await, before + 1, "refusal audited");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, Endpoint::ALL.len() * Role::ALL.len());
    // Health, readiness and the OpenAPI document need no key.
    for path in ["/healthz", "/readyz", "/api/openapi.json"] {
        assert_eq!(h.raw(None, Method::GET, path, None).await.0, 200, "{path}");
    }
    h.stop().await;
}

#[tokio::test]
async fn finer_rules_than_the_role() {
    let h = Harness::start(Backend::Sqlite).await;
    let id = SessionId::new();
    h.engine
        .open_session(NewSession {
            id,
            user: "alice".into(),
            target: "web-01".into(),
            protocol: Protocol::Ssh,
            checkout_id: None,
            process_instance: ProcessInstance::new("gateway-1").unwrap(),
        })
        .await
        .unwrap();
    let p = psm_client::wire::PREFIX;
    // An encoder naming the gateway's process instance still cannot poll its session.
    let body = format!(r#"{{"session":"{id}","processInstance":"gateway-1"}}"#);
    let (st, a) = h
        .raw(
            Some(Role::Encoder),
            Method::POST,
            &format!("{p}/Polling"),
            Some(&body),
        )
        .await;
    assert_eq!(st, 403, "{a}");
    // Another gateway is not the owner.
    let body = format!(r#"{{"session":"{id}","processInstance":"gateway-2"}}"#);
    let (st, a) = h
        .raw(
            Some(Role::Gateway),
            Method::POST,
            &format!("{p}/GetCredential"),
            Some(&body),
        )
        .await;
    assert_eq!(st, 403, "{a}");
    // The owner, without a checkout, gets none either.
    let body = format!(r#"{{"session":"{id}","processInstance":"gateway-1"}}"#);
    let (st, a) = h
        .raw(
            Some(Role::Gateway),
            Method::POST,
            &format!("{p}/GetCredential"),
            Some(&body),
        )
        .await;
    assert_eq!(st, 403, "{a}");
    assert!(
        a["Content"].as_str().unwrap().contains("no checkout"),
        "{a}"
    );
    // An encoder and an admin cannot ask at all.
    for role in [Role::Encoder, Role::Uploader, Role::Admin] {
        let (st, _) = h
            .raw(
                Some(role),
                Method::POST,
                &format!("{p}/GetCredential"),
                Some(&body),
            )
            .await;
        assert_eq!(st, 403);
    }
    h.stop().await;
}
