//! The gateway's websocket listener: live viewers (`/live/SESSION?ticket=…`) and the
//! browser terminal (`/terminal?ticket=…`). Protocol: `docs/live.md`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use psm_core::live::{
    LiveAction, LiveCommand, LiveMode, LiveTicket, TicketGrant, TicketScope, Viewport,
};
use psm_core::{CoreError, LiveLinkApi, ProcessInstance, SessionId};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};

use super::desktop::{Desktop, DesktopUpdate, DesktopWatch, tile_frame};
use super::protocol::{ClientMessage, MAX_MESSAGE, ServerMessage, mode_name};
use super::terminal::TerminalOpener;
use crate::error::ProxyError;
use crate::registry::SessionRegistry;
use crate::session::{LiveEvent, ViewerItem};

/// Close codes (`docs/live.md`).
pub mod close {
    /// Too many malformed messages.
    pub const MALFORMED: u16 = 4400;
    /// No ticket, or an unknown, expired or used one.
    pub const UNAUTHENTICATED: u16 = 4401;
    /// The ticket is not for this, or control is not allowed.
    pub const FORBIDDEN: u16 = 4403;
    /// The session is not live here.
    pub const NOT_LIVE: u16 = 4404;
    /// The viewer accepted nothing for too long.
    pub const TOO_SLOW: u16 = 4408;
    /// Too many viewers.
    pub const TOO_MANY: u16 = 4429;
    /// The control plane could not be reached.
    pub const UNAVAILABLE: u16 = 4503;
}

/// How the live listener is set up.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LiveServerConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// This gateway's process instance (tickets for its sessions name it).
    pub process_instance: ProcessInstance,
    /// TLS (rustls) for `wss://`; `None`: plain `ws://` (loopback, or behind a TLS proxy).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Origins a browser may connect from (`https://psm.example.com`); a request with
    /// another `Origin` is refused (403). Requests without `Origin` (not browsers) pass.
    pub allowed_origins: Vec<String>,
    /// Most websocket connections at once.
    pub max_connections: usize,
    /// The TLS and websocket handshakes, and redeeming the ticket, must finish within this.
    pub handshake_timeout: Duration,
    /// A viewer that accepts nothing for this long is disconnected.
    pub send_timeout: Duration,
    /// Malformed or refused messages tolerated per connection.
    pub max_bad_messages: u32,
}

impl LiveServerConfig {
    /// Defaults: no TLS, no browser origin allowed, 1024 connections, 10 s handshakes and
    /// send timeout, 16 bad messages.
    pub fn new(listen: SocketAddr, process_instance: ProcessInstance) -> Self {
        Self {
            listen,
            process_instance,
            tls: None,
            allowed_origins: Vec::new(),
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(10),
            max_bad_messages: 16,
        }
    }
}

/// What the live listener works with.
#[derive(Clone)]
pub struct LiveDeps {
    /// Redeems tickets (in-process engine or HTTP client).
    pub control_plane: Arc<dyn LiveLinkApi>,
    /// The gateway's live sessions.
    pub registry: SessionRegistry,
    /// Opens browser terminals through a protocol gateway (`psm_proxy_ssh::SshGateway`'s
    /// connector; `None`: `/terminal` is refused).
    pub terminals: Option<Arc<dyn TerminalOpener>>,
}

struct Shared {
    config: LiveServerConfig,
    deps: LiveDeps,
    connections: Arc<Semaphore>,
}

/// A bound live listener, ready to [`run`](LiveServer::run).
pub struct LiveServer {
    shared: Arc<Shared>,
    listener: TcpListener,
}

impl std::fmt::Debug for LiveServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveServer")
            .field("listen", &self.shared.config.listen)
            .finish_non_exhaustive()
    }
}

