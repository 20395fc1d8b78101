//! # psm-recording
//!
//! PSM's recordings: the `.psmr` container (chunked, zstd-compressed, indexed, BLAKE3
//! hash-chained, ed25519-signed, optionally encrypted for X25519 recipients), the event
//! model of a session, a crash-safe async writer, a verifying, seeking reader, exporters
//! (asciicast v2, text transcript, command index, PNG frames), the canvas that replays
//! graphical sessions, an asciicast importer, a player and search. The byte format is specified in `docs/psmr.md`.
//!
//! ```
//! # async fn demo() -> Result<(), psm_recording::RecordingError> {
//! use psm_recording::*;
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("session.psmr");
//!
//! // A gateway records a session (keys: `SigningKey::generate`, `RecipientSecret::generate`).
//! let signer = SigningKey::generate()?;
//! let auditor = RecipientSecret::generate()?;
//! let header = Header::new(psm_core::SessionId::new(), Protocol::Ssh, "alice", "web-01", "gw-1")
//!     .with_terminal(TermSize::new(80, 24), "xterm-256color");
//! let config = WriterConfig { recipients: vec![auditor.public()], ..WriterConfig::default() };
//! let w = RecordingWriter::create(&path, header, signer.clone(), config).await?;
//! w.output(ChannelId(0), b"alice@web-01:~$ ").await?;
//! w.input(ChannelId(0), b"uptime\r", false).await?;
//! w.output(ChannelId(0), b"uptime\r\n 12:00:01 up 3 days\r\n").await?;
//! w.finish("client disconnected").await?;
//!
//! // Anyone can check it; only the auditor can read it.
//! let report = verify(&path, &VerifyOptions::trusting(signer.verifying_key()))?;
//! assert_eq!(report.status.to_string(), "intact");
//! let mut r = Reader::open(&path, ReadOptions { identity: Some(auditor), ..Default::default() })?;
//! let mut screen = r.screen_at(r.duration())?;
//! assert_eq!(screen.terminal(ChannelId(0)).unwrap().lines()[1], " 12:00:01 up 3 days");
//! let mut cast = Vec::new();
//! export::export_asciicast(&mut r, &mut cast, &Default::default(), |_, _| {})?;
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! Where to look: [`event`] (what is recorded), [`writer`] ([`RecordingWriter`] for gateways,
//! [`BlockingWriter`] for tools), [`reader`] ([`Reader`], [`verify`]), [`terminal`] (the one
//! terminal emulator and UTF-8 decoder: keyframes, seeking, live viewers, the gateway's
//! command tracker), [`graphics`] (graphical screens), [`export`], [`import`], [`play`],
//! [`search`], [`keys`], [`format`] (the byte layout), [`layout`] (where a node keeps raw
//! recordings and exports on disk).

pub mod error;
pub mod event;
pub mod export;
pub mod format;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod graphics;
pub mod header;
pub mod import;
pub mod index;
pub mod keys;
pub mod layout;
pub mod play;
pub mod reader;
pub mod search;
pub mod terminal;
pub mod time;
pub mod writer;

pub use error::{Place, RecordingError};
pub use event::{
    ChannelId, ChannelKind, ClipboardDirection, DbError, DbStatement, Event, EventKind,
    FileTransfer, ForwardDirection, Keyframe, PolicyAction, Pty, Record, Stream, TermSize,
    TransferDirection, ViewerMode,
};
pub use header::{Header, Protocol, RecordedProtocol};
pub use keys::{RecipientPublic, RecipientSecret, SigningKey, VerifyingKey};
pub use reader::{
    ChunkInfo, ChunkRecords, Ending, Integrity, ReadOptions, Reader, SeekIndexInfo, VerifyOptions,
    VerifyReport, verify, verify_reader,
};
pub use terminal::{TerminalState, TerminalTracker, Utf8Decoder};
pub use time::Micros;
pub use writer::{
    BlockingWriter, FinishedRecording, FsyncPolicy, InputPolicy, MemorySink, RecordingSink,
    RecordingWriter, WriterConfig,
};
