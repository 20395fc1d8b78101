//! Bad input gets a clear answer in the contract's error shape, writes nothing, and never
//! echoes a credential: malformed JSON, wrong types, missing fields, unknown sessions,
//! oversized bodies (413), a screenshot that is not a PNG, replayed claims and completions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, Harness};
use psm_core::{NewSession, ProcessInstance, Protocol, SessionId, Stage};
use psm_server::{Role, ServerConfig};
use reqwest::Method;

const P: &str = "/api/services/v1/secureaccessgateway";

#[tokio::test]
async fn malformed_bodies() {
    let h = Harness::start(Backend::Sqlite).await;
    let gw = Some(Role::Gateway);
    let cases: &[(&str, &str, &str)] = &[
        ("EndSession", "{not json", "not valid JSON"),
        ("EndSession", r#"{"session":"#, "ends before"),
        (
            "EndSession",
            r#"{"session":42,"processInstance":"p"}"#,
            "wrong type",
        ),
        (
            "EndSession",
            r#"{"session":"not-a-guid","processInstance":"p"}"#,
            "invalid",
        ),
        (
            "EndSession",
            r#"{"processInstance":"p"}"#,
            "field session is required",
        ),
        (
            "EndSession",
            r#"{"session":"123e4567-e89b-12d3-a456-426614174000","processInstance":"a b"}"#,
            "processInstance",
        ),
        ("Polling", "[]", "wrong type"),
        ("Polling", "", "ends before"),
        (
            "OpenSession",
            r#"{"session":"123e4567-e89b-12d3-a456-426614174000","processInstance":"g","userName":"u","target":"t","protocol":"telnet"}"#,
            "outside its allowed set",
        ),
    ];
    for (endpoint, body, needle) in cases {
        let (st, a) = h
            .raw(gw, Method::POST, &format!("{P}/{endpoint}"), Some(body))
            .await;
        assert_eq!(st, 400, "{endpoint} {body}: {a}");
        assert_eq!(a["StatusCode"], 400);
        let content = a["Content"].as_str().unwrap();
        assert!(content.contains(needle), "{endpoint} {body}: {content}");
    }
    // Unknown session: 404 naming it.
    let id = SessionId::new();
    let (st, a) = h
        .raw(
            gw,
            Method::POST,
            &format!("{P}/Polling"),
            Some(&format!(r#"{{"session":"{id}","processInstance":"g"}}"#)),
        )
        .await;
    assert_eq!(st, 404);
    assert!(a["Content"].as_str().unwrap().contains(&id.to_string()));
    // Unknown path and wrong method: the same shape.
    let (st, a) = h
        .raw(gw, Method::POST, &format!("{P}/NoSuchThing"), Some("{}"))
        .await;
    assert_eq!((st, a["StatusCode"].as_u64()), (404, Some(404)));
    let (st, a) = h
        .raw(gw, Method::GET, &format!("{P}/EndSession"), None)
        .await;
    assert_eq!((st, a["StatusCode"].as_u64()), (405, Some(405)));
    h.stop().await;
}

#[tokio::test]
async fn oversized_body_is_413_and_stores_nothing() {
    let h = Harness::start_with(
        Backend::Sqlite,
        ServerConfig {
            body_limit: 4096,
            ..ServerConfig::default()
        },
    )
    .await;
    let id = SessionId::new();
    h.engine
        .open_session(NewSession {
            id,
            user: "u".into(),
            target: "t".into(),
            protocol: Protocol::Ssh,
            checkout_id: None,
            process_instance: ProcessInstance::new("g").unwrap(),
        })
        .await
        .unwrap();
    let big = "A".repeat(10_000);
    let body = format!(r#"{{"recording":"{big}","session":"{id}"}}"#);
    let (st, a) = h
        .raw(
            Some(Role::Gateway),
            Method::POST,
            &format!("{P}/savesessionrecording"),
            Some(&body),
        )
        .await;
    assert_eq!(st, 413, "{a}");
    assert_eq!(a["StatusCode"], 413);
    assert!(!h.dir.path().join("artifacts").join(id.to_string()).exists());
    // Not base64, not a PNG: 400 and nothing written.
    for (endpoint, body) in [
        (
            "savesessionrecording",
            format!(r#"{{"recording":"%%%","session":"{id}"}}"#),
        ),
        (
            "savescreenshot",
            format!(r#"{{"image":"R0lGODlhAQABAAAAACw=","session":"{id}"}}"#),
        ),
        (
            "savescreenshot",
            format!(r#"{{"image":"data:image/gif;base64,R0lGODlh","session":"{id}"}}"#),
        ),
    ] {
        let (st, a) = h
            .raw(
                Some(Role::Gateway),
                Method::POST,
                &format!("{P}/{endpoint}"),
                Some(&body),
            )
            .await;
        assert_eq!(st, 400, "{endpoint}: {a}");
    }
    assert!(!h.dir.path().join("artifacts").join(id.to_string()).exists());
    h.stop().await;
}

#[tokio::test]
async fn replayed_claims_and_completions() {
    let h = Harness::start(Backend::Sqlite).await;
    let gw = ProcessInstance::new("g").unwrap();
    let id = SessionId::new();
    h.engine
        .open_session(NewSession {
            id,
            user: "u".into(),
            target: "t".into(),
            protocol: Protocol::Ssh,
            checkout_id: None,
            process_instance: gw.clone(),
        })
        .await
        .unwrap();
    h.engine.end_session(id, &gw).await.unwrap();
    let claim = r#"{"processInstance":"enc-1"}"#;
    let (st, first) = h
        .raw(
            Some(Role::Encoder),
            Method::POST,
            &format!("{P}/EncoderClaim"),
            Some(claim),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(first["SessionIds"].as_array().unwrap().len(), 1);
    // The same claim again gets nothing: a session is never handed out twice.
    let (st, again) = h
        .raw(
            Some(Role::Encoder),
            Method::POST,
            &format!("{P}/EncoderClaim"),
            Some(claim),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(again["SessionIds"], serde_json::json!([]));
    let token = first["Leases"][0]["FencingToken"].as_u64().unwrap();
    let done = format!(
        r#"{{"privSessionId":"{id}","processInstance":"enc-1","recordingStatus":"Done-Encoded","fencingToken":{token}}}"#
    );
    let (st, _) = h
        .raw(
            Some(Role::Encoder),
            Method::PUT,
            &format!("{P}/UpdateRecordingProcessStatus"),
            Some(&done),
        )
        .await;
    assert_eq!(st, 200);
    // Replaying the completion is refused (409) and changes nothing.
    let (st, a) = h
        .raw(
            Some(Role::Encoder),
            Method::PUT,
            &format!("{P}/UpdateRecordingProcessStatus"),
            Some(&done),
        )
        .await;
    assert_eq!(st, 409, "{a}");
    assert_eq!(
        h.engine.session(id).await.unwrap().stage,
        Stage::DoneEncoded
    );
    // A stale token after a re-claim: 409 stale-token.
    let (_, c) = h
        .raw(
            Some(Role::Uploader),
            Method::POST,
            &format!("{P}/UploderClaim"),
            Some(r#"{"processInstance":"up-1"}"#),
        )
        .await;
    let up_token = c["Leases"][0]["FencingToken"].as_u64().unwrap();
    let stale = format!(
        r#"{{"privSessionId":"{id}","processInstance":"up-1","recordingStatus":"Done-Uploaded","fencingToken":{}}}"#,
        up_token - 1
    );
    let (st, a) = h
        .raw(
            Some(Role::Uploader),
            Method::PUT,
            &format!("{P}/UpdateRecordingProcessStatus"),
            Some(&stale),
        )
        .await;
    assert_eq!((st, a["Code"].as_str()), (409, Some("stale-token")), "{a}");
    assert_eq!(h.engine.session(id).await.unwrap().stage, Stage::Uploading);
    h.stop().await;
}