impl LiveServer {
    /// Binds the listening socket.
    pub async fn bind(config: LiveServerConfig, deps: LiveDeps) -> Result<Self, ProxyError> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ProxyError::Io {
                what: format!("listening on {} (live)", config.listen),
                source,
            })?;
        Ok(Self {
            shared: Arc::new(Shared {
                connections: Arc::new(Semaphore::new(config.max_connections.max(1))),
                config,
                deps,
            }),
            listener,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.shared.config.listen)
    }

    /// `ws://ADDR` or `wss://ADDR` (what to advertise when nothing in front rewrites it).
    pub fn url(&self) -> String {
        let scheme = if self.shared.config.tls.is_some() {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{}", self.local_addr())
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ProxyError> {
        tokio::pin!(shutdown);
        tracing::info!(listen = %self.local_addr(), tls = self.shared.config.tls.is_some(),
            "live websocket listener up");
        loop {
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                accepted = self.listener.accept() => {
                    let (socket, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!(error = %e, "live accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Ok(permit) = self.shared.connections.clone().try_acquire_owned() else {
                        tracing::warn!(peer = %peer, "too many live connections; dropping one");
                        continue;
                    };
                    let _ = socket.set_nodelay(true);
                    let shared = self.shared.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        match shared.config.tls.clone() {
                            Some(tls) => {
                                let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                                match tokio::time::timeout(shared.config.handshake_timeout,
                                    acceptor.accept(socket)).await {
                                    Ok(Ok(s)) => serve(shared, s, peer).await,
                                    _ => tracing::debug!(peer = %peer, "live TLS handshake failed"),
                                }
                            }
                            None => serve(shared, socket, peer).await,
                        }
                    });
                }
            }
        }
    }
}

/// A gateway's whole live side, running: the websocket listener and the [`LiveLink`] that
/// advertises it and carries the control plane's commands to the registry's sessions. What
/// a gateway process starts (`psm up`'s SSH gateway, `psm-rdp-gateway`).
///
/// [`LiveLink`]: super::LiveLink
#[derive(Debug)]
pub struct LiveService {
    url: String,
    local_addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<Result<(), ProxyError>>,
    link: super::LiveLink,
}

impl LiveService {
    /// Binds the listener, starts it and the link. `public_url` is what the control plane
    /// hands viewers (default: [`LiveServer::url`]).
    pub async fn start(
        config: LiveServerConfig,
        deps: LiveDeps,
        public_url: Option<String>,
    ) -> Result<Self, ProxyError> {
        let me = config.process_instance.clone();
        let (control_plane, registry) = (deps.control_plane.clone(), deps.registry.clone());
        let server = LiveServer::bind(config, deps).await?;
        let local_addr = server.local_addr();
        let url = public_url.unwrap_or_else(|| server.url());
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(server.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        let link = super::LiveLink::start(control_plane, registry, me, Some(url.clone()));
        Ok(Self {
            url,
            local_addr,
            stop,
            server,
            link,
        })
    }

    /// The URL advertised to the control plane.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address the listener bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the listener, then the link (after delivering the reports still queued).
    /// Call it after the gateway stopped, so the sessions' last reports go out.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Ok(Err(e)) = self.server.await {
            tracing::warn!(error = %e, "the live listener stopped with an error");
        }
        self.link.stop().await;
    }
}

/// What the handshake found.
#[derive(Clone, Debug, Default)]
struct Route {
    session: Option<SessionId>,
    terminal: bool,
    ticket: Option<String>,
}

