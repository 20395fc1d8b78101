//! The prompt of a screen line: what the tracker cuts off the line at the cursor to get the
//! command.

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

/// Whether the text left of the cursor when a line began ends like a shell prompt (`$ `,
/// `# `, `% `, `> `): inside a full-screen program, what tells a shell's line from an
/// editor's.
pub(crate) fn looks_like_prompt(prompt: &[char]) -> bool {
    prompt
        .windows(2)
        .last()
        .is_some_and(|w| matches!(w[0], '$' | '#' | '>' | '%') && w[1] == ' ')
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
    fn shell_prompts_are_recognised() {
        let yes = |p: &str| looks_like_prompt(&p.chars().collect::<Vec<_>>());
        assert!(yes("alice@t2:~$ "));
        assert!(yes("root@t2:/# "));
        assert!(yes("> "));
        assert!(!yes(""));
        assert!(!yes("x"));
        assert!(!yes("int main() {"));
        assert!(!yes("$"));
    }
}
