//! The client side toward the target: connect, negotiate TLS, start up as the vaulted
//! account and answer the server's authentication request (SCRAM-SHA-256, MD5 or a
//! cleartext password, the latter only inside TLS) with `postgres-protocol`. The user never
//! sees the credential: what reaches them is the server's greeting after the login.

use std::time::Duration;

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::backend::Message as BackendMessage;
use postgres_protocol::message::frontend;
use psm_proxy::{Authorization, HostKeyCheck, ProxyError, TargetCredential, TargetSecret};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::TargetTls;
use crate::wire::{self, Frame, error_fields};

/// A byte stream either side of the gateway (plain TCP or TLS).
pub trait PgIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> PgIo for T {}

/// The longest message the target may send while logging in.
const MAX_LOGIN_MESSAGE: usize = 64 * 1024;
/// Most messages the target may send between the login and its first ReadyForQuery.
const MAX_GREETING_MESSAGES: usize = 1024;

/// A target logged in to, ready for the user's statements.
pub struct LoggedInTarget {
    /// The connection.
    pub io: Box<dyn PgIo>,
    /// Whether it is encrypted.
    pub tls: bool,
    /// The messages the target sent after `AuthenticationOk` up to and including its first
    /// `ReadyForQuery` (parameter statuses, the backend key), for the user's client.
    pub greeting: Vec<Frame>,
    /// The target's backend key (process id, secret), for cancel requests.
    pub backend_key: Option<(i32, i32)>,
}

/// The target answered the login with an error (a database that does not exist, too many
/// connections): the user's client gets it as the target sent it.
#[derive(Debug)]
pub struct TargetRefused {
    /// The ErrorResponse.
    pub frame: Frame,
}

fn protocol_error(target: &str, reason: impl Into<String>) -> ProxyError {
    ProxyError::Protocol {
        protocol: "PostgreSQL",
        peer: format!("the target {target}"),
        source: reason.into().into(),
    }
}

/// Connects and logs in to the target of `auth` as `credential` with the startup
/// `parameters` the user's client sent (the user name replaced by the vaulted account).
pub async fn login(
    auth: &Authorization,
    credential: &TargetCredential,
    parameters: &[(String, String)],
    tls: TargetTls,
    timeout: Duration,
) -> Result<Result<LoggedInTarget, TargetRefused>, ProxyError> {
    tokio::time::timeout(timeout, login_inner(auth, credential, parameters, tls))
        .await
        .map_err(|_| ProxyError::Timeout(format!("logging in to the target {}", auth.target)))?
}