type Refusal = (StatusCode, &'static str);

fn refuse(status: StatusCode, text: &'static str) -> Refusal {
    (status, text)
}

/// Checks the path and the `Origin` during the websocket handshake.
fn route(req: &Request, allowed: &[String]) -> Result<Route, Refusal> {
    if let Some(origin) = req.headers().get("origin") {
        let ok = origin.to_str().is_ok_and(|o| {
            allowed
                .iter()
                .any(|a| a.eq_ignore_ascii_case(o.trim_end_matches('/')))
        });
        if !ok {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "this page's origin may not open live sessions",
            ));
        }
    }
    let uri = req.uri();
    let ticket = uri.query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("ticket="))
            .map(str::to_owned)
    });
    let path = uri.path();
    if path == "/terminal" {
        return Ok(Route {
            session: None,
            terminal: true,
            ticket,
        });
    }
    if let Some(id) = path.strip_prefix("/live/")
        && let Ok(id) = id.parse::<SessionId>()
    {
        return Ok(Route {
            session: Some(id),
            terminal: false,
            ticket,
        });
    }
    Err(refuse(StatusCode::NOT_FOUND, "no such live endpoint"))
}

type Ws<S> = WebSocketStream<S>;

async fn close_with<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut Ws<S>, code: u16, reason: &str) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.chars().take(120).collect::<String>().into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(Some(frame))).await;
}

#[allow(clippy::result_large_err)] // the handshake callback's type is tungstenite's
async fn serve<S>(shared: Arc<Shared>, stream: S, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let found: Arc<Mutex<Option<Route>>> = Arc::new(Mutex::new(None));
    let slot = found.clone();
    let allowed = shared.config.allowed_origins.clone();
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let r = route(req, &allowed).map_err(|(status, text)| {
            let mut r = ErrorResponse::new(Some(text.to_owned()));
            *r.status_mut() = status;
            r
        })?;
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
        Ok(resp)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let accepted = tokio::time::timeout(
        shared.config.handshake_timeout,
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)),
    )
    .await;
    let mut ws = match accepted {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(peer = %peer, error = %e, "live websocket handshake refused");
            return;
        }
        Err(_) => {
            tracing::debug!(peer = %peer, "live websocket handshake timed out");
            return;
        }
    };
    let Some(route) = found.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return;
    };
    let Some(ticket) = route.ticket.as_deref() else {
        close_with(&mut ws, close::UNAUTHENTICATED, "a ticket is required").await;
        return;
    };
    let grant = match redeem(&shared, ticket).await {
        Ok(g) => g,
        Err((code, text)) => {
            tracing::info!(peer = %peer, code, "live connection refused: {text}");
            close_with(&mut ws, code, &text).await;
            return;
        }
    };
    match (&grant.scope, route.session, route.terminal) {
        (TicketScope::Join { session, mode }, Some(path_session), false)
            if *session == path_session =>
        {
            let mode = *mode;
            serve_viewer(&shared, ws, path_session, mode, grant).await;
        }
        (TicketScope::Terminal { user, target }, None, true) => {
            let (user, target) = (user.clone(), target.clone());
            super::terminal::serve(
                &shared.deps,
                shared.config.send_timeout,
                shared.config.max_bad_messages,
                ws,
                peer,
                &user,
                &target,
                grant.viewport,
            )
            .await;
        }
        _ => {
            close_with(
                &mut ws,
                close::FORBIDDEN,
                "the ticket is not for this endpoint",
            )
            .await;
        }
    }
}

async fn redeem(shared: &Shared, ticket: &str) -> Result<TicketGrant, (u16, String)> {
    let ticket = LiveTicket::parse(ticket).map_err(|_| {
        (
            close::UNAUTHENTICATED,
            "the ticket is unknown, expired or already used".to_owned(),
        )
    })?;
    let cp = &shared.deps.control_plane;
    let redeemed = tokio::time::timeout(
        shared.config.handshake_timeout,
        cp.redeem_live_ticket(&ticket, &shared.config.process_instance),
    )
    .await
    .map_err(|_| {
        (
            close::UNAVAILABLE,
            "the control plane did not answer in time".to_owned(),
        )
    })?;
    redeemed.map_err(|e| match e {
        CoreError::Unauthenticated(_) => (
            close::UNAUTHENTICATED,
            "the ticket is unknown, expired or already used".to_owned(),
        ),
        CoreError::Forbidden(m) => (close::FORBIDDEN, m),
        CoreError::UnknownSession(_) | CoreError::WrongStage { .. } => {
            (close::NOT_LIVE, "the session is not live".to_owned())
        }
        e if e.is_transient() => (
            close::UNAVAILABLE,
            "the control plane is unreachable".to_owned(),
        ),
        e => (close::FORBIDDEN, e.to_string()),
    })
}

