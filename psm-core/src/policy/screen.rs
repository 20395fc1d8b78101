//! The terminal as the user sees it: an [`avt`] emulator fed with the target's output, and
//! the readings the tracker takes from it (the prompt before the cursor, the logical line
//! at the cursor, the bottom row of a full-screen program).

/// The largest terminal the tracker emulates; bigger sizes are clamped (memory bound:
/// two screens of `cols * rows` cells).
pub const MAX_COLS: u16 = 500;
/// See [`MAX_COLS`].
pub const MAX_ROWS: u16 = 200;

/// An emulated terminal screen.
///
/// Emulation is the tracker's one expensive step (tens of MB/s), and it only matters while
/// a line is being typed or judged. In between (a command printing megabytes), output is
/// *deferred*: kept in a bounded backlog, its alternate-screen switches noted, and replayed
/// into the emulator only when the screen is read next. The backlog holds at least two
/// screenfuls, so the lines at the cursor come out as a full emulation would show them.
pub(crate) struct Screen {
    term: avt::Terminal,
    backlog: String,
    backlog_cap: usize,
    backlog_cut: bool,
    /// The alternate-screen state at the backlog's front.
    front_alt: bool,
}

/// Notices alternate-screen switches (`ESC [ ? 1049 h`, `1047`, `47`, and `l`) in deferred
/// output without emulating it.
#[derive(Clone, Copy, Debug, Default)]
struct AltScanner {
    state: u8,
    param: u32,
    alt: bool,
}

/// The alternate-screen state after `text`, starting from `alt`.
fn scan_alt(alt: bool, text: &str) -> bool {
    let mut scanner = AltScanner {
        alt,
        ..AltScanner::default()
    };
    for c in text.chars() {
        scanner.feed(c);
    }
    scanner.alt
}

impl AltScanner {
    #[inline]
    fn feed(&mut self, c: char) {
        self.state = match (self.state, c) {
            (_, '\x1b') => 1,
            (1, '[') => 2,
            (2, '?') => {
                self.param = 0;
                3
            }
            (3, d @ '0'..='9') => {
                self.param = self
                    .param
                    .saturating_mul(10)
                    .saturating_add(u32::from(d) - u32::from('0'));
                3
            }
            (3, f @ ('h' | 'l')) => {
                if matches!(self.param, 47 | 1047 | 1049) {
                    self.alt = f == 'h';
                }
                0
            }
            _ => 0,
        };
    }
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (cols, rows) = self.term.size();
        f.debug_struct("Screen")
            .field("cols", &cols)
            .field("rows", &rows)
            .finish_non_exhaustive()
    }
}

/// How much deferred output is kept: two screenfuls, at least 16 KiB.
fn backlog_cap(cols: usize, rows: usize) -> usize {
    (cols * rows * 2).max(16 * 1024)
}

fn clamp(cols: u16, rows: u16) -> (usize, usize) {
    (
        usize::from(cols.clamp(1, MAX_COLS)),
        usize::from(rows.clamp(1, MAX_ROWS)),
    )
}

impl Screen {
    pub(crate) fn new(cols: u16, rows: u16) -> Self {
        let (cols, rows) = clamp(cols, rows);
        let term = match avt::Terminal::new(cols, rows) {
            Ok(t) => t,
            // Unreachable: clamp() keeps both at least 1. Fall back to the classic size
            // rather than panic.
            Err(_) => Self::fallback(),
        };
        Self {
            term,
            backlog: String::new(),
            backlog_cap: backlog_cap(cols, rows),
            backlog_cut: false,
            front_alt: false,
        }
    }

    #[allow(clippy::expect_used)]
    fn fallback() -> avt::Terminal {
        avt::Terminal::new(80, 24).expect("80x24 is a valid terminal size")
    }

    pub(crate) fn resize(&mut self, cols: u16, rows: u16) {
        self.catch_up();
        let (cols, rows) = clamp(cols, rows);
        self.term.resize(cols, rows);
        self.backlog_cap = backlog_cap(cols, rows);
    }

