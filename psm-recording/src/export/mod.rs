//! Exporters: asciicast v2, text transcript, command index (JSON), PNG frames; and the
//! walk they share, which "encodes what is intact and marks the gap".
//!
//! Every exporter is deterministic: the same recording gives byte-identical output, so two
//! encoders retaking a session produce the same files.
//!
//! **Binary output.** Output on a channel without a terminal (an exec or subsystem channel
//! without a pty, a port forward) that is not text — a NUL byte, or more than one byte in
//! sixteen a control character other than tab, newline, carriage return, bell, backspace,
//! form feed and escape, in a piece of at least 64 bytes — makes the asciicast and the
//! transcript leave out that channel's output from there on (until the channel is opened
//! again): `ssh host 'tar czf - /etc' > etc.tgz` would otherwise cost six bytes of JSON per
//! byte, and add nothing a reader of the export could use. The export says so where it
//! starts and how many bytes were left out at the end, and [`ExportSummary::omitted`] lists
//! them (the encoder puts them in the manifest); the raw recording keeps every byte.

mod asciicast;
mod commands;
mod frames;
mod lines;
mod text;

use std::io::{Read, Seek};

pub use asciicast::{AsciicastOptions, export_asciicast};
pub use commands::{Command, CommandIndex, CommandSource, export_commands};
pub use frames::{FrameFile, encode_png, export_frames};
pub use lines::{Line, LineAssembler};
pub(crate) use text::describe;
pub use text::export_text;

use std::collections::{BTreeMap, BTreeSet};

use crate::error::RecordingError;
use crate::event::{ChannelId, Event, EventKind};
use crate::header::Header;
use crate::reader::{Integrity, Reader};
use crate::time::Micros;

/// A part of a recording that could not be read. Exports list them, and the encoder's
/// manifest (`psm-pipeline`) stores them as JSON (`from_micros`, `to_micros`, `reason`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Gap {
    /// Where the gap starts (the end of the last readable event before it).
    #[serde(rename = "from_micros")]
    pub from: Micros,
    /// Where readable events resume, if they do.
    #[serde(rename = "to_micros", default)]
    pub to: Option<Micros>,
    /// Why (`chunk 4 tampered: ...`, `recording truncated after chunk 9 at ...`).
    pub reason: String,
}

/// What an export wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Events read.
    pub events: u64,
    /// Items written (lines, asciicast events, commands, frames).
    pub items: u64,
    /// Parts that could not be read, in order.
    pub gaps: Vec<Gap>,
    /// Binary output left out of the export (see the module's docs), in order.
    pub omitted: Vec<Omission>,
    /// Channels that were terminals at some point (the header's, or opened with a pty, or
    /// resized): 0 means there is no screen to index or replay.
    pub terminals: u32,
}

/// Binary output an export left out: a channel's output from `from` on, `bytes` in all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Omission {
    /// The channel.
    pub channel: ChannelId,
    /// The time of its first binary output.
    pub from: Micros,
    /// Bytes of output left out.
    pub bytes: u64,
}

impl std::fmt::Display for Omission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "channel {}: {} bytes of binary output from {} on left out (the raw recording holds them)",
            self.channel, self.bytes, self.from
        )
    }
}

/// Whether a piece of output on a channel without a terminal is binary data rather than text.
fn looks_binary(data: &[u8]) -> bool {
    if data.contains(&0) {
        return true;
    }
    if data.len() < 64 {
        return false;
    }
    let odd = data
        .iter()
        .filter(|&&b| {
            (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x07 | 0x08 | 0x0c | 0x1b))
                || b == 0x7f
        })
        .count();
    odd * 16 > data.len()
}

/// What an exporter does with an event's output (see [`OutputFilter::check`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Export it (also every event that is not output).
    Keep,
    /// The channel's first binary output: say that its output is left out from here on.
    StartOmitting,
    /// Leave it out.
    Omit,
}

/// Follows which channels are terminals and which carry binary output, for the exporters
/// that write output as text.
#[derive(Debug, Default)]
pub(crate) struct OutputFilter {
    terminals: BTreeSet<ChannelId>,
    binary: BTreeMap<ChannelId, usize>,
    omitted: Vec<Omission>,
}

impl OutputFilter {
    pub(crate) fn new(header: &Header) -> Self {
        let mut f = Self::default();
        if header.terminal.is_some() {
            f.terminals.insert(ChannelId(0));
        }
        f
    }

