//! # psm-core
//!
//! The foundation every PSM process stands on: the session lifecycle of the
//! `secureaccessgateway` contract (`Connected → Ended → Encoding → Done-Encoded → Uploading →
//! Done-Uploaded`, plus `Failed`), the [`Engine`] that moves sessions through it with leases,
//! fencing tokens and a watchdog, the [`SessionStore`](store::SessionStore) backends it runs
//! on (memory, SQLite, PostgreSQL), the append-only audit trail, and the [`ControlPlane`]
//! seam through which gateways, encoders and uploaders reach it, in-process or over HTTP.
//!
//! ```
//! # async fn demo() -> Result<(), psm_core::CoreError> {
//! use std::sync::Arc;
//! use psm_core::{Engine, EngineConfig, NewSession, ProcessInstance, Protocol, SessionId, Stage};
//! use psm_core::clock::SystemClock;
//! use psm_core::store::SqliteStore;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = SqliteStore::open(dir.path().join("psm.db")).await?;
//! let engine = Engine::new(Arc::new(store), Arc::new(SystemClock), EngineConfig::default());
//!
//! let gateway = ProcessInstance::new("gateway-1")?;
//! let id = SessionId::new();
//! engine.open_session(NewSession {
//!     id, user: "alice".into(), target: "web-01".into(), protocol: Protocol::Ssh,
//!     checkout_id: None, process_instance: gateway.clone(),
//! }).await?;
//! engine.end_session(id, &gateway).await?;
//!
//! let encoder = ProcessInstance::new("encoder-1")?;
//! let lease = engine.claim_for_encoding(&encoder, 1).await?.remove(0);
//! engine.complete(&lease, Default::default()).await?;
//!
//! let uploader = ProcessInstance::new("uploader-1")?;
//! let lease = engine.claim_for_upload(&uploader, 1).await?.remove(0);
//! engine.complete(&lease, Default::default()).await?;
//! assert_eq!(engine.session(id).await?.stage, Stage::DoneUploaded);
//! assert_eq!(engine.audit_trail(id).await?.len(), 6);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! Where to look: [`stage`] holds the legal moves, [`engine`] the calls (and `docs/lifecycle.md`
//! their mapping to the contract's endpoints), [`store`] the backends and their conformance
//! suite, [`clock`] the injected time.

pub mod access;
pub mod audit;
pub mod clock;
pub mod control_plane;
pub mod directory;
pub mod engine;
pub mod error;
pub mod files;
pub mod id;
pub mod live;
pub mod policy;
pub mod session;
pub mod stage;
pub mod store;
pub mod timestamp;
pub mod vault;

pub use audit::{AuditAction, AuditEvent, AuditRecord};
pub use control_plane::{
    ControlPlane, HeartbeatReply, LiveLinkApi, LocalControlPlane, SessionAdmin, SessionLifecycle,
    Settings, TargetCredentials, WorkQueue,
};
pub use engine::{Engine, EngineConfig, RecordingStatusUpdate, SweepReport};
pub use error::CoreError;
pub use id::{CheckoutId, FencingToken, ProcessInstance, SessionId};
pub use policy::{Decision, Policy, SessionPolicy};
pub use session::{
    Completion, Lease, NewSession, PrivSession, Protocol, RecordingCommitment, RecordingStatus,
};
pub use stage::Stage;
pub use timestamp::Timestamp;
