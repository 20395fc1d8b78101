//! One proxied RDP session, whoever the client is (a native RDP client or a browser):
//! open the PrivSession, fetch the credential, log in to the target, record, heartbeat,
//! obey terminate, and end everything in order however it ends.
//!
//! Order of the end, always: the target connection is closed, the recording is sealed,
//! the PrivSession is ended (EndSession), the checkout is checked in, the session leaves the
//! registry. A failure at any step is logged and the next steps still run, so no session
//! stays Connected.
//!
//! The session layer is psm-proxy's: the session's [`SessionControl`] (pause, lock,
//! terminate), its [`SessionInfo`] and the [`SessionRegistry`] of live sessions, shared with
//! every other protocol. What the registry holds for an RDP session is a
//! [`LiveRdpSession`], which adds the decoded desktop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use psm_core::directory::DirectoryLookup;
use psm_core::{NewSession, ProcessInstance, Protocol, SessionId, SessionLifecycle, Timestamp};
use psm_recording::Header;
use tokio::sync::{mpsc, watch};

use crate::access::{self, Authenticator, Identity};
use crate::config::RdpGatewayConfig;
use crate::error::RdpError;
use crate::input::InputEvent;
use crate::recorder::{DesktopRecorder, RecordingFactory};
use crate::screen::DesktopScreen;
use crate::upstream::{self, TargetEnd};
use psm_proxy::{
    Authorization, ChannelInfo, ChannelType, Direction, EndReason, HeartbeatStep, HeartbeatWatch,
    ProxySession, RequestVerdict, SessionControl, SessionInfo, SessionRegistry, TapFactory, TapSet,
    TargetAccess, TransferReport, TransferRequest,
};

/// What the gateway works with, chosen at assembly time.
#[derive(Clone)]
pub struct RdpGatewayDeps {
    /// Sessions' lifecycle: open, heartbeat, end (the in-process engine or the HTTP client;
    /// any `ControlPlane` is one).
    pub control_plane: Arc<dyn SessionLifecycle>,
    /// Users, passwords, roles: lookups only (any `UserDirectory` is one).
    pub directory: Arc<dyn DirectoryLookup>,
    /// Targets, checkouts, credentials (psm-proxy's seam: `ControlPlaneTargets` built
    /// `for_protocol(Protocol::Rdp)`, or `StaticTargets`).
    pub targets: Arc<dyn TargetAccess>,
    /// Where recordings go.
    pub recordings: Arc<dyn RecordingFactory>,
    /// Live sessions (psm-proxy's registry: an SSH gateway in the same process may share
    /// it); each RDP session is a [`LiveRdpSession`] in it.
    pub registry: SessionRegistry,
    /// One-time launch credentials (NLA toward the gateway; issued by the browser gateway's
    /// `POST /launch` or by an integrator).
    pub launch: crate::launch::LaunchTokens,
    /// Where screenshots (every `RdpGatewayConfig::screenshot_interval`) and clipboard text
    /// are pushed beside the recording (the seed's savescreenshot / saveclipboard); `None`:
    /// the recording only.
    pub artifacts: Option<Arc<dyn crate::artifacts::ArtifactPush>>,
    /// Each session's taps (psm-proxy's, as for SSH): they see it start and end, the live
    /// actions on it, and every file and clipboard transfer, which they may refuse before a
    /// byte moves (`Tap::check_transfer`): `psm_proxy::policy_tap::PolicyTapFactory`
    /// applies the command policy's transfer rules this way. `Arc::new(NoTaps)`: none.
    pub taps: Arc<dyn TapFactory>,
}

/// A session's taps as its drive and clipboard ask them (both are set up before the session
/// is, so the taps are filled in once it is). Until then, and for a gateway without taps,
/// see [`check`](Self::check).
#[derive(Clone, Debug, Default)]
pub struct TransferGate(Arc<std::sync::OnceLock<TapSet>>);

impl TransferGate {
    /// Gives the session's taps.
    pub fn set(&self, taps: TapSet) {
        let _ = self.0.set(taps);
    }

