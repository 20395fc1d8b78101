//! The messages of the live websocket (`docs/live.md`, "Messages"): what a browser may send
//! ([`ClientMessage`], parsed with bounds) and what the gateway sends ([`ServerMessage`]).

use serde::{Deserialize, Serialize};

use psm_core::live::{LiveMode, PendingApproval, ViewerInfo, Viewport};

use super::desktop::{DesktopInput, PointerButton};

/// The largest message the gateway accepts (text or binary).
pub const MAX_MESSAGE: usize = 64 << 10;
/// The most input one message may carry.
pub const MAX_INPUT: usize = 16 << 10;
/// The longest reason (characters).
pub const MAX_REASON: usize = 512;
/// The longest key code of a desktop `key` message (`KeyboardEvent.code`).
pub const MAX_KEY: usize = 32;

/// What a browser sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientMessage {
    /// Keystrokes.
    Input(Vec<u8>),
    /// The browser terminal's size.
    Resize {
        /// Columns (1..=1000).
        cols: u16,
        /// Rows (1..=500).
        rows: u16,
    },
    /// Pause the session.
    Pause(String),
    /// Resume it.
    Resume,
    /// Lock it.
    Lock(String),
    /// Unlock it.
    Unlock,
    /// End it.
    Terminate(String),
    /// Approve a held command.
    Approve(u64),
    /// Deny a held command.
    Deny(u64, String),
    /// Are you there?
    Ping,
    /// Keyboard or pointer input to a desktop (a viewer with control of a graphical
    /// session: [`super::desktop`]).
    Desktop(DesktopInput),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    cols: Option<u32>,
    #[serde(default)]
    rows: Option<u32>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    down: Option<bool>,
    #[serde(default)]
    x: Option<u16>,
    #[serde(default)]
    y: Option<u16>,
    #[serde(default)]
    button: Option<String>,
    #[serde(default)]
    delta: Option<i16>,
}

/// Why a message was refused (the text is sent back in an `error` message; it never echoes
/// the message's content).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadMessage(pub String);

fn bad(s: impl Into<String>) -> BadMessage {
    BadMessage(s.into())
}

impl ClientMessage {
    /// Parses a text message.
    ///
    /// ```
    /// use psm_proxy::live::protocol::ClientMessage;
    /// assert_eq!(ClientMessage::parse(r#"{"type":"input","data":"ls\r"}"#).unwrap(),
    ///     ClientMessage::Input(b"ls\r".to_vec()));
    /// assert!(ClientMessage::parse(r#"{"type":"resize","cols":0,"rows":5}"#).is_err());
    /// assert!(ClientMessage::parse("not json").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, BadMessage> {
        if text.len() > MAX_MESSAGE {
            return Err(bad(format!("a message is at most {MAX_MESSAGE} bytes")));
        }
        let raw: Raw = serde_json::from_str(text).map_err(|e| {
            bad(match e.classify() {
                serde_json::error::Category::Data => {
                    "the message has an unknown field or a field of the wrong type".to_owned()
                }
                _ => "the message is not a JSON object".to_owned(),
            })
        })?;
        let reason = || {
            let r = raw.reason.clone().unwrap_or_default();
            if r.chars().count() > MAX_REASON {
                Err(bad(format!("a reason is at most {MAX_REASON} characters")))
            } else {
                Ok(r)
            }
        };
        let id = || {
            raw.id
                .ok_or_else(|| bad(format!("{} needs an id", raw.kind)))
        };
        Ok(match raw.kind.as_str() {
            "input" => {
                let data = raw.data.clone().ok_or_else(|| bad("input needs data"))?;
                if data.len() > MAX_INPUT {
                    return Err(bad(format!("input is at most {MAX_INPUT} bytes a message")));
                }
                ClientMessage::Input(data.into_bytes())
            }
            "resize" => {
                let (Some(cols), Some(rows)) = (raw.cols, raw.rows) else {
                    return Err(bad("resize needs cols and rows"));
                };
                if !(1..=1000).contains(&cols) || !(1..=500).contains(&rows) {
                    return Err(bad("resize: cols 1..=1000, rows 1..=500"));
                }
                ClientMessage::Resize {
                    cols: cols as u16,
                    rows: rows as u16,
                }
            }
            "pause" => ClientMessage::Pause(reason()?),
            "resume" => ClientMessage::Resume,
            "lock" => ClientMessage::Lock(reason()?),
            "unlock" => ClientMessage::Unlock,
            "terminate" => ClientMessage::Terminate(reason()?),
            "approve" => ClientMessage::Approve(id()?),
            "deny" => ClientMessage::Deny(id()?, reason()?),
            "ping" => ClientMessage::Ping,
            "key" => {
                let key = raw.key.clone().ok_or_else(|| bad("key needs key"))?;
                if key.is_empty()
                    || key.len() > MAX_KEY
                    || !key.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    return Err(bad("key: a KeyboardEvent.code such as KeyA"));
                }
                let down = raw.down.ok_or_else(|| bad("key needs down"))?;
                ClientMessage::Desktop(DesktopInput::Key { key, down })
            }
            "move" | "button" | "wheel" => {
                let (Some(x), Some(y)) = (raw.x, raw.y) else {
                    return Err(bad(format!("{} needs x and y", raw.kind)));
                };
                ClientMessage::Desktop(match raw.kind.as_str() {
                    "move" => DesktopInput::Move { x, y },
                    "button" => DesktopInput::Button {
                        button: raw
                            .button
                            .as_deref()
                            .and_then(PointerButton::parse)
                            .ok_or_else(|| bad("button: left, middle or right"))?,
                        down: raw.down.ok_or_else(|| bad("button needs down"))?,
                        x,
                        y,
                    },
                    _ => DesktopInput::Wheel {
                        delta: raw.delta.ok_or_else(|| bad("wheel needs delta"))?,
                        x,
                        y,
                    },
                })
            }
            _ => return Err(bad("unknown message type")),
        })
    }

    /// The wire name of the message (for errors and logs).
    pub fn name(&self) -> &'static str {
        match self {
            ClientMessage::Input(_) => "input",
            ClientMessage::Resize { .. } => "resize",
            ClientMessage::Pause(_) => "pause",
            ClientMessage::Resume => "resume",
            ClientMessage::Lock(_) => "lock",
            ClientMessage::Unlock => "unlock",
            ClientMessage::Terminate(_) => "terminate",
            ClientMessage::Approve(_) => "approve",
            ClientMessage::Deny(..) => "deny",
            ClientMessage::Ping => "ping",
            ClientMessage::Desktop(DesktopInput::Key { .. }) => "key",
            ClientMessage::Desktop(DesktopInput::Move { .. }) => "move",
            ClientMessage::Desktop(DesktopInput::Button { .. }) => "button",
            ClientMessage::Desktop(DesktopInput::Wheel { .. }) => "wheel",
        }
    }
}