/// Sends a message, or gives up after the send timeout (a dead or stalled viewer).
async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut Ws<S>,
    timeout: Duration,
    msg: Message,
) -> bool {
    matches!(
        tokio::time::timeout(timeout, ws.send(msg)).await,
        Ok(Ok(()))
    )
}

pub(crate) fn text(m: &ServerMessage) -> Message {
    Message::text(m.to_text())
}

/// The protocol message for a live event (output goes as a binary frame).
pub(crate) fn message_for(event: LiveEvent) -> Option<Message> {
    Some(match event {
        LiveEvent::Output { bytes, .. } => Message::binary(bytes),
        LiveEvent::Resize { cols, rows, .. } => text(&ServerMessage::Resize { cols, rows }),
        LiveEvent::State(s) => text(&ServerMessage::State {
            paused: s.paused,
            locked: s.locked,
            by: s.by,
            reason: s.reason,
        }),
        LiveEvent::Viewers(viewers) => text(&ServerMessage::Viewers { viewers }),
        LiveEvent::Typing { who, viewer } => text(&ServerMessage::Typing {
            who,
            role: if viewer { "viewer" } else { "user" }.into(),
        }),
        LiveEvent::Approval(a) => text(&ServerMessage::Approval {
            id: a.id,
            command: a.command,
            rule: a.rule,
            message: a.message,
        }),
        LiveEvent::ApprovalResolved {
            id,
            approved,
            by,
            reason,
        } => text(&ServerMessage::ApprovalResolved {
            id,
            approved,
            by,
            reason,
        }),
        LiveEvent::Policy {
            rule,
            action,
            subject,
            outcome,
        } => text(&ServerMessage::Policy {
            action: action.to_string(),
            rule,
            subject,
            outcome,
        }),
        LiveEvent::Notice(t) => text(&ServerMessage::Notice { text: t }),
        LiveEvent::Ended { reason } => text(&ServerMessage::Ended { reason }),
        LiveEvent::Disconnected { reason } => Message::Close(Some(CloseFrame {
            code: CloseCode::from(close::UNAUTHENTICATED),
            reason: reason.chars().take(120).collect::<String>().into(),
        })),
    })
}

