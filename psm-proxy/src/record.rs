//! The recorder: a [`Tap`] that writes every session into a `.psmr` recording through
//! psm-recording's async writer (chunked, signed, durable chunk by chunk).
//!
//! What is recorded, per channel: its opening (shell, exec with the command, subsystem, port
//! forward), terminal output (stdout and stderr), what the user typed (input typed at a
//! secret prompt as a redacted-input event, see [`crate::redact`]), resizes, signals, the exit
//! status, and file transfers (SFTP and scp) as file-transfer events with path, direction and
//! size. The bytes of file transfers and port forwards are not kept (only the events), unless
//! [`RecorderConfig::transfer_content`] says so.
//!
//! A recording that cannot be written ends the session (PSM does not proxy what it cannot
//! record): the writer's error terminates it with a message to the user.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use psm_proxy::record::{RecorderConfig, RecorderFactory};
//! let factory = RecorderFactory::new(RecorderConfig::new(
//!     "psm-data/recordings",
//!     psm_recording::SigningKey::generate()?,
//!     "psm-gateway/0.1.0 gw-1",
//! ));
//! // GatewayDeps { taps: std::sync::Arc::new(factory), .. }
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use psm_recording::{
    ChannelId, EventKind, ForwardDirection, Header, Pty, RecipientPublic, RecordingError,
    RecordingWriter, SigningKey, Stream, WriterConfig,
};

use crate::error::ProxyError;
use crate::session::{SessionControl, SessionInfo};
use crate::tap::{
    ChannelInfo, ChannelPurpose, ChannelRequest, ChannelType, DataEvent, DataVerdict, Direction,
    EndReason, ExitReport, FileOperation, StreamKind, Tap, TapFactory, TapSet, TransferReport,
};

/// Where and how recordings are written.
#[derive(Clone)]
#[non_exhaustive]
pub struct RecorderConfig {
    /// The directory of raw recordings (`DATA/recordings`); files are `<session-id>.psmr`.
    pub dir: PathBuf,
    /// The key recordings are signed with.
    pub key: SigningKey,
    /// The writer's settings (chunking, fsync, redaction, encryption).
    pub writer: WriterConfig,
    /// Who writes, for the header (`psm-gateway/0.1.0 gw-1`).
    pub writer_name: String,
    /// Keep the bytes of file transfers and port forwards too (default: events only).
    pub transfer_content: bool,
    /// Most bytes one session may record (terminal data, statements and events, counted
    /// before compression); `None`: no limit. A session that reaches it is ended with the
    /// reason, which the user, the recording and the control plane's audit see; what it
    /// does until it closes is still recorded (a quota never leaves a session unrecorded).
    pub quota_bytes: Option<u64>,
    /// Free space the recordings' file system must keep (see [`RecordingDiskGuard`]);
    /// `None`: not watched (a full disk then fails the recording, which ends the session).
    pub disk_guard: Option<RecordingDiskGuard>,
}

/// The gateway's guard against a nearly full recordings disk: a new session is refused,
/// and a running one is locked (the user's input refused, with the reason on their screen;
/// output still recorded) until space comes back, rather than recording silently stopping
/// when the disk fills.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordingDiskGuard {
    /// The free space below which the disk counts as nearly full (the node's encoder keeps the
    /// same).
    pub min_free: psm_core::files::MinFreeSpace,
    /// How often a running session looks (at its next event after this long).
    pub check_every: std::time::Duration,
}

impl Default for RecordingDiskGuard {
    /// 1 GiB free ([`MinFreeSpace`](psm_core::files::MinFreeSpace)'s default),
    /// looked at every second.
    fn default() -> Self {
        Self {
            min_free: psm_core::files::MinFreeSpace::default(),
            check_every: std::time::Duration::from_secs(1),
        }
    }
}

impl RecordingDiskGuard {
    /// `Ok(free bytes)` when `dir`'s file system has room, `Err(what is wrong)` when it is
    /// nearly full or cannot be measured (which counts as full).
    pub fn check(&self, dir: &std::path::Path) -> Result<u64, String> {
        let space = psm_core::files::DiskSpace::of(dir).map_err(|e| {
            format!(
                "the free space of {} cannot be measured: {e}",
                dir.display()
            )
        })?;
        if self.min_free.allows(space) {
            Ok(space.free)
        } else {
            Err(format!(
                "the gateway's recordings disk is nearly full ({} MiB free)",
                space.free >> 20
            ))
        }
    }
}

