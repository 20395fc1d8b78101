//! The user side for native RDP clients (mstsc, FreeRDP): the gateway is an RDP server
//! (ironrdp-server) that authenticates the user from the Client Info PDU (TLS security),
//! then serves the target's screen, decoded by the gateway, and forwards keyboard and mouse.
//!
//! Because the gateway terminates RDP on both sides (it is a server to the user and a
//! client to the target), nothing the user's client sends reaches the target except input
//! events, and nothing the target sends reaches the user except pixels: the target
//! credential cannot leak to the client, and a side channel (clipboard, drives, printers)
//! exists only when the gateway bridges it. The gateway offers the client a `cliprdr`
//! channel only when policy allows the clipboard (bridged as text by [`crate::clipboard`]),
//! and never `rdpdr`: the user's own drives and printers are not relayed (ironrdp-server
//! has no `rdpdr` server side). When policy allows drives, the target gets the gateway's
//! session drive instead ([`crate::drive`], on the target side).
//!
//! A refused client is told why ([`crate::refusal`]): the gateway keeps the user's TLS
//! stream in hand and, once ironrdp-server is done with it, sends the RDP error code that
//! fits (denied, insufficient privileges, target not found, target unreachable...).

use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroUsize};
use std::sync::{Arc, Mutex};

use anyhow::anyhow;
use ironrdp::server::{
    BitmapUpdate, CredentialDecision, CredentialValidationError, CredentialValidator, Credentials,
    DesktopSize, DisplayUpdate, KeyboardEvent, MouseEvent, PixelFormat, RdpServer,
    RdpServerDisplay, RdpServerDisplayUpdates, RdpServerInputHandler,
};
use tokio::net::TcpStream;

use crate::access::Identity;
use crate::error::RdpError;
use crate::input::InputEvent;
use crate::layout::ConnectInitialSniffer;
use crate::refusal::{HeldTls, Refusal};
use crate::screen::ScreenWatch;
use crate::session::{self, ActiveSession, ClientKind, Shared};
use psm_proxy::live::PointerButton;

/// State of one native connection, shared by the validator, display and input handlers.
struct Conn {
    shared: Arc<Shared>,
    peer: SocketAddr,
    /// NLA with a launch credential: the login and one-time password the CredSSP server
    /// checked; redeemed (consumed) when the session starts.
    nla: Option<(String, psm_core::vault::Secret<String>)>,
    identity: Mutex<Option<Identity>>,
    requested: Mutex<Option<(u16, u16)>>,
    /// The last desktop size sent to the client as a resize.
    resized_to: Mutex<Option<(u16, u16)>>,
    session: tokio::sync::Mutex<SessionSlot>,
    current: SessionCell,
    /// The clipboard bridge's link when policy allows the clipboard.
    clipboard: Option<Arc<crate::clipboard::Link>>,
    /// Whether the gateway holds the user's TLS stream, and so can tell a refused client
    /// why after ironrdp-server is done ([`crate::refusal`]).
    held: bool,
    /// Why the client is refused, once it is.
    refusal: Mutex<Option<Refusal>>,
    /// The connection's place among those still in their handshake ([`Limits::max_handshakes`]),
    /// given back once its session started.
    ///
    /// [`Limits::max_handshakes`]: crate::Limits::max_handshakes
    handshaking: Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
    /// The keyboard layout (KLID) the client announced in its Connect Initial, once read
    /// ([`crate::layout::ConnectInitialSniffer`]; `0`: none).
    keyboard_layout: Arc<std::sync::OnceLock<u32>>,
}

/// Where a connection's running session is kept, so the connection thread can still end it
/// if the RDP server code panics.
pub(crate) type SessionCell = Arc<Mutex<Option<Arc<ActiveSession>>>>;

enum SessionSlot {
    NotStarted,
    Running(Arc<ActiveSession>),
    Failed(String),
}

impl Conn {
    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn refuse(&self, refusal: Refusal) {
        Conn::lock(&self.refusal).get_or_insert(refusal);
    }

