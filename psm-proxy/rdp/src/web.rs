//! RDP in the browser: the gateway runs the RDP client itself (the same target side as
//! native sessions) and streams the screen to the browser over a websocket, as PNG tiles of
//! the changed region; the browser sends keyboard and mouse back.
//!
//! Endpoints: `GET /` serves a minimal page (`web/rdp.html`: login form, canvas, input);
//! `GET /ws` is the websocket. The protocol:
//!
//! - browser → gateway, JSON text: first
//!   `{"type":"login","user":"alice+desk-01","password":"...","width":1024,"height":768}`,
//!   then input, in the live protocol's desktop messages (`psm_proxy::live::desktop`,
//!   docs/live.md "Desktops"): `{"type":"key","key":"KeyA","down":true}` (the W3C
//!   `KeyboardEvent.code`), `{"type":"move","x":10,"y":20}`,
//!   `{"type":"button","button":"left","down":true,"x":10,"y":20}`,
//!   `{"type":"wheel","delta":120,"x":10,"y":20}`;
//! - gateway → browser: text
//!   `{"type":"ready","session":"ID","width":W,"height":H,"drive":"PSM"}` (`drive` null
//!   without a session drive), `{"type":"error","message":"..."}`,
//!   `{"type":"end","reason":"..."}`, `{"type":"resize","width":W,"height":H}` (the target
//!   resized its desktop; tiles that follow are for the new size); binary tiles as the live
//!   server sends them ([`psm_proxy::live::desktop::tile_frame`]): byte `1`, then x, y,
//!   width, height as little-endian u16, then a PNG of that region.
//! - the session drive ([`crate::drive`]), when policy allows drives: browser → gateway
//!   `{"type":"files"}` (answered `{"type":"files","files":[{"name":..,"size":..,"dir":..}]}`),
//!   `{"type":"download","name":"report.txt"}` (answered by a binary file message), and a
//!   binary file message to upload: byte `2`, the name's length (u16 little-endian), the
//!   name, the content (at most [`MAX_WEB_FILE`](crate::drive::MAX_WEB_FILE) bytes; a name
//!   that exists is refused, nothing is overwritten). Failures are
//!   `{"type":"file-error","message":"..."}` and the session goes on; an upload is
//!   answered `{"type":"uploaded","name":..,"size":..}`. Each file moved is recorded as a
//!   `FileTransfer` (`rdp-drive-web`, with its BLAKE3).
//!
//! A slow browser never makes the gateway queue frames: changes merge until the browser has
//! taken the previous tile (the websocket send completes). Pause holds the stream, terminate
//! closes it. Behind a TLS-terminating reverse proxy in production (`wss://`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::config::RdpGatewayConfig;
use crate::error::RdpError;
use crate::input::InputEvent;
use crate::session::{self, ClientKind, RdpGatewayDeps, Shared};
use psm_proxy::live::DesktopInput;
use psm_proxy::live::protocol::ClientMessage as LiveMessage;

/// Longest message a browser may send, in bytes.
pub const MAX_BROWSER_MESSAGE: usize = 4096;

const PAGE: &str = include_str!("../web/rdp.html");
const SCRIPT: &str = include_str!("../web/rdp.js");
const STYLE: &str = include_str!("../web/rdp.css");

/// The page's Content-Security-Policy: its own script and style only (no inline script, no
/// third party), websockets to itself, decoded tiles as blobs, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'none'";

/// A static file of the page with the security headers.
fn asset(body: &'static str, content_type: &'static str) -> axum::response::Response {
    use axum::http::header;
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// Whether a browser request comes from the page itself: no `Origin` (not a browser, or a
/// same-origin GET), or an `Origin` that is this server's own (`http(s)://` + `Host`). A
/// page elsewhere (cross-site websocket hijacking, a login form posted from another site)
/// is refused.
pub fn same_origin(headers: &axum::http::HeaderMap, tls: bool) -> bool {
    let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(Ok(host))) = (
        origin.to_str(),
        headers.get(axum::http::header::HOST).map(|h| h.to_str()),
    ) else {
        return false;
    };
    let scheme = if tls { "https" } else { "http" };
    origin.eq_ignore_ascii_case(&format!("{scheme}://{host}"))
}

