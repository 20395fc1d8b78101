//! The user's side of the login: the gateway's greeting, TLS when the client asks for it
//! (required by default), the client's handshake response naming `USER+TARGET`, and the
//! user's PSM password.
//!
//! A MySQL client normally proves its password with a scramble (`mysql_native_password`,
//! `caching_sha2_password`) the gateway cannot check against PSM's argon2 hashes, so the
//! gateway asks for the password itself with an auth switch to `mysql_clear_password` —
//! inside TLS only, unless the operator turned `require_tls` off. Clients that refuse the
//! cleartext plugin cannot log in (`docs/database.md` lists the options per client).
//! Packets are `mysql_common`'s: [`HandshakePacket`], [`SslRequest`],
//! [`HandshakeResponse`], [`AuthSwitchRequest`].

use bytes::BytesMut;
use mysql_common::constants::{CapabilityFlags, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    AuthPlugin, AuthSwitchRequest, HandshakePacket, HandshakeResponse, SslRequest,
};
use mysql_common::proto::{MyDeserialize, MySerialize};
use psm_core::vault::Secret;
use psm_proxy::LoginName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::packet::{self, MAX_LOGIN_PACKET, Packet};
use crate::upstream::PgIo;

/// The server version the gateway announces before it knows the target (the target's own
/// is what `SELECT VERSION()` answers once logged in).
pub const GATEWAY_VERSION: &str = "8.0.0-PSM";

/// utf8mb4_general_ci, the collation the greeting announces.
const DEFAULT_COLLATION: u8 = 45;

/// What the gateway offers to clients (and passes on to targets, as far as they support
/// it): the 4.1 protocol with plugin auth, multi-statements and results, local files.
/// Not offered, so the relay reads one framing only: compression, `DEPRECATE_EOF`, session
/// tracking, query attributes, optional metadata, MariaDB's extended capabilities.
pub fn offered() -> CapabilityFlags {
    CapabilityFlags::CLIENT_LONG_PASSWORD
        | CapabilityFlags::CLIENT_FOUND_ROWS
        | CapabilityFlags::CLIENT_LONG_FLAG
        | CapabilityFlags::CLIENT_CONNECT_WITH_DB
        | CapabilityFlags::CLIENT_NO_SCHEMA
        | CapabilityFlags::CLIENT_ODBC
        | CapabilityFlags::CLIENT_LOCAL_FILES
        | CapabilityFlags::CLIENT_IGNORE_SPACE
        | CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_INTERACTIVE
        | CapabilityFlags::CLIENT_IGNORE_SIGPIPE
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_RESERVED
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_MULTI_STATEMENTS
        | CapabilityFlags::CLIENT_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PS_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
}

/// A client that logged in to the gateway (its PSM password not checked yet).
pub(crate) struct UserHello {
    pub(crate) io: Box<dyn PgIo>,
    pub(crate) login: LoginName,
    pub(crate) password: Secret<String>,
    pub(crate) database: Option<String>,
    /// The capabilities the client chose (within [`offered`]).
    pub(crate) capabilities: CapabilityFlags,
    pub(crate) collation: u8,
    /// The sequence id of the gateway's next packet to the client.
    pub(crate) next_seq: u8,
}

/// Why a client's login stopped before the password check (told to the client as an ERR
/// packet where it can still read one).
pub(crate) struct HelloFailed {
    pub(crate) io: Option<(Box<dyn PgIo>, u8)>,
    pub(crate) code: u16,
    pub(crate) message: String,
}

fn nonce() -> [u8; 20] {
    use std::hash::{BuildHasher, Hasher};
    // Not a secret: the gateway never checks a scramble made with it (it asks for the
    // password instead); clients only need bytes that are not zero.
    let mut out = [0u8; 20];
    for chunk in out.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0);
        for (o, b) in chunk.iter_mut().zip(h.finish().to_le_bytes()) {
            *o = (b % 94) + 33;
        }
    }
    out
}

/// The greeting the gateway sends first (sequence id 0).
pub fn greeting(connection_id: u32, tls: bool) -> Vec<u8> {
    let n = nonce();
    let mut scramble_1 = [0u8; 8];
    scramble_1.copy_from_slice(&n[..8]);
    let mut scramble_2 = n[8..].to_vec();
    scramble_2.push(0);
    let mut caps = offered();
    if tls {
        caps |= CapabilityFlags::CLIENT_SSL;
    }
    let hello = HandshakePacket::new(
        10,
        GATEWAY_VERSION.as_bytes(),
        connection_id,
        scramble_1,
        Some(scramble_2),
        caps,
        DEFAULT_COLLATION,
        StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        Some(AuthPlugin::MysqlNativePassword.as_bytes()),
    );
    let mut out = Vec::new();
    hello.serialize(&mut out);
    out
}