impl std::fmt::Debug for RecorderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecorderConfig")
            .field("dir", &self.dir)
            .field("writer_name", &self.writer_name)
            .finish_non_exhaustive()
    }
}

impl RecorderConfig {
    /// Recordings in `dir`, signed with `key`, default writer settings.
    pub fn new(dir: impl Into<PathBuf>, key: SigningKey, writer_name: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            key,
            writer: WriterConfig::default(),
            writer_name: writer_name.into(),
            transfer_content: false,
            quota_bytes: None,
            disk_guard: None,
        }
    }
}

/// Loads the recording signing key at `path`, or creates one there (mode 0600) with its
/// public half beside it (`PATH.pub`, for whoever verifies recordings). Returns the key and
/// whether it was created.
pub fn load_or_create_signing_key(
    path: &std::path::Path,
) -> Result<(SigningKey, bool), ProxyError> {
    let io = |what: String| move |source| ProxyError::Io { what, source };
    match std::fs::read_to_string(path) {
        Ok(text) => SigningKey::from_text(text.trim())
            .map(|k| (k, false))
            .map_err(|e| {
                ProxyError::Config(format!("{} is not a signing key: {e}", path.display()))
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate()
                .map_err(|e| ProxyError::Config(format!("cannot generate a signing key: {e}")))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
            }
            // Processes sharing a data directory may start together: one key wins, whole,
            // and the others read it.
            let created =
                psm_core::files::publish_private(path, format!("{}\n", key.to_text()).as_bytes())
                    .map_err(io(format!("writing {}", path.display())))?;
            if !created {
                return load_or_create_signing_key(path);
            }
            let public = path.with_extension("pub");
            std::fs::write(&public, format!("{}\n", key.verifying_key()))
                .map_err(io(format!("writing {}", public.display())))?;
            Ok((key, true))
        }
        Err(e) => Err(ProxyError::Io {
            what: format!("reading {}", path.display()),
            source: e,
        }),
    }
}

/// Where the keys a session's recording is encrypted for come from, asked once per session.
/// An error refuses the session: PSM does not record in clear text what it was told to
/// encrypt.
///
/// ```
/// # use psm_proxy::record::RecipientSource;
/// struct Auditors(Vec<psm_recording::RecipientPublic>);
/// #[async_trait::async_trait]
/// impl RecipientSource for Auditors {
///     async fn recipients(&self) -> Result<Vec<psm_recording::RecipientPublic>, psm_proxy::ProxyError> {
///         Ok(self.0.clone())
///     }
/// }
/// ```
#[async_trait]
pub trait RecipientSource: Send + Sync {
    /// The recipients of a new recording (none: not encrypted).
    async fn recipients(&self) -> Result<Vec<RecipientPublic>, ProxyError>;
}

/// The control plane's `PSMEncryptionKey` (GetPAMSettings), read for each new session. When
/// the control plane cannot be asked, the last key it gave is used; before it ever answered,
/// sessions are refused.
pub struct ControlPlaneRecipients {
    control_plane: Arc<dyn psm_core::Settings>,
    last: Mutex<Option<Option<RecipientPublic>>>,
}

impl ControlPlaneRecipients {
    /// Asks `control_plane`.
    pub fn new(control_plane: Arc<dyn psm_core::Settings>) -> Self {
        Self {
            control_plane,
            last: Mutex::new(None),
        }
    }
}

#[async_trait]
impl RecipientSource for ControlPlaneRecipients {
    async fn recipients(&self) -> Result<Vec<RecipientPublic>, ProxyError> {
        let key = match self.control_plane.pam_settings().await {
            Ok(settings) => {
                let key = settings
                    .encryption_key
                    .map(|k| RecipientPublic::from_bytes(*k.as_bytes()));
                *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(key);
                key
            }
            Err(e) => {
                let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
                match last {
                    Some(key) => {
                        tracing::warn!(error = %e, "GetPAMSettings failed; using the last PSMEncryptionKey");
                        key
                    }
                    None => {
                        return Err(ProxyError::Config(format!(
                            "cannot read PSMEncryptionKey from the control plane ({e}); the \
                             session is refused rather than recorded unencrypted"
                        )));
                    }
                }
            }
        };
        Ok(key.into_iter().collect())
    }
}