/// A message from the browser.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum BrowserMessage {
    /// Log in (first message).
    Login {
        /// `USER+TARGET`.
        user: String,
        /// The PSM password (TOTP code appended when the user has one).
        password: String,
        /// Desired desktop width.
        #[serde(default)]
        width: Option<u32>,
        /// Desired desktop height.
        #[serde(default)]
        height: Option<u32>,
    },
    /// List the session drive's top folder (when drives are allowed).
    Files,
    /// Download a file of the session drive's top folder.
    Download {
        /// Its name.
        name: String,
    },
    /// Keyboard or pointer input: the live protocol's desktop messages (`key`, `move`,
    /// `button`, `wheel`; docs/live.md, "Desktops"), parsed by psm-proxy, so that the page
    /// and a live viewer with control speak one input protocol.
    #[serde(skip)]
    Input(DesktopInput),
}

/// Parses one browser message (bounded, strict: unknown fields are refused).
pub fn parse_browser_message(text: &str) -> Result<BrowserMessage, RdpError> {
    if text.len() > MAX_BROWSER_MESSAGE {
        return Err(RdpError::Client {
            peer: "browser".into(),
            reason: format!(
                "a message of {} bytes (at most {MAX_BROWSER_MESSAGE})",
                text.len()
            ),
        });
    }
    if let Ok(LiveMessage::Desktop(input)) = LiveMessage::parse(text) {
        return Ok(BrowserMessage::Input(input));
    }
    serde_json::from_str(text).map_err(|e| RdpError::Client {
        peer: "browser".into(),
        reason: format!("bad message: {e}"),
    })
}

impl BrowserMessage {
    /// The input event, for input messages (`None` for others, and for a key the scan-code
    /// table does not know).
    pub fn input(&self) -> Option<InputEvent> {
        match self {
            BrowserMessage::Input(input) => crate::desktop::input_event(input),
            BrowserMessage::Login { .. }
            | BrowserMessage::Files
            | BrowserMessage::Download { .. } => None,
        }
    }
}

/// The browser gateway: an HTTP listener with the page and the websocket. On a loopback
/// address it may serve plain HTTP (behind a TLS-terminating proxy, or for a local user);
/// anywhere else it needs TLS ([`with_tls`](Self::with_tls)).
pub struct WebGateway {
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for WebGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebGateway").finish_non_exhaustive()
    }
}

impl WebGateway {
    /// Binds `listen`; sessions use `config`'s policy and `deps` (share them with the native
    /// gateway so both list their sessions in one registry).
    pub async fn bind(
        listen: SocketAddr,
        config: RdpGatewayConfig,
        deps: RdpGatewayDeps,
    ) -> Result<Self, RdpError> {
        crate::gateway::check_policy(&config)?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| RdpError::io(format!("listening on {listen}"), e))?;
        Ok(Self {
            shared: Shared::new(config, deps),
            listener,
            tls: None,
        })
    }

    /// Serves HTTPS (and `wss://`) with `acceptor`: the gateway's own certificate
    /// (`ServerIdentity::acceptor`) or another.
    pub fn with_tls(mut self, acceptor: tokio_rustls::TlsAcceptor) -> Self {
        self.tls = Some(acceptor);
        self
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.shared.config.listen)
    }

    /// Serves until `shutdown` resolves. Refuses to serve plain HTTP on a non-loopback
    /// address: the page carries PSM passwords.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), RdpError> {
        let addr = self.local_addr();
        if self.tls.is_none() && !addr.ip().is_loopback() {
            return Err(RdpError::Config(format!(
                "the browser gateway would serve PSM passwords over plain HTTP on {addr}: \
                 give it TLS (psm-rdp-gateway serves HTTPS with its certificate on a \
                 non-loopback address) or listen on a loopback address behind a TLS proxy"
            )));
        }
        let tls = self.tls.is_some();
        let app = Router::new()
            .route(
                "/",
                get(|| async { asset(PAGE, "text/html; charset=utf-8") }),
            )
            .route(
                "/rdp.js",
                get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
            )
            .route(
                "/rdp.css",
                get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
            )
            .route("/ws", get(ws_handler))
            .route("/launch", axum::routing::post(launch_handler))
            .with_state(self.shared.clone())
            .layer(axum::Extension(Tls(tls)));
        let make = app.into_make_service_with_connect_info::<Peer>();
        match self.tls {
            None => axum::serve(self.listener, make)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(|e| RdpError::io("serving the browser gateway", e)),
            Some(acceptor) => axum::serve(
                crate::tls::HttpsListener::new(
                    self.listener,
                    acceptor,
                    self.shared.config.limits.handshake_timeout,
                    self.shared.config.limits.max_handshakes,
                ),
                make,
            )
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| RdpError::io("serving the browser gateway", e)),
        }
    }
}

