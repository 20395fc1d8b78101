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
/// The least output [`TerminalState::defer`] keeps.
const BACKLOG_MIN: usize = 16 << 10;

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
/// A reader that looks at the screen only now and then (the command tracker reads it while a
/// line is typed or judged, echo-off detection when the user types) can go further with
/// [`defer`](Self::defer): output is kept in a bounded backlog, its alternate-screen switches
/// noted, and emulated only when the state is read next. The backlog holds at least two
/// screenfuls, so the lines at the cursor come out as full emulation would show them.
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
    /// Deferred output, not emulated yet (see [`TerminalState::defer`]).
    backlog: Vec<u8>,
    /// The backlog's front was dropped.
    backlog_cut: bool,
    /// The alternate-screen state at the backlog's front.
    front_alt: bool,
    /// How much deferred output is kept, if not two screenfuls.
    backlog_keep: Option<usize>,
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

/// `size` moved into the emulated range.
fn clamp_size(size: TermSize) -> TermSize {
    TermSize::new(size.cols.clamp(1, MAX_COLS), size.rows.clamp(1, MAX_ROWS))
}

/// How much deferred output is kept by default: two screenfuls, at least 16 KiB.
fn backlog_cap(size: TermSize) -> usize {
    (usize::from(size.cols) * usize::from(size.rows) * 2).max(BACKLOG_MIN)
}

