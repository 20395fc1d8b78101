//! The terminal-aware command tracker: the per-channel state machine that turns a
//! terminal's two byte streams into psm-core policy [`Decision`]s.
//!
//! ## How a line is read
//!
//! Two readings of every line are kept:
//!
//! - the **keystroke model**: the user's bytes replayed through an emacs-mode line editor
//!   (backspace, `C-h`, `C-u`, `C-w`, `C-k`, left/right and insert, Home/End, Delete,
//!   word motions, bracketed paste, `C-v`). It is *certain* while every key had a known
//!   effect; history recall, completion, undo, yank and unknown keys make it uncertain;
//! - the **screen**: the target's output run through psm-recording's terminal emulator
//!   ([`TerminalState`], the one the recorder, the exporters and live viewers use); the
//!   prompt is what stood left of the cursor when the user began the line, and the line is
//!   the logical (soft-wrapped) row at the cursor, minus that prompt.
//!
//! When Enter arrives the line is judged at once if the screen confirms it: the screen
//! equals the certain model, or (for an uncertain model) the screen was updated after the
//! last key. Otherwise the echo is not there yet (keys typed faster than the round trip,
//! a script piping keys, a prompt that does not echo): with
//! [`TrackerConfig::wait_for_echo`] the tracker answers [`Feed::WaitForEcho`] so the
//! caller can hold the Enter until [`CommandTracker::echo_ready`] (or a deadline, then
//! [`CommandTracker::echo_timeout`]); without it, the line is judged *late*, from the
//! screen, when the output moves past it. Either way, when the output moves past a judged
//! line the final screen text is read again and, if it matches rules the first reading
//! did not, judged again (late). A line typed but never shown on the screen yields an
//! [`UnechoedInput`](psm_core::policy::PolicyEvent::UnechoedInput) decision that does not
//! carry its text.
//!
//! A line that ends in `\`, leaves a quote open or ends in `|`/`&&`/`||` is joined with the
//! next one and judged once, whole.
//!
//! Between lines (a command printing megabytes) the output is only
//! [deferred](TerminalState::defer): emulated when the screen is read next.
//!
//! ```
//! use psm_core::policy::{Action, Policy, PolicyEvent, SessionScope};
//! use psm_proxy::tracker::{CommandTracker, TrackerConfig};
//!
//! let policy = Policy::from_toml(r#"
//!     [[rule]]
//!     name = "wipe"
//!     regex = '^rm\s+-\w*r\w*\s+/\S*$'
//!     action = "terminate"
//!     message = "Recursive delete from the root"
//! "#)?;
//! let session = policy.for_session(&SessionScope::new("db-01", ["dba"]));
//! let mut tracker = CommandTracker::new(session, TrackerConfig::default());
//! let mut decisions = Vec::new();
//!
//! // The shell prints its prompt; the user recalls the last command from history
//! // (up arrow): only the echo says what the line is.
//! tracker.output(b"$ ", &mut decisions);
//! let _ = tracker.input(b"\x1b[A", false, &mut decisions);
//! tracker.output(b"rm -rf /etc", &mut decisions);
//! let _ = tracker.input(b"\r", false, &mut decisions);
//!
//! let d = &decisions[0];
//! assert_eq!(d.command_line(), Some("rm -rf /etc"));
//! assert_eq!(d.action, Action::Terminate);
//! assert!(matches!(d.event, PolicyEvent::Command { late: false, .. }));
//! # Ok::<(), psm_core::CoreError>(())
//! ```

mod editor;
mod keys;
mod output;
mod prompt;

use psm_core::policy::{Decision, Incomplete, LineSource, SessionPolicy, continues};
use psm_recording::{TermSize, TerminalState, Utf8Decoder};

use editor::{Effect, LineModel};
use keys::{Key, KeyDecoder};
use output::{LineEvent, OutputLines};
use prompt::{looks_like_prompt, strip_prompt, trim};

/// The widest terminal the tracker emulates; wider ones are clamped (memory bound: two
/// screens of `cols * rows` cells).
pub const MAX_COLS: u16 = 500;
/// The tallest terminal the tracker emulates (see [`MAX_COLS`]).
pub const MAX_ROWS: u16 = 200;
/// The default longest line (characters).
pub const DEFAULT_MAX_LINE: usize = 4096;
/// The most lines joined by continuation.
const MAX_CONTINUATION: usize = 64;
/// The longest prompt kept.
const MAX_PROMPT: usize = 512;

/// How a tracker is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Terminal width (from the pty request; clamped to 1..=500).
    pub cols: u16,
    /// Terminal height (clamped to 1..=200).
    pub rows: u16,
    /// The longest line judged, in characters (clamped to 64..=65536); longer lines are cut
    /// and reported as truncated.
    pub max_line: usize,
    /// Answer [`Feed::WaitForEcho`] instead of judging late when Enter arrives before the
    /// echo. Only for callers that hold the Enter (see the module docs).
    pub wait_for_echo: bool,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            cols: 80,
            rows: 24,
            max_line: DEFAULT_MAX_LINE,
            wait_for_echo: false,
        }
    }
}

/// A requested size in the tracker's range (1×1 up to [`MAX_COLS`]×[`MAX_ROWS`]). A zero
/// means "unknown" (`ssh -tt` from a pipe asks for a 0×0 pty), and programs then assume
/// 80×24, as readline does: so does the tracker, or its screen could never show a line
/// as the program draws it.
fn clamp(cols: u16, rows: u16) -> TermSize {
    let cols = if cols == 0 { 80 } else { cols };
    let rows = if rows == 0 { 24 } else { rows };
    TermSize::new(cols.clamp(1, MAX_COLS), rows.clamp(1, MAX_ROWS))
}

/// What [`CommandTracker::input`] did with the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "WaitForEcho means the bytes from `consumed` on were not read"]
pub enum Feed {
    /// Every byte was read.
    All,
    /// The byte at `consumed` is an Enter whose line is not on the screen yet. Forward the
    /// bytes before it, feed output until [`CommandTracker::echo_ready`] (or call
    /// [`CommandTracker::echo_timeout`] at your deadline), then feed `bytes[consumed..]`
    /// again.
    WaitForEcho {
        /// How many bytes were read.
        consumed: usize,
    },
}

