//! One user connection: TLS and startup, the PSM login, the session opened in the control
//! plane with the target logged in to, the relay of every message with its statements
//! judged and recorded, and the clean end (EndSession, recording sealed, checkout released)
//! whatever way it ends.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use pgwire::messages::response::ErrorResponse;
use pgwire::messages::startup::{
    Authentication, GssEncRequest, PasswordMessageFamily, SslRequest, Startup,
};
use pgwire::messages::{DecodeContext, Message, ProtocolVersion};
use psm_core::{NewSession, Protocol, SessionId, Timestamp};
use psm_proxy::registry::Registration;
use psm_proxy::session::{ControlNote, HeartbeatStep, HeartbeatWatch, LiveEvent};
use psm_proxy::{
    Authorization, ChannelInfo, ChannelRequest, EndReason, LoginName, ProxyError, ProxySession,
    RequestVerdict, SessionControl, SessionInfo, TapSet,
};
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use crate::auth::LoginRefusal;
use crate::classify::{SqlClass, classify};
use crate::gateway::Shared;
use crate::statement::{Backend, Request, StatementTracker};
use crate::upstream::{self, LoggedInTarget, PgIo};
use crate::wire::{self, Frame, FrameError};

/// The longest password message accepted from a user.
const MAX_PASSWORD_MESSAGE: usize = 8 * 1024;

/// A live PostgreSQL session in the registry.
pub struct LivePostgresSession {
    info: SessionInfo,
    control: Arc<SessionControl>,
}

impl ProxySession for LivePostgresSession {
    fn info(&self) -> &SessionInfo {
        &self.info
    }
    fn control(&self) -> &Arc<SessionControl> {
        &self.control
    }
}

/// An ErrorResponse: `severity` (`FATAL`, `ERROR`), SQLSTATE `code`, `message`.
pub fn error_response(severity: &str, code: &str, message: &str) -> Bytes {
    let mut out = BytesMut::new();
    let e = ErrorResponse::new(vec![
        (b'S', severity.to_owned()),
        (b'V', severity.to_owned()),
        (b'C', code.to_owned()),
        (b'M', message.to_owned()),
    ]);
    if e.encode(&mut out).is_err() {
        out.clear();
    }
    out.freeze()
}

fn backend(m: impl Message) -> Bytes {
    let mut out = BytesMut::new();
    if m.encode(&mut out).is_err() {
        out.clear();
    }
    out.freeze()
}

async fn refuse(io: &mut (impl AsyncWriteExt + Unpin), code: &str, message: &str) {
    let _ = io.write_all(&error_response("FATAL", code, message)).await;
    let _ = io.flush().await;
    let _ = io.shutdown().await;
}

/// What the user's client asked for at startup.
struct Started {
    io: Box<dyn PgIo>,
    login: LoginName,
    database: String,
    parameters: Vec<(String, String)>,
    password: psm_core::vault::Secret<String>,
}

/// Serves one connection from accept to close.
pub(crate) async fn serve(shared: Arc<Shared>, tcp: TcpStream, peer: Option<SocketAddr>) {
    let Ok(unauth) = shared.unauth.clone().try_acquire_owned() else {
        tracing::warn!(peer = ?peer, "too many connections logging in; one was dropped");
        return;
    };
    let _ = tcp.set_nodelay(true);
    let started = tokio::time::timeout(shared.config.auth_timeout, startup(&shared, tcp)).await;
    let Ok(Some(started)) = started else {
        return;
    };
    let Started {
        mut io,
        login,
        database,
        parameters,
        password,
    } = started;
    let admitted = match shared.login.check(&login, password.expose_secret()).await {
        Ok(Ok(a)) => a,
        Ok(Err(LoginRefusal::Credentials(reason))) => {
            tracing::info!(user = %login.user, peer = ?peer, %reason, "login refused");
            let text = format!("password authentication failed for user \"{}\"", login.user);
            refuse(&mut io, "28P01", &text).await;
            return;
        }
        Ok(Err(LoginRefusal::NotAllowed(reason))) => {
            tracing::info!(user = %login.user, peer = ?peer, %reason, "login refused");
            refuse(&mut io, "28000", &format!("PSM: {reason}")).await;
            return;
        }
        Err(e) => {
            tracing::warn!(user = %login.user, error = %e, "login could not be checked");
            refuse(&mut io, "08006", &format!("PSM: {}", e.user_message())).await;
            return;
        }
    };
    drop(password);
    drop(unauth);
    let Ok(_permit) = shared.sessions.clone().try_acquire_owned() else {
        refuse(&mut io, "53300", "PSM: too many sessions on this gateway").await;
        return;
    };
    let user = admitted.user.name.to_string();
    let target = admitted.target;
    let mut conn = Connection {
        shared: shared.clone(),
        control: Arc::new(SessionControl::new()),
        peer,
    };
    match conn.establish(&user, &target, &parameters).await {
        Ok(Ok((live, session))) => conn.run(io, live, session, database).await,
        Ok(Err(refused)) => {
            tracing::info!(user = %user, target_name = %target,
                error = %upstream::describe_error(&refused.frame), "the target refused the login");
            let _ = io.write_all(&refused.frame.bytes).await;
            let _ = io.shutdown().await;
        }
        Err(e) => {
            tracing::warn!(user = %user, target_name = %target, error = %e, "session could not start");
            refuse(&mut io, "08006", &format!("PSM: {}", e.user_message())).await;
        }
    }
}

