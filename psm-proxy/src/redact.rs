//! Knowing when the user types a secret: a terminal prompt that does not echo.
//!
//! The target's terminal decides whether typed characters echo, and SSH does not carry that
//! state, so the proxy infers it from the output: after a prompt whose last line names a
//! password, passphrase, passcode or PIN and ends in `:` (`Password:`, `[sudo] password for
//! alice:`, `Enter passphrase for key ...:`), input is hidden until the user presses Enter.
//! Hidden input reaches the target unchanged; taps get `hidden = true` and must not keep it.

/// How much output is kept to recognise a prompt.
const TAIL: usize = 160;

const WORDS: [&str; 5] = [
    "password",
    "passphrase",
    "passcode",
    "pin",
    "verification code",
];

/// Per-channel echo-off inference. Feed it both directions in order.
///
/// ```
/// use psm_proxy::redact::EchoTracker;
/// let mut t = EchoTracker::default();
/// t.output(b"[sudo] password for alice: ");
/// assert!(t.input(b"hunter2"));   // hidden
/// assert!(t.input(b"\r"));        // the Enter itself is still part of the secret entry
/// assert!(!t.input(b"ls\r"));     // visible again
/// ```
#[derive(Clone, Debug, Default)]
pub struct EchoTracker {
    tail: Vec<u8>,
    hidden: bool,
}

impl EchoTracker {
    /// Output from the target.
    pub fn output(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.hidden && bytes.iter().any(|b| matches!(b, b'\n' | b'\r')) {
            // The target moved on (it prints a newline once the secret is entered).
            self.hidden = false;
        }
        let start = bytes.len().saturating_sub(TAIL);
        self.tail.extend_from_slice(&bytes[start..]);
        if self.tail.len() > TAIL {
            let cut = self.tail.len() - TAIL;
            self.tail.drain(..cut);
        }
        if is_secret_prompt(&self.tail) {
            self.hidden = true;
        }
    }

    /// Input from the user; returns whether these bytes are hidden.
    pub fn input(&mut self, bytes: &[u8]) -> bool {
        let hidden = self.hidden;
        if hidden && bytes.iter().any(|b| matches!(b, b'\n' | b'\r' | 3 | 4)) {
            // Enter, ^C or ^D ends the secret entry.
            self.hidden = false;
            self.tail.clear();
        }
        hidden
    }

    /// Whether input is hidden now.
    pub fn is_hidden(&self) -> bool {
        self.hidden
    }
}

/// Whether the last line of `tail` is a secret prompt.
pub fn is_secret_prompt(tail: &[u8]) -> bool {
    let trimmed = match tail.iter().rposition(|b| !matches!(b, b' ' | b'\t')) {
        Some(end) => &tail[..=end],
        None => return false,
    };
    if trimmed.last() != Some(&b':') {
        return false;
    }
    let line_start = trimmed
        .iter()
        .rposition(|b| matches!(b, b'\n' | b'\r'))
        .map_or(0, |p| p + 1);
    let line = String::from_utf8_lossy(&trimmed[line_start..]).to_ascii_lowercase();
    WORDS.iter().any(|w| line.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts() {
        assert!(is_secret_prompt(b"Password: "));
        assert!(is_secret_prompt(b"\r\n[sudo] password for bob:"));
        assert!(is_secret_prompt(b"Enter passphrase for key '/x':  "));
        assert!(!is_secret_prompt(b"password changed\r\n$ "));
        assert!(!is_secret_prompt(b"$ "));
        assert!(!is_secret_prompt(b""));
        assert!(!is_secret_prompt(b"Password: ok\r\nuser@host:"));
    }

    #[test]
    fn hidden_until_enter_or_output_line() {
        let mut t = EchoTracker::default();
        assert!(!t.input(b"x"));
        t.output(b"Password:");
        assert!(t.input(b"se"));
        assert!(t.input(b"cret"));
        t.output(b"\r\n");
        assert!(!t.input(b"ls"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(out in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
                        inp in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..50)) {
            let mut t = EchoTracker::default();
            t.output(&out);
            t.input(&inp);
            proptest::prop_assert!(t.tail.len() <= TAIL);
        }
    }
}
