//! Keyboard and mouse input from the user (native client or browser), on its way to the
//! target, and its text form in recordings.

use ironrdp::pdu::input::MousePdu;
use ironrdp::pdu::input::fast_path::{FastPathInputEvent, KeyboardFlags, SynchronizeFlags};
use ironrdp::pdu::input::mouse::PointerFlags;

use psm_proxy::live::PointerButton;

/// The RDP pointer flag of a button.
fn button_flag(button: PointerButton) -> PointerFlags {
    match button {
        PointerButton::Left => PointerFlags::LEFT_BUTTON,
        PointerButton::Right => PointerFlags::RIGHT_BUTTON,
        PointerButton::Middle => PointerFlags::MIDDLE_BUTTON_OR_WHEEL,
    }
}

/// One input event, protocol-neutral.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InputEvent {
    /// A key by PC/AT set-1 scan code.
    Key {
        /// The scan code.
        code: u8,
        /// The E0 prefix (arrows, right Ctrl...).
        extended: bool,
        /// Pressed (true) or released.
        down: bool,
    },
    /// A key by Unicode code unit.
    Unicode {
        /// UTF-16 code unit.
        unit: u16,
        /// Pressed or released.
        down: bool,
    },
    /// The pointer moved to `x, y`.
    Move {
        /// X.
        x: u16,
        /// Y.
        y: u16,
    },
    /// A button at `x, y`.
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
    /// Vertical wheel, in wheel units (positive: away from the user).
    Wheel {
        /// Rotation.
        delta: i16,
        /// X.
        x: u16,
        /// Y.
        y: u16,
    },
    /// Lock-key state (sent on focus).
    Sync {
        /// Caps lock.
        caps: bool,
        /// Num lock.
        num: bool,
        /// Scroll lock.
        scroll: bool,
    },
}

impl InputEvent {
    /// The fast-path event the target receives.
    pub fn to_fast_path(self) -> FastPathInputEvent {
        match self {
            InputEvent::Key {
                code,
                extended,
                down,
            } => {
                let mut f = KeyboardFlags::empty();
                if !down {
                    f |= KeyboardFlags::RELEASE;
                }
                if extended {
                    f |= KeyboardFlags::EXTENDED;
                }
                FastPathInputEvent::KeyboardEvent(f, code)
            }
            InputEvent::Unicode { unit, down } => FastPathInputEvent::UnicodeKeyboardEvent(
                if down {
                    KeyboardFlags::empty()
                } else {
                    KeyboardFlags::RELEASE
                },
                unit,
            ),
            InputEvent::Move { x, y } => FastPathInputEvent::MouseEvent(MousePdu {
                flags: PointerFlags::MOVE,
                number_of_wheel_rotation_units: 0,
                x_position: x,
                y_position: y,
            }),
            InputEvent::Button { button, down, x, y } => {
                let mut flags = button_flag(button);
                if down {
                    flags |= PointerFlags::DOWN;
                }
                FastPathInputEvent::MouseEvent(MousePdu {
                    flags,
                    number_of_wheel_rotation_units: 0,
                    x_position: x,
                    y_position: y,
                })
            }
            InputEvent::Wheel { delta, x, y } => {
                let mut flags = PointerFlags::VERTICAL_WHEEL;
                if delta < 0 {
                    flags |= PointerFlags::WHEEL_NEGATIVE;
                }
                FastPathInputEvent::MouseEvent(MousePdu {
                    flags,
                    number_of_wheel_rotation_units: delta.clamp(-255, 255),
                    x_position: x,
                    y_position: y,
                })
            }
            InputEvent::Sync { caps, num, scroll } => {
                let mut f = SynchronizeFlags::empty();
                if caps {
                    f |= SynchronizeFlags::CAPS_LOCK;
                }
                if num {
                    f |= SynchronizeFlags::NUM_LOCK;
                }
                if scroll {
                    f |= SynchronizeFlags::SCROLL_LOCK;
                }
                FastPathInputEvent::SyncEvent(f)
            }
        }
    }

    /// The pointer position this event carries, if any.
    pub fn position(self) -> Option<(u16, u16)> {
        match self {
            InputEvent::Move { x, y }
            | InputEvent::Button { x, y, .. }
            | InputEvent::Wheel { x, y, .. } => Some((x, y)),
            _ => None,
        }
    }
}

