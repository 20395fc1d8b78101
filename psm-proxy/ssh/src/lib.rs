//! # psm-proxy-ssh
//!
//! PSM's SSH gateway, on russh: a russh server facing users and a russh client per session
//! facing the target, bridged channel by channel through the session's taps. It is SSH glue
//! over `psm-proxy`, the protocol-neutral session layer, which owns the sessions, their
//! control and registry, target access, the taps (recorder, policy) and live viewing.
//!
//! Users log in as `USER+TARGET` (see [`psm_proxy::parse_login`]) with a key, a password or
//! keyboard-interactive, plus a TOTP code when their directory entry has one; `USER` alone
//! gets a menu of their targets. The gateway opens the PrivSession (Connected), fetches the
//! vaulted credential through [`TargetAccess`], verifies the target's host key, logs in,
//! and then forwards every channel: shell and exec (with pty, window changes, env, signals,
//! exit status), the sftp subsystem, scp, and port forwards as policy allows. It heartbeats
//! the session, warns the user before the checkout runs out, obeys terminate requests
//! within one heartbeat, and ends the session in the control plane however the connection
//! ends.
//!
//! - [`SshGateway`], [`SshGatewayConfig`], [`GatewayDeps`]: the gateway and what it is
//!   assembled from;
//! - [`transfer`]: SFTP and scp followed from the bytes of their channels, reported to the
//!   taps as file transfers (an scp command's channel gets
//!   [`ChannelPurpose::FileCopy`](psm_proxy::ChannelPurpose::FileCopy));
//! - [`InternalConnector`]: sessions opened from inside the gateway through exactly the path
//!   of an SSH login; it is the browser terminal's
//!   [`TerminalOpener`](psm_proxy::live::TerminalOpener);
//! - host keys: [`generate_host_key`], [`load_or_create_host_key`], [`host_key_public`],
//!   [`fetch_host_key`] (a target's key, to pin it).
//!
//! ```no_run
//! # async fn demo(control_plane: std::sync::Arc<dyn psm_core::SessionLifecycle>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use psm_core::directory::{DirectoryAdmin, MemoryDirectory, NewUser, PasswordHash};
//! use psm_proxy::{NoTaps, SessionRegistry, StaticTarget, StaticTargets, HostKeyCheck,
//!     TargetCredential, TargetSecret};
//! use psm_proxy_ssh::{GatewayDeps, SshGateway, SshGatewayConfig, generate_host_key};
//!
//! let directory = Arc::new(MemoryDirectory::new());
//! directory.create_user(&NewUser {
//!     name: "alice".parse()?, password: Some(PasswordHash::hash("alice-pw")?),
//!     roles: vec!["ops".into()], ..NewUser::default()
//! }).await?;
//! directory.grant("ops", "web-01").await?;
//!
//! let targets = StaticTargets::new();
//! targets.insert("web-01", StaticTarget {
//!     host: "127.0.0.1".into(), port: 22,
//!     host_key: HostKeyCheck::Pinned(vec!["SHA256:...".into()]),
//!     credential: TargetCredential { account: "deploy".into(),
//!         secret: TargetSecret::Password("vaulted".into()) },
//!     lifetime: None,
//! });
//!
//! let mut config = SshGatewayConfig::new("0.0.0.0:2222".parse()?,
//!     psm_core::ProcessInstance::new("gateway-1")?);
//! config.host_keys.push(generate_host_key());
//! let deps = GatewayDeps { control_plane, directory, targets: Arc::new(targets),
//!     taps: Arc::new(NoTaps), registry: SessionRegistry::new() };
//! let gateway = SshGateway::bind(config, deps).await?;
//! println!("listening on {}", gateway.local_addr());
//! gateway.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! // users now run: ssh alice+web-01@gateway -p 2222
//! # Ok(()) }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use psm_core::directory::DirectoryLookup;
use psm_core::{ProcessInstance, SessionLifecycle};
use psm_proxy::keyfile::write_private;
use psm_proxy::{EndReason, ProxyError, SessionRegistry, TapFactory, TargetAccess};
use russh::keys::PrivateKey;
use russh::server;
use russh::{MethodKind, MethodSet, SshId};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};