/// The client's address, over plain TCP or TLS.
#[derive(Clone, Copy, Debug)]
struct Peer(SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TcpListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

impl
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'_, crate::tls::HttpsListener>,
    > for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, crate::tls::HttpsListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// Whether the gateway serves TLS (for the `Origin` check).
#[derive(Clone, Copy)]
struct Tls(bool);

async fn ws_handler(
    ws: WebSocketUpgrade,
    State(shared): State<Arc<Shared>>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    axum::Extension(Tls(tls)): axum::Extension<Tls>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    if !same_origin(&headers, tls) {
        tracing::warn!(peer = %peer, "browser RDP websocket from another origin refused");
        return (
            axum::http::StatusCode::FORBIDDEN,
            "this page's origin may not open sessions",
        )
            .into_response();
    }
    // Uploads to the session drive are binary messages up to `MAX_WEB_FILE`; without a
    // drive every message stays within `MAX_BROWSER_MESSAGE`.
    let c = shared.config.channels;
    let max = if (c.drives || c.printers) && shared.config.drive.is_some() {
        crate::drive::MAX_WEB_FILE + 1024
    } else {
        MAX_BROWSER_MESSAGE
    };
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| async move {
            if let Err(e) = browser_session(shared, socket, peer).await {
                tracing::info!(peer = %peer, error = %e, "browser RDP connection ended with an error");
            }
        })
        .into_response()
}

/// `POST /launch` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LaunchRequest {
    user: String,
    password: String,
}

/// How long a launch credential stays valid.
const LAUNCH_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// Trades a PSM login (`USER+TARGET` and the PSM password) for a one-time launch credential
/// a native client can use with NLA, and a `.rdp` file that names it.
async fn launch_handler(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    axum::Extension(Tls(tls)): axum::Extension<Tls>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::http::StatusCode;
    // JSON only (a form another site posts cannot send it without a preflight) and from
    // this origin only.
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json || !same_origin(&headers, tls) {
        tracing::warn!(peer = %peer, "launch request refused: not JSON from this origin");
        return (
            StatusCode::FORBIDDEN,
            "a launch request is JSON from this origin",
        )
            .into_response();
    }
    let req: LaunchRequest = match (body.len() <= MAX_BROWSER_MESSAGE)
        .then(|| serde_json::from_slice(&body).ok())
        .flatten()
    {
        Some(r) => r,
        None => {
            return (
                StatusCode::BAD_REQUEST,
                "expected {\"user\":\"USER+TARGET\",\"password\":\"...\"}",
            )
                .into_response();
        }
    };
    match shared.auth.authenticate(&req.user, &req.password).await {
        Ok(identity) => {
            let cred = shared.deps.launch.issue(identity, LAUNCH_TTL);
            let rdp = format!(
                "full address:s:{}\r\nusername:s:{}\r\nenablecredsspsupport:i:1\r\nredirectclipboard:i:{}\r\nredirectdrives:i:0\r\nredirectprinters:i:0\r\n",
                shared.config.listen,
                cred.username,
                u8::from(shared.config.channels.clipboard)
            );
            axum::Json(serde_json::json!({
                "username": cred.username,
                "password": cred.password.expose_secret(),
                "validSeconds": cred.valid_for.as_secs(),
                "rdpFile": rdp,
            }))
            .into_response()
        }
        Err(e) => {
            tracing::warn!(peer = %peer, error = %e, "launch credential refused");
            (StatusCode::FORBIDDEN, "access denied").into_response()
        }
    }
}

fn text(v: serde_json::Value) -> Message {
    Message::Text(v.to_string().into())
}

