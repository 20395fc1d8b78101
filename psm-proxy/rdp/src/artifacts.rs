//! The seed's side channels for artifacts: besides the `.psmr` recording, a gateway may push
//! a session's periodic screenshots (`savescreenshot`) and clipboard text (`saveclipboard`)
//! to the control plane, which keeps them per session (psm-server: `DATA/artifacts/SESSION/`).
//!
//! [`ArtifactSink`] is the seam; [`HttpArtifacts`] sends them to a remote control plane with
//! psm-client. A gateway on the local node needs none: the recording already holds every
//! screenshot (its keyframes) and clipboard event. A failed push is logged and never ends
//! the session (the recording is the evidence of record).

use async_trait::async_trait;
use psm_core::SessionId;

use crate::error::RdpError;

/// Where a session's screenshots and clipboard text are pushed.
#[async_trait]
pub trait ArtifactSink: Send + Sync {
    /// A screenshot of the whole desktop, as PNG.
    async fn screenshot(&self, session: SessionId, png: Vec<u8>) -> Result<(), RdpError>;
    /// Clipboard text that crossed the gateway (only when capture is on).
    async fn clipboard(&self, session: SessionId, text: String) -> Result<(), RdpError>;
}

/// The control plane's `savescreenshot` and `saveclipboard` endpoints (gateway role).
#[derive(Clone, Debug)]
pub struct HttpArtifacts {
    client: psm_client::Client,
}

impl HttpArtifacts {
    /// Over a configured client (its API key must have the gateway role).
    pub fn new(client: psm_client::Client) -> Self {
        Self { client }
    }
}

fn failed(what: &str, e: psm_client::ClientError) -> RdpError {
    RdpError::Session(format!("{what}: {e}"))
}

#[async_trait]
impl ArtifactSink for HttpArtifacts {
    async fn screenshot(&self, session: SessionId, png: Vec<u8>) -> Result<(), RdpError> {
        use base64::Engine as _;
        let image = format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(png)
        );
        self.client
            .save_screenshot(session, image)
            .await
            .map(|_| ())
            .map_err(|e| failed("savescreenshot", e))
    }

    async fn clipboard(&self, session: SessionId, text: String) -> Result<(), RdpError> {
        self.client
            .save_clipboard(session, text)
            .await
            .map(|_| ())
            .map_err(|e| failed("saveclipboard", e))
    }
}