    /// Starts the session once the user is known (idempotent; a failure is remembered, and
    /// so is the refusal the client is told).
    async fn ensure_session(&self) -> Result<Arc<ActiveSession>, RdpError> {
        let result = self.start_session().await;
        if let Err(e) = &result {
            self.refuse(Refusal::of(e));
        }
        result
    }

    async fn start_session(&self) -> Result<Arc<ActiveSession>, RdpError> {
        let mut slot = self.session.lock().await;
        match &*slot {
            SessionSlot::Running(s) => return Ok(s.clone()),
            SessionSlot::Failed(e) => return Err(RdpError::Session(e.clone())),
            SessionSlot::NotStarted => {}
        }
        if Conn::lock(&self.refusal).is_some() {
            return Err(RdpError::AuthRefused {
                user: String::new(),
                reason: "the login was refused".into(),
            });
        }
        if Conn::lock(&self.identity).is_none()
            && let Some((login, password)) = &self.nla
        {
            match self
                .shared
                .deps
                .launch
                .redeem(login, password.expose_secret())
            {
                Some(identity) => {
                    tracing::info!(peer = %self.peer, user = %identity.user, target = %identity.target,
                        "RDP user authenticated by NLA with a launch credential");
                    *Conn::lock(&self.identity) = Some(identity);
                }
                None => {
                    *slot = SessionSlot::Failed("the launch credential was already used".into());
                    return Err(RdpError::AuthRefused {
                        user: login.clone(),
                        reason: "the launch credential was already used or expired".into(),
                    });
                }
            }
        }
        let Some(identity) = Conn::lock(&self.identity).clone() else {
            return Err(RdpError::Client {
                peer: self.peer.to_string(),
                reason: "the client finished the connection sequence without credentials".into(),
            });
        };
        let config = &self.shared.config;
        let (w, h) =
            Conn::lock(&self.requested).unwrap_or((config.default_width, config.default_height));
        match session::start(
            &self.shared,
            &identity,
            Some(self.peer),
            w,
            h,
            ClientKind::Native,
            self.clipboard.clone(),
            self.keyboard_layout.get().copied(),
        )
        .await
        {
            Ok(s) => {
                *slot = SessionSlot::Running(s.clone());
                *Conn::lock(&self.current) = Some(s.clone());
                Conn::lock(&self.handshaking).take();
                Ok(s)
            }
            Err(e) => {
                *slot = SessionSlot::Failed(e.to_string());
                Err(e)
            }
        }
    }

    fn session_now(&self) -> Option<Arc<ActiveSession>> {
        Conn::lock(&self.current).clone()
    }
}

struct Validator(Arc<Conn>);

#[async_trait::async_trait]
impl CredentialValidator for Validator {
    async fn validate(
        &self,
        credentials: &Credentials,
    ) -> Result<CredentialDecision, CredentialValidationError> {
        let conn = &self.0;
        if let Some(identity) = conn
            .shared
            .deps
            .launch
            .redeem(&credentials.username, &credentials.password)
        {
            tracing::info!(peer = %conn.peer, user = %identity.user, target = %identity.target,
                "RDP user authenticated with a launch credential");
            *Conn::lock(&conn.identity) = Some(identity);
            return Ok(CredentialDecision::Accept);
        }
        match conn
            .shared
            .auth
            .authenticate(&credentials.username, &credentials.password)
            .await
        {
            Ok(identity) => {
                tracing::info!(peer = %conn.peer, user = %identity.user, target = %identity.target,
                    "RDP user authenticated");
                *Conn::lock(&conn.identity) = Some(identity);
                Ok(CredentialDecision::Accept)
            }
            Err(e) => {
                tracing::warn!(peer = %conn.peer, error = %e, "RDP login refused");
                if conn.held {
                    // ironrdp-server's own denial is malformed (see `refusal`): let the
                    // connection on without a user; no session starts, and the client is
                    // told why once ironrdp-server lets go of the stream. A user whose
                    // password was right but who has no grant for the target (or names
                    // one that does not exist: the directory cannot tell them apart, and
                    // should not tell a user which targets exist) lacks privileges.
                    conn.refuse(match e {
                        RdpError::Target { .. } => Refusal::NotAllowed,
                        other => Refusal::of(&other),
                    });
                    Ok(CredentialDecision::Accept)
                } else {
                    Ok(CredentialDecision::Reject)
                }
            }
        }
    }
}

