//! From the user's bytes to keys: UTF-8 (psm-recording's decoder), control characters,
//! escape sequences, bracketed paste. One byte in, at most one key out, no allocation.

use psm_recording::Utf8Decoder;

/// A key (or pasted character) as a line editor sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    /// A character to insert.
    Char(char),
    /// A character inside a bracketed paste (inserted literally, newlines included).
    Pasted(char),
    /// Enter (CR, LF): accept the line.
    Enter,
    /// `C-o`: accept the line and fetch the next history entry.
    AcceptAndNext,
    /// DEL, `C-h`.
    Backspace,
    /// Delete (`ESC [3~`), or `C-d` on a non-empty line.
    Delete,
    /// `C-d`.
    CtrlD,
    /// `C-u`: kill to the start of the line.
    KillToStart,
    /// `C-k`: kill to the end of the line.
    KillToEnd,
    /// `C-w`: kill the whitespace-delimited word before the cursor.
    KillWordBack,
    /// `M-DEL`, `M-C-h`: kill the alphanumeric word before the cursor.
    KillAlnumWordBack,
    /// `M-d`: kill the alphanumeric word after the cursor.
    KillAlnumWordForward,
    /// `C-b`, left arrow.
    Left,
    /// `C-f`, right arrow.
    Right,
    /// `M-b`, `C-left`.
    WordLeft,
    /// `M-f`, `C-right`.
    WordRight,
    /// `C-a`, Home.
    Home,
    /// `C-e`, End.
    End,
    /// `C-c`, `C-g`: the line is abandoned.
    Abort,
    /// `C-v`, `C-q`: the next character is inserted literally.
    QuotedInsert,
    /// A key that changes nothing on the line (`C-l`, `C-z`, `C-\`, focus events...).
    Ignore,
    /// A key whose effect depends on the shell's state (history, completion, undo, yank,
    /// unknown bindings): after it, only the screen tells what the line is.
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Ground,
    Esc,
    Csi,
    Ss3,
}

/// The longest CSI parameter string kept; longer ones are still consumed, as `Unknown`.
const MAX_PARAMS: usize = 16;

/// Incremental decoder of user input.
#[derive(Clone, Debug)]
pub(crate) struct KeyDecoder {
    state: State,
    params: [u8; MAX_PARAMS],
    params_len: usize,
    params_overflow: bool,
    utf8: Utf8Decoder,
    /// What the decoder made of the last byte (at most two characters).
    decoded: String,
    in_paste: bool,
    /// The target asked for bracketed paste (`ESC [?2004h`): only then is `ESC [200~` the
    /// start of a paste; otherwise the target reads what follows as keys, Enter included.
    paste_enabled: bool,
    dropped: bool,
}

impl Default for KeyDecoder {
    fn default() -> Self {
        Self {
            state: State::Ground,
            params: [0; MAX_PARAMS],
            params_len: 0,
            params_overflow: false,
            utf8: Utf8Decoder::new(),
            decoded: String::with_capacity(8),
            in_paste: false,
            paste_enabled: true,
            dropped: false,
        }
    }
}

impl KeyDecoder {
    /// The target turned bracketed paste on or off. Off also ends a paste in progress: a
    /// target that does not bracket pastes takes a CR in one as Enter.
    pub(crate) fn set_paste_enabled(&mut self, on: bool) {
        self.paste_enabled = on;
        if !on {
            self.in_paste = false;
        }
    }

    /// Whether a broken UTF-8 sequence was dropped since the last call.
    pub(crate) fn take_dropped(&mut self) -> bool {
        std::mem::take(&mut self.dropped)
    }

