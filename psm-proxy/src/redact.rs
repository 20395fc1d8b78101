//! Knowing when the user types a secret: a terminal prompt that does not echo.
//!
//! The target's terminal decides whether typed characters echo, and SSH does not carry that
//! state, so the proxy infers it from the screen: when the line left of the cursor names a
//! password, passphrase, passcode or PIN and ends in `:` (`Password:`, `[sudo] password for
//! alice:`, `Enter passphrase for key ...:`), input is hidden until the user presses Enter,
//! or until the target shows it does echo: the keys typed so far appear after the prompt
//! (`PS1='password: '` makes a shell prompt look like a password prompt; its echo gives it
//! away after the first key). Masks such as `***` are no echo. Hidden input reaches the
//! target unchanged; taps get `hidden = true` and must not keep it (the command tracker
//! still judges it, never reporting it: `docs/policy.md`).
//!
//! The screen is psm-recording's terminal emulator ([`TerminalState`]), the one the command
//! tracker, the recorder and live viewers read; output is only
//! [deferred](TerminalState::defer) until the user types.

use psm_core::vault::Zeroize;
use psm_recording::{TermSize, TerminalState};

/// The most characters of the cursor's line read to recognise a prompt.
const MAX_PROMPT: usize = 512;
/// The most characters of a hidden entry kept to recognise their echo.
const MAX_TYPED: usize = 512;
/// How much output is kept for the screen between two keys: a prompt is the last line or
/// two, and bulk output (a download on a channel without a terminal) then costs little.
const KEEP: usize = 2048;

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
///
/// // A shell whose prompt only looks like one: its echo gives it away.
/// t.output(b"password: ");
/// assert!(t.input(b"r"));
/// t.output(b"r");
/// assert!(!t.input(b"m -rf /tmp/x\r"));
/// ```
pub struct EchoTracker {
    screen: TerminalState,
    /// Output arrived since the screen was last read.
    fresh: bool,
    hidden: bool,
    /// The target echoed what was typed at the secret-looking prompt: visible until Enter.
    echoing: bool,
    /// The secret prompt's line, as it stood when input became hidden.
    prompt: String,
    /// The printable characters typed at it (wiped at Enter): their echo means the
    /// target echoes.
    typed: String,
    line: Vec<char>,
    text: String,
}

impl Drop for EchoTracker {
    fn drop(&mut self) {
        self.typed.zeroize();
    }
}

impl std::fmt::Debug for EchoTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoTracker")
            .field("hidden", &self.hidden)
            .finish_non_exhaustive()
    }
}

impl Default for EchoTracker {
    fn default() -> Self {
        Self {
            screen: TerminalState::clamped(TermSize::new(80, 24)).with_backlog(KEEP),
            fresh: false,
            hidden: false,
            echoing: false,
            prompt: String::new(),
            typed: String::new(),
            line: Vec::new(),
            text: String::new(),
        }
    }
}

impl EchoTracker {
    /// Output from the target.
    pub fn output(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.screen.defer(bytes);
        self.fresh = true;
    }

    /// Input from the user; returns whether these bytes are hidden.
    pub fn input(&mut self, bytes: &[u8]) -> bool {
        let hidden = self.is_hidden();
        if self.echoing && bytes.iter().any(|b| matches!(b, b'\n' | b'\r' | 3 | 4)) {
            self.echoing = false;
            self.prompt.clear();
        }
        if hidden {
            for &b in bytes {
                match b {
                    b'\n' | b'\r' | 3 | 4 => {
                        // Enter, ^C or ^D ends the secret entry; the prompt still on the
                        // screen does not start another until the target writes again.
                        self.hidden = false;
                        self.typed.zeroize();
                        break;
                    }
                    0x20..=0x7e if self.typed.len() < MAX_TYPED => self.typed.push(char::from(b)),
                    _ => {}
                }
            }
        }
        hidden
    }

