//! One emulated terminal, with a fast path for bulk plain output.

use crate::error::RecordingError;
use crate::event::{ChannelId, Keyframe, TermSize};

use super::utf8::Utf8Decoder;

/// Widest terminal emulated (wider ones are recorded but get no keyframes).
pub const MAX_COLS: u16 = 1000;
/// Tallest terminal emulated.
pub const MAX_ROWS: u16 = 500;

/// Plain runs shorter than this are fed as they are.
const SKIP_MIN: usize = 16 << 10;
/// A plain run is resolved when it reaches this size, bounding memory.
const DEFER_CAP: usize = 256 << 10;

/// The state of one terminal: screens, cursor, pen, modes. Feed it the bytes a program
/// wrote; ask it for the screen text or a [`Keyframe`] (an escape-sequence dump that
/// rebuilds the same state in a fresh terminal).
///
/// Bulk plain output (text, CR/LF/TAB/BS and colour changes, as `ls -lR` or `cat` produce)
/// is fast-forwarded: of a long run only the colour changes and the last `2 × rows + 1`
/// lines are emulated, which leaves exactly the state full emulation would (a line feed
/// scrolls within the full screen; `2 × rows + 1` of them push every earlier line off). The
/// fast path is taken only when the scroll margins are the full screen.
///
/// ```
/// use psm_recording::{TerminalState, TermSize};
/// let mut t = TerminalState::new(TermSize::new(20, 3))?;
/// t.feed(b"hello\r\n\x1b[1mworld\x1b[0m");
/// assert_eq!(t.lines(), vec!["hello", "world", ""]);
/// let k = t.keyframe(psm_recording::ChannelId(0));
/// let mut copy = TerminalState::from_keyframe(&k)?;
/// assert_eq!(copy.dump(), t.dump());
/// # Ok::<(), psm_recording::RecordingError>(())
/// ```
pub struct TerminalState {
    term: avt::Terminal,
    size: TermSize,
    utf8: Utf8Decoder,
    scratch: String,
    /// The current run of plain bytes, not fed yet.
    deferred: Vec<u8>,
    /// Bytes of an SGR candidate at the end of the last feed (ESC, ESC [, params).
    carry: Vec<u8>,
    skipped: u64,
}

impl std::fmt::Debug for TerminalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminalState")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Whether a size can be emulated.
pub(crate) fn valid_size(size: TermSize) -> bool {
    size.cols >= 1 && size.rows >= 1 && size.cols <= MAX_COLS && size.rows <= MAX_ROWS
}

impl TerminalState {
    /// A blank terminal of `size` (1×1 up to [`MAX_COLS`]×[`MAX_ROWS`]).
    pub fn new(size: TermSize) -> Result<Self, RecordingError> {
        if !valid_size(size) {
            return Err(RecordingError::InvalidInput {
                field: "terminal size",
                reason: format!("{size} is outside 1x1..={MAX_COLS}x{MAX_ROWS}"),
            });
        }
        let term =
            avt::Terminal::new(usize::from(size.cols), usize::from(size.rows)).map_err(|e| {
                RecordingError::InvalidInput {
                    field: "terminal size",
                    reason: e.to_string(),
                }
            })?;
        Ok(Self {
            term,
            size,
            utf8: Utf8Decoder::new(),
            scratch: String::new(),
            deferred: Vec::new(),
            carry: Vec::new(),
            skipped: 0,
        })
    }

    /// A terminal in the state a keyframe describes.
    pub fn from_keyframe(k: &Keyframe) -> Result<Self, RecordingError> {
        let mut t = Self::new(k.size)?;
        t.feed_now(&k.screen);
        Ok(t)
    }

    /// How many bytes the fast path has not had to emulate so far.
    pub fn fast_forwarded_bytes(&self) -> u64 {
        self.skipped
    }

    /// Its size.
    pub fn size(&self) -> TermSize {
        self.size
    }

    /// Changes its size (sizes outside the emulated range are clamped into it).
    pub fn resize(&mut self, size: TermSize) {
        self.settle();
        let size = TermSize::new(size.cols.clamp(1, MAX_COLS), size.rows.clamp(1, MAX_ROWS));
        self.term
            .resize(usize::from(size.cols), usize::from(size.rows));
        self.size = size;
    }

