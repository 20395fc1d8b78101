//! The credential never leaves the vault except in GetCredential's answer to its owner: not
//! in any other answer, error, log line (every level, captured), audit event, or the
//! database file in clear.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{Backend, Harness};
use psm_core::store::AuditQuery;
use psm_server::Role;
use reqwest::Method;

const SECRET: &str = "Leak-Canary-9d41f0c7";
const P: &str = "/api/services/v1/secureaccessgateway";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_secret_appears_only_in_get_credential() {
    let logs = Capture::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let h = Harness::start(Backend::Sqlite).await;
    let mut answers: Vec<String> = Vec::new();
    let mut call = |r: (u16, serde_json::Value)| answers.push(r.1.to_string());
    let admin = Some(Role::Admin);
    let gw = Some(Role::Gateway);

    call(
        h.raw(
            admin,
            Method::PUT,
            &format!("{P}/PutTarget"),
            Some(r#"{"name":"web-01","host":"127.0.0.1","port":22,"protocol":"ssh"}"#),
        )
        .await,
    );
    call(
        h.raw(
            admin,
            Method::PUT,
            &format!("{P}/SetCredential"),
            Some(&format!(
                r#"{{"target":"web-01","userName":"root","password":"{SECRET}"}}"#
            )),
        )
        .await,
    );
    // Wrong shapes carrying the secret: the errors must not echo it.
    for body in [
        format!(
            r#"{{"target":"web-01","userName":"root","password":"{SECRET}","privateKey":"{SECRET}"}}"#
        ),
        format!(r#"{{"target":"web-01","userName":{{"x":"{SECRET}"}},"password":"p"}}"#),
        format!(r#"{{"target":"web-01","userName":"root","password":["{SECRET}"]}}"#),
        format!(r#"{{"target":"nope","userName":"root","password":"{SECRET}"}}"#),
        format!(r#"{{"target":"web-01","userName":"root","password":"{SECRET}\u0000"}}"#),
        format!(r#"{{"target":"web-01","userName":"root","password":"{SECRET}"#),
    ] {
        let r = h
            .raw(
                admin,
                Method::PUT,
                &format!("{P}/SetCredential"),
                Some(&body),
            )
            .await;
        assert_ne!(r.0, 200, "{body}");
        call(r);
    }
    let r = h
        .raw(
            gw,
            Method::PUT,
            &format!("{P}/SetCredential"),
            Some(&format!(
                r#"{{"target":"web-01","userName":"root","password":"{SECRET}"}}"#
            )),
        )
        .await;
    assert_eq!(r.0, 403);
    call(r);

    let (_, co) = h
        .raw(
            gw,
            Method::POST,
            &format!("{P}/Checkout"),
            Some(r#"{"userName":"alice","target":"web-01","durationMinutes":10}"#),
        )
        .await;
    let co_id = co["Checkout"]["CheckOutId"].as_str().unwrap().to_owned();
    call((200, co.clone()));
    let sid = psm_core::SessionId::new();
    call(h.raw(gw, Method::POST, &format!("{P}/OpenSession"), Some(&format!(
        r#"{{"session":"{sid}","processInstance":"gw-1","userName":"alice","target":"web-01","protocol":"ssh","checkOutId":"{co_id}"}}"#))).await);
    // The one legitimate answer.
    let (st, granted) = h
        .raw(
            gw,
            Method::POST,
            &format!("{P}/GetCredential"),
            Some(&format!(
                r#"{{"session":"{sid}","processInstance":"gw-1"}}"#
            )),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(granted["Password"], SECRET);
    // Refused asks, every other read.
    for (role, body) in [
        (
            Role::Gateway,
            format!(r#"{{"session":"{sid}","processInstance":"gw-2"}}"#),
        ),
        (
            Role::Encoder,
            format!(r#"{{"session":"{sid}","processInstance":"gw-1"}}"#),
        ),
        (
            Role::Admin,
            format!(r#"{{"session":"{sid}","processInstance":"gw-1"}}"#),
        ),
    ] {
        call(
            h.raw(
                Some(role),
                Method::POST,
                &format!("{P}/GetCredential"),
                Some(&body),
            )
            .await,
        );
    }
    call(
        h.raw(
            gw,
            Method::POST,
            &format!("{P}/GetTarget"),
            Some(r#"{"target":"web-01"}"#),
        )
        .await,
    );
    call(
        h.raw(admin, Method::GET, &format!("{P}/ListTargets"), None)
            .await,
    );
    call(
        h.raw(
            gw,
            Method::POST,
            &format!("{P}/GetRemainingMinutesForCheckout"),
            Some(&format!(r#"{{"checkOutId":"{co_id}"}}"#)),
        )
        .await,
    );
    call(
        h.raw(
            gw,
            Method::POST,
            &format!("{P}/Checkin"),
            Some(&format!(r#"{{"checkOutId":"{co_id}"}}"#)),
        )
        .await,
    );
    call(
        h.raw(
            gw,
            Method::POST,
            &format!("{P}/GetCredential"),
            Some(&format!(
                r#"{{"session":"{sid}","processInstance":"gw-1"}}"#
            )),
        )
        .await,
    );
    call(h.raw(None, Method::GET, "/api/openapi.json", None).await);

    for a in &answers {
        assert!(
            !a.contains(SECRET),
            "an answer other than GetCredential holds the secret: {a}"
        );
    }
    let audit = h
        .engine
        .store()
        .audit_events(&AuditQuery::default())
        .await
        .unwrap();
    assert!(audit.len() > 5);
    for e in &audit {
        assert!(!e.record.detail.contains(SECRET), "audit: {:?}", e.record);
        assert!(!e.record.actor.contains(SECRET));
    }
    let db = h.dir.path().to_owned();
    h.stop().await;
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("credential released"), "logging was captured");
    assert!(!logs.contains(SECRET), "a log line holds the secret");
    for name in ["psm.db", "psm.db-wal"] {
        if let Ok(bytes) = std::fs::read(db.join(name)) {
            assert!(
                !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                "{name} in clear"
            );
        }
    }
}
