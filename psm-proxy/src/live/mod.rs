//! Live sessions: viewers who watch (and, with control, type into) a session as it happens,
//! the websocket listener that serves them and the browser terminal, and the link that
//! carries admin commands from the control plane and reports back to it. The protocol and
//! the design are in `docs/live.md`.
//!
//! - [`fanout`]: each session's screens (psm-recording's emulator) and viewer queues; a
//!   slow viewer skips ahead to a fresh screen, a dead one is cut off, the user never waits;
//! - [`server`]: [`LiveServer`], the gateway's websocket listener (`/live/SESSION`,
//!   `/terminal`), tickets redeemed through the control plane's `LiveLinkApi` role;
//! - [`terminal`]: the browser terminal, opened through a protocol gateway's
//!   [`TerminalOpener`];
//! - [`desktop`]: graphical sessions (RDP): a protocol crate's [`Desktop`] gives viewers
//!   PNG tiles and takes a controlling viewer's keyboard and pointer;
//! - [`protocol`]: the messages, parsed with bounds;
//! - [`link`]: [`LiveLink`], the long poll for admin commands and the report queue;
//! - [`notice`]: what the user is told.
//!
//! A gateway serves its registry's sessions; the SSH gateway (`psm-proxy-ssh`) gives its
//! registry and, for the browser terminal, its connector:
//!
//! ```no_run
//! # async fn demo(registry: psm_proxy::SessionRegistry,
//! #     terminals: std::sync::Arc<dyn psm_proxy::live::TerminalOpener>,
//! #     control_plane: std::sync::Arc<dyn psm_core::ControlPlane>) -> Result<(), psm_proxy::ProxyError> {
//! use psm_proxy::live::{LiveDeps, LiveLink, LiveServer, LiveServerConfig};
//! let me = psm_core::ProcessInstance::new("gateway-1")?;
//! let mut config = LiveServerConfig::new("127.0.0.1:2223".parse().unwrap(), me.clone());
//! config.allowed_origins.push("https://psm.example.com".into());
//! let live = LiveServer::bind(config, LiveDeps {
//!     control_plane: control_plane.clone(),
//!     registry: registry.clone(),
//!     terminals: Some(terminals),
//! }).await?;
//! let link = LiveLink::start(control_plane, registry, me, Some(live.url()));
//! live.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! link.stop().await;
//! # Ok(()) }
//! ```

pub mod desktop;
pub mod fanout;
pub mod link;
pub mod notice;
pub mod protocol;
pub mod server;
pub mod terminal;

pub use desktop::{Desktop, DesktopInput, DesktopUpdate, DesktopWatch, PointerButton};
pub use fanout::{FanoutConfig, JoinRefused, Screen};
pub use link::LiveLink;
pub use server::{LiveDeps, LiveServer, LiveServerConfig, LiveService};
pub use terminal::{Terminal, TerminalInput, TerminalOpener, TerminalOutput};
