//! # psm-client
//!
//! The typed async client of the `secureaccessgateway` control-plane contract: one method
//! per endpoint ([`Client`]), the wire DTOs with the contract's exact JSON names
//! ([`wire`]), the mapping between psm-core's errors and the contract's error answer
//! ([`error`]), and [`HttpControlPlane`], psm-core's `ControlPlane` over HTTP, so a gateway,
//! encoder or uploader runs the same against an in-process engine or a remote control plane
//! (`psm-server`, or an integrator's PAM product that speaks the seed's endpoints), and
//! [`HttpDirectory`], psm-core's `UserDirectory` over the directory extension endpoints, so
//! a gateway on another host authenticates users against the control plane.
//!
//! ```no_run
//! # async fn demo() -> Result<(), psm_core::CoreError> {
//! use psm_client::{Client, ClientConfig, HttpControlPlane};
//! use psm_core::{ProcessInstance, WorkQueue};
//!
//! let client = Client::new(
//!     ClientConfig::new("http://127.0.0.1:8080").with_api_key("key-of-the-encoder-role"),
//! )?;
//! let cp = HttpControlPlane::new(client);
//! let me = ProcessInstance::new("encoder-1")?;
//! for lease in cp.claim_for_encoding(&me, 4).await? {
//!     let lease = cp.renew(&lease).await?; // Polling with the fencing token
//!     cp.complete(&lease, Default::default()).await?; // UpdateRecordingProcessStatus
//! }
//! # Ok(()) }
//! ```
//!
//! Timeouts bound every call; calls that are safe to repeat (Polling, UpdateSession,
//! EndSession, the reads, Checkin...) are retried with exponential backoff and jitter on
//! transport failures and 429/502/503/504; claims, completions, failures, OpenSession,
//! Checkout and the save endpoints never are. `docs/api.md` documents every endpoint.

pub mod client;
pub mod control_plane;
pub mod directory;
pub mod error;
pub mod live;
pub mod wire;

pub use client::{Client, ClientConfig};
pub use control_plane::HttpControlPlane;
pub use directory::HttpDirectory;
pub use error::ClientError;

impl From<ClientError> for psm_core::CoreError {
    fn from(e: ClientError) -> Self {
        e.into_core()
    }
}
