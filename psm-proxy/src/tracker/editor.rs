//! The line as the user's keys build it: an emacs-mode readline model (the default of
//! bash, zsh's emacs keymap, Python's REPL, psql, mysql...).
//!
//! The model is *certain* while every key had a known effect; history recall, completion,
//! undo, yank and unknown keys make it *uncertain*, and then only the screen tells what
//! the line is (see [how a line is read](super)).

use super::keys::Key;

/// What a key did to the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// The line changed (or not) and is still being edited.
    Edit,
    /// The line was submitted.
    Submit,
    /// The line was abandoned (`C-c`, `C-d` on an empty line).
    Abort,
}

/// The line being typed.
#[derive(Clone, Debug)]
pub(crate) struct LineModel {
    buf: Vec<char>,
    cursor: usize,
    max: usize,
    uncertain: bool,
    truncated: bool,
    quoted_next: bool,
    typed: usize,
}

impl LineModel {
    /// A model that keeps at most `max` characters (allocated once).
    pub(crate) fn new(max: usize) -> Self {
        Self {
            buf: Vec::with_capacity(max),
            cursor: 0,
            max,
            uncertain: false,
            truncated: false,
            quoted_next: false,
            typed: 0,
        }
    }

    /// Starts a new, empty line.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.cursor = 0;
        self.uncertain = false;
        self.truncated = false;
        self.quoted_next = false;
        self.typed = 0;
    }

    /// The line's characters.
    pub(crate) fn chars(&self) -> &[char] {
        &self.buf
    }

    /// Whether a key with an unknown effect was pressed since the line began.
    pub(crate) fn uncertain(&self) -> bool {
        self.uncertain
    }

    /// Marks the model as not to be trusted.
    pub(crate) fn set_uncertain(&mut self) {
        self.uncertain = true;
    }

    /// Whether characters were dropped because the line reached its maximum.
    pub(crate) fn truncated(&self) -> bool {
        self.truncated
    }

    /// How many characters were typed or pasted since the line began.
    pub(crate) fn typed(&self) -> usize {
        self.typed
    }

    /// Applies one key.
    pub(crate) fn apply(&mut self, key: Key) -> Effect {
        if self.quoted_next {
            self.quoted_next = false;
            let c = match key {
                Key::Char(c) | Key::Pasted(c) => Some(c),
                Key::Enter => Some('\r'),
                Key::Backspace => Some('\x7f'),
                _ => None,
            };
            match c {
                Some(c) => self.insert(c),
                None => self.uncertain = true,
            }
            return Effect::Edit;
        }
        match key {
            Key::Char(c) | Key::Pasted(c) => self.insert(c),
            Key::Enter | Key::AcceptAndNext => {
                if key == Key::AcceptAndNext {
                    // The next line starts with a history entry we do not know.
                    self.uncertain = true;
                }
                return Effect::Submit;
            }
            Key::Abort => return Effect::Abort,
            Key::CtrlD => {
                if self.buf.is_empty() {
                    return Effect::Abort;
                }
                self.delete_at_cursor();
            }
            Key::Backspace => {
                if self.cursor > 0 {
                    self.cursor -= 1;
                    self.buf.remove(self.cursor);
                }
            }
            Key::Delete => self.delete_at_cursor(),
            Key::KillToStart => {
                self.buf.drain(..self.cursor);
                self.cursor = 0;
            }
            Key::KillToEnd => self.buf.truncate(self.cursor),
            Key::KillWordBack => {
                let start = self.back(|c| !c.is_whitespace());
                self.buf.drain(start..self.cursor);
                self.cursor = start;
            }
            Key::KillAlnumWordBack => {
                let start = self.back(char::is_alphanumeric);
                self.buf.drain(start..self.cursor);
                self.cursor = start;
            }
            Key::KillAlnumWordForward => {
                let end = self.forward(char::is_alphanumeric);
                self.buf.drain(self.cursor..end);
            }
            Key::Left => self.cursor = self.cursor.saturating_sub(1),
            Key::Right => self.cursor = (self.cursor + 1).min(self.buf.len()),
            Key::WordLeft => self.cursor = self.back(char::is_alphanumeric),
            Key::WordRight => self.cursor = self.forward(char::is_alphanumeric),
            Key::Home => self.cursor = 0,
            Key::End => self.cursor = self.buf.len(),
            Key::QuotedInsert => self.quoted_next = true,
            Key::Ignore => {}
            Key::Unknown => self.uncertain = true,
        }
        Effect::Edit
    }

    fn insert(&mut self, c: char) {
        self.typed = self.typed.saturating_add(1);
        if self.buf.len() >= self.max {
            self.truncated = true;
            return;
        }
        self.buf.insert(self.cursor, c);
        self.cursor += 1;
    }

    fn delete_at_cursor(&mut self) {
        if self.cursor < self.buf.len() {
            self.buf.remove(self.cursor);
        }
    }

    /// Where a backward word motion stops: skip characters outside the word, then inside.
    fn back(&self, in_word: impl Fn(char) -> bool) -> usize {
        let mut i = self.cursor;
        while i > 0 && !in_word(self.buf[i - 1]) {
            i -= 1;
        }
        while i > 0 && in_word(self.buf[i - 1]) {
            i -= 1;
        }
        i
    }

    /// Where a forward word motion stops.
    fn forward(&self, in_word: impl Fn(char) -> bool) -> usize {
        let mut i = self.cursor;
        let n = self.buf.len();
        while i < n && !in_word(self.buf[i]) {
            i += 1;
        }
        while i < n && in_word(self.buf[i]) {
            i += 1;
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::keys::KeyDecoder;

    fn line(bytes: &[u8]) -> (String, bool) {
        let mut d = KeyDecoder::default();
        let mut m = LineModel::new(100);
        for &b in bytes {
            if let Some(k) = d.feed(b) {
                m.apply(k);
            }
        }
        (m.chars().iter().collect(), m.uncertain())
    }

    #[test]
    fn editing_keys() {
        assert_eq!(line(b"r\x7fm -rf /").0, "m -rf /");
        assert_eq!(line(b"rx\x08m -rf /").0, "rm -rf /");
        assert_eq!(line(b"echo hi\x15rm -rf /").0, "rm -rf /");
        assert_eq!(line(b"rm -rf /tmp/x\x17/").0, "rm -rf /");
        assert_eq!(line(b"m -rf /\x01r").0, "rm -rf /");
        assert_eq!(line(b"m -rf /\x1b[Hr\x1b[F!").0, "rm -rf /!");
        assert_eq!(line(b"rm -rf x/\x1b[D\x7f").0, "rm -rf /");
        assert_eq!(line(b"rmm -rf /\x01\x1b[C\x1b[3~").0, "rm -rf /");
        assert_eq!(line(b"rm -rf /etc\x1b[D\x1b[D\x1b[D\x0b").0, "rm -rf /");
        assert_eq!(line(b"rm -rf /foo\x1b\x7f").0, "rm -rf /");
        assert_eq!(line(b"x rm -rf /\x01\x1bd\x04").0, "rm -rf /");
        assert_eq!(line(b"rm -rf /\x1bb\x1bb\x1bf").0, "rm -rf /");
        assert_eq!(line(b"\x16\x7f").0, "\x7f");
        assert!(!line(b"rm -rf /").1);
        assert!(line(b"\x1b[A").1);
        assert!(line(b"rm\t").1);
        assert!(line(b"\x19").1);
    }

    #[test]
    fn bounded() {
        let mut m = LineModel::new(8);
        for _ in 0..100 {
            m.apply(Key::Char('x'));
        }
        assert_eq!(m.chars().len(), 8);
        assert!(m.truncated());
        assert_eq!(m.typed(), 100);
    }
}