/// What was submitted, waiting for the output to move past it.
#[derive(Debug)]
struct AfterSubmit {
    /// The prompt of the line.
    prompt: Vec<char>,
    /// The text judged at Enter, if it was, and the rules it matched.
    judged: Option<(String, Vec<usize>)>,
    /// Characters typed (for an unechoed line).
    typed: usize,
    /// The certain keystroke model of a line not confirmed by the screen: judged, never
    /// reported, if the line turns out to be unechoed.
    unconfirmed: Option<String>,
    /// The line was typed at a prompt the caller knows hides input.
    hidden: bool,
    /// Rules already decided on before the Enter went on (from the keystrokes, without
    /// echo), and `usize::MAX` if that was reported: not acted on twice.
    acted: Vec<usize>,
}

/// Turns one terminal channel's input and output into [`Decision`]s. Feed it every byte in
/// the order the proxy forwards them; it never blocks and allocates only when a line is
/// judged (`docs/policy.md`, "How the command line is reconstructed", says how lines are read).
///
/// ```
/// use psm_core::policy::{Action, Policy, SessionScope};
/// use psm_proxy::tracker::{CommandTracker, Feed, TrackerConfig};
/// let policy = Policy::from_toml(r#"
///     [[rule]]
///     name = "wipe"
///     glob = "rm -rf /*"
///     action = "terminate"
/// "#).unwrap();
/// let session = policy.for_session(&SessionScope::new("web-01", ["ops"]));
/// let mut tracker = CommandTracker::new(session, TrackerConfig::default());
/// let mut decisions = Vec::new();
///
/// tracker.output(b"alice@web-01:~$ ", &mut decisions);
/// // The user types `r`, DEL, `rm -rf /`; the shell echoes each key.
/// for (key, echo) in [(&b"r"[..], &b"r"[..]), (b"\x7f", b"\x08\x1b[K"), (b"rm -rf /", b"rm -rf /")] {
///     assert_eq!(tracker.input(key, false, &mut decisions), Feed::All);
///     tracker.output(echo, &mut decisions);
/// }
/// assert!(decisions.is_empty());
/// // Enter: judged before the Enter is forwarded.
/// assert_eq!(tracker.input(b"\r", false, &mut decisions), Feed::All);
/// assert_eq!(decisions[0].command_line(), Some("rm -rf /"));
/// assert_eq!(decisions[0].action, Action::Terminate);
/// ```
#[derive(Debug)]
pub struct CommandTracker {
    policy: SessionPolicy,
    max_line: usize,
    wait_for_echo: bool,
    keys: KeyDecoder,
    model: LineModel,
    screen: TerminalState,
    out_utf8: Utf8Decoder,
    out_text: String,
    out_lines: Option<OutputLines>,

    line_open: bool,
    prompt: Vec<char>,
    hidden_line: bool,
    output_since_input: bool,
    echo_wait_over: bool,
    prefill_next: bool,

    pending: String,
    pending_lines: usize,
    pending_truncated: bool,

    after: Option<AfterSubmit>,
    /// The line just judged used history expansion: the shell echoes the expanded command
    /// on the next line, which is judged (late) when it ends.
    expansion_judged: bool,
    expansion_echo: bool,
    /// The last screen reading filled `max_line`: the line may go on past it.
    screen_cut: bool,
    /// The last key was one the model does not know (a custom binding may have made it
    /// accept the line): if the output starts a new line in answer, the line is judged.
    probe: bool,
    /// Where the output is in `ESC [?2004h` / `ESC [?2004l` (bracketed paste on/off).
    paste_scan: usize,

    scratch: Vec<char>,
}

impl CommandTracker {
    /// A tracker for one terminal channel of a session.
    pub fn new(policy: SessionPolicy, config: TrackerConfig) -> Self {
        let max_line = config.max_line.clamp(64, 65_536);
        let out_lines = policy.watches_output().then(|| OutputLines::new(max_line));
        let mut keys = KeyDecoder::default();
        // Until the target asks for bracketed paste, `ESC [200~` starts no paste.
        keys.set_paste_enabled(false);
        Self {
            policy,
            max_line,
            wait_for_echo: config.wait_for_echo,
            keys,
            model: LineModel::new(max_line),
            screen: TerminalState::clamped(clamp(config.cols, config.rows)),
            out_utf8: Utf8Decoder::new(),
            out_text: String::new(),
            out_lines,
            line_open: false,
            prompt: Vec::with_capacity(MAX_PROMPT),
            hidden_line: false,
            output_since_input: false,
            echo_wait_over: false,
            prefill_next: false,
            pending: String::new(),
            pending_lines: 0,
            pending_truncated: false,
            after: None,
            expansion_judged: false,
            expansion_echo: false,
            screen_cut: false,
            probe: false,
            paste_scan: 0,
            scratch: Vec::with_capacity(max_line),
        }
    }

