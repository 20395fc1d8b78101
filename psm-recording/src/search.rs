//! Searching recordings: commands, database statements, terminal output and event notes,
//! with time offsets.

use std::collections::BTreeMap;
use std::io::{Read, Seek};

use regex::Regex;

use crate::error::RecordingError;
use crate::event::{ChannelId, EventKind};
use crate::export::{CommandIndex, Item, Line, LineAssembler, walk};
use crate::reader::Reader;
use crate::time::Micros;

/// Most hits kept per recording.
pub const MAX_HITS: usize = 10_000;

/// Where a hit was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum HitKind {
    /// A command the user ran.
    Command,
    /// A statement of a database session, with what came of it (as the transcript shows it:
    /// `sql [DATABASE] TEXT -- parameters: ... => TAG (N rows: COLUMNS)`).
    Statement,
    /// A line of terminal output.
    Output,
    /// An event note (marker, policy action, file transfer, ...).
    Event,
    /// A gap: a part that could not be read.
    Gap,
}

impl HitKind {
    /// `command`, `statement`, `output`, `event` or `gap`.
    pub fn as_str(self) -> &'static str {
        match self {
            HitKind::Command => "command",
            HitKind::Statement => "statement",
            HitKind::Output => "output",
            HitKind::Event => "event",
            HitKind::Gap => "gap",
        }
    }
}

/// One match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// When.
    pub time: Micros,
    /// On which channel, if any.
    pub channel: Option<ChannelId>,
    /// What matched.
    pub kind: HitKind,
    /// The matching text (a command, an output line, a note).
    pub text: String,
}

/// Searches one recording; hits are ordered by time. Unreadable parts are reported as
/// [`HitKind::Gap`] hits regardless of the pattern, so nobody mistakes them for "no match".
pub fn search<R: Read + Seek>(
    reader: &mut Reader<R>,
    pattern: &Regex,
    progress: impl FnMut(usize, usize),
) -> Result<Vec<Hit>, RecordingError> {
    let header = reader.header().clone();
    let mut index = CommandIndex::new(&header);
    let mut lines: BTreeMap<ChannelId, LineAssembler> = BTreeMap::new();
    let mut hits = Vec::new();
    let mut last = Micros::ZERO;
    let push = |hits: &mut Vec<Hit>, h: Hit| {
        if hits.len() < MAX_HITS {
            hits.push(h);
        }
    };
    walk(
        reader,
        |item| {
            match item {
                Item::Gap(g) => push(
                    &mut hits,
                    Hit {
                        time: g.from,
                        channel: None,
                        kind: HitKind::Gap,
                        text: g.reason.clone(),
                    },
                ),
                Item::Event(e) => {
                    last = e.time;
                    index.apply(e);
                    match &e.kind {
                        EventKind::Output { channel, data, .. } => {
                            let mut found: Vec<Line> = Vec::new();
                            lines
                                .entry(*channel)
                                .or_default()
                                .feed(e.time, data, &mut |l| {
                                    if pattern.is_match(&l.text) {
                                        found.push(l);
                                    }
                                });
                            for l in found {
                                push(
                                    &mut hits,
                                    Hit {
                                        time: l.time,
                                        channel: Some(*channel),
                                        kind: HitKind::Output,
                                        text: l.text,
                                    },
                                );
                            }
                        }
                        kind => {
                            if let Some(d) = crate::export::describe(kind)
                                && pattern.is_match(&d)
                            {
                                push(
                                    &mut hits,
                                    Hit {
                                        time: e.time,
                                        channel: kind.channel(),
                                        kind: if matches!(kind, EventKind::DbStatement(_)) {
                                            HitKind::Statement
                                        } else {
                                            HitKind::Event
                                        },
                                        text: d,
                                    },
                                );
                            }
                        }
                    }
                }
            }
            Ok(())
        },
        progress,
    )?;
    for (c, a) in lines.iter_mut() {
        a.finish(last, &mut |l| {
            if pattern.is_match(&l.text) {
                push(
                    &mut hits,
                    Hit {
                        time: l.time,
                        channel: Some(*c),
                        kind: HitKind::Output,
                        text: l.text,
                    },
                );
            }
        });
    }
    for c in index.commands() {
        if pattern.is_match(&c.command) {
            push(
                &mut hits,
                Hit {
                    time: Micros(c.time_us),
                    channel: Some(ChannelId(c.channel)),
                    kind: HitKind::Command,
                    text: c.command.clone(),
                },
            );
        }
    }
    hits.sort_by_key(|h| (h.time, h.kind));
    Ok(hits)
}
