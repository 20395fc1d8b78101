//! Terminal emulation, the project's one terminal model: the writer (keyframes), the reader
//! (seeking), the exporters, search, the player and live viewers use it, and so do the
//! gateway's command tracker and echo-off detection (psm-proxy): one code path computes "the
//! screen at time T".
//!
//! [`TerminalState`] is one emulated terminal (the `avt` crate, the emulator of asciinema's
//! own player); [`TerminalTracker`] follows every terminal channel of a session by the rules
//! in `docs/psmr.md` ("Terminal channels"); [`Utf8Decoder`] is the one incremental UTF-8
//! decoder for terminal bytes.

mod state;
mod tracker;
mod utf8;

pub use state::{MAX_COLS, MAX_ROWS, TerminalState};
pub use tracker::{MAX_TERMINALS, TerminalTracker};
pub use utf8::Utf8Decoder;