    /// May `path` move `direction` over `protocol`? Refused before the session's taps are
    /// known (fail closed: nothing moves before the session is set up).
    pub fn check(
        &self,
        direction: Direction,
        path: &str,
        protocol: &'static str,
    ) -> RequestVerdict {
        match self.0.get() {
            Some(taps) => taps.check_transfer(&TransferRequest {
                direction,
                path: path.to_owned(),
                protocol,
            }),
            None => RequestVerdict::Refuse("the session is not set up yet".into()),
        }
    }

    /// Tells the taps a transfer happened (after [`check`](Self::check) let it start).
    pub async fn transferred(&self, channel: &'static str, transfer: TransferReport) {
        if let Some(taps) = self.0.get() {
            taps.file_transfer(
                &ChannelInfo::new(0, ChannelType::Virtual(channel)),
                &transfer,
            )
            .await;
        }
    }

    fn taps(&self) -> Option<&TapSet> {
        self.0.get()
    }
}

impl std::fmt::Debug for RdpGatewayDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdpGatewayDeps").finish_non_exhaustive()
    }
}

/// Configuration and dependencies shared by every session of a gateway.
pub(crate) struct Shared {
    pub(crate) config: RdpGatewayConfig,
    pub(crate) deps: RdpGatewayDeps,
    pub(crate) auth: Authenticator,
}

impl Shared {
    pub(crate) fn new(config: RdpGatewayConfig, deps: RdpGatewayDeps) -> Arc<Self> {
        let auth = Authenticator::new(
            deps.directory.clone(),
            config.default_target.clone(),
            config.limits.max_concurrent_hashing,
        );
        Arc::new(Self { config, deps, auth })
    }
}

/// A running session's handle, held by the client side (native or browser).
#[derive(Debug)]
pub struct ActiveSession {
    /// Who and what.
    pub info: SessionInfo,
    /// The screen (decoded from the target).
    pub screen: DesktopScreen,
    /// Pause, resume, terminate.
    pub control: Arc<SessionControl>,
    input: mpsc::Sender<InputEvent>,
    recorder: DesktopRecorder,
    ended: watch::Receiver<Option<String>>,
    dropped_input: std::sync::atomic::AtomicU64,
    drive: Option<std::path::PathBuf>,
    gate: TransferGate,
}

impl ActiveSession {
    /// Sends the user's input to the target and the recorder (dropped while paused or
    /// locked, and when the target is not keeping up: input is never queued without bound).
    pub fn input(&self, event: InputEvent) {
        if self.control.is_paused()
            || self.control.is_locked()
            || self.control.termination().is_some()
        {
            return;
        }
        if !matches!(event, InputEvent::Move { .. } | InputEvent::Sync { .. }) {
            // A viewer with control may type too: a change of hands is announced.
            self.control.user_typed();
        }
        self.recorder.input(event);
        if self.input.try_send(event).is_err() {
            self.dropped_input
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The recorder (clipboard, markers).
    pub fn recorder(&self) -> &DesktopRecorder {
        &self.recorder
    }

    /// The session's taps, as transfers ask them ([`TransferGate`]).
    pub fn transfer_gate(&self) -> &TransferGate {
        &self.gate
    }

    /// The session drive's folder on the gateway, when drives are allowed: files placed
    /// here can be opened on the target, files the target writes here stay after the
    /// session ([`crate::drive`]).
    pub fn drive_dir(&self) -> Option<&std::path::Path> {
        self.drive.as_deref()
    }

    /// Waits until the session has fully ended (recording sealed, PrivSession ended);
    /// returns why it ended.
    pub async fn ended(&self) -> String {
        let mut rx = self.ended.clone();
        loop {
            if let Some(r) = rx.borrow_and_update().clone() {
                return r;
            }
            if rx.changed().await.is_err() {
                return "session task gone".into();
            }
        }
    }

    /// Whether the session has ended.
    pub fn is_ended(&self) -> bool {
        self.ended.borrow().is_some()
    }

    /// Ends the session because the client left (or was refused), and waits for the end.
    pub async fn close(&self, reason: &str) -> String {
        self.control.terminate(reason);
        self.ended().await
    }
}

/// Which kind of client drives the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientKind {
    /// An RDP client (mstsc, FreeRDP).
    Native,
    /// A browser over websocket.
    Browser,
}

impl ClientKind {
    /// `native` or `browser` (the recording's `client` metadata).
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::Native => "native",
            ClientKind::Browser => "browser",
        }
    }
}

