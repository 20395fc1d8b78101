//! An RDP session's desktop in psm-proxy's live server ([`psm_proxy::live::desktop`]):
//! viewers in the admin web UI get PNG tiles of what changed on the session's decoded
//! screen, and a viewer who joined with control types and clicks into the session. Their
//! input goes to the target and into the recording like the user's own, and the change of
//! hands is announced ("bob is typing").

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use psm_proxy::SessionControl;
use psm_proxy::live::desktop::{Desktop, DesktopInput, DesktopUpdate, DesktopWatch};
use tokio::sync::mpsc;

use crate::input::{InputEvent, scancode_for_key};
use crate::recorder::DesktopRecorder;
use crate::screen::{DesktopScreen, ScreenWatch};

/// A live RDP session's desktop.
pub struct RdpDesktop {
    screen: DesktopScreen,
    control: Arc<SessionControl>,
    input: mpsc::Sender<InputEvent>,
    recorder: DesktopRecorder,
}

impl std::fmt::Debug for RdpDesktop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdpDesktop")
            .field("size", &self.screen.size())
            .finish_non_exhaustive()
    }
}

impl RdpDesktop {
    pub(crate) fn new(
        screen: DesktopScreen,
        control: Arc<SessionControl>,
        input: mpsc::Sender<InputEvent>,
        recorder: DesktopRecorder,
    ) -> Self {
        Self {
            screen,
            control,
            input,
            recorder,
        }
    }
}

/// The RDP input event for a viewer's input (`None`: a key the scan-code table lacks).
pub fn input_event(input: &DesktopInput) -> Option<InputEvent> {
    Some(match *input {
        DesktopInput::Key { ref key, down } => {
            let (code, extended) = scancode_for_key(key)?;
            InputEvent::Key {
                code,
                extended,
                down,
            }
        }
        DesktopInput::Move { x, y } => InputEvent::Move { x, y },
        DesktopInput::Button { button, down, x, y } => InputEvent::Button { button, down, x, y },
        DesktopInput::Wheel { delta, x, y } => InputEvent::Wheel { delta, x, y },
    })
}

impl Desktop for RdpDesktop {
    fn size(&self) -> (u16, u16) {
        self.screen.size()
    }

    fn watch(&self) -> Box<dyn DesktopWatch> {
        Box::new(RdpWatch {
            watch: self.screen.watch(),
            told: None,
            encoding: None,
        })
    }

    fn viewer_input(&self, viewer: &str, input: DesktopInput) -> Result<(), String> {
        if self.control.termination().is_some() {
            return Err("the session is ending".into());
        }
        let event =
            input_event(&input).ok_or_else(|| "a key this gateway does not know".to_owned())?;
        // Pointer moves are not typing; keys and clicks change hands.
        if !matches!(event, InputEvent::Move { .. }) {
            self.control.viewer_typed(viewer);
        }
        self.recorder.input(event);
        self.input
            .try_send(event)
            .map_err(|_| "the target is not keeping up: input dropped".to_owned())
    }
}

struct RdpWatch {
    watch: ScreenWatch,
    told: Option<(u16, u16)>,
    /// A tile being encoded (kept across a cancelled `next`, so no change is lost).
    encoding: Option<(
        crate::screen::Rect,
        tokio::task::JoinHandle<Option<Vec<u8>>>,
    )>,
}

#[async_trait]
impl DesktopWatch for RdpWatch {
    async fn next(&mut self) -> Option<DesktopUpdate> {
        loop {
            if let Some((rect, job)) = &mut self.encoding {
                let rect = *rect;
                let png = job.await.ok().flatten();
                self.encoding = None;
                match png {
                    Some(png) => {
                        return Some(DesktopUpdate::Tile {
                            x: rect.x,
                            y: rect.y,
                            width: rect.width,
                            height: rect.height,
                            png: Bytes::from(png),
                        });
                    }
                    None => {
                        tracing::warn!("a live tile could not be encoded; skipped");
                        continue;
                    }
                }
            }
            let size = self.watch.screen().size();
            if self.told != Some(size) {
                // First, and after the target resized its desktop (the whole screen is
                // then damaged, so the tiles that follow repaint it).
                self.told = Some(size);
                return Some(DesktopUpdate::Size {
                    width: size.0,
                    height: size.1,
                });
            }
            self.watch.changed().await;
            if self.watch.screen().size() != size {
                continue;
            }
            let Some(region) = self.watch.take_region() else {
                continue;
            };
            let rect = region.rect;
            let job = tokio::task::spawn_blocking(move || region.to_png().ok());
            self.encoding = Some((rect, job));
        }
    }
}
