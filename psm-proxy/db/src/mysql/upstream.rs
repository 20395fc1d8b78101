//! The client side toward the target: connect, read its greeting, TLS when it offers it
//! (or a pinned certificate requires it), and log in as the vaulted account with
//! `mysql_common`'s auth plugins (`mysql_native_password`, `caching_sha2_password`,
//! `sha256_password`, and `mysql_clear_password` inside TLS only), following auth switches.
//! The user never sees the credential: they get an OK from the gateway once the target
//! accepted it.

use std::time::Duration;

use bytes::BytesMut;
use mysql_common::auth::plugins::{AuthProc, ChallengeResponsePlugin, Context, Response};
use mysql_common::constants::{CapabilityFlags, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthPlugin, AuthSwitchRequest, HandshakeResponse, SslRequest};
use mysql_common::proto::{MyDeserialize, MySerialize};
use psm_proxy::{Authorization, HostKeyCheck, ProxyError, TargetCredential, TargetSecret};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::packet::{self, MAX_LOGIN_PACKET, Packet};
use crate::config::TargetTls;
use crate::upstream::PgIo;

/// Most auth exchanges (switches, more data) before the gateway gives up on a login.
const MAX_AUTH_ROUNDS: usize = 8;

/// The largest packet the gateway tells the target it accepts.
const MAX_PACKET: u32 = 1 << 30;

/// A target logged in to, ready for the user's commands.
pub struct MysqlTarget {
    /// The connection.
    pub io: Box<dyn PgIo>,
    /// Whether it is encrypted.
    pub tls: bool,
    /// The status flags of the target's OK (autocommit, ...), for the user's OK.
    pub status: u16,
    /// The target's version, as its greeting said.
    pub version: String,
}

/// The target refused the login: its error, for the user's client (the account name is in
/// it, the password never).
#[derive(Debug)]
pub struct MysqlRefused {
    /// MySQL error code.
    pub code: u16,
    /// SQLSTATE.
    pub state: String,
    /// The message.
    pub message: String,
}

fn protocol_error(target: &str, reason: impl Into<String>) -> ProxyError {
    ProxyError::Protocol {
        protocol: "MySQL",
        peer: format!("the target {target}"),
        source: reason.into().into(),
    }
}

struct AuthCtx<'a> {
    pass: &'a [u8],
    tls: bool,
    scramble: &'a [u8],
}

impl Context for AuthCtx<'_> {
    fn pass(&self) -> &[u8] {
        self.pass
    }
    fn is_ipc_transport(&self) -> bool {
        false
    }
    fn is_tls_transport(&self) -> bool {
        self.tls
    }
    fn scramble(&self) -> &[u8] {
        self.scramble
    }
    fn server_key_pem(&self) -> Option<&[u8]> {
        None
    }
}

/// What the user's client chose, passed on to the target.
#[derive(Clone, Copy, Debug)]
pub struct ClientChoice {
    /// Capabilities (within what the gateway offers).
    pub capabilities: CapabilityFlags,
    /// Collation.
    pub collation: u8,
}

/// Connects and logs in to the target of `auth` as `credential`, in `database`.
pub async fn login(
    auth: &Authorization,
    credential: &TargetCredential,
    database: Option<&str>,
    client: ClientChoice,
    tls: TargetTls,
    timeout: Duration,
) -> Result<Result<MysqlTarget, MysqlRefused>, ProxyError> {
    tokio::time::timeout(
        timeout,
        login_inner(auth, credential, database, client, tls),
    )
    .await
    .map_err(|_| ProxyError::Timeout(format!("logging in to the target {}", auth.target)))?
}

async fn read(
    io: &mut (impl tokio::io::AsyncRead + Unpin + ?Sized),
    buf: &mut BytesMut,
    target: &str,
) -> Result<Packet, ProxyError> {
    match packet::read_logical(io, buf, MAX_LOGIN_PACKET).await {
        Ok(Some(mut parts)) if parts.len() == 1 => Ok(parts.remove(0)),
        Ok(Some(_)) => Err(protocol_error(target, "a login packet too long")),
        Ok(None) => Err(protocol_error(target, "the target closed the connection")),
        Err(e) => Err(protocol_error(target, e.to_string())),
    }
}