/// A live RDP session as psm-proxy's [`SessionRegistry`] holds it: who and what, its
/// control, its decoded desktop and the kind of client.
///
/// ```
/// # fn demo(registry: &psm_proxy::SessionRegistry) {
/// use psm_proxy_rdp::session::LiveRdpSession;
/// for info in registry.list() {
///     let Some(session) = registry.get(info.id) else { continue };
///     if let Some(rdp) = LiveRdpSession::of(session.as_ref()) {
///         println!("{} sees a {:?} desktop", info.user, rdp.screen.size());
///     }
/// }
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct LiveRdpSession {
    /// Who and what.
    pub info: SessionInfo,
    /// Its control.
    pub control: Arc<SessionControl>,
    /// Its desktop (join as a viewer with `screen.watch()`).
    pub screen: DesktopScreen,
    /// A native RDP client or a browser.
    pub client: ClientKind,
    /// What live viewers see and a controlling viewer types into.
    pub desktop: Arc<crate::desktop::RdpDesktop>,
}

impl LiveRdpSession {
    /// The RDP session behind a registry entry; `None` for another protocol's session.
    pub fn of(session: &dyn ProxySession) -> Option<&LiveRdpSession> {
        session.as_any()?.downcast_ref()
    }
}

impl ProxySession for LiveRdpSession {
    fn info(&self) -> &SessionInfo {
        &self.info
    }

    fn control(&self) -> &Arc<SessionControl> {
        &self.control
    }

    fn as_any(&self) -> Option<&(dyn std::any::Any + Send + Sync)> {
        Some(self)
    }

    fn desktop(&self) -> Option<Arc<dyn psm_proxy::live::Desktop>> {
        Some(self.desktop.clone())
    }
}

/// Clamps a requested desktop size into 200x200..=policy maximum (RDP's own floor).
pub(crate) fn clamp_size(config: &RdpGatewayConfig, width: u32, height: u32) -> (u16, u16) {
    let w = width.clamp(200, u32::from(config.limits.max_width.max(200)));
    let h = height.clamp(200, u32::from(config.limits.max_height.max(200)));
    (
        u16::try_from(w).unwrap_or(u16::MAX),
        u16::try_from(h).unwrap_or(u16::MAX),
    )
}

/// Opens the session of an authenticated user: authorize, open the PrivSession, get the
/// credential, log in to the target, start recording, and spawn the session's task.
/// `keyboard_layout` is the KLID the client announced, if it did.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn start(
    shared: &Arc<Shared>,
    identity: &Identity,
    peer: Option<SocketAddr>,
    width: u16,
    height: u16,
    kind: ClientKind,
    clipboard: Option<Arc<crate::clipboard::Link>>,
    keyboard_layout: Option<u32>,
) -> Result<Arc<ActiveSession>, RdpError> {
    let deps = &shared.deps;
    let pi = &shared.config.process_instance;
    let auth = access::authorize(deps.targets.as_ref(), &identity.user, &identity.target).await?;
    let id = SessionId::new();
    // The certificate pin is checked before the session opens: a target nobody pinned (or
    // pinned wrongly) is refused without a session.
    if let Err(e) = crate::tls::certificate_pins(&auth.host_key) {
        deps.targets.release(id, &auth).await;
        return Err(e);
    }
    // The client's address, for access windows that name networks: a native client's own
    // connection. A browser's page may come through a reverse proxy whose address is not
    // the user's (trusted proxies are not read here yet), so it reports none, and a window
    // that names networks refuses it.
    let source = peer
        .filter(|_| matches!(kind, ClientKind::Native))
        .map(|p| p.ip());
    deps.control_plane
        .open_session_from(
            NewSession {
                id,
                user: identity.user.clone(),
                target: identity.target.clone(),
                protocol: Protocol::Rdp,
                checkout_id: auth.checkout.clone(),
                process_instance: pi.clone(),
            },
            source,
        )
        .await
        .inspect_err(|_| {
            let (t, a) = (deps.targets.clone(), auth.clone());
            tokio::spawn(async move { t.release(id, &a).await });
        })?;
    tracing::info!(session_id = %id, user = %identity.user, target = %identity.target,
        client = kind.name(), "RDP session opened");
    match connect_and_record(
        shared,
        identity,
        &auth,
        id,
        peer,
        width,
        height,
        kind,
        clipboard,
        keyboard_layout,
    )
    .await
    {
        Ok(s) => Ok(s),
        Err(e) => {
            tracing::warn!(session_id = %id, error = %e, "RDP session could not start");
            end_in_control_plane(shared, id, pi, &auth, None).await;
            Err(e)
        }
    }
}

