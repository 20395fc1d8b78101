//! SIEM throughput: audit events per second from the store (SQLite) to a real rsyslogd,
//! over TCP and TLS, side by side with util-linux `logger` streaming the same CEF lines to
//! the same kind of receiver over TCP (octet counting) in the same run.
//!
//! `cargo bench -p psm-server --bench siem` (`-- --events N`, default 100000). Needs the
//! Debian packages rsyslog, rsyslog-gnutls and bsdutils (`logger`). Results go to
//! docs/benchmarks.md.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use psm_core::store::{SessionStore, SqliteStore};
use psm_core::{AuditAction, AuditEvent, AuditRecord, SessionId, Stage, Timestamp};
use psm_server::siem::{
    MemoryCursorStore, SiemConfig, SiemForwarder, SinkConfig, SyslogConfig, cef_line,
};

#[path = "../../test-support/ports.rs"]
mod ports;
use ports::free_port;

struct Rsyslog {
    child: Child,
    out: PathBuf,
    port: u16,
}

impl Rsyslog {
    fn start(dir: &Path, tls: Option<(&Path, &Path, &Path)>) -> Self {
        let port = free_port();
        let work = dir.join(format!("work-{port}"));
        std::fs::create_dir_all(&work).expect("work dir");
        let out = dir.join(format!("out-{port}.log"));
        let conf = dir.join(format!("rsyslog-{port}.conf"));
        let mut text = format!(
            "global(workDirectory=\"{}\" maxMessageSize=\"64k\"",
            work.display()
        );
        if let Some((ca, cert, key)) = tls {
            text.push_str(&format!(
                " defaultNetstreamDriverCAFile=\"{}\" defaultNetstreamDriverCertFile=\"{}\" defaultNetstreamDriverKeyFile=\"{}\"",
                ca.display(),
                cert.display(),
                key.display()
            ));
        }
        text.push_str(")\n");
        text.push_str(if tls.is_some() {
            "module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\")\n"
        } else {
            "module(load=\"imtcp\")\n"
        });
        text.push_str(&format!(
            "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n\
             template(name=\"m\" type=\"string\" string=\"%msg%\\n\")\n\
             action(type=\"omfile\" file=\"{}\" template=\"m\")\n",
            out.display()
        ));
        std::fs::write(&conf, text).expect("config");
        let child = Command::new("/usr/sbin/rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join(format!("{port}.pid")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rsyslogd (install rsyslog)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "rsyslogd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, out, port }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `n` lines are in `file`.
fn wait_lines(file: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let lines = std::fs::read(file)
            .map(|b| b.iter().filter(|&&c| c == b'\n').count())
            .unwrap_or(0);
        if lines >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{lines} of {n} lines arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn record(i: usize) -> AuditRecord {
    AuditRecord {
        at: Timestamp::from_micros(1_780_000_000_000_000 + i as i64),
        session: Some(SessionId::new()),
        actor: format!("gateway-{}", i % 8),
        action: [
            AuditAction::Opened,
            AuditAction::Claimed,
            AuditAction::Completed,
        ][i % 3],
        from_stage: Some(Stage::Connected),
        to_stage: Some(Stage::Ended),
        detail: format!("fencing token {i}, attempt 1"),
    }
}

/// Events per second from spawning the forwarder to the last line in rsyslog's file.
async fn forward(
    store: Arc<dyn SessionStore>,
    mut sink: SyslogConfig,
    out: PathBuf,
    n: usize,
    checkpoint: u32,
) -> f64 {
    sink.checkpoint_every = checkpoint;
    let config = SiemConfig {
        sinks: vec![SinkConfig::Syslog {
            name: "bench".into(),
            config: sink,
        }],
        batch_size: 1000,
        poll_interval: Duration::from_millis(50),
        ..SiemConfig::default()
    };
    let start = Instant::now();
    let siem =
        SiemForwarder::spawn(store, Arc::new(MemoryCursorStore::new()), config).expect("forwarder");
    tokio::task::spawn_blocking(move || wait_lines(&out, n))
        .await
        .expect("wait");
    let secs = start.elapsed().as_secs_f64();
    siem.shutdown().await;
    n as f64 / secs
}

fn pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf, Vec<u8>) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bench CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("cert");
    let (a, b, c) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&a, ca.pem()).expect("write");
    std::fs::write(&b, cert.pem()).expect("write");
    std::fs::write(&c, key.serialize_pem()).expect("write");
    (a, b, c, ca.pem().into_bytes())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .iter()
        .position(|a| a == "--events")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let checkpoint: u32 = args
        .iter()
        .position(|a| a == "--checkpoint")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(SyslogConfig::tcp("x:1", "x").checkpoint_every);
    let dir = tempfile::tempdir().expect("tempdir");

    let store = Arc::new(
        SqliteStore::open(dir.path().join("psm.db"))
            .await
            .expect("sqlite"),
    );
    let mut lines = String::new();
    for i in 0..n {
        let r = record(i);
        let seq = store.append_audit(&r).await.expect("append");
        lines.push_str(&cef_line(&AuditEvent { seq, record: r }, "bench"));
        lines.push('\n');
    }
    let store: Arc<dyn SessionStore> = store;
    println!(
        "{n} audit events in SQLite; receiver: rsyslogd imtcp writing each message to a file; \
         delivery confirmed every {checkpoint} events"
    );

    let tcp = Rsyslog::start(dir.path(), None);
    let eps_tcp = forward(
        store.clone(),
        SyslogConfig::tcp(format!("127.0.0.1:{}", tcp.port), "bench"),
        tcp.out.clone(),
        n,
        checkpoint,
    )
    .await;
    drop(tcp);

    let (ca, cert, key, ca_pem) = pki(dir.path());
    let tls = Rsyslog::start(dir.path(), Some((&ca, &cert, &key)));
    let eps_tls = forward(
        store.clone(),
        SyslogConfig::tls(format!("127.0.0.1:{}", tls.port), "bench", ca_pem),
        tls.out.clone(),
        n,
        checkpoint,
    )
    .await;
    drop(tls);

    // The peer: logger streaming the same CEF lines from a file.
    let file = dir.path().join("lines.txt");
    std::fs::write(&file, &lines).expect("lines");
    let peer = Rsyslog::start(dir.path(), None);
    let start = Instant::now();
    let status = Command::new("logger")
        .args([
            "--tcp",
            "--octet-count",
            "--rfc5424",
            "-n",
            "127.0.0.1",
            "-P",
        ])
        .arg(peer.port.to_string())
        .arg("-f")
        .arg(&file)
        .status()
        .expect("logger (install bsdutils)");
    assert!(status.success());
    let out = peer.out.clone();
    tokio::task::spawn_blocking(move || wait_lines(&out, n))
        .await
        .expect("wait");
    let eps_logger = n as f64 / start.elapsed().as_secs_f64();

    println!(
        "psm SIEM forwarder, SQLite -> syslog TCP: {eps_tcp:.0} events/s ({:.2}x logger)",
        eps_tcp / eps_logger
    );
    println!(
        "psm SIEM forwarder, SQLite -> syslog TLS: {eps_tls:.0} events/s ({:.2}x logger)",
        eps_tls / eps_logger
    );
    println!("util-linux logger -f, TCP (peer): {eps_logger:.0} lines/s");
}
