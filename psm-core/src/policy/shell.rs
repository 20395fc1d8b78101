//! From one command line to the texts command rules are matched against.
//!
//! A submitted line is cut into *simple commands* ([`command_units`]), and each is judged on
//! its own: an `allow` rule covers only the simple command it matched. A simple command is
//! split off at `;`, `&`, `&&`, `|`, `||`, newlines and parentheses, or nested in `$(...)`,
//! backquotes, `<(...)`, the string of `sh -c`, `bash -c`, `su -c`, `eval`, `env -S` or
//! `ssh HOST`. Its *forms* are what rules match:
//!
//! 1. the command *normalised*: quotes and backslashes removed the way the shell removes
//!    them (`'r'm`, `"rm"`, `r\m` and `\rm` are all `rm`), words joined by one space
//!    (`rm  -rf` is `rm -rf`), redirections dropped (`2>/dev/null`), leading assignments
//!    dropped (`LC_ALL=C rm`), the command word reduced to its base name (`/bin/rm` is
//!    `rm`), and absolute paths normalised lexically (`/tmp/../etc` is `/etc`, `//x/./y`
//!    is `/x/y`);
//! 2. the command run by a wrapper such as `sudo`, `env`, `nohup`, `nice`, `timeout`,
//!    `xargs`, `command`, `exec`, `busybox` (`sudo -u root rm -rf /` also yields
//!    `rm -rf /`).
//!
//! This is a lexer, not a shell: it does not expand variables, aliases, globs or
//! functions (see `docs/policy.md` for what that leaves uncaught). Everything is bounded
//! ([`MAX_COMMANDS`], [`MAX_FORMS`], [`MAX_DEPTH`], 256 words per command); a line that
//! goes past a bound is reported [`CommandUnits::cut`], so that the caller fails closed
//! rather than judging a part of it.

/// The most forms one line yields (over all its simple commands).
pub const MAX_FORMS: usize = 4096;
/// The most simple commands judged in one line.
pub const MAX_COMMANDS: usize = 1024;
/// How deep nested commands and wrappers are followed.
pub const MAX_DEPTH: usize = 8;
/// The most words kept per simple command.
const MAX_WORDS: usize = 256;
/// The most bytes of forms one line yields.
const MAX_FORM_BYTES: usize = 4 << 20;

/// A command line cut into the simple commands the engine judges one by one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandUnits {
    /// The line itself, trimmed, `\`-newline continuations joined.
    pub line: String,
    /// One entry per simple command, nested ones included, in the order found: its
    /// normalised forms (the command as written, then what the wrappers in it run).
    pub commands: Vec<Vec<String>>,
    /// Part of the line was not followed: more simple commands, forms, words or nesting
    /// than the bounds. A caller should not let an `allow` pass such a line.
    pub cut: bool,
    /// The line uses interactive history expansion (`!!`, `!$`, `!-2`, `!rm`, `^a^b` at the
    /// start, or the `fc` command): an interactive shell runs text the line does not show.
    pub history_expansion: bool,
}

/// Cuts `line` into its simple commands and their normalised forms.
///
/// ```
/// # use psm_core::policy::command_units;
/// let u = command_units("rm -rf /tmp/../etc; sudo shutdown -h now");
/// assert_eq!(u.commands[0], ["rm -rf /etc"]);
/// assert_eq!(u.commands[1], ["sudo shutdown -h now", "shutdown -h now"]);
/// assert!(!u.cut && !u.history_expansion);
/// assert!(command_units("sudo !!").history_expansion);
/// ```
pub fn command_units(line: &str) -> CommandUnits {
    let raw = line.replace("\\\n", "");
    let raw = raw.trim();
    let mut units = Units::default();
    if !raw.is_empty() {
        units.history |= raw.starts_with('^');
        parse_line(raw, 0, &mut units);
    }
    CommandUnits {
        line: raw.to_owned(),
        commands: units.commands,
        cut: units.cut,
        history_expansion: units.history,
    }
}