    /// Feeds bytes a program wrote to the terminal.
    pub fn feed(&mut self, data: &[u8]) {
        let mut data = data;
        let joined;
        if !self.carry.is_empty() {
            let mut v = std::mem::take(&mut self.carry);
            v.extend_from_slice(data);
            joined = v;
            data = &joined;
        }
        let mut i = 0;
        while i < data.len() {
            let (plain_end, stop) = scan_plain(data, i);
            if plain_end > i {
                self.deferred.extend_from_slice(&data[i..plain_end]);
                if self.deferred.len() >= DEFER_CAP {
                    self.resolve();
                }
            }
            match stop {
                Stop::End => break,
                Stop::Partial => {
                    // An SGR candidate cut by the end of the data: decide with the next feed.
                    self.carry.extend_from_slice(&data[plain_end..]);
                    break;
                }
                Stop::Special(n) => {
                    self.resolve();
                    self.feed_now(&data[plain_end..plain_end + n]);
                    i = plain_end + n;
                }
            }
        }
    }

    /// Feeds everything held back (deferred plain text and a partial escape sequence).
    fn settle(&mut self) {
        self.resolve();
        if !self.carry.is_empty() {
            let c = std::mem::take(&mut self.carry);
            self.feed_now(&c);
        }
    }

    fn feed_now(&mut self, bytes: &[u8]) {
        self.scratch.clear();
        self.utf8.decode(bytes, &mut self.scratch);
        if !self.scratch.is_empty() {
            self.term.feed(self.scratch.as_str());
        }
    }

    /// Feeds the deferred plain run, fast-forwarding through it when that is exact.
    fn resolve(&mut self) {
        if self.deferred.is_empty() {
            return;
        }
        let run = std::mem::take(&mut self.deferred);
        match self.plan_skip(&run) {
            None => self.feed_now(&run),
            Some((first_end, cut)) => {
                // The first line goes through normally: it finishes whatever sequence the
                // parser was in, so both paths are in the same parser state afterwards.
                self.feed_now(&run[..first_end]);
                if self.margins_are_full() {
                    let sgr = sgr_sequences(&run[first_end..cut]);
                    self.skipped += (cut - first_end) as u64;
                    self.feed_now(&sgr);
                    self.feed_now(b"\r");
                    self.feed_now(&run[cut..]);
                } else {
                    self.feed_now(&run[first_end..]);
                }
            }
        }
        self.deferred = run;
        self.deferred.clear();
        if self.deferred.capacity() > DEFER_CAP * 2 {
            self.deferred = Vec::new();
        }
    }

    /// Where to skip: `(end of the first line, cut)`, the cut being just after a CR LF and
    /// followed by at least `2 × rows + 1` line feeds.
    fn plan_skip(&self, run: &[u8]) -> Option<(usize, usize)> {
        if run.len() < SKIP_MIN {
            return None;
        }
        let first_end = run.iter().position(|&b| b == b'\n')? + 1;
        let need = 2 * usize::from(self.size.rows) + 1;
        let mut lfs = 0usize;
        let mut i = run.len();
        while i > first_end {
            i -= 1;
            if run[i] == b'\n' {
                if lfs >= need && run[i - 1] == b'\r' {
                    let cut = i + 1;
                    // Worth it only if it skips something substantial.
                    return (cut - first_end >= SKIP_MIN / 2).then_some((first_end, cut));
                }
                lfs += 1;
            }
        }
        None
    }

    fn margins_are_full(&self) -> bool {
        // avt dumps DECSTBM (`CSI top;bottom r`) exactly when the margins are not the full
        // screen; no other function it dumps ends in `r`.
        let d = self.term.dump();
        let b = d.as_bytes();
        let mut i = 0;
        while let Some(p) = b[i..].iter().position(|&c| c == 0x1b) {
            let s = i + p;
            let mut j = s + 1;
            if b.get(j) == Some(&b'[') {
                j += 1;
                while j < b.len() && (b[j].is_ascii_digit() || b[j] == b';') {
                    j += 1;
                }
                if b.get(j) == Some(&b'r') {
                    return false;
                }
            }
            i = s + 1;
        }
        true
    }

    /// The visible screen as text, one string per row, trailing spaces trimmed.
    pub fn lines(&mut self) -> Vec<String> {
        self.settle();
        self.term
            .screen()
            .visible_lines()
            .map(|l| l.text().trim_end().to_owned())
            .collect()
    }

    /// The text of the cursor's row (trailing spaces trimmed).
    pub fn cursor_line(&mut self) -> String {
        self.settle();
        let row = self.term.cursor().row;
        self.term
            .screen()
            .line(row)
            .map(|l| l.text().trim_end().to_owned())
            .unwrap_or_default()
    }

