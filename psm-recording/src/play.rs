//! Playback: the bytes to write to a terminal and when, starting anywhere (via keyframes),
//! at any speed. The `psm play` command is a thin loop over [`Player`].

use std::io::{Read, Seek};
use std::time::Duration;

use crate::error::RecordingError;
use crate::event::{ChannelId, ChannelKind, EventKind, TermSize};
use crate::reader::Reader;
use crate::time::Micros;

/// How to play.
#[derive(Clone, Debug)]
pub struct PlayOptions {
    /// Speed factor (2.0 plays twice as fast).
    pub speed: f64,
    /// Where to start (the screen is rebuilt from the nearest keyframe).
    pub from: Micros,
    /// Where to stop.
    pub to: Option<Micros>,
    /// Longest pause, in recording time.
    pub idle_limit: Option<Micros>,
    /// The terminal channel to play (default as in the asciicast export).
    pub channel: Option<ChannelId>,
}

impl Default for PlayOptions {
    fn default() -> Self {
        Self {
            speed: 1.0,
            from: Micros::ZERO,
            to: None,
            idle_limit: None,
            channel: None,
        }
    }
}

/// One step of playback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlayStep {
    /// Wait this long (already divided by the speed).
    Wait(Duration),
    /// Write these bytes to the terminal; the recording is now at this time.
    Write(Micros, Vec<u8>),
    /// A marker or other note worth showing in a status line.
    Note(Micros, String),
    /// The terminal was resized to this size in the recording.
    Resize(Micros, TermSize),
}

/// Replaces C1 controls (which a UTF-8 terminal does not obey) with their ESC forms.
fn c1_to_7bit(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        if ('\u{80}'..='\u{9f}').contains(&c) {
            out.push(0x1b);
            out.push((c as u32 - 0x40) as u8);
        } else {
            let mut b = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
        }
    }
    out
}

/// Yields [`PlayStep`]s for a recording.
pub struct Player<'r, R> {
    reader: &'r mut Reader<R>,
    options: PlayOptions,
    channel: ChannelId,
    chunk: usize,
    pending: std::collections::VecDeque<PlayStep>,
    clock: Micros,
    started: bool,
    done: bool,
}

impl<R> std::fmt::Debug for Player<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Player")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl<'r, R: Read + Seek> Player<'r, R> {
    /// A player starting at `options.from`.
    pub fn new(reader: &'r mut Reader<R>, options: PlayOptions) -> Result<Self, RecordingError> {
        if !(options.speed.is_finite() && options.speed > 0.0) {
            return Err(RecordingError::InvalidInput {
                field: "speed",
                reason: format!("{} must be a positive number", options.speed),
            });
        }
        let channel = match options.channel {
            Some(c) => c,
            None => first_terminal_channel(reader),
        };
        Ok(Self {
            reader,
            options,
            channel,
            chunk: 0,
            pending: Default::default(),
            clock: Micros::ZERO,
            started: false,
            done: false,
        })
    }

    /// The channel being played.
    pub fn channel(&self) -> ChannelId {
        self.channel
    }

    fn start(&mut self) -> Result<(), RecordingError> {
        self.started = true;
        let from = self.options.from;
        let mut screens = self.reader.screen_at(from)?;
        let mut init = b"\x1bc".to_vec();
        if let Some(t) = screens.terminal(self.channel) {
            init.extend_from_slice(&c1_to_7bit(&t.dump()));
        }
        self.pending.push_back(PlayStep::Write(from, init));
        self.clock = from;
        self.chunk = self.reader.chunk_at(from).unwrap_or(0);
        Ok(())
    }

    fn fill(&mut self) -> Result<(), RecordingError> {
        while self.pending.is_empty() && !self.done {
            if self.chunk >= self.reader.chunks().len() {
                self.done = true;
                break;
            }
            let c = match self.reader.read_chunk(self.chunk) {
                Ok(c) => c,
                Err(e @ RecordingError::Encrypted { .. }) => return Err(e),
                Err(e) => {
                    self.pending
                        .push_back(PlayStep::Note(self.clock, format!("gap: {e}")));
                    self.chunk += 1;
                    continue;
                }
            };
            self.chunk += 1;
            for e in c.events {
                if e.time <= self.options.from {
                    continue;
                }
                if self.options.to.is_some_and(|to| e.time > to) {
                    self.done = true;
                    break;
                }
                let step = match e.kind {
                    EventKind::Output { channel, data, .. } if channel == self.channel => {
                        PlayStep::Write(e.time, data)
                    }
                    EventKind::Resize { channel, size } if channel == self.channel => {
                        PlayStep::Resize(e.time, size)
                    }
                    EventKind::Marker { label } => PlayStep::Note(e.time, label),
                    EventKind::Policy { action, detail, .. } => {
                        PlayStep::Note(e.time, format!("policy {}: {detail}", action.as_str()))
                    }
                    _ => continue,
                };
                let mut gap = e.time.saturating_sub(self.clock);
                if let Some(limit) = self.options.idle_limit {
                    gap = gap.min(limit);
                }
                self.clock = e.time;
                if gap.0 > 0 {
                    self.pending
                        .push_back(PlayStep::Wait(Duration::from_secs_f64(
                            gap.as_secs_f64() / self.options.speed,
                        )));
                }
                self.pending.push_back(step);
            }
        }
        Ok(())
    }
}

fn first_terminal_channel<R: Read + Seek>(reader: &mut Reader<R>) -> ChannelId {
    for i in 0..reader.chunks().len().min(64) {
        let Ok(c) = reader.read_chunk(i) else {
            continue;
        };
        for e in &c.events {
            match &e.kind {
                EventKind::ChannelOpen { channel, kind } => {
                    if matches!(
                        kind,
                        ChannelKind::Shell { pty: Some(_) }
                            | ChannelKind::Exec { pty: Some(_), .. }
                    ) {
                        return *channel;
                    }
                }
                EventKind::Output { channel, .. } => return *channel,
                _ => {}
            }
        }
    }
    ChannelId(0)
}

impl<R: Read + Seek> Iterator for Player<'_, R> {
    type Item = Result<PlayStep, RecordingError>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.started
            && let Err(e) = self.start()
        {
            self.done = true;
            return Some(Err(e));
        }
        if let Err(e) = self.fill() {
            self.done = true;
            return Some(Err(e));
        }
        self.pending.pop_front().map(Ok)
    }
}