/// The forms of `line` that command rules are matched against, without duplicates, the
/// line itself first, then every simple command's forms (at most [`MAX_FORMS`]). Rules are
/// judged per simple command ([`command_units`]); this flat list is for display and tests.
///
/// ```
/// # use psm_core::policy::command_forms;
/// let forms = command_forms("cd / && sudo -u root '/bin/r'm  -rf / 2>/dev/null");
/// assert!(forms.iter().any(|f| f == "rm -rf /"));
/// assert!(forms.iter().any(|f| f == "cd /"));
/// ```
pub fn command_forms(line: &str) -> Vec<String> {
    let u = command_units(line);
    let mut out = Vec::new();
    if u.line.is_empty() {
        return out;
    }
    out.push(u.line);
    for form in u.commands.into_iter().flatten() {
        if out.len() >= MAX_FORMS {
            break;
        }
        if !out.contains(&form) {
            out.push(form);
        }
    }
    out
}

/// The simple commands found so far, and whether a bound cut the line.
#[derive(Default)]
struct Units {
    commands: Vec<Vec<String>>,
    forms: usize,
    bytes: usize,
    cut: bool,
    history: bool,
}

impl Units {
    /// Opens a new simple command; false (and `cut`) past [`MAX_COMMANDS`].
    fn open(&mut self) -> bool {
        if self.commands.len() >= MAX_COMMANDS {
            self.cut = true;
            return false;
        }
        self.commands.push(Vec::new());
        true
    }

    /// Adds a form to the open simple command.
    fn push(&mut self, form: String) {
        if form.is_empty() {
            return;
        }
        if self.forms >= MAX_FORMS || self.bytes + form.len() > MAX_FORM_BYTES {
            self.cut = true;
            return;
        }
        let Some(cur) = self.commands.last_mut() else {
            return;
        };
        if !cur.contains(&form) {
            self.forms += 1;
            self.bytes += form.len();
            cur.push(form);
        }
    }
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Sep,
    Redirect,
}

fn parse_line(src: &str, depth: usize, out: &mut Units) {
    if depth > MAX_DEPTH {
        out.cut = true;
        return;
    }
    let mut toks = Vec::new();
    let mut nested = Vec::new();
    lex(src, &mut toks, &mut nested, &mut out.history);

    let mut words: Vec<String> = Vec::new();
    let mut skip_next_word = false;
    for tok in toks {
        match tok {
            Tok::Word(w) => {
                if skip_next_word {
                    skip_next_word = false;
                } else if words.len() < MAX_WORDS {
                    words.push(w);
                } else {
                    out.cut = true;
                }
            }
            Tok::Redirect => skip_next_word = true,
            Tok::Sep => {
                skip_next_word = false;
                simple_command(&words, depth, true, out);
                words.clear();
            }
        }
    }
    simple_command(&words, depth, true, out);
    for n in nested {
        parse_line(&n, depth + 1, out);
    }
}

/// Shell words that open or continue a compound command; the command follows them.
const RESERVED: [&str; 13] = [
    "!", "{", "}", "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "time",
];

fn is_assignment(w: &str) -> bool {
    let Some(eq) = w.find('=') else { return false };
    let name = w[..eq].strip_suffix('+').unwrap_or(&w[..eq]);
    let name = match name.find('[') {
        Some(b) if name.ends_with(']') => &name[..b],
        _ => name,
    };
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Appends `w`, an absolute path normalised lexically: `//` and `/./` collapse, `..` takes
/// the segment before it away (never above `/`), a trailing `/` stays. The shell hands the
/// path on as written and the kernel resolves it this way (symbolic links aside), so a
/// rule on `/tmp/*` must not match `/tmp/../etc`.
fn push_normalised(form: &mut String, w: &str) {
    if !w.starts_with('/') || !(w.contains("//") || w.contains("/.")) {
        form.push_str(w);
        return;
    }
    let mut parts: Vec<&str> = Vec::new();
    for seg in w.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    for p in &parts {
        form.push('/');
        form.push_str(p);
    }
    let dir = w.ends_with('/') || w.ends_with("/.") || w.ends_with("/..");
    if parts.is_empty() || dir {
        form.push('/');
    }
}

fn basename(w: &str) -> &str {
    let t = w.trim_end_matches('/');
    if t.is_empty() {
        return w;
    }
    t.rsplit('/').next().unwrap_or(t)
}

/// A command that runs another command: how to find it.
struct Wrapper {
    name: &'static str,
    /// Options that take the next word as their argument.
    opts_with_arg: &'static [&'static str],
    /// Positional words between the options and the command (`timeout DURATION cmd`).
    positional: usize,
}