    /// Whether a full-screen program (editor, pager, `top`) has the alternate screen.
    pub fn is_alternate_screen(&mut self) -> bool {
        self.settle();
        self.term.active_screen_kind() == avt::ScreenKind::Alternate
    }

    /// Cursor `(column, row, visible)`.
    pub fn cursor(&mut self) -> (usize, usize, bool) {
        self.settle();
        let c = self.term.cursor();
        (c.col, c.row, c.visible)
    }

    /// An escape-sequence dump that rebuilds this state in a fresh terminal of the same size.
    pub fn dump(&mut self) -> String {
        self.settle();
        self.term.dump()
    }

    /// The state as a keyframe of `channel`: the dump, followed by the bytes of a UTF-8
    /// character the program has only partly written so far (at most 3).
    pub fn keyframe(&mut self, channel: ChannelId) -> Keyframe {
        let mut screen = self.dump().into_bytes();
        screen.extend_from_slice(self.utf8.pending());
        Keyframe {
            channel,
            size: self.size,
            screen,
        }
    }
}

enum Stop {
    /// The data ended inside plain bytes.
    End,
    /// The data ended inside a possible SGR sequence.
    Partial,
    /// `n` bytes that are not plain start here.
    Special(usize),
}

/// Plain bytes: printable text (any UTF-8 except C1 controls), TAB, LF, CR, BS, and SGR
/// sequences `ESC [ [0-9;:]* m`. Returns the end of the plain run starting at `i` and why it
/// stopped.
fn scan_plain(data: &[u8], mut i: usize) -> (usize, Stop) {
    while i < data.len() {
        let b = data[i];
        match b {
            0x20..=0x7e | b'\t' | b'\n' | b'\r' | 0x08 => i += 1,
            0x1b => match sgr_len(&data[i..]) {
                SgrLen::Yes(n) => i += n,
                SgrLen::Partial => return (i, Stop::Partial),
                SgrLen::No => return (i, Stop::Special(1)),
            },
            0xc2 => match data.get(i + 1) {
                Some(0x80..=0x9f) => return (i, Stop::Special(2)),
                Some(_) => i += 1,
                None => return (i, Stop::Special(1)),
            },
            0x80.. => i += 1,
            _ => return (i, Stop::Special(1)),
        }
    }
    (i, Stop::End)
}

enum SgrLen {
    Yes(usize),
    Partial,
    No,
}

fn sgr_len(s: &[u8]) -> SgrLen {
    // s[0] == ESC
    match s.get(1) {
        None => return SgrLen::Partial,
        Some(b'[') => {}
        Some(_) => return SgrLen::No,
    }
    let mut j = 2;
    while j < s.len() && j < 64 {
        match s[j] {
            b'0'..=b'9' | b';' | b':' => j += 1,
            b'm' => return SgrLen::Yes(j + 1),
            _ => return SgrLen::No,
        }
    }
    if j >= 64 { SgrLen::No } else { SgrLen::Partial }
}

