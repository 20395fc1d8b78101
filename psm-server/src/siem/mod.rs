//! SIEM streaming: every audit event, shipped to syslog receivers (RFC 5424 over TCP or
//! TLS, octet-counted frames, CEF messages) and webhooks (JSON batches, HMAC-SHA256
//! signed), at least once, from a persisted cursor.
//!
//! [`SiemForwarder::spawn`] starts one task per sink; each tails the store's append-only
//! audit log ([`SessionStore::audit_events`](psm_core::store::SessionStore::audit_events))
//! from its cursor ([`CursorStore`]), ships batches, and saves the cursor when the sink
//! confirms delivery. A restart resumes from the saved cursor (nothing lost, nothing but
//! the unconfirmed tail sent twice); a sink that is down is retried with backoff while the
//! log, not memory, buffers; the control plane is only ever read. See `docs/siem.md`.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use psm_core::store::{MemoryStore, SessionStore};
//! use psm_core::vault::Secret;
//! use psm_server::siem::{
//!     MemoryCursorStore, SiemConfig, SiemForwarder, SinkConfig, SyslogConfig, WebhookConfig,
//! };
//!
//! let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
//! let config = SiemConfig {
//!     sinks: vec![
//!         SinkConfig::Syslog {
//!             name: "arcsight".into(),
//!             config: SyslogConfig::tcp("127.0.0.1:6514", "psm-node-1"),
//!         },
//!         SinkConfig::Webhook {
//!             name: "soar".into(),
//!             config: WebhookConfig::new(
//!                 "http://127.0.0.1:9/hook",
//!                 Secret::new("shared-hmac-key".into()),
//!                 "psm-node-1",
//!             ),
//!         },
//!     ],
//!     ..SiemConfig::default()
//! };
//! let siem = SiemForwarder::spawn(store, Arc::new(MemoryCursorStore::new()), config)?;
//! assert_eq!(siem.status().len(), 2);
//! siem.shutdown().await;
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

mod cef;
mod cursor;
mod error;
mod forwarder;
mod syslog;
mod webhook;

pub use cef::{DEVICE_PRODUCT, DEVICE_VENDOR, MAX_DETAIL, cef_line, escape_header, escape_value};
pub use cursor::{CursorStore, FileCursorStore, MemoryCursorStore};
pub use error::SiemError;
pub use forwarder::{SiemConfig, SiemForwarder, SiemHandle, Sink, SinkConfig, SinkStatus, StartAt};
pub use syslog::{Facility, SyslogConfig, SyslogSink, SyslogTls, frame, syslog_message};
pub use webhook::{
    DELIVERY_HEADER, SIGNATURE_HEADER, WebhookConfig, WebhookSink, sign, verify_signature,
    webhook_body,
};