pub mod algorithms;
mod bridge;
mod conn;
mod forward;
mod handler;
mod internal;
mod limits;
mod menu;
mod sftp_gate;
pub mod transfer;
mod upstream;

pub use forward::ForwardDestination;
pub use internal::{InternalConnector, InternalTerminal};
pub use upstream::fetch_host_key;

/// A russh error as the session layer's error, naming the side it came from
/// (`SSH error with the target web-01: ...`).
pub fn ssh_error(peer: impl Into<String>, source: russh::Error) -> ProxyError {
    ProxyError::Protocol {
        protocol: "SSH",
        peer: peer.into(),
        source: Box::new(source),
    }
}

/// Messages a channel may queue before russh's loop waits (see `bridge` for why it is large).
pub(crate) const CHANNEL_BUFFER: usize = 512;
/// The SSH channel window advertised on both sides.
pub(crate) const WINDOW: u32 = 2 * 1024 * 1024;

/// Everything the SSH gateway is configured with. Build with [`SshGatewayConfig::new`] and
/// adjust fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SshGatewayConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The gateway's host keys (at least one).
    pub host_keys: Vec<PrivateKey>,
    /// This gateway's name in the control plane (owner of its sessions).
    pub process_instance: ProcessInstance,
    /// Most concurrent authenticated sessions.
    pub max_sessions: usize,
    /// Most connections not yet authenticated (a flood defence; more are dropped at once).
    pub max_unauthenticated: usize,
    /// Most connections not yet authenticated from one source (an IPv4 address, an IPv6
    /// /64), as OpenSSH's `PerSourceMaxStartups`: one address holding idle connections
    /// cannot use up [`max_unauthenticated`](Self::max_unauthenticated) and lock everyone
    /// else out. More from that source are dropped at once.
    pub max_unauthenticated_per_source: usize,
    /// New connections one source may open per second, after a burst of
    /// [`source_connection_burst`](Self::source_connection_burst) (0: no limit). Each
    /// connection costs the gateway a key exchange; a source over the rate gets its
    /// connections closed before the SSH banner (the DHEat defence ssh-audit checks for).
    /// A connection that logs in does not count, so automation opening many sessions from
    /// one host is not slowed.
    pub source_connection_rate: u32,
    /// New connections one source may open at once before the rate applies.
    pub source_connection_burst: u32,
    /// How long a source is refused after it let [`source_penalty_after`]
    /// (Self::source_penalty_after) connections in a row time out or fail authentication,
    /// as OpenSSH's `PerSourcePenalties` (`None`: no penalty). A login from the source
    /// clears its count.
    pub source_penalty: Option<Duration>,
    /// Unauthenticated connections in a row (timed out, or closed after failed
    /// authentication) after which a source is penalised.
    pub source_penalty_after: u32,
    /// A connection must authenticate within this time.
    pub auth_timeout: Duration,
    /// Most channels one connection may hold open.
    pub max_channels: usize,
    /// Between heartbeats (Polling) of a live session; a terminate request takes effect
    /// within one interval.
    pub heartbeat_interval: Duration,
    /// How many heartbeats in a row may go unanswered (the control plane unreachable), and
    /// what then: by default the session is locked after 3 and unlocked when the control
    /// plane answers again (issue 17 L6). Each answered heartbeat also re-checks the user in
    /// the directory: a removed or disabled user, or one no longer allowed to reach the
    /// target, ends the session.
    pub heartbeat_policy: psm_proxy::HeartbeatPolicy,
    /// How long before the checkout expires the user is warned.
    pub expiry_warning: Duration,
    /// Connecting and logging in to a target must finish within this time.
    pub target_connect_timeout: Duration,
    /// Allow `ssh -L` and `ssh -W` (direct-tcpip), to the destinations of
    /// [`forward_destinations`](Self::forward_destinations) only. Off by default: tunnel
    /// bytes are counted and the tunnel's endpoints recorded, but what flows through is
    /// neither recorded nor policed.
    pub allow_local_forwarding: bool,
    /// Where `ssh -L` may lead, as seen from the target (see [`ForwardDestination`]).
    /// Default: the target's own loopback (`localhost:*`, `127.0.0.1:*`, `[::1]:*`). An
    /// empty list refuses every destination.
    pub forward_destinations: Vec<ForwardDestination>,
    /// Allow `ssh -R` (tcpip-forward).
    pub allow_remote_forwarding: bool,
    /// Allow the sftp subsystem (and so default-mode scp).
    pub allow_sftp: bool,
    /// Forward `env` requests (the target's AcceptEnv still decides).
    pub allow_env: bool,
    /// Close connections idle this long (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Text shown before authentication.
    pub banner: Option<String>,
    /// Graceful shutdown waits this long for sessions to end.
    pub shutdown_grace: Duration,
    /// Most password hashes checked at once (argon2 uses ~19 MiB each).
    pub max_concurrent_hashing: usize,
    /// Failed passwords and TOTP codes per user name before the name is refused without a
    /// check for the rest of the lockout (default five in five minutes; a complete login
    /// clears the count). Clones share counts: give several gateways one to count together.
    pub logins: psm_core::directory::LoginThrottle,
}