/// TLS negotiation and the startup packet, then the password.
async fn startup(shared: &Shared, mut tcp: TcpStream) -> Option<Started> {
    let mut buf = BytesMut::new();
    // Before TLS: SSLRequest, GSSENCRequest, CancelRequest or the startup packet.
    let (mut io, first, tls): (Box<dyn PgIo>, Option<Frame>, bool) = loop {
        let frame = match wire::read_startup(&mut tcp, &mut buf).await {
            Ok(Some(f)) => f,
            Ok(None) => return None,
            Err(e) => {
                refuse(&mut tcp, "08P01", &format!("invalid startup packet: {e}")).await;
                return None;
            }
        };
        if SslRequest::is_ssl_request_packet(&frame.bytes) {
            let Some(config) = shared.config.tls.clone() else {
                tcp.write_all(b"N").await.ok()?;
                continue;
            };
            if !buf.is_empty() {
                // Bytes sent after SSLRequest before the handshake would be taken as
                // encrypted input (CVE-2021-23214 in PostgreSQL itself).
                refuse(&mut tcp, "08P01", "bytes after SSLRequest before TLS").await;
                return None;
            }
            tcp.write_all(b"S").await.ok()?;
            match tokio_rustls::TlsAcceptor::from(config).accept(tcp).await {
                Ok(stream) => break (Box::new(stream), None, true),
                Err(e) => {
                    tracing::debug!(error = %e, "a TLS handshake with a client failed");
                    return None;
                }
            }
        }
        if GssEncRequest::is_gss_enc_request_packet(&frame.bytes) {
            tcp.write_all(b"N").await.ok()?;
            continue;
        }
        if pgwire::messages::cancel::CancelRequest::is_cancel_request_packet(&frame.bytes) {
            cancel(shared, &frame).await;
            return None;
        }
        break (Box::new(tcp), Some(frame), false);
    };
    let frame = match first {
        Some(f) => f,
        None => match wire::read_startup(&mut io, &mut buf).await {
            Ok(Some(f)) => f,
            Ok(None) => return None,
            Err(e) => {
                refuse(&mut io, "08P01", &format!("invalid startup packet: {e}")).await;
                return None;
            }
        },
    };
    if pgwire::messages::cancel::CancelRequest::is_cancel_request_packet(&frame.bytes) {
        cancel(shared, &frame).await;
        return None;
    }
    if !tls && shared.config.require_tls {
        refuse(
            &mut io,
            "28000",
            "PSM requires TLS: connect with sslmode=require (or verify-full)",
        )
        .await;
        return None;
    }
    let mut ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    ctx.awaiting_frontend_ssl = false;
    let startup = match wire::decode::<Startup>(&frame.bytes, &ctx) {
        Some(s) => s,
        None => {
            refuse(&mut io, "08P01", "invalid startup packet").await;
            return None;
        }
    };
    if startup.protocol_number_major != 3 {
        refuse(&mut io, "0A000", "unsupported frontend protocol").await;
        return None;
    }
    let mut parameters: Vec<(String, String)> = Vec::new();
    let mut user = None;
    let mut database = None;
    for (k, v) in startup.parameters {
        match k.as_str() {
            "user" => user = Some(v),
            "database" => {
                database = Some(v.clone());
                parameters.push((k, v));
            }
            "replication" if !matches!(v.as_str(), "false" | "off" | "no" | "0") => {
                refuse(
                    &mut io,
                    "0A000",
                    "PSM does not relay replication connections",
                )
                .await;
                return None;
            }
            // Options the client asks of a newer protocol are not passed on.
            k if k.starts_with("_pq_.") => {}
            _ => parameters.push((k, v)),
        }
    }
    let Some(user) = user else {
        refuse(&mut io, "28000", "no user name in the startup packet").await;
        return None;
    };
    let login = match psm_proxy::parse_login(&user) {
        Ok(l) => l,
        Err(e) => {
            refuse(
                &mut io,
                "28000",
                &format!("PSM: {e} (log in as USER+TARGET)"),
            )
            .await;
            return None;
        }
    };
    if startup.protocol_number_minor != 0 {
        // The client asked for 3.x: the gateway (and its login to the target) speaks 3.0.
        let mut out = BytesMut::new();
        out.put_u8(b'v');
        out.put_i32(12);
        out.put_i32(0);
        out.put_i32(0);
        io.write_all(&out).await.ok()?;
    }
    io.write_all(&backend(Authentication::CleartextPassword))
        .await
        .ok()?;
    io.flush().await.ok()?;
    let frame = match wire::read_message(&mut io, &mut buf, MAX_PASSWORD_MESSAGE).await {
        Ok(Some(f)) if f.tag == b'p' => f,
        Ok(None) => return None,
        _ => {
            refuse(&mut io, "08P01", "expected a password message").await;
            return None;
        }
    };
    let password = match wire::decode::<PasswordMessageFamily>(&frame.bytes, &ctx).and_then(|m| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.into_password().ok()))
            .ok()
            .flatten()
    }) {
        Some(p) => psm_core::vault::Secret::new(p.password),
        None => {
            refuse(&mut io, "08P01", "malformed password message").await;
            return None;
        }
    };
    let database = database.unwrap_or_default();
    Some(Started {
        io,
        login,
        database,
        parameters,
        password,
    })
}