async fn browser_session(
    shared: Arc<Shared>,
    mut socket: WebSocket,
    peer: SocketAddr,
) -> Result<(), RdpError> {
    let handshake = shared.config.limits.handshake_timeout;
    let first = tokio::time::timeout(handshake, socket.recv())
        .await
        .map_err(|_| RdpError::Timeout("the browser's login"))?;
    let Some(Ok(Message::Text(first))) = first else {
        return Err(RdpError::Client {
            peer: peer.to_string(),
            reason: "the first message is not a login".into(),
        });
    };
    let BrowserMessage::Login {
        user,
        password,
        width,
        height,
    } = parse_browser_message(&first)?
    else {
        let _ = socket
            .send(text(
                serde_json::json!({"type":"error","message":"log in first"}),
            ))
            .await;
        return Err(RdpError::Client {
            peer: peer.to_string(),
            reason: "input before login".into(),
        });
    };
    let identity = match shared.auth.authenticate(&user, &password).await {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(peer = %peer, error = %e, "browser RDP login refused");
            let _ = socket
                .send(text(
                    serde_json::json!({"type":"error","message":"access denied"}),
                ))
                .await;
            return Ok(());
        }
    };
    drop(password);
    let (w, h) = session::clamp_size(
        &shared.config,
        width.unwrap_or(u32::from(shared.config.default_width)),
        height.unwrap_or(u32::from(shared.config.default_height)),
    );
    let s = match session::start(
        &shared,
        &identity,
        Some(peer),
        w,
        h,
        ClientKind::Browser,
        None,
        // The page sends keys by position (`KeyboardEvent.code`), as a US keyboard has them.
        None,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            let _ = socket
                .send(text(
                    serde_json::json!({"type":"error","message":"the target could not be reached"}),
                ))
                .await;
            return Err(e);
        }
    };
    let (sw, sh) = s.screen.size();
    socket
        .send(text(serde_json::json!({"type":"ready","session":s.info.id.to_string(),"width":sw,"height":sh,
            "drive": s.drive_dir().and(shared.config.drive.as_ref()).map(|d| d.name.clone())})))
        .await
        .map_err(|e| RdpError::Client { peer: peer.to_string(), reason: e.to_string() })?;
    let watch = s.screen.watch();
    let mut told = (sw, sh);
    let mut files = WebFiles {
        drive: s.drive_dir().and(shared.config.drive.clone()),
        uploaded: 0,
    };
    let reason = loop {
        tokio::select! {
            r = s.control.terminated() => break r,
            () = watch.changed(), if !s.control.is_paused() => {
                let size = s.screen.size();
                if size != told {
                    // The target resized its desktop (a deactivation-reactivation).
                    told = size;
                    let resized = text(serde_json::json!({"type":"resize","width":size.0,"height":size.1}));
                    if socket.send(resized).await.is_err() {
                        break "browser disconnected".to_owned();
                    }
                }
                let Some(region) = watch.take_region() else { continue };
                let rect = region.rect;
                let png = tokio::task::spawn_blocking(move || region.to_png())
                    .await
                    .map_err(|e| RdpError::Session(e.to_string()))?
                    .map_err(|e| RdpError::Session(format!("PNG: {e}")))?;
                let msg = psm_proxy::live::desktop::tile_frame(rect.x, rect.y, rect.width, rect.height, &png);
                if socket.send(Message::Binary(msg.into())).await.is_err() {
                    break "browser disconnected".to_owned();
                }
            }
            m = socket.recv() => match m {
                Some(Ok(Message::Text(t))) => match parse_browser_message(&t) {
                    Ok(BrowserMessage::Files) => {
                        let reply = files.list(&s).await;
                        if socket.send(reply).await.is_err() {
                            break "browser disconnected".to_owned();
                        }
                    }
                    Ok(BrowserMessage::Download { name }) => {
                        let reply = files.download(&s, &name).await;
                        if socket.send(reply).await.is_err() {
                            break "browser disconnected".to_owned();
                        }
                    }
                    Ok(m) => if let Some(ev) = m.input() { s.input(ev) },
                    Err(e) => {
                        tracing::warn!(peer = %peer, session_id = %s.info.id, error = %e, "bad browser message");
                        break format!("browser sent a bad message: {e}");
                    }
                },
                Some(Ok(Message::Binary(b))) if b.first() == Some(&FILE_MESSAGE) => {
                    let reply = files.upload(&s, &b).await;
                    if socket.send(reply).await.is_err() {
                        break "browser disconnected".to_owned();
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break "browser disconnected".to_owned(),
                Some(Ok(_)) => {}
            },
        }
    };
    let ended = s.close(&reason).await;
    let _ = socket
        .send(text(serde_json::json!({"type":"end","reason":ended})))
        .await;
    let _ = socket.send(Message::Close(None)).await;
    Ok(())
}

/// The first byte of a binary message that carries a file (both ways): then the name's
/// length (u16, little-endian), the name (UTF-8), and the content.
pub const FILE_MESSAGE: u8 = 2;

/// Splits a file message into its name and content.
pub fn parse_file_message(b: &[u8]) -> Result<(&str, &[u8]), String> {
    let [FILE_MESSAGE, lo, hi, rest @ ..] = b else {
        return Err("not a file message".into());
    };
    let n = usize::from(u16::from_le_bytes([*lo, *hi]));
    if rest.len() < n {
        return Err("a file message shorter than its name".into());
    }
    let (name, data) = rest.split_at(n);
    let name = std::str::from_utf8(name).map_err(|_| "a file name that is not UTF-8".to_owned())?;
    Ok((name, data))
}

/// A file message for `name` with `data`.
pub fn file_message(name: &str, data: &[u8]) -> Vec<u8> {
    let name = &name.as_bytes()[..name.len().min(usize::from(u16::MAX))];
    let mut m = Vec::with_capacity(3 + name.len() + data.len());
    m.push(FILE_MESSAGE);
    m.extend_from_slice(&(name.len() as u16).to_le_bytes());
    m.extend_from_slice(name);
    m.extend_from_slice(data);
    m
}

/// The browser page's access to its session drive: list the top folder, upload new files
/// (never overwriting), download files; each file moved is recorded as a transfer
/// (`rdp-drive-web`). Refused while the session is paused.
struct WebFiles {
    drive: Option<crate::drive::DriveConfig>,
    uploaded: u64,
}

fn file_error(message: String) -> Message {
    text(serde_json::json!({"type":"file-error","message":message}))
}

/// Asks the session's taps whether the page may move `name` (the policy's transfer rules).
fn gate_web_file(
    s: &crate::ActiveSession,
    drive: &crate::drive::DriveConfig,
    name: &str,
    direction: psm_proxy::Direction,
) -> Result<(), String> {
    crate::drive::check_web_name(name)?;
    match s.transfer_gate().check(
        direction,
        &format!("{}/{name}", drive.name),
        crate::drive::WEB_PROTOCOL,
    ) {
        psm_proxy::RequestVerdict::Allow => Ok(()),
        psm_proxy::RequestVerdict::Refuse(why) => Err(format!("{name}: refused by policy: {why}")),
    }
}

/// Records a file the browser page moved, with its hash (the page always moves whole files).
async fn record_web_file(
    s: &crate::ActiveSession,
    drive: &crate::drive::DriveConfig,
    name: &str,
    direction: psm_recording::TransferDirection,
    data: &[u8],
) {
    s.transfer_gate()
        .transferred(
            "rdpdr",
            psm_proxy::TransferReport {
                direction: direction.into(),
                path: format!("{}/{name}", drive.name),
                bytes: data.len() as u64,
                protocol: crate::drive::WEB_PROTOCOL,
                complete: true,
            },
        )
        .await;
    s.recorder()
        .drive(crate::drive::DriveEvent::Transfer {
            protocol: crate::drive::WEB_PROTOCOL,
            path: format!("{}/{name}", drive.name),
            direction,
            size: data.len() as u64,
            blake3: Some(*blake3::hash(data).as_bytes()),
        })
        .await;
    tracing::info!(session_id = %s.info.id, file = %name, bytes = data.len(), ?direction,
        "drive file moved by the browser page");
}

impl WebFiles {
    fn usable<'a>(
        &'a self,
        s: &'a crate::ActiveSession,
    ) -> Result<(&'a std::path::Path, &'a crate::drive::DriveConfig), String> {
        let (Some(dir), Some(drive)) = (s.drive_dir(), self.drive.as_ref()) else {
            return Err("this session has no drive (policy)".into());
        };
        if s.control.is_paused() {
            return Err("the session is paused".into());
        }
        Ok((dir, drive))
    }

    async fn list(&self, s: &crate::ActiveSession) -> Message {
        let (dir, _) = match self.usable(s) {
            Ok(d) => d,
            Err(e) => return file_error(e),
        };
        let dir = dir.to_owned();
        match tokio::task::spawn_blocking(move || crate::drive::web_listing(&dir)).await {
            Ok(Ok(files)) => text(serde_json::json!({"type":"files","files":files})),
            Ok(Err(e)) => file_error(format!("listing the drive: {e}")),
            Err(e) => file_error(format!("listing the drive: {e}")),
        }
    }

    async fn download(&self, s: &crate::ActiveSession, name: &str) -> Message {
        let (dir, drive) = match self.usable(s) {
            Ok(d) => d,
            Err(e) => return file_error(e),
        };
        if let Err(e) = gate_web_file(s, drive, name, psm_proxy::Direction::ToUser) {
            return file_error(e);
        }
        match crate::drive::web_read(dir, name).await {
            Ok(data) => {
                record_web_file(
                    s,
                    drive,
                    name,
                    psm_recording::TransferDirection::Download,
                    &data,
                )
                .await;
                Message::Binary(file_message(name, &data).into())
            }
            Err(e) => file_error(e),
        }
    }

    async fn upload(&mut self, s: &crate::ActiveSession, message: &[u8]) -> Message {
        let (dir, drive) = match self.usable(s) {
            Ok(d) => d,
            Err(e) => return file_error(e),
        };
        let (name, data) = match parse_file_message(message) {
            Ok(m) => m,
            Err(e) => return file_error(e),
        };
        let size = data.len() as u64;
        if let Err(e) = gate_web_file(s, drive, name, psm_proxy::Direction::ToTarget) {
            return file_error(e);
        }
        if self.uploaded.saturating_add(size) > drive.max_bytes {
            return file_error(format!(
                "uploading {name} would pass this session's drive limit ({} bytes)",
                drive.max_bytes
            ));
        }
        if let Err(e) = crate::drive::web_write(dir, name, data).await {
            return file_error(e);
        }
        record_web_file(
            s,
            drive,
            name,
            psm_recording::TransferDirection::Upload,
            data,
        )
        .await;
        let reply = text(serde_json::json!({"type":"uploaded","name":name,"size":size}));
        self.uploaded += size;
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_strictly() {
        let k = parse_browser_message(r#"{"type":"key","key":"ArrowLeft","down":false}"#)
            .expect("key by code");
        assert_eq!(
            k.input(),
            Some(InputEvent::Key {
                code: 0x4b,
                extended: true,
                down: false
            })
        );
        let m = parse_browser_message(r#"{"type":"move","x":3,"y":4}"#).expect("move");
        assert_eq!(m.input(), Some(InputEvent::Move { x: 3, y: 4 }));
        // A key the scan-code table lacks parses and types nothing.
        let unknown =
            parse_browser_message(r#"{"type":"key","key":"Hunter2","down":true}"#).expect("parses");
        assert_eq!(unknown.input(), None);
        let login = parse_browser_message(
            r#"{"type":"login","user":"alice+desk-01","password":"pw","width":800}"#,
        )
        .expect("login");
        assert!(matches!(login, BrowserMessage::Login { .. }) && login.input().is_none());
        for bad in [
            r#"{"type":"key","code":30,"down":true}"#,
            r#"{"type":"key","key":"KeyA","down":true,"evil":1}"#,
            r#"{"type":"button","button":"nose","down":true,"x":1,"y":2}"#,
            r#"{"type":"login","user":"a","password":"b","evil":1}"#,
            r#"{"type":"pause","reason":"a live message the page may not send"}"#,
        ] {
            assert!(parse_browser_message(bad).is_err(), "{bad}");
        }
        assert!(parse_browser_message(&"x".repeat(5000)).is_err());
    }
}
