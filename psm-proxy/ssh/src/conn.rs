//! One user connection: the session it becomes once a target is chosen, its heartbeat and
//! checkout timer, and its clean end (EndSession, taps sealed, checkout released) whatever
//! way it ends.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use psm_core::directory::DirectoryUser;
use psm_core::{NewSession, Protocol, SessionId, Timestamp};
use psm_proxy::error::ProxyError;
use psm_proxy::live::notice::notice_for;
use psm_proxy::registry::Registration;
use psm_proxy::session::{
    ControlNote, HeartbeatStep, HeartbeatWatch, LiveEvent, ProxySession, SessionControl,
    SessionInfo,
};
use psm_proxy::tap::Direction;
use psm_proxy::tap::{ChannelInfo, ChannelType, EndReason, TapSet};
use psm_proxy::target::Authorization;
use russh::{ChannelId, client, server};
use tokio::sync::OwnedSemaphorePermit;

use super::Shared;
use super::bridge;
use super::upstream::{self, Upstream};

/// An established session: logged in to the target, recorded, registered.
pub(crate) struct Live {
    pub(crate) info: SessionInfo,
    pub(crate) auth: Authorization,
    pub(crate) upstream: Upstream,
    pub(crate) taps: TapSet,
    registration: Mutex<Option<Registration>>,
    notes_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct View {
    info: SessionInfo,
    control: Arc<SessionControl>,
    channels: Arc<Mutex<HashSet<ChannelId>>>,
}

impl ProxySession for View {
    fn info(&self) -> &SessionInfo {
        &self.info
    }
    fn control(&self) -> &Arc<SessionControl> {
        &self.control
    }
    fn channels(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|c| u32::from(*c))
            .collect();
        v.sort_unstable();
        v
    }
}

/// The state of one user connection shared by its russh handler, its channel pumps and the
/// task that runs it.
pub(crate) struct Conn {
    pub(crate) shared: Arc<Shared>,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) server: OnceLock<server::Handle>,
    pub(crate) control: Arc<SessionControl>,
    pub(crate) live: OnceLock<Arc<Live>>,
    establishing: tokio::sync::Mutex<()>,
    pub(crate) authenticated: AtomicBool,
    finished: AtomicBool,
    pub(crate) unauth_permit: Mutex<Option<crate::limits::PreAuth>>,
    pub(crate) session_permit: Mutex<Option<OwnedSemaphorePermit>>,
    /// Open user-side session channels (where notices go).
    pub(crate) session_channels: Arc<Mutex<HashSet<ChannelId>>>,
    closed: tokio::sync::watch::Sender<bool>,
    /// Bridged channels whose last events are not recorded yet.
    pub(crate) bridges: tokio::sync::watch::Sender<usize>,
    /// Bridged session channels by user-side id (where injected input goes).
    pub(crate) bridged: Mutex<HashMap<u32, Arc<bridge::ChannelState>>>,
    /// A connection made inside the gateway (the browser terminal), not from the network.
    pub(crate) internal: bool,
    /// Port-forward channels open now (both directions), counted against `max_channels`
    /// with the session channels.
    forwards: Arc<std::sync::atomic::AtomicUsize>,
}

/// One port-forward channel's place in its connection's channel count, given back on drop.
pub(crate) struct ForwardSlot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for ForwardSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Conn {
    pub(crate) fn new(
        shared: Arc<Shared>,
        peer: Option<SocketAddr>,
        unauth: crate::limits::PreAuth,
        internal: bool,
    ) -> Self {
        Self {
            shared,
            peer,
            server: OnceLock::new(),
            control: Arc::new(SessionControl::new()),
            live: OnceLock::new(),
            establishing: tokio::sync::Mutex::new(()),
            authenticated: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            unauth_permit: Mutex::new(Some(unauth)),
            session_permit: Mutex::new(None),
            session_channels: Arc::new(Mutex::new(HashSet::new())),
            closed: tokio::sync::watch::Sender::new(false),
            bridges: tokio::sync::watch::Sender::new(0),
            bridged: Mutex::new(HashMap::new()),
            internal,
            forwards: Arc::default(),
        }
    }

