//! The seed's side channels for artifacts: besides the `.psmr` recording, a gateway may push
//! a session's periodic screenshots (`savescreenshot`) and clipboard text (`saveclipboard`)
//! to the control plane, which keeps them per session (psm-server: `DATA/artifacts/SESSION/`).
//!
//! [`ArtifactPush`] is the seam; the `psm-rdp-gateway` binary implements it over psm-client
//! for a remote control plane (the library does not depend on psm-client). A gateway on the
//! local node needs none: the recording already holds every
//! screenshot (its keyframes) and clipboard event. A failed push is logged and never ends
//! the session (the recording is the evidence of record).

use async_trait::async_trait;
use psm_core::SessionId;

use crate::error::RdpError;

/// Where a session's screenshots and clipboard text are pushed: the gateway's end of the
/// seed's save endpoints (the control plane's end, which stores them, is psm-server's
/// `ArtifactSink`).
#[async_trait]
pub trait ArtifactPush: Send + Sync {
    /// A screenshot of the whole desktop, as PNG.
    async fn screenshot(&self, session: SessionId, png: Vec<u8>) -> Result<(), RdpError>;
    /// Clipboard text that crossed the gateway (only when capture is on).
    async fn clipboard(&self, session: SessionId, text: String) -> Result<(), RdpError>;
}
