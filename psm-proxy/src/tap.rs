//! Taps: observers (and, when they must, editors) of every byte and event of a session.
//!
//! A [`Tap`] has one async method per event, each with a default that does nothing, in the
//! shape of russh's `Handler`: a recorder overrides what it records, a policy engine what it
//! judges. The proxy calls every tap of a session, in order, before it forwards anything:
//!
//! - **hold**: a tap method may take as long as it likes (a paused session's gate, a policy
//!   engine asking a human); the bytes wait, and flow control pushes back on the sender;
//! - **drop** or **replace**: [`Tap::data`] answers a [`DataVerdict`];
//! - **inject**: a tap keeps the [`SessionControl`] it was given
//!   in [`Tap::session_started`] and injects bytes toward the user or target through it.
//!
//! ```
//! use psm_proxy::{Tap, ChannelInfo, DataEvent, DataVerdict, Direction};
//!
//! /// Counts what the user typed (never the bytes typed at a password prompt).
//! #[derive(Default)]
//! struct Typed(std::sync::atomic::AtomicU64);
//!
//! #[async_trait::async_trait]
//! impl Tap for Typed {
//!     async fn data(&self, _channel: &ChannelInfo, event: &DataEvent<'_>) -> DataVerdict {
//!         if event.direction == Direction::ToTarget && !event.hidden {
//!             self.0.fetch_add(event.bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
//!         }
//!         DataVerdict::Forward
//!     }
//! }
//! ```

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;

use crate::session::{SessionControl, SessionInfo};

/// Which way bytes travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the user's client to the target (keystrokes, uploads).
    ToTarget,
    /// From the target to the user's client (output, downloads).
    ToUser,
}

/// A transfer's direction as the policy and the recording name it: toward the target is an
/// upload.
impl From<Direction> for psm_core::policy::TransferDirection {
    fn from(direction: Direction) -> Self {
        match direction {
            Direction::ToTarget => Self::Upload,
            Direction::ToUser => Self::Download,
        }
    }
}

/// The way bytes travel for a transfer's direction: an upload goes toward the target.
impl From<psm_core::policy::TransferDirection> for Direction {
    fn from(direction: psm_core::policy::TransferDirection) -> Self {
        match direction {
            psm_core::policy::TransferDirection::Upload => Self::ToTarget,
            psm_core::policy::TransferDirection::Download => Self::ToUser,
        }
    }
}

/// The stream of a channel the bytes belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// Standard data (stdout, or stdin toward the target).
    Stdout,
    /// Extended data 1 (stderr).
    Stderr,
}

/// The transport's type of a channel as it opens (SSH's channel type, RDP's virtual channel),
/// before anything runs in it. What it comes to carry is [`ChannelPurpose`]; the recording's
/// description of a channel is `psm_recording::ChannelKind`, which the recorder tap builds from
/// the two.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelType {
    /// A session channel (shell, exec, subsystem).
    Session,
    /// A virtual channel of a graphical session, by its name (RDP's `rdpdr` for the session
    /// drive and printer, `cliprdr` for the clipboard).
    Virtual(&'static str),
    /// A local port forward (`ssh -L`) to `host:port` as seen from the target.
    DirectTcpip {
        /// Destination host.
        host: String,
        /// Destination port.
        port: u32,
    },
    /// A remote port forward (`ssh -R`) connection from the target's `host:port` listener.
    ForwardedTcpip {
        /// The listening address on the target.
        host: String,
        /// The listening port.
        port: u32,
    },
}

/// What a session channel runs, as the protocol crate understood it. Taps read it with
/// [`ChannelInfo::purpose`] instead of parsing protocol requests themselves.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelPurpose {
    /// Not decided yet.
    Pending,
    /// An interactive shell.
    Shell,
    /// A command.
    Exec(String),
    /// A command that copies files (SSH's legacy `scp -t PATH` receives an upload,
    /// `scp -f PATH` sends a download): a policy judges it as a transfer before it starts, a
    /// recorder keeps its bytes out of the terminal text.
    FileCopy {
        /// The command as the user sent it.
        command: String,
        /// The tool (`scp`).
        protocol: &'static str,
        /// [`Direction::ToTarget`] is an upload.
        direction: Direction,
        /// The path on the target the command names.
        path: String,
    },
    /// A subsystem (`sftp`).
    Subsystem(String),
}

static PENDING: ChannelPurpose = ChannelPurpose::Pending;