async fn login_inner(
    auth: &Authorization,
    credential: &TargetCredential,
    parameters: &[(String, String)],
    tls: TargetTls,
) -> Result<Result<LoggedInTarget, TargetRefused>, ProxyError> {
    let target = auth.target.as_str();
    let address = format!("{}:{}", auth.host, auth.port);
    let tcp = TcpStream::connect((auth.host.as_str(), auth.port))
        .await
        .map_err(|e| ProxyError::TargetUnreachable {
            target: target.to_owned(),
            address: address.clone(),
            reason: e.to_string(),
        })?;
    let _ = tcp.set_nodelay(true);
    let pins = match &auth.host_key {
        HostKeyCheck::Pinned(p) => p.clone(),
        _ => Vec::new(),
    };
    // A pinned certificate means TLS is required, whatever the default says.
    let mode = if pins.is_empty() {
        tls
    } else {
        TargetTls::Require
    };
    let (mut io, encrypted): (Box<dyn PgIo>, bool) = match mode {
        TargetTls::Disable => (Box::new(tcp), false),
        TargetTls::Prefer | TargetTls::Require => {
            let mut tcp = tcp;
            let mut req = BytesMut::new();
            frontend::ssl_request(&mut req);
            tcp.write_all(&req)
                .await
                .map_err(|e| protocol_error(target, format!("sending SSLRequest: {e}")))?;
            let mut answer = [0u8; 1];
            tcp.read_exact(&mut answer)
                .await
                .map_err(|e| protocol_error(target, format!("reading the SSL answer: {e}")))?;
            match answer[0] {
                b'S' => {
                    let config = crate::tls::target_client_config(&pins)?;
                    if pins.is_empty() && mode == TargetTls::Require {
                        tracing::warn!(target_name = %target,
                            "the target's certificate is not pinned: accepting it unverified");
                    }
                    let name = rustls::pki_types::ServerName::try_from(auth.host.clone())
                        .map_err(|e| protocol_error(target, format!("server name: {e}")))?;
                    let stream = tokio_rustls::TlsConnector::from(config)
                        .connect(name, tcp)
                        .await
                        .map_err(|e| protocol_error(target, format!("TLS: {e}")))?;
                    (Box::new(stream), true)
                }
                b'N' if mode == TargetTls::Prefer => (Box::new(tcp), false),
                b'N' => {
                    return Err(protocol_error(
                        target,
                        "the target does not offer TLS, which this target requires",
                    ));
                }
                other => {
                    return Err(protocol_error(
                        target,
                        format!("unexpected answer {other:#04x} to SSLRequest"),
                    ));
                }
            }
        }
    };

    let account = credential.account.as_str();
    let password: &[u8] = match &credential.secret {
        TargetSecret::Password(p) => p.as_bytes(),
        TargetSecret::PrivateKey { .. } => {
            return Err(ProxyError::BadCredential {
                target: target.to_owned(),
                reason: "the vaulted credential is a key; PostgreSQL needs a password".into(),
            });
        }
    };
    let mut startup: Vec<(&str, &str)> = vec![("user", account)];
    for (k, v) in parameters {
        if k != "user" {
            startup.push((k.as_str(), v.as_str()));
        }
    }
    let mut out = BytesMut::new();
    frontend::startup_message(startup, &mut out)
        .map_err(|e| protocol_error(target, format!("startup message: {e}")))?;
    send(&mut io, &mut out, target).await?;

    let mut buf = BytesMut::new();
    let mut scram: Option<ScramSha256> = None;
    loop {
        let frame = next(&mut io, &mut buf, target).await?;
        if frame.tag == b'E' {
            return Ok(Err(TargetRefused { frame }));
        }
        let message = parse(&frame, target)?;
        match message {
            BackendMessage::AuthenticationOk => break,
            BackendMessage::AuthenticationCleartextPassword => {
                if !encrypted {
                    return Err(protocol_error(
                        target,
                        "the target asked for a cleartext password over an unencrypted \
                         connection; PSM does not send it (enable TLS on the target, or use \
                         scram-sha-256)",
                    ));
                }
                frontend::password_message(password, &mut out)
                    .map_err(|e| protocol_error(target, e.to_string()))?;
                send(&mut io, &mut out, target).await?;
            }
            BackendMessage::AuthenticationMd5Password(body) => {
                let hash = md5_hash(account.as_bytes(), password, body.salt());
                frontend::password_message(hash.as_bytes(), &mut out)
                    .map_err(|e| protocol_error(target, e.to_string()))?;
                send(&mut io, &mut out, target).await?;
            }
            BackendMessage::AuthenticationSasl(body) => {
                let mut mechanisms = body.mechanisms();
                let mut found = false;
                while let Ok(Some(m)) = mechanisms.next() {
                    found |= m == SCRAM_SHA_256;
                }
                if !found {
                    return Err(protocol_error(
                        target,
                        "the target offers no SASL mechanism PSM speaks (SCRAM-SHA-256)",
                    ));
                }
                let s = ScramSha256::new(password, ChannelBinding::unsupported());
                frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut out)
                    .map_err(|e| protocol_error(target, e.to_string()))?;
                send(&mut io, &mut out, target).await?;
                scram = Some(s);
            }
            BackendMessage::AuthenticationSaslContinue(body) => {
                let s = scram
                    .as_mut()
                    .ok_or_else(|| protocol_error(target, "SASL continue before SASL start"))?;
                s.update(body.data())
                    .map_err(|e| protocol_error(target, format!("SCRAM: {e}")))?;
                frontend::sasl_response(s.message(), &mut out)
                    .map_err(|e| protocol_error(target, e.to_string()))?;
                send(&mut io, &mut out, target).await?;
            }
            BackendMessage::AuthenticationSaslFinal(body) => {
                let s = scram
                    .as_mut()
                    .ok_or_else(|| protocol_error(target, "SASL final before SASL start"))?;
                // The server proves it knew the password too.
                s.finish(body.data())
                    .map_err(|e| protocol_error(target, format!("SCRAM server proof: {e}")))?;
            }
            _ => {
                return Err(protocol_error(
                    target,
                    "the target asked for an authentication method PSM does not speak",
                ));
            }
        }
    }

    let mut greeting = Vec::new();
    let mut backend_key = None;
    loop {
        let frame = next(&mut io, &mut buf, target).await?;
        if frame.tag == b'E' {
            return Ok(Err(TargetRefused { frame }));
        }
        if frame.tag == b'K' {
            let body = frame.body();
            if let (Some(pid), Some(secret)) =
                (wire::be_i32(body), body.get(4..).and_then(wire::be_i32))
            {
                backend_key = Some((pid, secret));
            }
        }
        let ready = frame.tag == b'Z';
        greeting.push(frame);
        if ready {
            break;
        }
        if greeting.len() > MAX_GREETING_MESSAGES {
            return Err(protocol_error(target, "no ReadyForQuery after the login"));
        }
    }
    if !buf.is_empty() {
        return Err(protocol_error(target, "bytes after ReadyForQuery"));
    }
    Ok(Ok(LoggedInTarget {
        io,
        tls: encrypted,
        greeting,
        backend_key,
    }))
}

