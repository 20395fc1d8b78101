//! RFC 5424 syslog over TCP or TLS with octet-counting framing (RFC 6587 section 3.4.1,
//! the framing RFC 5425 prescribes for TLS), one CEF line per message.
//!
//! TCP syslog has no acknowledgement, so a write that succeeded says nothing about what the
//! receiver read. The sink therefore *confirms* delivery by closing the connection
//! gracefully: it half-closes (TLS `close_notify` then FIN) and waits for the receiver to
//! close its side, which a receiver does only after reading everything before the FIN.
//! It does so when the log goes quiet and at least every
//! [`SyslogConfig::checkpoint_every`] events; what was sent since the last confirmation is
//! sent again after any failure (at least once, never lost silently).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use psm_core::{AuditAction, AuditEvent};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::cef::{cef_line, severity};
use super::error::SiemError;
use super::forwarder::Sink;

/// The syslog facility (RFC 5424 section 6.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Facility {
    /// 4: security/authorization.
    Auth,
    /// 10: security/authorization (private).
    AuthPriv,
    /// 13: log audit.
    LogAudit,
    /// 16 to 23: local0 to local7 (the number is 0 to 7).
    Local(u8),
}

impl Facility {
    /// The facility's number.
    pub fn code(self) -> u8 {
        match self {
            Facility::Auth => 4,
            Facility::AuthPriv => 10,
            Facility::LogAudit => 13,
            Facility::Local(n) => 16 + n.min(7),
        }
    }
}

/// TLS toward the receiver.
#[derive(Clone)]
pub struct SyslogTls {
    /// PEM certificates the receiver's certificate must chain to.
    pub ca_pem: Vec<u8>,
    /// The name to verify in the receiver's certificate (default: the host of `address`).
    pub server_name: Option<String>,
    /// A client certificate chain and key (PEM), for receivers that demand one.
    pub client_cert: Option<(Vec<u8>, psm_core::vault::Secret<Vec<u8>>)>,
}

impl std::fmt::Debug for SyslogTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogTls")
            .field("server_name", &self.server_name)
            .field("client_cert", &self.client_cert.is_some())
            .finish_non_exhaustive()
    }
}

/// A syslog receiver.
#[derive(Clone, Debug)]
pub struct SyslogConfig {
    /// `host:port` of the receiver.
    pub address: String,
    /// TLS settings; `None` is plain TCP.
    pub tls: Option<SyslogTls>,
    /// The HOSTNAME field: this node's name.
    pub hostname: String,
    /// The APP-NAME field (default `psm`).
    pub app_name: String,
    /// The facility (default `authpriv`).
    pub facility: Facility,
    /// The SD-ID of the structured data element carrying `seq` and `session`
    /// (default `psm@32473`, 32473 being the enterprise number reserved for examples).
    pub sd_id: String,
    /// Confirm delivery (graceful close, see the module docs) at least this often.
    pub checkpoint_every: u32,
    /// Limit for connecting (TCP and TLS handshake).
    pub connect_timeout: Duration,
    /// Limit for one write and for a confirmation.
    pub io_timeout: Duration,
}

impl SyslogConfig {
    /// A plain-TCP receiver at `address` (`host:port`) with the defaults.
    pub fn tcp(address: impl Into<String>, hostname: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            tls: None,
            hostname: hostname.into(),
            app_name: "psm".into(),
            facility: Facility::AuthPriv,
            sd_id: "psm@32473".into(),
            checkpoint_every: 1000,
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(30),
        }
    }

    /// A TLS receiver at `address`, verified against `ca_pem`.
    pub fn tls(address: impl Into<String>, hostname: impl Into<String>, ca_pem: Vec<u8>) -> Self {
        Self {
            tls: Some(SyslogTls {
                ca_pem,
                server_name: None,
                client_cert: None,
            }),
            ..Self::tcp(address, hostname)
        }
    }
}

/// The syslog severity of an audit action (from its CEF severity).
fn syslog_severity(action: AuditAction) -> u8 {
    match severity(action) {
        0..=3 => 6, // informational
        4..=6 => 5, // notice
        7..=8 => 4, // warning
        _ => 2,     // critical
    }
}

/// Keeps the printable US-ASCII an RFC 5424 header field allows, at most `max` of it;
/// `-` for nothing.
fn header_field(s: &str, max: usize) -> String {
    let v: String = s
        .chars()
        .filter(|c| ('!'..='~').contains(c))
        .take(max)
        .collect();
    if v.is_empty() { "-".into() } else { v }
}

