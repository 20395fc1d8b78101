//! Every terminal channel of a session.

use std::collections::BTreeMap;

use super::state::{TerminalState, valid_size};
use crate::event::{ChannelId, EventKind, Keyframe, TermSize};

/// At most this many terminals are emulated at once (more are recorded, not emulated).
pub const MAX_TERMINALS: usize = 16;

/// Follows the terminal of every channel, by the rules of `docs/psmr.md`:
///
/// - at the start, channel 0 is a terminal of the header's size, if the header has one;
/// - opening a channel with a pty (re)starts its terminal at the pty's size; opening one
///   without a pty, or closing it, stops it;
/// - a resize resizes the channel's terminal, or starts one at that size;
/// - output (stdout and stderr) on a terminal channel is fed to it;
/// - sizes outside 1×1..=1000×500, and terminals beyond the 16th, are not emulated.
///
/// The writer uses it to compute keyframes and the reader to seek, so both always agree.
#[derive(Debug, Default)]
pub struct TerminalTracker {
    terms: BTreeMap<ChannelId, TerminalState>,
}

impl TerminalTracker {
    /// The state at the start of a recording whose header declares `terminal`.
    pub fn new(terminal: Option<TermSize>) -> Self {
        let mut t = Self::default();
        if let Some(size) = terminal {
            t.start(ChannelId(0), size);
        }
        t
    }

    fn start(&mut self, channel: ChannelId, size: TermSize) {
        if !valid_size(size) {
            self.terms.remove(&channel);
            return;
        }
        if !self.terms.contains_key(&channel) && self.terms.len() >= MAX_TERMINALS {
            return;
        }
        if let Ok(t) = TerminalState::new(size) {
            self.terms.insert(channel, t);
        }
    }

    /// Applies one event.
    pub fn apply(&mut self, event: &EventKind) {
        match event {
            EventKind::Output { channel, data, .. } => self.output(*channel, data),
            EventKind::ChannelOpen { channel, kind } => match kind.pty() {
                Some(p) => self.start(*channel, p.size),
                None => {
                    self.terms.remove(channel);
                }
            },
            EventKind::ChannelClose { channel, .. } => {
                self.terms.remove(channel);
            }
            EventKind::Resize { channel, size } => {
                if !valid_size(*size) {
                    self.terms.remove(channel);
                } else if let Some(t) = self.terms.get_mut(channel) {
                    t.resize(*size);
                } else {
                    self.start(*channel, *size);
                }
            }
            _ => {}
        }
    }

    /// Feeds output of `channel` (ignored if it is not a terminal).
    pub fn output(&mut self, channel: ChannelId, data: &[u8]) {
        if let Some(t) = self.terms.get_mut(&channel) {
            t.feed(data);
        }
    }

    /// Replaces every terminal by the ones a chunk's keyframes describe.
    pub fn restore(&mut self, keyframes: &[Keyframe]) {
        self.terms.clear();
        for k in keyframes.iter().take(MAX_TERMINALS) {
            if let Ok(t) = TerminalState::from_keyframe(k) {
                self.terms.insert(k.channel, t);
            }
        }
    }

    /// Keyframes of every terminal, by channel.
    pub fn keyframes(&mut self) -> Vec<Keyframe> {
        self.terms.iter_mut().map(|(c, t)| t.keyframe(*c)).collect()
    }

    /// Whether any terminal is emulated.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The terminal of `channel`.
    pub fn terminal(&mut self, channel: ChannelId) -> Option<&mut TerminalState> {
        self.terms.get_mut(&channel)
    }

    /// The channels that are terminals, in order.
    pub fn channels(&self) -> Vec<ChannelId> {
        self.terms.keys().copied().collect()
    }
}