    /// Emulates one character now.
    #[inline]
    pub(crate) fn feed(&mut self, c: char) {
        if !self.backlog.is_empty() {
            self.catch_up();
        }
        self.term.feed(c);
    }

    /// Keeps one character for later (see the type's docs).
    #[inline]
    pub(crate) fn defer(&mut self, c: char) {
        if self.backlog.is_empty() {
            self.front_alt = self.alternate_now();
        }
        self.backlog.push(c);
        if self.backlog.len() > 2 * self.backlog_cap {
            let mut cut = self.backlog.len() - self.backlog_cap;
            while !self.backlog.is_char_boundary(cut) {
                cut += 1;
            }
            self.front_alt = scan_alt(self.front_alt, &self.backlog[..cut]);
            self.backlog.drain(..cut);
            self.backlog_cut = true;
        }
    }

    /// Replays the deferred output into the emulator.
    pub(crate) fn catch_up(&mut self) {
        if self.backlog.is_empty() {
            return;
        }
        let backlog = std::mem::take(&mut self.backlog);
        let start = if self.backlog_cut {
            // The front was dropped mid-stream: start at a line boundary, in the
            // alternate-screen state the dropped output left.
            backlog.find('\n').map_or(backlog.len(), |i| i + 1)
        } else {
            0
        };
        let alt = scan_alt(self.front_alt, &backlog[..start]);
        if alt != self.alternate_now() {
            self.term
                .feed(if alt { "\x1b[?1049h" } else { "\x1b[?1049l" });
        }
        self.term.feed(&backlog[start..]);
        self.backlog = backlog;
        self.backlog.clear();
        self.backlog_cut = false;
    }

    fn alternate_now(&self) -> bool {
        self.term.active_screen_kind() == avt::ScreenKind::Alternate
    }

    #[cfg(test)]
    pub(crate) fn feed_str(&mut self, s: &str) {
        self.term.feed(s);
    }

    /// Whether a full-screen program (vi, less, top) has the alternate screen up.
    pub(crate) fn alternate(&mut self) -> bool {
        self.catch_up();
        self.alternate_now()
    }

    fn cursor(&self) -> (usize, usize) {
        let c = self.term.cursor();
        let (cols, rows) = self.term.size();
        (c.col.min(cols), c.row.min(rows.saturating_sub(1)))
    }

    /// The rows of the logical line (soft wraps joined) holding the cursor.
    fn logical_rows(&self) -> (usize, usize) {
        let screen = self.term.screen();
        let (_, row) = self.cursor();
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
    /// column `end_col` if given; at most `max` characters.
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

    /// The logical line at the cursor, up to the cursor: what a prompt looks like when the
    /// user starts typing after it.
    pub(crate) fn before_cursor(&mut self, out: &mut Vec<char>, max: usize) {
        out.clear();
        self.catch_up();
        let (first, _) = self.logical_rows();
        let (col, row) = self.cursor();
        self.collect(first, row, Some(col), out, max);
    }

    /// The whole logical line at the cursor, trailing blanks removed.
    pub(crate) fn line_at_cursor(&mut self, out: &mut Vec<char>, max: usize) {
        out.clear();
        self.catch_up();
        let (first, last) = self.logical_rows();
        self.collect(first, last, None, out, max);
        while out.last().is_some_and(|c| c.is_whitespace()) {
            out.pop();
        }
    }

    /// The bottom row, trailing blanks removed (vi's command line).
    pub(crate) fn bottom_row(&mut self, out: &mut Vec<char>, max: usize) {
        out.clear();
        self.catch_up();
        let rows = self.term.size().1;
        let last = rows.saturating_sub(1);
        self.collect(last, last, None, out, max);
        while out.last().is_some_and(|c| c.is_whitespace()) {
            out.pop();
        }
    }

    /// Whether the cursor is on the bottom row.
    pub(crate) fn cursor_on_bottom_row(&mut self) -> bool {
        self.catch_up();
        self.cursor().1 + 1 >= self.term.size().1
    }
}

/// Strips the prompt from a screen line: the prompt captured when the user started the
/// line if the line still begins with it, else the text up to the first usual prompt end
/// (`$ `, `# `, `> `, `% `) among the first 256 characters, else nothing. The rest is
/// trimmed.
pub(crate) fn strip_prompt<'a>(line: &'a [char], prompt: &[char]) -> &'a [char] {
    let rest = if !prompt.is_empty() && line.starts_with(prompt) {
        &line[prompt.len()..]
    } else if !prompt.is_empty() && prompt.starts_with(line) {
        // The line is the prompt without its trailing blanks: nothing was typed.
        &[]
    } else {
        let window = &line[..line.len().min(256)];
        match window
            .windows(2)
            .position(|w| matches!(w[0], '$' | '#' | '>' | '%') && w[1] == ' ')
        {
            Some(p) => &line[p + 2..],
            None => line,
        }
    };
    trim(rest)
}

