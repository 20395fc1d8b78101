//! One user connection: the login ([`super::handshake`]), the PSM password checked, the
//! session opened in the control plane with the target logged in to
//! ([`super::upstream`]), the relay of every command with its statements judged and
//! recorded ([`super::statement`]), and the clean end whatever way it ends. The session's
//! lifecycle (heartbeats, control notes, EndSession) is the PostgreSQL gateway's, shared.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use psm_core::{NewSession, Protocol, SessionId, Timestamp};
use psm_proxy::session::LiveEvent;
use psm_proxy::{
    Authorization, ChannelInfo, ChannelRequest, EndReason, ProxyError, ProxySession,
    RequestVerdict, SessionControl, SessionInfo, TapSet,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::handshake::{self, HelloFailed, UserHello};
use super::packet::{self, Packet};
use super::statement::{MysqlTracker, REFUSED_ERROR, REFUSED_STATE, Request, ResponseStep};
use super::upstream::{self, ClientChoice, MysqlRefused, MysqlTarget};
use crate::auth::LoginRefusal;
use crate::classify::{SqlClass, classify_mysql};
use crate::gateway::Shared;
use crate::session::{Live, end_in_control_plane, heartbeat, run_notes};
use crate::statement::Finished;
use crate::upstream::PgIo;

/// A live MySQL session in the registry.
pub struct LiveMysqlSession {
    info: SessionInfo,
    control: Arc<SessionControl>,
}

impl ProxySession for LiveMysqlSession {
    fn info(&self) -> &SessionInfo {
        &self.info
    }
    fn control(&self) -> &Arc<SessionControl> {
        &self.control
    }
}

async fn send_err(
    io: &mut (impl AsyncWriteExt + Unpin + ?Sized),
    seq: u8,
    code: u16,
    state: &[u8; 5],
    message: &str,
) {
    let mut out = BytesMut::new();
    packet::encode(seq, &packet::err_payload(code, state, message), &mut out);
    let _ = io.write_all(&out).await;
    let _ = io.flush().await;
}

/// Refuses with `e`'s reason, as `ER_ACCESS_DENIED_ERROR` (1045, 28000) when the control
/// plane forbade it (an access window, a disabled user), `ER_UNKNOWN_ERROR` (1105, HY000)
/// otherwise. Never a client error number (2000-2999, such as 2013): the MariaDB client takes
/// a server's packet carrying one for a malformed packet and hides the reason.
async fn refuse_error(io: Box<dyn PgIo>, seq: u8, e: &ProxyError) {
    let (code, state): (u16, &[u8; 5]) = match e {
        ProxyError::Core(psm_core::CoreError::Forbidden(_)) => (1045, b"28000"),
        _ => (1105, b"HY000"),
    };
    refuse(io, seq, code, state, &format!("PSM: {}", e.user_message())).await;
}

async fn refuse(mut io: Box<dyn PgIo>, seq: u8, code: u16, state: &[u8; 5], message: &str) {
    send_err(&mut io, seq, code, state, message).await;
    let _ = io.shutdown().await;
}

/// Serves one connection from accept to close.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: Option<SocketAddr>,
    connection_id: u32,
) {
    let Ok(unauth) = shared.unauth.clone().try_acquire_owned() else {
        tracing::warn!(peer = ?peer, "too many connections logging in; one was dropped");
        return;
    };
    let _ = tcp.set_nodelay(true);
    let hello = tokio::time::timeout(
        shared.config.auth_timeout,
        handshake::accept(
            tcp,
            shared.config.tls.clone(),
            shared.config.require_tls,
            connection_id,
        ),
    )
    .await;
    let hello = match hello {
        Ok(Ok(h)) => h,
        Ok(Err(HelloFailed { io, code, message })) => {
            tracing::info!(peer = ?peer, reason = %message, "a MySQL client's login stopped");
            if let Some((io, seq)) = io {
                let state = if code == 1153 { b"08S01" } else { b"28000" };
                refuse(io, seq, code, state, &message).await;
            }
            return;
        }
        Err(_) => return,
    };
    let UserHello {
        io,
        login,
        password,
        database,
        capabilities,
        collation,
        next_seq,
    } = hello;
    let admitted = match shared.login.check(&login, password.expose_secret()).await {
        Ok(Ok(a)) => a,
        Ok(Err(LoginRefusal::Credentials(reason))) => {
            tracing::info!(user = %login.user, peer = ?peer, %reason, "login refused");
            let text = format!("Access denied for user '{}' (PSM)", login.user);
            refuse(io, next_seq, 1045, b"28000", &text).await;
            return;
        }
        Ok(Err(LoginRefusal::NotAllowed(reason))) => {
            tracing::info!(user = %login.user, peer = ?peer, %reason, "login refused");
            refuse(io, next_seq, 1045, b"28000", &format!("PSM: {reason}")).await;
            return;
        }
        Err(e) => {
            tracing::warn!(user = %login.user, error = %e, "login could not be checked");
            refuse_error(io, next_seq, &e).await;
            return;
        }
    };
    drop(password);
    drop(unauth);
    let Ok(_permit) = shared.sessions.clone().try_acquire_owned() else {
        refuse(
            io,
            next_seq,
            1040,
            b"08004",
            "PSM: too many sessions on this gateway",
        )
        .await;
        return;
    };
    let user = admitted.user.name.to_string();
    let target = admitted.target;
    let conn = Connection {
        shared: shared.clone(),
        control: Arc::new(SessionControl::new()),
        peer,
    };
    let choice = ClientChoice {
        capabilities,
        collation,
    };
    match conn
        .establish(&user, &target, database.as_deref(), choice)
        .await
    {
        Ok(Ok((live, session))) => {
            let db = database.unwrap_or_default();
            conn.run(io, next_seq, live, session, db).await;
        }
        Ok(Err(refused)) => {
            tracing::info!(user = %user, target_name = %target, code = refused.code,
                error = %refused.message, "the target refused the login");
            let state: [u8; 5] = refused.state.as_bytes().try_into().unwrap_or(*b"28000");
            refuse(io, next_seq, refused.code, &state, &refused.message).await;
        }
        Err(e) => {
            tracing::warn!(user = %user, target_name = %target, error = %e, "session could not start");
            refuse_error(io, next_seq, &e).await;
        }
    }
}