/// Makes a [`Recorder`] for every session.
#[derive(Clone)]
pub struct RecorderFactory {
    config: Arc<RecorderConfig>,
    recipients: Option<Arc<dyn RecipientSource>>,
}

impl std::fmt::Debug for RecorderFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecorderFactory")
            .field("config", &self.config)
            .field("recipients", &self.recipients.is_some())
            .finish()
    }
}

impl RecorderFactory {
    /// A factory writing with `config`.
    pub fn new(config: RecorderConfig) -> Self {
        Self {
            config: Arc::new(config),
            recipients: None,
        }
    }

    /// Also encrypts each recording for the recipients `source` names when the session
    /// starts (beside `config.writer.recipients`); a session whose recipients cannot be
    /// known is refused.
    pub fn with_recipients(mut self, source: Arc<dyn RecipientSource>) -> Self {
        self.recipients = Some(source);
        self
    }

    /// The path of a session's raw recording.
    pub fn path_of(&self, session: psm_core::SessionId) -> PathBuf {
        self.config.dir.join(format!("{session}.psmr"))
    }
}

#[async_trait]
impl TapFactory for RecorderFactory {
    async fn taps(&self, info: &SessionInfo) -> Result<TapSet, ProxyError> {
        if let Some(guard) = &self.config.disk_guard {
            let (guard, dir) = (guard.clone(), self.config.dir.clone());
            let verdict = tokio::task::spawn_blocking(move || guard.check(&dir))
                .await
                .unwrap_or_else(|_| Err("the free space check failed".into()));
            if let Err(why) = verdict {
                tracing::error!(reason = %why, session_id = %info.id,
                    "recordings disk nearly full; session refused");
                return Err(ProxyError::Io {
                    what: "the session cannot be recorded".into(),
                    source: std::io::Error::new(std::io::ErrorKind::StorageFull, why),
                });
            }
        }
        let recorder = match &self.recipients {
            None => Recorder::create(&self.config, info).await?,
            Some(source) => {
                let mut config = RecorderConfig::clone(&self.config);
                for r in source.recipients().await? {
                    if !config.writer.recipients.contains(&r) {
                        config.writer.recipients.push(r);
                    }
                }
                Recorder::create(&config, info).await?
            }
        };
        let mut set = TapSet::new();
        set.push(Arc::new(recorder));
        Ok(set)
    }
}

#[derive(Default)]
struct Chan {
    pty: Option<Pty>,
    opened: bool,
    /// SFTP/scp or a port forward: events only.
    transfer: bool,
    exit_status: Option<u32>,
    exit_signal: Option<String>,
    /// A port forward: where it leads, and the bytes it carried each way (its content is
    /// not recorded; these go in a marker when it closes).
    forward: Option<ForwardCount>,
}

struct ForwardCount {
    label: String,
    to_target: u64,
    to_user: u64,
}

/// The recorder of one session.
pub struct Recorder {
    writer: RecordingWriter,
    /// Set once the recording is sealed: what the gateway commits to at EndSession.
    sealed: OnceLock<psm_core::RecordingCommitment>,
    channels: Mutex<HashMap<u32, Chan>>,
    control: OnceLock<Arc<SessionControl>>,
    transfer_content: bool,
    failed: std::sync::atomic::AtomicBool,
    limits: Limits,
}

/// The quota and the disk guard of one session.
struct Limits {
    dir: PathBuf,
    quota: Option<u64>,
    guard: Option<RecordingDiskGuard>,
    /// Bytes recorded so far (as the quota counts them).
    recorded: std::sync::atomic::AtomicU64,
    /// The quota was reached (the session is being ended).
    over_quota: std::sync::atomic::AtomicBool,
    /// When the disk was last looked at, and whether this recorder locked the session.
    disk: Mutex<DiskWatch>,
}

#[derive(Default)]
struct DiskWatch {
    last: Option<std::time::Instant>,
    locked: bool,
}

/// Who the recorder's own actions are by, in the live reports and the audit.
const RECORDER_ACTOR: &str = "recorder";

/// What one non-data event counts against the quota.
const EVENT_COST: u64 = 16;

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