/// The least a reader may ask [`TerminalState::defer`] to keep.
const KEEP_MIN: usize = 256;

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
        Ok(Self::with_terminal(term, size))
    }

    /// A blank terminal of `size` moved into the emulated range (1×1 up to
    /// [`MAX_COLS`]×[`MAX_ROWS`]), for callers that take sizes from a peer and must not fail.
    pub fn clamped(size: TermSize) -> Self {
        let size = clamp_size(size);
        match avt::Terminal::new(usize::from(size.cols), usize::from(size.rows)) {
            Ok(term) => Self::with_terminal(term, size),
            // Unreachable: clamp_size keeps both at least 1. The classic size rather than a
            // panic.
            Err(_) => Self::with_terminal(Self::classic(), TermSize::new(80, 24)),
        }
    }

    #[allow(clippy::expect_used)]
    fn classic() -> avt::Terminal {
        avt::Terminal::new(80, 24).expect("80x24 is a valid terminal size")
    }

    fn with_terminal(term: avt::Terminal, size: TermSize) -> Self {
        Self {
            term,
            size,
            utf8: Utf8Decoder::new(),
            scratch: String::new(),
            deferred: Vec::new(),
            carry: Vec::new(),
            skipped: 0,
            backlog: Vec::new(),
            backlog_cut: false,
            front_alt: false,
            backlog_keep: None,
        }
    }

    /// Sets how much output [`defer`](Self::defer) keeps (at least 256 bytes). The default,
    /// two screenfuls and at least 16 KiB, reads every line at the cursor as full emulation
    /// would; a reader that needs only the last line or two (echo-off detection) keeps less,
    /// so that reading after bulk output costs little.
    pub fn with_backlog(mut self, bytes: usize) -> Self {
        self.backlog_keep = Some(bytes.max(KEEP_MIN));
        self
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
        let size = clamp_size(size);
        self.term
            .resize(usize::from(size.cols), usize::from(size.rows));
        self.size = size;
    }

    /// Feeds bytes a program wrote to the terminal.
    pub fn feed(&mut self, data: &[u8]) {
        self.catch_up();
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

    /// Keeps bytes a program wrote for later: they are emulated when the state is read or
    /// more output is [fed](Self::feed). Of a long run of deferred output only the last part
    /// (two screenfuls and at least 16 KiB, or what [`with_backlog`](Self::with_backlog)
    /// sets) is emulated, from a line start, in the alternate-screen state the dropped part
    /// left: the lines at the cursor read as with full emulation, while what scrolled away
    /// is never emulated at all.
    pub fn defer(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.backlog.is_empty() {
            self.settle();
            self.front_alt = self.alternate_now();
        }
        self.backlog.extend_from_slice(data);
        let cap = self.backlog_keep.unwrap_or_else(|| backlog_cap(self.size));
        if self.backlog.len() > 2 * cap {
            let cut = self.backlog.len() - cap;
            self.front_alt = scan_alt(self.front_alt, &self.backlog[..cut]);
            self.backlog.drain(..cut);
            self.backlog_cut = true;
        }
    }

    /// Emulates the deferred output.
    fn catch_up(&mut self) {
        if self.backlog.is_empty() {
            return;
        }
        let backlog = std::mem::take(&mut self.backlog);
        let mut start = 0;
        if std::mem::take(&mut self.backlog_cut) {
            // The front was dropped mid-stream: start at a line boundary, in the
            // alternate-screen state the dropped output left. A character the decoder held
            // back was completed by dropped bytes.
            start = backlog
                .iter()
                .position(|&b| b == b'\n')
                .map_or(backlog.len(), |i| i + 1);
            self.utf8 = Utf8Decoder::new();
            let alt = scan_alt(self.front_alt, &backlog[..start]);
            if alt != self.alternate_now() {
                self.feed_now(if alt { b"\x1b[?1049h" } else { b"\x1b[?1049l" });
            }
        }
        self.feed(&backlog[start..]);
        self.backlog = backlog;
        self.backlog.clear();
    }

    /// Feeds everything held back (deferred output, deferred plain text and a partial
    /// escape sequence).
    fn settle(&mut self) {
        self.catch_up();
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
        self.alternate_now()
    }

    fn alternate_now(&self) -> bool {
        self.term.active_screen_kind() == avt::ScreenKind::Alternate
    }

    /// The cursor, inside the screen (avt leaves the column at the width after the last
    /// column is written).
    fn cursor_cell(&self) -> (usize, usize) {
        let c = self.term.cursor();
        let (cols, rows) = self.term.size();
        (c.col.min(cols), c.row.min(rows.saturating_sub(1)))
    }

    /// The rows of the logical line (soft wraps joined) holding the cursor.
    fn logical_rows(&self) -> (usize, usize) {
        let screen = self.term.screen();
        let (_, row) = self.cursor_cell();
        let mut first = row;
        while first > 0 && screen.line(first - 1).is_some_and(avt::Line::is_wrapped) {
            first -= 1;
        }
        let mut last = row;
        while screen.line(last).is_some_and(avt::Line::is_wrapped)
            && screen.line(last + 1).is_some()
        {
            last += 1;
        }
        (first, last)
    }

    /// Appends to `out` the characters of rows `first..=last`, the last one only up to
    /// column `end_col` if given; at most `max` characters. A wide character counts once.
    fn collect(
        &self,
        first: usize,
        last: usize,
        end_col: Option<usize>,
        out: &mut Vec<char>,
        max: usize,
    ) {
        let screen = self.term.screen();
        for (i, line) in screen
            .visible_lines()
            .enumerate()
            .skip(first)
            .take(last + 1 - first)
        {
            let cells = line.cells();
            let cells = match end_col {
                Some(end) if i == last => &cells[..end.min(cells.len())],
                _ => cells,
            };
            for cell in cells {
                if cell.width() == 0 {
                    continue;
                }
                if out.len() >= max {
                    return;
                }
                out.push(cell.char());
            }
        }
    }

    /// Sets `out` to the logical line at the cursor (soft-wrapped rows joined) up to the
    /// cursor, at most `max` characters: what a prompt looks like when the user starts
    /// typing after it.
    pub fn line_before_cursor(&mut self, out: &mut Vec<char>, max: usize) {
        out.clear();
        self.settle();
        let (first, _) = self.logical_rows();
        let (col, row) = self.cursor_cell();
        self.collect(first, row, Some(col), out, max);
    }

    /// Sets `out` to the whole logical line at the cursor (soft-wrapped rows joined),
    /// trailing blanks removed, at most `max` characters.
    pub fn line_at_cursor(&mut self, out: &mut Vec<char>, max: usize) {
        out.clear();
        self.settle();
        let (first, last) = self.logical_rows();
        self.collect(first, last, None, out, max);
        trim_end(out);
    }

    /// Sets `out` to the bottom row (a full-screen editor's command line), trailing blanks
    /// removed, at most `max` characters.
    pub fn bottom_row(&mut self, out: &mut Vec<char>, max: usize) {
        out.clear();
        self.settle();
        let last = usize::from(self.size.rows).saturating_sub(1);
        self.collect(last, last, None, out, max);
        trim_end(out);
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

fn trim_end(out: &mut Vec<char>) {
    while out.last().is_some_and(|c| c.is_whitespace()) {
        out.pop();
    }
}

/// The alternate-screen state after `bytes`, starting from `alt`: notices the switches
/// (`ESC [ ? 1049 h`, `1047`, `47`, and `l`) in deferred output without emulating it.
fn scan_alt(mut alt: bool, bytes: &[u8]) -> bool {
    let mut state = 0u8;
    let mut param = 0u32;
    for &b in bytes {
        state = match (state, b) {
            (_, 0x1b) => 1,
            (1, b'[') => 2,
            (2, b'?') => {
                param = 0;
                3
            }
            (3, d @ b'0'..=b'9') => {
                param = param.saturating_mul(10).saturating_add(u32::from(d - b'0'));
                3
            }
            (3, f @ (b'h' | b'l')) => {
                if matches!(param, 47 | 1047 | 1049) {
                    alt = f == b'h';
                }
                0
            }
            _ => 0,
        };
    }
    alt
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

    fn text(v: &[char]) -> String {
        v.iter().collect()
    }

    #[test]
    fn reads_wrapped_logical_line() {
        let mut t = TerminalState::new(TermSize::new(10, 4)).unwrap();
        t.feed(b"out\r\n$ abcdefghijklmnop");
        let mut v = Vec::new();
        t.line_at_cursor(&mut v, 100);
        assert_eq!(text(&v), "$ abcdefghijklmnop");
        t.line_before_cursor(&mut v, 100);
        assert_eq!(text(&v), "$ abcdefghijklmnop");
        t.feed(b"\x1b[5D");
        t.line_before_cursor(&mut v, 100);
        assert_eq!(text(&v), "$ abcdefghijk");
        t.line_at_cursor(&mut v, 5);
        assert_eq!(v.len(), 5);
        t.feed(b"\x1b[4;1H:!ls   ");
        t.bottom_row(&mut v, 100);
        assert_eq!(text(&v), ":!ls");
    }

    #[test]
    fn deferred_output_reads_like_emulated_output() {
        let mut stream = String::new();
        for i in 0..5000 {
            stream.push_str(&format!("\x1b[1mline\x1b[0m {i} of a long listing\r\n"));
            if i == 100 {
                stream.push_str("\x1b[?1049hfull screen\x1b[?1049l");
            }
        }
        stream.push_str("user@host:~$ ls -l");
        for alt_at_end in [false, true] {
            let mut stream = stream.clone();
            if alt_at_end {
                stream.push_str("\x1b[?1049h\x1b[24;1H:!ls");
            }
            let size = TermSize::new(80, 24);
            let mut live = TerminalState::new(size).unwrap();
            let mut deferred = TerminalState::new(size).unwrap();
            // Pieces that cut escape sequences and characters.
            for piece in stream.as_bytes().chunks(7) {
                live.feed(piece);
                deferred.defer(piece);
                assert!(deferred.backlog.len() <= 2 * backlog_cap(size));
            }
            let (mut a, mut b) = (Vec::new(), Vec::new());
            live.line_at_cursor(&mut a, 1000);
            deferred.line_at_cursor(&mut b, 1000);
            assert_eq!(text(&a), text(&b));
            assert_eq!(live.is_alternate_screen(), alt_at_end);
            assert_eq!(deferred.is_alternate_screen(), alt_at_end);
            live.line_before_cursor(&mut a, 1000);
            deferred.line_before_cursor(&mut b, 1000);
            assert_eq!(text(&a), text(&b));
        }
    }

    #[test]
    fn clamped_sizes() {
        let mut t = TerminalState::clamped(TermSize::new(0, 0));
        assert_eq!(t.size(), TermSize::new(1, 1));
        t.feed(b"x");
        t.resize(TermSize::new(u16::MAX, u16::MAX));
        assert_eq!(t.size(), TermSize::new(MAX_COLS, MAX_ROWS));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Output deferred (less than the backlog keeps) and then read is emulated exactly
        /// as output fed at once, however feeds and defers interleave.
        #[test]
        fn deferred_then_read_equals_fed(
            pieces in proptest::collection::vec(line_piece(), 0..60),
            splits in proptest::collection::vec(1usize..200, 1..6),
            defer_mask in any::<u64>(),
            cols in 2u16..120, rows in 1u16..40,
        ) {
            let size = TermSize::new(cols, rows);
            let all: Vec<u8> = pieces.concat();
            let chunks = resplit(&all, &splits);
            let mut t = TerminalState::new(size).unwrap();
            for (i, c) in chunks.iter().enumerate() {
                if defer_mask >> (i % 64) & 1 == 1 {
                    t.defer(c);
                } else {
                    t.feed(c);
                }
            }
            prop_assert_eq!(t.dump(), reference(size, &chunks));
        }
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
