//! The SIEM forwarder against a real Debian rsyslogd on loopback: imtcp (plain TCP) and
//! imtcp with the gtls driver (TLS, with a CA and server certificate made here by rcgen),
//! each started by the test with a private configuration writing what it receives to a
//! file, and stopped by PID. Checks the exact CEF arrives, rsyslog parses the RFC 5424
//! header, a restart neither loses nor repeats, and a receiver that is down or killed
//! loses nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use psm_core::store::{MemoryStore, SessionStore};
use psm_core::{AuditAction, AuditEvent, AuditRecord, SessionId, Stage, Timestamp};
use psm_server::siem::{
    CursorStore, FileCursorStore, MemoryCursorStore, SiemConfig, SiemForwarder, SinkConfig,
    SyslogConfig, cef_line,
};

#[path = "../../test-support/ports.rs"]
mod ports;
use ports::free_port;

const HOST: &str = "psm-test-node";

/// What rsyslog writes per message: its parse of the RFC 5424 header, then the raw MSG.
const TEMPLATE: &str = "%pri%|%protocol-version%|%timereported:::date-rfc3339%|%hostname%|%app-name%|%procid%|%msgid%|%structured-data%|%msg%\\n";

struct Rsyslog {
    child: Child,
    out: PathBuf,
    port: u16,
}

impl Rsyslog {
    /// Starts rsyslogd on `port`, TLS if `tls` holds (CA, certificate, key) file paths.
    fn start(dir: &Path, port: u16, tls: Option<(&Path, &Path, &Path)>) -> Self {
        let bin = Path::new("/usr/sbin/rsyslogd");
        assert!(
            bin.exists(),
            "rsyslogd is missing: install the Debian package `rsyslog`"
        );
        if tls.is_some() {
            assert!(
                Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so").exists(),
                "rsyslog's TLS driver is missing: install the Debian package `rsyslog-gnutls`"
            );
        }
        let work = dir.join(format!("work-{port}"));
        std::fs::create_dir_all(&work).unwrap();
        let out = dir.join("received.log");
        let conf = dir.join(format!("rsyslog-{port}.conf"));
        let pid = dir.join(format!("rsyslog-{port}.pid"));
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
        if tls.is_some() {
            text.push_str("module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\")\n");
        } else {
            text.push_str("module(load=\"imtcp\")\n");
        }
        text.push_str(&format!(
            "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n\
             template(name=\"parsed\" type=\"string\" string=\"{TEMPLATE}\")\n\
             action(type=\"omfile\" file=\"{}\" template=\"parsed\" flushOnTXEnd=\"on\" asyncWriting=\"off\")\n",
            out.display()
        ));
        std::fs::write(&conf, text).unwrap();
        let child = Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(&pid)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rsyslogd");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, out, port }
    }

    /// Kills rsyslogd by PID, at once.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Received lines, each split into the template's fields.
    fn lines(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .map(|l| l.splitn(9, '|').map(str::to_owned).collect())
            .collect()
    }