    /// Feeds one byte.
    pub(crate) fn feed(&mut self, b: u8) -> Option<Key> {
        match self.state {
            State::Ground => self.ground(b),
            State::Esc => {
                self.state = State::Ground;
                match b {
                    b'[' => {
                        self.state = State::Csi;
                        self.params_len = 0;
                        self.params_overflow = false;
                        None
                    }
                    b'O' => {
                        self.state = State::Ss3;
                        None
                    }
                    // Pasted text: the escape is dropped, what follows is text.
                    _ if self.in_paste => self.ground(b),
                    0x7f | 0x08 => Some(Key::KillAlnumWordBack),
                    b'b' => Some(Key::WordLeft),
                    b'f' => Some(Key::WordRight),
                    b'd' => Some(Key::KillAlnumWordForward),
                    0x1b => {
                        // ESC ESC: the second may start a sequence of its own.
                        self.state = State::Esc;
                        Some(Key::Unknown)
                    }
                    _ => Some(Key::Unknown),
                }
            }
            State::Ss3 => {
                self.state = State::Ground;
                if self.in_paste {
                    return Some(Key::Pasted(char::from(b)));
                }
                Some(match b {
                    b'C' => Key::Right,
                    b'D' => Key::Left,
                    b'H' => Key::Home,
                    b'F' => Key::End,
                    _ => Key::Unknown,
                })
            }
            State::Csi => {
                if (0x30..=0x3f).contains(&b) || (0x20..=0x2f).contains(&b) {
                    if self.params_len < MAX_PARAMS {
                        self.params[self.params_len] = b;
                        self.params_len += 1;
                    } else {
                        self.params_overflow = true;
                    }
                    return None;
                }
                self.state = State::Ground;
                if !(0x40..=0x7e).contains(&b) {
                    // Not a CSI after all (a control character in the middle): the
                    // sequence is abandoned.
                    return Some(if self.in_paste {
                        Key::Pasted('\u{fffd}')
                    } else {
                        Key::Unknown
                    });
                }
                if self.params_overflow {
                    return Some(Key::Unknown);
                }
                let params = &self.params[..self.params_len];
                if self.in_paste {
                    if b == b'~' && params == b"201" {
                        self.in_paste = false;
                        return Some(Key::Ignore);
                    }
                    return Some(Key::Pasted('\u{fffd}'));
                }
                Some(match (params, b) {
                    (b"200", b'~') if self.paste_enabled => {
                        self.in_paste = true;
                        Key::Ignore
                    }
                    (b"" | b"1", b'C') => Key::Right,
                    (b"" | b"1", b'D') => Key::Left,
                    (b"1;5" | b"1;3" | b"5", b'C') => Key::WordRight,
                    (b"1;5" | b"1;3" | b"5", b'D') => Key::WordLeft,
                    (b"" | b"1", b'H') | (b"1" | b"7", b'~') => Key::Home,
                    (b"" | b"1", b'F') | (b"4" | b"8", b'~') => Key::End,
                    (b"3", b'~') => Key::Delete,
                    // Focus in/out reports.
                    (b"", b'I' | b'O') => Key::Ignore,
                    _ => Key::Unknown,
                })
            }
        }
    }

    fn ground(&mut self, b: u8) -> Option<Key> {
        if self.utf8.has_pending() || b >= 0x80 {
            return self.multibyte(b);
        }
        self.ascii(b)
    }

    /// A byte of a multi-byte character, or one that breaks it.
    fn multibyte(&mut self, b: u8) -> Option<Key> {
        let pending = self.utf8.has_pending();
        self.decoded.clear();
        self.utf8.decode(&[b], &mut self.decoded);
        let mut chars = self.decoded.chars();
        let (first, second) = (chars.next(), chars.next());
        // Nothing yet: the character continues.
        let first = first?;
        if !pending || (second.is_none() && b & 0xc0 == 0x80) {
            // A whole character, or a byte invalid on its own (U+FFFD).
            return Some(self.text(first));
        }
        // A broken sequence. One byte yields at most one key: the broken character is
        // dropped and reported through `take_dropped`, and the byte is read afresh (it may
        // be an Enter, which must never be lost).
        self.dropped = true;
        if b < 0x80 {
            return self.ascii(b);
        }
        // The byte starts a character of its own (pending), or is invalid (U+FFFD).
        second.map(|c| self.text(c))
    }