/// What the gateway sends (text frames; output goes in binary frames).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ServerMessage {
    /// The first message.
    Hello {
        /// The session id (`null` for a browser terminal that could not start).
        session: Option<String>,
        /// The user.
        user: String,
        /// The target.
        target: String,
        /// The account on the target.
        account: String,
        /// `view`, `control` or `terminal`.
        mode: String,
        /// Who the connection is.
        viewer: String,
        /// When the session started (RFC 3339).
        started: String,
        /// Paused now.
        paused: bool,
        /// Locked now.
        locked: bool,
        /// The viewers.
        viewers: Vec<ViewerInfo>,
        /// Commands held for approval.
        approvals: Vec<PendingApproval>,
        /// The viewer's screen from the ticket.
        viewport: Option<Viewport>,
    },
    /// Reset the terminal, resize it, write `data`.
    Screen {
        /// The channel.
        channel: u32,
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
        /// The screen as escape sequences.
        data: String,
    },
    /// The session shows a desktop of this size (after `hello`, and when the target
    /// resizes it): binary frames that follow are PNG tiles ([`super::desktop`]).
    Desktop {
        /// Pixels.
        width: u16,
        /// Pixels.
        height: u16,
    },
    /// The followed terminal changed size.
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// Paused, resumed, locked or unlocked.
    State {
        /// Paused now.
        paused: bool,
        /// Locked now.
        locked: bool,
        /// Who changed it.
        by: String,
        /// Why.
        reason: String,
    },
    /// The viewers changed.
    Viewers {
        /// Who watches.
        viewers: Vec<ViewerInfo>,
    },
    /// The typist changed.
    Typing {
        /// Who.
        who: String,
        /// `user` or `viewer`.
        role: String,
    },
    /// A command is held for approval.
    Approval {
        /// Its id.
        id: u64,
        /// The command line.
        command: String,
        /// The rule.
        rule: String,
        /// The rule's message.
        message: Option<String>,
    },
    /// A held command was decided.
    ApprovalResolved {
        /// Its id.
        id: u64,
        /// Approved or denied.
        approved: bool,
        /// By whom.
        by: String,
        /// Why.
        reason: String,
    },
    /// A policy rule fired.
    Policy {
        /// Its action.
        action: String,
        /// The rule.
        rule: String,
        /// What it fired on.
        subject: String,
        /// What the gateway did.
        outcome: String,
    },
    /// A notice the user was shown.
    Notice {
        /// The text.
        text: String,
    },
    /// The last message was refused.
    Error {
        /// Why.
        message: String,
    },
    /// Answer to `ping`.
    Pong,
    /// The session ended.
    Ended {
        /// Why.
        reason: String,
    },
}