impl SshGatewayConfig {
    /// Defaults: 10,000 sessions, 256 unauthenticated connections (per source: 10 at once,
    /// 10 new ones per second after a burst of 10, refused for 30 s after 10 in a row that
    /// did not log in), 30 s to authenticate, 64
    /// channels per connection (port forwards included), 10 s heartbeats, 60 s expiry
    /// warning, sftp allowed, local and remote forwarding off, agent forwarding and X11
    /// always off.
    pub fn new(listen: SocketAddr, process_instance: ProcessInstance) -> Self {
        Self {
            listen,
            host_keys: Vec::new(),
            process_instance,
            max_sessions: 10_000,
            max_unauthenticated: 256,
            max_unauthenticated_per_source: 10,
            source_connection_rate: 10,
            source_connection_burst: 10,
            source_penalty: Some(Duration::from_secs(30)),
            source_penalty_after: 10,
            auth_timeout: Duration::from_secs(30),
            max_channels: 64,
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_policy: psm_proxy::HeartbeatPolicy::default(),
            expiry_warning: Duration::from_secs(60),
            target_connect_timeout: Duration::from_secs(15),
            allow_local_forwarding: false,
            forward_destinations: ForwardDestination::target_loopback(),
            allow_remote_forwarding: false,
            allow_sftp: true,
            allow_env: true,
            idle_timeout: None,
            banner: None,
            shutdown_grace: Duration::from_secs(10),
            max_concurrent_hashing: 4,
            logins: psm_core::directory::LoginThrottle::default(),
        }
    }
}

/// What the gateway works with, chosen at assembly time.
#[derive(Clone)]
pub struct GatewayDeps {
    /// Sessions' lifecycle: the one control-plane role the gateway calls (in-process
    /// engine, HTTP client, or an embedder's own).
    pub control_plane: Arc<dyn SessionLifecycle>,
    /// Users, keys, roles: the directory's lookup role (authentication, grants).
    pub directory: Arc<dyn DirectoryLookup>,
    /// Targets, checkouts, credentials.
    pub targets: Arc<dyn TargetAccess>,
    /// Taps per session (the recorder).
    pub taps: Arc<dyn TapFactory>,
    /// Where live sessions are listed.
    pub registry: SessionRegistry,
}