    /// The connection timed out or failed authentication: a strike against its source
    /// (see `limits`), counted when the connection ends unauthenticated.
    pub(crate) fn preauth_strike(&self) {
        if let Some(p) = self
            .unauth_permit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            p.strike();
        }
    }

    /// The connection is being closed unauthenticated: its places in the counts are given
    /// back now (a strike counted before the peer sees the close), not when it is dropped.
    pub(crate) fn release_preauth(&self) {
        let released = self
            .unauth_permit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(released);
    }

    /// Port-forward channels open now.
    pub(crate) fn forward_count(&self) -> usize {
        self.forwards.load(Ordering::SeqCst)
    }

    /// A place for one more port-forward channel, unless it and the `session_channels`
    /// the handler holds would pass `max_channels`.
    pub(crate) fn reserve_forward(&self, session_channels: usize) -> Option<ForwardSlot> {
        let max = self.shared.config.max_channels;
        self.forwards
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n + session_channels < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ForwardSlot(self.forwards.clone()))
    }

    pub(crate) fn peer_text(&self) -> String {
        self.peer
            .map_or_else(|| "unknown".into(), |p| p.to_string())
    }

    /// Opens the session for `user` on `target`: access check, authorization (checkout),
    /// PrivSession opened Connected, taps made, credential fetched, target logged in. Any
    /// failure after the PrivSession was opened ends it again, so none is left Connected.
    pub(crate) async fn establish(
        self: &Arc<Self>,
        user: &DirectoryUser,
        target: &str,
    ) -> Result<Arc<Live>, ProxyError> {
        let _guard = self.establishing.lock().await;
        if let Some(live) = self.live.get() {
            return Ok(live.clone());
        }
        let deps = &self.shared.deps;
        let user_name = user.name.to_string();
        if !deps.directory.may_reach(user, target).await? {
            return Err(ProxyError::NotAllowed {
                user: user_name,
                target: target.to_owned(),
            });
        }
        let auth = deps.targets.authorize(&user_name, target).await?;
        let id = SessionId::new();
        if let Err(e) = deps
            .control_plane
            .open_session_from(
                NewSession {
                    id,
                    user: user_name.clone(),
                    target: target.to_owned(),
                    protocol: Protocol::Ssh,
                    checkout_id: auth.checkout.clone(),
                    process_instance: self.shared.config.process_instance.clone(),
                },
                // The browser terminal connects inside the gateway: its loopback address is
                // not the user's, so it reports none (a window with networks refuses it).
                self.peer.filter(|_| !self.internal).map(|p| p.ip()),
            )
            .await
        {
            deps.targets.release(id, &auth).await;
            return Err(e.into());
        }
        tracing::info!(session_id = %id, user = %user_name, target_name = %target,
            peer = %self.peer_text(), "session opened");
        let mut info = SessionInfo {
            id,
            user: user_name.clone(),
            target: target.to_owned(),
            target_account: auth.account.clone(),
            protocol: Protocol::Ssh,
            peer: self.peer,
            started: Timestamp::now_utc(),
        };
        let cred = match deps.targets.credential(id, &auth).await {
            Ok(c) => c,
            Err(e) => {
                self.abort_opened(&info, &auth, None, &e).await;
                return Err(e);
            }
        };
        info.target_account = cred.account.clone();
        let taps = match deps.taps.taps(&info).await {
            Ok(t) => t,
            Err(e) => {
                self.abort_opened(&info, &auth, None, &e).await;
                return Err(e);
            }
        };
        let connected = upstream::connect(
            &auth,
            &cred,
            self.shared.config.target_connect_timeout,
            Arc::downgrade(self),
            self.shared.client_config.clone(),
        )
        .await;
        drop(cred);
        let upstream = match connected {
            Ok(u) => u,
            Err(e) => {
                self.abort_opened(&info, &auth, Some(&taps), &e).await;
                return Err(e);
            }
        };
        self.control.set_user(&info.user);
        taps.session_started(&info, &self.control).await;
        let registration = deps.registry.register(Arc::new(View {
            info: info.clone(),
            control: self.control.clone(),
            channels: self.session_channels.clone(),
        }));
        deps.registry.report(psm_core::live::LiveReport {
            session: info.id,
            actor: self.shared.config.process_instance.to_string(),
            kind: psm_core::live::LiveReportKind::Started,
        });
        let live = Arc::new(Live {
            info,
            auth,
            upstream,
            taps,
            registration: Mutex::new(Some(registration)),
            notes_task: Mutex::new(None),
        });
        let _ = self.live.set(live.clone());
        if let Some(notes) = self.control.take_notes() {
            let task = tokio::spawn(run_notes(self.clone(), live.clone(), notes));
            *live.notes_task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        }
        if let Some(injections) = self.control.take_injections() {
            tokio::spawn(run_injections(self.clone(), injections));
        }
        tokio::spawn(heartbeat(self.clone(), live.clone()));
        Ok(live)
    }

    async fn abort_opened(
        &self,
        info: &SessionInfo,
        auth: &Authorization,
        taps: Option<&TapSet>,
        error: &ProxyError,
    ) {
        tracing::warn!(session_id = %info.id, target_name = %info.target, error = %error,
            "session could not start");
        if let Some(taps) = taps {
            taps.session_ended(info, &EndReason::Error(error.to_string()))
                .await;
        }
        self.end_in_control_plane(info.id, taps).await;
        self.shared.deps.targets.release(info.id, auth).await;
    }

    async fn end_in_control_plane(&self, id: SessionId, taps: Option<&TapSet>) {
        psm_proxy::session::end_in_control_plane(
            self.shared.deps.control_plane.as_ref(),
            id,
            &self.shared.config.process_instance,
            taps.and_then(TapSet::recording_commitment).as_ref(),
        )
        .await;
    }

    /// Writes raw bytes on a session channel's terminal (every one when `channel` is
    /// `None`), beside the bridge (a paused session's held output does not hold these).
    pub(crate) async fn write_user(&self, channel: Option<u32>, bytes: bytes::Bytes) {
        let Some(handle) = self.server.get() else {
            return;
        };
        let channels: Vec<ChannelId> = self
            .session_channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .filter(|c| channel.is_none_or(|want| u32::from(*c) == want))
            .collect();
        for ch in channels {
            let _ =
                tokio::time::timeout(Duration::from_secs(2), handle.data(ch, bytes.clone())).await;
        }
    }

    /// Writes a notice on every open session channel's terminal.
    pub(crate) async fn notice(&self, text: &str) {
        let Some(handle) = self.server.get() else {
            return;
        };
        let channels: Vec<ChannelId> = self
            .session_channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        let msg = format!("\r\n[PSM] {text}\r\n");
        for ch in channels {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                handle.extended_data(ch, 1, bytes::Bytes::from(msg.clone().into_bytes())),
            )
            .await;
        }
    }

    /// Ends everything once: taps sealed, EndSession, checkout released, target closed.
    pub(crate) async fn finish(&self, reason: EndReason) {
        if self.finished.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = self.closed.send(true);
        self.control.terminate(match &reason {
            EndReason::Terminated(r) => r,
            _ => "session ended",
        });
        if let Some(live) = self.live.get() {
            // Let the channels' pumps record their exit status and close before the recording
            // is sealed (bounded: a stuck target must not hold the session open).
            let mut bridges = self.bridges.subscribe();
            let _ =
                tokio::time::timeout(Duration::from_secs(3), bridges.wait_for(|n| *n == 0)).await;
            tracing::info!(session_id = %live.info.id, reason = ?reason, "session ending");
            // Control notes still queued (a terminate's audit and recording event) go into
            // the recording before it is sealed.
            let notes = live
                .notes_task
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(task) = notes {
                let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
            }
            live.taps.session_ended(&live.info, &reason).await;
            self.end_in_control_plane(live.info.id, Some(&live.taps))
                .await;
            self.shared
                .deps
                .targets
                .release(live.info.id, &live.auth)
                .await;
            live.upstream.disconnect("session ended").await;
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
        self.session_permit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.unauth_permit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    /// Target-initiated `forwarded-tcpip` channel (the user's `ssh -R`).
    pub(crate) async fn forwarded_tcpip(
        self: Arc<Self>,
        channel: russh::Channel<client::Msg>,
        reply: client::ChannelOpenHandle,
        connected_address: String,
        connected_port: u32,
        originator_address: String,
        originator_port: u32,
    ) {
        let (Some(handle), Some(live)) = (self.server.get(), self.live.get()) else {
            reply.reject(russh::ChannelOpenFailure::ConnectFailed).await;
            return;
        };
        if !self.shared.config.allow_remote_forwarding {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return;
        }
        // The handler's session channels are not visible here; the session-channel set
        // (where notices go) stands in for them.
        let sessions = self
            .session_channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        let Some(slot) = self.reserve_forward(sessions) else {
            reply
                .reject(russh::ChannelOpenFailure::ResourceShortage)
                .await;
            return;
        };
        let user_side = handle
            .channel_open_forwarded_tcpip(
                connected_address.clone(),
                connected_port,
                originator_address,
                originator_port,
            )
            .await;
        match user_side {
            Ok(user_channel) => {
                reply.accept().await;
                let info = ChannelInfo::new(
                    u32::from(user_channel.id()),
                    ChannelType::ForwardedTcpip {
                        host: connected_address,
                        port: connected_port,
                    },
                );
                bridge::spawn_raw(
                    self.clone(),
                    live.clone(),
                    info,
                    user_channel,
                    channel,
                    slot,
                );
            }
            Err(_) => reply.reject(russh::ChannelOpenFailure::ConnectFailed).await,
        }
    }

    pub(crate) fn closed(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closed.subscribe()
    }
}

/// Heartbeats (Polling) while the session lives; ends it when the control plane asks, when
/// the session is no longer Connected there, or when the checkout runs out (after a warning).
async fn heartbeat(conn: Arc<Conn>, live: Arc<Live>) {
    let cfg = &conn.shared.config;
    let cp = conn.shared.deps.control_plane.clone();
    let mut closed = conn.closed();
    let mut ticker = tokio::time::interval(cfg.heartbeat_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let expires = live.auth.expires;
    let mut warned = false;
    let mut watch = HeartbeatWatch::new(cfg.heartbeat_policy);
    loop {
        let next_expiry_event = expires.map(|e| {
            let warn_at = e.saturating_sub(cfg.expiry_warning);
            let at = if warned { e } else { warn_at };
            let now = Timestamp::now_utc();
            if at > now {
                at.since(now)
            } else {
                Duration::ZERO
            }
        });
        let expiry_sleep = async {
            match next_expiry_event {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = closed.changed() => return,
            _ = ticker.tick() => {
                if live.upstream.handle.is_closed() {
                    conn.control.terminate("the target closed the connection");
                    return;
                }
                match cp.heartbeat(live.info.id, &cfg.process_instance).await {
                    Ok(reply) => {
                        watch.answered(&conn.control);
                        if let Some(text) = watch.access_window(&reply, &conn.control) {
                            conn.notice(&text).await;
                        }
                        if reply.terminate {
                            let reason = reply.reason.unwrap_or_else(|| "terminated by the control plane".into());
                            conn.control.terminate(&reason);
                            return;
                        }
                        let directory = &*conn.shared.deps.directory;
                        if let HeartbeatStep::End(reason) =
                            watch.recheck_user(directory, &live.info.user, &live.info.target).await
                        {
                            tracing::info!(session_id = %live.info.id, %reason, "ending the session");
                            conn.control.terminate(&reason);
                            return;
                        }
                    }
                    Err(e) if e.is_transient() => {
                        let step = watch.missed(&conn.control);
                        tracing::warn!(session_id = %live.info.id, error = %e,
                            missed = watch.missed_in_a_row(), "heartbeat failed");
                        if let HeartbeatStep::End(reason) = step {
                            conn.control.terminate(&reason);
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(session_id = %live.info.id, error = %e,
                            "the control plane no longer accepts this session; ending it");
                        conn.control.terminate("the control plane ended this session");
                        return;
                    }
                }
            }
            _ = expiry_sleep => {
                if warned {
                    conn.control.terminate("your access to this target has expired");
                    return;
                }
                warned = true;
                let left = expires.map(|e| e.since(Timestamp::now_utc()).as_secs()).unwrap_or(0);
                conn.notice(&format!(
                    "your access to {} expires in {left} seconds; the session will then be closed",
                    live.info.target
                )).await;
            }
        }
    }
}

/// Records, reports and shows the session's control notes (pause, lock, policy hits...),
/// until the connection closes; then drains what is left.
async fn run_notes(
    conn: Arc<Conn>,
    live: Arc<Live>,
    mut notes: tokio::sync::mpsc::Receiver<ControlNote>,
) {
    let mut closed = conn.closed();
    loop {
        let note = tokio::select! {
            n = notes.recv() => n,
            _ = closed.changed() => None,
        };
        match note {
            Some(n) => handle_note(&conn, &live, n).await,
            None => break,
        }
    }
    while let Ok(n) = notes.try_recv() {
        handle_note(&conn, &live, n).await;
    }
}

async fn handle_note(conn: &Conn, live: &Live, note: ControlNote) {
    match note {
        ControlNote::Report { actor, kind } => {
            live.taps.live(&actor, &kind).await;
            let text = notice_for(&actor, &kind);
            conn.shared
                .deps
                .registry
                .report(psm_core::live::LiveReport {
                    session: live.info.id,
                    actor,
                    kind,
                });
            if let Some(text) = text {
                conn.notice(&text).await;
                conn.control.publish(LiveEvent::Notice(text));
            }
        }
        ControlNote::Notice(text) => {
            conn.notice(&text).await;
            conn.control.publish(LiveEvent::Notice(text));
        }
        other => tracing::debug!(note = ?other, "a control note the SSH gateway does not show"),
    }
}

/// Writes injected bytes: toward the target through the channel's pump (so taps see them),
/// toward the user beside the bridge.
async fn run_injections(
    conn: Arc<Conn>,
    mut injections: tokio::sync::mpsc::UnboundedReceiver<psm_proxy::session::Injection>,
) {
    let mut closed = conn.closed();
    loop {
        let inj = tokio::select! {
            i = injections.recv() => i,
            _ = closed.changed() => None,
        };
        let Some(inj) = inj else {
            return;
        };
        match inj.direction {
            Direction::ToTarget => {
                let channel = inj.channel.or_else(|| conn.control.primary_channel());
                let state = channel.and_then(|c| {
                    conn.bridged
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(&c)
                        .cloned()
                });
                match state {
                    Some(st) => st.inject(inj.bytes),
                    None => tracing::debug!("injected input has no terminal channel to go to"),
                }
            }
            Direction::ToUser => conn.write_user(inj.channel, inj.bytes).await,
        }
    }
}