async fn send(io: &mut Box<dyn PgIo>, out: &mut BytesMut, target: &str) -> Result<(), ProxyError> {
    let r = async {
        io.write_all(out).await?;
        io.flush().await
    }
    .await;
    out.clear();
    r.map_err(|e| protocol_error(target, format!("writing: {e}")))
}

async fn next(
    io: &mut Box<dyn PgIo>,
    buf: &mut BytesMut,
    target: &str,
) -> Result<Frame, ProxyError> {
    match wire::read_message(io, buf, MAX_LOGIN_MESSAGE).await {
        Ok(Some(f)) => Ok(f),
        Ok(None) => Err(protocol_error(target, "the target closed the connection")),
        Err(e) => Err(protocol_error(target, e.to_string())),
    }
}

fn parse(frame: &Frame, target: &str) -> Result<BackendMessage, ProxyError> {
    let mut b = BytesMut::from(&frame.bytes[..]);
    BackendMessage::parse(&mut b)
        .map_err(|e| protocol_error(target, format!("malformed message: {e}")))?
        .ok_or_else(|| protocol_error(target, "a truncated message"))
}

/// The text of a target's ErrorResponse, for the log (severity, code, message).
pub fn describe_error(frame: &Frame) -> String {
    let fields = error_fields(frame.body());
    let get = |c: u8| {
        fields
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    format!("{} {}: {}", get(b'S'), get(b'C'), get(b'M'))
}

/// Sends a cancel request for `key` to the target at `host:port` (a user's Ctrl-C).
pub async fn cancel(host: &str, port: u16, key: (i32, i32)) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    frontend::cancel_request(key.0, key.1, &mut out);
    let mut tcp = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect((host, port)))
        .await
        .map_err(|_| std::io::Error::other("timed out"))??;
    tcp.write_all(&out).await?;
    tcp.shutdown().await
}