impl Recorder {
    /// Creates the session's recording file.
    pub async fn create(config: &RecorderConfig, info: &SessionInfo) -> Result<Self, ProxyError> {
        tokio::fs::create_dir_all(&config.dir)
            .await
            .map_err(|source| ProxyError::Io {
                what: format!("creating the recordings directory {}", config.dir.display()),
                source,
            })?;
        let mut header = Header::new(
            info.id,
            info.protocol,
            info.user.clone(),
            info.target.clone(),
            config.writer_name.clone(),
        );
        header
            .metadata
            .insert("target_account".into(), info.target_account.clone());
        if let Some(peer) = info.peer {
            header.metadata.insert("client".into(), peer.to_string());
        }
        let path = config.dir.join(format!("{}.psmr", info.id));
        let writer =
            RecordingWriter::create(&path, header, config.key.clone(), config.writer.clone())
                .await
                .map_err(|e| ProxyError::Io {
                    what: format!("starting the recording {}", path.display()),
                    source: std::io::Error::other(e.to_string()),
                })?;
        Ok(Self {
            writer,
            channels: Mutex::new(HashMap::new()),
            sealed: OnceLock::new(),
            control: OnceLock::new(),
            transfer_content: config.transfer_content,
            failed: std::sync::atomic::AtomicBool::new(false),
            limits: Limits {
                dir: config.dir.clone(),
                quota: config.quota_bytes,
                guard: config.disk_guard.clone(),
                recorded: std::sync::atomic::AtomicU64::new(0),
                over_quota: std::sync::atomic::AtomicBool::new(false),
                disk: Mutex::new(DiskWatch::default()),
            },
        })
    }

    /// Counts `n` recorded bytes against the quota and looks at the disk when it is time;
    /// called after each event is recorded, so the event that crosses a limit is in the
    /// recording before the session is ended or locked.
    async fn account(&self, n: u64) {
        use std::sync::atomic::Ordering;
        let total = self.limits.recorded.fetch_add(n, Ordering::SeqCst) + n;
        if let Some(quota) = self.limits.quota
            && total >= quota
            && !self.limits.over_quota.swap(true, Ordering::SeqCst)
        {
            let reason = format!(
                "the session reached its recording quota of {quota} bytes; PSM ends sessions \
                 it cannot record"
            );
            tracing::warn!(
                quota,
                recorded = total,
                "recording quota reached; ending the session"
            );
            let r = self
                .writer
                .record(EventKind::Marker {
                    label: format!("recording quota reached: {total} of {quota} bytes recorded"),
                })
                .await;
            self.check(r);
            if let Some(c) = self.control.get() {
                c.terminate_by(RECORDER_ACTOR, &reason);
            }
        }
        self.watch_disk().await;
    }

    /// Locks the session while the recordings disk is nearly full, and unlocks it (if this
    /// recorder locked it) when there is room again.
    async fn watch_disk(&self) {
        let Some(guard) = &self.limits.guard else {
            return;
        };
        let now = std::time::Instant::now();
        let locked_by_us = {
            let mut w = self.limits.disk.lock().unwrap_or_else(|p| p.into_inner());
            if w.last
                .is_some_and(|t| now.duration_since(t) < guard.check_every)
            {
                return;
            }
            w.last = Some(now);
            w.locked
        };
        let dir = self.limits.dir.clone();
        let guard = guard.clone();
        let verdict = tokio::task::spawn_blocking(move || guard.check(&dir))
            .await
            .unwrap_or_else(|_| Err("the free space check failed".into()));
        let Some(control) = self.control.get() else {
            return;
        };
        match verdict {
            Err(why) if !locked_by_us => {
                let reason = format!(
                    "{why}: the session is locked so that nothing goes unrecorded; it resumes \
                     when there is room again"
                );
                tracing::error!(reason = %why, "recordings disk nearly full; locking the session");
                self.set_disk_locked(true);
                control.lock_by(RECORDER_ACTOR, &reason);
                let r = self
                    .writer
                    .record(EventKind::Marker {
                        label: format!("locked by the recorder: {why}"),
                    })
                    .await;
                self.check(r);
            }
            Ok(_) if locked_by_us => {
                tracing::info!("recordings disk has room again; unlocking the session");
                self.set_disk_locked(false);
                control.unlock_by(RECORDER_ACTOR);
                let r = self
                    .writer
                    .record(EventKind::Marker {
                        label: "unlocked by the recorder: the recordings disk has room again"
                            .into(),
                    })
                    .await;
                self.check(r);
            }
            _ => {}
        }
    }