    /// Waits until `n` lines arrived (or fails, showing what did).
    fn wait_for(&self, n: usize) -> Vec<Vec<String>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let lines = self.lines();
            if lines.len() >= n {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} messages arrived: {:?}",
                lines.len(),
                lines
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Audit records exercising every field and every CEF escape.
fn records(n: usize) -> Vec<AuditRecord> {
    let details = [
        String::new(),
        "plain reason".to_owned(),
        r"pipe | backslash \ equals = done".to_owned(),
        "two\nlines\r\nand a CR\r end".to_owned(),
        "tab\there, unicode é, quote \" and ] bracket".to_owned(),
        "x".repeat(5000),
    ];
    let actions = [
        AuditAction::Opened,
        AuditAction::Refused,
        AuditAction::TerminateRequested,
        AuditAction::Watchdog,
        AuditAction::Other,
    ];
    (0..n)
        .map(|i| AuditRecord {
            at: Timestamp::from_micros(1_780_000_000_000_000 + i as i64 * 1_234_567),
            session: (i % 3 != 0).then(SessionId::new),
            actor: if i % 4 == 0 {
                "alice|ops=x".into()
            } else {
                format!("gateway-{i}")
            },
            action: actions[i % actions.len()],
            from_stage: (i % 2 == 0).then_some(Stage::Connected),
            to_stage: (i % 2 == 0).then_some(Stage::Ended),
            detail: details[i % details.len()].clone(),
        })
        .collect()
}

async fn store_with(n: usize) -> (Arc<MemoryStore>, Vec<AuditEvent>) {
    let store = Arc::new(MemoryStore::new());
    append(&store, n).await;
    let events = all_events(&store).await;
    (store, events)
}

async fn append(store: &MemoryStore, n: usize) {
    for r in records(n) {
        store.append_audit(&r).await.unwrap();
    }
}

async fn all_events(store: &MemoryStore) -> Vec<AuditEvent> {
    store
        .audit_events(&psm_core::store::AuditQuery::default())
        .await
        .unwrap()
}

fn config(sink: SyslogConfig) -> SiemConfig {
    SiemConfig {
        sinks: vec![SinkConfig::Syslog {
            name: "rsyslog".into(),
            config: sink,
        }],
        poll_interval: Duration::from_millis(100),
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_millis(500),
        ..SiemConfig::default()
    }
}

/// Every received line is the exact message of its event, and rsyslog parsed the header.
fn assert_exact(lines: &[Vec<String>], events: &[AuditEvent]) {
    let by_seq: BTreeMap<i64, &AuditEvent> = events.iter().map(|e| (e.seq, e)).collect();
    for l in lines {
        assert_eq!(l.len(), 9, "{l:?}");
        let sd = &l[7];
        let seq: i64 = sd
            .split("seq=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no seq in {sd:?}"));
        let e = by_seq[&seq];
        assert_eq!(l[1], "1", "RFC 5424 version");
        assert_eq!(l[3], HOST);
        assert_eq!(l[4], "psm");
        assert_eq!(l[5], "-");
        assert_eq!(l[6], e.record.action.as_str());
        if let Some(s) = e.record.session {
            assert!(sd.contains(&format!("session=\"{s}\"")), "{sd}");
        }
        // The timestamp as rsyslog read it.
        let got: Timestamp = serde_json::from_str(&format!("\"{}\"", l[2]))
            .unwrap_or_else(|_| panic!("timestamp {:?}", l[2]));
        assert_eq!(
            got.as_micros() / 1_000_000,
            e.record.at.as_micros() / 1_000_000
        );
        // The message: exactly the CEF line (rsyslog keeps MSG as sent).
        assert_eq!(l[8].trim_start(), cef_line(e, HOST), "seq {seq}");
        // And its fields read back as a CEF parser would.
        let (header, ext) = split_cef(&l[8]);
        assert_eq!(
            &header[..4],
            ["CEF:0", "PSM", "PSM", env!("CARGO_PKG_VERSION")]
        );
        assert_eq!(header[4], e.record.action.as_str());
        assert_eq!(ext["externalId"], seq.to_string());
        assert_eq!(ext["rt"], (e.record.at.as_micros() / 1000).to_string());
        assert_eq!(ext["suser"], e.record.actor);
        let detail = e.record.detail.replace("\r\n", "\n").replace('\t', " ");
        if detail.is_empty() {
            assert!(!ext.contains_key("msg"));
        } else if detail.chars().count() > psm_server::siem::MAX_DETAIL {
            assert!(ext["msg"].ends_with("..."));
        } else {
            assert_eq!(ext["msg"], detail);
        }
        if let (Some(from), Some(to)) = (e.record.from_stage, e.record.to_stage) {
            assert_eq!(ext["cs2"], from.as_str());
            assert_eq!(ext["cs3"], to.as_str());
        }
    }
}

