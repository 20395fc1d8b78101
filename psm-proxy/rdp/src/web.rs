//! RDP in the browser: the gateway runs the RDP client itself (the same target side as
//! native sessions) and streams the screen to the browser over a websocket, as PNG tiles of
//! the changed region; the browser sends keyboard and mouse back.
//!
//! Endpoints: `GET /` serves a minimal page (`web/rdp.html`: login form, canvas, input);
//! `GET /ws` is the websocket. The protocol:
//!
//! - browser → gateway, JSON text: first
//!   `{"type":"login","user":"alice+desk-01","password":"...","width":1024,"height":768}`,
//!   then input: `{"type":"key","code":30,"extended":false,"down":true}` (PC/AT set-1 scan
//!   code), `{"type":"move","x":10,"y":20}`,
//!   `{"type":"button","button":"left","down":true,"x":10,"y":20}`,
//!   `{"type":"wheel","delta":120,"x":10,"y":20}`;
//! - gateway → browser: text `{"type":"ready","session":"ID","width":W,"height":H}`,
//!   `{"type":"error","message":"..."}`, `{"type":"end","reason":"..."}`; binary tiles:
//!   byte `1`, then x, y, width, height as little-endian u16, then a PNG of that region.
//!
//! A slow browser never makes the gateway queue frames: changes merge until the browser has
//! taken the previous tile (the websocket send completes). Pause holds the stream, terminate
//! closes it. Behind a TLS-terminating reverse proxy in production (`wss://`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::config::RdpGatewayConfig;
use crate::error::RdpError;
use crate::input::{Button, InputEvent};
use crate::session::{self, ClientKind, GatewayDeps, Shared};

/// Longest message a browser may send, in bytes.
pub const MAX_MESSAGE: usize = 4096;

const PAGE: &str = include_str!("../web/rdp.html");

/// A message from the browser.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientMessage {
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
    /// A key by scan code.
    Key {
        /// PC/AT set-1 scan code.
        code: u8,
        /// E0-prefixed.
        #[serde(default)]
        extended: bool,
        /// Pressed or released.
        down: bool,
    },
    /// Pointer moved.
    Move {
        /// X.
        x: u16,
        /// Y.
        y: u16,
    },
    /// A mouse button.
    Button {
        /// `left`, `right` or `middle`.
        button: String,
        /// Pressed or released.
        down: bool,
        /// X.
        x: u16,
        /// Y.
        y: u16,
    },
    /// Wheel.
    Wheel {
        /// Rotation.
        delta: i16,
        /// X.
        x: u16,
        /// Y.
        y: u16,
    },
}

/// Parses one browser message (bounded, strict: unknown fields are refused).
pub fn parse_client_message(text: &str) -> Result<ClientMessage, RdpError> {
    if text.len() > MAX_MESSAGE {
        return Err(RdpError::Client {
            peer: "browser".into(),
            reason: format!("a message of {} bytes (at most {MAX_MESSAGE})", text.len()),
        });
    }
    serde_json::from_str(text).map_err(|e| RdpError::Client {
        peer: "browser".into(),
        reason: format!("bad message: {e}"),
    })
}

impl ClientMessage {
    /// The input event, for input messages.
    pub fn input(&self) -> Option<InputEvent> {
        Some(match *self {
            ClientMessage::Key {
                code,
                extended,
                down,
            } => InputEvent::Key {
                code,
                extended,
                down,
            },
            ClientMessage::Move { x, y } => InputEvent::Move { x, y },
            ClientMessage::Button {
                ref button,
                down,
                x,
                y,
            } => InputEvent::Button {
                button: match button.as_str() {
                    "left" => Button::Left,
                    "right" => Button::Right,
                    "middle" => Button::Middle,
                    _ => return None,
                },
                down,
                x,
                y,
            },
            ClientMessage::Wheel { delta, x, y } => InputEvent::Wheel { delta, x, y },
            ClientMessage::Login { .. } => return None,
        })
    }
}

/// The browser gateway: an HTTP listener with the page and the websocket.
pub struct WebGateway {
    shared: Arc<Shared>,
    listener: TcpListener,
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
        deps: GatewayDeps,
    ) -> Result<Self, RdpError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| RdpError::io(format!("listening on {listen}"), e))?;
        Ok(Self {
            shared: Shared::new(config, deps),
            listener,
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.shared.config.listen)
    }

    /// Serves until `shutdown` resolves.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), RdpError> {
        let app = Router::new()
            .route("/", get(|| async { Html(PAGE) }))
            .route("/ws", get(ws_handler))
            .route("/launch", axum::routing::post(launch_handler))
            .with_state(self.shared.clone());
        axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| RdpError::io("serving the browser gateway", e))
    }
}

async fn ws_handler(
    ws: WebSocketUpgrade,
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> impl IntoResponse {
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            if let Err(e) = browser_session(shared, socket, peer).await {
                tracing::info!(peer = %peer, error = %e, "browser RDP connection ended with an error");
            }
        })
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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::http::StatusCode;
    let req: LaunchRequest = match (body.len() <= MAX_MESSAGE)
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
    let ClientMessage::Login {
        user,
        password,
        width,
        height,
    } = parse_client_message(&first)?
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
        .send(text(serde_json::json!({"type":"ready","session":s.info.id.to_string(),"width":sw,"height":sh})))
        .await
        .map_err(|e| RdpError::Client { peer: peer.to_string(), reason: e.to_string() })?;
    let watch = s.screen.watch();
    let reason = loop {
        tokio::select! {
            r = s.control.terminated() => break r,
            () = watch.changed(), if !s.control.is_paused() => {
                let Some(region) = watch.take_region() else { continue };
                let rect = region.rect;
                let png = tokio::task::spawn_blocking(move || region.to_png())
                    .await
                    .map_err(|e| RdpError::Session(e.to_string()))?
                    .map_err(|e| RdpError::Session(format!("PNG: {e}")))?;
                let mut msg = Vec::with_capacity(9 + png.len());
                msg.push(1u8);
                for v in [rect.x, rect.y, rect.width, rect.height] {
                    msg.extend_from_slice(&v.to_le_bytes());
                }
                msg.extend_from_slice(&png);
                if socket.send(Message::Binary(msg.into())).await.is_err() {
                    break "browser disconnected".to_owned();
                }
            }
            m = socket.recv() => match m {
                Some(Ok(Message::Text(t))) => match parse_client_message(&t) {
                    Ok(m) => if let Some(ev) = m.input() { s.input(ev) },
                    Err(e) => {
                        tracing::warn!(peer = %peer, session_id = %s.info.id, error = %e, "bad browser message");
                        break format!("browser sent a bad message: {e}");
                    }
                },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_strictly() {
        let m = parse_client_message(r#"{"type":"key","code":30,"down":true}"#).expect("key");
        assert_eq!(
            m.input(),
            Some(InputEvent::Key {
                code: 30,
                extended: false,
                down: true
            })
        );
        assert!(parse_client_message(r#"{"type":"key","code":300,"down":true}"#).is_err());
        assert!(parse_client_message(r#"{"type":"key","code":1,"down":true,"x":1}"#).is_err());
        assert!(parse_client_message(&"x".repeat(5000)).is_err());
        let b =
            parse_client_message(r#"{"type":"button","button":"nose","down":true,"x":1,"y":2}"#)
                .expect("parses");
        assert_eq!(b.input(), None);
    }
}