/// One channel of a session, as taps see it. Clones share the channel's purpose.
#[derive(Clone, Debug)]
pub struct ChannelInfo {
    /// The user-side channel number (unique within the session).
    pub id: u32,
    /// Its kind.
    pub kind: ChannelType,
    purpose: Arc<OnceLock<ChannelPurpose>>,
}

impl ChannelInfo {
    /// A channel whose purpose is not decided yet.
    pub fn new(id: u32, kind: ChannelType) -> Self {
        Self {
            id,
            kind,
            purpose: Arc::default(),
        }
    }

    /// What the channel runs ([`ChannelPurpose::Pending`] until the protocol crate decided).
    ///
    /// ```
    /// use psm_proxy::{ChannelInfo, ChannelType, ChannelPurpose};
    /// let channel = ChannelInfo::new(0, ChannelType::Session);
    /// assert_eq!(channel.purpose(), &ChannelPurpose::Pending);
    /// channel.clone().set_purpose(ChannelPurpose::Shell);
    /// assert_eq!(channel.purpose(), &ChannelPurpose::Shell);
    /// ```
    pub fn purpose(&self) -> &ChannelPurpose {
        self.purpose.get().unwrap_or(&PENDING)
    }

    /// Decides what the channel runs, once: the protocol crate calls it on the request that
    /// starts the channel's shell, command or subsystem, before taps see that request.
    /// Returns false (and keeps the first) if it was decided already.
    pub fn set_purpose(&self, purpose: ChannelPurpose) -> bool {
        self.purpose.set(purpose).is_ok()
    }
}

/// A terminal size (psm-recording's: the same cells the recording and the live screens use).
pub use psm_recording::TermSize;

/// A request on a session channel, as forwarded to the target.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelRequest {
    /// A pseudo-terminal.
    Pty {
        /// `TERM`.
        term: String,
        /// Its size.
        size: TermSize,
    },
    /// A shell.
    Shell,
    /// A command (scp is an `scp ...` command).
    Exec(String),
    /// A subsystem.
    Subsystem(String),
    /// An environment variable (the value is not given to taps: it may hold a secret).
    Env {
        /// The variable's name.
        name: String,
    },
    /// The terminal was resized.
    WindowChange(TermSize),
    /// A signal to the remote process.
    Signal(String),
}

/// Bytes flowing through a channel.
#[derive(Clone, Debug)]
pub struct DataEvent<'a> {
    /// Which way.
    pub direction: Direction,
    /// Which stream.
    pub stream: StreamKind,
    /// The bytes.
    pub bytes: &'a [u8],
    /// The user is typing at a prompt that does not echo (a password): record the fact of
    /// input, never the bytes.
    pub hidden: bool,
}

/// What to do with bytes after a tap saw them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataVerdict {
    /// Forward them unchanged.
    Forward,
    /// Do not forward them.
    Drop,
    /// Forward these bytes instead.
    Replace(Bytes),
}

/// Whether a channel request may go to the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestVerdict {
    /// Forward it.
    Allow,
    /// Refuse it; the user sees this message and the request fails.
    Refuse(String),
}

/// How a channel's remote process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReport {
    /// It exited with this status.
    Status(u32),
    /// It was killed by a signal.
    Signal {
        /// The signal's name (`TERM`, `KILL`, ...).
        signal: String,
        /// Whether it dumped core.
        core_dumped: bool,
    },
}

/// A file (or clipboard content) about to move, as [`Tap::check_transfer`] sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferRequest {
    /// Which way: [`Direction::ToTarget`] is an upload (a file the target reads from the
    /// user's side, a paste into the target).
    pub direction: Direction,
    /// The path as the protocol names it (`PSM/dir/file` on an RDP session drive;
    /// `clipboard` for clipboard content).
    pub path: String,
    /// `sftp`, `scp`, `rdp-drive`, `rdp-clipboard`...
    pub protocol: &'static str,
}

/// A file moved through the session (SFTP, scp, RDP drive, printer or clipboard), reported to
/// taps once it completed or was cut. [`TransferRequest`] is the same transfer asked for before
/// any byte moves; the recorder writes it down as a `psm_recording::FileTransfer` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferReport {
    /// Which way: [`Direction::ToTarget`] is an upload.
    pub direction: Direction,
    /// The path on the target, as the protocol named it.
    pub path: String,
    /// Bytes moved (so far, when the transfer was cut).
    pub bytes: u64,
    /// `sftp`, `scp`, `rdp-drive`, `rdp-printer`, `rdp-drive-web`, `rdp-clipboard`.
    pub protocol: &'static str,
    /// Whether it completed.
    pub complete: bool,
}

