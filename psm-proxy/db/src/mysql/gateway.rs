//! The MySQL listener: the PostgreSQL gateway's listener (limits, accept loop, graceful
//! shutdown), serving each connection with the MySQL protocol.

use std::future::Future;
use std::net::SocketAddr;

use psm_proxy::ProxyError;

use super::{MysqlGatewayConfig, MysqlGatewayDeps};
use crate::gateway::DbListener;

/// A bound MySQL/MariaDB gateway, ready to [`run`](MysqlGateway::run).
pub struct MysqlGateway {
    listener: DbListener,
}

impl std::fmt::Debug for MysqlGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlGateway")
            .field("listen", &self.listener.local_addr())
            .finish_non_exhaustive()
    }
}

impl MysqlGateway {
    /// Binds the listener.
    pub async fn bind(
        config: MysqlGatewayConfig,
        deps: MysqlGatewayDeps,
    ) -> Result<Self, ProxyError> {
        let listener = DbListener::bind(config, deps, "MySQL").await?;
        Ok(Self { listener })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes; then ends every session (they are recorded and
    /// ended in the control plane) and waits for them, at most the configured grace.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ProxyError> {
        // Each connection gets the next id (the handshake's connection id).
        let mut connection_id: u32 = 0;
        self.listener
            .run(shutdown, move |shared, tcp, peer| {
                connection_id = connection_id.wrapping_add(1);
                super::session::serve(shared, tcp, Some(peer), connection_id)
            })
            .await
    }
}