/// The SGR sequences of a plain run, in order.
fn sgr_sequences(run: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = run[i..].iter().position(|&b| b == 0x1b) {
        let s = i + p;
        match sgr_len(&run[s..]) {
            SgrLen::Yes(n) => {
                out.extend_from_slice(&run[s..s + n]);
                i = s + n;
            }
            _ => i = s + 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    /// Full emulation with no fast path, as the reference.
    fn reference(size: TermSize, pieces: &[Vec<u8>]) -> String {
        let mut t = avt::Terminal::new(size.cols.into(), size.rows.into()).unwrap();
        let mut d = Utf8Decoder::new();
        for p in pieces {
            let mut s = String::new();
            d.decode(p, &mut s);
            t.feed(s.as_str());
        }
        t.dump()
    }

    fn fast(size: TermSize, pieces: &[Vec<u8>]) -> String {
        fast_counted(size, pieces).0
    }

    fn fast_counted(size: TermSize, pieces: &[Vec<u8>]) -> (String, u64) {
        let mut t = TerminalState::new(size).unwrap();
        for p in pieces {
            t.feed(p);
        }
        (t.dump(), t.fast_forwarded_bytes())
    }

    fn resplit(all: &[u8], splits: &[usize]) -> Vec<Vec<u8>> {
        let mut chunks = Vec::new();
        let mut i = 0;
        let mut k = 0;
        while i < all.len() {
            let n = splits[k % splits.len()].min(all.len() - i);
            chunks.push(all[i..i + n].to_vec());
            i += n;
            k += 1;
        }
        chunks
    }

    fn line_piece() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            8 => "[a-zA-Z0-9 ./-]{0,90}".prop_map(|s| format!("{s}\r\n").into_bytes()),
            2 => Just(b"\x1b[1;31m".to_vec()),
            2 => Just(b"\x1b[0m".to_vec()),
            1 => Just(b"\x1b[38;5;208mx\x1b[m\t|".to_vec()),
            1 => Just("é€😀\u{0301}\r\n".as_bytes().to_vec()),
            1 => Just(b"\x1b[2;5r".to_vec()),
            1 => Just(b"\x1b[r".to_vec()),
            1 => Just(b"\x1b[?1049h".to_vec()),
            1 => Just(b"\x1b[?1049l".to_vec()),
            1 => Just(b"\x1b]0;title".to_vec()),
            1 => Just(b"\x07".to_vec()),
            1 => Just(b"\x1b[5;10H".to_vec()),
            1 => Just(b"\xc2\x9b31m".to_vec()),
            1 => Just(b"\xff\xfe".to_vec()),
            1 => Just(b"\x08\x08ab\n".to_vec()),
            1 => Just(b"\x1b[4h".to_vec()),
            1 => Just(b"\x1b[?7l".to_vec()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn fast_path_equals_full_emulation(
            pieces in proptest::collection::vec(line_piece(), 0..3000),
            splits in proptest::collection::vec(1usize..9000, 1..6),
            cols in 2u16..120, rows in 1u16..40,
        ) {
            let size = TermSize::new(cols, rows);
            let all: Vec<u8> = pieces.concat();
            // Re-split the stream at arbitrary points (feeds do not align with pieces).
            let chunks = resplit(&all, &splits);
            prop_assert_eq!(fast(size, &chunks), reference(size, &chunks));
        }

        /// Long plain bursts (which take the fast path) between arbitrary specials.
        #[test]
        fn bursts_between_specials_equal_full_emulation(
            bursts in proptest::collection::vec((line_piece(), 0usize..1500, any::<u8>()), 1..8),
            splits in proptest::collection::vec(1usize..70000, 1..4),
            cols in 2u16..100, rows in 1u16..30,
        ) {
            let size = TermSize::new(cols, rows);
            let mut all = Vec::new();
            for (special, n, seed) in &bursts {
                all.extend_from_slice(special);
                for i in 0..*n {
                    let w = (i * 7 + usize::from(*seed)) % 97;
                    if i % 13 == usize::from(*seed) % 13 {
                        all.extend_from_slice(b"\x1b[1;3");
                        all.push(b'0' + (i % 8) as u8);
                        all.push(b'm');
                    }
                    all.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, w));
                    all.extend_from_slice(if i % 5 == 0 { b"\tx\x08y\r\n" } else { b"\r\n" });
                }
            }
            let chunks = resplit(&all, &splits);
            let (got, _skipped) = fast_counted(size, &chunks);
            prop_assert_eq!(got, reference(size, &chunks));
        }
    }

    #[test]
    fn bulk_plain_output_is_fast_forwarded_exactly() {
        let mut text = Vec::new();
        for i in 0..20_000 {
            text.extend_from_slice(
                format!("\x1b[01;34mdir{i}\x1b[0m -rw-r--r-- file {i}\r\n").as_bytes(),
            );
        }
        let size = TermSize::new(80, 24);
        let (got, skipped) = fast_counted(size, &[text.clone()]);
        assert_eq!(got, reference(size, &[text.clone()]));
        assert!(
            skipped > text.len() as u64 / 2,
            "fast path skipped only {skipped} bytes"
        );
    }

    #[test]
    fn keyframe_restores_state() {
        let mut t = TerminalState::new(TermSize::new(40, 10)).unwrap();
        t.feed(b"abc\x1b[?1049h\x1b[2;8r\x1b[31mvim\x1b[5;3Hx");
        let k = t.keyframe(ChannelId(3));
        let mut u = TerminalState::from_keyframe(&k).unwrap();
        assert_eq!(u.dump(), t.dump());
        t.feed(b"\x1b[?1049l");
        u.feed(b"\x1b[?1049l");
        assert_eq!(u.lines(), t.lines());
        assert_eq!(t.lines()[0], "abc");
    }
}
