//! Loopback ports for tests and benchmarks: a free one to listen on, and waiting until
//! something listens. One copy, included by every package's tests and benches with
//! `#[path = ".../test-support/ports.rs"] mod ports;`.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// How long [`wait_port`] waits (generous: the machine is shared and may be busy).
pub const PORT_WAIT: Duration = Duration::from_secs(60);

/// The ports [`free_port`] hands out: below Linux's ephemeral range (32768-60999), so that
/// no outgoing connection of a test running beside takes one between the pick and the bind.
const PICK_FROM: std::ops::Range<u16> = 20000..32000;

/// How long a port handed out stays reserved for its test.
const RESERVED_FOR: Duration = Duration::from_secs(600);

/// A port nothing listens on right now, on 127.0.0.1, that no other test of this machine
/// was given in the last ten minutes: each pick leaves a marker file under
/// `TMPDIR/psm-test-ports/`, created exclusively, so tests running beside each other (in
/// other processes too) never get the same port. Ports come from below the ephemeral range
/// (the kernel's own pick, port 0, may meanwhile go to another test's outgoing connection).
pub fn free_port() -> u16 {
    let dir = std::env::temp_dir().join("psm-test-ports");
    let _ = std::fs::create_dir_all(&dir);
    let mut state = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    for _ in 0..2000 {
        // xorshift64: a spread of candidates, different in every process.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let span = u64::from(PICK_FROM.end - PICK_FROM.start);
        let port = PICK_FROM.start + (state % span) as u16;
        if reserve(&dir.join(port.to_string())) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Takes the marker at `path`: creates it, or takes over one older than [`RESERVED_FOR`].
fn reserve(path: &std::path::Path) -> bool {
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .is_ok()
    };
    if create() {
        return true;
    }
    let stale = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > RESERVED_FOR);
    stale && std::fs::remove_file(path).is_ok() && create()
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