/// The PC/AT set-1 scan code (and the E0 prefix) of a key named by its W3C
/// `KeyboardEvent.code` (`KeyA`, `Enter`, `ArrowUp`): what browsers send, whatever the
/// keyboard layout. `None` for a key this table does not know.
///
/// ```
/// use psm_proxy_rdp::input::scancode_for_key;
/// assert_eq!(scancode_for_key("KeyA"), Some((0x1e, false)));
/// assert_eq!(scancode_for_key("ArrowUp"), Some((0x48, true)));
/// assert_eq!(scancode_for_key("Hunter2"), None);
/// ```
pub fn scancode_for_key(key: &str) -> Option<(u8, bool)> {
    KEY_CODES
        .iter()
        .find(|(name, _, _)| *name == key)
        .map(|&(_, code, extended)| (code, extended))
}

/// `KeyboardEvent.code` → set-1 scan code, E0 prefix.
const KEY_CODES: [(&str, u8, bool); 103] = [
    ("Escape", 0x01, false),
    ("Digit1", 0x02, false),
    ("Digit2", 0x03, false),
    ("Digit3", 0x04, false),
    ("Digit4", 0x05, false),
    ("Digit5", 0x06, false),
    ("Digit6", 0x07, false),
    ("Digit7", 0x08, false),
    ("Digit8", 0x09, false),
    ("Digit9", 0x0a, false),
    ("Digit0", 0x0b, false),
    ("Minus", 0x0c, false),
    ("Equal", 0x0d, false),
    ("Backspace", 0x0e, false),
    ("Tab", 0x0f, false),
    ("KeyQ", 0x10, false),
    ("KeyW", 0x11, false),
    ("KeyE", 0x12, false),
    ("KeyR", 0x13, false),
    ("KeyT", 0x14, false),
    ("KeyY", 0x15, false),
    ("KeyU", 0x16, false),
    ("KeyI", 0x17, false),
    ("KeyO", 0x18, false),
    ("KeyP", 0x19, false),
    ("BracketLeft", 0x1a, false),
    ("BracketRight", 0x1b, false),
    ("Enter", 0x1c, false),
    ("ControlLeft", 0x1d, false),
    ("KeyA", 0x1e, false),
    ("KeyS", 0x1f, false),
    ("KeyD", 0x20, false),
    ("KeyF", 0x21, false),
    ("KeyG", 0x22, false),
    ("KeyH", 0x23, false),
    ("KeyJ", 0x24, false),
    ("KeyK", 0x25, false),
    ("KeyL", 0x26, false),
    ("Semicolon", 0x27, false),
    ("Quote", 0x28, false),
    ("Backquote", 0x29, false),
    ("ShiftLeft", 0x2a, false),
    ("Backslash", 0x2b, false),
    ("KeyZ", 0x2c, false),
    ("KeyX", 0x2d, false),
    ("KeyC", 0x2e, false),
    ("KeyV", 0x2f, false),
    ("KeyB", 0x30, false),
    ("KeyN", 0x31, false),
    ("KeyM", 0x32, false),
    ("Comma", 0x33, false),
    ("Period", 0x34, false),
    ("Slash", 0x35, false),
    ("ShiftRight", 0x36, false),
    ("NumpadMultiply", 0x37, false),
    ("AltLeft", 0x38, false),
    ("Space", 0x39, false),
    ("CapsLock", 0x3a, false),
    ("F1", 0x3b, false),
    ("F2", 0x3c, false),
    ("F3", 0x3d, false),
    ("F4", 0x3e, false),
    ("F5", 0x3f, false),
    ("F6", 0x40, false),
    ("F7", 0x41, false),
    ("F8", 0x42, false),
    ("F9", 0x43, false),
    ("F10", 0x44, false),
    ("NumLock", 0x45, false),
    ("ScrollLock", 0x46, false),
    ("Numpad7", 0x47, false),
    ("Numpad8", 0x48, false),
    ("Numpad9", 0x49, false),
    ("NumpadSubtract", 0x4a, false),
    ("Numpad4", 0x4b, false),
    ("Numpad5", 0x4c, false),
    ("Numpad6", 0x4d, false),
    ("NumpadAdd", 0x4e, false),
    ("Numpad1", 0x4f, false),
    ("Numpad2", 0x50, false),
    ("Numpad3", 0x51, false),
    ("Numpad0", 0x52, false),
    ("NumpadDecimal", 0x53, false),
    ("IntlBackslash", 0x56, false),
    ("F11", 0x57, false),
    ("F12", 0x58, false),
    ("NumpadEnter", 0x1c, true),
    ("ControlRight", 0x1d, true),
    ("NumpadDivide", 0x35, true),
    ("AltRight", 0x38, true),
    ("Home", 0x47, true),
    ("ArrowUp", 0x48, true),
    ("PageUp", 0x49, true),
    ("ArrowLeft", 0x4b, true),
    ("ArrowRight", 0x4d, true),
    ("End", 0x4f, true),
    ("ArrowDown", 0x50, true),
    ("PageDown", 0x51, true),
    ("Insert", 0x52, true),
    ("Delete", 0x53, true),
    ("MetaLeft", 0x5b, true),
    ("MetaRight", 0x5c, true),
    ("ContextMenu", 0x5d, true),
];