    fn ascii(&mut self, b: u8) -> Option<Key> {
        if self.in_paste {
            return match b {
                0x1b => {
                    self.state = State::Esc;
                    None
                }
                b'\r' => Some(Key::Pasted('\n')),
                _ => Some(Key::Pasted(char::from(b))),
            };
        }
        Some(match b {
            0x01 => Key::Home,
            0x02 => Key::Left,
            0x03 | 0x07 => Key::Abort,
            0x04 => Key::CtrlD,
            0x05 => Key::End,
            0x06 => Key::Right,
            0x08 | 0x7f => Key::Backspace,
            b'\r' | b'\n' => Key::Enter,
            0x0b => Key::KillToEnd,
            0x0c | 0x1a | 0x1c => Key::Ignore,
            0x0f => Key::AcceptAndNext,
            0x11 | 0x16 => Key::QuotedInsert,
            0x15 => Key::KillToStart,
            0x17 => Key::KillWordBack,
            0x1b => {
                self.state = State::Esc;
                return None;
            }
            0x20..=0x7e => Key::Char(char::from(b)),
            // Tab (completion), C-n/C-p (history), C-r/C-s (search), C-t (transpose),
            // C-x (prefix: C-x C-e opens an editor), C-y (yank), C-_ (undo)...
            _ => Key::Unknown,
        })
    }

    fn text(&self, c: char) -> Key {
        if self.in_paste {
            Key::Pasted(c)
        } else {
            Key::Char(c)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(bytes: &[u8]) -> Vec<Key> {
        let mut d = KeyDecoder::default();
        bytes.iter().filter_map(|&b| d.feed(b)).collect()
    }

    #[test]
    fn paste_only_when_the_target_enabled_it() {
        let mut d = KeyDecoder::default();
        d.set_paste_enabled(false);
        let got: Vec<Key> = b"\x1b[200~a\r".iter().filter_map(|&b| d.feed(b)).collect();
        assert_eq!(got, [Key::Unknown, Key::Char('a'), Key::Enter]);
        d.set_paste_enabled(true);
        let got: Vec<Key> = b"\x1b[200~a\r".iter().filter_map(|&b| d.feed(b)).collect();
        assert_eq!(got, [Key::Ignore, Key::Pasted('a'), Key::Pasted('\n')]);
        // Turned off in the middle of a paste: the paste is over.
        d.set_paste_enabled(false);
        assert_eq!(d.feed(b'\r'), Some(Key::Enter));
    }

    #[test]
    fn decodes_editing_keys() {
        assert_eq!(
            keys(b"a\x7f\x08"),
            [Key::Char('a'), Key::Backspace, Key::Backspace]
        );
        assert_eq!(
            keys(b"\x1b[D\x1bOC\x1b[H\x1b[4~"),
            [Key::Left, Key::Right, Key::Home, Key::End]
        );
        assert_eq!(keys(b"\x1b[A\t"), [Key::Unknown, Key::Unknown]);
        assert_eq!(
            keys(b"\x1b[3~\x15\x17\x0b"),
            [
                Key::Delete,
                Key::KillToStart,
                Key::KillWordBack,
                Key::KillToEnd
            ]
        );
        assert_eq!(
            keys(b"\x1b[1;5D\x1bb\x1bf"),
            [Key::WordLeft, Key::WordLeft, Key::WordRight]
        );
        assert_eq!(keys("é€".as_bytes()), [Key::Char('é'), Key::Char('€')]);
        assert_eq!(keys(b"\xff"), [Key::Char('\u{fffd}')]);
    }

    #[test]
    fn a_broken_character_is_dropped_and_the_byte_read_afresh() {
        let mut d = KeyDecoder::default();
        let got: Vec<Key> = b"\xe2\x82\r\xc3x\xe2\xc3\xa9"
            .iter()
            .filter_map(|&b| d.feed(b))
            .collect();
        assert_eq!(got, [Key::Enter, Key::Char('x'), Key::Char('é')]);
        assert!(d.take_dropped());
        assert!(!d.take_dropped());
    }

    #[test]
    fn bracketed_paste_is_literal() {
        assert_eq!(
            keys(b"\x1b[200~a\rb\x7f\x1b[201~\r"),
            [
                Key::Ignore,
                Key::Pasted('a'),
                Key::Pasted('\n'),
                Key::Pasted('b'),
                Key::Pasted('\x7f'),
                Key::Ignore,
                Key::Enter
            ]
        );
    }

    #[test]
    fn long_csi_is_consumed() {
        let mut b = b"\x1b[".to_vec();
        b.extend(std::iter::repeat_n(b'1', 1000));
        b.push(b'~');
        b.push(b'x');
        assert_eq!(keys(&b), [Key::Unknown, Key::Char('x')]);
    }
}