async fn serve_viewer<S>(
    shared: &Shared,
    mut ws: Ws<S>,
    session: SessionId,
    mode: LiveMode,
    grant: TicketGrant,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(live) = shared.deps.registry.get(session) else {
        close_with(
            &mut ws,
            close::NOT_LIVE,
            "the session is not live on this gateway",
        )
        .await;
        return;
    };
    let control = live.control().clone();
    let info = live.info().clone();
    let desktop = live.desktop();
    let actor = grant.actor.clone();
    let mut viewer = match control.join(Some((&actor, mode))) {
        Ok(v) => v,
        Err(_) => {
            close_with(&mut ws, close::TOO_MANY, "too many viewers on this session").await;
            return;
        }
    };
    let hold = control.hold();
    let hello = ServerMessage::Hello {
        session: Some(session.to_string()),
        user: info.user.clone(),
        target: info.target.clone(),
        account: info.target_account.clone(),
        mode: mode_name(Some(mode)).into(),
        viewer: actor.clone(),
        started: info.started.to_string(),
        paused: hold.paused,
        locked: hold.locked,
        viewers: control.viewers(),
        approvals: control.approvals(),
        viewport: grant.viewport,
    };
    let timeout = shared.config.send_timeout;
    if !send(&mut ws, timeout, text(&hello)).await {
        return;
    }
    // A graphical session: tiles of its desktop instead of a terminal (`desktop` module).
    let mut tiles = desktop.as_ref().map(|d| d.watch());
    let mut bad = 0u32;
    loop {
        tokio::select! {
            update = next_tile(&mut tiles), if tiles.is_some() => {
                let msg = match update {
                    Some(DesktopUpdate::Size { width, height }) => {
                        text(&ServerMessage::Desktop { width, height })
                    }
                    Some(DesktopUpdate::Tile { x, y, width, height, png }) => {
                        Message::binary(tile_frame(x, y, width, height, &png))
                    }
                    // The desktop is gone: the session is ending, and its `ended` event
                    // comes through the viewer.
                    None => {
                        tiles = None;
                        continue;
                    }
                };
                if !send(&mut ws, timeout, msg).await {
                    tracing::info!(session_id = %session, viewer = %actor,
                        "a live viewer accepted no tile in time; disconnected");
                    return;
                }
            }
            item = viewer.next() => {
                let msg = match item {
                    None => {
                        close_with(&mut ws, close::TOO_SLOW, "the viewer fell too far behind").await;
                        return;
                    }
                    Some(ViewerItem::Screen(s)) => text(&ServerMessage::Screen {
                        channel: s.channel,
                        cols: s.cols,
                        rows: s.rows,
                        data: s.data.to_string(),
                    }),
                    Some(ViewerItem::Event(LiveEvent::Disconnected { reason })) => {
                        tracing::info!(session_id = %session, viewer = %actor, reason = %reason,
                            "live viewer disconnected");
                        close_with(&mut ws, close::UNAUTHENTICATED, &reason).await;
                        return;
                    }
                    Some(ViewerItem::Event(LiveEvent::Ended { reason })) => {
                        let _ = send(&mut ws, timeout, text(&ServerMessage::Ended { reason })).await;
                        close_with(&mut ws, 1000, "the session ended").await;
                        return;
                    }
                    Some(ViewerItem::Event(e)) => match message_for(e) {
                        Some(m) => m,
                        None => continue,
                    },
                };
                if !send(&mut ws, timeout, msg).await {
                    tracing::info!(session_id = %session, viewer = %actor,
                        "a live viewer accepted nothing in time; disconnected");
                    return;
                }
            }
            incoming = ws.next() => {
                let parsed = match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(Message::Text(t))) => ClientMessage::parse(t.as_str()),
                    Some(Ok(Message::Binary(b))) => Ok(ClientMessage::Input(b.to_vec())),
                    Some(Ok(_)) => continue,
                };
                let refused = match parsed {
                    Err(e) => Some(e.0),
                    Ok(m) => viewer_message(&control, desktop.as_deref(), session, &actor, mode, m, &mut ws, timeout).await,
                };
                if let Some(message) = refused {
                    bad += 1;
                    if bad > shared.config.max_bad_messages {
                        close_with(&mut ws, close::MALFORMED, "too many refused messages").await;
                        return;
                    }
                    if !send(&mut ws, timeout, text(&ServerMessage::Error { message })).await {
                        return;
                    }
                }
            }
        }
    }
}