const WRAPPERS: &[Wrapper] = &[
    Wrapper {
        name: "sudo",
        opts_with_arg: &[
            "-u", "-g", "-p", "-C", "-D", "-h", "-r", "-t", "-U", "-T", "-R",
        ],
        positional: 0,
    },
    Wrapper {
        name: "doas",
        opts_with_arg: &["-u", "-C"],
        positional: 0,
    },
    Wrapper {
        name: "env",
        opts_with_arg: &["-u", "-C", "--unset", "--chdir"],
        positional: 0,
    },
    Wrapper {
        name: "command",
        opts_with_arg: &[],
        positional: 0,
    },
    Wrapper {
        name: "builtin",
        opts_with_arg: &[],
        positional: 0,
    },
    Wrapper {
        name: "exec",
        opts_with_arg: &["-a"],
        positional: 0,
    },
    Wrapper {
        name: "nohup",
        opts_with_arg: &[],
        positional: 0,
    },
    Wrapper {
        name: "setsid",
        opts_with_arg: &[],
        positional: 0,
    },
    Wrapper {
        name: "unbuffer",
        opts_with_arg: &[],
        positional: 0,
    },
    Wrapper {
        name: "time",
        opts_with_arg: &["-f", "-o", "--format", "--output"],
        positional: 0,
    },
    Wrapper {
        name: "nice",
        opts_with_arg: &["-n", "--adjustment"],
        positional: 0,
    },
    Wrapper {
        name: "ionice",
        opts_with_arg: &["-c", "-n", "-p", "-u", "-P"],
        positional: 0,
    },
    Wrapper {
        name: "timeout",
        opts_with_arg: &["-s", "-k", "--signal", "--kill-after"],
        positional: 1,
    },
    Wrapper {
        name: "stdbuf",
        opts_with_arg: &["-i", "-o", "-e"],
        positional: 0,
    },
    Wrapper {
        name: "chroot",
        opts_with_arg: &["--userspec", "--groups"],
        positional: 1,
    },
    Wrapper {
        name: "taskset",
        opts_with_arg: &[],
        positional: 1,
    },
    Wrapper {
        name: "chrt",
        opts_with_arg: &[],
        positional: 1,
    },
    Wrapper {
        name: "flock",
        opts_with_arg: &["-w", "-E", "--timeout", "--conflict-exit-code"],
        positional: 1,
    },
    Wrapper {
        name: "xargs",
        opts_with_arg: &["-I", "-n", "-P", "-d", "-L", "-s", "-a", "-E"],
        positional: 0,
    },
    Wrapper {
        name: "watch",
        opts_with_arg: &["-n", "--interval"],
        positional: 0,
    },
    Wrapper {
        name: "strace",
        opts_with_arg: &["-o", "-e", "-p", "-s", "-u"],
        positional: 0,
    },
    Wrapper {
        name: "busybox",
        opts_with_arg: &[],
        positional: 0,
    },
    Wrapper {
        name: "ssh",
        opts_with_arg: &[
            "-b", "-c", "-D", "-E", "-e", "-F", "-I", "-i", "-J", "-L", "-l", "-m", "-O", "-o",
            "-p", "-Q", "-R", "-S", "-W", "-w", "-B",
        ],
        positional: 1,
    },
];

const SHELLS: [&str; 8] = ["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish"];