struct Display(Arc<Conn>);

#[async_trait::async_trait]
impl RdpServerDisplay for Display {
    async fn size(&mut self) -> DesktopSize {
        if let Some(s) = self.0.session_now() {
            let (width, height) = s.screen.size();
            return DesktopSize { width, height };
        }
        if Conn::lock(&self.0.identity).is_some()
            && let Ok(s) = self.0.ensure_session().await
        {
            let (width, height) = s.screen.size();
            return DesktopSize { width, height };
        }
        let (width, height) = Conn::lock(&self.0.requested).unwrap_or((
            self.0.shared.config.default_width,
            self.0.shared.config.default_height,
        ));
        DesktopSize { width, height }
    }

    async fn request_initial_size(&mut self, client: DesktopSize) -> DesktopSize {
        let config = &self.0.shared.config;
        let (w, h) = session::clamp_size(config, client.width.into(), client.height.into());
        if (w, h) != (client.width, client.height) {
            tracing::warn!(peer = %self.0.peer, requested = ?(client.width, client.height),
                granted = ?(w, h), "client desktop size outside the policy: clamped");
        }
        *Conn::lock(&self.0.requested) = Some((w, h));
        self.size().await
    }

    async fn updates(&mut self) -> anyhow::Result<Box<dyn RdpServerDisplayUpdates>> {
        let s = self
            .0
            .ensure_session()
            .await
            .map_err(|e| anyhow!("session refused: {e}"))?;
        let mut told = Conn::lock(&self.0.requested).unwrap_or(s.screen.size());
        // After the reactivation a resize starts, the client is told once: a client that
        // comes back asking for its old size is not resized again and again.
        if *Conn::lock(&self.0.resized_to) == Some(s.screen.size()) {
            told = s.screen.size();
        }
        Ok(Box::new(Updates {
            watch: s.screen.watch(),
            session: s,
            told,
            resized_to: self.0.clone(),
        }))
    }
}

struct Updates {
    session: Arc<ActiveSession>,
    watch: ScreenWatch,
    /// The desktop size the client was last told; a different screen size (the target's
    /// desktop was clamped, or the target resized it) is sent as a resize first.
    told: (u16, u16),
    /// Where the last resize sent is remembered across the client's reactivations.
    resized_to: Arc<Conn>,
}

#[async_trait::async_trait]
impl RdpServerDisplayUpdates for Updates {
    async fn next_update(&mut self) -> anyhow::Result<Option<DisplayUpdate>> {
        loop {
            let size = self.session.screen.size();
            if size != self.told {
                self.told = size;
                *Conn::lock(&self.resized_to.resized_to) = Some(size);
                let (width, height) = size;
                return Ok(Some(DisplayUpdate::Resize(DesktopSize { width, height })));
            }
            // Every await below is cancel-safe: damage stays in the watch until taken.
            tokio::select! {
                _ = self.session.control.terminated() => return Ok(None),
                () = self.watch.changed() => {}
            }
            if self.session.control.is_paused() {
                self.session.control.wait_unpaused().await;
                continue;
            }
            let Some(region) = self.watch.take_region() else {
                continue;
            };
            let (Some(width), Some(height)) = (
                NonZeroU16::new(region.rect.width),
                NonZeroU16::new(region.rect.height),
            ) else {
                continue;
            };
            let Some(stride) = NonZeroUsize::new(usize::from(region.rect.width) * 4) else {
                continue;
            };
            return Ok(Some(DisplayUpdate::Bitmap(BitmapUpdate {
                x: region.rect.x,
                y: region.rect.y,
                width,
                height,
                format: PixelFormat::RgbA32,
                data: region.rgba.into(),
                stride,
            })));
        }
    }
}

