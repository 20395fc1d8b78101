//! Terminal output as timed text lines: escape sequences stripped, carriage returns and
//! backspaces applied, full-screen programs summarised. Used by the transcript and search.

use crate::terminal::Utf8Decoder;
use crate::time::Micros;

/// Longest line kept; longer output is cut into lines of this many characters.
const MAX_LINE: usize = 16 << 10;
const MAX_SEQ: usize = 64;

/// A line of text and when its first character appeared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// When the line started.
    pub time: Micros,
    /// Its text (no trailing spaces).
    pub text: String,
    /// True for a summary of a full-screen program (`text` then describes it).
    pub full_screen: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Ground,
    Escape,
    Csi,
    /// OSC, DCS, SOS, PM, APC: skipped up to BEL or ST.
    Str,
    StrEscape,
}

/// Turns one channel's output into [`Line`]s.
#[derive(Clone, Debug)]
pub struct LineAssembler {
    utf8: Utf8Decoder,
    state: State,
    seq: String,
    line: Vec<char>,
    col: usize,
    start: Option<Micros>,
    alt_since: Option<Micros>,
    decoded: String,
}

impl Default for LineAssembler {
    fn default() -> Self {
        Self::new()
    }
}

impl LineAssembler {
    /// A fresh assembler.
    pub fn new() -> Self {
        Self {
            utf8: Utf8Decoder::new(),
            state: State::Ground,
            seq: String::new(),
            line: Vec::new(),
            col: 0,
            start: None,
            alt_since: None,
            decoded: String::new(),
        }
    }

    /// Feeds output at `time`; complete lines go to `emit`.
    pub fn feed(&mut self, time: Micros, data: &[u8], emit: &mut impl FnMut(Line)) {
        let mut decoded = std::mem::take(&mut self.decoded);
        decoded.clear();
        self.utf8.decode(data, &mut decoded);
        for c in decoded.chars() {
            self.char(time, c, emit);
        }
        self.decoded = decoded;
    }

    /// Emits a pending partial line (at the end, or before an unrelated note).
    pub fn flush(&mut self, emit: &mut impl FnMut(Line)) {
        self.emit_line(emit);
    }

    /// Ends the stream: the partial line, and an unfinished full-screen program.
    pub fn finish(&mut self, time: Micros, emit: &mut impl FnMut(Line)) {
        self.emit_line(emit);
        if let Some(since) = self.alt_since.take() {
            emit(Line {
                time: since,
                text: format!("[full-screen program from {since} until {time}]"),
                full_screen: true,
            });
        }
    }

    fn emit_line(&mut self, emit: &mut impl FnMut(Line)) {
        if let Some(t) = self.start.take() {
            let s: String = self.line.iter().collect();
            let s = s.trim_end();
            emit(Line {
                time: t,
                text: s.to_owned(),
                full_screen: false,
            });
        }
        self.line.clear();
        self.col = 0;
    }

    fn put(&mut self, time: Micros, c: char, emit: &mut impl FnMut(Line)) {
        if self.alt_since.is_some() {
            return;
        }
        if self.start.is_none() {
            self.start = Some(time);
        }
        if self.col >= MAX_LINE {
            self.emit_line(emit);
            self.start = Some(time);
        }
        if self.col < self.line.len() {
            self.line[self.col] = c;
        } else {
            while self.line.len() < self.col {
                self.line.push(' ');
            }
            self.line.push(c);
        }
        self.col += 1;
    }

    fn char(&mut self, time: Micros, c: char, emit: &mut impl FnMut(Line)) {
        match self.state {
            State::Ground => match c {
                '\x1b' => {
                    self.state = State::Escape;
                    self.seq.clear();
                }
                '\u{9b}' => {
                    self.state = State::Csi;
                    self.seq.clear();
                }
                '\u{90}' | '\u{9d}' | '\u{98}' | '\u{9e}' | '\u{9f}' => self.state = State::Str,
                '\n' => {
                    if self.alt_since.is_none() {
                        if self.start.is_none() {
                            self.start = Some(time);
                        }
                        self.emit_line(emit);
                    }
                }
                '\r' => self.col = 0,
                '\x08' => self.col = self.col.saturating_sub(1),
                '\t' => {
                    let next = (self.col / 8 + 1) * 8;
                    while self.col < next {
                        self.put(time, ' ', emit);
                    }
                }
                c if (c as u32) < 0x20 || c == '\x7f' || ('\u{80}'..='\u{9f}').contains(&c) => {}
                c => self.put(time, c, emit),
            },
            State::Escape => match c {
                '[' => self.state = State::Csi,
                ']' | 'P' | 'X' | '^' | '_' => self.state = State::Str,
                // Intermediates (charset selection and the like) take one more character.
                '(' | ')' | '*' | '+' | '#' | '%' | ' ' => {}
                _ => self.state = State::Ground,
            },
            State::Csi => {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    self.state = State::Ground;
                    self.csi(time, c, emit);
                } else if (c as u32) < 0x20 {
                    // Controls inside a sequence are executed.
                    self.state = State::Csi;
                } else if self.seq.len() < MAX_SEQ {
                    self.seq.push(c);
                }
            }
            State::Str => match c {
                '\x07' | '\u{9c}' => self.state = State::Ground,
                '\x1b' => self.state = State::StrEscape,
                _ => {}
            },
            State::StrEscape => {
                self.state = if c == '\\' { State::Ground } else { State::Str };
            }
        }
    }

    fn csi(&mut self, time: Micros, fin: char, emit: &mut impl FnMut(Line)) {
        let n = || -> usize {
            self.seq
                .split(';')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(1)
                .max(1)
        };
        match fin {
            'h' | 'l' if self.seq.starts_with('?') => {
                let alt = self.seq[1..]
                    .split(';')
                    .any(|p| matches!(p, "1049" | "1047" | "47"));
                if !alt {
                    return;
                }
                if fin == 'h' && self.alt_since.is_none() {
                    self.emit_line(emit);
                    self.alt_since = Some(time);
                } else if fin == 'l'
                    && let Some(since) = self.alt_since.take()
                {
                    emit(Line {
                        time: since,
                        text: format!("[full-screen program from {since} until {time}]"),
                        full_screen: true,
                    });
                }
            }
            'C' => self.col = (self.col + n()).min(MAX_LINE),
            'D' => self.col = self.col.saturating_sub(n()),
            'G' => self.col = (n() - 1).min(MAX_LINE),
            'K' if self.alt_since.is_none() => {
                let mode = self.seq.parse::<u32>().unwrap_or(0);
                match mode {
                    0 => self.line.truncate(self.col),
                    2 => self.line.clear(),
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn lines(data: &[u8]) -> Vec<String> {
        let mut a = LineAssembler::new();
        let mut out = Vec::new();
        a.feed(Micros(1), data, &mut |l| out.push(l.text));
        a.finish(Micros(2), &mut |l| out.push(l.text));
        out
    }

    #[test]
    fn strips_colours_applies_cr_and_bs() {
        assert_eq!(
            lines(b"\x1b[01;34mdir\x1b[0m file\r\nabc\x08\x08X\r\nprogress 10%\rprogress 100%\r\n\x1b]0;title\x07tail"),
            vec!["dir file", "aXc", "progress 100%", "tail"]
        );
    }

    #[test]
    fn full_screen_programs_are_summarised() {
        let out = lines(b"$ vim\r\n\x1b[?1049h\x1b[Hlots of screen\x1b[?1049l$ ");
        assert_eq!(out[0], "$ vim");
        assert!(out[1].starts_with("[full-screen program"), "{out:?}");
        assert_eq!(out[2], "$");
    }
}