/// Adds the forms of one simple command: to a new entry when `new`, else (a command run
/// by a wrapper) to the open one.
fn simple_command(words: &[String], depth: usize, new: bool, out: &mut Units) {
    let mut i = 0;
    while i < words.len() && (is_assignment(&words[i]) || RESERVED.contains(&words[i].as_str())) {
        i += 1;
    }
    let words = &words[i..];
    let Some(first) = words.first() else { return };
    if depth > MAX_DEPTH {
        out.cut = true;
        return;
    }
    if new && !out.open() {
        return;
    }
    let name = basename(first);
    if name == "fc" {
        // `fc -s` runs a history entry again; plain `fc` runs what the editor saved.
        out.history = true;
    }

    let mut form = String::with_capacity(words.iter().map(|w| w.len() + 1).sum());
    form.push_str(name);
    for w in &words[1..] {
        form.push(' ');
        push_normalised(&mut form, w);
    }
    out.push(form);

    let rest = &words[1..];
    if SHELLS.contains(&name) {
        // `bash -c STRING`, `bash -lc STRING`, `sh -ec STRING`.
        if let Some(pos) = rest
            .iter()
            .position(|w| w.starts_with('-') && !w.starts_with("--") && w[1..].contains('c'))
            && let Some(s) = rest.get(pos + 1)
        {
            parse_line(s, depth + 1, out);
        }
        return;
    }
    if name == "su" || name == "runuser" {
        let mut it = rest.iter();
        while let Some(w) = it.next() {
            if let Some(s) = w.strip_prefix("--command=") {
                parse_line(s, depth + 1, out);
            } else if (w == "-c" || w == "--command")
                && let Some(s) = it.next()
            {
                parse_line(s, depth + 1, out);
            }
        }
        return;
    }
    if name == "eval" {
        parse_line(&rest.join(" "), depth + 1, out);
        return;
    }
    if name == "env" {
        let mut it = rest.iter();
        while let Some(w) = it.next() {
            if let Some(s) = w.strip_prefix("--split-string=") {
                parse_line(s, depth + 1, out);
            } else if (w == "-S" || w == "--split-string")
                && let Some(s) = it.next()
            {
                parse_line(s, depth + 1, out);
            }
        }
    }
    let Some(wrapper) = WRAPPERS.iter().find(|w| w.name == name) else {
        return;
    };
    let mut j = 0;
    while j < rest.len() {
        let w = &rest[j];
        if w == "--" {
            j += 1;
            break;
        }
        if w.starts_with('-') && w.len() > 1 {
            j += if wrapper.opts_with_arg.contains(&w.as_str()) {
                2
            } else {
                1
            };
            continue;
        }
        if (name == "env" || name == "sudo") && is_assignment(w) {
            j += 1;
            continue;
        }
        break;
    }
    j += wrapper.positional;
    if j < rest.len() {
        if name == "ssh" || name == "watch" {
            // Both hand their words to a shell as one string.
            parse_line(&rest[j..].join(" "), depth + 1, out);
        } else {
            simple_command(&rest[j..], depth + 1, false, out);
        }
    }
}

/// Splits `src` into words and separators the way a POSIX shell's tokenizer does (quote
/// removal included), and collects the text of command substitutions into `nested`.
fn lex(src: &str, toks: &mut Vec<Tok>, nested: &mut Vec<String>, history: &mut bool) {
    let chars: Vec<char> = src.chars().collect();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut i = 0;

    macro_rules! end_word {
        () => {{
            if in_word {
                toks.push(Tok::Word(std::mem::take(&mut word)));
            }
            in_word = false;
            quoted = false;
        }};
    }

    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\r' => end_word!(),
            '\n' | ';' | '&' | '|' | '(' | ')' => {
                if c == '&' && chars.get(i + 1) == Some(&'>') {
                    // `&>file`, `&>>file`: a redirection.
                    end_word!();
                    i += 1;
                    while matches!(chars.get(i + 1), Some('>')) {
                        i += 1;
                    }
                    toks.push(Tok::Redirect);
                } else {
                    end_word!();
                    toks.push(Tok::Sep);
                }
            }
            '<' | '>' => {
                if chars.get(i + 1) == Some(&'(') {
                    // Process substitution `<(cmd)`, `>(cmd)`.
                    let (inner, next) = balanced(&chars, i + 1);
                    nested.push(inner);
                    word.push(c);
                    word.push_str("(...)");
                    in_word = true;
                    i = next;
                    continue;
                }
                if in_word && !quoted && word.chars().all(|d| d.is_ascii_digit()) {
                    // `2>`: the digits name a file descriptor.
                    word.clear();
                    in_word = false;
                } else {
                    end_word!();
                }
                while matches!(chars.get(i + 1), Some('<' | '>' | '&' | '|' | '-')) {
                    i += 1;
                }
                toks.push(Tok::Redirect);
                // `2>&1`: the target is glued to the operator and is a word of its own.
            }
            '\'' => {
                in_word = true;
                quoted = true;
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    word.push(chars[i]);
                    i += 1;
                }
            }
            '"' => {
                in_word = true;
                quoted = true;
                i = double_quoted(&chars, i + 1, &mut word, nested, history);
                continue;
            }
            '\\' => {
                match chars.get(i + 1) {
                    Some('\n') => {}
                    Some(&n) => {
                        word.push(n);
                        in_word = true;
                        quoted = true;
                    }
                    None => {}
                }
                i += 2;
                continue;
            }
            '$' => match chars.get(i + 1) {
                Some('(') => {
                    let (inner, next) = balanced(&chars, i + 1);
                    if !inner.starts_with('(') {
                        nested.push(inner);
                    }
                    word.push_str("$(...)");
                    in_word = true;
                    i = next;
                    continue;
                }
                Some('\'') => {
                    in_word = true;
                    quoted = true;
                    i = ansi_c(&chars, i + 2, &mut word);
                    continue;
                }
                Some('"') => {
                    in_word = true;
                    quoted = true;
                    i = double_quoted(&chars, i + 2, &mut word, nested, history);
                    continue;
                }
                _ => {
                    word.push('$');
                    in_word = true;
                }
            },
            '`' => {
                let (inner, next) = backquoted(&chars, i + 1);
                nested.push(inner);
                word.push_str("`...`");
                in_word = true;
                i = next;
                continue;
            }
            '#' if !in_word => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '!' => {
                *history |= history_bang(&chars, i, false);
                word.push(c);
                in_word = true;
            }
            _ => {
                word.push(c);
                in_word = true;
            }
        }
        i += 1;
    }
    if in_word {
        toks.push(Tok::Word(word));
    }
}