struct Input {
    conn: Arc<Conn>,
    x: u16,
    y: u16,
}

impl Input {
    fn send(&self, ev: InputEvent) {
        if let Some(s) = self.conn.session_now() {
            s.input(ev);
        }
    }
}

impl RdpServerInputHandler for Input {
    fn keyboard(&mut self, event: KeyboardEvent) {
        let ev = match event {
            KeyboardEvent::Pressed { code, extended } => InputEvent::Key {
                code,
                extended,
                down: true,
            },
            KeyboardEvent::Released { code, extended } => InputEvent::Key {
                code,
                extended,
                down: false,
            },
            KeyboardEvent::UnicodePressed(unit) => InputEvent::Unicode { unit, down: true },
            KeyboardEvent::UnicodeReleased(unit) => InputEvent::Unicode { unit, down: false },
            KeyboardEvent::Synchronize(f) => {
                use ironrdp::pdu::input::fast_path::SynchronizeFlags as F;
                InputEvent::Sync {
                    caps: f.contains(F::CAPS_LOCK),
                    num: f.contains(F::NUM_LOCK),
                    scroll: f.contains(F::SCROLL_LOCK),
                }
            }
        };
        self.send(ev);
    }

    fn mouse(&mut self, event: MouseEvent) {
        let (x, y) = (self.x, self.y);
        let button = |button, down| InputEvent::Button { button, down, x, y };
        let ev = match event {
            MouseEvent::Move { x, y } => {
                self.x = x;
                self.y = y;
                InputEvent::Move { x, y }
            }
            MouseEvent::LeftPressed => button(PointerButton::Left, true),
            MouseEvent::LeftReleased => button(PointerButton::Left, false),
            MouseEvent::RightPressed => button(PointerButton::Right, true),
            MouseEvent::RightReleased => button(PointerButton::Right, false),
            MouseEvent::MiddlePressed => button(PointerButton::Middle, true),
            MouseEvent::MiddleReleased => button(PointerButton::Middle, false),
            MouseEvent::VerticalScroll { value } => InputEvent::Wheel { delta: value, x, y },
            _ => return,
        };
        self.send(ev);
    }
}

/// The client's X.224 Connection Request, read ahead of the RDP server so the gateway can
/// choose the security it offers (NLA needs the launch credential of the user the routing
/// cookie names).
struct Request {
    bytes: Vec<u8>,
    protocols: ironrdp::pdu::nego::SecurityProtocol,
    cookie: Option<String>,
}

/// Longest Connection Request read ahead (a cookie is at most a few hundred bytes).
const MAX_REQUEST: usize = 1024;

async fn read_request(stream: &mut TcpStream, peer: SocketAddr) -> Result<Request, RdpError> {
    use tokio::io::AsyncReadExt as _;
    let bad = |reason: String| RdpError::Client {
        peer: peer.to_string(),
        reason,
    };
    let mut head = [0u8; 4];
    stream
        .read_exact(&mut head)
        .await
        .map_err(|e| bad(format!("reading the connection request: {e}")))?;
    if head[0] != 3 {
        return Err(bad(format!(
            "not an RDP connection request (first byte {:#04x}, expected a TPKT)",
            head[0]
        )));
    }
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    if !(11..=MAX_REQUEST).contains(&len) {
        return Err(bad(format!(
            "a connection request of {len} bytes (expected 11..={MAX_REQUEST})"
        )));
    }
    let mut bytes = vec![0u8; len];
    bytes[..4].copy_from_slice(&head);
    stream
        .read_exact(&mut bytes[4..])
        .await
        .map_err(|e| bad(format!("reading the connection request: {e}")))?;
    let cr =
        ironrdp::core::decode::<ironrdp::pdu::x224::X224<ironrdp::pdu::nego::ConnectionRequest>>(
            &bytes,
        )
        .map_err(|e| bad(format!("malformed connection request: {e}")))?;
    let cookie = match cr.0.nego_data {
        Some(ironrdp::pdu::nego::NegoRequestData::Cookie(c)) => Some(c.0),
        _ => None,
    };
    Ok(Request {
        bytes,
        protocols: cr.0.protocol,
        cookie,
    })
}