pub(crate) struct Shared {
    pub(crate) config: SshGatewayConfig,
    pub(crate) deps: GatewayDeps,
    pub(crate) client_config: Arc<russh::client::Config>,
    pub(crate) server_config: Arc<server::Config>,
    pub(crate) sessions: Arc<Semaphore>,
    pub(crate) unauth: Arc<Semaphore>,
    pub(crate) sources: Arc<limits::SourceLimits>,
    pub(crate) hashing: Semaphore,
    pub(crate) shutdown: watch::Sender<bool>,
    active: AtomicUsize,
    idle: Notify,
    /// One-time tokens of in-process connections (the browser terminal), by hash.
    internal_tokens:
        std::sync::Mutex<std::collections::HashMap<[u8; 32], (String, std::time::Instant)>>,
}

impl Shared {
    /// Registers a one-time token for an in-process login of `user` (valid 30 s).
    pub(crate) fn add_internal_token(&self, user: &str, token: &str) {
        let now = std::time::Instant::now();
        let mut t = self
            .internal_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        t.retain(|_, (_, exp)| *exp > now);
        t.insert(
            blake3::hash(token.as_bytes()).into(),
            (user.to_owned(), now + Duration::from_secs(30)),
        );
    }

    /// Consumes a one-time token; true if it was registered for `user` and is still valid.
    pub(crate) fn take_internal_token(&self, user: &str, token: &str) -> bool {
        let found = self
            .internal_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&<[u8; 32]>::from(blake3::hash(token.as_bytes())));
        matches!(found, Some((u, exp)) if u == user && exp > std::time::Instant::now())
    }
}

/// A bound SSH gateway, ready to [`run`](SshGateway::run).
pub struct SshGateway {
    shared: Arc<Shared>,
    listener: TcpListener,
}

impl std::fmt::Debug for SshGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshGateway")
            .field("listen", &self.shared.config.listen)
            .finish_non_exhaustive()
    }
}

/// A new Ed25519 host key.
pub fn generate_host_key() -> PrivateKey {
    // Generating an Ed25519 key from the OS RNG does not fail.
    #[allow(clippy::expect_used)]
    PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519)
        .expect("Ed25519 key generation")
}

/// Loads the host key at `path`, or generates one there (mode 0600, OpenSSH format) when the
/// file does not exist. Returns the key and whether it was created.
pub fn load_or_create_host_key(path: &Path) -> Result<(PrivateKey, bool), ProxyError> {
    if path.exists() {
        let key = russh::keys::load_secret_key(path, None).map_err(|e| {
            ProxyError::Config(format!("host key {} is unreadable: {e}", path.display()))
        })?;
        return Ok((key, false));
    }
    let key = generate_host_key();
    let text = key
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .map_err(|e| ProxyError::Config(format!("cannot encode a host key: {e}")))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ProxyError::Io {
            what: format!("creating {}", dir.display()),
            source,
        })?;
    }
    write_private(path, text.as_bytes())?;
    Ok((key, true))
}

/// The public half of a host key as an OpenSSH line, and its SHA256 fingerprint.
pub fn host_key_public(key: &PrivateKey) -> (String, String) {
    let public = key.public_key();
    (
        public.to_openssh().unwrap_or_default(),
        upstream::fingerprint(public),
    )
}

