//! Loopback ports for tests and benchmarks: a free one to listen on, and waiting until
//! something listens. One copy, included by every package's tests and benches with
//! `#[path = ".../test-support/ports.rs"] mod ports;`.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// How long [`wait_port`] waits (generous: the machine is shared and may be busy).
pub const PORT_WAIT: Duration = Duration::from_secs(60);

/// A port nothing listens on right now, on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits until something listens on 127.0.0.1:`port` (at most [`PORT_WAIT`]).
pub fn wait_port(port: u16) {
    wait_addr(SocketAddr::from(([127, 0, 0, 1], port)), PORT_WAIT);
}

/// Waits until something listens on `addr`, at most `within`.
pub fn wait_addr(addr: SocketAddr, within: Duration) {
    let start = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            start.elapsed() < within,
            "nothing listens on {addr} after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}
