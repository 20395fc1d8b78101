//! The plain text transcript: what appeared on each terminal, line by line with times, and
//! every other event as a note.

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};

use super::lines::{Line, LineAssembler};
use super::{ExportSummary, Item, OutputFilter, Verdict, io_err, walk};
use crate::error::RecordingError;
use crate::event::{
    ChannelId, ChannelKind, ClipboardDirection, EventKind, ForwardDirection, TransferDirection,
    ViewerMode,
};
use crate::reader::Reader;
use crate::time::Micros;

fn describe_kind(k: &ChannelKind) -> String {
    let pty = |p: Option<&crate::event::Pty>| match p {
        Some(p) if p.term.is_empty() => format!(" (pty {})", p.size),
        Some(p) => format!(" (pty {} {})", p.term, p.size),
        None => String::new(),
    };
    match k {
        ChannelKind::Shell { pty: p } => format!("shell{}", pty(p.as_ref())),
        ChannelKind::Exec { command, pty: p } => format!("exec {command:?}{}", pty(p.as_ref())),
        ChannelKind::Subsystem { name } => format!("subsystem {name}"),
        ChannelKind::PortForward {
            direction,
            host,
            port,
            originator,
        } => format!(
            "{} port forward to {host}:{port}{}",
            match direction {
                ForwardDirection::Local => "local",
                ForwardDirection::Remote => "remote",
            },
            if originator.is_empty() {
                String::new()
            } else {
                format!(" from {originator}")
            }
        ),
        ChannelKind::X11 => "X11".into(),
        ChannelKind::Agent => "agent forwarding".into(),
        ChannelKind::Other { name } => format!("channel type {name:?}"),
    }
}

/// A one-line description of a non-output event (`None` for output and plain input).
pub(crate) fn describe(e: &EventKind) -> Option<String> {
    Some(match e {
        EventKind::Output { .. } | EventKind::Input { .. } => return None,
        EventKind::InputRedacted { channel } => {
            format!("channel {channel}: input hidden (echo off)")
        }
        EventKind::Resize { channel, size } => format!("channel {channel}: resized to {size}"),
        EventKind::ChannelOpen { channel, kind } => {
            format!("channel {channel} opened: {}", describe_kind(kind))
        }
        EventKind::ChannelClose {
            channel,
            exit_status,
            exit_signal,
        } => {
            let mut s = format!("channel {channel} closed");
            if let Some(x) = exit_status {
                s.push_str(&format!(", exit status {x}"));
            }
            if let Some(sig) = exit_signal {
                s.push_str(&format!(", signal {sig}"));
            }
            s
        }
        EventKind::FileTransfer(t) => {
            let mut s = format!(
                "{} {} {:?} over {}",
                match t.direction {
                    TransferDirection::Upload => "upload",
                    TransferDirection::Download => "download",
                },
                t.size.map_or("?".to_owned(), |n| format!("{n} bytes")),
                t.path,
                t.protocol
            );
            if let Some(h) = &t.blake3 {
                s.push_str(&format!(", blake3 {}", hex::encode(h)));
            }
            s
        }
        EventKind::Clipboard {
            direction,
            mime,
            data,
        } => format!(
            "clipboard {} {mime}, {} bytes",
            match direction {
                ClipboardDirection::ClientToTarget => "client → target",
                ClipboardDirection::TargetToClient => "target → client",
            },
            data.len()
        ),
        EventKind::Frame {
            x,
            y,
            width,
            height,
            png,
        } => format!(
            "screen frame {width}x{height} at {x},{y} ({} bytes PNG)",
            png.len()
        ),
        EventKind::Pixels {
            x,
            y,
            width,
            height,
            palette,
            ..
        } => format!(
            "screen frame {width}x{height} at {x},{y} (raw, {} colours)",
            palette.len() / 3
        ),
        EventKind::Marker { label } => format!("marker: {label}"),
        EventKind::Annotation { author, text } => format!("note by {author}: {text}"),
        EventKind::Policy {
            action,
            rule,
            detail,
        } => format!("policy {}: rule {rule:?}: {detail}", action.as_str()),
        EventKind::ViewerJoined { viewer, mode } => format!(
            "{viewer} joined ({})",
            match mode {
                ViewerMode::Watch => "watching",
                ViewerMode::Control => "in control",
            }
        ),
        EventKind::ViewerLeft { viewer } => format!("{viewer} left"),
        EventKind::SessionEnd { reason } => format!("session ended: {reason}"),
        EventKind::DbStatement(s) => db_statement_line(s),
    })
}

