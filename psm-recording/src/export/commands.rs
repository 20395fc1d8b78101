//! The command index: every command the user ran, when, on which channel, and its exit
//! status where known.
//!
//! Exec channels (`ssh host CMD`) and subsystems (`sftp`) are known exactly. Commands typed
//! in a shell are read off the emulated screen when the user presses Enter: the cursor's row
//! then shows the prompt and the command as the shell echoed it (tab completion and history
//! included), and the prompt is cut at its first `$ `, `# `, `% ` or `> `. Without a
//! terminal the typed keys are used (backspace applied). Lines typed with the echo off
//! (passwords) and keys typed inside full-screen programs are never commands.
//!
//! Graphical sessions (RDP) record the keyboard as typed text, whose lines and shortcuts
//! are indexed like any typed input, and the pointer (`move X Y`, clicks, the wheel) on a
//! channel of its own, which is never indexed: an auditor searches for what was typed, and
//! pointer positions would bury it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, Write};

use serde::Serialize;

use super::{ExportSummary, Item, io_err, walk};
use crate::error::RecordingError;
use crate::event::{ChannelId, ChannelKind, Event, EventKind};
use crate::header::Header;
use crate::reader::Reader;
use crate::terminal::TerminalTracker;
use crate::time::Micros;

/// How a command was run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandSource {
    /// Typed at an interactive shell.
    Shell,
    /// An exec channel (`ssh host CMD`).
    Exec,
    /// A subsystem (`sftp`).
    Subsystem,
}

/// One command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Command {
    /// Seconds since the start, as text with microseconds (`"12.345678"`).
    pub time: String,
    /// Microseconds since the start.
    pub time_us: u64,
    /// `HH:MM:SS.mmm`.
    pub offset: String,
    /// Channel.
    pub channel: u32,
    /// How it was run.
    pub source: CommandSource,
    /// The command.
    pub command: String,
    /// For shell commands, the whole screen line (prompt included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub screen_line: Option<String>,
    /// Exit status, where known.
    pub exit_status: Option<u32>,
    /// Exit signal, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_signal: Option<String>,
}

#[derive(Default)]
struct ChannelState {
    typed: String,
    hidden: bool,
    redacted: bool,
    command: Option<usize>,
}

/// Builds the command index event by event (also usable live).
pub struct CommandIndex {
    tracker: TerminalTracker,
    channels: BTreeMap<ChannelId, ChannelState>,
    /// Open pointer channels (see [`is_pointer_channel`]): their input is not typed text.
    pointers: BTreeSet<ChannelId>,
    commands: Vec<Command>,
}

impl std::fmt::Debug for CommandIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandIndex")
            .field("commands", &self.commands.len())
            .finish_non_exhaustive()
    }
}

/// Whether a channel carries pointer events (a graphical session's `rdp-pointer` channel,
/// or any `*-pointer` channel of another graphical protocol) rather than typed text.
fn is_pointer_channel(kind: &ChannelKind) -> bool {
    matches!(kind, ChannelKind::Other { name } if name.ends_with("-pointer"))
}

/// The command part of a screen line: after the prompt's first `$ `, `# `, `% ` or `> `.
pub(crate) fn strip_prompt(line: &str) -> &str {
    let line = line.trim_end();
    // A prompt alone ends in its marker (its trailing space was trimmed): no command.
    let cut = ["$ ", "# ", "% ", "> "]
        .iter()
        .filter_map(|p| line.find(p).map(|i| i + p.len()))
        .min();
    match cut {
        Some(i) => line[i..].trim(),
        None if line.ends_with(['$', '#', '%', '>']) => "",
        None => line.trim(),
    }
}

impl CommandIndex {
    /// An index for a recording with this header.
    pub fn new(header: &Header) -> Self {
        Self {
            tracker: TerminalTracker::new(header.terminal),
            channels: BTreeMap::new(),
            pointers: BTreeSet::new(),
            commands: Vec::new(),
        }
    }

    fn push(
        &mut self,
        t: Micros,
        channel: ChannelId,
        source: CommandSource,
        command: String,
        screen_line: Option<String>,
    ) -> usize {
        self.commands.push(Command {
            time: format!("{}.{:06}", t.0 / 1_000_000, t.0 % 1_000_000),
            time_us: t.0,
            offset: t.to_string(),
            channel: channel.0,
            source,
            command,
            screen_line,
            exit_status: None,
            exit_signal: None,
        });
        self.commands.len() - 1
    }

    /// Takes one event into account.
    pub fn apply(&mut self, e: &Event) {
        match &e.kind {
            EventKind::ChannelOpen { channel, kind } => {
                let st = self.channels.entry(*channel).or_default();
                *st = ChannelState::default();
                if is_pointer_channel(kind) {
                    self.pointers.insert(*channel);
                } else {
                    self.pointers.remove(channel);
                }
                let cmd = match kind {
                    ChannelKind::Exec { command, .. } => {
                        Some((CommandSource::Exec, command.clone()))
                    }
                    ChannelKind::Subsystem { name } => {
                        Some((CommandSource::Subsystem, name.clone()))
                    }
                    _ => None,
                };
                if let Some((source, command)) = cmd {
                    let i = self.push(e.time, *channel, source, command, None);
                    if let Some(st) = self.channels.get_mut(channel) {
                        st.command = Some(i);
                    }
                }
            }
            EventKind::ChannelClose {
                channel,
                exit_status,
                exit_signal,
            } => {
                self.pointers.remove(channel);
                if let Some(i) = self.channels.remove(channel).and_then(|s| s.command)
                    && let Some(c) = self.commands.get_mut(i)
                {
                    c.exit_status = *exit_status;
                    c.exit_signal = exit_signal.clone();
                }
            }
            EventKind::InputRedacted { channel } => {
                // Whatever was typed (and whether it ended the line) is unknown: the line is
                // hidden until the program moves to a new line.
                let st = self.channels.entry(*channel).or_default();
                st.hidden = true;
                st.redacted = true;
                st.typed.clear();
            }
            EventKind::Output { channel, data, .. } => {
                if let Some(st) = self.channels.get_mut(channel)
                    && st.redacted
                    && data.contains(&b'\n')
                {
                    st.redacted = false;
                    st.hidden = false;
                }
            }
            EventKind::Input {
                channel,
                data,
                echo_off,
            } if !self.pointers.contains(channel) => self.input(e.time, *channel, data, *echo_off),
            _ => {}
        }
        self.tracker.apply(&e.kind);
    }