/// A client's cancel request: sent on to the target whose backend key it names.
async fn cancel(shared: &Shared, frame: &Frame) {
    let body = frame.body();
    let (Some(pid), Some(secret)) = (
        body.get(4..).and_then(wire::be_i32),
        body.get(8..).and_then(wire::be_i32),
    ) else {
        return;
    };
    let found = shared
        .cancel_keys
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&(pid, secret))
        .cloned();
    if let Some((host, port)) = found
        && let Err(e) = upstream::cancel(&host, port, (pid, secret)).await
    {
        tracing::debug!(error = %e, "a cancel request could not be passed on");
    }
}

/// An established session: logged in, recorded, registered (the MySQL gateway's too).
pub(crate) struct Live {
    pub(crate) info: SessionInfo,
    pub(crate) auth: Authorization,
    pub(crate) taps: TapSet,
    pub(crate) registration: Mutex<Option<Registration>>,
    pub(crate) cancel_key: Option<(i32, i32)>,
}

struct Connection {
    shared: Arc<Shared>,
    control: Arc<SessionControl>,
    peer: Option<SocketAddr>,
}

type Established = Result<(Arc<Live>, LoggedInTarget), upstream::TargetRefused>;

impl Connection {
    /// Authorization (checkout), PrivSession opened Connected, credential, taps, target
    /// login. Any failure after the PrivSession was opened ends it again.
    async fn establish(
        &mut self,
        user: &str,
        target: &str,
        parameters: &[(String, String)],
    ) -> Result<Established, ProxyError> {
        let deps = &self.shared.deps;
        let auth = deps.targets.authorize(user, target).await?;
        let id = SessionId::new();
        if let Err(e) = deps
            .control_plane
            .open_session_from(
                NewSession {
                    id,
                    user: user.to_owned(),
                    target: target.to_owned(),
                    protocol: Protocol::Postgres,
                    checkout_id: auth.checkout.clone(),
                    process_instance: self.shared.config.process_instance.clone(),
                },
                // The client's address, for access windows that name networks.
                self.peer.map(|p| p.ip()),
            )
            .await
        {
            deps.targets.release(id, &auth).await;
            return Err(e.into());
        }
        tracing::info!(session_id = %id, user, target_name = %target, peer = ?self.peer,
            "database session opened");
        let mut info = SessionInfo {
            id,
            user: user.to_owned(),
            target: target.to_owned(),
            target_account: auth.account.clone(),
            protocol: Protocol::Postgres,
            peer: self.peer,
            started: Timestamp::now_utc(),
        };
        let cred = match deps.targets.credential(id, &auth).await {
            Ok(c) => c,
            Err(e) => {
                self.abort_opened(&info, &auth, None, &e.to_string()).await;
                return Err(e);
            }
        };
        info.target_account = cred.account.clone();
        let taps = match deps.taps.taps(&info).await {
            Ok(t) => t,
            Err(e) => {
                self.abort_opened(&info, &auth, None, &e.to_string()).await;
                return Err(e);
            }
        };
        let logged_in = upstream::login(
            &auth,
            &cred,
            parameters,
            self.shared.config.target_tls,
            self.shared.config.target_connect_timeout,
        )
        .await;
        drop(cred);
        let session = match logged_in {
            Ok(Ok(s)) => s,
            Ok(Err(refused)) => {
                let why = upstream::describe_error(&refused.frame);
                self.abort_opened(&info, &auth, Some(&taps), &why).await;
                return Ok(Err(refused));
            }
            Err(e) => {
                self.abort_opened(&info, &auth, Some(&taps), &e.to_string())
                    .await;
                return Err(e);
            }
        };
        self.control.set_user(&info.user);
        self.control.channel_terminal(0, 160, 48);
        taps.session_started(&info, &self.control).await;
        let registration = deps.registry.register(Arc::new(LivePostgresSession {
            info: info.clone(),
            control: self.control.clone(),
        }));
        deps.registry.report(psm_core::live::LiveReport {
            session: info.id,
            actor: self.shared.config.process_instance.to_string(),
            kind: psm_core::live::LiveReportKind::Started,
        });
        if let Some(key) = session.backend_key {
            self.shared
                .cancel_keys
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, (auth.host.clone(), auth.port));
        }
        let live = Arc::new(Live {
            info,
            auth,
            taps,
            registration: Mutex::new(Some(registration)),
            cancel_key: session.backend_key,
        });
        Ok(Ok((live, session)))
    }

    async fn abort_opened(
        &self,
        info: &SessionInfo,
        auth: &Authorization,
        taps: Option<&TapSet>,
        error: &str,
    ) {
        tracing::warn!(session_id = %info.id, target_name = %info.target, error,
            "session could not start");
        if let Some(taps) = taps {
            taps.session_ended(info, &EndReason::Error(error.to_owned()))
                .await;
        }
        end_in_control_plane(&self.shared, info.id, taps).await;
        self.shared.deps.targets.release(info.id, auth).await;
    }

    /// Relays until either side closes or the session is ended; then ends it everywhere.
    async fn run(
        &self,
        mut client: Box<dyn PgIo>,
        live: Arc<Live>,
        session: LoggedInTarget,
        database: String,
    ) {
        let mut hello = BytesMut::new();
        hello.extend_from_slice(&backend(Authentication::Ok));
        for f in &session.greeting {
            hello.extend_from_slice(&f.bytes);
        }
        if client.write_all(&hello).await.is_err() || client.flush().await.is_err() {
            self.finish(&live, EndReason::UserDisconnected, Vec::new())
                .await;
            return;
        }
        let (closed_tx, _) = tokio::sync::watch::channel(false);
        let notes = self.control.take_notes().map(|n| {
            tokio::spawn(run_notes(
                self.shared.clone(),
                live.clone(),
                self.control.clone(),
                n,
                closed_tx.subscribe(),
            ))
        });
        if let Some(mut injections) = self.control.take_injections() {
            // A policy's ^C and typed input make no sense on a database connection.
            let mut closed = closed_tx.subscribe();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        i = injections.recv() => if i.is_none() { return },
                        _ = closed.changed() => return,
                    }
                }
            });
        }
        tokio::spawn(heartbeat(
            self.shared.clone(),
            live.clone(),
            self.control.clone(),
            closed_tx.subscribe(),
        ));

        let database = if database.is_empty() {
            live.info.target_account.clone()
        } else {
            database
        };
        let tracker = Arc::new(Mutex::new(StatementTracker::new(database.clone())));
        let (cr, cw) = tokio::io::split(client);
        let (tr, tw) = tokio::io::split(session.io);
        let cw = Arc::new(tokio::sync::Mutex::new(cw));
        let pump = Pump {
            shared: self.shared.clone(),
            control: self.control.clone(),
            live: live.clone(),
            tracker: tracker.clone(),
            database,
        };
        let reason = tokio::select! {
            r = pump.user_to_target(cr, tw) => r,
            r = pump.target_to_user(tr, cw.clone()) => r,
            why = self.control.terminated() => {
                let mut w = cw.lock().await;
                let _ = w
                    .write_all(&error_response(
                        "FATAL",
                        "57P01",
                        &format!("PSM: terminating the session: {why}"),
                    ))
                    .await;
                let _ = w.flush().await;
                EndReason::Terminated(why)
            }
        };
        {
            let mut w = cw.lock().await;
            let _ = w.shutdown().await;
        }
        let rest = tracker.lock().unwrap_or_else(|p| p.into_inner()).close();
        let _ = closed_tx.send(true);
        if let Some(task) = notes {
            let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
        }
        self.finish(&live, reason, rest).await;
    }

    async fn finish(&self, live: &Live, reason: EndReason, rest: Vec<crate::statement::Finished>) {
        self.control.terminate(match &reason {
            EndReason::Terminated(r) => r,
            _ => "session ended",
        });
        for f in rest {
            live.taps.statement(&f.statement).await;
        }
        tracing::info!(session_id = %live.info.id, reason = %reason, "database session ending");
        live.taps.session_ended(&live.info, &reason).await;
        end_in_control_plane(&self.shared, live.info.id, Some(&live.taps)).await;
        self.shared
            .deps
            .targets
            .release(live.info.id, &live.auth)
            .await;
        if let Some(key) = live.cancel_key {
            self.shared
                .cancel_keys
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
        }
        live.registration
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.control.publish(LiveEvent::Ended {
            reason: reason.to_string(),
        });
        self.shared
            .deps
            .registry
            .report(psm_core::live::LiveReport {
                session: live.info.id,
                actor: self.shared.config.process_instance.to_string(),
                kind: psm_core::live::LiveReportKind::Ended,
            });
    }
}