impl SshGateway {
    /// Binds the listening socket.
    pub async fn bind(config: SshGatewayConfig, deps: GatewayDeps) -> Result<Self, ProxyError> {
        if config.host_keys.is_empty() {
            return Err(ProxyError::Config("no host key".into()));
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ProxyError::Io {
                what: format!("listening on {}", config.listen),
                source,
            })?;
        let server_config = Arc::new(server::Config {
            server_id: SshId::Standard(std::borrow::Cow::Borrowed("SSH-2.0-PSM_Gateway")),
            methods: MethodSet::from(
                &[
                    MethodKind::PublicKey,
                    MethodKind::Password,
                    MethodKind::KeyboardInteractive,
                ][..],
            ),
            auth_rejection_time: Duration::from_millis(500),
            auth_rejection_time_initial: Some(Duration::ZERO),
            keys: config.host_keys.clone(),
            preferred: algorithms::server(),
            window_size: WINDOW,
            channel_buffer_size: CHANNEL_BUFFER,
            max_auth_attempts: 6,
            inactivity_timeout: config.idle_timeout,
            keepalive_interval: Some(Duration::from_secs(60)),
            keepalive_max: 3,
            nodelay: true,
            ..server::Config::default()
        });
        let shared = Arc::new(Shared {
            client_config: upstream::client_config(Some(Duration::from_secs(60))),
            server_config,
            sessions: Arc::new(Semaphore::new(config.max_sessions)),
            unauth: Arc::new(Semaphore::new(config.max_unauthenticated)),
            sources: Arc::new(limits::SourceLimits::new(
                config.max_unauthenticated_per_source,
                Some((
                    config.source_connection_rate,
                    config.source_connection_burst,
                )),
                config.source_penalty,
                config.source_penalty_after,
            )),
            hashing: Semaphore::new(config.max_concurrent_hashing.max(1)),
            shutdown: watch::Sender::new(false),
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            internal_tokens: std::sync::Mutex::new(std::collections::HashMap::new()),
            config,
            deps,
        });
        Ok(Self { shared, listener })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.shared.config.listen)
    }

    /// The registry of live sessions.
    pub fn registry(&self) -> SessionRegistry {
        self.shared.deps.registry.clone()
    }

    /// A handle that opens sessions from inside the gateway through exactly the path of an
    /// SSH login: the browser terminal's opener (`LiveDeps::terminals`).
    pub fn connector(&self) -> Arc<InternalConnector> {
        Arc::new(InternalConnector::new(Arc::downgrade(&self.shared)))
    }

    /// Connections currently open (authenticated or not).
    pub fn connections(&self) -> usize {
        self.shared.active.load(Ordering::Relaxed)
    }

    /// Serves until `shutdown` completes, then ends every session cleanly (users see a
    /// notice, sessions are ended in the control plane, recordings sealed) and waits up to
    /// `shutdown_grace` for them.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ProxyError> {
        let shared = self.shared.clone();
        tokio::pin!(shutdown);
        tracing::info!(listen = %self.local_addr(), "SSH gateway listening");
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => {
                    let (socket, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of descriptors and the like: back off, keep serving.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    // The source's share first: one address holding idle connections must
                    // not use up the gateway-wide count and lock everyone else out.
                    let slot = match shared.sources.try_acquire(peer.ip()) {
                        Ok(slot) => slot,
                        Err(refusal) => {
                            tracing::debug!(peer = %peer, ?refusal,
                                limit = shared.config.max_unauthenticated_per_source,
                                "unauthenticated connections from one source refused; dropping one");
                            drop(socket);
                            continue;
                        }
                    };
                    let Ok(permit) = shared.unauth.clone().try_acquire_owned() else {
                        tracing::warn!(peer = %peer, limit = shared.config.max_unauthenticated,
                            "too many unauthenticated connections; dropping one");
                        drop(socket);
                        continue;
                    };
                    let _ = socket.set_nodelay(true);
                    spawn_serve(&shared, socket, peer, limits::PreAuth::new(permit, Some(slot)), false);
                }
            }
        }
        tracing::info!("SSH gateway shutting down");
        drop(self.listener);
        let _ = shared.shutdown.send(true);
        let deadline = tokio::time::sleep(shared.config.shutdown_grace);
        tokio::pin!(deadline);
        while shared.active.load(Ordering::Relaxed) > 0 {
            let idle = shared.idle.notified();
            tokio::select! {
                _ = idle => {}
                _ = &mut deadline => {
                    tracing::warn!(left = shared.active.load(Ordering::Relaxed),
                        "shutdown grace ran out with connections still open");
                    break;
                }
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        Ok(())
    }
}

