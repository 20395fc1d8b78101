//! Terminal emulation, shared by the writer (keyframes), the reader (seeking), the
//! exporters, the player and live viewers: one code path computes "the screen at time T".
//!
//! [`TerminalState`] is one emulated terminal (the `avt` crate, the emulator of asciinema's
//! own player); [`TerminalTracker`] follows every terminal channel of a session by the rules
//! in `docs/psmr.md` ("Terminal channels").

mod state;
mod tracker;
mod utf8;

pub use state::{MAX_COLS, MAX_ROWS, TerminalState};
pub use tracker::{MAX_TERMINALS, TerminalTracker};
pub use utf8::Utf8Decoder;
