//! The event model: what a recording says happened, and when.
//!
//! A recording is a [`Header`](crate::Header) (the session's start) followed by timed
//! [`Event`]s. Times are [`Micros`] since the start and never decrease. The gateway that
//! records a session chooses channel numbers; the SSH gateway uses the channel ids the
//! client sees, and a recording imported from asciicast has one channel, 0.

use std::fmt;

use crate::time::Micros;

/// A channel of a session (an SSH channel, or 0 for a single-stream session).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelId(pub u32);

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A terminal's size in character cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TermSize {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
}

impl TermSize {
    /// A size of `cols` × `rows`.
    pub const fn new(cols: u16, rows: u16) -> Self {
        Self { cols, rows }
    }
}

impl fmt::Display for TermSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.cols, self.rows)
    }
}

/// Which output stream of a channel bytes came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output (SSH channel data).
    #[default]
    Stdout,
    /// Standard error (SSH extended data type 1).
    Stderr,
}

/// A pseudo-terminal requested for a channel.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pty {
    /// The `TERM` value, e.g. `xterm-256color` (may be empty).
    pub term: String,
    /// The initial size.
    pub size: TermSize,
}

/// Which way a port forward goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForwardDirection {
    /// `ssh -L`: the client asks the gateway side to connect out (`direct-tcpip`).
    Local,
    /// `ssh -R`: connections arriving at the target side come back to the client
    /// (`forwarded-tcpip`).
    Remote,
}

/// What a channel carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// An interactive shell.
    Shell {
        /// The pty, if one was requested.
        pty: Option<Pty>,
    },
    /// A single command (`ssh host CMD`).
    Exec {
        /// The command line as the client sent it.
        command: String,
        /// The pty, if one was requested.
        pty: Option<Pty>,
    },
    /// A subsystem such as `sftp`.
    Subsystem {
        /// The subsystem's name.
        name: String,
    },
    /// A TCP port forward.
    PortForward {
        /// Local (`-L`) or remote (`-R`).
        direction: ForwardDirection,
        /// Host connected to (or bound, for remote forwards).
        host: String,
        /// Port connected to (or bound).
        port: u16,
        /// Originator `host:port`, where known (may be empty).
        originator: String,
    },
    /// X11 forwarding.
    X11,
    /// SSH agent forwarding.
    Agent,
    /// Any other channel type, by name.
    Other {
        /// The channel type's name.
        name: String,
    },
}

impl ChannelKind {
    /// The pty of a shell or exec channel.
    pub fn pty(&self) -> Option<&Pty> {
        match self {
            ChannelKind::Shell { pty } | ChannelKind::Exec { pty, .. } => pty.as_ref(),
            _ => None,
        }
    }
}

/// Which way a file went (psm-core's: the same direction the policy's transfer rules name).
pub use psm_core::policy::TransferDirection;

/// Metadata of a file transfer (the content itself is not recorded).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FileTransfer {
    /// The channel it went over.
    pub channel: ChannelId,
    /// Upload or download.
    pub direction: TransferDirection,
    /// `sftp`, `scp`, `rdp-clipboard`, ...
    pub protocol: String,
    /// The path on the target.
    pub path: String,
    /// Bytes transferred, where known.
    pub size: Option<u64>,
    /// BLAKE3 of the whole content, where the gateway saw all of it.
    pub blake3: Option<[u8; 32]>,
}

/// Which way clipboard content went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClipboardDirection {
    /// Pasted from the client into the target.
    ClientToTarget,
    /// Copied on the target, sent to the client.
    TargetToClient,
}

/// What a policy did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyAction {
    /// A command was blocked.
    Blocked,
    /// The session was paused.
    Paused,
    /// The session was resumed.
    Resumed,
    /// The session was terminated.
    Terminated,
    /// An alert was raised; the session went on.
    Alert,
}

impl PolicyAction {
    /// Lower-case name (`blocked`, `paused`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyAction::Blocked => "blocked",
            PolicyAction::Paused => "paused",
            PolicyAction::Resumed => "resumed",
            PolicyAction::Terminated => "terminated",
            PolicyAction::Alert => "alert",
        }
    }
}

/// A database statement the user sent through the session, and what came of it: one event
/// per statement, written when the target answered it (or when the gateway refused it).
///
/// ```
/// use psm_recording::{DbError, DbStatement, EventKind};
/// let s = DbStatement {
///     database: "app".into(),
///     text: "DELETE FROM orders WHERE id = $1".into(),
///     parameters: vec![Some("42".into())],
///     tag: Some("DELETE 1".into()),
///     rows: Some(1),
///     ..DbStatement::default()
/// };
/// assert!(s.error.is_none());
/// let _ = EventKind::DbStatement(Box::new(s));
/// let _ = DbError { code: "42P01".into(), message: "relation \"x\" does not exist".into() };
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DbStatement {
    /// The database it ran in.
    pub database: String,
    /// Its text, as the client sent it (a simple query, or a prepared statement's text).
    pub text: String,
    /// The prepared statement it ran as (extended protocol); `None`: a simple query or the
    /// unnamed statement.
    pub prepared: Option<String>,
    /// The bound parameters, as text (binary ones as `\x` and hex); `None` is SQL NULL.
    pub parameters: Vec<Option<String>>,
    /// The statement's class as the gateway's policy saw it (`drop`, `delete-without-where`,
    /// `select`, ...); empty when it was not classified.
    pub class: String,
    /// From the statement leaving for the target to its completion, in microseconds.
    pub duration_us: u64,
    /// The command tag the target answered (`INSERT 0 1`, `SELECT 3`).
    pub tag: Option<String>,
    /// Rows affected or returned, as the command tag counts them.
    pub rows: Option<u64>,
    /// The result's column names (the result summary).
    pub columns: Vec<String>,
    /// Rows the target returned to the client.
    pub rows_returned: u64,
    /// The error the statement ended with (the target's, or the gateway's refusal).
    pub error: Option<DbError>,
}