    /// The terminal was resized (SSH `window-change`).
    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.screen.resize(clamp(cols, rows));
    }

    /// Judges an SSH `exec` command of this channel.
    pub fn exec(&self, command: &str) -> Decision {
        self.policy.judge_command(command)
    }

    /// Feeds bytes the user sent toward the target. `hidden` says the caller saw a prompt
    /// that hides input (a password prompt, [`EchoTracker`](crate::redact::EchoTracker)):
    /// the line is then reported only if the screen shows it after all (the prompt only
    /// looked like one), else judged from the keystrokes without its text, and only when a
    /// rule matches. Decisions are appended to `out`.
    pub fn input(&mut self, bytes: &[u8], hidden: bool, out: &mut Vec<Decision>) -> Feed {
        for (i, &b) in bytes.iter().enumerate() {
            let Some(key) = self.keys.feed(b) else {
                continue;
            };
            if self.keys.take_dropped() {
                self.model.set_uncertain();
            }
            if self.after.is_some() {
                // The user moved on before the output did: read the submitted line now.
                self.settle(out);
            }
            if !self.line_open {
                self.open_line();
            }
            if hidden {
                self.hidden_line = true;
            }
            let fresh = self.output_since_input;
            self.output_since_input = false;
            // Keys with no known effect, except completion (Tab, `M-?`, `M-=`), whose
            // listings also start new lines.
            self.probe =
                matches!(key, Key::Unknown | Key::Ignore) && !matches!(b, b'\t' | b'?' | b'=');

            if key == Key::Enter && self.screen.is_alternate_screen() && self.vi_command(out) {
                self.model.clear();
                self.line_open = false;
                self.hidden_line = false;
                continue;
            }
            // Hidden keys are modelled too (never reported): a line typed at a prompt that
            // only looks like a password prompt is still judged.
            let effect = self.model.apply(key);
            match effect {
                Effect::Edit => {}
                Effect::Abort => {
                    self.model.clear();
                    self.line_open = false;
                    self.hidden_line = false;
                    self.pending.clear();
                    self.pending_lines = 0;
                    self.pending_truncated = false;
                }
                Effect::Submit => {
                    if !self.submit(fresh, out) {
                        // Not read: the same byte comes again.
                        self.output_since_input = fresh;
                        return Feed::WaitForEcho { consumed: i };
                    }
                    if key == Key::AcceptAndNext {
                        self.prefill_next = true;
                    }
                }
            }
        }
        Feed::All
    }

    /// Feeds bytes the target sent toward the user. Decisions (output rules, late
    /// judgements) are appended to `out`.
    pub fn output(&mut self, bytes: &[u8], out: &mut Vec<Decision>) {
        if bytes.is_empty() {
            return;
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            // A submitted line is read again just before the output moves past it (its
            // line feed), so the screen is fed up to there and judged.
            let upto = if self.after.is_some() {
                rest.iter().position(|&b| b == b'\n')
            } else if self.expansion_echo {
                // The line after the submitted one (whose line feed starts `rest`).
                let skip = usize::from(rest.first() == Some(&b'\n'));
                rest[skip..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map(|p| p + skip)
            } else if self.probe && self.line_open {
                rest.iter().position(|&b| b == b'\n')
            } else {
                None
            };
            let (piece, next) = rest.split_at(upto.unwrap_or(rest.len()));
            self.scan_paste_mode(piece);
            if self.line_open || self.after.is_some() || self.expansion_echo {
                self.screen.feed(piece);
            } else {
                self.screen.defer(piece);
            }
            self.output_lines(piece, out);
            if upto.is_some() {
                if self.after.is_some() {
                    self.settle(out);
                } else if self.expansion_echo {
                    self.expansion_echo = false;
                    self.judge_expansion_echo(out);
                } else {
                    self.probe = false;
                    self.judge_unknown_submit(out);
                }
            }
            rest = next;
        }
        self.output_since_input = true;
    }

    /// Judges the output lines `bytes` complete, if output rules apply.
    fn output_lines(&mut self, bytes: &[u8], out: &mut Vec<Decision>) {
        let Some(lines) = &mut self.out_lines else {
            return;
        };
        self.out_text.clear();
        self.out_utf8.decode(bytes, &mut self.out_text);
        for c in self.out_text.chars() {
            if lines.feed(c) == LineEvent::Complete {
                if let Some(d) = self.policy.judge_output_line(lines.line()) {
                    out.push(d);
                }
                lines.clear();
            }
        }
        if self.out_text.capacity() > 64 << 10 {
            self.out_text = String::new();
        }
    }

    /// Whether the line waiting after [`Feed::WaitForEcho`] is now on the screen.
    pub fn echo_ready(&mut self) -> bool {
        self.reading(self.output_since_input).is_some()
    }

    /// The caller's deadline for the echo passed: the waiting Enter will be read without
    /// it (the line is then judged late, from the screen, or reported as unechoed).
    pub fn echo_timeout(&mut self) {
        self.echo_wait_over = true;
    }

    /// The channel closed: judges what is still waiting for the output.
    pub fn finish(&mut self, out: &mut Vec<Decision>) {
        if self.after.is_some() {
            self.settle(out);
        }
    }

    fn open_line(&mut self) {
        self.line_open = true;
        self.hidden_line = false;
        self.screen.line_before_cursor(&mut self.prompt, MAX_PROMPT);
        if std::mem::take(&mut self.prefill_next) {
            self.model.set_uncertain();
        }
    }

    /// Reads the line at Enter: `Some((readings, source))` when the screen confirms it.
    /// An empty line reads as `Some(([], _))`.
    fn reading(&mut self, fresh: bool) -> Option<(Vec<String>, LineSource)> {
        // `max_line` characters after the prompt: a line cut there is judged as cut.
        let limit = self.max_line + self.prompt.len();
        self.screen.line_at_cursor(&mut self.scratch, limit);
        self.screen_cut = self.scratch.len() >= limit;
        let screen = strip_prompt(&self.scratch, &self.prompt);
        let model = trim(self.model.chars());
        let certain = !self.model.uncertain();
        let text = |s: &[char]| s.iter().collect::<String>();
        if certain && model == screen {
            let r = if model.is_empty() {
                vec![]
            } else {
                vec![text(model)]
            };
            return Some((r, LineSource::Keystrokes));
        }
        if !fresh || (certain && model.starts_with(screen)) {
            // Stale, or the echo has not caught up with the keys yet.
            return None;
        }
        match (certain, screen.is_empty()) {
            // Both readings: the screen shows something else (a custom key binding, a
            // right-hand prompt, an autosuggestion); judge both, report the keystrokes.
            (true, false) if model.is_empty() => Some((vec![text(screen)], LineSource::Screen)),
            (true, false) => Some((vec![text(model), text(screen)], LineSource::Keystrokes)),
            (false, false) => Some((vec![text(screen)], LineSource::Screen)),
            // Uncertain and the screen is empty: history recall found nothing.
            (false, true) => Some((vec![], LineSource::Screen)),
            // Typed but not shown (handled above: the empty screen is a prefix).
            (true, true) => None,
        }
    }

    /// Handles Enter; false when the caller must wait for the echo.
    fn submit(&mut self, fresh: bool, out: &mut Vec<Decision>) -> bool {
        let prompt = std::mem::take(&mut self.prompt);
        let typed = self.model.typed();
        let truncated = self.model.truncated();
        if self.hidden_line {
            self.prompt = prompt;
            match self.submit_hidden(fresh, typed, out) {
                Some(after) => self.after = Some(after),
                None => return false,
            }
        } else if self.screen.is_alternate_screen()
            && !looks_like_prompt(&prompt)
            && !self.prompt_left_of_keys()
        {
            self.prompt = prompt;
            if !self.submit_full_screen(fresh, out) {
                return false;
            }
        } else {
            self.prompt = prompt;
            match self.reading(fresh) {
                Some((readings, source)) => {
                    let prompt = std::mem::take(&mut self.prompt);
                    let judged = if readings.is_empty() {
                        Some((String::new(), Vec::new()))
                    } else {
                        let refs: Vec<&str> = readings.iter().map(String::as_str).collect();
                        let cut = truncated || self.screen_cut;
                        self.judge(&refs, source, false, cut, out)
                    };
                    self.after = Some(AfterSubmit {
                        prompt,
                        judged,
                        typed,
                        unconfirmed: None,
                        hidden: false,
                        acted: Vec::new(),
                    });
                }
                None if self.wait_for_echo && !self.echo_wait_over => return false,
                None => {
                    let prompt = std::mem::take(&mut self.prompt);
                    let unconfirmed: Option<String> = (!self.model.uncertain())
                        .then(|| trim(self.model.chars()).iter().collect());
                    // The caller held this Enter for the echo and none came in time, but
                    // the keys say exactly what the line is: if they match rules, that is
                    // decided now, before the Enter goes on, without the text (it may be a
                    // password). Output interleaved with type-ahead, or `stty -echo`, then
                    // no longer buys a late judgement.
                    let mut acted = Vec::new();
                    if let Some(m) = unconfirmed.as_deref()
                        && self.wait_for_echo
                        && !m.is_empty()
                    {
                        let d = self
                            .policy
                            .judge_line(m, LineSource::Keystrokes, false, truncated);
                        if !d.matched.is_empty() || d.incomplete.is_some() {
                            acted = d.matched.iter().map(|r| r.index).collect();
                            let mut u = self.policy.unechoed(typed);
                            u.action = u.action.max(d.action);
                            u.matched = d.matched;
                            u.incomplete = d.incomplete;
                            out.push(u);
                            // Reported: never again as unechoed, nor for these rules.
                            acted.push(usize::MAX);
                        }
                    }
                    self.after = Some(AfterSubmit {
                        prompt,
                        judged: None,
                        typed,
                        unconfirmed,
                        hidden: false,
                        acted,
                    });
                }
            }
        }
        self.echo_wait_over = false;
        self.model.clear();
        self.line_open = false;
        self.hidden_line = false;
        true
    }

    /// Enter on a line the caller said hides its input (the screen showed a password
    /// prompt when it began). The prompt may only look like one (`PS1='password: '`): if
    /// the target echoed the keys, the line is read and judged as any other. If it did not,
    /// the keystrokes (when certain) are judged before the Enter goes on, and only rules
    /// that match are reported, without the text. `None`: wait for the echo (only for keys
    /// the model could not follow).
    fn submit_hidden(
        &mut self,
        fresh: bool,
        typed: usize,
        out: &mut Vec<Decision>,
    ) -> Option<AfterSubmit> {
        let certain = !self.model.uncertain();
        let truncated = self.model.truncated();
        let echoed = match self.reading(fresh) {
            // The screen shows exactly the keys: the target echoes, nothing is secret.
            Some((r, LineSource::Keystrokes)) if certain && r.len() == 1 => Some(r),
            // Keys the model cannot follow (history recall): the screen, as it answered.
            Some((r, LineSource::Screen)) if !certain => Some(r),
            _ => None,
        };
        let prompt = std::mem::take(&mut self.prompt);
        let mut after = AfterSubmit {
            prompt,
            judged: None,
            typed,
            unconfirmed: None,
            hidden: true,
            acted: Vec::new(),
        };
        match echoed {
            Some(readings) if !readings.is_empty() => {
                let refs: Vec<&str> = readings.iter().map(String::as_str).collect();
                let cut = truncated || self.screen_cut;
                let source = if certain {
                    LineSource::Keystrokes
                } else {
                    LineSource::Screen
                };
                after.judged = self.judge(&refs, source, false, cut, out);
                after.hidden = false;
            }
            Some(_) => {}
            None if certain => {
                let model: String = trim(self.model.chars()).iter().collect();
                if let Some(d) = self.policy.judge_hidden(&model, typed) {
                    after.acted = d.matched.iter().map(|m| m.index).collect();
                    after.acted.push(usize::MAX);
                    out.push(d);
                }
            }
            None if self.wait_for_echo && !self.echo_wait_over => {
                self.prompt = after.prompt;
                return None;
            }
            None => {}
        }
        Some(after)
    }

    /// Whether the cursor's row shows the certain keystrokes after a shell prompt: keys
    /// typed ahead, before the prompt was drawn, left no prompt to capture when the line
    /// began.
    fn prompt_left_of_keys(&mut self) -> bool {
        if self.model.uncertain() {
            return false;
        }
        let model = trim(self.model.chars());
        if model.is_empty() {
            return false;
        }
        self.screen
            .line_at_cursor(&mut self.scratch, self.max_line + MAX_PROMPT);
        let end = self
            .scratch
            .iter()
            .rposition(|c| !c.is_whitespace())
            .map_or(0, |e| e + 1);
        self.scratch[..end]
            .strip_suffix(model)
            .is_some_and(looks_like_prompt)
    }

    /// Enter inside a full-screen program (tmux, screen, an editor) where no shell prompt
    /// stands left of the line: the tracker cannot tell whether the line runs. What it can
    /// read (the certain keystrokes, the cursor's row) is judged at once, before the Enter
    /// goes on, with the action capped at the policy's `full_screen_command`; a line no rule
    /// objects to is no event (an editor's lines). False: wait for output first (keys the
    /// model could not follow and no output since).
    fn submit_full_screen(&mut self, fresh: bool, out: &mut Vec<Decision>) -> bool {
        let certain = !self.model.uncertain();
        if !certain && !fresh && self.wait_for_echo && !self.echo_wait_over {
            return false;
        }
        let limit = self.max_line + self.prompt.len();
        self.screen.line_at_cursor(&mut self.scratch, limit);
        let cut = self.model.truncated() || self.scratch.len() >= limit;
        let screen: String = if fresh || !certain {
            strip_prompt(&self.scratch, &self.prompt).iter().collect()
        } else {
            String::new()
        };
        let model: String = trim(self.model.chars()).iter().collect();
        let mut readings: Vec<&str> = Vec::new();
        if certain && !model.is_empty() {
            readings.push(&model);
        }
        if !screen.is_empty() && screen != model {
            readings.push(&screen);
        }
        if let Some(&shown) = readings.first() {
            let source = if certain && !model.is_empty() {
                LineSource::Keystrokes
            } else {
                LineSource::Screen
            };
            if let Some(d) = self.policy.judge_full_screen(&readings, shown, source, cut) {
                out.push(d);
            }
        }
        self.prompt.clear();
        true
    }

    /// Judges a submitted line (joining continuations). Returns the text judged and the
    /// rules it matched, or `None` if the line continues on the next one.
    fn judge(
        &mut self,
        readings: &[&str],
        source: LineSource,
        late: bool,
        truncated: bool,
        out: &mut Vec<Decision>,
    ) -> Option<(String, Vec<usize>)> {
        let shown = readings.first().copied().unwrap_or_default();
        let full = format!("{}{}", self.pending, shown);
        let truncated = truncated || self.pending_truncated;
        let still_continues = continues(&full);
        if still_continues && self.pending_lines < MAX_CONTINUATION {
            self.pending.clear();
            match full.strip_suffix('\\') {
                Some(joined) => self.pending.push_str(joined),
                None => {
                    self.pending.push_str(&full);
                    self.pending.push('\n');
                }
            }
            self.pending_truncated = truncated;
            if self.pending.chars().count() > self.max_line {
                let cut: String = self.pending.chars().take(self.max_line).collect();
                self.pending = cut;
                self.pending_truncated = true;
            }
            self.pending_lines += 1;
            return Some((shown.to_owned(), Vec::new()));
        }
        // Still continuing here means MAX_CONTINUATION lines were joined: the rest of
        // the command comes on lines judged apart, so this part is judged as cut.
        let truncated = truncated || still_continues;
        let joined: Vec<String> = readings
            .iter()
            .map(|r| format!("{}{}", self.pending, r))
            .collect();
        let refs: Vec<&str> = joined.iter().map(String::as_str).collect();
        let d = self
            .policy
            .judge_lines(&refs, &full, source, late, truncated);
        self.expansion_judged = d.incomplete == Some(Incomplete::HistoryExpansion);
        let rules = d.matched.iter().map(|m| m.index).collect();
        out.push(d);
        self.pending.clear();
        self.pending_lines = 0;
        self.pending_truncated = false;
        Some((shown.to_owned(), rules))
    }

    /// The output moved past a submitted line (or the user moved on): read it once more.
    fn settle(&mut self, out: &mut Vec<Decision>) {
        self.settle_line(out);
        if std::mem::take(&mut self.expansion_judged) {
            self.expansion_echo = true;
        }
    }

    /// Follows bracketed paste mode in the target's output.
    fn scan_paste_mode(&mut self, bytes: &[u8]) {
        const SEQ: &[u8] = b"\x1b[?2004";
        for &b in bytes {
            if self.paste_scan == SEQ.len() {
                match b {
                    b'h' => self.keys.set_paste_enabled(true),
                    b'l' => self.keys.set_paste_enabled(false),
                    _ => {}
                }
                self.paste_scan = usize::from(b == 0x1b);
            } else if SEQ.get(self.paste_scan) == Some(&b) {
                self.paste_scan += 1;
            } else {
                self.paste_scan = usize::from(b == 0x1b);
            }
        }
    }

    /// The output started a new line in answer to a key the model does not know, with a
    /// line open: the key may have accepted the line (`bind '"\C-t": accept-line'`).
    /// Judged late, as the screen shows it (and as typed, if the keystrokes are certain);
    /// the line stays open, so a key that did not submit it changes nothing else.
    fn judge_unknown_submit(&mut self, out: &mut Vec<Decision>) {
        if self.hidden_line || self.screen.is_alternate_screen() {
            return;
        }
        let limit = self.max_line + self.prompt.len();
        self.screen.line_at_cursor(&mut self.scratch, limit);
        let cut = self.scratch.len() >= limit;
        let screen: String = strip_prompt(&self.scratch, &self.prompt).iter().collect();
        let model: String = trim(self.model.chars()).iter().collect();
        let mut readings = Vec::new();
        if !screen.is_empty() {
            readings.push(screen.as_str());
        }
        if !self.model.uncertain() && !model.is_empty() && model != screen {
            readings.push(model.as_str());
        }
        let Some(&shown) = readings.first() else {
            return;
        };
        let joined: Vec<String> = readings
            .iter()
            .map(|r| format!("{}{}", self.pending, r))
            .collect();
        let refs: Vec<&str> = joined.iter().map(String::as_str).collect();
        let shown = format!("{}{}", self.pending, shown);
        out.push(
            self.policy
                .judge_lines(&refs, &shown, LineSource::Screen, true, cut),
        );
    }

    /// The line after a history expansion: bash prints the expanded command there before
    /// running it. Judged late (the command has started), as read from the screen.
    fn judge_expansion_echo(&mut self, out: &mut Vec<Decision>) {
        self.screen.line_at_cursor(&mut self.scratch, self.max_line);
        let cut = self.scratch.len() >= self.max_line;
        let text: String = trim(&self.scratch).iter().collect();
        if !text.is_empty() {
            out.push(self.policy.judge_line(&text, LineSource::Screen, true, cut));
        }
    }

    fn settle_line(&mut self, out: &mut Vec<Decision>) {
        let Some(after) = self.after.take() else {
            return;
        };
        let limit = self.max_line + after.prompt.len();
        self.screen.line_at_cursor(&mut self.scratch, limit);
        let cut = self.scratch.len() >= limit;
        let text: String = strip_prompt(&self.scratch, &after.prompt).iter().collect();
        if after.hidden {
            // A secret stays unread; a line that shows up after all (its echo came late:
            // the prompt only looked like a password prompt) is judged, late, for the rules
            // not already acted on.
            if !text.is_empty() {
                let d = self.policy.judge_line(&text, LineSource::Screen, true, cut);
                if d.matched.iter().any(|m| !after.acted.contains(&m.index)) {
                    out.push(d);
                }
            }
            return;
        }
        match after.judged {
            Some((judged, rules)) => {
                if text.is_empty() || text == judged {
                    return;
                }
                // Judged once already: report again only what is new.
                let d = self.policy.judge_line(&text, LineSource::Screen, true, cut);
                if d.matched.iter().any(|m| !rules.contains(&m.index)) {
                    out.push(d);
                }
            }
            None if !text.is_empty() => {
                let before = out.len();
                self.judge(&[&text], LineSource::Screen, true, cut, out);
                // Decided before the Enter already: not acted on again for the same rules.
                if !after.acted.is_empty()
                    && out
                        .get(before)
                        .is_some_and(|d| d.matched.iter().all(|m| after.acted.contains(&m.index)))
                {
                    out.truncate(before);
                }
            }
            None if after.acted.contains(&usize::MAX) => {}
            None if after.typed > 0 => {
                // Typed, never shown: rules still judge the keystrokes, but the decision
                // carries no text (it may be a password).
                let mut d = self.policy.unechoed(after.typed);
                if let Some(model) = after.unconfirmed.filter(|m| !m.is_empty()) {
                    let judged =
                        self.policy
                            .judge_line(&model, LineSource::Keystrokes, true, false);
                    d.matched = judged.matched;
                    if let Some(max) = d.matched.iter().map(|m| m.action).max() {
                        d.action = d.action.max(max);
                    }
                }
                out.push(d);
            }
            None => {}
        }
    }

    /// Enter on the alternate screen: a vi `:` command line with a `!` runs a command. The
    /// cursor's row, not only the bottom one: vim in a tmux pane has its command line
    /// above tmux's status line. True when it was one (judged here).
    fn vi_command(&mut self, out: &mut Vec<Decision>) -> bool {
        self.screen.line_at_cursor(&mut self.scratch, self.max_line);
        if self.scratch.first() != Some(&':') {
            return false;
        }
        let Some(bang) = self.scratch.iter().position(|&c| c == '!') else {
            return false;
        };
        let cmd: String = trim(&self.scratch[bang + 1..]).iter().collect();
        if !cmd.is_empty() {
            out.push(
                self.policy
                    .judge_line(&cmd, LineSource::ViCommand, false, false),
            );
        }
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use psm_core::policy::{Action, Policy, PolicyEvent, SessionScope};

    const RULES: &str = r#"
        unechoed_input = "alert"

        [[rule]]
        name = "wipe"
        glob = "rm -rf /*"
        action = "terminate"

        [[rule]]
        name = "leak"
        on = "output"
        regex = "PRIVATE KEY"
        action = "lock"
    "#;

    fn tracker(wait: bool) -> CommandTracker {
        let session = Policy::from_toml(RULES)
            .unwrap()
            .for_session(&SessionScope::new("t", ["r"]));
        CommandTracker::new(
            session,
            TrackerConfig {
                wait_for_echo: wait,
                ..TrackerConfig::default()
            },
        )
    }

    /// Types each key and echoes it the way readline does for plain characters.
    fn typed(t: &mut CommandTracker, text: &str, out: &mut Vec<Decision>) {
        for c in text.chars() {
            let mut b = [0; 4];
            let s = c.encode_utf8(&mut b);
            assert_eq!(t.input(s.as_bytes(), false, out), Feed::All);
            t.output(s.as_bytes(), out);
        }
    }

    fn line_of(d: &Decision) -> &str {
        line(d).0
    }

    fn line(d: &Decision) -> (&str, bool, LineSource) {
        match &d.event {
            PolicyEvent::Command {
                line, late, source, ..
            } => (line, *late, *source),
            other => panic!("not a command: {other:?}"),
        }
    }

    #[test]
    fn judged_at_enter_before_forwarding() {
        let mut t = tracker(false);
        let mut out = Vec::new();
        t.output(b"$ ", &mut out);
        typed(&mut t, "rm -rf /", &mut out);
        assert!(out.is_empty());
        assert_eq!(t.input(b"\r", false, &mut out), Feed::All);
        assert_eq!(line(&out[0]), ("rm -rf /", false, LineSource::Keystrokes));
        assert_eq!(out[0].action, Action::Terminate);
        t.output(b"\r\n", &mut out);
        assert_eq!(
            out.len(),
            1,
            "no second judgement of the same line: {out:?}"
        );
    }

    #[test]
    fn burst_is_judged_late_or_waits() {
        // Lenient: judged when the echo passes by.
        let mut t = tracker(false);
        let mut out = Vec::new();
        t.output(b"$ ", &mut out);
        assert_eq!(t.input(b"rm -rf /\r", false, &mut out), Feed::All);
        assert!(out.is_empty());
        t.output(b"rm -rf /\r\n", &mut out);
        assert_eq!(line(&out[0]), ("rm -rf /", true, LineSource::Screen));
        assert_eq!(out[0].action, Action::Terminate);

        // Strict: the Enter waits for the echo.
        let mut t = tracker(true);
        let mut out = Vec::new();
        t.output(b"$ ", &mut out);
        let bytes = b"rm -rf /\rls\r";
        let Feed::WaitForEcho { consumed } = t.input(bytes, false, &mut out) else {
            panic!("should wait");
        };
        assert_eq!(consumed, 8);
        assert!(!t.echo_ready());
        t.output(b"rm -rf", &mut out);
        assert!(!t.echo_ready());
        t.output(b" /", &mut out);
        assert!(t.echo_ready());
        let Feed::WaitForEcho { consumed: c2 } = t.input(&bytes[consumed..], false, &mut out)
        else {
            panic!("ls waits for its echo too");
        };
        assert_eq!(line(&out[0]), ("rm -rf /", false, LineSource::Keystrokes));
        assert_eq!(c2, 3);
    }

    #[test]
    fn password_prompt_never_reports_text() {
        let mut t = tracker(true);
        let mut out = Vec::new();
        t.output(b"Password: ", &mut out);
        assert!(matches!(
            t.input(b"hunter2\r", false, &mut out),
            Feed::WaitForEcho { .. }
        ));
        t.echo_timeout();
        assert_eq!(t.input(b"\r", false, &mut out), Feed::All);
        t.output(b"\r\n$ ", &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event, PolicyEvent::UnechoedInput { chars: 7 });
        assert_eq!(out[0].action, Action::Alert);
        assert!(!format!("{out:?}").contains("hunter2"));

        // Known hidden input: not even the unechoed report.
        let mut out = Vec::new();
        t.output(b"[sudo] password for a: ", &mut out);
        assert_eq!(t.input(b"hunter2\r", true, &mut out), Feed::All);
        t.output(b"\r\n", &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn stty_echo_off_commands_are_still_judged_without_text() {
        let mut t = tracker(false);
        let mut out = Vec::new();
        t.output(b"$ ", &mut out);
        assert_eq!(t.input(b"rm -rf /\r", false, &mut out), Feed::All);
        t.output(b"\r\n", &mut out);
        assert_eq!(out[0].event, PolicyEvent::UnechoedInput { chars: 8 });
        assert_eq!(out[0].action, Action::Terminate);
        assert_eq!(out[0].matched[0].name.as_ref(), "wipe");
    }

    #[test]
    fn output_rules() {
        let mut t = tracker(false);
        let mut out = Vec::new();
        t.output(
            b"x\r\n-----BEGIN RSA \x1b[1mPRIVATE\x1b[0m KEY-----\r\nMIIE\r\n",
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            (&out[0].event, out[0].action),
            (&PolicyEvent::Output, Action::Lock)
        );
    }

    #[test]
    fn vi_bang_command() {
        let mut t = tracker(false);
        let mut out = Vec::new();
        t.output(b"$ ", &mut out);
        typed(&mut t, "vi", &mut out);
        let _ = t.input(b"\r", false, &mut out);
        t.output(b"\r\n\x1b[?1049h\x1b[H\x1b[2J~\r\n~\x1b[24;1H", &mut out);
        typed(&mut t, ":!rm -rf /", &mut out);
        let _ = t.input(b"\r", false, &mut out);
        let d = out.last().unwrap();
        assert_eq!(line(d), ("rm -rf /", false, LineSource::ViCommand));
        assert_eq!(d.action, Action::Terminate);
    }

    /// H2: a prompt that only looks like a password prompt hides nothing once the target
    /// echoes; a real one is judged from the keys, without the text.
    #[test]
    fn a_fake_password_prompt_hides_nothing_and_a_real_one_is_still_judged() {
        let mut t = tracker(true);
        let mut out = Vec::new();
        t.output(b"password: ", &mut out);
        // The caller flagged the first key hidden (the echo had not come yet).
        assert_eq!(t.input(b"r", true, &mut out), Feed::All);
        t.output(b"r", &mut out);
        for c in "m -rf /".chars() {
            let b = c.to_string();
            assert_eq!(t.input(b.as_bytes(), false, &mut out), Feed::All);
            t.output(b.as_bytes(), &mut out);
        }
        assert_eq!(t.input(b"\r", false, &mut out), Feed::All);
        assert_eq!(line(&out[0]), ("rm -rf /", false, LineSource::Keystrokes));
        assert_eq!(out[0].action, Action::Terminate);

        // A real secret prompt: nothing on the screen; the keys match a rule, decided at
        // the Enter without waiting and without the text.
        let mut t = tracker(true);
        let mut out = Vec::new();
        t.output(b"Password: ", &mut out);
        assert_eq!(t.input(b"rm -rf /\r", true, &mut out), Feed::All);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].event, PolicyEvent::UnechoedInput { chars: 8 });
        assert_eq!(out[0].action, Action::Terminate);
        assert!(!format!("{out:?}").contains("rm -rf"));
        t.output(b"\r\n$ ", &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
    }

    /// H1: inside tmux (the alternate screen), a line at a shell prompt is judged as at any
    /// shell; one at no prompt is judged with the action capped (`require-approval`).
    #[test]
    fn full_screen_lines_are_judged() {
        let mut t = tracker(true);
        let mut out = Vec::new();
        t.output(b"$ ", &mut out);
        typed(&mut t, "tmux", &mut out);
        let _ = t.input(b"\r", false, &mut out);
        out.clear();
        // tmux draws the inner shell's prompt on the alternate screen, a status line below.
        t.output(
            b"\r\n\x1b[?1049h\x1b[H\x1b[2Jalice@t2:~$ \x1b[24;1H\x1b[7m[0] 0:bash*\x1b[m\x1b[1;13H",
            &mut out,
        );
        typed(&mut t, "rm -rf /", &mut out);
        assert_eq!(t.input(b"\r", false, &mut out), Feed::All);
        assert_eq!(line(&out[0]), ("rm -rf /", false, LineSource::Keystrokes));
        assert_eq!(out[0].action, Action::Terminate);
        assert_eq!(out[0].incomplete, None);

        // PS1='' inside tmux: no prompt to tell a shell by.
        out.clear();
        t.output(b"\r\n", &mut out);
        typed(&mut t, "rm -rf /", &mut out);
        assert_eq!(t.input(b"\r", false, &mut out), Feed::All);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(line_of(&out[0]), "rm -rf /");
        assert_eq!(out[0].action, Action::RequireApproval);
        assert_eq!(out[0].incomplete, Some(Incomplete::FullScreen));
        // An editor's harmless line is no event.
        out.clear();
        t.output(b"\r\n", &mut out);
        typed(&mut t, "hello", &mut out);
        assert_eq!(t.input(b"\r", false, &mut out), Feed::All);
        assert!(out.is_empty(), "{out:?}");
        // vim's command line above tmux's status line.
        t.output(b"\x1b[23;1H", &mut out);
        typed(&mut t, ":!rm -rf /", &mut out);
        assert_eq!(t.input(b"\r", false, &mut out), Feed::All);
        assert_eq!(line(&out[0]), ("rm -rf /", false, LineSource::ViCommand));
    }

    #[test]
    fn continuation_joins_lines() {
        let mut t = tracker(false);
        let mut out = Vec::new();
        t.output(b"$ ", &mut out);
        typed(&mut t, "rm \\", &mut out);
        let _ = t.input(b"\r", false, &mut out);
        t.output(b"\r\n> ", &mut out);
        typed(&mut t, "-rf /", &mut out);
        let _ = t.input(b"\r", false, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(line(&out[0]).0, "rm -rf /");
        assert_eq!(out[0].action, Action::Terminate);
    }

    #[test]
    fn no_echo_in_time_judges_the_certain_keys_before_the_enter() {
        let mut t = tracker(true);
        let mut out = Vec::new();
        t.output(b"$ ", &mut out);
        let bytes = b"rm -rf /\r";
        let Feed::WaitForEcho { consumed } = t.input(bytes, false, &mut out) else {
            panic!("should wait");
        };
        // Output that is not the echo (a program writing over the line), then the deadline.
        t.output(b"\r\nsomething else\r\n$ ", &mut out);
        t.echo_timeout();
        assert_eq!(t.input(&bytes[consumed..], false, &mut out), Feed::All);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].event, PolicyEvent::UnechoedInput { chars: 8 });
        assert_eq!(out[0].action, Action::Terminate);
        // The late echo is not acted on a second time.
        t.output(b"rm -rf /\r\n$ ", &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
    }

    #[test]
    fn continuation_past_its_bound_is_judged_as_cut() {
        let mut t = tracker(false);
        let mut out = Vec::new();
        t.output(b"$ ", &mut out);
        for _ in 0..=MAX_CONTINUATION {
            typed(&mut t, ": \\", &mut out);
            let _ = t.input(b"\r", false, &mut out);
            t.output(b"\r\n> ", &mut out);
        }
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].incomplete, Some(psm_core::policy::Incomplete::Cut));
        assert_eq!(out[0].action, Action::RequireApproval);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn arbitrary_streams_stay_bounded(
            chunks in proptest::collection::vec((any::<bool>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..40),
            wait in any::<bool>(),
        ) {
            let mut t = tracker(wait);
            let mut out = Vec::new();
            for (is_input, hidden, bytes) in chunks {
                if is_input {
                    let mut rest = &bytes[..];
                    loop {
                        match t.input(rest, hidden, &mut out) {
                            Feed::All => break,
                            Feed::WaitForEcho { consumed } => {
                                prop_assert!(consumed < rest.len());
                                t.echo_timeout();
                                rest = &rest[consumed..];
                            }
                        }
                    }
                } else {
                    t.output(&bytes, &mut out);
                }
                prop_assert!(t.pending.chars().count() <= t.max_line + 1);
                prop_assert!(t.model.chars().len() <= t.max_line);
                prop_assert!(t.prompt.len() <= MAX_PROMPT);
                prop_assert!(t.scratch.capacity() <= 2 * t.max_line.max(64));
            }
            t.finish(&mut out);
            for d in &out {
                if let PolicyEvent::Command { line, .. } = &d.event {
                    prop_assert!(line.chars().count() <= 2 * t.max_line + 1);
                }
            }
        }

        /// A fake readline that redraws the whole line after every key (as readline does
        /// for history recall): whatever the keys, the tracker reads back the line the
        /// "shell" holds at Enter, from the keystrokes or from the screen.
        #[test]
        fn edited_lines_read_back(ops in proptest::collection::vec(0u8..12, 0..60), text in "[a-z /-]{60}") {
            const PROMPT: &str = "user@host:~$ ";
            const HISTORY: [&str; 2] = ["rm -rf /", "ls -l /etc"];
            let mut t = tracker(false);
            let mut out = Vec::new();
            t.output(PROMPT.as_bytes(), &mut out);
            let mut line: Vec<char> = Vec::new();
            let mut cur = 0usize;
            let mut chars = text.chars().cycle();
            for op in ops {
                let key: Vec<u8> = match op {
                    0..=4 => {
                        if line.len() < 50 {
                            let c = chars.next().unwrap_or('x');
                            line.insert(cur, c);
                            cur += 1;
                            c.to_string().into_bytes()
                        } else {
                            continue;
                        }
                    }
                    5 => {
                        if cur > 0 {
                            cur -= 1;
                            line.remove(cur);
                        }
                        b"\x7f".to_vec()
                    }
                    6 => {
                        cur = cur.saturating_sub(1);
                        b"\x1b[D".to_vec()
                    }
                    7 => {
                        cur = (cur + 1).min(line.len());
                        b"\x1b[C".to_vec()
                    }
                    8 => {
                        cur = 0;
                        b"\x01".to_vec()
                    }
                    9 => {
                        line.drain(..cur);
                        cur = 0;
                        b"\x15".to_vec()
                    }
                    10 => {
                        if cur < line.len() {
                            line.remove(cur);
                        }
                        b"\x1b[3~".to_vec()
                    }
                    _ => {
                        let h = HISTORY[line.len() % 2];
                        line = h.chars().collect();
                        cur = line.len();
                        b"\x1b[A".to_vec()
                    }
                };
                prop_assert_eq!(t.input(&key, false, &mut out), Feed::All);
                let text: String = line.iter().collect();
                let back = line.len() - cur;
                let mut echo = format!("\r{PROMPT}{text}\x1b[K");
                if back > 0 {
                    echo.push_str(&format!("\x1b[{back}D"));
                }
                t.output(echo.as_bytes(), &mut out);
            }
            let _ = t.input(b"\r", false, &mut out);
            t.output(b"\r\n", &mut out);
            let want: String = line.iter().collect::<String>().trim().to_owned();
            if want.is_empty() {
                prop_assert!(out.is_empty(), "{:?}", out);
            } else {
                prop_assert_eq!(out.len(), 1, "{:?}", out);
                prop_assert_eq!(line_of(&out[0]), want.as_str());
            }
        }

        #[test]
        fn plain_typing_is_reconstructed(cmd in "[a-z][a-z0-9 ./_-]{0,60}") {
            let mut t = tracker(false);
            let mut out = Vec::new();
            t.output(b"user@host:~$ ", &mut out);
            typed(&mut t, &cmd, &mut out);
            let _ = t.input(b"\r", false, &mut out);
            t.output(b"\r\n", &mut out);
            let want = cmd.trim();
            if want.is_empty() {
                prop_assert!(out.is_empty());
            } else {
                prop_assert_eq!(out.len(), 1);
                prop_assert_eq!(line(&out[0]).0, want);
            }
        }
    }
}