async fn send(
    io: &mut (impl AsyncWriteExt + Unpin + ?Sized),
    seq: u8,
    payload: &[u8],
    target: &str,
) -> Result<(), ProxyError> {
    let mut out = BytesMut::new();
    packet::encode(seq, payload, &mut out);
    let r = async {
        io.write_all(&out).await?;
        io.flush().await
    }
    .await;
    r.map_err(|e| protocol_error(target, format!("writing: {e}")))
}

fn refused(payload: &[u8], target: &str) -> Result<MysqlRefused, ProxyError> {
    let (code, state, message) = packet::parse_err(payload)
        .ok_or_else(|| protocol_error(target, "a malformed ERR packet"))?;
    Ok(MysqlRefused {
        code,
        state,
        message,
    })
}

async fn login_inner(
    auth: &Authorization,
    credential: &TargetCredential,
    database: Option<&str>,
    client: ClientChoice,
    tls: TargetTls,
) -> Result<Result<MysqlTarget, MysqlRefused>, ProxyError> {
    let target = auth.target.as_str();
    let address = format!("{}:{}", auth.host, auth.port);
    let mut tcp = TcpStream::connect((auth.host.as_str(), auth.port))
        .await
        .map_err(|e| ProxyError::TargetUnreachable {
            target: target.to_owned(),
            address: address.clone(),
            reason: e.to_string(),
        })?;
    let _ = tcp.set_nodelay(true);
    let password: &[u8] = match &credential.secret {
        TargetSecret::Password(p) => p.as_bytes(),
        TargetSecret::PrivateKey { .. } => {
            return Err(ProxyError::BadCredential {
                target: target.to_owned(),
                reason: "the vaulted credential is a key; MySQL needs a password".into(),
            });
        }
    };
    let mut buf = BytesMut::new();
    let hello = read(&mut tcp, &mut buf, target).await?;
    if hello.payload().first() == Some(&0xff) {
        return Ok(Err(refused(hello.payload(), target)?));
    }
    let greeting = super::packet::parse_greeting(hello.payload())
        .map_err(|e| protocol_error(target, format!("malformed greeting: {e}")))?;
    let server_caps = greeting.capabilities();
    if !server_caps.contains(CapabilityFlags::CLIENT_PROTOCOL_41) {
        return Err(protocol_error(
            target,
            "the target does not speak the 4.1 protocol",
        ));
    }
    let version = greeting.server_version_str().into_owned();
    let server_version = greeting
        .server_version_parsed()
        .or_else(|| greeting.maria_db_server_version_parsed())
        .unwrap_or((8, 0, 0));
    let pins = match &auth.host_key {
        HostKeyCheck::Pinned(p) => p.clone(),
        _ => Vec::new(),
    };
    let mode = if pins.is_empty() {
        tls
    } else {
        TargetTls::Require
    };
    let offers_tls = server_caps.contains(CapabilityFlags::CLIENT_SSL);
    let mut caps = (client.capabilities & server_caps)
        | (server_caps
            & (CapabilityFlags::CLIENT_PROTOCOL_41
                | CapabilityFlags::CLIENT_SECURE_CONNECTION
                | CapabilityFlags::CLIENT_PLUGIN_AUTH
                | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA));
    let lost = client.capabilities & !server_caps & !CapabilityFlags::CLIENT_CONNECT_WITH_DB;
    if !lost.is_empty() {
        tracing::debug!(target_name = %target, ?lost, "capabilities the target lacks");
    }
    let mut seq = hello.seq.wrapping_add(1);
    let (mut io, encrypted): (Box<dyn PgIo>, bool) = match (mode, offers_tls) {
        (TargetTls::Disable, _) | (TargetTls::Prefer, false) => (Box::new(tcp), false),
        (TargetTls::Require, false) => {
            return Err(protocol_error(
                target,
                "the target does not offer TLS, which this target requires",
            ));
        }
        (TargetTls::Prefer | TargetTls::Require, true) => {
            caps |= CapabilityFlags::CLIENT_SSL;
            let mut req = Vec::new();
            SslRequest::new(caps, MAX_PACKET, client.collation).serialize(&mut req);
            send(&mut tcp, seq, &req, target).await?;
            seq = seq.wrapping_add(1);
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
    };
    let mut nonce = greeting.nonce();
    let mut plugin = greeting
        .auth_plugin()
        .map(AuthPlugin::into_owned)
        .unwrap_or(AuthPlugin::MysqlNativePassword);
    let mut proc = start(&plugin, encrypted, target)?;
    let first = step(&mut proc, password, encrypted, &nonce, &nonce, target)?;
    let response = HandshakeResponse::new(
        Some(first.data().unwrap_or_default().to_vec()),
        server_version,
        Some(credential.account.as_bytes()),
        database.map(str::as_bytes),
        Some(plugin.clone()),
        caps,
        None,
        MAX_PACKET,
    );
    let mut out = Vec::new();
    response.serialize(&mut out);
    // The client's collation (the constructor picks one from the server version).
    if let Some(c) = out.get_mut(8) {
        *c = client.collation;
    }
    send(&mut io, seq, &out, target).await?;
    for _ in 0..MAX_AUTH_ROUNDS {
        let p = read(&mut io, &mut buf, target).await?;
        seq = p.seq.wrapping_add(1);
        let payload = p.payload();
        match payload.first() {
            Some(0x00) => {
                let status = payload
                    .get(1..)
                    .and_then(skip_lenenc)
                    .and_then(skip_lenenc)
                    .and_then(|r| r.get(..2))
                    .map(|s| u16::from_le_bytes([s[0], s[1]]))
                    .unwrap_or(StatusFlags::SERVER_STATUS_AUTOCOMMIT.bits());
                if !buf.is_empty() {
                    return Err(protocol_error(target, "bytes after the login's OK"));
                }
                return Ok(Ok(MysqlTarget {
                    io,
                    tls: encrypted,
                    status,
                    version,
                }));
            }
            Some(0xff) => return Ok(Err(refused(payload, target)?)),
            Some(0xfe) => {
                let switch = AuthSwitchRequest::deserialize((), &mut ParseBuf(payload))
                    .map_err(|e| protocol_error(target, format!("malformed auth switch: {e}")))?;
                plugin = switch.auth_plugin().into_owned();
                nonce = switch.plugin_data().to_vec();
                proc = start(&plugin, encrypted, target)?;
                let r = step(&mut proc, password, encrypted, &nonce, &nonce, target)?;
                if let Some(data) = r.data() {
                    send(&mut io, seq, data, target).await?;
                }
            }
            Some(0x01) => {
                let data = payload.get(1..).unwrap_or_default();
                let r = step(&mut proc, password, encrypted, &nonce, data, target)?;
                if let Some(data) = r.data() {
                    send(&mut io, seq, data, target).await?;
                }
            }
            _ => {
                return Err(protocol_error(
                    target,
                    "an unexpected packet while logging in",
                ));
            }
        }
    }
    Err(protocol_error(target, "too many authentication exchanges"))
}

fn start(plugin: &AuthPlugin<'_>, tls: bool, target: &str) -> Result<AuthProc, ProxyError> {
    if *plugin == AuthPlugin::MysqlClearPassword && !tls {
        return Err(protocol_error(
            target,
            "the target asked for a cleartext password over an unencrypted connection; PSM \
             does not send it (enable TLS on the target)",
        ));
    }
    plugin.init().map_err(|e| {
        protocol_error(
            target,
            format!("the target asked for an authentication method PSM does not speak: {e}"),
        )
    })
}

fn step(
    proc: &mut AuthProc,
    password: &[u8],
    tls: bool,
    scramble: &[u8],
    challenge: &[u8],
    target: &str,
) -> Result<Response, ProxyError> {
    let ctx = AuthCtx {
        pass: password,
        tls,
        scramble,
    };
    proc.run(ctx, challenge)
        .map_err(|e| protocol_error(target, format!("authentication: {e}")))
}

fn skip_lenenc(b: &[u8]) -> Option<&[u8]> {
    packet::lenenc_int(b).map(|(_, rest)| rest)
}