struct Connection {
    shared: Arc<Shared>,
    control: Arc<SessionControl>,
    peer: Option<SocketAddr>,
}

type Established = Result<(Arc<Live>, MysqlTarget), MysqlRefused>;

impl Connection {
    /// Authorization (checkout), PrivSession opened Connected, credential, taps, target
    /// login. Any failure after the PrivSession was opened ends it again.
    async fn establish(
        &self,
        user: &str,
        target: &str,
        database: Option<&str>,
        choice: ClientChoice,
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
                    protocol: Protocol::Mysql,
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
            protocol: Protocol::Mysql,
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
            database,
            choice,
            self.shared.config.target_tls,
            self.shared.config.target_connect_timeout,
        )
        .await;
        drop(cred);
        let session = match logged_in {
            Ok(Ok(s)) => s,
            Ok(Err(refused)) => {
                let why = format!("{} ({}): {}", refused.code, refused.state, refused.message);
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
        let registration = deps.registry.register(Arc::new(LiveMysqlSession {
            info: info.clone(),
            control: self.control.clone(),
        }));
        deps.registry.report(psm_core::live::LiveReport {
            session: info.id,
            actor: self.shared.config.process_instance.to_string(),
            kind: psm_core::live::LiveReportKind::Started,
        });
        let live = Arc::new(Live {
            info,
            auth,
            taps,
            registration: Mutex::new(Some(registration)),
            cancel_key: None,
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

    /// Tells the client it is logged in, then relays until either side closes or the
    /// session is ended; then ends it everywhere.
    async fn run(
        &self,
        mut client: Box<dyn PgIo>,
        seq: u8,
        live: Arc<Live>,
        target: MysqlTarget,
        database: String,
    ) {
        let mut ok = BytesMut::new();
        packet::encode(seq, &packet::ok_payload(target.status), &mut ok);
        if client.write_all(&ok).await.is_err() || client.flush().await.is_err() {
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
        let mut relay = Relay {
            shared: self.shared.clone(),
            control: self.control.clone(),
            live: live.clone(),
            tracker: MysqlTracker::new(database),
            client,
            target: target.io,
            cbuf: BytesMut::new(),
            tbuf: BytesMut::new(),
        };
        let reason = relay.run().await;
        if let EndReason::Terminated(why) = &reason {
            // An unsolicited ERR (sequence 0) the client shows as it loses the connection.
            send_err(
                &mut relay.client,
                0,
                1927,
                b"70100",
                &format!("PSM: terminating the session: {why}"),
            )
            .await;
        }
        let _ = relay.client.shutdown().await;
        let _ = relay.target.shutdown().await;
        let rest = relay.tracker.close();
        let _ = closed_tx.send(true);
        if let Some(task) = notes {
            let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
        }
        self.finish(&live, reason, rest).await;
    }

    async fn finish(&self, live: &Live, reason: EndReason, rest: Vec<Finished>) {
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

/// The relay: one command at a time, as the protocol goes.
struct Relay {
    shared: Arc<Shared>,
    control: Arc<SessionControl>,
    live: Arc<Live>,
    tracker: MysqlTracker,
    client: Box<dyn PgIo>,
    target: Box<dyn PgIo>,
    cbuf: BytesMut,
    tbuf: BytesMut,
}

/// Where reading a packet got to.
enum Read {
    Packet(Vec<Packet>),
    Closed,
    Bad(String),
    Terminated(String),
}

impl Relay {
    async fn run(&mut self) -> EndReason {
        let channel = ChannelInfo::new(0, psm_proxy::tap::ChannelType::Session);
        loop {
            let parts = match self.read_client().await {
                Read::Packet(p) => p,
                Read::Closed => return EndReason::UserDisconnected,
                Read::Bad(e) => return self.bad_input("user", &e),
                Read::Terminated(why) => return EndReason::Terminated(why),
            };
            let payload = packet::join(&parts);
            let seq = parts.last().map_or(0, |p| p.seq);
            let size: usize = parts.iter().map(|p| p.bytes.len()).sum();
            self.control.count(psm_proxy::Direction::ToTarget, size);
            let mut classes_seen = Vec::new();
            match self.tracker.request(&payload) {
                Request::Quit => {
                    let _ = self.forward_to_target(&parts).await;
                    return EndReason::UserDisconnected;
                }
                Request::Refuse(why) => {
                    let text = format!("PSM: {why}");
                    send_err(
                        &mut self.client,
                        seq.wrapping_add(1),
                        REFUSED_ERROR,
                        REFUSED_STATE,
                        &text,
                    )
                    .await;
                    continue;
                }
                Request::Statement(text) => {
                    if self.control.is_paused() {
                        tokio::select! {
                            _ = self.control.wait_unpaused() => {}
                            why = self.control.terminated() => return EndReason::Terminated(why),
                        }
                    }
                    let classes = classify_mysql(&text);
                    let names: Vec<&'static str> = classes.iter().map(|c| c.as_str()).collect();
                    if let Some(reason) =
                        judge(&self.control, &self.live.taps, &channel, &text, &classes).await
                    {
                        let message = format!("PSM: {reason}");
                        send_err(
                            &mut self.client,
                            seq.wrapping_add(1),
                            REFUSED_ERROR,
                            REFUSED_STATE,
                            &message,
                        )
                        .await;
                        self.tracker.refused(&payload, &reason, names);
                        self.publish_finished().await;
                        continue;
                    }
                    classes_seen = names;
                }
                Request::Other => {}
            }
            if let Err(reason) = self.forward_to_target(&parts).await {
                return reason;
            }
            self.tracker.forwarded(&payload, classes_seen);
            if self.tracker.expects_response()
                && let Err(reason) = self.relay_response().await
            {
                return reason;
            }
            self.publish_finished().await;
        }
    }

    async fn forward_to_target(&mut self, parts: &[Packet]) -> Result<(), EndReason> {
        for p in parts {
            if self.target.write_all(&p.bytes).await.is_err() {
                return Err(EndReason::TargetDisconnected);
            }
        }
        self.target
            .flush()
            .await
            .map_err(|_| EndReason::TargetDisconnected)
    }

    /// The target's answer to one command, forwarded packet by packet (batched).
    async fn relay_response(&mut self) -> Result<(), EndReason> {
        let max = self.shared.config.max_message;
        let mut out = BytesMut::new();
        let mut parts = Vec::new();
        loop {
            match packet::split_logical(&mut self.tbuf, max, &mut parts) {
                Ok(true) => {
                    let step = self.tracker.response(&packet::join(&parts));
                    for p in parts.drain(..) {
                        out.extend_from_slice(&p.bytes);
                    }
                    match step {
                        ResponseStep::More => {
                            if out.len() > 256 * 1024 {
                                self.flush_to_client(&mut out).await?;
                            }
                        }
                        ResponseStep::Done => {
                            self.flush_to_client(&mut out).await?;
                            if !self.tbuf.is_empty() {
                                return Err(self.bad_input("target", "bytes after a response"));
                            }
                            return Ok(());
                        }
                        ResponseStep::LocalInfile => {
                            self.flush_to_client(&mut out).await?;
                            self.local_infile().await?;
                        }
                    }
                    continue;
                }
                Ok(false) => {}
                Err(e) => return Err(self.bad_input("target", &e.to_string())),
            }
            self.flush_to_client(&mut out).await?;
            tokio::select! {
                n = packet::fill(&mut self.target, &mut self.tbuf) => match n {
                    Ok(0) | Err(_) => return Err(EndReason::TargetDisconnected),
                    Ok(_) => {}
                },
                why = self.control.terminated() => return Err(EndReason::Terminated(why)),
            }
        }
    }

    /// `LOAD DATA LOCAL`: the client's file goes to the target, up to its empty packet.
    async fn local_infile(&mut self) -> Result<(), EndReason> {
        loop {
            let parts = match self.read_client().await {
                Read::Packet(p) => p,
                Read::Closed => return Err(EndReason::UserDisconnected),
                Read::Bad(e) => return Err(self.bad_input("user", &e)),
                Read::Terminated(why) => return Err(EndReason::Terminated(why)),
            };
            let last = parts.len() == 1 && parts[0].payload().is_empty();
            let size: usize = parts.iter().map(|p| p.bytes.len()).sum();
            self.control.count(psm_proxy::Direction::ToTarget, size);
            self.forward_to_target(&parts).await?;
            if last {
                return Ok(());
            }
        }
    }

    async fn flush_to_client(&mut self, out: &mut BytesMut) -> Result<(), EndReason> {
        if out.is_empty() {
            return Ok(());
        }
        self.control.count(psm_proxy::Direction::ToUser, out.len());
        if self.client.write_all(out).await.is_err() || self.client.flush().await.is_err() {
            return Err(EndReason::UserDisconnected);
        }
        out.clear();
        Ok(())
    }

    async fn read_client(&mut self) -> Read {
        let max = self.shared.config.max_message;
        let mut parts = Vec::new();
        loop {
            match packet::split_logical(&mut self.cbuf, max, &mut parts) {
                Ok(true) => return Read::Packet(parts),
                Ok(false) => {}
                Err(e) => return Read::Bad(e.to_string()),
            }
            tokio::select! {
                n = packet::fill(&mut self.client, &mut self.cbuf) => match n {
                    Ok(0) | Err(_) => return Read::Closed,
                    Ok(_) => {}
                },
                why = self.control.terminated() => return Read::Terminated(why),
            }
        }
    }

    fn bad_input(&self, from: &str, e: &str) -> EndReason {
        tracing::warn!(session_id = %self.live.info.id, error = %e, "bad packet from the {from}");
        EndReason::Error(format!("bad packet from the {from}: {e}"))
    }

    async fn publish_finished(&mut self) {
        for f in self.tracker.take_finished() {
            self.live.taps.statement(&f.statement).await;
            let s = &f.statement;
            let mut line = format!("{}> {}\r\n", s.database, s.text.replace('\n', "\r\n"));
            match (&s.error, &s.tag) {
                (Some(e), _) => line.push_str(&format!("ERROR {}: {}\r\n", e.code, e.message)),
                (None, _) if !s.columns.is_empty() => line.push_str(&format!(
                    "{} rows ({})\r\n",
                    s.rows_returned,
                    s.columns.join(", ")
                )),
                (None, _) => {
                    line.push_str(&format!("OK, {} rows affected\r\n", s.rows.unwrap_or(0)))
                }
            }
            self.control.publish_output(0, &Bytes::from(line));
        }
    }
}

/// The policy's word on a statement: `None` to let it go, or why it is refused.
async fn judge(
    control: &SessionControl,
    taps: &TapSet,
    channel: &ChannelInfo,
    text: &str,
    classes: &[SqlClass],
) -> Option<String> {
    if control.is_locked() {
        let h = control.hold();

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