async fn send(io: &mut (impl AsyncWriteExt + Unpin + ?Sized), seq: u8, payload: &[u8]) -> bool {
    let mut out = BytesMut::new();
    packet::encode(seq, payload, &mut out);
    io.write_all(&out).await.is_ok() && io.flush().await.is_ok()
}

/// A login packet that could not be read: whether to tell the client (bad bytes), and why.
struct Unreadable(bool, String);

async fn read_one<R: tokio::io::AsyncRead + Unpin + ?Sized>(
    io: &mut R,
    buf: &mut BytesMut,
) -> Result<Packet, Unreadable> {
    match packet::read_logical(io, buf, MAX_LOGIN_PACKET).await {
        Ok(Some(mut parts)) if parts.len() == 1 => Ok(parts.remove(0)),
        Ok(Some(_)) => Err(Unreadable(true, "a login packet too long".into())),
        Ok(None) => Err(Unreadable(false, "the client closed the connection".into())),
        Err(e @ crate::wire::FrameError::TooLong { .. }) => {
            Err(Unreadable(true, format!("PSM: {e}")))
        }
        Err(e) => Err(Unreadable(false, e.to_string())),
    }
}

/// An unreadable login packet: the client hears why when its bytes were at fault.
fn unreadable(io: Box<dyn PgIo>, seq: u8, e: Unreadable) -> HelloFailed {
    match e {
        // ER_NET_PACKET_TOO_LARGE
        Unreadable(true, m) => failed(io, seq, 1153, m),
        Unreadable(false, m) => dropped(m),
    }
}

fn failed(io: Box<dyn PgIo>, seq: u8, code: u16, message: impl Into<String>) -> HelloFailed {
    HelloFailed {
        io: Some((io, seq)),
        code,
        message: message.into(),
    }
}

fn dropped(message: impl Into<String>) -> HelloFailed {
    HelloFailed {
        io: None,
        code: 0,
        message: message.into(),
    }
}

/// The client's side of the login up to its password.
pub(crate) async fn accept(
    mut tcp: TcpStream,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    require_tls: bool,
    connection_id: u32,
) -> Result<UserHello, HelloFailed> {
    if !send(&mut tcp, 0, &greeting(connection_id, tls.is_some())).await {
        return Err(dropped("the client went away before the greeting"));
    }
    let mut buf = BytesMut::new();
    let mut first = match read_one(&mut tcp, &mut buf).await {
        Ok(p) => p,
        Err(e) => return Err(unreadable(Box::new(tcp), 1, e)),
    };
    let mut encrypted = false;
    let mut io: Box<dyn PgIo>;
    let ssl_asked = first.payload().len() == 32
        && SslRequest::deserialize((), &mut ParseBuf(first.payload()))
            .is_ok_and(|r| r.capabilities().contains(CapabilityFlags::CLIENT_SSL));
    if ssl_asked {
        let Some(config) = tls else {
            return Err(failed(
                Box::new(tcp),
                first.seq.wrapping_add(1),
                2026,
                "PSM: no TLS here",
            ));
        };
        // The server does not answer an SSL request: a client sends its TLS ClientHello right
        // after it, and both may arrive in one read. What came after the request is the
        // start of the TLS handshake.
        let early = buf.split().freeze();
        let tcp = Prefixed { early, inner: tcp };
        match tokio_rustls::TlsAcceptor::from(config).accept(tcp).await {
            Ok(stream) => io = Box::new(stream),
            Err(e) => return Err(dropped(format!("TLS handshake: {e}"))),
        }
        encrypted = true;
        first = match read_one(&mut io, &mut buf).await {
            Ok(p) => p,
            Err(e) => return Err(unreadable(io, 3, e)),
        };
    } else {
        io = Box::new(tcp);
    }
    let seq = first.seq;
    // Clients set flags the greeting did not offer (libmariadb sets CONNECT_ATTRS, then
    // sends no attributes to a server without it): what follows is laid out by the flags
    // both sides have.
    let mut bytes = first.payload().to_vec();
    if let Some(flags) = bytes.get_mut(..4) {
        let mut agreed = u32::from_le_bytes([flags[0], flags[1], flags[2], flags[3]]);
        agreed &= (offered() | CapabilityFlags::CLIENT_SSL).bits();
        flags.copy_from_slice(&agreed.to_le_bytes());
    }
    let response = match HandshakeResponse::deserialize((), &mut ParseBuf(&bytes)) {
        Ok(r) => r,
        Err(e) => {
            return Err(failed(
                io,
                seq.wrapping_add(1),
                1043,
                format!("PSM: malformed handshake response: {e}"),
            ));
        }
    };
    let capabilities = response.capabilities() & offered();
    if !capabilities.contains(CapabilityFlags::CLIENT_PROTOCOL_41) {
        return Err(failed(
            io,
            seq.wrapping_add(1),
            1043,
            "PSM: the client does not speak the 4.1 protocol",
        ));
    }
    if !encrypted && require_tls {
        return Err(failed(
            io,
            seq.wrapping_add(1),
            3159,
            "PSM requires TLS: connect with --ssl (mariadb, mysql --ssl-mode=REQUIRED, a \
             driver's ssl option)",
        ));
    }
    let user = String::from_utf8_lossy(response.user()).into_owned();
    let login = match psm_proxy::parse_login(&user) {
        Ok(l) => l,
        Err(e) => {
            return Err(failed(
                io,
                seq.wrapping_add(1),
                1045,
                format!("PSM: {e} (log in as USER+TARGET)"),
            ));
        }
    };
    let database = response
        .db_name()
        .filter(|d| !d.is_empty())
        .map(|d| String::from_utf8_lossy(d).into_owned());
    let collation = response.collation();
    let (password, next_seq) = if response.auth_plugin() == Some(&AuthPlugin::MysqlClearPassword) {
        (cleartext(response.scramble_buf()), seq.wrapping_add(1))
    } else {
        let switch = AuthSwitchRequest::new(AuthPlugin::MysqlClearPassword.as_bytes(), &b""[..]);
        let mut out = Vec::new();
        switch.serialize(&mut out);
        if !send(&mut io, seq.wrapping_add(1), &out).await {
            return Err(dropped("the client went away at the auth switch"));
        }
        let answer = match read_one(&mut io, &mut buf).await {
            Ok(p) => p,
            Err(e) => return Err(unreadable(io, seq.wrapping_add(3), e)),
        };
        (cleartext(answer.payload()), answer.seq.wrapping_add(1))
    };
    Ok(UserHello {
        io,
        login,
        password,
        database,
        capabilities,
        collation,
        next_seq,
    })
}