    /// Call with every event, in order.
    pub(crate) fn check(&mut self, e: &Event) -> Verdict {
        match &e.kind {
            EventKind::ChannelOpen { channel, kind } => {
                self.binary.remove(channel);
                if kind.pty().is_some() {
                    self.terminals.insert(*channel);
                } else {
                    self.terminals.remove(channel);
                }
            }
            EventKind::Resize { channel, .. } => {
                self.terminals.insert(*channel);
            }
            EventKind::ChannelClose { channel, .. } => {
                self.terminals.remove(channel);
            }
            EventKind::Output { channel, data, .. } if !self.terminals.contains(channel) => {
                if let Some(&i) = self.binary.get(channel) {
                    if let Some(o) = self.omitted.get_mut(i) {
                        o.bytes += data.len() as u64;
                    }
                    return Verdict::Omit;
                }
                if looks_binary(data) {
                    self.binary.insert(*channel, self.omitted.len());
                    self.omitted.push(Omission {
                        channel: *channel,
                        from: e.time,
                        bytes: data.len() as u64,
                    });
                    return Verdict::StartOmitting;
                }
            }
            _ => {}
        }
        Verdict::Keep
    }

    /// What was left out.
    pub(crate) fn omitted(self) -> Vec<Omission> {
        self.omitted
    }
}

/// One step of [`walk`].
#[derive(Clone, Copy, Debug)]
pub enum Item<'a> {
    /// A readable event.
    Event(&'a Event),
    /// A part that could not be read.
    Gap(&'a Gap),
}

/// Visits every readable event in order, and every gap where it occurs: a damaged chunk, or
/// the end of a truncated or tampered file. `progress` gets `(chunks done, chunks)`.
pub fn walk<R: Read + Seek>(
    reader: &mut Reader<R>,
    mut visit: impl FnMut(Item<'_>) -> Result<(), RecordingError>,
    mut progress: impl FnMut(usize, usize),
) -> Result<ExportSummary, RecordingError> {
    let mut summary = ExportSummary::default();
    let mut terminals: BTreeSet<ChannelId> = BTreeSet::new();
    if reader.header().terminal.is_some() {
        terminals.insert(ChannelId(0));
    }
    let n = reader.chunks().len();
    let mut last = Micros::ZERO;
    let mut pending_gap: Option<Gap> = None;
    for i in 0..n {
        match reader.read_chunk(i) {
            Ok(c) => {
                if let Some(mut g) = pending_gap.take() {
                    g.to = Some(c.info.t_start);
                    visit(Item::Gap(&g))?;
                    summary.gaps.push(g);
                }
                for e in &c.events {
                    match &e.kind {
                        EventKind::ChannelOpen { channel, kind } if kind.pty().is_some() => {
                            terminals.insert(*channel);
                        }
                        EventKind::Resize { channel, .. } => {
                            terminals.insert(*channel);
                        }
                        _ => {}
                    }
                    visit(Item::Event(e))?;
                    last = e.time;
                }
                summary.events += c.events.len() as u64;
            }
            Err(e @ RecordingError::Encrypted { .. }) => return Err(e),
            Err(e) => {
                let seq = reader.chunks()[i].seq;
                match &mut pending_gap {
                    Some(g) => g.reason.push_str(&format!("; chunk {seq}: {e}")),
                    None => {
                        pending_gap = Some(Gap {
                            from: last,
                            to: None,
                            reason: format!("chunk {seq} unreadable: {e}"),
                        })
                    }
                }
            }
        }
        progress(i + 1, n);
    }
    let tail = match reader.integrity() {
        Integrity::Intact { .. } => None,
        Integrity::Truncated { .. } => Some(format!("recording {}", reader.integrity())),
        Integrity::Tampered { .. } if reader.ending().is_none() => Some(format!(
            "recording unreadable after this point: {}",
            reader.integrity()
        )),
        Integrity::Tampered { .. } => None,
    };
    let gap = match (pending_gap, tail) {
        (Some(mut g), Some(t)) => {
            g.reason.push_str(&format!("; {t}"));
            Some(g)
        }
        (Some(g), None) => Some(g),
        (None, Some(t)) => Some(Gap {
            from: last,
            to: None,
            reason: t,
        }),
        (None, None) => None,
    };
    if let Some(g) = gap {
        visit(Item::Gap(&g))?;
        summary.gaps.push(g);
    }
    summary.terminals = u32::try_from(terminals.len()).unwrap_or(u32::MAX);
    Ok(summary)
}

pub(crate) fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> RecordingError + '_ {
    move |e| RecordingError::io(format!("writing the {what}"), e)
}
