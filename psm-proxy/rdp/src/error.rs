//! The crate's error type.

use std::io;

/// Everything that can go wrong in the RDP proxy. Messages name what and where; they never
/// hold a password (target credentials and user passwords stay out of every variant).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RdpError {
    /// The gateway is misconfigured (a certificate that does not load, a bad limit...).
    #[error("configuration: {0}")]
    Config(String),
    /// A socket or file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// TLS toward the user or the target failed.
    #[error("TLS with the {side}: {reason}")]
    Tls {
        /// `user` or `target`.
        side: &'static str,
        /// What failed.
        reason: String,
    },
    /// The user could not be authenticated (the reason is for the log, not the user).
    #[error("authentication refused for {user:?}: {reason}")]
    AuthRefused {
        /// The user name as given (never the password).
        user: String,
        /// Why.
        reason: String,
    },
    /// The login name is not `USER+TARGET` (or `USER` with a default target).
    #[error("login name: {0}")]
    BadLogin(String),
    /// The user may not reach the target, or the target is unknown.
    #[error("target {target:?}: {reason}")]
    Target {
        /// The target's name.
        target: String,
        /// Why.
        reason: String,
    },
    /// The RDP connection sequence with the target failed.
    #[error("connecting to target {target:?} at {addr}: {reason}")]
    TargetConnect {
        /// The target's name.
        target: String,
        /// Where.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// The RDP connection sequence with the user's client failed (malformed PDU, client
    /// dropped mid-handshake, security the gateway does not offer...).
    #[error("client {peer}: {reason}")]
    Client {
        /// The client's address.
        peer: String,
        /// What failed.
        reason: String,
    },
    /// The target's RDP stream could not be decoded.
    #[error("target stream: {0}")]
    Session(String),
    /// A requested desktop size is outside the policy's bounds.
    #[error("desktop size {width}x{height} is outside 200x200..={max_width}x{max_height}")]
    DesktopSize {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
        /// Largest width allowed.
        max_width: u16,
        /// Largest height allowed.
        max_height: u16,
    },
    /// The control plane refused or failed a call.
    #[error("control plane: {0}")]
    ControlPlane(#[from] psm_core::CoreError),
    /// The recording could not be written or read.
    #[error("recording: {0}")]
    Recording(#[from] psm_recording::RecordingError),
    /// An export (video, contact sheet) failed.
    #[error("export: {0}")]
    Export(String),
    /// The gateway is at its session limit.
    #[error("the gateway is at its limit of {0} sessions")]
    Busy(usize),
    /// A step did not finish in time.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// The session layer (psm-proxy's target access) refused or failed, for a reason with no
    /// variant of its own here (a user not allowed, an unusable credential...).
    #[error(transparent)]
    Proxy(psm_proxy::ProxyError),
}

impl From<psm_proxy::ProxyError> for RdpError {
    /// The session layer's errors in this crate's terms: the control plane's stay
    /// [`RdpError::ControlPlane`], an unknown target is [`RdpError::Target`].
    fn from(e: psm_proxy::ProxyError) -> Self {
        use psm_proxy::ProxyError as P;
        match e {
            P::Core(e) => RdpError::ControlPlane(e),
            P::UnknownTarget(target) => RdpError::Target {
                target,
                reason: "no such target".into(),
            },
            P::Config(reason) => RdpError::Config(reason),
            P::Io { what, source } => RdpError::Io { what, source },
            other => RdpError::Proxy(other),
        }
    }
}

impl RdpError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        RdpError::Io {
            what: what.into(),
            source,
        }
    }
}