/// A small CEF parser: header fields split at unescaped `|`, extension `key=value` pairs
/// split at unescaped `=` with keys as the last word before each.
fn split_cef(line: &str) -> (Vec<String>, BTreeMap<String, String>) {
    let line = line.trim_start();
    let mut header = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars();
    while header.len() < 7 {
        match chars.next() {
            Some('\\') => {
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            Some('|') => header.push(std::mem::take(&mut cur)),
            Some(c) => cur.push(c),
            None => break,
        }
    }
    let ext: String = chars.collect();
    // Positions of unescaped '='.
    let bytes: Vec<char> = ext.chars().collect();
    let mut eqs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            '\\' => i += 1,
            '=' => eqs.push(i),
            _ => {}
        }
        i += 1;
    }
    let mut map = BTreeMap::new();
    for (k, &eq) in eqs.iter().enumerate() {
        let key_start = bytes[..eq]
            .iter()
            .rposition(|&c| c == ' ')
            .map_or(0, |p| p + 1);
        let key: String = bytes[key_start..eq].iter().collect();
        let value_end = match eqs.get(k + 1) {
            Some(&next) => bytes[..next]
                .iter()
                .rposition(|&c| c == ' ')
                .unwrap_or(next),
            None => bytes.len(),
        };
        let raw: String = bytes[eq + 1..value_end].iter().collect();
        let mut v = String::new();
        let mut it = raw.chars();
        while let Some(c) = it.next() {
            if c == '\\' {
                match it.next() {
                    Some('n') => v.push('\n'),
                    Some('r') => v.push('\r'),
                    Some(o) => v.push(o),
                    None => {}
                }
            } else {
                v.push(c);
            }
        }
        map.insert(key, v);
    }
    (header, map)
}