async fn end_in_control_plane(
    shared: &Shared,
    id: SessionId,
    pi: &ProcessInstance,
    auth: &Authorization,
    recording: Option<&psm_core::RecordingCommitment>,
) {
    psm_proxy::session::end_in_control_plane(shared.deps.control_plane.as_ref(), id, pi, recording)
        .await;
    shared.deps.targets.release(id, auth).await;
}

#[allow(clippy::too_many_arguments)]
async fn connect_and_record(
    shared: &Arc<Shared>,
    identity: &Identity,
    auth: &Authorization,
    id: SessionId,
    peer: Option<SocketAddr>,
    width: u16,
    height: u16,
    kind: ClientKind,
    clipboard: Option<Arc<crate::clipboard::Link>>,
    keyboard_layout: Option<u32>,
) -> Result<Arc<ActiveSession>, RdpError> {
    let keyboard_layout = keyboard_layout.filter(|&k| k != 0);
    let deps = &shared.deps;
    let channels = shared.config.channels;
    let account = auth.account.clone();
    let info = SessionInfo {
        id,
        user: identity.user.clone(),
        target: identity.target.clone(),
        target_account: account,
        protocol: Protocol::Rdp,
        peer,
        started: Timestamp::now_utc(),
    };
    // The session's taps first: the drive and the clipboard ask them before any transfer.
    let taps = deps.taps.taps(&info).await?;
    let gate = TransferGate::default();
    gate.set(taps.clone());
    let drive = match (&shared.config.drive, channels.drives || channels.printers) {
        (Some(config), true) => Some(session_drive(config, id, channels, gate.clone())?),
        _ => None,
    };
    let (drive_dir, drive_channel, drive_events) = match drive {
        Some((dir, channel, events)) => (Some(dir), Some(channel), Some(events)),
        None => (None, None, None),
    };
    let login = access::credential(deps.targets.as_ref(), id, auth).await?;
    let target = upstream::connect_with(
        auth,
        &login,
        width,
        height,
        shared.config.target_security,
        shared.config.limits.target_connect_timeout,
        clipboard.as_ref().map(|l| l.target_channel()),
        drive_channel,
        keyboard_layout.unwrap_or(upstream::DEFAULT_KEYBOARD_LAYOUT),
    )
    .await?;
    // The account's password, typed anywhere in the session, is held back from the
    // recording (the user should not know it; if they do, it is still not recorded).
    let secret = crate::input::SecretWatch::new(login.password.expose_secret());
    drop(login);
    let layout = keyboard_layout.and_then(crate::layout::KeyboardLayout::from_klid);
    let screen = DesktopScreen::new(target.width, target.height);
    let mut header = Header::new(
        id,
        psm_recording::Protocol::Rdp,
        identity.user.clone(),
        format!("{} ({}:{})", identity.target, auth.host, auth.port),
        format!(
            "psm-rdp-gateway/{} {}",
            env!("CARGO_PKG_VERSION"),
            shared.config.process_instance
        ),
    );
    header.metadata.insert(
        "desktop".into(),
        format!("{}x{}", target.width, target.height),
    );
    header.metadata.insert("client".into(), kind.name().into());
    header.metadata.insert(
        "keyboard_layout".into(),
        match (keyboard_layout, layout) {
            (Some(klid), Some(l)) => format!("{klid:#010x} ({})", l.name()),
            (Some(klid), None) => {
                format!("{klid:#010x} (not known here: keys recorded as on US English)")
            }
            (None, _) => "not announced (keys recorded as on US English)".into(),
        },
    );
    header.metadata.insert(
        "keystrokes".into(),
        crate::config::keystroke_policy_name(shared.config.recording.keystrokes).into(),
    );
    if let Some(p) = peer {
        header
            .metadata
            .insert("client_address".into(), p.to_string());
    }
    let writer = deps.recordings.create(header).await?;
    let recorder = DesktopRecorder::start(
        writer,
        screen.clone(),
        shared.config.recording.clone(),
        crate::recorder::KeyboardSetup {
            layout: layout.unwrap_or_default(),
            secret,
        },
    )
    .await?;
    if let Some(dir) = &drive_dir {
        recorder
            .marker(format!("drive: session drive at {}", dir.display()))
            .await;
    }
    let drive_forward = drive_events.map(|(events, rx)| {
        tokio::spawn(forward_drive_events(
            events,
            rx,
            recorder.clone(),
            gate.clone(),
        ))
    });
    let control = Arc::new(SessionControl::new());
    control.set_user(&identity.user);
    taps.session_started(&info, &control).await;
    let notes = drain_control_notes(
        id,
        &control,
        &deps.registry,
        &recorder,
        &shared.config.process_instance,
        &gate,
    );
    let (input_tx, input_rx) = mpsc::channel(1024);
    let (ended_tx, ended_rx) = watch::channel(None);
    let session = Arc::new(ActiveSession {
        info: info.clone(),
        screen: screen.clone(),
        control: control.clone(),
        input: input_tx,
        recorder: recorder.clone(),
        ended: ended_rx,
        dropped_input: std::sync::atomic::AtomicU64::new(0),
        drive: drive_dir,
        gate: gate.clone(),
    });
    let desktop = Arc::new(crate::desktop::RdpDesktop::new(
        screen.clone(),
        control.clone(),
        session.input.clone(),
        recorder.clone(),
    ));
    let registration = deps.registry.register(Arc::new(LiveRdpSession {
        info: info.clone(),
        control: control.clone(),
        screen: screen.clone(),
        client: kind,
        desktop,
    }));
    // Live on this gateway: the control plane routes Watch and live commands here.
    deps.registry.report(psm_core::live::LiveReport {
        session: id,
        actor: shared.config.process_instance.to_string(),
        kind: psm_core::live::LiveReportKind::Started,
    });
    let to_target = clipboard.map(|link| {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(crate::clipboard::bridge(
            link,
            tx,
            recorder.clone(),
            gate.clone(),
            shared.config.limits.max_clipboard_bytes,
            shared
                .config
                .recording
                .capture_clipboard
                .then(|| deps.artifacts.clone().map(|a| (id, a)))
                .flatten(),
        ));
        rx
    });
    if let Some(sink) = deps.artifacts.clone()
        && !shared.config.screenshot_interval.is_zero()
    {
        tokio::spawn(push_screenshots(
            sink,
            id,
            screen.clone(),
            control.clone(),
            shared.config.screenshot_interval,
        ));
    }
    let shared = shared.clone();
    let auth = auth.clone();
    let who = (identity.user.clone(), identity.target.clone());
    tokio::spawn(async move {
        let stop = {
            let shared = shared.clone();
            let control = control.clone();
            async move {
                let heartbeat = heartbeats(&shared, id, &who, control.clone());
                tokio::select! {
                    _ = control.terminated() => {},
                    () = heartbeat => {},
                }
            }
        };
        // The target side runs as a task of its own so that a panic in the RDP stack ends
        // the session properly below (recording sealed, EndSession) instead of leaving it
        // Connected.
        let end = match tokio::spawn(target.run_with(screen, input_rx, to_target, stop)).await {
            Ok(end) => end,
            Err(e) => TargetEnd::Failed(format!("the target side stopped abnormally: {e}")),
        };
        let (reason, why) = match (&end, control.termination()) {
            (TargetEnd::Stopped, Some(r)) => (r.clone(), EndReason::Terminated(r)),
            (TargetEnd::Stopped, None) => ("stopped".to_owned(), EndReason::UserDisconnected),
            (TargetEnd::Closed(r), _) => (
                format!("target closed the session: {r}"),
                EndReason::TargetDisconnected,
            ),
            (TargetEnd::Failed(r), _) => (format!("error: {r}"), EndReason::Error(r.clone())),
        };
        // The client side watches `ended`; make sure it hears a terminate too.
        control.terminate(&reason);
        tracing::info!(session_id = %id, reason = %reason, "RDP session ending");
        // The drive's last events (files closed as the session ended) go in before the seal.
        if let Some(forward) = drive_forward
            && tokio::time::timeout(Duration::from_secs(5), forward)
                .await
                .is_err()
        {
            tracing::warn!(session_id = %id, "the drive's last events were not recorded in time");
        }
        let recording = match recorder.finish(&reason).await {
            Ok(done) => Some(psm_proxy::record::commitment_of(&done)),
            Err(e) => {
                tracing::error!(session_id = %id, error = %e, "sealing the RDP recording failed");
                None
            }
        };
        end_in_control_plane(
            &shared,
            id,
            &shared.config.process_instance,
            &auth,
            recording.as_ref(),
        )
        .await;
        taps.session_ended(&info, &why).await;
        drop(registration);
        if let Some(notes) = notes {
            notes.abort();
        }
        let _ = ended_tx.send(Some(reason));
    });
    Ok(session)
}

