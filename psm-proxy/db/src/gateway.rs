//! The listener: accepts users' connections, bounds how many log in and run at once, and
//! shuts down gracefully.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use psm_core::SessionLifecycle;
use psm_core::directory::DirectoryLookup;
use psm_proxy::{ProxyError, SessionRegistry, TapFactory, TargetAccess};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::auth::LoginCheck;
use crate::config::PostgresGatewayConfig;

/// What the gateway works with, chosen at assembly time (the same seams as the SSH and RDP
/// gateways).
#[derive(Clone)]
pub struct PostgresGatewayDeps {
    /// Sessions' lifecycle in the control plane.
    pub control_plane: Arc<dyn SessionLifecycle>,
    /// Users, roles, grants.
    pub directory: Arc<dyn DirectoryLookup>,
    /// Targets, checkouts, credentials (`ControlPlaneTargets::for_protocol(Protocol::Postgres)`
    /// in production).
    pub targets: Arc<dyn TargetAccess>,
    /// Taps per session: the recorder, the policy.
    pub taps: Arc<dyn TapFactory>,
    /// Where live sessions are listed (share the SSH gateway's so one live listener serves
    /// both).
    pub registry: SessionRegistry,
}

pub(crate) struct Shared {
    pub(crate) config: PostgresGatewayConfig,
    pub(crate) deps: PostgresGatewayDeps,
    pub(crate) login: LoginCheck,
    pub(crate) sessions: Arc<Semaphore>,
    pub(crate) unauth: Arc<Semaphore>,
    /// Target backend keys of live sessions, for users' cancel requests.
    pub(crate) cancel_keys: Mutex<HashMap<(i32, i32), (String, u16)>>,
}

/// The listener both database gateways stand on: TLS required or not, the limits on logins
/// and sessions, the accept loop and the graceful shutdown. Each protocol's gateway is this
/// plus the function that serves one connection.
pub(crate) struct DbListener {
    shared: Arc<Shared>,
    listener: TcpListener,
}

impl DbListener {
    /// Binds `config.listen` for the gateway of `protocol` (named in errors).
    pub(crate) async fn bind(
        config: PostgresGatewayConfig,
        deps: PostgresGatewayDeps,
        protocol: &str,
    ) -> Result<Self, ProxyError> {
        if config.require_tls && config.tls.is_none() {
            return Err(ProxyError::Config(format!(
                "the {protocol} gateway requires TLS of users but has no certificate"
            )));
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ProxyError::Io {
                what: format!("binding {}", config.listen),
                source,
            })?;
        let login = LoginCheck::new(
            deps.directory.clone(),
            config.max_concurrent_hashing,
            config.logins.clone(),
        );
        let shared = Arc::new(Shared {
            sessions: Arc::new(Semaphore::new(config.max_sessions.max(1))),
            unauth: Arc::new(Semaphore::new(config.max_unauthenticated.max(1))),
            cancel_keys: Mutex::new(HashMap::new()),
            login,
            config,
            deps,
        });
        Ok(Self { shared, listener })
    }

    /// Where it listens.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.shared.config.listen)
    }

    /// Serves each accepted connection with `serve` until `shutdown` completes; then ends
    /// every session (they are recorded and ended in the control plane) and waits for them,
    /// at most the configured grace.
    pub(crate) async fn run<F, Fut>(
        self,
        shutdown: impl Future<Output = ()>,
        mut serve: F,
    ) -> Result<(), ProxyError>
    where
        F: FnMut(Arc<Shared>, TcpStream, SocketAddr) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut tasks = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        tasks.spawn(serve(self.shared.clone(), tcp, peer));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        drop(self.listener);
        self.shared
            .deps
            .registry
            .terminate_all("the gateway is shutting down");
        let grace = self.shared.config.shutdown_grace;
        let _ =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        tasks.abort_all();
        Ok(())
    }
}

/// A bound PostgreSQL gateway, ready to [`run`](PostgresGateway::run).
pub struct PostgresGateway {
    listener: DbListener,
}

impl std::fmt::Debug for PostgresGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresGateway")
            .field("listen", &self.listener.local_addr())
            .finish_non_exhaustive()
    }
}

impl PostgresGateway {
    /// Binds the listener.
    pub async fn bind(
        config: PostgresGatewayConfig,
        deps: PostgresGatewayDeps,
    ) -> Result<Self, ProxyError> {
        let listener = DbListener::bind(config, deps, "PostgreSQL").await?;
        Ok(Self { listener })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes; then ends every session (they are recorded and
    /// ended in the control plane) and waits for them, at most the configured grace.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ProxyError> {
        self.listener
            .run(shutdown, |shared, tcp, peer| {
                crate::session::serve(shared, tcp, Some(peer))
            })
            .await
    }
}
