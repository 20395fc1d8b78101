//! The wire contract, byte for byte: each seed example request (as the seed prints it) is
//! sent raw to a real server, and each answer is compared with the seed's example answer.
//! PSM's extension fields may appear beside the seed's; nothing of the seed's may change.
//! The client's DTOs serialize to exactly the seed's request bodies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use common::{Backend, Harness, tiny_png};
use psm_client::wire;
use psm_core::vault::{Checkout, Credential, Target};
use psm_core::{CheckoutId, NewSession, ProcessInstance, Protocol, SessionId, Stage};
use psm_server::Role;
use reqwest::Method;
use serde_json::{Value, json};

const SID: &str = "123e4567-e89b-12d3-a456-426614174000";
const P: &str = "/api/services/v1/secureaccessgateway";

fn sid() -> SessionId {
    SID.parse().unwrap()
}

/// `answer` holds every field of `seed` with the same value; any other field must be one
/// of PSM's documented extensions.
fn assert_seed_shape(answer: &Value, seed: &Value, extensions: &[&str]) {
    let (Value::Object(a), Value::Object(s)) = (answer, seed) else {
        assert_eq!(answer, seed);
        return;
    };
    for (k, v) in s {
        assert_eq!(a.get(k), Some(v), "field {k} of {answer}");
    }
    for k in a.keys() {
        assert!(
            s.contains_key(k) || extensions.contains(&k.as_str()),
            "unexpected field {k} in {answer}"
        );
    }
}

