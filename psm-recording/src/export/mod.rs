//! Exporters: asciicast v2, text transcript, command index (JSON), PNG frames; and the
//! walk they share, which "encodes what is intact and marks the gap".
//!
//! Every exporter is deterministic: the same recording gives byte-identical output, so two
//! encoders retaking a session produce the same files.

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

use crate::error::RecordingError;
use crate::event::Event;
use crate::reader::{Integrity, Reader};
use crate::time::Micros;

/// A part of a recording that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// Where the gap starts (the end of the last readable event before it).
    pub from: Micros,
    /// Where readable events resume, if they do.
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
    Ok(summary)
}

pub(crate) fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> RecordingError + '_ {
    move |e| RecordingError::io(format!("writing the {what}"), e)
}