    fn set_disk_locked(&self, locked: bool) {
        self.limits
            .disk
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .locked = locked;
    }

    /// Bytes recorded so far, as the quota counts them.
    pub fn recorded_bytes(&self) -> u64 {
        self.limits
            .recorded
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn chans(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Chan>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A failed write ends the session: no unrecorded privileged session.
    fn check(&self, r: Result<(), RecordingError>) {
        if let Err(e) = r
            && !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            tracing::error!(error = %e, "recording failed; terminating the session");
            if let Some(c) = self.control.get() {
                c.terminate("the session recording failed; PSM does not allow unrecorded sessions");
            }
        }
    }

    /// Records the bytes of a channel whose content is recorded.
    async fn record_data(&self, channel: &ChannelInfo, event: &DataEvent<'_>) -> DataVerdict {
        let id = ChannelId(channel.id);
        let r = match event.direction {
            Direction::ToUser => {
                let stream = match event.stream {
                    StreamKind::Stdout => Stream::Stdout,
                    StreamKind::Stderr => Stream::Stderr,
                };
                self.writer.output_stream(id, stream, event.bytes).await
            }
            Direction::ToTarget => self.writer.input(id, event.bytes, event.hidden).await,
        };
        self.check(r);
        self.account(event.bytes.len() as u64 + EVENT_COST).await;
        DataVerdict::Forward
    }

    async fn open(&self, id: u32, kind: psm_recording::ChannelKind) {
        let r = self
            .writer
            .record(EventKind::ChannelOpen {
                channel: ChannelId(id),
                kind,
            })
            .await;
        self.check(r);
        self.account(EVENT_COST).await;
    }
}

/// The size of a terminal whose pty request gives none: `ssh -tt` run from a script (no
/// terminal of its own) asks for 0 × 0 cells, which would record, and replay, a 1 × 1 screen.
const DEFAULT_TERMINAL: psm_recording::TermSize = psm_recording::TermSize::new(80, 24);

/// A requested terminal size, each dimension of 0 replaced by the default's.
fn terminal_size(size: &crate::tap::TermSize) -> psm_recording::TermSize {
    let or = |n: u16, default: u16| if n == 0 { default } else { n };
    psm_recording::TermSize::new(
        or(size.cols, DEFAULT_TERMINAL.cols),
        or(size.rows, DEFAULT_TERMINAL.rows),
    )
}

fn port16(p: u32) -> u16 {
    u16::try_from(p).unwrap_or(0)
}

#[async_trait]
impl Tap for Recorder {
    async fn session_started(&self, _info: &SessionInfo, control: &Arc<SessionControl>) {
        let _ = self.control.set(control.clone());
    }

    async fn channel_opened(&self, channel: &ChannelInfo) {
        let forward = match &channel.kind {
            ChannelType::Session | ChannelType::Virtual(_) => None,
            ChannelType::DirectTcpip { host, port } => {
                Some((ForwardDirection::Local, host.clone(), *port))
            }
            ChannelType::ForwardedTcpip { host, port } => {
                Some((ForwardDirection::Remote, host.clone(), *port))
            }
        };
        let transfer = forward.is_some();
        self.chans().insert(
            channel.id,
            Chan {
                transfer,
                opened: transfer,
                forward: forward
                    .as_ref()
                    .map(|(direction, host, port)| ForwardCount {
                        label: format!(
                            "{} port forward {host}:{port}",
                            match direction {
                                ForwardDirection::Local => "local",
                                ForwardDirection::Remote => "remote",
                            }
                        ),
                        to_target: 0,
                        to_user: 0,
                    }),
                ..Chan::default()
            },
        );
        if let Some((direction, host, port)) = forward {
            self.open(
                channel.id,
                psm_recording::ChannelKind::PortForward {
                    direction,
                    host,
                    port: port16(port),
                    originator: String::new(),
                },
            )
            .await;
        }
    }

