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
//! use psm_core::directory::{DirectoryAdmin, MemoryDirectory, NewUser, PasswordHash, UserDirectory};
//! use psm_proxy::{HostKeyCheck, SessionRegistry, StaticTarget, StaticTargets,
//!     TargetCredential, TargetSecret};
//! use psm_proxy_rdp::recorder::{writer_config, DirRecordings};
//! use psm_proxy_rdp::tls::ServerIdentity;
//! use psm_proxy_rdp::{RdpGatewayDeps, RdpGateway, RdpGatewayConfig};
//!
//! let directory = Arc::new(MemoryDirectory::new());
//! directory.create_user(&NewUser { name: "alice".parse()?,
//!     password: Some(PasswordHash::hash("alice-pw")?), roles: vec!["ops".into()],
//!     ..NewUser::default() }).await?;
//! directory.grant("ops", "desk-01").await?;
//! // In production: psm_proxy::ControlPlaneTargets::new(..).for_protocol(Protocol::Rdp).
//! let targets = StaticTargets::new();
//! targets.insert("desk-01", StaticTarget { host: "127.0.0.1".into(), port: 3389,
//!     host_key: HostKeyCheck::Pinned(vec!["sha256:<the target certificate's SHA-256>".into()]),
//!     credential: TargetCredential { account: "admin".into(),
//!         secret: TargetSecret::Password("vaulted".into()) },
//!     lifetime: None });
//!
//! let config = RdpGatewayConfig::new("127.0.0.1:3390".parse()?,
//!     psm_core::ProcessInstance::new("rdp-gw-1")?);
//! let recordings = DirRecordings::new("/var/lib/psm/recordings",
//!     psm_recording::SigningKey::generate()?, writer_config(&config.recording));
//! let deps = RdpGatewayDeps { control_plane, directory, targets: Arc::new(targets),
//!     recordings: Arc::new(recordings), registry: SessionRegistry::new(),
//!     launch: psm_proxy_rdp::launch::LaunchTokens::new(), artifacts: None,
//!     taps: Arc::new(psm_proxy::NoTaps) };
//! let identity = ServerIdentity::from_pem_files("gw.crt".as_ref(), "gw.key".as_ref())?;
//! RdpGateway::bind(config, identity, deps).await?.run(std::future::pending()).await?;
//! // users now run: xfreerdp /v:gateway:3390 /u:alice+desk-01 /p:alice-pw /sec:tls
//! # Ok(()) }
//! ```
//!
//! The session layer is psm-proxy's, shared with the SSH gateway: the registry of live
//! sessions and their control ([`psm_proxy::SessionRegistry`], [`psm_proxy::SessionControl`];
//! an RDP entry is a [`LiveRdpSession`]), login names ([`psm_proxy::login`]) and target access
//! ([`psm_proxy::target`]: the target's certificate pin is its
//! [`HostKeyCheck`](psm_proxy::HostKeyCheck)). This crate adds the RDP glue.
//!
//! Where to look: [`gateway`] (listener, limits), [`native`] (the RDP server side toward
//! users), [`upstream`] (the RDP client side toward targets), [`session`] (lifecycle, the
//! registry entry), [`screen`] (the shared decoded desktop), [`recorder`] (`.psmr`;
//! psm-recording's [`graphics`](psm_recording::graphics) replays it, psm-pipeline exports it
//! to video), [`web`] (RDP in the browser), [`access`] (the directory, RDP login names, the
//! target credential as RDP uses it), [`tls`] (certificates and pins), [`drive`] (the session
//! drive). `docs/rdp.md` has the design and its limits.

pub mod access;
pub mod artifacts;
pub mod bitmaps;
#[doc(hidden)]
pub mod clipboard;
pub mod config;
pub mod desktop;
pub mod drive;
pub mod error;
pub mod gateway;
pub mod input;
pub mod launch;
pub mod layout;
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
pub use session::{ActiveSession, LiveRdpSession, RdpGatewayDeps};