async fn open(h: &Harness, id: SessionId, gw: &str, checkout: Option<CheckoutId>) {
    h.engine
        .open_session(NewSession {
            id,
            user: "alice".into(),
            target: "web-01".into(),
            protocol: Protocol::Ssh,
            checkout_id: checkout,
            process_instance: ProcessInstance::new(gw).unwrap(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn requests_serialize_to_the_seed_examples() {
    let pi = |s: &str| ProcessInstance::new(s).unwrap();
    let cases: Vec<(Value, Value)> = vec![
        (
            serde_json::to_value(wire::SessionRequest { session: sid() }).unwrap(),
            json!({ "session": SID }),
        ),
        (
            serde_json::to_value(wire::EndSessionRequest {
                session: sid(),
                process_instance: pi("process_instance_id"),
                recording: None,
            })
            .unwrap(),
            json!({ "session": SID, "processInstance": "process_instance_id" }),
        ),
        (
            serde_json::to_value(wire::EndSessionRequest {
                session: sid(),
                process_instance: pi("process_instance_id"),
                recording: Some(psm_core::RecordingCommitment {
                    chain: [0x5a; 32],
                    chunks: 2,
                    events: 9,
                }),
            })
            .unwrap(),
            json!({ "session": SID, "processInstance": "process_instance_id",
                    "recording": { "chain": "5a".repeat(32), "chunks": 2, "events": 9 } }),
        ),
        (
            serde_json::to_value(wire::ClaimRequest {
                process_instance: pi("encoder_instance"),
                limit: None,
                among: None,
            })
            .unwrap(),
            json!({ "processInstance": "encoder_instance" }),
        ),
        (
            serde_json::to_value(wire::CheckinRequest {
                checkout_id: CheckoutId::new("123").unwrap(),
            })
            .unwrap(),
            json!({ "checkOutId": "123" }),
        ),
        (
            serde_json::to_value(wire::PollingRequest {
                session: sid(),
                process_instance: pi("psm_app_instance"),
                fencing_token: None,
            })
            .unwrap(),
            json!({ "session": SID, "processInstance": "psm_app_instance" }),
        ),
        (
            serde_json::to_value(wire::SaveClipboardRequest {
                text: "Sample clipboard text".into(),
                session: sid(),
            })
            .unwrap(),
            json!({ "text": "Sample clipboard text", "session": SID }),
        ),
        (
            serde_json::to_value(wire::SaveScreenshotRequest {
                image: "data:image/png;base64,...".into(),
                session: sid(),
            })
            .unwrap(),
            json!({ "image": "data:image/png;base64,...", "session": SID }),
        ),
        (
            serde_json::to_value(wire::SaveRecordingRequest {
                recording: "SGVsbG8gd29ybGQ=".into(),
                session: sid(),
            })
            .unwrap(),
            json!({ "recording": "SGVsbG8gd29ybGQ=", "session": SID }),
        ),
        (
            serde_json::to_value(wire::RecordingStatusRequest {
                priv_session_ids: vec![sid()],
            })
            .unwrap(),
            json!({ "privSessionIds": [SID] }),
        ),
        (
            serde_json::to_value(wire::UpdateRecordingStatusRequest {
                priv_session_id: sid(),
                process_instance: pi("Uploader_01"),
                recording_status: Stage::Uploading,
                ssh_logs_uploaded: Some(true),
                recording_format: Some(".mp4".into()),
                fencing_token: None,
                note: None,
            })
            .unwrap(),
            json!({ "privSessionId": SID, "processInstance": "Uploader_01",
                    "recordingStatus": "Uploading", "sshLogsUploaded": true,
                    "recordingFormat": ".mp4" }),
        ),
        (
            serde_json::to_value(wire::JoinSessionRequest {
                session: sid(),
                gateway_server_address: "gateway.example.com".into(),
                width: "1024".into(),
                height: "768".into(),
                dpi: "96".into(),
            })
            .unwrap(),
            json!({ "PrivSessionID": SID, "GatewayServerAddress": "gateway.example.com",
                    "Width": "1024", "Height": "768", "Dpi": "96" }),
        ),
    ];
    for (got, seed) in cases {
        assert_eq!(got, seed);
    }
    // And the seed's answers parse into the client's DTOs.
    let _: wire::ResultResponse = serde_json::from_str(r#"{ "Result": "Success" }"#).unwrap();
    let c: wire::ClaimResponse = serde_json::from_value(json!({ "SessionIds": [SID] })).unwrap();
    assert_eq!(c.session_ids, vec![sid()]);
    let r: wire::CheckinResponse = serde_json::from_str(
        r#"{ "Result": "Success", "Message": "Your operation message here." }"#,
    )
    .unwrap();
    assert_eq!(r.message, "Your operation message here.");
    let s: wire::PamSettingsDto = serde_json::from_str(
        r#"{ "PSMStorageMode": "UNC", "PSMEncodingEnabled": true, "PSMEncryptionKey": null }"#,
    )
    .unwrap();
    assert_eq!(s.storage_mode, "UNC");
    let st: Vec<wire::RecordingStatusEntry> = serde_json::from_str(
        r#"[ { "PrivSessionID": "123e4567-e89b-12d3-a456-426614174000", "RecordingStatus": "Encoding" } ]"#,
    )
    .unwrap();
    assert_eq!(st[0].status, Stage::Encoding);
    let e: wire::ErrorBody = serde_json::from_str(
        r#"{ "StatusCode": 400, "Content": "Process instance not supplied" }"#,
    )
    .unwrap();
    assert_eq!(e.status_code, 400);
}

#[tokio::test]
async fn seed_examples_against_a_real_server() {
    let h = Harness::start(Backend::Sqlite).await;
    let gw = Some(Role::Gateway);
    let ok = json!({ "Result": "Success" });

    // UpdateSession.
    open(&h, sid(), "process_instance_id", None).await;
    let (st, a) = h
        .raw(
            gw,
            Method::POST,
            &format!("{P}/UpdateSession"),
            Some(r#"{ "session": "123e4567-e89b-12d3-a456-426614174000" }"#),
        )
        .await;
    assert_eq!((st, &a), (200, &ok));

    // Polling.
    let polled = sid();
    let _ = polled;
    let other = SessionId::new();
    open(&h, other, "psm_app_instance", None).await;
    let (st, a) = h
        .raw(
            gw,
            Method::POST,
            &format!("{P}/Polling"),
            Some(&format!(
                r#"{{ "session": "{other}", "processInstance": "psm_app_instance" }}"#
            )),
        )
        .await;
    assert_eq!(st, 200);
    assert_seed_shape(&a, &ok, &["TerminateSession"]);
    assert_eq!(a["TerminateSession"], false);

    // saveclipboard, savesessionrecording, savescreenshot.
    let (st, a) = h
        .raw(gw, Method::POST, &format!("{P}/saveclipboard"),
            Some(r#"{ "text": "Sample clipboard text", "session": "123e4567-e89b-12d3-a456-426614174000" }"#))
        .await;
    assert_eq!((st, &a), (200, &ok));
    let (st, a) = h
        .raw(gw, Method::POST, &format!("{P}/savesessionrecording"),
            Some(r#"{ "recording": "SGVsbG8gd29ybGQ=", "session": "123e4567-e89b-12d3-a456-426614174000" }"#))
        .await;
    assert_eq!((st, &a), (200, &ok));
    let raw = std::fs::read(
        h.dir
            .path()
            .join("artifacts")
            .join(SID)
            .join("recording.raw"),
    )
    .unwrap();
    assert_eq!(raw, b"Hello world");
    let events = std::fs::read_to_string(
        h.dir
            .path()
            .join("artifacts")
            .join(SID)
            .join("events.jsonl"),
    )
    .unwrap();
    assert!(events.contains("Sample clipboard text"));
    let png = base64::engine::general_purpose::STANDARD.encode(tiny_png());
    let (st, a) = h
        .raw(
            gw,
            Method::POST,
            &format!("{P}/savescreenshot"),
            Some(&format!(
                r#"{{ "image": "data:image/png;base64,{png}", "session": "{SID}" }}"#
            )),
        )
        .await;
    assert_eq!((st, &a), (200, &ok));
    // The seed's literal placeholder is not a PNG: a clear 400, nothing stored.
    let (st, a) = h
        .raw(gw, Method::POST, &format!("{P}/savescreenshot"),
            Some(r#"{ "image": "data:image/png;base64,...", "session": "123e4567-e89b-12d3-a456-426614174000" }"#))
        .await;
    assert_eq!(st, 400);
    assert_eq!(a["StatusCode"], 400);
    assert!(a["Content"].as_str().unwrap().contains("image"), "{a}");
    let shots = std::fs::read_dir(h.dir.path().join("artifacts").join(SID).join("screenshots"))
        .unwrap()
        .count();
    assert_eq!(shots, 1);

    // EndSession: the seed's 400, then success.
    let (st, a) = h
        .raw(
            gw,
            Method::POST,
            &format!("{P}/EndSession"),
            Some(r#"{ "session": "123e4567-e89b-12d3-a456-426614174000" }"#),
        )
        .await;
    assert_eq!(st, 400);
    assert_seed_shape(
        &a,
        &json!({ "StatusCode": 400, "Content": "Process instance not supplied" }),
        &["Code", "Detail"],
    );
    let (st, a) = h
        .raw(gw, Method::POST, &format!("{P}/EndSession"),
            Some(r#"{ "session": "123e4567-e89b-12d3-a456-426614174000", "processInstance": "process_instance_id" }"#))
        .await;
    assert_eq!((st, &a), (200, &ok));

    // EncoderClaim.
    let (st, a) = h
        .raw(
            Some(Role::Encoder),
            Method::POST,
            &format!("{P}/EncoderClaim"),
            Some(r#"{ "processInstance": "encoder_instance" }"#),
        )
        .await;
    assert_eq!(st, 200);
    assert_seed_shape(&a, &json!({ "SessionIds": [SID] }), &["Leases"]);
    assert_eq!(a["Leases"][0]["PrivSessionID"], SID);
    assert_eq!(a["Leases"][0]["RecordingStatus"], "Encoding");

    // GetRecordingProcessStatus.
    let (st, a) = h
        .raw(
            gw,
            Method::POST,
            &format!("{P}/GetRecordingProcessStatus"),
            Some(r#"{ "privSessionIds": [ "123e4567-e89b-12d3-a456-426614174000" ] }"#),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        a,
        json!([ { "PrivSessionID": "123e4567-e89b-12d3-a456-426614174000", "RecordingStatus": "Encoding" } ])
    );

    // Complete encoding, then UploderClaim and the seed's UpdateRecordingProcessStatus.
    let (st, _) = h
        .raw(Some(Role::Encoder), Method::PUT, &format!("{P}/UpdateRecordingProcessStatus"),
            Some(&format!(r#"{{ "privSessionId": "{SID}", "processInstance": "encoder_instance", "recordingStatus": "Done-Encoded" }}"#)))
        .await;
    assert_eq!(st, 200);
    let (st, a) = h
        .raw(
            Some(Role::Uploader),
            Method::POST,
            &format!("{P}/UploderClaim"),
            Some(r#"{ "processInstance": "Uploader_01" }"#),
        )
        .await;
    assert_eq!(st, 200);
    assert_seed_shape(&a, &json!({ "SessionIds": [SID] }), &["Leases"]);
    let (st, a) = h
        .raw(Some(Role::Uploader), Method::PUT, &format!("{P}/UpdateRecordingProcessStatus"),
            Some(r#"{ "privSessionId": "123e4567-e89b-12d3-a456-426614174000", "processInstance": "Uploader_01", "recordingStatus": "Uploading", "sshLogsUploaded": true, "recordingFormat": ".mp4" }"#))
        .await;
    assert_eq!((st, &a), (200, &ok));
    let s = h.engine.session(sid()).await.unwrap();
    assert_eq!(s.recording_format.as_deref(), Some(".mp4"));
    assert!(s.ssh_logs_uploaded);

    // GetPAMSettings.
    let (st, a) = h
        .raw(gw, Method::GET, &format!("{P}/GetPAMSettings"), None)
        .await;
    assert_eq!(st, 200);
    assert_seed_shape(
        &a,
        &json!({ "PSMStorageMode": "UNC", "PSMEncodingEnabled": true, "PSMEncryptionKey": null }),
        &[
            "PSMRecordKeyStrokes",
            "PSMCaptureClipboard",
            "PSMExportFormats",
            "PSMPollingIntervalSeconds",
            "PSMCheckoutWarningSeconds",
        ],
    );

    // Checkin of checkout "123".
    h.vault
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
    h.vault
        .set_credential("web-01", Credential::password("root", "pw"), "admin")
        .await
        .unwrap();
    let now = h.engine.now();
    h.vault_store
        .insert_checkout(&Checkout {
            id: CheckoutId::new("123").unwrap(),
            user: "alice".into(),
            target: "web-01".into(),
            created: now,
            expires: now.saturating_add(std::time::Duration::from_secs(3600)),
            ended: None,
            end_reason: None,
            created_by: "test".into(),
        })
        .await
        .unwrap();
    let (st, a) = h
        .raw(
            gw,
            Method::POST,
            &format!("{P}/GetRemainingMinutesForCheckout"),
            Some(r#"{ "checkOutId": "123" }"#),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(a["RemainingMinutes"], 60);
    let (st, a) = h
        .raw(
            gw,
            Method::POST,
            &format!("{P}/Checkin"),
            Some(r#"{ "checkOutId": "123" }"#),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(a["Result"], "Success");
    assert!(a["Message"].is_string());

    // JoinSession (admin) on a live session.
    let live = SessionId::new();
    open(&h, live, "gw-9", None).await;
    let (st, a) = h
        .raw(Some(Role::Admin), Method::POST, &format!("{P}/JoinSession"),
            Some(&format!(r#"{{ "PrivSessionID": "{live}", "GatewayServerAddress": "gateway.example.com", "Width": "1024", "Height": "768", "Dpi": "96" }}"#)))
        .await;
    assert_eq!(st, 200);
    // The gateway's live websocket with a single-use ticket (docs/live.md).
    let url = a.as_str().expect("JoinSession answers a JSON string");
    let rest = url
        .strip_prefix(&format!(
            "wss://gateway.example.com/live/{live}?ticket=psmt_"
        ))
        .unwrap_or_else(|| panic!("unexpected JoinSession answer {url}"));
    let (ticket, query) = rest.split_once('&').expect("ticket then the screen size");
    assert!(ticket.len() >= 32, "a ticket worth guessing at: {ticket}");
    assert_eq!(query, "width=1024&height=768&dpi=96");
    h.stop().await;
}