/// An error a database statement ended with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DbError {
    /// The SQLSTATE code (`42P01`).
    pub code: String,
    /// The message.
    pub message: String,
}

/// What a live viewer may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ViewerMode {
    /// Watch only.
    Watch,
    /// Watch and type.
    Control,
}

/// One thing that happened in a session. See `docs/psmr.md` for each kind's encoding.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Bytes the target sent to the user's terminal.
    Output {
        /// Channel.
        channel: ChannelId,
        /// Stdout or stderr.
        stream: Stream,
        /// The bytes, as sent.
        data: Vec<u8>,
    },
    /// Bytes the user typed. Input typed while the terminal's echo is off (passwords) is
    /// normally recorded as [`EventKind::InputRedacted`] instead: see
    /// [`InputPolicy`](crate::InputPolicy).
    Input {
        /// Channel.
        channel: ChannelId,
        /// The bytes, as typed.
        data: Vec<u8>,
        /// Whether the terminal's echo was off (the bytes were not shown).
        echo_off: bool,
    },
    /// The user typed something that was redacted (echo off): only the fact is recorded.
    InputRedacted {
        /// Channel.
        channel: ChannelId,
    },
    /// The terminal of a channel changed size.
    Resize {
        /// Channel.
        channel: ChannelId,
        /// The new size.
        size: TermSize,
    },
    /// A channel was opened.
    ChannelOpen {
        /// Channel.
        channel: ChannelId,
        /// What it carries.
        kind: ChannelKind,
    },
    /// A channel was closed.
    ChannelClose {
        /// Channel.
        channel: ChannelId,
        /// Exit status of the command or shell, where known.
        exit_status: Option<u32>,
        /// Signal that ended it, where known (`TERM`, `KILL`, ...).
        exit_signal: Option<String>,
    },
    /// A file went over the session.
    FileTransfer(FileTransfer),
    /// Clipboard content went over the session.
    Clipboard {
        /// Which way.
        direction: ClipboardDirection,
        /// Its MIME type (`text/plain;charset=utf-8`, ...).
        mime: String,
        /// The content.
        data: Vec<u8>,
    },
    /// A picture of (part of) a graphical screen, as PNG.
    Frame {
        /// Left edge of the region, in pixels.
        x: u32,
        /// Top edge.
        y: u32,
        /// Width of the region (and of the PNG).
        width: u32,
        /// Height of the region (and of the PNG).
        height: u32,
        /// The PNG file's bytes.
        png: Vec<u8>,
    },
    /// A picture of (part of) a graphical screen as raw palette-indexed pixels, left to the
    /// recording's zstd stream to compress against earlier pictures (see
    /// [`graphics`](crate::graphics)).
    Pixels {
        /// Left edge of the region, in pixels.
        x: u32,
        /// Top edge.
        y: u32,
        /// Width of the region.
        width: u32,
        /// Height of the region.
        height: u32,
        /// The palette: 1..=256 colours as RGB triples (3 bytes each).
        palette: Vec<u8>,
        /// One palette index per pixel, row by row: `width × height` bytes.
        indices: Vec<u8>,
    },
    /// A named point in time (a bookmark).
    Marker {
        /// Its label.
        label: String,
    },
    /// A note attached to a point in time.
    Annotation {
        /// Who wrote it.
        author: String,
        /// The note.
        text: String,
    },
    /// A policy acted on the session.
    Policy {
        /// What it did.
        action: PolicyAction,
        /// The rule that fired (its name or pattern).
        rule: String,
        /// Details (the blocked command, who paused, ...).
        detail: String,
    },
    /// Someone started watching live.
    ViewerJoined {
        /// Who.
        viewer: String,
        /// Watch or control.
        mode: ViewerMode,
    },
    /// A live viewer left.
    ViewerLeft {
        /// Who.
        viewer: String,
    },
    /// A database statement ran (or was refused).
    DbStatement(Box<DbStatement>),
    /// The session ended.
    SessionEnd {
        /// Why (`client disconnected`, `terminated by admin`, ...).
        reason: String,
    },
}

impl EventKind {
    /// The channel the event belongs to, if any.
    pub fn channel(&self) -> Option<ChannelId> {
        match self {
            EventKind::Output { channel, .. }
            | EventKind::Input { channel, .. }
            | EventKind::InputRedacted { channel }
            | EventKind::Resize { channel, .. }
            | EventKind::ChannelOpen { channel, .. }
            | EventKind::ChannelClose { channel, .. } => Some(*channel),
            EventKind::FileTransfer(t) => Some(t.channel),
            _ => None,
        }
    }
}

/// An event at a time.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    /// When, since the session started.
    pub time: Micros,
    /// What.
    pub kind: EventKind,
}

impl Event {
    /// An event at `time`.
    pub fn new(time: Micros, kind: EventKind) -> Self {
        Self { time, kind }
    }
}

/// A terminal's complete state at the start of a chunk, so a player can seek without
/// replaying from the start: the bytes, written to a fresh VT100/xterm-compatible terminal of
/// `size`, reproduce its screens, cursor, pen, modes and margins.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Keyframe {
    /// The terminal's channel.
    pub channel: ChannelId,
    /// Its size.
    pub size: TermSize,
    /// The escape-sequence dump (UTF-8).
    pub screen: Vec<u8>,
}

/// One entry of a chunk's payload, as the reader returns it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Record {
    /// An event.
    Event(Event),
    /// A keyframe (at the chunk's start time).
    Keyframe(Micros, Keyframe),
}
