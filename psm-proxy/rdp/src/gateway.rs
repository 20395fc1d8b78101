//! The RDP gateway: a listener for native RDP clients, the session limits, and shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use psm_proxy::SessionRegistry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::RdpGatewayConfig;
use crate::error::RdpError;
use crate::native;
use crate::session::{RdpGatewayDeps, Shared};
use crate::tls::ServerIdentity;

/// A bound RDP gateway, ready to [`run`](RdpGateway::run).
pub struct RdpGateway {
    shared: Arc<Shared>,
    identity: ServerIdentity,
    listener: TcpListener,
}

impl std::fmt::Debug for RdpGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdpGateway")
            .field("listen", &self.shared.config.listen)
            .finish_non_exhaustive()
    }
}

impl RdpGateway {
    /// Binds the listener. Refuses a policy this version cannot enforce: drives and printers
    /// need `RdpGatewayConfig::drive`. (The clipboard is bridged, text only, for native
    /// clients; drives and printers as the gateway-held session drive and printer: see
    /// `ChannelPolicy`.)
    pub async fn bind(
        config: RdpGatewayConfig,
        identity: ServerIdentity,
        deps: RdpGatewayDeps,
    ) -> Result<Self, RdpError> {
        check_policy(&config)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| RdpError::io(format!("listening on {}", config.listen), e))?;
        Ok(Self {
            shared: Shared::new(config, deps),
            identity,
            listener,
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.shared.config.listen)
    }

    /// The live sessions.
    pub fn registry(&self) -> &SessionRegistry {
        &self.shared.deps.registry
    }

    /// Accepts clients until `shutdown` resolves, then terminates every live session and
    /// waits (up to 10 s) for them to end.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), RdpError> {
        tokio::pin!(shutdown);
        let limits = &self.shared.config.limits;
        let sessions = Arc::new(Semaphore::new(limits.max_sessions.max(1)));
        // Connections still in their handshake hold one of these besides a session's: a
        // client that opens connections and never finishes them fills these, not the
        // sessions' places.
        let handshakes = Arc::new(Semaphore::new(limits.max_handshakes.max(1)));
        let mut threads = Vec::new();
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                r = self.listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(handshaking) = handshakes.clone().try_acquire_owned() else {
                tracing::warn!(peer = %peer,
                    "RDP connection refused: too many connections in their handshake");
                drop(stream);
                continue;
            };
            let Ok(permit) = sessions.clone().try_acquire_owned() else {
                tracing::warn!(peer = %peer, "RDP connection refused: gateway at its session limit");
                drop(stream);
                continue;
            };
            let shared = self.shared.clone();
            let tls = self.identity.clone();
            // ironrdp-server's connection future is not Send: each connection gets its own
            // thread with a current-thread runtime (which also isolates sessions' CPU).
            let std_stream = match stream.into_std() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "could not hand the connection to its thread");
                    continue;
                }
            };
            let spawned = std::thread::Builder::new()
                .name(format!("rdp-{peer}"))
                .spawn(move || {
                    let _permit = permit;
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .thread_name(format!("rdp-{peer}"))
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            tracing::error!(error = %e, "no runtime for an RDP connection");
                            return;
                        }
                    };
                    let current: native::SessionCell = Default::default();
                    let cell = current.clone();
                    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let local = tokio::task::LocalSet::new();
                        local.block_on(&rt, async move {
                            let stream = match TcpStream::from_std(std_stream) {
                                Ok(s) => s,
                                Err(e) => {
                                    tracing::warn!(error = %e, "bad connection handle");
                                    return;
                                }
                            };
                            if let Err(e) = native::serve(shared, tls, stream, peer, cell, handshaking).await {
                                tracing::info!(peer = %peer, error = %e, "RDP connection closed with an error");
                            }
                        });
                    }));
                    if served.is_err() {
                        // A bug in the RDP stack must not leave the session Connected: end it
                        // (target closed, recording sealed, EndSession) before the thread goes.
                        tracing::error!(peer = %peer, "the RDP connection handler panicked; ending its session");
                        let s = current.lock().unwrap_or_else(|p| p.into_inner()).take();
                        if let Some(s) = s {
                            rt.block_on(s.close("gateway error: the connection handler panicked"));
                        }
                    }
                    // Let the session's own tasks (recording, EndSession) finish.
                    rt.shutdown_timeout(std::time::Duration::from_secs(10));
                });
            match spawned {
                Ok(h) => threads.push(h),
                Err(e) => tracing::error!(error = %e, "could not start a connection thread"),
            }
            threads.retain(|h| !h.is_finished());
        }
        self.shared
            .deps
            .registry
            .terminate_all("gateway shutting down");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while !threads.iter().all(std::thread::JoinHandle::is_finished)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

use tokio::net::TcpStream;

/// Refuses a policy this version cannot enforce (both the native and the browser gateway).
pub(crate) fn check_policy(config: &RdpGatewayConfig) -> Result<(), RdpError> {
    let c = config.channels;
    match (&config.drive, c.drives || c.printers) {
        (None, true) => {
            return Err(RdpError::Config(
                "drive or printer redirection is allowed but no session drive is configured \
                 (RdpGatewayConfig::drive: a directory for the session drives, where print \
                 jobs are saved too)"
                    .into(),
            ));
        }
        (Some(d), true) => d.validate().map_err(RdpError::Config)?,
        _ => {}
    }
    Ok(())
}