    async fn request(&self, channel: &ChannelInfo, request: &ChannelRequest) {
        let id = channel.id;
        let open = {
            let mut chans = self.chans();
            let c = chans.entry(id).or_default();
            match request {
                ChannelRequest::Pty { term, size } => {
                    c.pty = Some(Pty {
                        term: term.clone(),
                        size: terminal_size(size),
                    });
                    None
                }
                ChannelRequest::Shell if !c.opened => {
                    c.opened = true;
                    Some(psm_recording::ChannelKind::Shell { pty: c.pty.clone() })
                }
                ChannelRequest::Exec(command) if !c.opened => {
                    c.opened = true;
                    c.transfer = matches!(channel.purpose(), ChannelPurpose::FileCopy { .. });
                    Some(psm_recording::ChannelKind::Exec {
                        command: command.clone(),
                        pty: c.pty.clone(),
                    })
                }
                ChannelRequest::Subsystem(name) if !c.opened => {
                    c.opened = true;
                    c.transfer = name == "sftp";
                    Some(psm_recording::ChannelKind::Subsystem { name: name.clone() })
                }
                _ => None,
            }
        };
        if let Some(kind) = open {
            self.open(id, kind).await;
            return;
        }
        let event = match request {
            // A window change to nothing (a client without a terminal of its own) keeps the
            // size the recording has.
            ChannelRequest::WindowChange(size) if size.cols > 0 && size.rows > 0 => {
                Some(EventKind::Resize {
                    channel: ChannelId(id),
                    size: psm_recording::TermSize::new(size.cols, size.rows),
                })
            }
            ChannelRequest::Signal(sig) => Some(EventKind::Marker {
                label: format!("signal {sig} on channel {id}"),
            }),
            ChannelRequest::Env { name } => Some(EventKind::Marker {
                label: format!("env {name} on channel {id}"),
            }),
            _ => None,
        };
        if let Some(e) = event {
            let r = self.writer.record(e).await;
            self.check(r);
            self.account(EVENT_COST).await;
        }
    }

    async fn data(&self, channel: &ChannelInfo, event: &DataEvent<'_>) -> DataVerdict {
        let transfer = {
            let mut chans = self.chans();
            match chans.get_mut(&channel.id) {
                Some(Chan {
                    forward: Some(f), ..
                }) => {
                    // A tunnel's bytes are counted, never recorded: what flows through it
                    // is the user's own protocol, not a terminal.
                    let n = event.bytes.len() as u64;
                    match event.direction {
                        Direction::ToTarget => f.to_target = f.to_target.saturating_add(n),
                        Direction::ToUser => f.to_user = f.to_user.saturating_add(n),
                    }
                    return DataVerdict::Forward;
                }
                Some(c) => c.transfer,
                None => false,
            }
        };
        if transfer && !self.transfer_content {
            return DataVerdict::Forward;
        }
        self.record_data(channel, event).await
    }

    async fn file_transfer(&self, channel: &ChannelInfo, transfer: &TransferReport) {
        let r = self
            .writer
            .record(EventKind::FileTransfer(psm_recording::FileTransfer {
                channel: ChannelId(channel.id),
                direction: transfer.direction.into(),
                protocol: if transfer.complete {
                    transfer.protocol.to_owned()
                } else {
                    format!("{} (cut)", transfer.protocol)
                },
                path: transfer.path.clone(),
                size: Some(transfer.bytes),
                blake3: None,
            }))
            .await;
        self.check(r);
        self.account(EVENT_COST).await;
    }

    async fn file_operation(&self, channel: &ChannelInfo, operation: &FileOperation) {
        let r = self
            .writer
            .record(EventKind::Marker {
                label: format!("{operation} on channel {}", channel.id),
            })
            .await;
        self.check(r);
        self.account(EVENT_COST).await;
    }

    async fn exit(&self, channel: &ChannelInfo, exit: &ExitReport) {
        let mut chans = self.chans();
        let c = chans.entry(channel.id).or_default();
        match exit {
            ExitReport::Status(s) => c.exit_status = Some(*s),
            ExitReport::Signal { signal, .. } => c.exit_signal = Some(signal.clone()),
        }
    }