/// Turns key events into the text a recording's keyboard channel holds: printable keys as
/// the characters they type on a US layout (Shift and Caps Lock followed), Return as `\r`,
/// Backspace as `\x7f`, Tab as `\t`, other keys as `<Name>`, and Ctrl/Alt chords as
/// `<C-x>` / `<A-x>`. Releases type nothing.
#[derive(Clone, Debug, Default)]
pub struct KeyText {
    shift: bool,
    ctrl: bool,
    alt: bool,
    caps: bool,
}

const US: [(u8, char, char); 47] = [
    (0x02, '1', '!'),
    (0x03, '2', '@'),
    (0x04, '3', '#'),
    (0x05, '4', '$'),
    (0x06, '5', '%'),
    (0x07, '6', '^'),
    (0x08, '7', '&'),
    (0x09, '8', '*'),
    (0x0a, '9', '('),
    (0x0b, '0', ')'),
    (0x0c, '-', '_'),
    (0x0d, '=', '+'),
    (0x10, 'q', 'Q'),
    (0x11, 'w', 'W'),
    (0x12, 'e', 'E'),
    (0x13, 'r', 'R'),
    (0x14, 't', 'T'),
    (0x15, 'y', 'Y'),
    (0x16, 'u', 'U'),
    (0x17, 'i', 'I'),
    (0x18, 'o', 'O'),
    (0x19, 'p', 'P'),
    (0x1a, '[', '{'),
    (0x1b, ']', '}'),
    (0x1e, 'a', 'A'),
    (0x1f, 's', 'S'),
    (0x20, 'd', 'D'),
    (0x21, 'f', 'F'),
    (0x22, 'g', 'G'),
    (0x23, 'h', 'H'),
    (0x24, 'j', 'J'),
    (0x25, 'k', 'K'),
    (0x26, 'l', 'L'),
    (0x27, ';', ':'),
    (0x28, '\'', '"'),
    (0x29, '`', '~'),
    (0x2b, '\\', '|'),
    (0x2c, 'z', 'Z'),
    (0x2d, 'x', 'X'),
    (0x2e, 'c', 'C'),
    (0x2f, 'v', 'V'),
    (0x30, 'b', 'B'),
    (0x31, 'n', 'N'),
    (0x32, 'm', 'M'),
    (0x33, ',', '<'),
    (0x34, '.', '>'),
    (0x35, '/', '?'),
];

impl KeyText {
    /// A fresh state (no modifier held).
    pub fn new() -> Self {
        Self::default()
    }

    /// The text `event` types, if any.
    pub fn feed(&mut self, event: InputEvent) -> Option<String> {
        match event {
            InputEvent::Sync { caps, .. } => {
                self.caps = caps;
                None
            }
            InputEvent::Unicode { unit, down: true } => {
                char::from_u32(u32::from(unit)).map(|c| c.to_string())
            }
            InputEvent::Key {
                code,
                extended,
                down,
            } => {
                match (code, extended) {
                    (0x2a | 0x36, false) => self.shift = down,
                    (0x1d, _) => self.ctrl = down,
                    (0x38, _) => self.alt = down,
                    (0x3a, false) if down => self.caps = !self.caps,
                    _ if !down => {}
                    _ => return Some(self.key_text(code, extended)),
                }
                None
            }
            _ => None,
        }
    }