/// A stream that first replays bytes already read from it.
struct Replay {
    prefix: Vec<u8>,
    pos: usize,
    inner: TcpStream,
}

impl tokio::io::AsyncRead for Replay {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.pos < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.pos);
            let start = self.pos;
            buf.put_slice(&self.prefix[start..start + n]);
            self.pos += n;
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Replay {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
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

/// The user's connection after the Connection Request: TLS in the gateway's hands, or the
/// plain TCP stream left to ironrdp-server (which answers a client with no security in
/// common).
enum UserStream {
    Held(Arc<Mutex<tokio_rustls::server::TlsStream<TcpStream>>>),
    Plain(TcpStream),
}

/// Sends `refusal` to the client on its TLS stream, then closes it (best effort: the client
/// may be gone already).
async fn tell_refused(
    tls: Arc<Mutex<tokio_rustls::server::TlsStream<TcpStream>>>,
    refusal: Refusal,
    peer: SocketAddr,
    within: std::time::Duration,
) {
    use tokio::io::AsyncWriteExt as _;
    // ironrdp-server dropped its handle with the connection: this is the last one.
    let Ok(tls) = Arc::try_unwrap(tls) else {
        tracing::warn!(peer = %peer, "the client's TLS stream is still shared: refusal not sent");
        return;
    };
    let mut tls = tls.into_inner().unwrap_or_else(|p| p.into_inner());
    let send = async {
        tls.write_all(&refusal.pdus()?)
            .await
            .map_err(|e| RdpError::io("sending the refusal", e))?;
        tls.shutdown()
            .await
            .map_err(|e| RdpError::io("closing the connection", e))
    };
    match tokio::time::timeout(within, send).await {
        Ok(Ok(())) => {
            tracing::info!(peer = %peer, refusal = ?refusal, code = ?refusal.error_info(), "refused RDP client told why");
        }
        Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "refusal not delivered"),
        Err(_) => tracing::debug!(peer = %peer, "refusal not delivered in time"),
    }
}