/// A file operation other than moving a file's bytes (SFTP remove, rename, mkdir, rmdir,
/// setstat, symlink, hard link), as [`Tap::file_operation`] sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileOperation {
    /// `remove`, `rename`, `mkdir`, `rmdir`, `setstat`, `symlink`, `hardlink`.
    pub operation: &'static str,
    /// The path it acts on (for `symlink` and `hardlink`: the new link's path).
    pub path: String,
    /// The second path: `rename`'s new name, `symlink`'s and `hardlink`'s existing target.
    pub other: Option<String>,
    /// `sftp`.
    pub protocol: &'static str,
    /// What became of it.
    pub outcome: FileOperationOutcome,
}

/// What became of a [`FileOperation`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileOperationOutcome {
    /// The target did it.
    Done,
    /// The target refused it (an SFTP status code and its message).
    Failed(u32, String),
    /// A tap refused it ([`Tap::check_transfer`]); it never reached the target.
    Refused(String),
    /// The channel closed before the target answered.
    NoAnswer,
}

impl std::fmt::Display for FileOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {:?}", self.protocol, self.operation, self.path)?;
        if let Some(o) = &self.other {
            let word = if self.operation == "rename" {
                "to"
            } else {
                "->"
            };
            write!(f, " {word} {o:?}")?;
        }
        match &self.outcome {
            FileOperationOutcome::Done => f.write_str(": done"),
            FileOperationOutcome::Failed(code, m) => write!(f, ": failed (status {code}: {m})"),
            FileOperationOutcome::Refused(m) => write!(f, ": refused ({m})"),
            FileOperationOutcome::NoAnswer => f.write_str(": no answer"),
        }
    }
}

/// Why a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// The user disconnected.
    UserDisconnected,
    /// The target closed the connection.
    TargetDisconnected,
    /// The control plane or an administrator terminated it.
    Terminated(String),
    /// The checkout ran out.
    CheckoutExpired,
    /// The gateway shut down.
    GatewayShutdown,
    /// An error.
    Error(String),
}

impl std::fmt::Display for EndReason {
    /// How the end reads in a notice or log line (`terminated: by bob`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndReason::UserDisconnected => f.write_str("the user disconnected"),
            EndReason::TargetDisconnected => f.write_str("the target closed the connection"),
            EndReason::Terminated(r) => write!(f, "terminated: {r}"),
            EndReason::CheckoutExpired => f.write_str("the checkout expired"),
            EndReason::GatewayShutdown => f.write_str("the gateway shut down"),
            EndReason::Error(e) => write!(f, "error: {e}"),
        }
    }
}

/// An observer of a session. Every method has a default that does nothing; see the module
/// docs for hold, drop and inject.
#[async_trait]
#[allow(unused_variables)]
pub trait Tap: Send + Sync {
    /// The session started (the target login succeeded). `control` lets the tap inject bytes,
    /// pause or terminate later.
    async fn session_started(&self, info: &SessionInfo, control: &Arc<SessionControl>) {}

    /// A channel opened.
    async fn channel_opened(&self, channel: &ChannelInfo) {}

    /// A request on a session channel is about to be forwarded.
    async fn request(&self, channel: &ChannelInfo, request: &ChannelRequest) {}

    /// Whether a command, shell or subsystem request may reach the target (a policy
    /// refuses `ssh host 'rm -rf /'` here). Called before [`request`](Self::request); it
    /// may hold (an approval).
    async fn check(&self, channel: &ChannelInfo, request: &ChannelRequest) -> RequestVerdict {
        RequestVerdict::Allow
    }

    /// A live action or policy hit (pause by an admin, a viewer joining, a rule firing): a
    /// recorder writes it into the recording.
    async fn live(&self, actor: &str, event: &psm_core::live::LiveReportKind) {}

    /// Bytes are about to be forwarded.
    async fn data(&self, channel: &ChannelInfo, event: &DataEvent<'_>) -> DataVerdict {
        DataVerdict::Forward
    }

    /// A file transfer was seen (completed, or cut when its channel closed).
    async fn file_transfer(&self, channel: &ChannelInfo, transfer: &TransferReport) {}

    /// A file operation that moves no bytes (SFTP remove, rename, mkdir, rmdir, setstat,
    /// symlink, hard link) was answered, refused or cut: a recorder writes it down.
    async fn file_operation(&self, channel: &ChannelInfo, operation: &FileOperation) {}