/// Acts on a viewer's message; `Some(why)` when refused.
#[allow(clippy::too_many_arguments)]
async fn viewer_message<S: AsyncRead + AsyncWrite + Unpin>(
    control: &Arc<crate::SessionControl>,
    desktop: Option<&dyn Desktop>,
    session: SessionId,
    actor: &str,
    mode: LiveMode,
    message: ClientMessage,
    ws: &mut Ws<S>,
    timeout: Duration,
) -> Option<String> {
    let command = |action: LiveAction, reason: Option<String>, approval: Option<u64>| LiveCommand {
        id: 0,
        session,
        action,
        actor: actor.to_owned(),
        reason: reason.filter(|r| !r.is_empty()),
        approval,
        viewer: None,
    };
    let cmd = match message {
        ClientMessage::Input(_) | ClientMessage::Desktop(_) if mode != LiveMode::Control => {
            return Some("this viewer joined to watch: input is not allowed".into());
        }
        ClientMessage::Desktop(input) => {
            let Some(desktop) = desktop else {
                return Some("this session is a terminal: send input, not key or pointer".into());
            };
            return desktop.viewer_input(actor, input).err();
        }
        ClientMessage::Input(_) if desktop.is_some() => {
            return Some("this session is a desktop: send key and pointer messages".into());
        }
        ClientMessage::Input(bytes) => {
            if bytes.len() > super::protocol::MAX_INPUT {
                return Some("input is at most 16 KiB a message".into());
            }
            control.viewer_input(actor, Bytes::from(bytes));
            return None;
        }
        ClientMessage::Ping => {
            let _ = send(ws, timeout, text(&ServerMessage::Pong)).await;
            return None;
        }
        ClientMessage::Resize { .. } => {
            return Some("a viewer cannot resize the user's terminal".into());
        }
        ClientMessage::Pause(r) => command(LiveAction::Pause, Some(r), None),
        ClientMessage::Resume => command(LiveAction::Resume, None, None),
        ClientMessage::Lock(r) => command(LiveAction::Lock, Some(r), None),
        ClientMessage::Unlock => command(LiveAction::Unlock, None, None),
        ClientMessage::Terminate(r) => command(LiveAction::Terminate, Some(r), None),
        ClientMessage::Approve(id) => command(LiveAction::Approve, None, Some(id)),
        ClientMessage::Deny(id, r) => command(LiveAction::Deny, Some(r), Some(id)),
    };
    tracing::info!(session_id = %session, action = cmd.action.as_str(), actor = %actor,
        "live action from a viewer");
    crate::registry::apply(control, &cmd).err()
}

/// The next update of a desktop viewer's stream (only polled when there is one).
async fn next_tile(tiles: &mut Option<Box<dyn DesktopWatch>>) -> Option<DesktopUpdate> {
    match tiles {
        Some(t) => t.next().await,
        None => std::future::pending().await,
    }
}

/// The viewport a terminal ticket gives, as columns and rows.
pub(crate) fn terminal_size(viewport: Option<Viewport>) -> (u16, u16) {
    match viewport {
        Some(v) if v.width > 0 && v.height > 0 => {
            (v.width.clamp(1, 1000) as u16, v.height.clamp(1, 500) as u16)
        }
        _ => (80, 24),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(uri: &str, origin: Option<&str>) -> Request {
        let mut b = Request::builder().uri(uri);
        if let Some(o) = origin {
            b = b.header("Origin", o);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn routes_and_origins() {
        let allowed = vec!["https://psm.example.com".to_owned()];
        let id = SessionId::new();
        let r = route(&req(&format!("/live/{id}?ticket=abc&x=1"), None), &allowed).unwrap();
        assert_eq!(r.session, Some(id));
        assert_eq!(r.ticket.as_deref(), Some("abc"));
        assert!(
            route(&req("/terminal", Some("https://psm.example.com")), &allowed)
                .unwrap()
                .terminal
        );
        let e = route(&req("/terminal", Some("https://evil.example")), &allowed).unwrap_err();
        assert_eq!(e.0, StatusCode::FORBIDDEN);
        let e = route(&req("/live/not-a-guid", None), &allowed).unwrap_err();
        assert_eq!(e.0, StatusCode::NOT_FOUND);
        let e = route(&req("/", None), &allowed).unwrap_err();
        assert_eq!(e.0, StatusCode::NOT_FOUND);
        assert_eq!(terminal_size(None), (80, 24));
        assert_eq!(
            terminal_size(Some(Viewport {
                width: 5000,
                height: 40,
                dpi: 0
            })),
            (1000, 40)
        );
    }
}