/// Creates the session drive: its folder, the `rdpdr` channel serving it, and the queue of
/// its events.
#[allow(clippy::type_complexity)]
fn session_drive(
    config: &crate::drive::DriveConfig,
    id: SessionId,
    channels: crate::config::ChannelPolicy,
    gate: TransferGate,
) -> Result<
    (
        std::path::PathBuf,
        crate::drive::DriveChannel,
        (
            crate::drive::DriveEvents,
            mpsc::Receiver<crate::drive::DriveEvent>,
        ),
    ),
    RdpError,
> {
    let dir = config.create_session_dir(id).map_err(|e| {
        RdpError::io(
            format!("creating the session drive under {}", config.root.display()),
            e,
        )
    })?;
    let (events, rx) = crate::drive::DriveEvents::channel(1024);
    let backend = crate::drive::SessionDrive::new(config, &dir, events.clone())
        .map_err(|e| RdpError::io(format!("opening the session drive {}", dir.display()), e))?
        .with_gate(gate);
    tracing::info!(session_id = %id, dir = %dir.display(), name = %config.name, "session drive ready");
    let channel =
        crate::drive::DriveChannel::with_devices(backend, channels.drives, channels.printers);
    Ok((dir, channel, (events, rx)))
}

/// Forwards the drive's events to the recorder until the drive is gone, then marks how many
/// a full queue dropped.
async fn forward_drive_events(
    events: crate::drive::DriveEvents,
    mut rx: mpsc::Receiver<crate::drive::DriveEvent>,
    recorder: DesktopRecorder,
    gate: TransferGate,
) {
    while let Some(event) = rx.recv().await {
        if let crate::drive::DriveEvent::Transfer {
            protocol,
            path,
            direction,
            size,
            ..
        } = &event
        {
            let transfer = TransferReport {
                direction: (*direction).into(),
                path: path.clone(),
                bytes: *size,
                protocol,
                complete: true,
            };
            gate.transferred("rdpdr", transfer).await;
        }
        recorder.drive(event).await;
    }
    let dropped = events.dropped();
    if dropped > 0 {
        recorder
            .marker(format!(
                "{dropped} drive events were not recorded (drive event queue full)"
            ))
            .await;
    }
}