    /// A file (or clipboard content) is about to move: [`RequestVerdict::Refuse`] stops it
    /// before any byte does. Called where the protocol cannot wait (an RDP drive's file
    /// I/O, a clipboard paste), so it decides at once: a tap that would hold the transfer
    /// for a human refuses it instead.
    fn check_transfer(&self, transfer: &TransferRequest) -> RequestVerdict {
        RequestVerdict::Allow
    }

    /// The user ended their input on the channel (an SSH EOF: the end of a piped script).
    /// A tap that holds input back until it can judge it (the policy tap's script mode
    /// holds a last line without a newline) returns what it now lets go; those bytes pass
    /// through the later taps' [`Tap::data`] and reach the target before the end of input.
    async fn input_ended(&self, channel: &ChannelInfo) -> Option<Bytes> {
        None
    }

    /// The channel's remote process ended.
    async fn exit(&self, channel: &ChannelInfo, exit: &ExitReport) {}

    /// A channel closed.
    async fn channel_closed(&self, channel: &ChannelInfo) {}

    /// A database statement was answered or refused (database gateways): a recorder writes
    /// it down.
    async fn statement(&self, statement: &psm_recording::DbStatement) {}

    /// The session ended. Taps flush here (a recorder seals its file).
    async fn session_ended(&self, info: &SessionInfo, reason: &EndReason) {}

    /// After [`session_ended`](Self::session_ended): what this tap commits to about the
    /// recording it sealed, which the gateway sends with EndSession so the control plane holds
    /// it away from the file (docs/threat-model.md M12). Only a recorder has one.
    fn recording_commitment(&self) -> Option<psm_core::RecordingCommitment> {
        None
    }
}

/// The taps of one session, called in order.
#[derive(Clone, Default)]
pub struct TapSet {
    taps: Vec<Arc<dyn Tap>>,
}

impl std::fmt::Debug for TapSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapSet")
            .field("taps", &self.taps.len())
            .finish()
    }
}

impl TapSet {
    /// No taps.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tap after the others.
    pub fn push(&mut self, tap: Arc<dyn Tap>) {
        self.taps.push(tap);
    }

    /// Whether there is no tap.
    pub fn is_empty(&self) -> bool {
        self.taps.is_empty()
    }

    /// Calls `session_started` on every tap.
    pub async fn session_started(&self, info: &SessionInfo, control: &Arc<SessionControl>) {
        for t in &self.taps {
            t.session_started(info, control).await;
        }
    }

    /// Calls `channel_opened` on every tap.
    pub async fn channel_opened(&self, channel: &ChannelInfo) {
        for t in &self.taps {
            t.channel_opened(channel).await;
        }
    }

    /// Calls `request` on every tap.
    pub async fn request(&self, channel: &ChannelInfo, request: &ChannelRequest) {
        for t in &self.taps {
            t.request(channel, request).await;
        }
    }

    /// Asks every tap whether the request may go on; the first refusal wins.
    pub async fn check(&self, channel: &ChannelInfo, request: &ChannelRequest) -> RequestVerdict {
        for t in &self.taps {
            if let RequestVerdict::Refuse(m) = t.check(channel, request).await {
                return RequestVerdict::Refuse(m);
            }
        }
        RequestVerdict::Allow
    }

    /// Calls `live` on every tap.
    pub async fn live(&self, actor: &str, event: &psm_core::live::LiveReportKind) {
        for t in &self.taps {
            t.live(actor, event).await;
        }
    }

    /// Adds every tap of `other` after these.
    pub fn extend(&mut self, other: TapSet) {
        self.taps.extend(other.taps);
    }

    /// Passes bytes through every tap; returns what to forward (`None`: nothing).
    pub async fn data(
        &self,
        channel: &ChannelInfo,
        direction: Direction,
        stream: StreamKind,
        bytes: Bytes,
        hidden: bool,
    ) -> Option<Bytes> {
        let mut current = bytes;
        for t in &self.taps {
            let event = DataEvent {
                direction,
                stream,
                bytes: &current,
                hidden,
            };
            match t.data(channel, &event).await {
                DataVerdict::Forward => {}
                DataVerdict::Drop => return None,
                DataVerdict::Replace(b) => current = b,
            }
        }
        Some(current)
    }

    /// Asks every tap whether a transfer may start; the first refusal wins.
    pub fn check_transfer(&self, transfer: &TransferRequest) -> RequestVerdict {
        for t in &self.taps {
            if let RequestVerdict::Refuse(m) = t.check_transfer(transfer) {
                return RequestVerdict::Refuse(m);
            }
        }
        RequestVerdict::Allow
    }