/// Serves one connection (from the network, or in-process for the browser terminal),
/// counted among the active ones.
pub(crate) fn spawn_serve<S>(
    shared: &Arc<Shared>,
    socket: S,
    peer: SocketAddr,
    permit: limits::PreAuth,
    internal: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    shared.active.fetch_add(1, Ordering::Relaxed);
    let s = shared.clone();
    tokio::spawn(async move {
        serve(s.clone(), socket, peer, permit, internal).await;
        if s.active.fetch_sub(1, Ordering::Relaxed) == 1 {
            s.idle.notify_waiters();
        }
    });
}

async fn serve<S>(
    shared: Arc<Shared>,
    socket: S,
    peer: SocketAddr,
    permit: limits::PreAuth,
    internal: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn = Arc::new(conn::Conn::new(
        shared.clone(),
        Some(peer),
        permit,
        internal,
    ));
    let handler = handler::Handler::new(conn.clone());
    // The handshake future owns the socket: it is dropped (and the peer sees the close)
    // only after a timeout's strike is counted, so a source that reconnects at once is
    // judged with that strike.
    let handshake = server::run_stream(shared.server_config.clone(), socket, handler);
    tokio::pin!(handshake);
    let started = tokio::select! {
        r = &mut handshake => Some(r),
        () = tokio::time::sleep(shared.config.auth_timeout) => None,
    };
    let mut running = match started {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            tracing::debug!(peer = %peer, error = %e, "SSH handshake failed");
            conn.finish(EndReason::UserDisconnected).await;
            return;
        }
        None => {
            tracing::info!(peer = %peer, "no SSH identification in time; closing");
            conn.preauth_strike();
            conn.release_preauth();
            conn.finish(EndReason::UserDisconnected).await;
            return;
        }
    };
    let handle = running.handle();
    let mut shutdown = shared.shutdown.subscribe();
    let auth_deadline = tokio::time::sleep(shared.config.auth_timeout);
    tokio::pin!(auth_deadline);
    // select! evaluates a branch's condition only when it starts waiting, so the deadline
    // branch re-checks on firing: a user who authenticated meanwhile is not cut off.
    let mut auth_pending = true;
    let control = conn.control.clone();
    let reason = loop {
        tokio::select! {
            r = &mut running => {
                break match r {
                    Ok(()) => EndReason::UserDisconnected,
                    Err(e) => {
                        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                        EndReason::UserDisconnected
                    }
                };
            }
            _ = &mut auth_deadline, if auth_pending => {
                auth_pending = false;
                if conn.authenticated.load(Ordering::SeqCst) {
                    continue;
                }
                tracing::info!(peer = %peer, "authentication timed out; closing");
                conn.preauth_strike();
                conn.release_preauth();
                let _ = handle.disconnect(russh::Disconnect::ByApplication,
                    "authentication timed out".into(), "en".into()).await;
                break EndReason::UserDisconnected;
            }
            changed = shutdown.changed() => {
                if changed.is_ok() && *shutdown.borrow() {
                    control.terminate("the PSM gateway is shutting down");
                }
            }
            reason = control.terminated() => {
                let gateway_down = *shutdown.borrow();
                conn.notice(&format!("session terminated: {reason}")).await;
                let _ = handle.disconnect(russh::Disconnect::ByApplication,
                    format!("PSM: {reason}"), "en".into()).await;
                let _ = tokio::time::timeout(Duration::from_secs(5), &mut running).await;
                break if gateway_down {
                    EndReason::GatewayShutdown
                } else if reason == "the target closed the connection" {
                    EndReason::TargetDisconnected
                } else if reason.contains("expired") {
                    EndReason::CheckoutExpired
                } else {
                    EndReason::Terminated(reason)
                };
            }
        }
    };
    conn.finish(reason).await;
}