    fn input(&mut self, t: Micros, channel: ChannelId, data: &[u8], echo_off: bool) {
        let mut rest = data;
        while !rest.is_empty() {
            let (piece, enter) = match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            {
                let st = self.channels.entry(channel).or_default();
                st.hidden |= echo_off;
                let mut i = 0;
                while i < piece.len() {
                    match piece[i] {
                        0x7f | 0x08 => {
                            st.typed.pop();
                        }
                        0x15 | 0x03 => st.typed.clear(),
                        0x1b => {
                            // Skip an escape sequence (arrow keys and the like).
                            i += 1;
                            if matches!(piece.get(i), Some(b'[') | Some(b'O')) {
                                i += 1;
                                while i < piece.len() && !(0x40..=0x7e).contains(&piece[i]) {
                                    i += 1;
                                }
                            }
                        }
                        b if b < 0x20 => {}
                        _ => {
                            let end = piece[i..]
                                .iter()
                                .position(|&b| b < 0x20 || b == 0x7f)
                                .map_or(piece.len(), |n| i + n);
                            st.typed.push_str(&String::from_utf8_lossy(&piece[i..end]));
                            if st.typed.len() > 64 << 10 {
                                st.typed.clear();
                            }
                            i = end;
                            continue;
                        }
                    }
                    i += 1;
                }
            }
            if enter {
                self.enter(t, channel);
                rest = &rest[piece.len() + 1..];
            } else {
                rest = &[];
            }
        }
    }

    fn enter(&mut self, t: Micros, channel: ChannelId) {
        let st = self.channels.entry(channel).or_default();
        let typed = std::mem::take(&mut st.typed);
        let hidden = std::mem::take(&mut st.hidden);
        if hidden {
            return;
        }
        let (command, screen_line) = match self.tracker.terminal(channel) {
            Some(term) => {
                if term.is_alternate_screen() {
                    return;
                }
                let line = term.cursor_line();
                let cmd = strip_prompt(&line).to_owned();
                if cmd.is_empty() {
                    (typed.trim().to_owned(), None)
                } else {
                    (cmd, Some(line))
                }
            }
            None => (typed.trim().to_owned(), None),
        };
        if !command.is_empty() {
            self.push(t, channel, CommandSource::Shell, command, screen_line);
        }
    }

    /// The commands found so far.
    pub fn commands(&self) -> &[Command] {
        &self.commands
    }

    /// The commands found.
    pub fn into_commands(self) -> Vec<Command> {
        self.commands
    }
}

#[derive(Serialize)]
struct IndexFile<'a> {
    version: u32,
    session: String,
    user: &'a str,
    target: &'a str,
    protocol: &'a str,
    started_at: String,
    commands: &'a [Command],
    gaps: Vec<String>,
}

/// Writes the command index as JSON.
pub fn export_commands<R: Read + Seek, W: Write>(
    reader: &mut Reader<R>,
    out: W,
    progress: impl FnMut(usize, usize),
) -> Result<ExportSummary, RecordingError> {
    let header = reader.header().clone();
    let mut index = CommandIndex::new(&header);
    let mut summary = walk(
        reader,
        |item| {
            if let Item::Event(e) = item {
                index.apply(e);
            }
            Ok(())
        },
        progress,
    )?;
    let commands = index.into_commands();
    let file = IndexFile {
        version: 1,
        session: header.session_id.to_string(),
        user: &header.user,
        target: &header.target,
        protocol: header.protocol.as_str(),
        started_at: header
            .started_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        commands: &commands,
        gaps: summary
            .gaps
            .iter()
            .map(|g| format!("{}: {}", g.from, g.reason))
            .collect(),
    };
    let mut out = std::io::BufWriter::new(out);
    serde_json::to_writer_pretty(&mut out, &file)
        .map_err(|e| RecordingError::Export(format!("writing the command index: {e}")))?;
    out.write_all(b"\n").map_err(io_err("command index"))?;
    out.flush().map_err(io_err("command index"))?;
    summary.items = commands.len() as u64;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::strip_prompt;

    #[test]
    fn prompts_are_stripped() {
        assert_eq!(strip_prompt("alice@web-01:~$ ls -l > out"), "ls -l > out");
        assert_eq!(strip_prompt("root@h:/# echo '# x'"), "echo '# x'");
        assert_eq!(strip_prompt("PS C:\\> dir"), "dir");
        assert_eq!(strip_prompt("plain"), "plain");
        assert_eq!(strip_prompt("alice@web-01:~$"), "");
        assert_eq!(strip_prompt("root@web-01:~#  "), "");
    }
}