/// One statement of a database session: where, what, and what came of it.
fn db_statement_line(s: &crate::DbStatement) -> String {
    let mut line = format!("sql [{}] {}", s.database, s.text.trim());
    if !s.parameters.is_empty() {
        let params: Vec<&str> = s
            .parameters
            .iter()
            .map(|p| p.as_deref().unwrap_or("NULL"))
            .collect();
        line.push_str(&format!(" -- parameters: {}", params.join(", ")));
    }
    match (&s.error, &s.tag) {
        (Some(e), _) => line.push_str(&format!(" => ERROR {}: {}", e.code, e.message)),
        (None, Some(tag)) => line.push_str(&format!(" => {tag}")),
        (None, None) => {}
    }
    if !s.columns.is_empty() {
        line.push_str(&format!(
            " ({} rows: {})",
            s.rows_returned,
            s.columns.join(", ")
        ));
    }
    line
}

fn write_line(out: &mut impl Write, ch: ChannelId, l: &Line) -> std::io::Result<()> {
    if ch.0 == 0 {
        writeln!(out, "[{}] {}", l.time, l.text)
    } else {
        writeln!(out, "[{} ch{}] {}", l.time, ch.0, l.text)
    }
}

/// Writes the transcript. Binary output is left out, with a note (see [the module](super)).
pub fn export_text<R: Read + Seek, W: Write>(
    reader: &mut Reader<R>,
    out: W,
    progress: impl FnMut(usize, usize),
) -> Result<ExportSummary, RecordingError> {
    let mut out = std::io::BufWriter::new(out);
    let h = reader.header().clone();
    let started = h
        .started_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    writeln!(
        out,
        "# PSM session {}\n# user {} → target {} ({})\n# started {started}, recorded by {}",
        h.session_id, h.user, h.target, h.protocol, h.writer
    )
    .map_err(io_err("transcript"))?;
    let mut assemblers: BTreeMap<ChannelId, LineAssembler> = BTreeMap::new();
    let mut items = 0u64;
    let mut last = Micros::ZERO;
    let mut err: Option<std::io::Error> = None;
    let mut filter = OutputFilter::new(&h);
    let mut summary = walk(
        reader,
        |item| {
            let mut lines: Vec<(ChannelId, Line)> = Vec::new();
            let note = match item {
                Item::Gap(g) => {
                    for (c, a) in assemblers.iter_mut() {
                        a.flush(&mut |l| lines.push((*c, l)));
                    }
                    Some((g.from, format!("GAP: {}", g.reason)))
                }
                Item::Event(e) => {
                    last = e.time;
                    let verdict = filter.check(e);
                    match &e.kind {
                        EventKind::Output { channel, .. } if verdict != Verdict::Keep => {
                            if verdict == Verdict::StartOmitting {
                                if let Some(a) = assemblers.get_mut(channel) {
                                    a.flush(&mut |l| lines.push((*channel, l)));
                                }
                                Some((
                                    e.time,
                                    format!(
                                        "channel {channel}: binary output from here on is left out \
                                         of this transcript (the raw recording holds it)"
                                    ),
                                ))
                            } else {
                                None
                            }
                        }
                        EventKind::Output { channel, data, .. } => {
                            assemblers
                                .entry(*channel)
                                .or_default()
                                .feed(e.time, data, &mut |l| lines.push((*channel, l)));
                            None
                        }
                        kind => describe(kind).map(|d| {
                            match kind.channel() {
                                Some(c) => {
                                    if let Some(a) = assemblers.get_mut(&c) {
                                        a.flush(&mut |l| lines.push((c, l)));
                                    }
                                }
                                None => {
                                    for (c, a) in assemblers.iter_mut() {
                                        a.flush(&mut |l| lines.push((*c, l)));
                                    }
                                }
                            }
                            (e.time, d)
                        }),
                    }
                }
            };
            for (c, l) in &lines {
                if let Err(e) = write_line(&mut out, *c, l) {
                    err.get_or_insert(e);
                }
                items += 1;
            }
            if let Some((t, d)) = note {
                if let Err(e) = writeln!(out, "[{t}] -- {d}") {
                    err.get_or_insert(e);
                }
                items += 1;
            }
            Ok(())
        },
        progress,
    )?;
    for (c, a) in assemblers.iter_mut() {
        let mut lines = Vec::new();
        a.finish(last, &mut |l| lines.push(l));
        for l in &lines {
            write_line(&mut out, *c, l).map_err(io_err("transcript"))?;
            items += 1;
        }
    }
    if let Some(e) = err {
        return Err(io_err("transcript")(e));
    }
    let omitted = filter.omitted();
    for o in &omitted {
        writeln!(out, "[{last}] -- {o}").map_err(io_err("transcript"))?;
        items += 1;
    }
    out.flush().map_err(io_err("transcript"))?;
    summary.items = items;
    summary.omitted = omitted;
    Ok(summary)
}