impl ServerMessage {
    /// The JSON text.
    pub fn to_text(&self) -> String {
        // Serializing these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"type":"error"}"#.to_owned())
    }
}

/// The mode names of the protocol.
pub fn mode_name(mode: Option<LiveMode>) -> &'static str {
    match mode {
        Some(LiveMode::View) => "view",
        Some(LiveMode::Control) => "control",
        None => "terminal",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_message_parses_and_bad_ones_are_refused_without_echo() {
        for (text, want) in [
            (
                r#"{"type":"pause","reason":"why"}"#,
                ClientMessage::Pause("why".into()),
            ),
            (r#"{"type":"resume"}"#, ClientMessage::Resume),
            (r#"{"type":"lock"}"#, ClientMessage::Lock(String::new())),
            (r#"{"type":"unlock"}"#, ClientMessage::Unlock),
            (
                r#"{"type":"terminate","reason":"x"}"#,
                ClientMessage::Terminate("x".into()),
            ),
            (r#"{"type":"approve","id":3}"#, ClientMessage::Approve(3)),
            (
                r#"{"type":"deny","id":3,"reason":"no"}"#,
                ClientMessage::Deny(3, "no".into()),
            ),
            (r#"{"type":"ping"}"#, ClientMessage::Ping),
            (
                r#"{"type":"key","key":"KeyA","down":true}"#,
                ClientMessage::Desktop(DesktopInput::Key {
                    key: "KeyA".into(),
                    down: true,
                }),
            ),
            (
                r#"{"type":"button","button":"right","down":false,"x":3,"y":4}"#,
                ClientMessage::Desktop(DesktopInput::Button {
                    button: PointerButton::Right,
                    down: false,
                    x: 3,
                    y: 4,
                }),
            ),
            (
                r#"{"type":"wheel","delta":-120,"x":0,"y":65535}"#,
                ClientMessage::Desktop(DesktopInput::Wheel {
                    delta: -120,
                    x: 0,
                    y: 65535,
                }),
            ),
            (
                r#"{"type":"move","x":10,"y":20}"#,
                ClientMessage::Desktop(DesktopInput::Move { x: 10, y: 20 }),
            ),
            (
                r#"{"type":"resize","cols":120,"rows":40}"#,
                ClientMessage::Resize {
                    cols: 120,
                    rows: 40,
                },
            ),
        ] {
            assert_eq!(ClientMessage::parse(text).unwrap(), want, "{text}");
        }
        for text in [
            r#"{"type":"approve"}"#,
            r#"{"type":"input"}"#,
            r#"{"type":"resize","cols":1001,"rows":5}"#,
            r#"{"type":"hunter2-secret"}"#,
            r#"{"type":"key","key":"hunter2 secret","down":true}"#,
            r#"{"type":"key","key":"KeyA"}"#,
            r#"{"type":"move","x":-1,"y":2}"#,
            r#"{"type":"move","x":70000,"y":2}"#,
            r#"{"type":"button","button":"hunter2","down":true,"x":1,"y":2}"#,
            r#"{"type":"wheel","x":1,"y":2}"#,
            r#"{"type":"pause","evil":"hunter2-secret"}"#,
            r#"["type"]"#,
            "",
        ] {
            let e = ClientMessage::parse(text).unwrap_err();
            assert!(!e.0.contains("hunter2"), "{e}");
        }
        let long = format!(
            r#"{{"type":"pause","reason":"{}"}}"#,
            "x".repeat(MAX_REASON + 1)
        );
        assert!(ClientMessage::parse(&long).is_err());
        let big = format!(
            r#"{{"type":"input","data":"{}"}}"#,
            "x".repeat(MAX_INPUT + 1)
        );
        assert!(ClientMessage::parse(&big).is_err());
    }

    #[test]
    fn server_messages_have_the_documented_names() {
        let t = ServerMessage::ApprovalResolved {
            id: 1,
            approved: true,
            by: "bob".into(),
            reason: String::new(),
        }
        .to_text();
        assert!(t.starts_with(r#"{"type":"approval-resolved""#), "{t}");
        assert_eq!(ServerMessage::Pong.to_text(), r#"{"type":"pong"}"#);
    }

    proptest! {
        #[test]
        fn any_text_gets_an_answer(text in ".{0,300}") {
            let _ = ClientMessage::parse(&text);
        }
    }
}
