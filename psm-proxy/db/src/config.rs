//! What the PostgreSQL gateway is configured with.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use psm_core::ProcessInstance;

/// Whether the gateway speaks TLS to a target. A target whose certificate is pinned in the
/// vault (`host_key`, its SHA-256) always gets TLS, verified against the pin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TargetTls {
    /// Plain TCP (the target's password exchange must then be SCRAM or MD5).
    Disable,
    /// TLS when the target offers it (the default), the certificate unverified unless
    /// pinned.
    #[default]
    Prefer,
    /// TLS or no session.
    Require,
}

impl std::str::FromStr for TargetTls {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "disable" => Ok(TargetTls::Disable),
            "prefer" => Ok(TargetTls::Prefer),
            "require" => Ok(TargetTls::Require),
            other => Err(format!("{other:?} is not disable, prefer or require")),
        }
    }
}

/// Everything the PostgreSQL gateway is configured with. Build with
/// [`PostgresGatewayConfig::new`] and adjust fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PostgresGatewayConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// This gateway's name in the control plane (owner of its sessions).
    pub process_instance: ProcessInstance,
    /// TLS toward users (the gateway's certificate); `None`: no TLS offered.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Refuse users who do not use TLS (default true): their PSM password would cross the
    /// network in the clear.
    pub require_tls: bool,
    /// TLS toward targets.
    pub target_tls: TargetTls,
    /// Most concurrent sessions.
    pub max_sessions: usize,
    /// Most connections not yet logged in.
    pub max_unauthenticated: usize,
    /// A connection must log in within this time.
    pub auth_timeout: Duration,
    /// Connecting and logging in to a target must finish within this time.
    pub target_connect_timeout: Duration,
    /// Between heartbeats of a live session.
    pub heartbeat_interval: Duration,
    /// Unanswered heartbeats tolerated, and what then (as the other gateways).
    pub heartbeat_policy: psm_proxy::HeartbeatPolicy,
    /// The longest message relayed either way; a longer one ends the session.
    pub max_message: usize,
    /// Most password checks at once.
    pub max_concurrent_hashing: usize,
    /// Failed logins per user name before a lockout (share with the other gateways).
    pub logins: psm_core::directory::LoginThrottle,
    /// Graceful shutdown waits this long for sessions to end.
    pub shutdown_grace: Duration,
}

impl PostgresGatewayConfig {
    /// Defaults: TLS required of users (give [`tls`](Self::tls)), TLS toward targets when
    /// offered, 1,000 sessions, 64 connections logging in, 30 s to log in, 15 s to reach
    /// the target, 10 s heartbeats, 64 MiB messages.
    pub fn new(listen: SocketAddr, process_instance: ProcessInstance) -> Self {
        Self {
            listen,
            process_instance,
            tls: None,
            require_tls: true,
            target_tls: TargetTls::Prefer,
            max_sessions: 1000,
            max_unauthenticated: 64,
            auth_timeout: Duration::from_secs(30),
            target_connect_timeout: Duration::from_secs(15),
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_policy: psm_proxy::HeartbeatPolicy::default(),
            max_message: crate::wire::DEFAULT_MAX_MESSAGE,
            max_concurrent_hashing: 4,
            logins: psm_core::directory::LoginThrottle::default(),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}