/// Pushes a screenshot of the whole desktop every `every` until the session ends.
async fn push_screenshots(
    sink: Arc<dyn crate::artifacts::ArtifactPush>,
    id: SessionId,
    screen: DesktopScreen,
    control: Arc<SessionControl>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = control.terminated() => return,
            _ = tick.tick() => {}
        }
        let shot = screen.clone();
        let png = tokio::task::spawn_blocking(move || shot.snapshot().to_png()).await;
        match png {
            Ok(Ok(png)) => {
                if let Err(e) = sink.screenshot(id, png).await {
                    tracing::warn!(session_id = %id, error = %e, "pushing a screenshot failed");
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(session_id = %id, error = %e, "encoding a screenshot failed")
            }
            Err(_) => return,
        }
    }
}

/// Takes the session control's notes (what a pause, lock or viewer did) so that they do not
/// pile up: the RDP session neither records them nor shows them to the user yet, so they are
/// logged.
/// Live actions on the session (pause, lock, viewers, approvals) go to the control plane as
/// reports (which confirm queued commands), into the recording as markers, and to the
/// viewers as notices.
fn drain_control_notes(
    id: SessionId,
    control: &Arc<SessionControl>,
    registry: &SessionRegistry,
    recorder: &DesktopRecorder,
    gateway: &ProcessInstance,
    gate: &TransferGate,
) -> Option<tokio::task::JoinHandle<()>> {
    use psm_proxy::session::ControlNote;
    let mut notes = control.take_notes()?;
    let (control, registry, recorder) = (control.clone(), registry.clone(), recorder.clone());
    let (gateway, gate) = (gateway.clone(), gate.clone());
    Some(tokio::spawn(async move {
        while let Some(note) = notes.recv().await {
            tracing::info!(session_id = %id, note = ?note, "session control");
            match note {
                ControlNote::Report { actor, kind } => {
                    if let Some(taps) = gate.taps() {
                        taps.live(&actor, &kind).await;
                    }
                    if let Some(text) = psm_proxy::live::notice::notice_for(&actor, &kind) {
                        control.publish(psm_proxy::session::LiveEvent::Notice(text));
                    }
                    let report = psm_core::live::LiveReport {
                        session: id,
                        actor,
                        kind,
                    };
                    if let Some(detail) = report.audit_detail(&gateway) {
                        recorder.marker(detail).await;
                    }
                    registry.report(report);
                }
                ControlNote::Notice(text) => {
                    recorder.marker(format!("live: {text}")).await;
                    control.publish(psm_proxy::session::LiveEvent::Notice(text));
                }
                other => {
                    tracing::debug!(note = ?other, "a control note the RDP gateway does not show")
                }
            }
        }
    }))
}

