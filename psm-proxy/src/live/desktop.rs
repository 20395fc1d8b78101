//! Graphical sessions in the live server. A protocol crate whose sessions show a desktop
//! (RDP) hands the registry a [`Desktop`] through [`ProxySession::desktop`]; the live
//! server then sends each viewer the desktop's size and PNG tiles of what changed, and takes
//! keyboard and pointer input from a viewer who joined with control. Pause, lock, terminate,
//! approvals and the viewer list are the same as for terminal sessions (the session's
//! [`SessionControl`](crate::SessionControl)).
//!
//! On the wire (`docs/live.md`): after `hello`, the server sends
//! `{"type":"desktop","width":W,"height":H}` (again whenever the target resizes its
//! desktop), then binary tiles ([`tile_frame`]): byte [`TILE`], x, y, width, height as
//! little-endian u16, then a PNG of that region. A viewer with control sends
//! `{"type":"key","key":"KeyA","down":true}` (`key` is the W3C `KeyboardEvent.code`),
//! `{"type":"move","x":10,"y":20}`, `{"type":"button","button":"left","down":true,"x":10,"y":20}`
//! and `{"type":"wheel","delta":120,"x":10,"y":20}`.
//!
//! A desktop's watch never queues tiles for a slow viewer: changes merge until the viewer
//! takes the next one, so a viewer costs one pending region, whatever its speed.
//!
//! [`ProxySession::desktop`]: crate::ProxySession::desktop

use async_trait::async_trait;
use bytes::Bytes;

/// The first byte of a binary tile frame.
pub const TILE: u8 = 1;

/// One change of a desktop, as a viewer is sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DesktopUpdate {
    /// The desktop is `width`×`height` pixels (first, and after the target resized it):
    /// a viewer resets its canvas; tiles that follow are for this size.
    Size {
        /// Pixels.
        width: u16,
        /// Pixels.
        height: u16,
    },
    /// The pixels of a region, as a PNG.
    Tile {
        /// Left.
        x: u16,
        /// Top.
        y: u16,
        /// Width of the region (and of the PNG).
        width: u16,
        /// Height.
        height: u16,
        /// The PNG.
        png: Bytes,
    },
}

/// A binary tile frame: [`TILE`], x, y, width, height (u16, little-endian), the PNG.
///
/// ```
/// let f = psm_proxy::live::desktop::tile_frame(1, 2, 3, 4, b"PNG");
/// assert_eq!(f, [1, 1, 0, 2, 0, 3, 0, 4, 0, b'P', b'N', b'G']);
/// ```
pub fn tile_frame(x: u16, y: u16, width: u16, height: u16, png: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(9 + png.len());
    frame.push(TILE);
    for v in [x, y, width, height] {
        frame.extend_from_slice(&v.to_le_bytes());
    }
    frame.extend_from_slice(png);
    frame
}

/// A pointer button.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PointerButton {
    /// Left.
    Left,
    /// Middle (wheel click).
    Middle,
    /// Right.
    Right,
}

impl PointerButton {
    /// `left`, `middle`, `right`.
    pub const fn as_str(self) -> &'static str {
        match self {
            PointerButton::Left => "left",
            PointerButton::Middle => "middle",
            PointerButton::Right => "right",
        }
    }

    /// `left`, `middle`, `right`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "left" => PointerButton::Left,
            "middle" => PointerButton::Middle,
            "right" => PointerButton::Right,
            _ => return None,
        })
    }
}

/// Input a viewer with control sends to a desktop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DesktopInput {
    /// A key, by its W3C `KeyboardEvent.code` (`KeyA`, `Enter`, `ControlLeft`): the
    /// physical key, whatever the viewer's keyboard layout; the protocol crate maps it.
    Key {
        /// The code (at most 32 characters).
        key: String,
        /// Pressed or released.
        down: bool,
    },
    /// The pointer moved.
    Move {
        /// X.
        x: u16,
        /// Y.
        y: u16,
    },
    /// A button was pressed or released at `x`, `y`.
    Button {
        /// Which.
        button: PointerButton,
        /// Pressed or released.
        down: bool,
        /// X.
        x: u16,
        /// Y.
        y: u16,
    },
    /// The wheel turned (positive: away from the user; 120 a notch).
    Wheel {
        /// Rotation.
        delta: i16,
        /// X.
        x: u16,
        /// Y.
        y: u16,
    },
}

/// A session's desktop, as the live server shows it (implemented by protocol crates).
pub trait Desktop: Send + Sync {
    /// Width and height in pixels now.
    fn size(&self) -> (u16, u16);

    /// A new viewer's stream: its [`Size`](DesktopUpdate::Size) and the whole desktop
    /// first, then what changed (merged while the viewer is busy).
    fn watch(&self) -> Box<dyn DesktopWatch>;

    /// Input from `viewer`, who joined with control. `Err(why)`: refused (the session
    /// ended, an unknown key); the live server tells the viewer.
    fn viewer_input(&self, viewer: &str, input: DesktopInput) -> Result<(), String>;
}

/// One viewer's stream of a [`Desktop`].
#[async_trait]
pub trait DesktopWatch: Send {
    /// The next update; `None` when the desktop is gone (the session ended). Cancel-safe:
    /// a change not taken stays pending.
    async fn next(&mut self) -> Option<DesktopUpdate>;
}