/// Reads a `"..."` body starting after the quote; returns the index after the closing quote.
fn double_quoted(
    chars: &[char],
    mut i: usize,
    word: &mut String,
    nested: &mut Vec<String>,
    history: &mut bool,
) -> usize {
    while i < chars.len() {
        match chars[i] {
            '"' => return i + 1,
            '!' => {
                *history |= history_bang(chars, i, true);
                word.push('!');
                i += 1;
            }
            '\\' => match chars.get(i + 1) {
                Some('\n') => i += 2,
                Some(&n @ ('$' | '`' | '"' | '\\')) => {
                    word.push(n);
                    i += 2;
                }
                _ => {
                    word.push('\\');
                    i += 1;
                }
            },
            '$' if chars.get(i + 1) == Some(&'(') => {
                let (inner, next) = balanced(chars, i + 1);
                if !inner.starts_with('(') {
                    nested.push(inner);
                }
                word.push_str("$(...)");
                i = next;
            }
            '`' => {
                let (inner, next) = backquoted(chars, i + 1);
                nested.push(inner);
                word.push_str("`...`");
                i = next;
            }
            c => {
                word.push(c);
                i += 1;
            }
        }
    }
    i
}

/// Whether the unquoted (or double-quoted) `!` at `i` starts a history expansion in an
/// interactive bash: not before a blank, `=` or the end (nor a closing `"` inside double
/// quotes), and not in `$!`, `${!` or `[!`, which bash leaves alone.
fn history_bang(chars: &[char], i: usize, in_double_quotes: bool) -> bool {
    let next = chars.get(i + 1).copied();
    if matches!(next, None | Some(' ' | '\t' | '\n' | '\r' | '=')) {
        return false;
    }
    if in_double_quotes && next == Some('"') {
        return false;
    }
    let prev = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
    let prev2 = i.checked_sub(2).and_then(|p| chars.get(p)).copied();
    let quiet = matches!(prev, Some('$' | '[')) || (prev == Some('{') && prev2 == Some('$'));
    !quiet
}

/// Reads a `$'...'` body starting after the quote, decoding its escapes.
fn ansi_c(chars: &[char], mut i: usize, word: &mut String) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\'' => return i + 1,
            '\\' => {
                let Some(&e) = chars.get(i + 1) else {
                    return i + 1;
                };
                i += 2;
                match e {
                    'n' => word.push('\n'),
                    't' => word.push('\t'),
                    'r' => word.push('\r'),
                    'a' => word.push('\x07'),
                    'b' => word.push('\x08'),
                    'e' | 'E' => word.push('\x1b'),
                    'f' => word.push('\x0c'),
                    'v' => word.push('\x0b'),
                    'x' => {
                        let (v, used) = digits(&chars[i..], 16, 2);
                        i += used;
                        push_code(word, v, used, 'x');
                    }
                    'u' | 'U' => {
                        let (v, used) = digits(&chars[i..], 16, if e == 'u' { 4 } else { 8 });
                        i += used;
                        push_code(word, v, used, e);
                    }
                    '0'..='7' => {
                        let (v, used) = digits(&chars[i - 1..], 8, 3);
                        i += used.saturating_sub(1);
                        push_code(word, v, used, '0');
                    }
                    other => word.push(other),
                }
            }
            c => {
                word.push(c);
                i += 1;
            }
        }
    }
    i
}