fn seqs(lines: &[Vec<String>]) -> Vec<i64> {
    lines
        .iter()
        .filter_map(|l| {
            l.get(7)?
                .split("seq=\"")
                .nth(1)?
                .split('"')
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_exact_cef_and_restart_without_loss_or_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let rsyslog = Rsyslog::start(dir.path(), free_port(), None);
    let (store, events) = store_with(40).await;
    let cursors = Arc::new(FileCursorStore::new(dir.path().join("cursors")));

    let sink = SyslogConfig::tcp(format!("127.0.0.1:{}", rsyslog.port), HOST);
    let siem = SiemForwarder::spawn(store.clone(), cursors.clone(), config(sink.clone())).unwrap();
    let lines = rsyslog.wait_for(40);
    assert_exact(&lines, &events);
    assert_eq!(
        seqs(&lines),
        events.iter().map(|e| e.seq).collect::<Vec<_>>()
    );

    // The quiet log made the sink confirm (graceful close) and save its cursor.
    let deadline = Instant::now() + Duration::from_secs(20);
    while cursors.load("rsyslog").await.unwrap() != Some(events[39].seq) {
        assert!(
            Instant::now() < deadline,
            "cursor never saved: {:?}",
            siem.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    siem.shutdown().await;

    // Restart: only the new events go out.
    append(&store, 25).await;
    let events = all_events(&store).await;
    let siem = SiemForwarder::spawn(store.clone(), cursors.clone(), config(sink)).unwrap();
    let lines = rsyslog.wait_for(65);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lines = if rsyslog.lines().len() > lines.len() {
        rsyslog.lines()
    } else {
        lines
    };
    assert_exact(&lines, &events);
    assert_eq!(
        seqs(&lines),
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        "a restart must neither lose nor repeat"
    );
    siem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_then_killed_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (store, _) = store_with(30).await;
    let mut sink = SyslogConfig::tcp(format!("127.0.0.1:{port}"), HOST);
    sink.checkpoint_every = 10;
    sink.connect_timeout = Duration::from_secs(2);
    let siem = SiemForwarder::spawn(
        store.clone(),
        Arc::new(MemoryCursorStore::new()),
        config(sink),
    )
    .unwrap();

    // Nobody listens yet: the sink fails and retries, the control plane is unaffected.
    let deadline = Instant::now() + Duration::from_secs(20);
    while siem.status()[0].failures < 2 {
        assert!(Instant::now() < deadline, "{:?}", siem.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        siem.status()[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("connect")
    );
    let started = Instant::now();
    append(&store, 10).await;
    assert!(started.elapsed() < Duration::from_secs(5));

    let mut rsyslog = Rsyslog::start(dir.path(), port, None);
    rsyslog.wait_for(40);

    // Killed without warning, then back: everything not confirmed is sent again.
    rsyslog.kill();
    append(&store, 20).await;
    siem.wake();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let rsyslog = Rsyslog::start(dir.path(), port, None);
    let all = all_events(&store).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got: std::collections::BTreeSet<i64> = seqs(&rsyslog.lines()).into_iter().collect();
        if all.iter().all(|e| got.contains(&e.seq)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "missing seqs: {:?}; status {:?}",
            all.iter()
                .map(|e| e.seq)
                .filter(|s| !got.contains(s))
                .collect::<Vec<_>>(),
            siem.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_exact(&rsyslog.lines(), &all);
    siem.shutdown().await;
}

struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    ca_pem: Vec<u8>,
}

fn pki(dir: &Path) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "PSM SIEM test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca).unwrap();
    let p = Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        ca_pem: ca.pem().into_bytes(),
    };
    std::fs::write(&p.ca, ca.pem()).unwrap();
    std::fs::write(&p.cert, cert.pem()).unwrap();
    std::fs::write(&p.key, key.serialize_pem()).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_exact_cef() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let rsyslog = Rsyslog::start(
        dir.path(),
        free_port(),
        Some((&pki.ca, &pki.cert, &pki.key)),
    );
    let (store, events) = store_with(30).await;
    let mut sink = SyslogConfig::tls(
        format!("127.0.0.1:{}", rsyslog.port),
        HOST,
        pki.ca_pem.clone(),
    );
    sink.checkpoint_every = 7;
    let cursors = Arc::new(MemoryCursorStore::new());
    let siem = SiemForwarder::spawn(store.clone(), cursors.clone(), config(sink)).unwrap();
    let lines = rsyslog.wait_for(30);
    assert_exact(&lines, &events);
    let deadline = Instant::now() + Duration::from_secs(20);
    while cursors.load("rsyslog").await.unwrap() != Some(events[29].seq) {
        assert!(
            Instant::now() < deadline,
            "cursor never confirmed: {:?}",
            siem.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(siem.status()[0].kind, "syslog-tls");
    siem.shutdown().await;
    assert_eq!(
        seqs(&rsyslog.lines()).len(),
        30,
        "no duplicates on a healthy link"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_refuses_an_unknown_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let pki_real = pki(dir.path());
    let other = tempfile::tempdir().unwrap();
    let pki_other = pki(other.path());
    let rsyslog = Rsyslog::start(
        dir.path(),
        free_port(),
        Some((&pki_real.ca, &pki_real.cert, &pki_real.key)),
    );
    let (store, _) = store_with(5).await;
    // Trusting another CA: the handshake must fail and nothing may be delivered.
    let sink = SyslogConfig::tls(
        format!("127.0.0.1:{}", rsyslog.port),
        HOST,
        pki_other.ca_pem.clone(),
    );
    let siem =
        SiemForwarder::spawn(store, Arc::new(MemoryCursorStore::new()), config(sink)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while siem.status()[0].failures < 2 {
        assert!(Instant::now() < deadline, "{:?}", siem.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = siem.status();
    assert!(
        status[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("TLS handshake"),
        "{status:?}"
    );
    assert_eq!(status[0].confirmed, 0);
    siem.shutdown().await;
    assert!(rsyslog.lines().is_empty());
}