    async fn channel_closed(&self, channel: &ChannelInfo) {
        let c = self.chans().remove(&channel.id).unwrap_or_default();
        if let Some(f) = &c.forward {
            let r = self
                .writer
                .record(EventKind::Marker {
                    label: format!(
                        "{} on channel {} closed: {} bytes to the target, {} bytes to the user",
                        f.label, channel.id, f.to_target, f.to_user
                    ),
                })
                .await;
            self.check(r);
        }
        let r = self
            .writer
            .record(EventKind::ChannelClose {
                channel: ChannelId(channel.id),
                exit_status: c.exit_status,
                exit_signal: c.exit_signal,
            })
            .await;
        self.check(r);
        self.account(EVENT_COST).await;
    }

    async fn live(&self, actor: &str, event: &psm_core::live::LiveReportKind) {
        if let Some(kind) = live_event(actor, event) {
            let r = self.writer.record(kind).await;
            self.check(r);
            self.account(EVENT_COST).await;
        }
    }

    async fn statement(&self, statement: &psm_recording::DbStatement) {
        let r = self
            .writer
            .record(EventKind::DbStatement(Box::new(statement.clone())))
            .await;
        self.check(r);
    }

    async fn session_ended(&self, _info: &SessionInfo, reason: &EndReason) {
        let text = match reason {
            EndReason::UserDisconnected => "user disconnected".to_owned(),
            EndReason::TargetDisconnected => "target disconnected".to_owned(),
            EndReason::Terminated(r) => format!("terminated: {r}"),
            EndReason::CheckoutExpired => "checkout expired".to_owned(),
            EndReason::GatewayShutdown => "gateway shutdown".to_owned(),
            EndReason::Error(e) => format!("error: {e}"),
        };
        match self.writer.clone().finish(&text).await {
            Ok(done) => {
                let _ = self.sealed.set(commitment_of(&done));
            }
            Err(e) => {
                tracing::error!(error = %e, "sealing the recording failed; its chunks written so far remain readable");
            }
        }
    }

