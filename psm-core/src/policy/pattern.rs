//! Globs as regular expressions: one matching engine for both pattern kinds.

/// Translates a glob into an anchored regular expression (`(?s)` so `*` crosses newlines).
///
/// `*` is any run of characters (spaces and `/` included: a command line is not a path),
/// `?` is one character, `[abc]`/`[a-z]`/`[!abc]`/`[^abc]` are classes, `\x` is a
/// literal `x`; everything else is literal. An unclosed `[` is a literal `[`.
///
/// ```
/// # use psm_core::policy::glob_to_regex;
/// let re = regex::Regex::new(&glob_to_regex("rm -rf /*")).unwrap();
/// assert!(re.is_match("rm -rf /") && re.is_match("rm -rf /etc x") && !re.is_match("sudo rm -rf /"));
/// ```
pub fn glob_to_regex(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() * 2 + 8);
    out.push_str("(?s)^(?:");
    let chars: Vec<char> = glob.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' => {
                // Collapse runs of stars: they mean the same thing and would only slow the
                // regex down.
                while i + 1 < chars.len() && chars[i + 1] == '*' {
                    i += 1;
                }
                out.push_str(".*");
            }
            '?' => out.push('.'),
            '\\' => {
                if let Some(&next) = chars.get(i + 1) {
                    push_literal(&mut out, next);
                    i += 1;
                } else {
                    push_literal(&mut out, '\\');
                }
            }
            '[' => match class_end(&chars, i) {
                Some(end) => {
                    push_class(&mut out, &chars[i + 1..end]);
                    i = end;
                }
                None => push_literal(&mut out, '['),
            },
            _ => push_literal(&mut out, c),
        }
        i += 1;
    }
    out.push_str(")$");
    out
}

/// The index of the `]` closing the class opened at `open`, if any. A `]` right after the
/// opening (or after its `!`/`^`) is a member, as in POSIX.
fn class_end(chars: &[char], open: usize) -> Option<usize> {
    let mut j = open + 1;
    if matches!(chars.get(j), Some('!' | '^')) {
        j += 1;
    }
    if chars.get(j) == Some(&']') {
        j += 1;
    }
    while j < chars.len() {
        if chars[j] == ']' {
            return Some(j);
        }
        j += 1;
    }
    None
}

fn push_class(out: &mut String, body: &[char]) {
    out.push('[');
    let mut body = body;
    if let Some(('!' | '^', rest)) = body.split_first() {
        out.push('^');
        body = rest;
    }
    if body.is_empty() {
        // `[!]`-like degenerate classes: match the literal characters instead of building
        // an invalid regex.
        out.push_str("\\x00-\\x{10FFFF}");
    }
    let mut k = 0;
    while k < body.len() {
        let c = body[k];
        if k + 2 < body.len() && body[k + 1] == '-' {
            let end = body[k + 2];
            push_class_char(out, c);
            // A reversed range (`[z-a]`) would not compile: take its three characters
            // literally instead.
            if c > end {
                push_class_char(out, '-');
            } else {
                out.push('-');
            }
            push_class_char(out, end);
            k += 3;
        } else {
            push_class_char(out, c);
            k += 1;
        }
    }
    out.push(']');
}

fn push_class_char(out: &mut String, c: char) {
    // Inside a regex class, escape everything that could mean something.
    if "\\.+*?()|[]{}^$#&-~".contains(c) {
        out.push('\\');
    }
    out.push(c);
}

fn push_literal(out: &mut String, c: char) {
    let mut buf = [0u8; 4];
    out.push_str(&regex::escape(c.encode_utf8(&mut buf)));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn m(glob: &str, text: &str) -> bool {
        regex::Regex::new(&glob_to_regex(glob))
            .unwrap()
            .is_match(text)
    }

    #[test]
    fn glob_semantics() {
        assert!(m("rm -rf /*", "rm -rf /"));
        assert!(m("rm -rf /*", "rm -rf /var/lib"));
        assert!(!m("rm -rf /*", "xrm -rf /"));
        assert!(m("shutdown*", "shutdown -h now"));
        assert!(m("?s", "ls"));
        assert!(!m("?s", "lss"));
        assert!(m("[a-c]at", "bat"));
        assert!(!m("[!a-c]at", "bat"));
        assert!(m("[^a-c]at", "rat"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("[]]x", "]x"));
        assert!(m("[x", "[x"));
        assert!(m("a.b", "a.b") && !m("a.b", "axb"));
        assert!(m("*\n*", "a\nb"));
        assert!(m("[-a]", "-"));
        assert!(m("[a-]", "-"));
        assert!(m("[!]", "[!]"));
    }

    proptest! {
        #[test]
        fn any_glob_compiles(glob in ".{0,64}") {
            let re = glob_to_regex(&glob);
            prop_assert!(regex::Regex::new(&re).is_ok(), "{glob:?} -> {re:?}");
        }

        #[test]
        fn literal_globs_match_themselves(text in "[a-zA-Z0-9 ./_-]{0,40}") {
            prop_assert!(m(&text, &text));
        }
    }
}
