//! The input timeline of a graphical recording: what the user typed (as the gateway
//! recorded it on its keyboard channel, `rdp-keyboard`), what was redacted, and where they
//! clicked (the pointer channel, `rdp-pointer`), with times, for the replay page.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use psm_recording::export::{Item, walk};
use psm_recording::{ChannelId, ChannelKind, EventKind};
use serde::Serialize;

use super::WebState;
use super::api::parse_id;
use super::guard::WebUser;
use super::recordings::{error_text, with_reader};
use crate::error::ApiError;

/// Most entries returned (a longer session's later input is cut, and the answer says so).
const MAX_ENTRIES: usize = 5_000;
/// Most characters in one entry of typed text.
const MAX_TEXT: usize = 400;
/// Keys typed closer together than this (and not across a Return) make one entry.
const GAP_US: u64 = 2_000_000;

/// One moment of the timeline.
#[derive(Debug, Serialize)]
pub(crate) struct InputEntry {
    /// Seconds since the start.
    t: f64,
    /// `keys` (typed text; Return ends an entry), `redacted` (keys recorded only as
    /// pressed), `click` (a button pressed: `left 300 250`).
    kind: &'static str,
    text: String,
}

/// The timeline.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InputTimeline {
    duration: f64,
    entries: Vec<InputEntry>,
    /// Entries past [`MAX_ENTRIES`] were left out.
    truncated: bool,
}

fn secs(us: u64) -> f64 {
    us as f64 / 1e6
}

/// Builds the timeline from a recording's events.
#[derive(Default)]
struct Builder {
    names: BTreeMap<ChannelId, String>,
    entries: Vec<InputEntry>,
    truncated: bool,
    /// When the last keyboard event was, and whether the open entry may take more keys.
    last_key_us: u64,
    open: bool,
}

impl Builder {
    fn push(&mut self, entry: InputEntry) {
        if self.entries.len() < MAX_ENTRIES {
            self.entries.push(entry);
        } else {
            self.truncated = true;
        }
    }

    fn keys(&mut self, us: u64, kind: &'static str, text: &str) {
        let joins = self.open
            && us.saturating_sub(self.last_key_us) < GAP_US
            && self.entries.last().is_some_and(|e| e.kind == kind);
        self.last_key_us = us;
        if joins && let Some(last) = self.entries.last_mut() {
            if kind == "keys" && last.text.chars().count() < MAX_TEXT {
                last.text.push_str(text);
            }
        } else {
            self.push(InputEntry {
                t: secs(us),
                kind,
                text: text.chars().take(MAX_TEXT).collect(),
            });
        }
        self.open = !text.ends_with('\r');
    }

    fn event(&mut self, us: u64, kind: &EventKind) {
        match kind {
            EventKind::ChannelOpen {
                channel,
                kind: ChannelKind::Other { name },
            } => {
                self.names.insert(*channel, name.clone());
            }
            EventKind::Input { channel, data, .. } => {
                let name = self.names.get(channel).cloned();
                match name.as_deref() {
                    Some("rdp-keyboard") => self.keys(us, "keys", &String::from_utf8_lossy(data)),
                    Some("rdp-pointer") => {
                        for line in String::from_utf8_lossy(data).lines() {
                            if let Some(rest) = line.strip_prefix("down ") {
                                self.open = false;
                                self.push(InputEntry {
                                    t: secs(us),
                                    kind: "click",
                                    text: rest.chars().take(64).collect(),
                                });
                            }
                        }
                    }
                    _ => {}
                }
            }
            EventKind::InputRedacted { channel }
                if self.names.get(channel).is_some_and(|n| n == "rdp-keyboard") =>
            {
                self.keys(us, "redacted", "");
            }
            _ => {}
        }
    }
}

/// GET /ui/api/recordings/{id}/input: a graphical session's typed text, redactions and
/// clicks in time order (empty for a terminal session, whose keys are its commands).
pub(crate) async fn input(
    State(state): State<WebState>,
    viewer: WebUser,
    Path(id): Path<String>,
) -> Result<axum::Json<InputTimeline>, ApiError> {
    viewer.require_view(&state, "replay recordings").await?;
    let id = parse_id(&id)?;
    let v = with_reader(&state, id, |r| {
        let mut b = Builder::default();
        let unreadable = |e: psm_recording::RecordingError| {
            ApiError::new(
                422,
                "unreadable-recording",
                format!("the recording cannot be read: {}", error_text(&e)),
            )
        };
        walk(
            r,
            |item| {
                if let Item::Event(e) = item {
                    b.event(e.time.0, &e.kind);
                }
                Ok(())
            },
            |_, _| {},
        )
        .map_err(unreadable)?;
        Ok(InputTimeline {
            duration: secs(r.duration().0),
            entries: b.entries,
            truncated: b.truncated,
        })
    })
    .await?;
    Ok(axum::Json(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_grouped_into_lines_and_clicks_stand_alone() {
        let mut b = Builder::default();
        let open = |c: u32, n: &str| EventKind::ChannelOpen {
            channel: ChannelId(c),
            kind: ChannelKind::Other { name: n.into() },
        };
        let key = |t: &str| EventKind::Input {
            channel: ChannelId(1),
            data: t.as_bytes().to_vec(),
            echo_off: false,
        };
        b.event(0, &open(1, "rdp-keyboard"));
        b.event(0, &open(2, "rdp-pointer"));
        b.event(1_000_000, &key("<Win+R>"));
        b.event(1_100_000, &key("l"));
        b.event(1_200_000, &key("s\r"));
        b.event(1_300_000, &key("x"));
        b.event(
            1_400_000,
            &EventKind::InputRedacted {
                channel: ChannelId(1),
            },
        );
        b.event(
            1_500_000,
            &EventKind::InputRedacted {
                channel: ChannelId(1),
            },
        );
        b.event(
            2_000_000,
            &EventKind::Input {
                channel: ChannelId(2),
                data: b"move 1 2\ndown left 300 250\nup left 300 250\n".to_vec(),
                echo_off: false,
            },
        );
        b.event(9_000_000, &key("y"));
        let got: Vec<(f64, &str, &str)> = b
            .entries
            .iter()
            .map(|e| (e.t, e.kind, e.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (1.0, "keys", "<Win+R>ls\r"),
                (1.3, "keys", "x"),
                (1.4, "redacted", ""),
                (2.0, "click", "left 300 250"),
                (9.0, "keys", "y"),
            ]
        );
    }
}
