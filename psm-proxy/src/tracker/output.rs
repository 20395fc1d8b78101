//! Output as text lines for output rules.
//!
//! Output rules see the *text* of the output, one line at a time: escape sequences (colours,
//! cursor moves, titles) are removed, a line ends at LF or CR, backspace removes the last
//! character, and a line longer than the tracker's maximum is judged in pieces of that
//! size. This is cheaper than reading the emulated screen and sees text that scrolls by
//! faster than any screen refresh.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Ground,
    Esc,
    Csi,
    /// OSC, DCS, APC, PM, SOS: a string ended by BEL or ST.
    Str,
    StrEsc,
}

/// Splits output text into lines.
#[derive(Clone, Debug)]
pub(crate) struct OutputLines {
    state: State,
    line: String,
    chars: usize,
    max: usize,
}

/// What a character did to the current output line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LineEvent {
    /// Nothing to judge yet.
    None,
    /// The line is complete: judge [`OutputLines::line`], then call [`OutputLines::clear`].
    Complete,
}

impl OutputLines {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            state: State::Ground,
            line: String::with_capacity(max.min(4096)),
            chars: 0,
            max,
        }
    }

    /// The current (possibly partial) line.
    pub(crate) fn line(&self) -> &str {
        &self.line
    }

    /// Starts a new line.
    pub(crate) fn clear(&mut self) {
        self.line.clear();
        self.chars = 0;
    }

    #[inline]
    pub(crate) fn feed(&mut self, c: char) -> LineEvent {
        match self.state {
            State::Ground => match c {
                '\n' | '\r' => {
                    if !self.line.is_empty() {
                        return LineEvent::Complete;
                    }
                }
                '\x1b' => self.state = State::Esc,
                '\x08' => {
                    if self.line.pop().is_some() {
                        self.chars -= 1;
                    }
                }
                '\t' => return self.push(' '),
                '\u{9b}' => self.state = State::Csi,
                '\u{90}' | '\u{9d}' | '\u{9e}' | '\u{9f}' | '\u{98}' => self.state = State::Str,
                c if c.is_control() => {}
                c => return self.push(c),
            },
            State::Esc => {
                self.state = match c {
                    '[' => State::Csi,
                    ']' | 'P' | '_' | '^' | 'X' => State::Str,
                    // Intermediates (`ESC ( B`): wait for the final character.
                    '\x20'..='\x2f' => State::Esc,
                    _ => State::Ground,
                }
            }
            State::Csi => {
                if ('\x40'..='\x7e').contains(&c) || c == '\x1b' {
                    self.state = if c == '\x1b' {
                        State::Esc
                    } else {
                        State::Ground
                    };
                }
            }
            State::Str => match c {
                '\x07' | '\u{9c}' => self.state = State::Ground,
                '\x1b' => self.state = State::StrEsc,
                _ => {}
            },
            State::StrEsc => {
                self.state = if c == '\\' { State::Ground } else { State::Str };
            }
        }
        LineEvent::None
    }

    fn push(&mut self, c: char) -> LineEvent {
        self.line.push(c);
        self.chars += 1;
        if self.chars >= self.max {
            LineEvent::Complete
        } else {
            LineEvent::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use psm_recording::Utf8Decoder;

    fn lines(bytes: &[u8]) -> Vec<String> {
        let mut u = Utf8Decoder::new();
        let mut o = OutputLines::new(16);
        let mut out = Vec::new();
        // Byte by byte, as the stream may be cut anywhere.
        for b in bytes.chunks(1) {
            let mut text = String::new();
            u.decode(b, &mut text);
            for c in text.chars() {
                if o.feed(c) == LineEvent::Complete {
                    out.push(o.line().to_owned());
                    o.clear();
                }
            }
        }
        out
    }

    #[test]
    fn strips_sequences_and_splits() {
        assert_eq!(
            lines(b"\x1b[1;31mDANGER\x1b[0m zone\r\n\x1b]0;title\x07ok\x08K\n"),
            ["DANGER zone", "oK"]
        );
        assert_eq!(lines(b"0123456789abcdefXYZ\n"), ["0123456789abcdef", "XYZ"]);
        assert_eq!(lines(b"h\xc3\xa9\xff\n"), ["h\u{e9}\u{fffd}"]);
        assert_eq!(lines(b"\x1bP1$r\x1b\\after\n"), ["after"]);
    }
}
