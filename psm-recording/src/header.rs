//! The header: who, where, when, and by which writer.

use std::collections::BTreeMap;
use std::fmt;

use psm_core::SessionId;
use time::OffsetDateTime;

use crate::event::TermSize;

pub use psm_core::Protocol;

/// What a recording is of: a session of one of the control plane's protocols
/// ([`psm_core::Protocol`]), a terminal recorded elsewhere and imported (asciicast), or a
/// protocol a newer writer knew and this reader does not.
///
/// ```
/// use psm_recording::{Protocol, RecordedProtocol};
/// assert_eq!(RecordedProtocol::from_name("rdp"), Protocol::Rdp);
/// assert_eq!(RecordedProtocol::from(Protocol::Ssh).as_str(), "ssh");
/// assert_eq!(RecordedProtocol::from_name("vnc"), RecordedProtocol::Other("vnc".into()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RecordedProtocol {
    /// A session through a PSM gateway.
    Session(Protocol),
    /// A local terminal (e.g. imported from asciicast).
    Terminal,
    /// Anything else, by its stored name (lower case, e.g. `telnet`, `vnc`).
    Other(String),
}

impl RecordedProtocol {
    /// The name stored in the file: the session protocol's name (`ssh`, `rdp`, ...),
    /// `terminal`, or the other name.
    pub fn as_str(&self) -> &str {
        match self {
            RecordedProtocol::Session(p) => p.as_str(),
            RecordedProtocol::Terminal => "terminal",
            RecordedProtocol::Other(s) => s,
        }
    }

    /// Parses a stored name (unknown names become [`RecordedProtocol::Other`]).
    pub fn from_name(name: &str) -> Self {
        match name {
            "terminal" => RecordedProtocol::Terminal,
            other => match other.parse::<Protocol>() {
                Ok(p) => RecordedProtocol::Session(p),
                Err(_) => RecordedProtocol::Other(other.to_owned()),
            },
        }
    }

    /// Whether the recording is of a desktop (pictures rather than a terminal): RDP, VNC.
    pub fn is_graphical(&self) -> bool {
        match self {
            RecordedProtocol::Session(p) => *p == Protocol::Rdp,
            RecordedProtocol::Other(name) => name == "vnc",
            RecordedProtocol::Terminal => false,
        }
    }

    /// The session protocol, for recordings of PSM sessions.
    pub fn session(&self) -> Option<Protocol> {
        match self {
            RecordedProtocol::Session(p) => Some(*p),
            _ => None,
        }
    }
}

impl From<Protocol> for RecordedProtocol {
    fn from(p: Protocol) -> Self {
        RecordedProtocol::Session(p)
    }
}

impl PartialEq<Protocol> for RecordedProtocol {
    fn eq(&self, other: &Protocol) -> bool {
        self.session() == Some(*other)
    }
}

impl fmt::Display for RecordedProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The session a recording is of. Written once, at the start, signed like everything else.
/// Note that the header is never encrypted: whoever holds the file can read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The session (the control plane's `PrivSessionID`).
    pub session_id: SessionId,
    /// Wall-clock start, stored with microsecond precision. Event times count from here.
    pub started_at: OffsetDateTime,
    /// What it is a recording of.
    pub protocol: RecordedProtocol,
    /// The PSM user who opened the session.
    pub user: String,
    /// The target (its name or `account@host:port`).
    pub target: String,
    /// The terminal size at the start, for terminal sessions (channel 0's size when no
    /// channel is opened explicitly, e.g. in asciicast imports).
    pub terminal: Option<TermSize>,
    /// The `TERM` of that terminal (may be empty).
    pub term_type: String,
    /// Who wrote the file: software and process instance, e.g. `psm-gateway/0.1.0 gw-1`.
    pub writer: String,
    /// Free-form labels (client address, ticket number, ...), sorted by key.
    pub metadata: BTreeMap<String, String>,
}

impl Header {
    /// A header for a session starting now, with no terminal and no metadata.
    pub fn new(
        session_id: SessionId,
        protocol: impl Into<RecordedProtocol>,
        user: impl Into<String>,
        target: impl Into<String>,
        writer: impl Into<String>,
    ) -> Self {
        Self {
            session_id,
            started_at: truncate_to_micros(OffsetDateTime::now_utc()),
            protocol: protocol.into(),
            user: user.into(),
            target: target.into(),
            terminal: None,
            term_type: String::new(),
            writer: writer.into(),
            metadata: BTreeMap::new(),
        }
    }

    /// Sets the terminal size and `TERM`.
    pub fn with_terminal(mut self, size: TermSize, term_type: impl Into<String>) -> Self {
        self.terminal = Some(size);
        self.term_type = term_type.into();
        self
    }

    /// Sets the start time (truncated to microseconds, as stored).
    pub fn with_started_at(mut self, at: OffsetDateTime) -> Self {
        self.started_at = truncate_to_micros(at);
        self
    }

    /// `started_at` as microseconds since the Unix epoch.
    pub fn started_at_unix_micros(&self) -> i64 {
        let nanos = self.started_at.unix_timestamp_nanos();
        i64::try_from(nanos.div_euclid(1000)).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
    }
}

/// Drops sub-microsecond precision (what the file stores).
pub fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let nanos = t.nanosecond();
    t.replace_nanosecond(nanos - nanos % 1000).unwrap_or(t)
}

pub(crate) fn from_unix_micros(us: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).ok()
}
