//! # psm-proxy-rdp
//!
//! PSM's RDP proxy, on ironrdp. A native RDP client (mstsc, FreeRDP) or a browser connects
//! to the gateway; the gateway authenticates the PSM user against the directory, opens a
//! PrivSession (`Protocol::Rdp`), fetches the vaulted target credential through the
//! control plane, logs in to the target with it (the user never sees it), records the
//! session into `.psmr` (screen as raw palette pixels or PNG frames, keyboard, pointer,
//! clipboard text and session-drive files where policy allows them), heartbeats, obeys
//! terminate, and ends the session in the control plane however it ends.
//!
//! ```no_run
//! # async fn demo(control_plane: std::sync::Arc<dyn psm_core::ControlPlane>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use psm_core::directory::{MemoryDirectory, NewUser, PasswordHash, UserDirectory};
//! use psm_proxy_rdp::access::{StaticTarget, StaticTargets, TargetLogin};
//! use psm_proxy_rdp::recorder::{writer_config, DirRecordings};
//! use psm_proxy_rdp::tls::{ServerIdentity, TargetCertCheck};
//! use psm_proxy::SessionRegistry;
//! use psm_proxy_rdp::{GatewayDeps, RdpGateway, RdpGatewayConfig};
//!
//! let directory = Arc::new(MemoryDirectory::new());
//! directory.create_user(&NewUser { name: "alice".parse()?,
//!     password: Some(PasswordHash::hash("alice-pw")?), roles: vec!["ops".into()],
//!     ..NewUser::default() }).await?;
//! directory.grant("ops", "desk-01").await?;
//! let targets = StaticTargets::new();
//! targets.insert("desk-01", StaticTarget { host: "127.0.0.1".into(), port: 3389,
//!     cert_check: TargetCertCheck::AcceptAny, login: TargetLogin::new("admin", "vaulted") });
//!
//! let config = RdpGatewayConfig::new("127.0.0.1:3390".parse()?,
//!     psm_core::ProcessInstance::new("rdp-gw-1")?);
//! let recordings = DirRecordings::new("/var/lib/psm/recordings",
//!     psm_recording::SigningKey::generate()?, writer_config(&config.recording));
//! let deps = GatewayDeps { control_plane, directory, targets: Arc::new(targets),
//!     recordings: Arc::new(recordings), registry: SessionRegistry::new(),
//!     launch: psm_proxy_rdp::launch::LaunchTokens::new(), artifacts: None };
//! let identity = ServerIdentity::from_pem_files("gw.crt".as_ref(), "gw.key".as_ref())?;
//! RdpGateway::bind(config, identity, deps).await?.run(std::future::pending()).await?;
//! // users now run: xfreerdp /v:gateway:3390 /u:alice+desk-01 /p:alice-pw /sec:tls
//! # Ok(()) }
//! ```
//!
//! Where to look: [`gateway`] (listener, limits), [`native`] (the RDP server side toward
//! users), [`upstream`] (the RDP client side toward targets), [`session`] (lifecycle),
//! [`screen`] (the shared decoded desktop), [`recorder`] (`.psmr`; psm-recording's
//! [`graphics`](psm_recording::graphics) replays it, psm-pipeline exports it to video),
//! [`web`] (RDP in the browser), [`access`] (directory and vault),
//! [`control`] (pause, terminate, registry), [`drive`] (the session drive). `docs/rdp.md` has the design and its limits.

pub mod access;
pub mod artifacts;
pub mod bitmaps;
#[doc(hidden)]
pub mod clipboard;
pub mod config;
pub mod drive;
pub mod error;
pub mod gateway;
pub mod input;
pub mod launch;
pub mod login;
mod native;
pub mod recorder;
mod refusal;
pub mod screen;
pub mod session;
pub mod tls;
pub mod upstream;
pub mod web;

pub use config::{ChannelPolicy, Limits, RdpGatewayConfig, RecordingPolicy, TargetSecurity};
pub use error::RdpError;
pub use gateway::RdpGateway;
pub use session::{ActiveSession, GatewayDeps, LiveRdpSession};