fn digits(chars: &[char], radix: u32, max: usize) -> (u32, usize) {
    let mut v: u32 = 0;
    let mut used = 0;
    for c in chars.iter().take(max) {
        match c.to_digit(radix) {
            Some(d) => {
                v = v.saturating_mul(radix).saturating_add(d);
                used += 1;
            }
            None => break,
        }
    }
    (v, used)
}

fn push_code(word: &mut String, v: u32, used: usize, escape: char) {
    if used == 0 {
        word.push('\\');
        word.push(escape);
    } else if let Some(c) = char::from_u32(v) {
        word.push(c);
    }
}

/// The text inside the parentheses opened at `open` (quotes and escapes respected), and
/// the index after the closing one. An unclosed group runs to the end.
fn balanced(chars: &[char], open: usize) -> (String, usize) {
    let mut depth = 0usize;
    let mut i = open;
    let mut inner = String::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            '(' => {
                depth += 1;
                if depth > 1 {
                    inner.push(c);
                }
            }
            ')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return (inner, i + 1);
                }
                inner.push(c);
            }
            '\'' | '"' => {
                inner.push(c);
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if c == '"' && chars[i] == '\\' && i + 1 < chars.len() {
                        inner.push(chars[i]);
                        i += 1;
                    }
                    inner.push(chars[i]);
                    i += 1;
                }
                if i < chars.len() {
                    inner.push(c);
                }
            }
            '\\' => {
                inner.push(c);
                if let Some(&n) = chars.get(i + 1) {
                    inner.push(n);
                    i += 1;
                }
            }
            _ => inner.push(c),
        }
        i += 1;
    }
    (inner, i)
}

/// The text inside backquotes starting after the opening one (`\`` escapes undone).
fn backquoted(chars: &[char], mut i: usize) -> (String, usize) {
    let mut inner = String::new();
    while i < chars.len() {
        match chars[i] {
            '`' => return (inner, i + 1),
            '\\' if matches!(chars.get(i + 1), Some('`' | '\\' | '$')) => {
                inner.push(chars[i + 1]);
                i += 2;
            }
            c => {
                inner.push(c);
                i += 1;
            }
        }
    }
    (inner, i)
}