/// Serves one native RDP client on `stream` until it leaves or the session ends. Runs on
/// the calling thread's `LocalSet` (ironrdp-server's connection future is not `Send`).
pub(crate) async fn serve(
    shared: Arc<Shared>,
    identity: crate::tls::ServerIdentity,
    mut stream: TcpStream,
    peer: SocketAddr,
    current: SessionCell,
    handshaking: tokio::sync::OwnedSemaphorePermit,
) -> Result<(), RdpError> {
    let _ = stream.set_nodelay(true);
    let handshake = shared.config.limits.handshake_timeout;
    let request = tokio::time::timeout(handshake, read_request(&mut stream, peer))
        .await
        .map_err(|_| RdpError::Timeout("the client's connection request"))??;
    // NLA only with a launch credential for the user the cookie names: the CredSSP server
    // must know the password it checks (see `launch`).
    let nla = request
        .protocols
        .intersects(
            ironrdp::pdu::nego::SecurityProtocol::HYBRID
                | ironrdp::pdu::nego::SecurityProtocol::HYBRID_EX,
        )
        .then(|| request.cookie.clone())
        .flatten()
        .and_then(|login| {
            shared
                .deps
                .launch
                .peek(&login)
                .map(|(_, password)| (login, password))
        });
    // Answer the Connection Request and run the TLS handshake here when the security the
    // client asked for is one ironrdp-server would secure with TLS, so the stream is still
    // in hand when ironrdp-server is done with it (to tell a refused client why).
    let offered = if nla.is_some() {
        ironrdp::pdu::nego::SecurityProtocol::HYBRID
            | ironrdp::pdu::nego::SecurityProtocol::HYBRID_EX
    } else {
        ironrdp::pdu::nego::SecurityProtocol::SSL
    };
    let user = match crate::refusal::selected_protocol(request.protocols, offered) {
        Some(protocol) => {
            use tokio::io::AsyncWriteExt as _;
            let confirm = crate::refusal::connection_confirm(protocol)?;
            stream
                .write_all(&confirm)
                .await
                .map_err(|e| RdpError::io("sending the connection confirm", e))?;
            let tls = tokio::time::timeout(handshake, identity.acceptor.accept(stream))
                .await
                .map_err(|_| RdpError::Timeout("the client's TLS handshake"))?
                .map_err(|e| RdpError::Tls {
                    side: "user",
                    reason: e.to_string(),
                })?;
            UserStream::Held(Arc::new(Mutex::new(tls)))
        }
        // No security in common: ironrdp-server answers with the negotiation failure.
        None => UserStream::Plain(stream),
    };
    let held = match &user {
        UserStream::Held(tls) => Some(tls.clone()),
        UserStream::Plain(_) => None,
    };
    let conn = Arc::new(Conn {
        shared: shared.clone(),
        peer,
        nla: nla.clone(),
        identity: Mutex::new(None),
        requested: Mutex::new(None),
        resized_to: Mutex::new(None),
        session: tokio::sync::Mutex::new(SessionSlot::NotStarted),
        current,
        clipboard: shared
            .config
            .channels
            .clipboard
            .then(crate::clipboard::Link::new),
        held: held.is_some(),
        refusal: Mutex::new(None),
        handshaking: Mutex::new(Some(handshaking)),
        keyboard_layout: Arc::new(std::sync::OnceLock::new()),
    });
    let sniff = |stream| ConnectInitialSniffer::new(stream, conn.keyboard_layout.clone());
    let builder = RdpServer::builder().with_addr(shared.config.listen);
    let builder = if nla.is_some() {
        builder.with_hybrid(identity.acceptor.clone(), identity.public_key.clone())
    } else {
        builder.with_tls(identity.acceptor.clone())
    };
    let mut server = builder
        .with_input_handler(Input {
            conn: conn.clone(),
            x: 0,
            y: 0,
        })
        .with_display_handler(Display(conn.clone()))
        .with_honor_client_desktop_size(true)
        .with_credential_validator(Some(Arc::new(Validator(conn.clone()))))
        .with_cliprdr_factory(conn.clipboard.as_ref().map(|l| l.user_factory()))
        .build();
    if let Some((login, password)) = &nla {
        server.set_credentials(Some(Credentials {
            username: login.clone(),
            password: password.expose_secret().clone(),
            domain: None,
        }));
    }
    let authenticated = async {
        tokio::time::sleep(handshake).await;
        if conn.session_now().is_some() {
            std::future::pending::<()>().await;
        }
    };
    let run = async {
        match user {
            UserStream::Held(tls) => {
                server
                    .run_connection_with(
                        sniff(HeldTls::new(tls, request.bytes)),
                        ironrdp::server::TransportTls::AlreadyDone,
                    )
                    .await
            }
            UserStream::Plain(stream) => {
                server
                    .run_connection(ConnectInitialSniffer::new(
                        Replay {
                            prefix: request.bytes,
                            pos: 0,
                            inner: stream,
                        },
                        conn.keyboard_layout.clone(),
                    ))
                    .await
            }
        }
    };
    let result = tokio::select! {
        r = run => r.map_err(|e| RdpError::Client {
            peer: peer.to_string(),
            reason: format!("{e:#}"),
        }),
        () = authenticated => Err(RdpError::Timeout("the client's connection sequence")),
    };
    let refusal = *Conn::lock(&conn.refusal);
    if let (Some(tls), Some(refusal)) = (held, refusal) {
        tell_refused(tls, refusal, peer, handshake).await;
    }
    if let Some(s) = conn.session_now() {
        let reason = match &result {
            Ok(()) => "client disconnected".to_owned(),
            Err(e) => format!("client connection ended: {e}"),
        };
        let ended = s.close(&reason).await;
        tracing::info!(peer = %peer, session_id = %s.info.id, reason = %ended, "RDP session ended");
    }
    result
}