    fn recording_commitment(&self) -> Option<psm_core::RecordingCommitment> {
        self.sealed.get().copied()
    }
}

/// What a gateway commits to at EndSession about a recording it sealed.
pub fn commitment_of(done: &psm_recording::FinishedRecording) -> psm_core::RecordingCommitment {
    psm_core::RecordingCommitment {
        chain: done.final_hash,
        chunks: done.chunks,
        events: done.events,
    }
}

/// The recording event of a live action or policy hit (`None` for bookkeeping reports).
pub fn live_event(actor: &str, event: &psm_core::live::LiveReportKind) -> Option<EventKind> {
    use psm_core::live::{LiveMode, LiveReportKind as K};
    use psm_core::policy::Action;
    use psm_recording::{PolicyAction, ViewerMode};
    let with_reason = |what: &str, reason: &str| {
        if reason.is_empty() {
            format!("{what} by {actor}")
        } else {
            format!("{what} by {actor}: {reason}")
        }
    };
    Some(match event {
        K::Paused { reason } => EventKind::Policy {
            action: PolicyAction::Paused,
            rule: "live".into(),
            detail: with_reason("paused", reason),
        },
        K::Resumed => EventKind::Policy {
            action: PolicyAction::Resumed,
            rule: "live".into(),
            detail: with_reason("resumed", ""),
        },
        K::Locked { reason } => EventKind::Marker {
            label: with_reason("locked", reason),
        },
        K::Unlocked => EventKind::Marker {
            label: with_reason("unlocked", ""),
        },
        K::Terminated { reason } => EventKind::Policy {
            action: PolicyAction::Terminated,
            rule: "live".into(),
            detail: with_reason("terminated", reason),
        },
        K::ViewerJoined { mode } => EventKind::ViewerJoined {
            viewer: actor.to_owned(),
            mode: match mode {
                LiveMode::View => ViewerMode::Watch,
                LiveMode::Control => ViewerMode::Control,
            },
        },
        K::ViewerLeft => EventKind::ViewerLeft {
            viewer: actor.to_owned(),
        },
        K::Policy {
            rule,
            action,
            subject,
            outcome,
        } => EventKind::Policy {
            action: match action {
                Action::Allow | Action::Alert => PolicyAction::Alert,
                Action::RequireApproval | Action::Lock => PolicyAction::Blocked,
                Action::Pause => PolicyAction::Paused,
                Action::Terminate => PolicyAction::Terminated,
            },
            rule: rule.clone(),
            detail: format!("{action} on {subject}: {outcome}"),
        },
        K::ApprovalRequested(a) => EventKind::Policy {
            action: PolicyAction::Blocked,
            rule: a.rule.clone(),
            detail: format!("held for approval {}: {}", a.id, a.command),
        },
        K::ApprovalResolved {
            id,
            approved,
            reason,
        } => EventKind::Policy {
            action: if *approved {
                PolicyAction::Resumed
            } else {
                PolicyAction::Blocked
            },
            rule: "approval".into(),
            detail: with_reason(
                &format!(
                    "approval {id} {}",
                    if *approved { "approved" } else { "denied" }
                ),
                reason,
            ),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::tap::TermSize;
    use psm_recording::{ReadOptions, Reader};

    /// Records one shell channel that got `pty`, then `resizes`, and reads back the
    /// recording: the terminal size it opened with, the resizes it kept, and the size the
    /// asciicast (what the replay plays) starts with.
    async fn record_shell(
        pty: TermSize,
        resizes: &[TermSize],
    ) -> (
        Option<psm_recording::TermSize>,
        Vec<psm_recording::TermSize>,
        String,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = RecorderConfig::new(dir.path(), SigningKey::generate().unwrap(), "test");
        let info = SessionInfo {
            id: psm_core::SessionId::new(),
            user: "alice".into(),
            target: "web-01".into(),
            target_account: "root".into(),
            protocol: psm_core::Protocol::Ssh,
            peer: None,
            started: psm_core::Timestamp::now_utc(),
        };
        let recorder = Recorder::create(&config, &info).await.unwrap();
        let channel = ChannelInfo::new(0, ChannelType::Session);
        recorder.channel_opened(&channel).await;
        let term = "xterm".to_owned();
        let pty = ChannelRequest::Pty { term, size: pty };
        recorder.request(&channel, &pty).await;
        recorder.request(&channel, &ChannelRequest::Shell).await;
        for size in resizes {
            let change = ChannelRequest::WindowChange(*size);
            recorder.request(&channel, &change).await;
        }
        let output = DataEvent {
            direction: Direction::ToUser,
            stream: StreamKind::Stdout,
            bytes: b"$ ",
            hidden: false,
        };
        recorder.data(&channel, &output).await;
        recorder
            .session_ended(&info, &EndReason::UserDisconnected)
            .await;

        let path = dir.path().join(format!("{}.psmr", info.id));
        let mut reader = Reader::open(&path, ReadOptions::default()).unwrap();
        let mut opened = None;
        let mut resized = Vec::new();
        for event in reader.events() {
            match event.unwrap().kind {
                EventKind::ChannelOpen { kind, .. } => opened = kind.pty().map(|p| p.size),
                EventKind::Resize { size, .. } => resized.push(size),
                _ => {}
            }
        }
        let mut cast = Vec::new();
        psm_recording::export::export_asciicast(
            &mut reader,
            &mut cast,
            &psm_recording::export::AsciicastOptions::default(),
            |_, _| {},
        )
        .unwrap();
        let header = String::from_utf8(cast)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_owned();
        (opened, resized, header)
    }

    #[tokio::test]
    async fn a_pty_of_no_size_is_recorded_as_80_by_24() {
        let none = TermSize { cols: 0, rows: 0 };
        let (opened, resized, cast) = record_shell(none, &[]).await;
        assert_eq!(opened, Some(psm_recording::TermSize::new(80, 24)));
        assert!(resized.is_empty());
        assert!(cast.contains(r#""width":80,"height":24"#), "{cast}");

        // One dimension missing: only that one falls back.
        let (opened, ..) = record_shell(TermSize { cols: 132, rows: 0 }, &[]).await;
        assert_eq!(opened, Some(psm_recording::TermSize::new(132, 24)));
    }

    #[tokio::test]
    async fn a_window_change_to_no_size_keeps_the_terminal_size() {
        let sizes = [
            TermSize { cols: 0, rows: 0 },
            TermSize {
                cols: 120,
                rows: 40,
            },
            TermSize { cols: 0, rows: 40 },
        ];
        let (opened, resized, _) = record_shell(
            TermSize {
                cols: 100,
                rows: 30,
            },
            &sizes,
        )
        .await;
        assert_eq!(opened, Some(psm_recording::TermSize::new(100, 30)));
        assert_eq!(resized, [psm_recording::TermSize::new(120, 40)]);
    }
}
