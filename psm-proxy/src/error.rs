//! The one error type of psm-proxy.

use psm_core::CoreError;

/// What can go wrong while proxying. Messages name the target or peer and what failed, never a
/// credential; [`ProxyError::user_message`] is the text a user may see.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The control plane, the directory or the vault refused or failed.
    #[error(transparent)]
    Core(#[from] CoreError),

    /// The user may not reach this target.
    #[error("user {user} may not reach target {target}")]
    NotAllowed {
        /// The user.
        user: String,
        /// The target.
        target: String,
    },

    /// No target by this name.
    #[error("unknown target {0}")]
    UnknownTarget(String),

    /// The target could not be reached.
    #[error("target {target} ({address}) is unreachable: {reason}")]
    TargetUnreachable {
        /// The target.
        target: String,
        /// host:port.
        address: String,
        /// Why.
        reason: String,
    },

    /// The target presented a host key that does not match the pinned or known one.
    #[error(
        "target {target} presented host key {presented}, which does not match its pinned key; \
         refusing to log in"
    )]
    HostKeyMismatch {
        /// The target.
        target: String,
        /// The fingerprint of the key it presented.
        presented: String,
    },

    /// The target has no pinned key and trust-on-first-use is off.
    #[error(
        "target {target} has no pinned host key (it presented {presented}); pin it or enable \
         trust-on-first-use"
    )]
    HostKeyUnknown {
        /// The target.
        target: String,
        /// The fingerprint of the key it presented.
        presented: String,
    },

    /// The target refused the vaulted credential.
    #[error("target {target} refused the vaulted credential for account {account}")]
    TargetAuthFailed {
        /// The target.
        target: String,
        /// The account on the target (not secret).
        account: String,
    },

    /// The vaulted credential could not be used (a malformed key, for instance).
    #[error("the vaulted credential for target {target} is unusable: {reason}")]
    BadCredential {
        /// The target.
        target: String,
        /// Why (never the secret).
        reason: String,
    },

    /// The session's protocol failed (`SSH error with the target web-01: ...`). Protocol
    /// crates build it from their library's error.
    #[error("{protocol} error with {peer}: {source}")]
    Protocol {
        /// The protocol (`SSH`, `RDP`).
        protocol: &'static str,
        /// Which side.
        peer: String,
        /// The protocol library's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A configuration value is wrong.
    #[error("invalid gateway configuration: {0}")]
    Config(String),

    /// An I/O error.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A timeout.
    #[error("timed out while {0}")]
    Timeout(String),
}

impl ProxyError {
    /// The message shown to the end user on their terminal. It says what failed in words a
    /// user can act on and never holds a credential or internal detail beyond the target.
    pub fn user_message(&self) -> String {
        match self {
            ProxyError::Core(e) if e.is_transient() => {
                "the PSM control plane is unreachable right now; try again shortly".into()
            }
            ProxyError::Core(CoreError::Forbidden(m)) => format!("access denied: {m}"),
            ProxyError::Core(e) => format!("the PSM control plane refused the session: {e}"),
            ProxyError::Protocol { protocol, peer, .. } => {
                format!("{protocol} error talking to {peer}")
            }
            ProxyError::Io { what, .. } => format!("gateway error while {what}"),
            other => other.to_string(),
        }
    }
}
