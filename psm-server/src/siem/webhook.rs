//! Audit events as JSON POSTed to a webhook, signed with HMAC-SHA256.
//!
//! Each request carries a batch:
//!
//! ```json
//! {"source":"psm","host":"node-1","events":[
//!   {"seq":7,"at":"2026-11-23T21:07:46.123456Z","session":"…","actor":"gw-1",
//!    "action":"opened","from_stage":null,"to_stage":"Connected","detail":"…"}]}
//! ```
//!
//! and a header `X-PSM-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` where the HMAC
//! key is the shared secret and the message is `<t>.<body>`: the receiver recomputes it
//! over the raw body, compares in constant time, and refuses a `t` too far from its clock
//! (a replayed request). [`verify_signature`] does exactly that. Any answer but 2xx, or no
//! answer, is a failure: the forwarder retries the same events with backoff, so the
//! receiver must accept duplicates (`seq` identifies an event).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use hmac::{KeyInit, Mac};
use psm_core::AuditEvent;
use psm_core::vault::Secret;
use serde::Serialize;
use sha2::Sha256;

use super::cef::bounded;
use super::error::SiemError;
use super::forwarder::Sink;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-PSM-Signature";
/// A header naming the batch's first and last `seq` (`7-12`), for logs and deduplication.
pub const DELIVERY_HEADER: &str = "X-PSM-Delivery";

type HmacSha256 = hmac::Hmac<Sha256>;

/// A webhook receiver.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL.
    pub url: String,
    /// The HMAC key shared with the receiver.
    pub secret: Secret<String>,
    /// The `host` field: this node's name.
    pub hostname: String,
    /// Limit for one request.
    pub timeout: Duration,
    /// Extra PEM certificates to trust (a receiver with a private CA).
    pub ca_pem: Option<Vec<u8>>,
}

impl WebhookConfig {
    /// A webhook at `url` signed with `secret`, with the defaults.
    pub fn new(
        url: impl Into<String>,
        secret: Secret<String>,
        hostname: impl Into<String>,
    ) -> Self {
        Self {
            url: url.into(),
            secret,
            hostname: hostname.into(),
            timeout: Duration::from_secs(30),
            ca_pem: None,
        }
    }
}

/// One event in the JSON body.
#[derive(Serialize)]
struct WireEvent<'a> {
    seq: i64,
    at: String,
    session: Option<String>,
    actor: &'a str,
    action: &'a str,
    from_stage: Option<&'static str>,
    to_stage: Option<&'static str>,
    detail: std::borrow::Cow<'a, str>,
}

#[derive(Serialize)]
struct WireBody<'a> {
    source: &'static str,
    host: &'a str,
    events: Vec<WireEvent<'a>>,
}

/// The JSON body for a batch.
pub fn webhook_body(events: &[AuditEvent], host: &str) -> Vec<u8> {
    let body = WireBody {
        source: "psm",
        host,
        events: events
            .iter()
            .map(|e| {
                let r = &e.record;
                WireEvent {
                    seq: e.seq,
                    at: r.at.to_string(),
                    session: r.session.map(|s| s.to_string()),
                    actor: &r.actor,
                    action: r.action.as_str(),
                    from_stage: r.from_stage.map(|s| s.as_str()),
                    to_stage: r.to_stage.map(|s| s.as_str()),
                    detail: bounded(&r.detail),
                }
            })
            .collect(),
    };
    // Serialising plain strings and numbers cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

fn mac(secret: &[u8], t: u64, body: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length.
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `X-PSM-Signature` value for `body` at time `t` (Unix seconds).
pub fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
    format!(
        "t={t},v1={}",
        hex::encode(mac(secret, t, body).finalize().into_bytes())
    )
}

/// Checks an `X-PSM-Signature` value: well formed, `t` within `tolerance` of `now`, and the
/// HMAC right (compared in constant time).
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use psm_server::siem::{sign, verify_signature};
/// let now = SystemTime::now();
/// let t = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
/// let h = sign(b"k", t, b"{}");
/// assert!(verify_signature(b"k", &h, b"{}", now, Duration::from_secs(300)));
/// assert!(!verify_signature(b"k", &h, b"{ }", now, Duration::from_secs(300)));
/// assert!(!verify_signature(b"other", &h, b"{}", now, Duration::from_secs(300)));
/// ```
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: SystemTime,
    tolerance: Duration,
) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => v1 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if now.abs_diff(t) > tolerance.as_secs() {
        return false;
    }
    mac(secret, t, body).verify_slice(&v1).is_ok()
}

/// A webhook sink.
#[derive(Debug)]
pub struct WebhookSink {
    name: String,
    cfg: WebhookConfig,
    client: reqwest::Client,
}

impl WebhookSink {
    /// A sink named `name` for `cfg`.
    pub fn new(name: impl Into<String>, cfg: WebhookConfig) -> Result<Self, SiemError> {
        let name = name.into();
        let url = reqwest::Url::parse(&cfg.url)
            .map_err(|e| SiemError::Config(format!("webhook {name}: URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SiemError::Config(format!(
                "webhook {name}: the URL must be http:// or https://"
            )));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("psm-siem/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &cfg.ca_pem {
            for c in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| SiemError::Config(format!("webhook {name}: CA PEM: {e}")))?
            {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder
            .build()
            .map_err(|e| SiemError::Config(format!("webhook {name}: HTTP client: {e}")))?;
        Ok(Self { name, cfg, client })
    }
}

#[async_trait]
impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "webhook"
    }

    async fn send(&mut self, batch: &[AuditEvent]) -> Result<Option<i64>, SiemError> {
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return Ok(None);
        };
        let body = webhook_body(batch, &self.cfg.hostname);
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let signature = sign(self.cfg.secret.expose_secret().as_bytes(), t, &body);
        let answer = self
            .client
            .post(&self.cfg.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(DELIVERY_HEADER, format!("{}-{}", first.seq, last.seq))
            .body(body)
            .send()
            .await
            .map_err(|source| SiemError::Http {
                sink: self.name.clone(),
                source: source.without_url(),
            })?;
        let status = answer.status();
        if !status.is_success() {
            return Err(SiemError::HttpStatus {
                sink: self.name.clone(),
                status: status.as_u16(),
            });
        }
        Ok(Some(last.seq))
    }
}
