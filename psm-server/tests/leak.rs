//! The credential never leaves the vault except in GetCredential's answer to its owner: not
//! in any other answer, error, log line (every level, captured), audit event, or the
//! database file in clear. Likewise a directory user's password hash and TOTP seed never
//! leave the control plane (no answer, audit event or log line holds them), nor does a
//! password a gateway asks VerifyUser about.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{Backend, Harness};
use psm_core::directory::{PasswordHash, TotpSecret};
use psm_core::store::AuditQuery;
use psm_server::Role;
use reqwest::Method;

const SECRET: &str = "Leak-Canary-9d41f0c7";
const USER_PW: &str = "User-Canary-52be11d8";
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

    // The directory: the hash and the seed go in (CreateUser) and never come out.
    let hash = PasswordHash::hash(USER_PW).unwrap();
    let seed = TotpSecret::generate();
    let phc = hash.as_phc().to_owned();
    let b32 = seed.as_base32().to_owned();
    let (st, a) = h
        .raw(
            admin,
            Method::POST,
            &format!("{P}/CreateUser"),
            Some(
                &serde_json::json!({"Name": "carol", "PasswordHash": phc, "Totp": b32,
                    "Roles": ["ops"]})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(st, 200, "{a}");
    call((st, a));
    let (st, a) = h
        .raw(
            gw,
            Method::POST,
            &format!("{P}/GetUser"),
            Some(r#"{"name":"carol"}"#),
        )
        .await;
    assert_eq!(
        (st, &a["User"]["HasPassword"]),
        (200, &serde_json::json!(true))
    );
    call((st, a));
    call(
        h.raw(admin, Method::GET, &format!("{P}/ListUsers"), None)
            .await,
    );
    let code = seed.code_at(1_800_000_000).unwrap();
    let mut verdicts = Vec::new();
    for body in [
        format!(r#"{{"name":"carol","password":"{USER_PW}"}}"#),
        format!(r#"{{"name":"carol","password":"{USER_PW}x"}}"#),
        format!(r#"{{"name":"nobody","password":"{USER_PW}"}}"#),
        format!(r#"{{"name":"carol","password":"{USER_PW}","totpCode":"{code}"}}"#),
        // Wrong shapes carrying the password: the errors must not echo it.
        format!(r#"{{"name":"carol","password":["{USER_PW}"]}}"#),
        format!(r#"{{"name":{{"x":"{USER_PW}"}},"password":"p"}}"#),
        format!(r#"{{"name":"carol","password":"{USER_PW}"#),
    ] {
        let (st, a) = h
            .raw(gw, Method::POST, &format!("{P}/VerifyUser"), Some(&body))
            .await;
        verdicts.push((st, a["Accepted"].clone()));
        call((st, a));
    }
    let t = serde_json::json!(true);
    let f = serde_json::json!(false);
    let n = serde_json::Value::Null;
    assert_eq!(
        verdicts,
        vec![
            (200, t.clone()),
            (200, f.clone()),
            (200, f),
            (200, t),
            (400, n.clone()),
            (400, n.clone()),
            (400, n)
        ]
    );

    for a in &answers {
        assert!(
            !a.contains(SECRET),
            "an answer other than GetCredential holds the secret: {a}"
        );
        assert!(
            !a.contains(USER_PW),
            "an answer holds a user's password: {a}"
        );
        assert!(!a.contains(&phc), "an answer holds a password hash: {a}");
        assert!(!a.contains(&b32), "an answer holds a TOTP seed: {a}");
    }
    let audit = h
        .engine
        .store()
        .audit_events(&AuditQuery::default())
        .await
        .unwrap();
    assert!(audit.len() > 5);
    assert!(
        audit
            .iter()
            .any(|e| e.record.detail.contains("VerifyUser refused")),
        "VerifyUser refusals are audited"
    );
    for e in &audit {
        for canary in [SECRET, USER_PW, phc.as_str(), b32.as_str()] {
            assert!(!e.record.detail.contains(canary), "audit: {:?}", e.record);
            assert!(!e.record.actor.contains(canary));
        }
    }
    let db = h.dir.path().to_owned();
    h.stop().await;
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("credential released"), "logging was captured");
    assert!(!logs.contains(SECRET), "a log line holds the secret");
    assert!(
        !logs.contains(USER_PW),
        "a log line holds a user's password"
    );
    assert!(!logs.contains(&phc), "a log line holds a password hash");
    assert!(!logs.contains(&b32), "a log line holds a TOTP seed");
    for name in ["psm.db", "psm.db-wal"] {
        if let Ok(bytes) = std::fs::read(db.join(name)) {
            assert!(
                !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                "{name} in clear"
            );
        }
    }
}