pub(crate) fn trim(s: &[char]) -> &[char] {
    let start = s.iter().position(|c| !c.is_whitespace()).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|c| !c.is_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[char]) -> String {
        v.iter().collect()
    }

    #[test]
    fn reads_wrapped_logical_line() {
        let mut sc = Screen::new(10, 4);
        sc.feed_str("out\r\n$ abcdefghijklmnop");
        let mut v = Vec::new();
        sc.line_at_cursor(&mut v, 100);
        assert_eq!(s(&v), "$ abcdefghijklmnop");
        sc.before_cursor(&mut v, 100);
        assert_eq!(s(&v), "$ abcdefghijklmnop");
        sc.feed_str("\x1b[5D");
        sc.before_cursor(&mut v, 100);
        assert_eq!(s(&v), "$ abcdefghijk");
        sc.line_at_cursor(&mut v, 5);
        assert_eq!(v.len(), 5);
    }

    #[test]
    fn prompt_stripping() {
        let line: Vec<char> = "user@h:~$ ls -l".chars().collect();
        let prompt: Vec<char> = "user@h:~$ ".chars().collect();
        assert_eq!(s(strip_prompt(&line, &prompt)), "ls -l");
        assert_eq!(s(strip_prompt(&line, &[])), "ls -l");
        let other: Vec<char> = "other> ".chars().collect();
        assert_eq!(s(strip_prompt(&line, &other)), "ls -l");
        let bare: Vec<char> = "ls -l".chars().collect();
        assert_eq!(s(strip_prompt(&bare, &other)), "ls -l");
    }

    #[test]
    fn deferred_output_reads_like_emulated_output() {
        let mut text = String::new();
        for i in 0..5000 {
            text.push_str(&format!("\x1b[1mline\x1b[0m {i} of a long listing\r\n"));
            if i == 100 {
                text.push_str("\x1b[?1049hfull screen\x1b[?1049l");
            }
        }
        text.push_str("user@host:~$ ls -l");
        for alt_at_end in [false, true] {
            let mut text = text.clone();
            if alt_at_end {
                text.push_str("\x1b[?1049h\x1b[24;1H:!ls");
            }
            let mut live = Screen::new(80, 24);
            let mut deferred = Screen::new(80, 24);
            for c in text.chars() {
                live.feed(c);
                deferred.defer(c);
            }
            assert!(deferred.backlog.len() <= 2 * deferred.backlog_cap);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            live.line_at_cursor(&mut a, 1000);
            deferred.line_at_cursor(&mut b, 1000);
            assert_eq!(s(&a), s(&b));
            assert_eq!(live.alternate(), alt_at_end);
            assert_eq!(deferred.alternate(), alt_at_end);
            live.before_cursor(&mut a, 1000);
            deferred.before_cursor(&mut b, 1000);
            assert_eq!(s(&a), s(&b));
        }
    }

    #[test]
    fn sizes_are_clamped() {
        let mut sc = Screen::new(0, 0);
        sc.feed_str("x");
        sc.resize(u16::MAX, u16::MAX);
        assert_eq!(
            sc.term.size(),
            (usize::from(MAX_COLS), usize::from(MAX_ROWS))
        );
    }
}
