//! Importing asciicast v2 files (what `asciinema rec` writes), so existing recordings can be
//! converted to `.psmr`.

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::Deserialize;

use crate::error::RecordingError;
use crate::event::{ChannelId, Event, EventKind, Stream, TermSize};
use crate::header::{Header, RecordedProtocol};
use crate::keys::SigningKey;
use crate::time::Micros;
use crate::writer::{BlockingWriter, FinishedRecording, RecordingSink, WriterConfig};

/// Longest line accepted (one event, or the header).
pub const MAX_CAST_LINE: usize = 8 << 20;
/// Latest time accepted, in seconds (about 31 years).
const MAX_CAST_SECS: f64 = 1e9;

/// The header line of a cast.
#[derive(Clone, Debug, PartialEq)]
pub struct CastHeader {
    /// Terminal columns.
    pub width: u16,
    /// Terminal rows.
    pub height: u16,
    /// Unix time of the start.
    pub timestamp: Option<i64>,
    /// Title.
    pub title: Option<String>,
    /// `TERM` from `env`.
    pub term: Option<String>,
    /// `SHELL` from `env`.
    pub shell: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    version: serde_json::Value,
    width: Option<u64>,
    height: Option<u64>,
    timestamp: Option<f64>,
    title: Option<String>,
    env: Option<BTreeMap<String, Option<String>>>,
}

/// Reads a cast line by line, with bounded memory.
#[derive(Debug)]
pub struct AsciicastReader<R> {
    input: R,
    line_no: u64,
    buf: Vec<u8>,
    header: CastHeader,
}

impl<R: BufRead> AsciicastReader<R> {
    /// Reads and checks the header line.
    pub fn new(input: R) -> Result<Self, RecordingError> {
        let mut r = Self {
            input,
            line_no: 0,
            buf: Vec::new(),
            header: CastHeader {
                width: 80,
                height: 24,
                timestamp: None,
                title: None,
                term: None,
                shell: None,
            },
        };
        if !r.read_line()? {
            return Err(r.err("the file is empty: no asciicast header"));
        }
        let raw: RawHeader = serde_json::from_slice(&r.buf)
            .map_err(|e| r.err(format!("the header is not an asciicast header: {e}")))?;
        match raw.version.as_u64() {
            Some(2) => {}
            Some(v) => {
                return Err(r.err(format!(
                    "asciicast version {v} is not supported (only version 2)"
                )));
            }
            None => return Err(r.err(format!("version {} is not a number", raw.version))),
        }
        let dim = |v: Option<u64>, what: &str| -> Result<u16, RecordingError> {
            let v = v.ok_or_else(|| r.err(format!("the header has no {what}")))?;
            u16::try_from(v)
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| r.err(format!("{what} {v} is outside 1..=65535")))
        };
        let width = dim(raw.width, "width")?;
        let height = dim(raw.height, "height")?;
        let timestamp = match raw.timestamp {
            Some(t) if t.is_finite() && t.abs() < 1e12 => Some(t as i64),
            Some(t) => return Err(r.err(format!("timestamp {t} is out of range"))),
            None => None,
        };
        let env = raw.env.unwrap_or_default();
        r.header = CastHeader {
            width,
            height,
            timestamp,
            title: raw.title,
            term: env.get("TERM").cloned().flatten(),
            shell: env.get("SHELL").cloned().flatten(),
        };
        Ok(r)
    }

    /// The header.
    pub fn header(&self) -> &CastHeader {
        &self.header
    }

    fn err(&self, reason: impl Into<String>) -> RecordingError {
        RecordingError::Asciicast {
            line: self.line_no,
            reason: reason.into(),
        }
    }

    /// Reads the next line into `buf` (without the newline); false at the end.
    fn read_line(&mut self) -> Result<bool, RecordingError> {
        self.buf.clear();
        self.line_no += 1;
        loop {
            let avail = self
                .input
                .fill_buf()
                .map_err(|e| RecordingError::io(format!("reading line {}", self.line_no), e))?;
            if avail.is_empty() {
                return Ok(!self.buf.is_empty());
            }
            let (take, done) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (avail.len(), false),
            };
            if self.buf.len() + take > MAX_CAST_LINE {
                let line = self.line_no;
                return Err(RecordingError::Asciicast {
                    line,
                    reason: format!("longer than {MAX_CAST_LINE} bytes"),
                });
            }
            self.buf.extend_from_slice(&avail[..take]);
            self.input.consume(if done { take + 1 } else { take });
            if done {
                return Ok(true);
            }
        }
    }

    /// The next event, or `None` at the end. Unknown event codes are skipped.
    pub fn next_event(&mut self) -> Result<Option<Event>, RecordingError> {
        loop {
            if !self.read_line()? {
                return Ok(None);
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let (t, code, data): (f64, String, String) = serde_json::from_slice(&self.buf)
                .map_err(|e| self.err(format!("not an event [time, code, data]: {e}")))?;
            if !t.is_finite() || !(0.0..=MAX_CAST_SECS).contains(&t) {
                return Err(self.err(format!("time {t} is outside 0..={MAX_CAST_SECS} seconds")));
            }
            let time = Micros::from_secs_f64(t);
            let channel = ChannelId(0);
            let kind = match code.as_str() {
                "o" => EventKind::Output {
                    channel,
                    stream: Stream::Stdout,
                    data: data.into_bytes(),
                },
                "i" => EventKind::Input {
                    channel,
                    data: data.into_bytes(),
                    echo_off: false,
                },
                "r" => {
                    let size = data
                        .split_once('x')
                        .and_then(|(c, r)| {
                            Some(TermSize::new(
                                c.trim().parse().ok()?,
                                r.trim().parse().ok()?,
                            ))
                        })
                        .ok_or_else(|| self.err(format!("resize {data:?} is not COLSxROWS")))?;
                    EventKind::Resize { channel, size }
                }
                "m" => EventKind::Marker { label: data },
                _ => continue,
            };
            return Ok(Some(Event::new(time, kind)));
        }
    }
}

