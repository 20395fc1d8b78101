//! The state every handler shares, and the server's typed configuration.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use psm_core::LocalControlPlane;

use crate::artifacts::ArtifactSink;
use crate::auth::{ApiKeys, Principal};

/// The server's settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest request body, in bytes; larger ones are answered 413.
    pub body_limit: usize,
    /// How often the watchdog and the checkout-expiry sweep run.
    pub sweep_interval: Duration,
    /// Peers whose `X-Forwarded-For` / `X-Real-IP` the server believes (reverse proxies):
    /// GetIP answers the client behind them, and the web UI's login lockout, audit trail
    /// and refusal counts use that client's address rather than the proxy's. Connections
    /// from them count only against [`max_connections`](Self::max_connections).
    pub trusted_proxies: Vec<IpAddr>,
    /// How long graceful shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// How long a client has to send a request's headers (HTTP/1), and a new connection
    /// (after its TLS handshake, which has its own 10 s limit) its first byte.
    pub header_read_timeout: Duration,
    /// Most connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Most connections open at once from one client address (trusted proxies excepted).
    pub max_connections_per_peer: usize,
    /// Unauthenticated requests refused from one client within this window are audited
    /// once, then counted ([`refusals`](crate::refusals)).
    pub refusal_window: Duration,
    /// GetCredential refusals of one principal within a `refusal_window` that raise an
    /// `ALERT:` audit row; its GetCredential calls are then answered 429 until the window
    /// ends ([`CredentialRefusals`](crate::refusals::CredentialRefusals)).
    pub credential_refusal_limit: u32,
    /// The data directory whose signer registries (`keys/signers/gateways`, `.../encoders`)
    /// RegisterSigner writes into, and which this server's web UI trusts (`None`:
    /// RegisterSigner is answered 501).
    pub signers_data_dir: Option<std::path::PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            body_limit: 8 * 1024 * 1024,
            sweep_interval: Duration::from_secs(10),
            trusted_proxies: Vec::new(),
            shutdown_grace: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_connections_per_peer: 256,
            refusal_window: Duration::from_secs(60),
            credential_refusal_limit: 5,
            signers_data_dir: None,
        }
    }
}

/// Who is on the other end of a connection: its address and, over mTLS, the principal its
/// client certificate maps to.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// The peer's socket address.
    pub addr: SocketAddr,
    /// The principal of its client certificate, if it presented a known one.
    pub cert_principal: Option<Principal>,
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for PeerInfo
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        PeerInfo {
            addr: *stream.remote_addr(),
            cert_principal: None,
        }
    }
}

/// The handlers' shared state.
#[derive(Clone)]
pub struct AppState {
    /// The control plane (engine, vault, settings).
    pub cp: LocalControlPlane,
    /// Accepted API keys.
    pub keys: Arc<ApiKeys>,
    /// Where the save endpoints write.
    pub artifacts: Arc<dyn ArtifactSink>,
    /// Settings.
    pub config: Arc<ServerConfig>,
    /// The user directory, if this control plane serves one (the directory endpoints answer
    /// 501 otherwise).
    pub directory: Option<Arc<dyn psm_core::directory::UserDirectory>>,
    /// Failed VerifyUser answers per user name: past the limit the name is refused without
    /// a check until the lockout ends (default five in five minutes).
    pub logins: psm_core::directory::LoginThrottle,
    /// Unauthenticated refusals, audited once per client and window.
    pub refusals: crate::refusals::RefusalLog,
    /// GetCredential refusals per principal.
    pub credential_refusals: crate::refusals::CredentialRefusals,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