    /// Whether input is hidden now.
    pub fn is_hidden(&mut self) -> bool {
        if std::mem::take(&mut self.fresh) {
            // The target wrote: the line left of the cursor says whether it asks for a
            // secret (a newline after the secret moves the cursor off the prompt).
            self.screen.line_before_cursor(&mut self.line, MAX_PROMPT);
            self.text.clear();
            self.text.extend(self.line.iter());
            let on_prompt = !self.prompt.is_empty() && self.text.starts_with(&self.prompt);
            if self.echoing && on_prompt {
                // Still the line the target echoed: nothing on it is a secret, whatever the
                // echo ends in.
            } else if self.hidden && !self.typed.is_empty() && on_prompt {
                // Output on the prompt's line while a secret is typed: if it is the keys
                // themselves, the target echoes and the prompt only looked like one.
                let shown = self.text[self.prompt.len()..].trim_start();
                if !shown.is_empty() && self.typed.trim_start().starts_with(shown) {
                    self.hidden = false;
                    self.echoing = true;
                    self.typed.zeroize();
                }
            } else {
                self.echoing = false;
                self.hidden = is_secret_prompt(&self.text);
                self.typed.zeroize();
                if self.hidden {
                    self.prompt.clear();
                    self.prompt.push_str(&self.text);
                }
            }
        }
        self.hidden
    }
}

/// Whether `line`, the text of a screen line up to the cursor, is a secret prompt.
pub fn is_secret_prompt(line: &str) -> bool {
    let line = line.trim_end_matches([' ', '\t']);
    line.ends_with(':') && {
        let line = line.to_ascii_lowercase();
        WORDS.iter().any(|w| line.contains(w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts() {
        assert!(is_secret_prompt("Password: "));
        assert!(is_secret_prompt("[sudo] password for bob:"));
        assert!(is_secret_prompt("Enter passphrase for key '/x':  "));
        assert!(!is_secret_prompt("password changed"));
        assert!(!is_secret_prompt("$ "));
        assert!(!is_secret_prompt(""));
        assert!(!is_secret_prompt("user@host:"));
    }

    fn hidden_after(output: &[u8]) -> bool {
        let mut t = EchoTracker::default();
        t.output(output);
        t.input(b"x")
    }

    #[test]
    fn the_line_at_the_cursor_decides() {
        assert!(hidden_after(b"\r\n[sudo] password for bob:"));
        assert!(hidden_after(b"\x1b[1mPassword:\x1b[0m "));
        assert!(!hidden_after(b"password changed\r\n$ "));
        assert!(!hidden_after(b"Password: ok\r\nuser@host:"));
        // A prompt longer than the terminal is wide, soft-wrapped.
        let long = format!(
            "Enter passphrase for key '/home/alice/{}':",
            "k".repeat(120)
        );
        assert!(hidden_after(long.as_bytes()));
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

    #[test]
    fn a_wrong_password_asks_again() {
        let mut t = EchoTracker::default();
        t.output(b"$ sudo -i\r\n[sudo] password for alice: ");
        assert!(t.input(b"wrong\r"));
        assert!(!t.input(b"typed ahead"));
        t.output(b"\r\nSorry, try again.\r\n[sudo] password for alice: ");
        assert!(t.input(b"right\r"));
        t.output(b"\r\nroot# ");
        assert!(!t.input(b"id\r"));
    }

    #[test]
    fn an_echoing_prompt_that_looks_like_a_password_prompt_is_visible_after_its_echo() {
        let mut t = EchoTracker::default();
        t.output(b"password: ");
        // Unknown until the target answers the first key.
        assert!(t.input(b"s"));
        t.output(b"s");
        assert!(!t.input(b"hutdown"));
        t.output(b"hutdown -h now #password:");
        assert!(
            !t.input(b"\r"),
            "its own echo ending in `password:` hides nothing"
        );
        // Typed ahead in one chunk, echoed in two.
        t.output(b"\r\npassword: ");
        assert!(t.input(b"ls -l"));
        t.output(b"ls");
        assert!(!t.input(b"\r"));
    }

    #[test]
    fn masks_are_no_echo() {
        let mut t = EchoTracker::default();
        t.output(b"[sudo] password for alice: ");
        assert!(t.input(b"s"));
        t.output(b"*");
        assert!(t.input(b"e"));
        t.output(b"*");
        assert!(t.input(b"cret\r"));
        t.output(b"\r\n$ ");
        assert!(!t.input(b"ls"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(out in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
                        inp in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..50)) {
            let mut t = EchoTracker::default();
            t.output(&out);
            t.input(&inp);
            proptest::prop_assert!(t.line.len() <= MAX_PROMPT);
        }
    }
}
