//! # psm-proxy
//!
//! PSM's protocol-neutral session layer, the crate every protocol proxy stands on. A user's
//! client connects to a gateway (a protocol crate: `psm-proxy-ssh` for SSH); the gateway
//! authenticates the user against the directory, opens a PrivSession in the control plane,
//! logs in to the target with a vaulted credential the user never sees, and forwards every
//! byte through the session's [taps](Tap). What the gateway does besides speaking its
//! protocol lives here, once for every protocol:
//!
//! - the session: [`SessionInfo`], [`SessionControl`] (pause, resume, lock, terminate,
//!   inject, join, approvals), the [`ProxySession`] trait and the [`SessionRegistry`] of
//!   live sessions;
//! - the [`Tap`] trait (Handler-style defaults) and [`TapSet`], with the channel model taps
//!   see ([`ChannelInfo`], [`ChannelPurpose`], [`ChannelRequest`], [`DataEvent`]);
//! - [`target`]: the [`TargetAccess`] seam to targets, checkouts and credentials over the
//!   control plane; [`login`]: `USER+TARGET` login names;
//! - [`record`]: the recorder tap (`.psmr`); [`policy_tap`]: psm-core's command policy
//!   enforced in the session (hold the Enter, alert, ask for approval, pause, lock,
//!   terminate); [`redact`]: what a password prompt hides;
//! - [`tracker`]: the terminal-aware command tracker the policy tap runs (the user's keys
//!   and psm-recording's emulated screen, read into command lines for psm-core's policy);
//! - [`live`]: live viewers (screens, fan-out that never slows the user), the websocket
//!   server for viewers and the browser terminal ([`live::TerminalOpener`]), and the link
//!   that carries admin commands and reports to and from the control plane (`docs/live.md`);
//! - [`keyfile`]: the gateway's own key files; [`tls`]: certificate pins toward targets
//!   and the gateway's self-signed certificate.
//!
//! No protocol library is a dependency here (no russh, no ironrdp). A protocol crate
//! builds a [`ChannelInfo`] per channel, decides its [`ChannelPurpose`], and calls the
//! session's [`TapSet`] for every event, before it forwards anything:
//!
//! ```
//! use std::sync::Arc;
//! use psm_proxy::{ChannelInfo, ChannelType, DataEvent, DataVerdict, Direction, StreamKind,
//!     Tap, TapSet};
//!
//! /// Masks one word in everything the target prints.
//! struct Mask;
//!
//! #[async_trait::async_trait]
//! impl Tap for Mask {
//!     async fn data(&self, _channel: &ChannelInfo, event: &DataEvent<'_>) -> DataVerdict {
//!         let text = String::from_utf8_lossy(event.bytes);
//!         if event.direction == Direction::ToUser && text.contains("hunter2") {
//!             DataVerdict::Replace(text.replace("hunter2", "*******").into())
//!         } else {
//!             DataVerdict::Forward
//!         }
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let mut taps = TapSet::new();
//! taps.push(Arc::new(Mask));
//! let channel = ChannelInfo::new(0, ChannelType::Session);
//! let out = taps
//!     .data(&channel, Direction::ToUser, StreamKind::Stdout, "pw: hunter2\n".into(), false)
//!     .await;
//! assert_eq!(out.as_deref(), Some(&b"pw: *******\n"[..]));
//! # });
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod error;
pub mod keyfile;
pub mod live;
pub mod login;
pub mod policy_tap;
pub mod record;
pub mod redact;
pub mod registry;
pub mod session;
pub mod tap;
pub mod target;
pub mod tls;
pub mod tracker;

pub use error::ProxyError;
pub use login::{LoginError, LoginName, MAX_LOGIN_LEN, parse_login};
pub use registry::{Registration, SessionRegistry};
pub use session::{
    ApprovalDecision, ControlNote, DecideRefused, HeartbeatPolicy, HeartbeatStep, HeartbeatWatch,
    HoldState, Injection, LiveEvent, ProxySession, SessionControl, SessionInfo, UnreachableAction,
    Viewer, ViewerItem,
};
pub use tap::{
    ChannelInfo, ChannelPurpose, ChannelRequest, ChannelType, DataEvent, DataVerdict, Direction,
    EndReason, ExitReport, FileOperation, FileOperationOutcome, NoTaps, RequestVerdict, StreamKind,
    Tap, TapFactories, TapFactory, TapSet, TermSize, TransferReport, TransferRequest,
};
pub use target::{
    Authorization, ControlPlaneTargets, HostKeyCheck, StaticTarget, StaticTargets, TargetAccess,
    TargetCredential, TargetSecret,
};
