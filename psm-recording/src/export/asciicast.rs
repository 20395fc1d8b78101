//! asciicast v2 (<https://docs.asciinema.org/manual/asciicast/v2/>), as the `asciinema` CLI
//! and player read it.

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};

use serde::Serialize;

use super::{ExportSummary, Item, OutputFilter, Verdict, io_err, walk};
use crate::error::RecordingError;
use crate::event::{ChannelId, EventKind, TermSize};
use crate::reader::Reader;
use crate::terminal::Utf8Decoder;
use crate::time::Micros;

/// What to put in the cast.
#[derive(Clone, Debug, Default)]
pub struct AsciicastOptions {
    /// The terminal channel to export. Default: the first channel opened with a pty, or the
    /// first channel with output (channel 0 in single-stream recordings).
    pub channel: Option<ChannelId>,
    /// Also write the user's (unredacted) keystrokes as `"i"` events.
    pub include_input: bool,
    /// `idle_time_limit` for players, in seconds.
    pub idle_time_limit: Option<f64>,
}

#[derive(Serialize)]
struct CastHeader {
    version: u32,
    width: u16,
    height: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idle_time_limit: Option<f64>,
    title: String,
    env: BTreeMap<&'static str, String>,
}

/// The channel a cast is of, and its size at the start.
fn choose_channel<R: Read + Seek>(
    reader: &mut Reader<R>,
    wanted: Option<ChannelId>,
) -> Result<(ChannelId, TermSize), RecordingError> {
    let default_size = reader.header().terminal.unwrap_or(TermSize::new(80, 24));
    for i in 0..reader.chunks().len().min(64) {
        let Ok(c) = reader.read_chunk(i) else {
            continue;
        };
        for e in &c.events {
            match &e.kind {
                EventKind::ChannelOpen { channel, kind }
                    if wanted.is_none_or(|w| w == *channel) =>
                {
                    if let Some(p) = kind.pty() {
                        return Ok((*channel, p.size));
                    }
                }
                EventKind::Resize { channel, size } if wanted == Some(*channel) => {
                    return Ok((*channel, *size));
                }
                EventKind::Output { channel, .. } if wanted.is_none_or(|w| w == *channel) => {
                    return Ok((*channel, default_size));
                }
                _ => {}
            }
        }
    }
    Ok((wanted.unwrap_or(ChannelId(0)), default_size))
}

fn secs(t: Micros) -> String {
    format!("{}.{:06}", t.0 / 1_000_000, t.0 % 1_000_000)
}

fn line(out: &mut impl Write, t: Micros, code: &str, data: &str) -> Result<(), RecordingError> {
    let data = serde_json::to_string(data)
        .map_err(|e| RecordingError::Export(format!("encoding an event: {e}")))?;
    writeln!(out, "[{}, \"{code}\", {data}]", secs(t)).map_err(io_err("asciicast"))
}

/// Writes the recording as asciicast v2. Damaged or missing parts become `"m"` (marker)
/// events that say what is missing, and so does binary output left out (see
/// [the module](super)).
pub fn export_asciicast<R: Read + Seek, W: Write>(
    reader: &mut Reader<R>,
    out: W,
    options: &AsciicastOptions,
    progress: impl FnMut(usize, usize),
) -> Result<ExportSummary, RecordingError> {
    let mut out = std::io::BufWriter::new(out);
    let (channel, size) = choose_channel(reader, options.channel)?;
    let h = reader.header();
    let mut env = BTreeMap::new();
    env.insert("SHELL", String::new());
    env.insert(
        "TERM",
        if h.term_type.is_empty() {
            "xterm-256color".to_owned()
        } else {
            h.term_type.clone()
        },
    );
    env.retain(|_, v| !v.is_empty());
    let header = CastHeader {
        version: 2,
        width: size.cols.max(1),
        height: size.rows.max(1),
        timestamp: Some(h.started_at.unix_timestamp()),
        idle_time_limit: options.idle_time_limit,
        title: format!(
            "{}@{} ({}, session {})",
            h.user, h.target, h.protocol, h.session_id
        ),
        env,
    };
    let header = serde_json::to_string(&header)
        .map_err(|e| RecordingError::Export(format!("encoding the header: {e}")))?;
    writeln!(out, "{header}").map_err(io_err("asciicast"))?;

    let mut utf8 = Utf8Decoder::new();
    let mut text = String::new();
    let mut items = 0u64;
    let mut filter = OutputFilter::new(reader.header());
    let mut last = Micros::ZERO;
    let mut summary = walk(
        reader,
        |item| {
            let e = match item {
                Item::Gap(g) => {
                    items += 1;
                    return line(&mut out, g.from, "m", &format!("[gap: {}]", g.reason));
                }
                Item::Event(e) => e,
            };
            last = e.time;
            match filter.check(e) {
                Verdict::Keep => {}
                Verdict::StartOmitting => {
                    if e.kind.channel() == Some(channel) {
                        items += 1;
                        return line(
                            &mut out,
                            e.time,
                            "m",
                            &format!(
                                "[channel {channel}: binary output from here on is not in this export]"
                            ),
                        );
                    }
                    return Ok(());
                }
                Verdict::Omit => return Ok(()),
            }
            match &e.kind {
                EventKind::Output {
                    channel: c, data, ..
                } if *c == channel => {
                    text.clear();
                    utf8.decode(data, &mut text);
                    if !text.is_empty() {
                        line(&mut out, e.time, "o", &text)?;
                        items += 1;
                    }
                }
                EventKind::Input {
                    channel: c, data, ..
                } if *c == channel && options.include_input => {
                    line(&mut out, e.time, "i", &String::from_utf8_lossy(data))?;
                    items += 1;
                }
                EventKind::Resize { channel: c, size } if *c == channel => {
                    line(
                        &mut out,
                        e.time,
                        "r",
                        &format!("{}x{}", size.cols, size.rows),
                    )?;
                    items += 1;
                }
                EventKind::Marker { label } => {
                    line(&mut out, e.time, "m", label)?;
                    items += 1;
                }
                _ => {}
            }
            Ok(())
        },
        progress,
    )?;
    let omitted = filter.omitted();
    for o in omitted.iter().filter(|o| o.channel == channel) {
        line(&mut out, last, "m", &format!("[{o}]"))?;
        items += 1;
    }
    out.flush().map_err(io_err("asciicast"))?;
    summary.items = items;
    summary.omitted = omitted
        .into_iter()
        .filter(|o| o.channel == channel)
        .collect();
    Ok(summary)
}