/// Whether a submitted line continues on the next one: it ends in an unescaped
/// backslash, leaves a quote open, or ends with `|`, `&&` or `||`.
///
/// ```
/// # use psm_core::policy::continues;
/// assert!(continues("rm \\"));
/// assert!(continues("echo 'abc"));
/// assert!(continues("ls |"));
/// assert!(!continues("echo 'a\\'"));  // the backslash is inside the quotes: closed
/// assert!(!continues("ls"));
/// ```
pub fn continues(line: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut comment = false;
    let mut prev = ' ';
    // The last two significant characters, and whether they were bare (unquoted,
    // unescaped) operators.
    let mut tail: [(char, bool); 2] = [(' ', false); 2];
    for c in line.chars() {
        if comment {
            if c == '\n' {
                comment = false;
            }
            prev = c;
            continue;
        }
        let mut bare = false;
        if escaped {
            escaped = false;
        } else {
            match quote {
                Some('\'') => {
                    if c == '\'' {
                        quote = None;
                    }
                }
                Some(_) => {
                    if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        quote = None;
                    }
                }
                None => match c {
                    '\\' => escaped = true,
                    '\'' | '"' => quote = Some(c),
                    '#' if prev.is_whitespace() => comment = true,
                    _ => bare = true,
                },
            }
        }
        if !c.is_whitespace() && !comment {
            tail = [tail[1], (c, bare)];
        }
        prev = c;
    }
    if escaped || quote.is_some() {
        return true;
    }
    matches!(tail, [_, ('|', true)] | [('&', true), ('&', true)])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn has(line: &str, form: &str) -> bool {
        let forms = command_forms(line);
        forms.iter().any(|f| f == form)
    }

    #[test]
    fn quoting_and_spacing_normalise() {
        for line in [
            "rm -rf /",
            "rm  -rf   /",
            "'r'm -rf /",
            "\"rm\" -rf /",
            "r\\m -rf /",
            "\\rm -rf /",
            "/bin/rm -rf /",
            "/usr/bin/../bin/rm -rf '/'",
            "$'\\x72m' -rf /",
            "$'\\162m' -rf /",
            "rm -rf / 2>/dev/null",
            "rm -rf / >/dev/null 2>&1",
            "LC_ALL=C rm -rf /",
            "rm -rf / # cleanup",
            "rm \\\n-rf /",
        ] {
            assert!(has(line, "rm -rf /"), "{line:?}: {:?}", command_forms(line));
        }
    }

    #[test]
    fn lists_pipes_and_nesting_split() {
        for line in [
            "cd /tmp; rm -rf /",
            "true && rm -rf /",
            "false || rm -rf /",
            "echo x | rm -rf /",
            "(rm -rf /)",
            "{ rm -rf /; }",
            "echo $(rm -rf /)",
            "echo \"$(rm -rf /)\"",
            "echo `rm -rf /`",
            "cat <(rm -rf /)",
            "sudo rm -rf /",
            "sudo -u root -- rm -rf /",
            "sudo -E env FOO=1 rm -rf /",
            "env -i PATH=/bin rm -rf /",
            "env -S 'rm -rf /'",
            "nohup nice -n 10 rm -rf / &",
            "timeout 5 rm -rf /",
            "command rm -rf /",
            "exec rm -rf /",
            "bash -c 'rm -rf /'",
            "sh -ec \"rm -rf /\"",
            "su -c 'rm -rf /' root",
            "su root --command='rm -rf /'",
            "eval 'rm -rf /'",
            "eval rm -rf /",
            "echo / | xargs -n 1 rm -rf",
            "busybox rm -rf /",
            "ssh -p 22 host rm -rf /",
            "if true; then rm -rf /; fi",
            "while true; do rm -rf /; done",
            "! rm -rf /",
            "bash -c \"bash -c 'rm -rf /'\"",
        ] {
            let forms = command_forms(line);
            assert!(
                forms.iter().any(|f| f.starts_with("rm -rf")),
                "{line:?}: {forms:?}"
            );
        }
    }

    #[test]
    fn each_simple_command_is_its_own_unit() {
        let u = command_units("rm -rf /tmp/x; shutdown -h now");
        assert_eq!(u.commands, [vec!["rm -rf /tmp/x"], vec!["shutdown -h now"]]);
        let u = command_units("ls | (sudo rm -rf /) && echo $(reboot) `halt` &");
        let firsts: Vec<&str> = u.commands.iter().map(|c| c[0].as_str()).collect();
        assert_eq!(
            firsts,
            ["ls", "sudo rm -rf /", "echo $(...) `...`", "reboot", "halt"]
        );
        // A wrapper's command belongs to the wrapper's unit.
        assert_eq!(u.commands[1], ["sudo rm -rf /", "rm -rf /"]);
        assert!(!u.cut);
        let u = command_units("bash -c 'cd /tmp && rm -rf /'");
        assert_eq!(
            u.commands,
            [
                vec!["bash -c cd /tmp && rm -rf /"],
                vec!["cd /tmp"],
                vec!["rm -rf /"]
            ]
        );
    }

    #[test]
    fn absolute_paths_are_normalised() {
        for (line, form) in [
            ("rm -rf /tmp/../etc", "rm -rf /etc"),
            ("rm -rf /tmp/x/../../etc/", "rm -rf /etc/"),
            ("rm -rf //tmp/./x", "rm -rf /tmp/x"),
            ("rm -rf /tmp/../../..", "rm -rf /"),
            ("rm -rf /tmp/..", "rm -rf /"),
            ("rm -rf '/tmp/'..'/etc'", "rm -rf /etc"),
            ("rm -rf /tmp/x", "rm -rf /tmp/x"),
            ("rm -rf tmp/../etc", "rm -rf tmp/../etc"),
            ("cat /a/.hidden", "cat /a/.hidden"),
        ] {
            assert_eq!(command_units(line).commands[0][0], form, "{line:?}");
        }
    }

    #[test]
    fn bounds_cut_and_say_so() {
        // 2000 harmless commands, then the one that matters: past MAX_COMMANDS.
        let mut line: String = (0..2000).map(|i| format!(": {i}; ")).collect();
        line.push_str("rm -rf /");
        let u = command_units(&line);
        assert!(u.cut);
        assert!(u.commands.len() <= MAX_COMMANDS);
        // 63 harmless ones are no longer a problem.
        let mut line: String = (0..63).map(|i| format!(": {i}; ")).collect();
        line.push_str("rm -rf /");
        let u = command_units(&line);
        assert!(!u.cut);
        assert_eq!(u.commands.last().unwrap()[0], "rm -rf /");
        // Nesting deeper than followed.
        let mut line = String::from("rm -rf /");
        for _ in 0..MAX_DEPTH + 2 {
            line = format!("bash -c {}", shell_quote(&line));
        }
        assert!(command_units(&line).cut);
        let mut line = String::from("rm -rf /");
        for _ in 0..MAX_DEPTH {
            line = format!("bash -c {}", shell_quote(&line));
        }
        let u = command_units(&line);
        assert!(!u.cut, "{u:?}");
        assert!(u.commands.iter().any(|c| c[0] == "rm -rf /"));
        // More words than kept.
        let line = format!("echo {} ; rm -rf /", "x ".repeat(300));
        assert!(command_units(&line).cut);
    }

    #[test]
    fn history_expansion_is_seen() {
        for line in [
            "!!",
            "sudo !!",
            "echo !$",
            "!-2",
            "!rm",
            "!?wipe?",
            "^echo^rm",
            "echo \"!!\"",
            "fc -s rm",
            "fc",
            "ls; !!",
        ] {
            assert!(command_units(line).history_expansion, "{line:?}");
        }
        for line in [
            "! rm -rf /",
            "echo '!!'",
            "echo \\!!",
            "echo $!",
            "echo ${!name}",
            "ls [!a]*",
            "echo hi!",
            "x != y",
            "echo \"hi!\"",
            "a^b",
        ] {
            assert!(!command_units(line).history_expansion, "{line:?}");
        }
    }

    #[test]
    fn first_form_is_the_trimmed_line() {
        assert_eq!(command_forms("  ls -l  ")[0], "ls -l");
        assert!(command_forms("   ").is_empty());
    }

    #[test]
    fn continuation() {
        assert!(continues("rm \\"));
        assert!(continues("echo \"abc"));
        assert!(continues("echo 'abc"));
        assert!(continues("ls |"));
        assert!(continues("ls &&"));
        assert!(continues("ls ||"));
        assert!(!continues("ls"));
        assert!(!continues("echo '\\'"));
        assert!(!continues("echo \\\\"));
        assert!(!continues("ls # comment \\"));
        assert!(!continues("echo 'it''s'"));
    }

    #[test]
    fn nesting_is_bounded() {
        let mut line = String::from("rm -rf /");
        for _ in 0..8 {
            line = format!("bash -c {}", shell_quote(&line));
        }
        let forms = command_forms(&line);
        assert!(forms.len() <= MAX_FORMS);
        let deep = "$(".repeat(10_000);
        assert!(command_forms(&deep).len() <= MAX_FORMS);
    }

    fn shell_quote(s: &str) -> String {
        format!("'{}'", s.replace('\'', "'\\''"))
    }

    proptest! {
        #[test]
        fn never_panics_and_stays_bounded(line in "\\PC{0,200}") {
            let forms = command_forms(&line);
            prop_assert!(forms.len() <= MAX_FORMS);
            let _ = continues(&line);
            let u = command_units(&line);
            prop_assert!(u.commands.len() <= MAX_COMMANDS);
            prop_assert!(u.commands.iter().map(Vec::len).sum::<usize>() <= MAX_FORMS);
        }

        /// Any list of simple commands yields one unit each, in order, whatever the
        /// separators: nothing after a separator hides in the unit before it.
        #[test]
        fn lists_split_into_units(
            words in proptest::collection::vec("x[a-z]{0,5}( [a-z/.]{1,6}){0,3}", 1..80),
            seps in proptest::collection::vec(prop_oneof![Just("; "), Just(" && "), Just(" || "), Just(" | "), Just(" & "), Just("\n")], 80),
        ) {
            let mut line = String::new();
            for (i, w) in words.iter().enumerate() {
                if i > 0 {
                    line.push_str(seps[i]);
                }
                line.push_str(w);
            }
            let u = command_units(&line);
            prop_assert!(!u.cut);
            let firsts: Vec<String> = u.commands.iter().map(|c| c[0].clone()).collect();
            prop_assert_eq!(firsts.len(), words.len());
            for (got, w) in firsts.iter().zip(&words) {
                let name = w.split(' ').next().unwrap_or("");
                prop_assert!(got.starts_with(name), "{got:?} vs {w:?}");
            }
        }

        #[test]
        fn shell_metacharacters_never_panic(line in "[-a-z $'\"`\\\\();|&<>#{}!=\n]{0,80}") {
            let forms = command_forms(&line);
            prop_assert!(forms.len() <= MAX_FORMS);
            let _ = continues(&line);
        }
    }
}