    fn key_text(&self, code: u8, extended: bool) -> String {
        let named = |n: &str| format!("<{n}>");
        if !extended && let Some(&(_, lower, upper)) = US.iter().find(|(c, ..)| *c == code) {
            let letter = lower.is_ascii_alphabetic();
            let upper_case = if letter {
                self.shift ^ self.caps
            } else {
                self.shift
            };
            let ch = if upper_case { upper } else { lower };
            return if self.ctrl {
                format!("<C-{ch}>")
            } else if self.alt {
                format!("<A-{ch}>")
            } else {
                ch.to_string()
            };
        }
        match (code, extended) {
            (0x1c, _) => "\r".into(),
            (0x0e, false) => "\x7f".into(),
            (0x0f, false) => "\t".into(),
            (0x39, false) => " ".into(),
            (0x01, false) => named("Esc"),
            (0x48, true) => named("Up"),
            (0x50, true) => named("Down"),
            (0x4b, true) => named("Left"),
            (0x4d, true) => named("Right"),
            (0x47, true) => named("Home"),
            (0x4f, true) => named("End"),
            (0x49, true) => named("PgUp"),
            (0x51, true) => named("PgDn"),
            (0x52, true) => named("Ins"),
            (0x53, true) => named("Del"),
            (0x5b | 0x5c, true) => named("Win"),
            (c @ 0x3b..=0x44, false) => format!("<F{}>", c - 0x3a),
            (0x57, false) => named("F11"),
            (0x58, false) => named("F12"),
            (c, true) => format!("<e0{c:02x}>"),
            (c, false) => format!("<{c:02x}>"),
        }
    }
}

/// The key presses that type `c` on a US layout (with Shift when needed): the inverse of
/// [`KeyText`], for tools that type into a session (benchmarks, tests). `None` for a
/// character the US layout has no key for.
pub fn keys_for_char(c: char) -> Option<Vec<InputEvent>> {
    let key = |code, down| InputEvent::Key {
        code,
        extended: false,
        down,
    };
    let (code, shift) = match c {
        '\n' | '\r' => (0x1c, false),
        ' ' => (0x39, false),
        '\t' => (0x0f, false),
        _ => US.iter().find_map(|&(code, lower, upper)| {
            if c == lower {
                Some((code, false))
            } else if c == upper {
                Some((code, true))
            } else {
                None
            }
        })?,
    };
    Some(if shift {
        vec![
            key(0x2a, true),
            key(code, true),
            key(code, false),
            key(0x2a, false),
        ]
    } else {
        vec![key(code, true), key(code, false)]
    })
}

/// The text of a pointer event on a recording's pointer channel: `move X Y`,
/// `down left X Y`, `up left X Y`, `wheel D X Y`.
pub fn pointer_text(event: InputEvent) -> Option<String> {
    match event {
        InputEvent::Move { x, y } => Some(format!("move {x} {y}\n")),
        InputEvent::Button { button, down, x, y } => Some(format!(
            "{} {} {x} {y}\n",
            if down { "down" } else { "up" },
            button.as_str()
        )),
        InputEvent::Wheel { delta, x, y } => Some(format!("wheel {delta} {x} {y}\n")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: u8, down: bool) -> InputEvent {
        InputEvent::Key {
            code,
            extended: false,
            down,
        }
    }

    #[test]
    fn typed_text_follows_shift_and_caps() {
        let mut k = KeyText::new();
        let mut out = String::new();
        // "touch /tmp/P" + Return, with Shift for the P
        for code in [
            0x14u8, 0x18, 0x16, 0x2e, 0x23, 0x39, 0x35, 0x14, 0x32, 0x19, 0x35,
        ] {
            for down in [true, false] {
                out.extend(k.feed(key(code, down)));
            }
        }
        out.extend(k.feed(key(0x2a, true)));
        out.extend(k.feed(key(0x19, true)));
        out.extend(k.feed(key(0x2a, false)));
        out.extend(k.feed(key(0x1c, true)));
        assert_eq!(out, "touch /tmp/P\r");
        out.clear();
        out.extend(k.feed(key(0x1d, true)));
        out.extend(k.feed(key(0x2e, true)));
        assert_eq!(out, "<C-c>");
    }

    #[test]
    fn keys_for_char_inverts_key_text() {
        let mut k = KeyText::new();
        let text = "ls -l /usr/bin | head -n 3\r";
        let typed: String = text
            .chars()
            .flat_map(|c| keys_for_char(c).expect("typable"))
            .filter_map(|e| k.feed(e))
            .collect();
        assert_eq!(typed, text);
        assert!(keys_for_char('é').is_none());
    }

    #[test]
    fn fast_path_flags() {
        let ev = InputEvent::Button {
            button: PointerButton::Left,
            down: true,
            x: 3,
            y: 4,
        };
        match ev.to_fast_path() {
            FastPathInputEvent::MouseEvent(m) => {
                assert!(
                    m.flags
                        .contains(PointerFlags::DOWN | PointerFlags::LEFT_BUTTON)
                );
                assert_eq!((m.x_position, m.y_position), (3, 4));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            pointer_text(InputEvent::Move { x: 1, y: 2 }).as_deref(),
            Some("move 1 2\n")
        );
    }
}
