//! The HTTP server loop: hyper-util's connection builder with a timer, so a client that
//! never finishes its request headers, or over plain TCP never sends a byte, is disconnected
//! ([`ServerConfig::header_read_timeout`]),
//! and caps on open connections, overall ([`ServerConfig::max_connections`]) and per client
//! address ([`ServerConfig::max_connections_per_peer`]), so idle sockets cannot starve
//! everybody else. `axum::serve` sets no hyper timer and has no cap; this loop otherwise
//! does what it does (HTTP/1 with upgrades for the websockets, HTTP/2, graceful shutdown).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt as _;

use crate::state::{PeerInfo, ServerConfig};

/// The connections one client address holds; the count goes down when the guard drops.
#[derive(Clone, Default)]
struct PerPeer(Arc<Mutex<HashMap<IpAddr, usize>>>);

struct PeerSlot {
    peers: PerPeer,
    ip: IpAddr,
}

impl PerPeer {
    fn take(&self, ip: IpAddr, max: usize) -> Option<PeerSlot> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            peers: self.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut map = self.peers.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// What a connection holds while it is open.
struct Slots {
    _all: OwnedSemaphorePermit,
    _peer: Option<PeerSlot>,
}

/// How long a new connection may stay silent. hyper's header-read timer starts with the
/// first byte of a request, so a plain TCP connection that never sends one is closed here;
/// a TLS connection has already proved itself in its handshake (which has its own timeout).
pub(crate) trait FirstByte {
    /// Whether the peer sent something (false: it closed, or the read failed).
    fn first_byte(&self) -> impl std::future::Future<Output = bool> + Send;
}

impl FirstByte for tokio::net::TcpStream {
    async fn first_byte(&self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.peek(&mut byte).await, Ok(n) if n > 0)
    }
}

impl FirstByte for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    async fn first_byte(&self) -> bool {
        true
    }
}

/// Serves `app` on `listener` until `stop` turns true, then lets open connections finish
/// their requests. `peer` turns the listener's address type into the [`PeerInfo`] handlers
/// read through `ConnectInfo`.
pub(crate) async fn serve<L>(
    mut listener: L,
    app: Router,
    config: Arc<ServerConfig>,
    peer: fn(L::Addr) -> PeerInfo,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    L: Listener,
    L::Io: FirstByte,
{
    let all = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let per_peer = PerPeer::default();
    // Every connection task holds a receiver; shutdown waits until they are all gone.
    let (signal_tx, _) = watch::channel(());
    let (close_tx, close_rx) = watch::channel(());
    loop {
        let (io, addr) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = wait_true(&mut stop) => break,
        };
        let info = peer(addr);
        let ip = info.addr.ip();
        let Ok(permit) = all.clone().try_acquire_owned() else {
            tracing::warn!(peer = %ip, max = config.max_connections,
                "connection refused: the server holds its maximum of open connections");
            continue;
        };
        // Connections from a trusted reverse proxy carry many clients: only the overall
        // cap applies to them.
        let peer_slot = if config.trusted_proxies.contains(&ip) {
            None
        } else {
            match per_peer.take(ip, config.max_connections_per_peer.max(1)) {
                Some(slot) => Some(slot),
                None => {
                    tracing::warn!(peer = %ip, max = config.max_connections_per_peer,
                        "connection refused: this address holds its maximum of open connections");
                    continue;
                }
            }
        };
        let slots = Slots {
            _all: permit,
            _peer: peer_slot,
        };
        let service = app
            .clone()
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(info.clone()));
                req
            });
        let service = TowerToHyperService::new(service);
        let mut signal = signal_tx.subscribe();
        let close_rx = close_rx.clone();
        let header_read_timeout = config.header_read_timeout;
        tokio::spawn(async move {
            let spoke = tokio::select! {
                spoke = tokio::time::timeout(header_read_timeout, io.first_byte()) => {
                    matches!(spoke, Ok(true))
                }
                _ = signal.changed() => false,
            };
            if !spoke {
                tracing::debug!(peer = %ip, "connection closed: nothing sent");
                return;
            }
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            // CONNECT is how HTTP/2 carries websockets.
            builder
                .http2()
                .timer(TokioTimer::new())
                .enable_connect_protocol();
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
            tokio::pin!(conn);
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(peer = %ip, error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = signal.changed() => conn.as_mut().graceful_shutdown(),
                }
            }
            drop(slots);
            drop(close_rx);
        });
    }
    drop(listener);
    let _ = signal_tx.send(());
    drop(close_rx);
    close_tx.closed().await;
    Ok(())
}

/// Returns once `rx` reads true, or its sender is gone (the server's handle was dropped).
async fn wait_true(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            break;
        }
    }
}