    /// Calls `file_transfer` on every tap.
    pub async fn file_transfer(&self, channel: &ChannelInfo, transfer: &TransferReport) {
        for t in &self.taps {
            t.file_transfer(channel, transfer).await;
        }
    }

    /// Calls `file_operation` on every tap.
    pub async fn file_operation(&self, channel: &ChannelInfo, operation: &FileOperation) {
        for t in &self.taps {
            t.file_operation(channel, operation).await;
        }
    }

    /// Calls `input_ended` on every tap; returns the bytes to write to the target before
    /// the end of input, each released piece having passed the taps after the one that held
    /// it.
    pub async fn input_ended(&self, channel: &ChannelInfo) -> Vec<Bytes> {
        let mut out = Vec::new();
        for (i, t) in self.taps.iter().enumerate() {
            let Some(mut current) = t.input_ended(channel).await else {
                continue;
            };
            let mut dropped = false;
            for later in &self.taps[i + 1..] {
                let event = DataEvent {
                    direction: Direction::ToTarget,
                    stream: StreamKind::Stdout,
                    bytes: &current,
                    hidden: false,
                };
                match later.data(channel, &event).await {
                    DataVerdict::Forward => {}
                    DataVerdict::Drop => {
                        dropped = true;
                        break;
                    }
                    DataVerdict::Replace(b) => current = b,
                }
            }
            if !dropped && !current.is_empty() {
                out.push(current);
            }
        }
        out
    }

    /// Calls `exit` on every tap.
    pub async fn exit(&self, channel: &ChannelInfo, exit: &ExitReport) {
        for t in &self.taps {
            t.exit(channel, exit).await;
        }
    }

    /// Calls `channel_closed` on every tap.
    pub async fn channel_closed(&self, channel: &ChannelInfo) {
        for t in &self.taps {
            t.channel_closed(channel).await;
        }
    }

    /// Calls `statement` on every tap.
    pub async fn statement(&self, statement: &psm_recording::DbStatement) {
        for t in &self.taps {
            t.statement(statement).await;
        }
    }

    /// Calls `session_ended` on every tap.
    pub async fn session_ended(&self, info: &SessionInfo, reason: &EndReason) {
        for t in &self.taps {
            t.session_ended(info, reason).await;
        }
    }

    /// The first tap's commitment to a sealed recording (see [`Tap::recording_commitment`]).
    pub fn recording_commitment(&self) -> Option<psm_core::RecordingCommitment> {
        self.taps.iter().find_map(|t| t.recording_commitment())
    }
}

/// Makes the taps of each new session (a recorder opens the session's recording here). An
/// error refuses the session: PSM never proxies a session it cannot record.
///
/// ```
/// use psm_proxy::{TapFactory, TapSet, SessionInfo, ProxyError};
/// struct NoTaps;
/// #[async_trait::async_trait]
/// impl TapFactory for NoTaps {
///     async fn taps(&self, _info: &SessionInfo) -> Result<TapSet, ProxyError> {
///         Ok(TapSet::new())
///     }
/// }
/// ```
#[async_trait]
pub trait TapFactory: Send + Sync {
    /// The taps for a session that is about to start.
    async fn taps(&self, info: &SessionInfo) -> Result<TapSet, crate::ProxyError>;
}

/// A factory that gives every session no taps (tests; a gateway that must not record).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTaps;

#[async_trait]
impl TapFactory for NoTaps {
    async fn taps(&self, _info: &SessionInfo) -> Result<TapSet, crate::ProxyError> {
        Ok(TapSet::new())
    }
}

/// Several factories, their taps called in order (a policy before the recorder, so what a
/// policy holds or drops is recorded as it reached the target).
///
/// ```
/// use std::sync::Arc;
/// use psm_proxy::{NoTaps, TapFactories};
/// let factories = TapFactories::new(vec![Arc::new(NoTaps), Arc::new(NoTaps)]);
/// # let _ = factories;
/// ```
#[derive(Clone, Default)]
pub struct TapFactories {
    factories: Vec<Arc<dyn TapFactory>>,
}

impl std::fmt::Debug for TapFactories {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapFactories")
            .field("factories", &self.factories.len())
            .finish()
    }
}

impl TapFactories {
    /// These factories, in order.
    pub fn new(factories: Vec<Arc<dyn TapFactory>>) -> Self {
        Self { factories }
    }
}

#[async_trait]
impl TapFactory for TapFactories {
    async fn taps(&self, info: &SessionInfo) -> Result<TapSet, crate::ProxyError> {
        let mut set = TapSet::new();
        for f in &self.factories {
            set.extend(f.taps(info).await?);
        }
        Ok(set)
    }
}