/// The password a cleartext answer carries (its trailing NUL dropped).
fn cleartext(data: &[u8]) -> Secret<String> {
    let data = data.strip_suffix(&[0]).unwrap_or(data);
    Secret::new(String::from_utf8_lossy(data).into_owned())
}

/// A stream whose first bytes were already read: they are read again first (the start of a
/// TLS handshake that arrived with the SSL request).
struct Prefixed<S> {
    early: bytes::Bytes,
    inner: S,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.early.is_empty() {
            let n = self.early.len().min(out.remaining());
            let head = self.early.split_to(n);
            out.put_slice(&head);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, out)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A client's SSL request and its TLS ClientHello arriving in one read (the server does
    /// not answer the request, so clients send both at once; under load they coalesce): the
    /// gateway goes on with the TLS handshake. It used to drop the connection, which PyMySQL
    /// reported as "EOF occurred in violation of protocol".
    #[tokio::test]
    async fn a_client_hello_in_the_same_read_as_the_ssl_request_is_the_handshake() {
        let dir = tempfile::tempdir().unwrap();
        let cert = crate::tls::load_or_create_certificate(
            &dir.path().join("gw.crt"),
            &dir.path().join("gw.key"),
            &["localhost".into()],
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            // The handshake never completes here (the client stops after the ServerHello).
            let _ = super::accept(tcp, Some(cert.config), true, 7).await;
        });

        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut header = [0u8; 4];
        tcp.read_exact(&mut header).await.unwrap();
        let len =
            usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
        let mut greeting = vec![0u8; len];
        tcp.read_exact(&mut greeting).await.unwrap();

        // SSLRequest: CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_SECURE_CONNECTION, max packet,
        // charset, 23 zero bytes; sequence 1.
        let mut request = vec![32, 0, 0, 1];
        request.extend_from_slice(&(0x0200u32 | 0x0800 | 0x8000).to_le_bytes());
        request.extend_from_slice(&(16u32 << 20).to_le_bytes());
        request.push(45);
        request.extend_from_slice(&[0; 23]);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let mut client =
            rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap())
                .unwrap();
        client.write_tls(&mut request).unwrap();
        tcp.write_all(&request).await.unwrap();

        // The gateway answers with a TLS handshake record (the ServerHello), not a close.
        let mut first = [0u8; 1];
        let n = tokio::time::timeout(std::time::Duration::from_secs(20), tcp.read(&mut first))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "the gateway closed the connection");
        assert_eq!(first[0], 0x16, "a TLS handshake record");
        drop(tcp);
        server.await.unwrap();
    }
}