/// Escapes an SD-PARAM value (`"`, `\` and `]`).
fn sd_value(s: &str, out: &mut String) {
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// The RFC 5424 message of one event, CEF as its MSG.
///
/// ```
/// use psm_core::{AuditAction, AuditEvent, AuditRecord, Timestamp};
/// use psm_server::siem::{SyslogConfig, syslog_message};
/// let e = AuditEvent { seq: 3, record: AuditRecord {
///     at: Timestamp::from_micros(1_700_000_000_123_456), session: None, actor: "gw-1".into(),
///     action: AuditAction::Opened, from_stage: None, to_stage: None, detail: String::new(),
/// }};
/// let m = syslog_message(&e, &SyslogConfig::tcp("127.0.0.1:514", "node-1"));
/// assert!(m.starts_with("<86>1 2023-11-14T22:13:20.123456Z node-1 psm - opened [psm@32473 seq=\"3\"] CEF:0|"));
/// ```
pub fn syslog_message(event: &AuditEvent, cfg: &SyslogConfig) -> String {
    let r = &event.record;
    let pri = u16::from(cfg.facility.code()) * 8 + u16::from(syslog_severity(r.action));
    let mut m = format!(
        "<{pri}>1 {} {} {} - {} [{}",
        r.at,
        header_field(&cfg.hostname, 255),
        header_field(&cfg.app_name, 48),
        header_field(r.action.as_str(), 32),
        header_field(&cfg.sd_id, 32),
    );
    m.push_str(" seq=\"");
    sd_value(&event.seq.to_string(), &mut m);
    m.push('"');
    if let Some(s) = r.session {
        m.push_str(" session=\"");
        sd_value(&s.to_string(), &mut m);
        m.push('"');
    }
    m.push_str("] ");
    m.push_str(&cef_line(event, &cfg.hostname));
    m
}

/// Appends the octet-counted frame of `msg` (`LEN SP MSG`).
pub fn frame(msg: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(msg.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(msg.as_bytes());
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A syslog sink (TCP or TLS).
pub struct SyslogSink {
    name: String,
    cfg: SyslogConfig,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    conn: Option<Box<dyn Stream>>,
    unconfirmed: u32,
    last_sent: Option<i64>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for SyslogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogSink")
            .field("name", &self.name)
            .field("address", &self.cfg.address)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl SyslogSink {
    /// A sink named `name` (the cursor's name) for `cfg`. TLS material is checked here.
    pub fn new(name: impl Into<String>, cfg: SyslogConfig) -> Result<Self, SiemError> {
        let name = name.into();
        let tls = match &cfg.tls {
            None => None,
            Some(t) => Some(tls_connector(&cfg.address, t)?),
        };
        Ok(Self {
            name,
            cfg,
            tls,
            conn: None,
            unconfirmed: 0,
            last_sent: None,
            buf: Vec::new(),
        })
    }

    fn io(&self, step: &'static str) -> impl FnOnce(std::io::Error) -> SiemError + '_ {
        move |source| SiemError::Io {
            sink: self.name.clone(),
            step,
            source,
        }
    }

    fn timeout(&self, step: &'static str, after: Duration) -> SiemError {
        SiemError::Timeout {
            sink: self.name.clone(),
            step,
            after,
        }
    }

    async fn connect(&mut self) -> Result<Box<dyn Stream>, SiemError> {
        let limit = self.cfg.connect_timeout;
        let tcp = tokio::time::timeout(limit, TcpStream::connect(self.cfg.address.as_str()))
            .await
            .map_err(|_| self.timeout("connect", limit))?
            .map_err(self.io("connect"))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some((connector, server_name)) => {
                let tls = tokio::time::timeout(limit, connector.connect(server_name.clone(), tcp))
                    .await
                    .map_err(|_| self.timeout("TLS handshake", limit))?
                    .map_err(self.io("TLS handshake"))?;
                Ok(Box::new(tls))
            }
        }
    }

    /// Closes gracefully and waits for the receiver to close: everything sent is read.
    async fn confirm(&mut self) -> Result<Option<i64>, SiemError> {
        let Some(mut conn) = self.conn.take() else {
            return Ok(None);
        };
        let limit = self.cfg.io_timeout;
        let step = async {
            conn.shutdown().await?;
            let mut scratch = [0u8; 512];
            // A syslog receiver sends nothing; read until it closes. Over TLS, receivers
            // (rsyslog's gtls among them) often close without a close_notify of their own:
            // that still means they read up to ours, which came after every message.
            loop {
                match conn.read(&mut scratch).await {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        };
        tokio::time::timeout(limit, step)
            .await
            .map_err(|_| self.timeout("confirming delivery (graceful close)", limit))?
            .map_err(self.io("confirming delivery (graceful close)"))?;
        self.unconfirmed = 0;
        Ok(self.last_sent)
    }
}

#[async_trait]
impl Sink for SyslogSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        if self.tls.is_some() {
            "syslog-tls"
        } else {
            "syslog-tcp"
        }
    }

    async fn send(&mut self, batch: &[AuditEvent]) -> Result<Option<i64>, SiemError> {
        let Some(last) = batch.last() else {
            return Ok(None);
        };
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        for e in batch {
            frame(&syslog_message(e, &self.cfg), &mut buf);
        }
        let result = async {
            if self.conn.is_none() {
                self.conn = Some(self.connect().await?);
            }
            let limit = self.cfg.io_timeout;
            let Some(conn) = self.conn.as_mut() else {
                return Ok(());
            };
            let write = async {
                conn.write_all(&buf).await?;
                conn.flush().await
            };
            match tokio::time::timeout(limit, write).await {
                Ok(r) => r.map_err(self.io("write")),
                Err(_) => Err(self.timeout("write", limit)),
            }
        }
        .await;
        self.buf = buf;
        if let Err(e) = result {
            self.conn = None;
            self.unconfirmed = 0;
            return Err(e);
        }
        self.last_sent = Some(last.seq);
        self.unconfirmed = self
            .unconfirmed
            .saturating_add(u32::try_from(batch.len()).unwrap_or(u32::MAX));
        if self.unconfirmed >= self.cfg.checkpoint_every.max(1) {
            return self.confirm().await;
        }
        Ok(None)
    }

    async fn flush(&mut self) -> Result<Option<i64>, SiemError> {
        if self.unconfirmed == 0 {
            return Ok(None);
        }
        let r = self.confirm().await;
        if r.is_err() {
            self.conn = None;
            self.unconfirmed = 0;
        }
        r
    }

    fn reset(&mut self) {
        self.conn = None;
        self.unconfirmed = 0;
    }
}

fn tls_connector(
    address: &str,
    t: &SyslogTls,
) -> Result<(tokio_rustls::TlsConnector, ServerName<'static>), SiemError> {
    let bad = |what: String| SiemError::Config(format!("syslog TLS for {address}: {what}"));
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&t.ca_pem) {
        let c = c.map_err(|e| bad(format!("CA PEM: {e}")))?;
        roots
            .add(c)
            .map_err(|e| bad(format!("CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad("no CA certificate in the PEM".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots);
    let config = match &t.client_cert {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let chain = CertificateDer::pem_slice_iter(chain)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("client certificate PEM: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(key.expose_secret())
                .map_err(|_| bad("client key PEM is unreadable".into()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad(format!("client certificate: {e}")))?
        }
    };
    let host = match &t.server_name {
        Some(n) => n.clone(),
        None => host_of(address).to_owned(),
    };
    let server_name = ServerName::try_from(host.clone())
        .map_err(|e| bad(format!("server name {host:?}: {e}")))?;
    Ok((
        tokio_rustls::TlsConnector::from(Arc::new(config)),
        server_name,
    ))
}

/// The host part of `host:port` or `[v6]:port`.
fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    address.rsplit_once(':').map_or(address, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use psm_core::{AuditRecord, SessionId, Stage, Timestamp};

    #[test]
    fn message_shape() {
        let id = SessionId::new();
        let e = AuditEvent {
            seq: 42,
            record: AuditRecord {
                at: Timestamp::from_micros(1_700_000_000_000_001),
                session: Some(id),
                actor: "watchdog".into(),
                action: AuditAction::Watchdog,
                from_stage: Some(Stage::Connected),
                to_stage: Some(Stage::Ended),
                detail: "silent for 90s".into(),
            },
        };
        let mut cfg = SyslogConfig::tcp("127.0.0.1:1", "my host\n");
        cfg.facility = Facility::Local(4);
        let m = syslog_message(&e, &cfg);
        // local4 (20) * 8 + notice (5)
        assert!(
            m.starts_with(&format!(
                "<165>1 2023-11-14T22:13:20.000001Z myhost psm - watchdog [psm@32473 seq=\"42\" session=\"{id}\"] CEF:0|PSM|PSM|"
            )),
            "{m}"
        );
        assert!(
            m.contains(
                "cs2Label=fromStage cs2=Connected cs3Label=toStage cs3=Ended msg=silent for 90s"
            ),
            "{m}"
        );
        let mut f = Vec::new();
        frame(&m, &mut f);
        assert_eq!(f, format!("{} {m}", m.len()).into_bytes());
    }

    #[test]
    fn hosts() {
        assert_eq!(host_of("syslog.example:6514"), "syslog.example");
        assert_eq!(host_of("[::1]:6514"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
    }
}
