//! A fault-injecting loopback TCP proxy for HTTP/1.1 services (moto). At each new request on
//! a connection it rolls the dice: pass, answer 503, reset the connection, stall (never
//! answer), or truncate the response.

#![allow(clippy::unwrap_used, dead_code)]
// A zero linger (an RST on close) never blocks: the socket is closed without lingering data.
#![allow(deprecated)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Error503,
    Reset,
    Stall,
    Truncate,
}

#[derive(Default, Debug)]
pub struct Stats {
    pub requests: AtomicU64,
    pub error503: AtomicU64,
    pub reset: AtomicU64,
    pub stall: AtomicU64,
    pub truncate: AtomicU64,
}

impl Stats {
    pub fn injected(&self) -> [u64; 4] {
        [
            self.error503.load(Ordering::Relaxed),
            self.reset.load(Ordering::Relaxed),
            self.stall.load(Ordering::Relaxed),
            self.truncate.load(Ordering::Relaxed),
        ]
    }
}

pub struct FaultProxy {
    pub port: u16,
    ratio: Arc<Mutex<f64>>,
    pub stats: Arc<Stats>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to 127.0.0.1:`upstream`.
    pub async fn start(upstream: u16, seed: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let ratio = Arc::new(Mutex::new(0.0));
        let stats = Arc::new(Stats::default());
        let rng = Arc::new(Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)));
        let (r, s) = (ratio.clone(), stats.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (r, s, rng) = (r.clone(), s.clone(), rng.clone());
                tokio::spawn(async move {
                    let _ = connection(client, upstream, r, s, rng).await;
                });
            }
        });
        Self {
            port,
            ratio,
            stats,
            task,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The share of requests that get a fault (0 clears every fault).
    pub fn set_fault_ratio(&self, ratio: f64) {
        *self.ratio.lock().unwrap() = ratio;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn roll(ratio: &Mutex<f64>, rng: &Mutex<rand::rngs::StdRng>) -> Option<Fault> {
    let ratio = *ratio.lock().unwrap();
    let mut rng = rng.lock().unwrap();
    if rng.random::<f64>() >= ratio {
        return None;
    }
    Some(match rng.random_range(0..4) {
        0 => Fault::Error503,
        1 => Fault::Reset,
        2 => Fault::Stall,
        _ => Fault::Truncate,
    })
}

async fn connection(
    mut client: TcpStream,
    upstream: u16,
    ratio: Arc<Mutex<f64>>,
    stats: Arc<Stats>,
    rng: Arc<Mutex<rand::rngs::StdRng>>,
) -> std::io::Result<()> {
    let mut server = TcpStream::connect(("127.0.0.1", upstream)).await?;
    let mut new_request = true;
    let mut truncate = false;
    let mut cbuf = vec![0u8; 64 * 1024];
    let mut sbuf = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            n = client.read(&mut cbuf) => {
                let n = n?;
                if n == 0 { return Ok(()); }
                if new_request {
                    stats.requests.fetch_add(1, Ordering::Relaxed);
                    match roll(&ratio, &rng) {
                        None => {}
                        Some(Fault::Error503) => {
                            stats.error503.fetch_add(1, Ordering::Relaxed);
                            client.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await?;
                            return Ok(());
                        }
                        Some(Fault::Reset) => {
                            stats.reset.fetch_add(1, Ordering::Relaxed);
                            client.set_linger(Some(Duration::ZERO))?;
                            return Ok(());
                        }
                        Some(Fault::Stall) => {
                            stats.stall.fetch_add(1, Ordering::Relaxed);
                            // Hold the connection without answering until the client gives up.
                            let mut sink = vec![0u8; 64 * 1024];
                            loop {
                                match tokio::time::timeout(Duration::from_secs(60), client.read(&mut sink)).await {
                                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Ok(()),
                                    Ok(Ok(_)) => {}
                                }
                            }
                        }
                        Some(Fault::Truncate) => {
                            stats.truncate.fetch_add(1, Ordering::Relaxed);
                            truncate = true;
                        }
                    }
                    new_request = false;
                }
                server.write_all(&cbuf[..n]).await?;
            }
            n = server.read(&mut sbuf) => {
                let n = n?;
                if n == 0 { return Ok(()); }
                if truncate {
                    let cut = (n / 2).max(1);
                    client.write_all(&sbuf[..cut]).await?;
                    client.set_linger(Some(Duration::ZERO))?;
                    return Ok(());
                }
                client.write_all(&sbuf[..n]).await?;
                new_request = true;
            }
        }
    }
}