/// Who and what an imported recording is about (a cast does not say).
#[derive(Clone, Debug)]
pub struct ImportMeta {
    /// Session id to record (default: a new one).
    pub session_id: psm_core::SessionId,
    /// User.
    pub user: String,
    /// Target.
    pub target: String,
}

impl Default for ImportMeta {
    fn default() -> Self {
        Self {
            session_id: psm_core::SessionId::new(),
            user: "unknown".into(),
            target: "localhost".into(),
        }
    }
}

/// Converts a cast into a recording written to `sink`. `progress` gets bytes of events read.
pub fn import_asciicast<R: BufRead>(
    input: R,
    sink: Box<dyn RecordingSink>,
    key: SigningKey,
    config: WriterConfig,
    meta: ImportMeta,
    mut progress: impl FnMut(u64),
) -> Result<FinishedRecording, RecordingError> {
    let mut cast = AsciicastReader::new(input)?;
    let h = cast.header().clone();
    let mut header = Header::new(
        meta.session_id,
        RecordedProtocol::Terminal,
        meta.user,
        meta.target,
        format!("psm import (asciicast v2)/{}", env!("CARGO_PKG_VERSION")),
    )
    .with_terminal(
        TermSize::new(h.width, h.height),
        h.term.clone().unwrap_or_default(),
    )
    .with_started_at(
        time::OffsetDateTime::from_unix_timestamp(h.timestamp.unwrap_or(0))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    );
    if let Some(t) = &h.title {
        header.metadata.insert("title".into(), t.clone());
    }
    if let Some(s) = &h.shell {
        header.metadata.insert("shell".into(), s.clone());
    }
    let mut w = BlockingWriter::with_sink(sink, header, key, config)?;
    let mut last = Micros::ZERO;
    let mut bytes = 0u64;
    while let Some(e) = cast.next_event()? {
        last = last.max(e.time);
        bytes += cast.buf.len() as u64 + 1;
        w.record_at(e.time, &e.kind)?;
        progress(bytes);
    }
    w.finish_at(last, "end of asciicast")
}
