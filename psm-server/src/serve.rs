//! The HTTP server loop: hyper-util's connection builder with a timer, so a client that
//! never finishes its request headers, or never sends a byte, is disconnected
//! ([`ServerConfig::header_read_timeout`]), and caps on open connections, overall
//! ([`ServerConfig::max_connections`]) and per client address ([`ServerConfig::max_connections_per_peer`]), so idle sockets cannot starve
//! everybody else. `axum::serve` sets no hyper timer and has no cap; this loop otherwise
//! does what it does (HTTP/1 with upgrades for the websockets, HTTP/2 over TLS by ALPN,
//! graceful shutdown). Unlike it, plain-TCP HTTP/2 (h2c prior knowledge) is not spoken.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
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

/// What the loop needs to know of a connection before hyper reads it.
///
/// hyper's header-read timer does not run on a connection that has sent nothing yet, and
/// hyper-util's auto builder waits without a deadline for the bytes that tell HTTP/1 from
/// HTTP/2. So the loop waits for the first byte itself, with the header-read timeout, and
/// picks the protocol without reading: over TLS the one ALPN chose, over plain TCP HTTP/1
/// (browsers and PSM's clients speak HTTP/2 only over TLS).
pub(crate) trait Accepted {
    /// Whether the peer sent something (false: it closed, or the read failed).
    fn first_byte(&mut self) -> impl std::future::Future<Output = bool> + Send;

    /// Whether to speak HTTP/2 (else HTTP/1).
    fn http2(&self) -> bool;
}

async fn peek_one(tcp: &tokio::net::TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(tcp.peek(&mut byte).await, Ok(n) if n > 0)
}

impl Accepted for tokio::net::TcpStream {
    async fn first_byte(&mut self) -> bool {
        peek_one(self).await
    }

    fn http2(&self) -> bool {
        false
    }
}

impl Accepted for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    async fn first_byte(&mut self) -> bool {
        // The request may have come with the end of the handshake and already sit
        // decrypted in rustls; otherwise the next bytes show on the socket.
        let buffered = self
            .get_mut()
            .1
            .process_new_packets()
            .is_ok_and(|state| state.plaintext_bytes_to_read() > 0);
        buffered || peek_one(self.get_ref().0).await
    }

    fn http2(&self) -> bool {
        self.get_ref().1.alpn_protocol() == Some(b"h2".as_slice())
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
    L::Io: Accepted,
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
        let service =
            app.clone()
                .map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(info.clone()));
                    req
                });
        let service = TowerToHyperService::new(service);
        let mut signal = signal_tx.subscribe();
        let close_rx = close_rx.clone();
        let header_read_timeout = config.header_read_timeout;
        tokio::spawn(async move {
            let mut io = io;
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
            let mut builder = if io.http2() {
                Builder::new(TokioExecutor::new()).http2_only()
            } else {
                Builder::new(TokioExecutor::new()).http1_only()
            };
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
