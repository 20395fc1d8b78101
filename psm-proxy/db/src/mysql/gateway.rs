//! The MySQL listener: accepts users' connections, bounds how many log in and run at once,
//! and shuts down gracefully (the PostgreSQL gateway's limits and shared state).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use psm_proxy::ProxyError;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::{MysqlGatewayConfig, MysqlGatewayDeps};
use crate::auth::LoginCheck;
use crate::gateway::Shared;

/// A bound MySQL/MariaDB gateway, ready to [`run`](MysqlGateway::run).
pub struct MysqlGateway {
    shared: Arc<Shared>,
    listener: TcpListener,
}

impl std::fmt::Debug for MysqlGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlGateway")
            .field("listen", &self.shared.config.listen)
            .finish_non_exhaustive()
    }
}

impl MysqlGateway {
    /// Binds the listener.
    pub async fn bind(
        config: MysqlGatewayConfig,
        deps: MysqlGatewayDeps,
    ) -> Result<Self, ProxyError> {
        if config.require_tls && config.tls.is_none() {
            return Err(ProxyError::Config(
                "the MySQL gateway requires TLS of users but has no certificate".into(),
            ));
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
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.shared.config.listen)
    }

    /// Serves until `shutdown` completes; then ends every session (they are recorded and
    /// ended in the control plane) and waits for them, at most the configured grace.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ProxyError> {
        let mut tasks = tokio::task::JoinSet::new();
        let mut connection_id: u32 = 0;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        connection_id = connection_id.wrapping_add(1);
                        tasks.spawn(super::session::serve(
                            self.shared.clone(), tcp, Some(peer), connection_id));
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