/// Heartbeats until the control plane asks to terminate (then returns after asking the
/// session to end) or the session ends. Unanswered heartbeats lock or end the session, and
/// each answered one re-checks the user, as psm-proxy's [`HeartbeatWatch`] decides for
/// every protocol (issue 17 L6).
async fn heartbeats(
    shared: &Shared,
    id: SessionId,
    (user, target): &(String, String),
    control: Arc<SessionControl>,
) {
    let pi = &shared.config.process_instance;
    let mut tick = tokio::time::interval(shared.config.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut watch = HeartbeatWatch::new(shared.config.heartbeat_policy);
    loop {
        tick.tick().await;
        let step = match shared.deps.control_plane.heartbeat(id, pi).await {
            Ok(reply) if reply.terminate => {
                let reason = reply
                    .reason
                    .unwrap_or_else(|| "terminated by the control plane".into());
                control.terminate(&format!("terminated: {reason}"));
                return;
            }
            Ok(_) => {
                watch.answered(&control);
                watch
                    .recheck_user(shared.deps.directory.as_ref(), user, target)
                    .await
            }
            Err(e) => {
                if matches!(e, psm_core::CoreError::UnknownSession(_)) {
                    control.terminate("the control plane no longer knows this session");
                    return;
                }
                let step = watch.missed(&control);
                tracing::warn!(session_id = %id, error = %e,
                    missed = watch.missed_in_a_row(), "heartbeat failed");
                step
            }
        };
        if let HeartbeatStep::End(reason) = step {
            tracing::info!(session_id = %id, %reason, "ending the session");
            control.terminate(&reason);
            return;
        }
    }
}