pub(crate) async fn end_in_control_plane(shared: &Shared, id: SessionId, taps: Option<&TapSet>) {
    psm_proxy::session::end_in_control_plane(
        shared.deps.control_plane.as_ref(),
        id,
        &shared.config.process_instance,
        taps.and_then(TapSet::recording_commitment).as_ref(),
    )
    .await;
}

/// The two directions of the relay.
struct Pump {
    shared: Arc<Shared>,
    control: Arc<SessionControl>,
    live: Arc<Live>,
    tracker: Arc<Mutex<StatementTracker>>,
    database: String,
}

impl Pump {
    fn tracker(&self) -> std::sync::MutexGuard<'_, StatementTracker> {
        self.tracker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The user's messages toward the target: statements judged (held while the session
    /// is paused), then forwarded or replaced by a refusal.
    async fn user_to_target(
        &self,
        mut r: ReadHalf<Box<dyn PgIo>>,
        mut w: WriteHalf<Box<dyn PgIo>>,
    ) -> EndReason {
        let max = self.shared.config.max_message;
        let mut buf = BytesMut::new();
        let mut out = BytesMut::new();
        let channel = ChannelInfo::new(0, psm_proxy::tap::ChannelType::Session);
        let mut refused_parse = false;
        loop {
            let frame = match wire::split_message(&mut buf, max) {
                Ok(Some(f)) => f,
                Ok(None) => {
                    if !out.is_empty() {
                        if w.write_all(&out).await.is_err() || w.flush().await.is_err() {
                            return EndReason::TargetDisconnected;
                        }
                        out.clear();
                    }
                    match wire::fill(&mut r, &mut buf, "message").await {
                        Ok(0) | Err(_) => return EndReason::UserDisconnected,
                        Ok(_) => continue,
                    }
                }
                Err(e) => return self.bad_input(&e).await,
            };
            self.control
                .count(psm_proxy::Direction::ToTarget, frame.bytes.len());
            if frame.tag == b'X' {
                let _ = w.write_all(&out).await;
                let _ = w.write_all(&frame.bytes).await;
                let _ = w.flush().await;
                return EndReason::UserDisconnected;
            }
            if matches!(frame.tag, b'Q' | b'P' | b'B' | b'E') && self.control.is_paused() {
                // Held: what was read so far goes on first, then nothing until resumed.
                if !out.is_empty() {
                    let _ = w.write_all(&out).await;
                    let _ = w.flush().await;
                    out.clear();
                }
                self.control.wait_unpaused().await;
            }
            if frame.tag == b'S' {
                refused_parse = false;
            }
            if matches!(frame.tag, b'B' | b'E') && !refused_parse && self.control.is_locked() {
                // A prepared statement runs again without a Parse to refuse: while the
                // session is locked it is held, like a paused one, until unlocked. (After a
                // refused Parse the target skips to the Sync by itself.)
                if !out.is_empty() {
                    let _ = w.write_all(&out).await;
                    let _ = w.flush().await;
                    out.clear();
                }
                while self.control.is_locked() {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
            let request = self.tracker().request(&frame);
            match request {
                Request::Statement(text) => {
                    let classes = classify(&text);
                    let names: Vec<&'static str> = classes.iter().map(|c| c.as_str()).collect();
                    match self.judge(&channel, &text, &classes).await {
                        None => {
                            self.tracker().forwarded(&frame, names);
                            out.extend_from_slice(&frame.bytes);
                        }
                        Some(reason) => {
                            refused_parse |= frame.tag == b'P';
                            let replaced = self.tracker().refused(&frame, &reason, names);
                            out.extend_from_slice(&replaced);
                        }
                    }
                }
                Request::Other => {
                    self.tracker().forwarded(&frame, Vec::new());
                    out.extend_from_slice(&frame.bytes);
                }
            }
            if out.len() > 256 * 1024 {
                if w.write_all(&out).await.is_err() {
                    return EndReason::TargetDisconnected;
                }
                out.clear();
            }
        }
    }

    /// The policy's word on a statement: `None` to let it go, or why it is refused.
    async fn judge(
        &self,
        channel: &ChannelInfo,
        text: &str,
        classes: &[SqlClass],
    ) -> Option<String> {
        if self.control.is_locked() {
            let h = self.control.hold();
            return Some(format!(
                "the session is locked by {}{}",
                h.by,
                if h.reason.is_empty() {
                    String::new()
                } else {
                    format!(": {}", h.reason)
                }
            ));
        }
        let taps = &self.live.taps;
        if let RequestVerdict::Refuse(m) = taps
            .check(channel, &ChannelRequest::Exec(text.to_owned()))
            .await
        {
            return Some(m.replace("command refused", "statement refused"));
        }
        let mut seen = Vec::new();
        for c in classes {
            if seen.contains(c) {
                continue;
            }
            seen.push(*c);
            if let RequestVerdict::Refuse(m) = taps
                .check(channel, &ChannelRequest::Exec(c.policy_line()))
                .await
            {
                return Some(m.replace("command refused", "statement refused"));
            }
        }
        None
    }

    async fn bad_input(&self, e: &FrameError) -> EndReason {
        tracing::warn!(session_id = %self.live.info.id, error = %e, "bad message from the user");
        EndReason::Error(format!("bad message from the user: {e}"))
    }

    /// The target's messages toward the user: followed for the recording, refusals' errors
    /// swapped in, then forwarded.
    async fn target_to_user(
        &self,
        mut r: ReadHalf<Box<dyn PgIo>>,
        w: Arc<tokio::sync::Mutex<WriteHalf<Box<dyn PgIo>>>>,
    ) -> EndReason {
        let max = self.shared.config.max_message;
        let mut buf = BytesMut::new();
        loop {
            match wire::fill(&mut r, &mut buf, "message").await {
                Ok(0) | Err(_) => return EndReason::TargetDisconnected,
                Ok(_) => {}
            }
            let mut out = BytesMut::new();
            let finished = {
                let mut t = self.tracker();
                loop {
                    match wire::split_message(&mut buf, max) {
                        Ok(Some(frame)) => match t.response(&frame) {
                            Backend::Forward => out.extend_from_slice(&frame.bytes),
                            Backend::Replace(b) => out.extend_from_slice(&b),
                        },
                        Ok(None) => break,
                        Err(e) => {
                            drop(t);
                            tracing::warn!(session_id = %self.live.info.id, error = %e,
                                "bad message from the target");
                            return EndReason::Error(format!("bad message from the target: {e}"));
                        }
                    }
                }
                t.take_finished()
            };
            if !out.is_empty() {
                self.control.count(psm_proxy::Direction::ToUser, out.len());
                let mut w = w.lock().await;
                if w.write_all(&out).await.is_err() || w.flush().await.is_err() {
                    return EndReason::UserDisconnected;
                }
            }
            for f in finished {
                self.live.taps.statement(&f.statement).await;
                self.publish(&f);
            }
        }
    }

    /// The statement on the viewers' terminal.
    fn publish(&self, f: &crate::statement::Finished) {
        let s = &f.statement;
        let mut line = format!("{}=> {}\r\n", self.database, s.text.replace('\n', "\r\n"));
        match (&s.error, &s.tag) {
            (Some(e), _) => line.push_str(&format!("ERROR {}: {}\r\n", e.code, e.message)),
            (None, Some(tag)) if !s.columns.is_empty() => line.push_str(&format!(
                "{tag} ({} rows; {})\r\n",
                s.rows_returned,
                s.columns.join(", ")
            )),
            (None, Some(tag)) => line.push_str(&format!("{tag}\r\n")),
            (None, None) => {}
        }
        self.control.publish_output(0, &Bytes::from(line));
    }
}

/// Heartbeats while the session lives; ends it when the control plane asks, when the user
/// loses access, or when the checkout runs out.
pub(crate) async fn heartbeat(
    shared: Arc<Shared>,
    live: Arc<Live>,
    control: Arc<SessionControl>,
    mut closed: tokio::sync::watch::Receiver<bool>,
) {
    let cfg = &shared.config;
    let cp = shared.deps.control_plane.clone();
    let mut ticker = tokio::time::interval(cfg.heartbeat_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut watch = HeartbeatWatch::new(cfg.heartbeat_policy);
    let expiry = async {
        match live.auth.expires {
            Some(e) => {
                let now = Timestamp::now_utc();
                let wait = if e > now {
                    e.since(now)
                } else {
                    Duration::ZERO
                };
                tokio::time::sleep(wait).await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expiry);
    loop {
        tokio::select! {
            _ = closed.changed() => return,
            _ = &mut expiry => {
                control.terminate("your access to this target has expired");
                return;
            }
            _ = ticker.tick() => {
                match cp.heartbeat(live.info.id, &cfg.process_instance).await {
                    Ok(reply) => {
                        watch.answered(&control);
                        if reply.terminate {
                            let reason = reply.reason.unwrap_or_else(|| "terminated by the control plane".into());
                            control.terminate(&reason);
                            return;
                        }
                        if let HeartbeatStep::End(reason) = watch
                            .recheck_user(&*shared.deps.directory, &live.info.user, &live.info.target)
                            .await
                        {
                            control.terminate(&reason);
                            return;
                        }
                    }
                    Err(e) if e.is_transient() => {
                        tracing::warn!(session_id = %live.info.id, error = %e, "heartbeat failed");
                        if let HeartbeatStep::End(reason) = watch.missed(&control) {
                            control.terminate(&reason);
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(session_id = %live.info.id, error = %e,
                            "the control plane no longer accepts this session; ending it");
                        control.terminate("the control plane ended this session");
                        return;
                    }
                }
            }
        }
    }
}

/// Records and reports the session's control notes (pause, lock, policy hits).
pub(crate) async fn run_notes(
    shared: Arc<Shared>,
    live: Arc<Live>,
    control: Arc<SessionControl>,
    mut notes: tokio::sync::mpsc::Receiver<ControlNote>,
    mut closed: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let note = tokio::select! {
            n = notes.recv() => n,
            _ = closed.changed() => None,
        };
        match note {
            Some(n) => handle_note(&shared, &live, &control, n).await,
            None => break,
        }
    }
    while let Ok(n) = notes.try_recv() {
        handle_note(&shared, &live, &control, n).await;
    }
}

async fn handle_note(shared: &Shared, live: &Live, control: &SessionControl, note: ControlNote) {
    match note {
        ControlNote::Report { actor, kind } => {
            live.taps.live(&actor, &kind).await;
            let text = psm_proxy::live::notice::notice_for(&actor, &kind);
            shared.deps.registry.report(psm_core::live::LiveReport {
                session: live.info.id,
                actor,
                kind,
            });
            if let Some(text) = text {
                control.publish(LiveEvent::Notice(text));
            }
        }
        ControlNote::Notice(text) => control.publish(LiveEvent::Notice(text)),
        other => {
            tracing::debug!(note = ?other, "a control note the database gateway does not show")
        }
    }
}
