//! # psm-proxy
//!
//! PSM's protocol proxies. A user's client connects to the gateway; the gateway
//! authenticates the user against the directory, opens a PrivSession in the control plane,
//! logs in to the target with a vaulted credential the user never sees, and forwards every
//! byte through the session's [taps](Tap) (the recorder, later policy and live viewers).
//!
//! - protocol-neutral pieces: [`SessionInfo`], [`SessionControl`] (pause, resume,
//!   terminate, inject, join), the [`ProxySession`] trait, the [`SessionRegistry`] of live
//!   sessions, the [`Tap`] trait and [`TapSet`], the [`TargetAccess`] seam to targets and
//!   credentials;
//! - [`ssh`]: the SSH gateway on russh (server toward users, client toward targets);
//! - [`policy_tap`]: psm-core's command policy enforced in the session (hold the Enter,
//!   alert, ask for approval, pause, lock, terminate);
//! - [`tracker`]: the terminal-aware command tracker the policy tap runs (the user's keys
//!   and psm-recording's emulated screen, read into command lines for psm-core's policy);
//! - [`live`]: live viewers (screens, fan-out that never slows the user), the websocket
//!   server for viewers and the browser terminal, and the link that carries admin commands
//!   and reports to and from the control plane (`docs/live.md`).
//!
//! ```no_run
//! # async fn demo(control_plane: std::sync::Arc<dyn psm_core::ControlPlane>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use psm_core::directory::{MemoryDirectory, NewUser, PasswordHash, UserDirectory};
//! use psm_proxy::{NoTaps, SessionRegistry, StaticTarget, StaticTargets, HostKeyCheck,
//!     TargetCredential, TargetSecret};
//! use psm_proxy::ssh::{GatewayDeps, SshGateway, SshGatewayConfig, generate_host_key};
//!
//! let directory = Arc::new(MemoryDirectory::new());
//! directory.create_user(&NewUser {
//!     name: "alice".parse()?, password: Some(PasswordHash::hash("alice-pw")?),
//!     roles: vec!["ops".into()], ..NewUser::default()
//! }).await?;
//! directory.grant("ops", "web-01").await?;
//!
//! let targets = StaticTargets::new();
//! targets.insert("web-01", StaticTarget {
//!     host: "127.0.0.1".into(), port: 22,
//!     host_key: HostKeyCheck::Pinned(vec!["SHA256:...".into()]),
//!     credential: TargetCredential { account: "deploy".into(),
//!         secret: TargetSecret::Password("vaulted".into()) },
//!     lifetime: None,
//! });
//!
//! let mut config = SshGatewayConfig::new("0.0.0.0:2222".parse()?,
//!     psm_core::ProcessInstance::new("gateway-1")?);
//! config.host_keys.push(generate_host_key());
//! let deps = GatewayDeps { control_plane, directory, targets: Arc::new(targets),
//!     taps: Arc::new(NoTaps), registry: SessionRegistry::new() };
//! SshGateway::bind(config, deps).await?.run(std::future::pending()).await?;
//! // users now run: ssh alice+web-01@gateway -p 2222
//! # Ok(()) }
//! ```

pub mod error;
pub mod live;
pub mod policy_tap;
pub mod record;
pub mod redact;
pub mod registry;
pub mod session;
pub mod ssh;
pub mod tap;
pub mod target;
pub mod tracker;

pub use error::ProxyError;
pub use registry::{Registration, SessionRegistry};
pub use session::{
    ApprovalDecision, ControlNote, HoldState, Injection, LiveEvent, ProxySession, SessionControl,
    SessionInfo, Viewer, ViewerItem,
};
pub use tap::{
    ChannelInfo, ChannelKind, ChannelPurpose, ChannelRequest, DataEvent, DataVerdict, Direction,
    EndReason, ExitReport, FileTransfer, NoTaps, RequestVerdict, StreamKind, Tap, TapFactories,
    TapFactory, TapSet, TermSize,
};
pub use target::{
    Authorization, ControlPlaneTargets, HostKeyCheck, StaticTarget, StaticTargets, TargetAccess,
    TargetCredential, TargetSecret,
};
