//! Keyboard and mouse input from the user (native client or browser), on its way to the
//! target, and its text form in recordings.

use ironrdp::pdu::input::MousePdu;
use ironrdp::pdu::input::fast_path::{FastPathInputEvent, KeyboardFlags, SynchronizeFlags};
use ironrdp::pdu::input::mouse::PointerFlags;

use psm_proxy::live::PointerButton;

use crate::layout::KeyboardLayout;

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

/// Turns key events into the text a recording's keyboard channel holds.
///
/// - Printable keys are the characters they type under the session's keyboard layout
///   ([`KeyboardLayout`]), Shift, Caps Lock, Num Lock (the keypad) and AltGr followed;
///   Unicode key events (what a client sends for text it composed itself) are their
///   characters.
/// - Return is `\r`, Backspace `\x7f`, Tab `\t`, Space a space.
/// - Other keys are `<Name>` (`<Esc>`, `<Up>`, `<F5>`, `<Del>`), with the modifiers held:
///   `<Shift+End>`, `<Ctrl+Alt+End>`, `<Alt+F4>`.
/// - A printable key with Ctrl, Alt or Win is a shortcut named by its key's unshifted
///   character, upper-cased: `<Ctrl+C>`, `<Win+R>`, `<Ctrl+Shift+Esc>`; on a German
///   keyboard the key right of T gives `<Ctrl+Z>`.
/// - The Win key pressed and released alone (the Start menu) is `<Win>`.
/// - Releases type nothing.
///
/// It also tells when a password is probably being typed ([`KeyText::password_prompt`]):
/// from a lock or secure-attention shortcut (`<Win+L>`, `<Ctrl+Alt+Del>`, and
/// `<Ctrl+Alt+End>`, which RDP clients send for it) until the next Return or Esc: on
/// Windows that is the unlock (or change-password) screen. RDP carries nothing else that
/// says a field is a password field.
#[derive(Clone, Debug, Default)]
pub struct KeyText {
    layout: KeyboardLayout,
    held: Held,
    caps: bool,
    num: bool,
    /// A Win key is down and no other key was pressed since.
    win_alone: bool,
    /// The first half of a UTF-16 surrogate pair.
    high_surrogate: Option<u16>,
    password_prompt: bool,
}

/// The modifier keys held down.
#[derive(Clone, Copy, Debug, Default)]
struct Held {
    lshift: bool,
    rshift: bool,
    lctrl: bool,
    rctrl: bool,
    lalt: bool,
    ralt: bool,
    lwin: bool,
    rwin: bool,
}

/// The shortcuts after which the user types into a lock or secure-attention screen.
const PASSWORD_SHORTCUTS: [&str; 3] = ["<Win+L>", "<Ctrl+Alt+Del>", "<Ctrl+Alt+End>"];

impl KeyText {
    /// A fresh state (no modifier held) for a US English keyboard.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh state for a keyboard with `layout`.
    pub fn with_layout(layout: KeyboardLayout) -> Self {
        Self {
            layout,
            ..Self::default()
        }
    }

    /// The layout keys are mapped through.
    pub fn layout(&self) -> KeyboardLayout {
        self.layout
    }

    /// Whether the keys typed now probably go to a password field: after a lock or
    /// secure-attention shortcut, until Return or Esc.
    pub fn password_prompt(&self) -> bool {
        self.password_prompt
    }

    /// The text `event` types, if any.
    pub fn feed(&mut self, event: InputEvent) -> Option<String> {
        let text = match event {
            InputEvent::Sync { caps, num, .. } => {
                self.caps = caps;
                self.num = num;
                return None;
            }
            InputEvent::Unicode { unit, down: true } => {
                self.win_alone = false;
                match (self.high_surrogate.take(), unit) {
                    (_, 0xd800..=0xdbff) => {
                        self.high_surrogate = Some(unit);
                        return None;
                    }
                    (Some(high), 0xdc00..=0xdfff) => {
                        char::decode_utf16([high, unit]).next()?.ok()?.to_string()
                    }
                    _ => char::from_u32(u32::from(unit))?.to_string(),
                }
            }
            InputEvent::Key {
                code,
                extended,
                down,
            } => {
                let h = &mut self.held;
                let modifier = match (code, extended) {
                    (0x2a, false) => Some(&mut h.lshift),
                    (0x36, false) => Some(&mut h.rshift),
                    (0x1d, false) => Some(&mut h.lctrl),
                    (0x1d, true) => Some(&mut h.rctrl),
                    (0x38, false) => Some(&mut h.lalt),
                    (0x38, true) => Some(&mut h.ralt),
                    (0x5b, true) => Some(&mut h.lwin),
                    (0x5c, true) => Some(&mut h.rwin),
                    _ => None,
                };
                if let Some(m) = modifier {
                    *m = down;
                    let win = (code == 0x5b || code == 0x5c) && extended;
                    if win && down {
                        self.win_alone = true;
                    } else if down {
                        self.win_alone = false;
                    } else if win && self.win_alone && !self.held.lwin && !self.held.rwin {
                        self.win_alone = false;
                        return Some("<Win>".into());
                    }
                    return None;
                }
                if !down {
                    return None;
                }
                match (code, extended) {
                    (0x3a, false) => self.caps = !self.caps,
                    (0x45, false) => self.num = !self.num,
                    _ => {}
                }
                self.win_alone = false;
                self.key_text(code, extended)
            }
            _ => return None,
        };
        if self.password_prompt && (text == "\r" || text == "<Esc>") {
            self.password_prompt = false;
        } else if PASSWORD_SHORTCUTS.contains(&text.as_str()) {
            self.password_prompt = true;
        }
        Some(text)
    }

    fn key_text(&self, code: u8, extended: bool) -> String {
        let h = self.held;
        let altgr = self.layout.has_altgr() && h.ralt;
        // Windows clients send AltGr as left Ctrl + right Alt: that Ctrl is part of it.
        let ctrl = if altgr { h.rctrl } else { h.lctrl || h.rctrl };
        let alt = h.lalt || (h.ralt && !altgr);
        let win = h.lwin || h.rwin;
        let shift = h.lshift || h.rshift;
        let combo = |name: &str, with_shift: bool| {
            let mut parts: Vec<&str> = Vec::with_capacity(5);
            if ctrl {
                parts.push("Ctrl");
            }
            if alt {
                parts.push("Alt");
            }
            if altgr {
                parts.push("AltGr");
            }
            if shift && with_shift {
                parts.push("Shift");
            }
            if win {
                parts.push("Win");
            }
            parts.push(name);
            format!("<{}>", parts.join("+"))
        };
        if !extended && let Some(chars) = self.layout.chars(code) {
            if altgr
                && !alt
                && !win
                && let Some(c) = chars.altgr
            {
                return c.to_string();
            }
            if ctrl || alt || win || altgr {
                return combo(&chars.base.to_uppercase().to_string(), true);
            }
            let upper = if chars.is_letter() {
                shift ^ self.caps
            } else {
                shift
            };
            return match (upper, chars.shifted) {
                (true, Some(c)) => c.to_string(),
                _ => chars.base.to_string(),
            };
        }
        let modified = ctrl || alt || win || altgr;
        // The keypad's digits, with Num Lock on and no Shift (else its navigation keys).
        if !extended && !modified && self.num && !shift {
            let digit = match code {
                0x47 => Some('7'),
                0x48 => Some('8'),
                0x49 => Some('9'),
                0x4b => Some('4'),
                0x4c => Some('5'),
                0x4d => Some('6'),
                0x4f => Some('1'),
                0x50 => Some('2'),
                0x51 => Some('3'),
                0x52 => Some('0'),
                0x53 => Some('.'),
                _ => None,
            };
            if let Some(d) = digit {
                return d.to_string();
            }
        }
        let plain = |text: &str, name: &str, shift_counts: bool| {
            if modified || (shift && shift_counts) {
                combo(name, true)
            } else {
                text.to_owned()
            }
        };
        match (code, extended) {
            (0x1c, _) => return plain("\r", "Enter", false),
            (0x0e, false) => return plain("\x7f", "Backspace", false),
            (0x0f, false) => return plain("\t", "Tab", true),
            (0x39, false) => return plain(" ", "Space", false),
            (0x37, false) => return plain("*", "*", false),
            (0x4a, false) => return plain("-", "-", false),
            (0x4e, false) => return plain("+", "+", false),
            (0x35, true) => return plain("/", "/", false),
            _ => {}
        }
        let name = match (code, extended) {
            (0x01, false) => "Esc".into(),
            (0x48, _) => "Up".into(),
            (0x50, _) => "Down".into(),
            (0x4b, _) => "Left".into(),
            (0x4d, _) => "Right".into(),
            (0x47, _) => "Home".into(),
            (0x4f, _) => "End".into(),
            (0x49, _) => "PgUp".into(),
            (0x51, _) => "PgDn".into(),
            (0x52, _) => "Ins".into(),
            (0x53, _) => "Del".into(),
            (0x4c, false) => "Clear".into(),
            (0x5d, true) => "Menu".into(),
            (0x37, true) => "PrtSc".into(),
            (0x46, false) => "ScrollLock".into(),
            (0x45, false) => "NumLock".into(),
            (0x3a, false) => "CapsLock".into(),
            (c @ 0x3b..=0x44, false) => format!("F{}", c - 0x3a),
            (0x57, false) => "F11".into(),
            (0x58, false) => "F12".into(),
            (c, true) => format!("e0{c:02x}"),
            (c, false) => format!("{c:02x}"),
        };
        combo(&name, true)
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
        _ => match KeyboardLayout::UsEnglish.key_for(c)? {
            (code, shift, false) => (code, shift),
            _ => return None,
        },
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

/// Holds back typed text that could be the start of a secret the gateway knows (the
/// target account's vaulted password), so that the secret, typed anywhere in the session,
/// never reaches the recording: text is let through as soon as it can no longer be part
/// of the secret, and the whole secret is swallowed ([`Watched::secret_typed`]). One
/// mistyped key after a start of the secret is held too, and Backspace while text is held
/// takes back the last held character, so a corrected typo does not let the start of the
/// secret through. Only single characters are matched; a shortcut, a named key or Return
/// lets the held text through.
///
/// ```
/// use psm_proxy_rdp::input::SecretWatch;
/// let mut w = SecretWatch::new("hunter2").unwrap();
/// let mut recorded = String::new();
/// let mut secrets = 0;
/// for c in "echo hunhunter2!".chars() {
///     let out = w.feed(&c.to_string());
///     recorded += &out.release;
///     secrets += usize::from(out.secret_typed);
/// }
/// assert_eq!((recorded.as_str(), secrets), ("echo hun!", 1));
/// ```
pub struct SecretWatch {
    secret: zeroize::Zeroizing<Vec<char>>,
    held: zeroize::Zeroizing<Vec<char>>,
    /// The last held character does not continue the secret (a Backspace may take it back).
    typo: bool,
}

impl std::fmt::Debug for SecretWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretWatch").finish_non_exhaustive()
    }
}

/// What [`SecretWatch::feed`] lets through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Watched {
    /// Text that can be recorded now.
    pub release: String,
    /// The secret was just typed in full (and swallowed).
    pub secret_typed: bool,
}

/// Secrets shorter than this are not watched (they would hold back ordinary typing).
pub const MIN_SECRET_CHARS: usize = 4;
/// Secrets longer than this are not watched (nobody types them).
pub const MAX_SECRET_CHARS: usize = 256;

impl SecretWatch {
    /// A watch for `secret`; `None` when it is shorter than [`MIN_SECRET_CHARS`] or
    /// longer than [`MAX_SECRET_CHARS`].
    pub fn new(secret: &str) -> Option<Self> {
        let chars: Vec<char> = secret.chars().collect();
        if !(MIN_SECRET_CHARS..=MAX_SECRET_CHARS).contains(&chars.len()) {
            return None;
        }
        Some(Self {
            secret: zeroize::Zeroizing::new(chars),
            held: zeroize::Zeroizing::new(Vec::with_capacity(MAX_SECRET_CHARS + 2)),
            typo: false,
        })
    }

    /// Takes what a key typed ([`KeyText::feed`]'s text).
    pub fn feed(&mut self, text: &str) -> Watched {
        if text == "\x7f" && self.held.pop().is_some() {
            self.typo = false;
            return Watched::default();
        }
        let mut chars = text.chars();
        let single = match (chars.next(), chars.next()) {
            (Some(c), None) if !c.is_control() => Some(c),
            _ => None,
        };
        let Some(c) = single else {
            let mut release = self.release_all();
            release.push_str(text);
            return Watched {
                release,
                secret_typed: false,
            };
        };
        self.held.push(c);
        let n = self.held.len();
        if self.secret.starts_with(&self.held) {
            self.typo = false;
            if n == self.secret.len() {
                self.held.clear();
                return Watched {
                    release: String::new(),
                    secret_typed: true,
                };
            }
            return Watched::default();
        }
        // One wrong key after a start of the secret is held too: a Backspace may follow.
        if !self.typo && n >= 2 && self.secret.starts_with(&self.held[..n - 1]) {
            self.typo = true;
            return Watched::default();
        }
        self.typo = false;
        // Let go of the shortest head after which what is held still starts the secret.
        let keep_from = (0..=n)
            .find(|&k| self.secret.starts_with(&self.held[k..]))
            .unwrap_or(n);
        let release = self.held[..keep_from].iter().collect();
        self.held.drain(..keep_from);
        let secret_typed = self.held.len() == self.secret.len();
        if secret_typed {
            self.held.clear();
        }
        Watched {
            release,
            secret_typed,
        }
    }

    /// Lets everything held through (the session ends, or the watch stops).
    pub fn release_all(&mut self) -> String {
        let s = self.held.iter().collect();
        self.held.clear();
        self.typo = false;
        s
    }
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
        assert_eq!(out, "<Ctrl+C>");
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

    /// Presses and releases `keys` (scan code, extended) in order, then releases them in
    /// reverse, as a user types a shortcut; returns what was typed.
    fn chord(k: &mut KeyText, keys: &[(u8, bool)]) -> String {
        let mut out = String::new();
        for &(code, extended) in keys {
            out.extend(k.feed(InputEvent::Key {
                code,
                extended,
                down: true,
            }));
        }
        for &(code, extended) in keys.iter().rev() {
            out.extend(k.feed(InputEvent::Key {
                code,
                extended,
                down: false,
            }));
        }
        out
    }

    const CTRL: (u8, bool) = (0x1d, false);
    const ALT: (u8, bool) = (0x38, false);
    const ALTGR: (u8, bool) = (0x38, true);
    const SHIFT: (u8, bool) = (0x2a, false);
    const WIN: (u8, bool) = (0x5b, true);

    #[test]
    fn shortcuts_name_their_modifiers_and_key() {
        let mut k = KeyText::new();
        assert_eq!(chord(&mut k, &[WIN, (0x13, false)]), "<Win+R>");
        assert_eq!(chord(&mut k, &[CTRL, ALT, (0x4f, true)]), "<Ctrl+Alt+End>");
        assert_eq!(
            chord(&mut k, &[CTRL, SHIFT, (0x01, false)]),
            "<Ctrl+Shift+Esc>"
        );
        assert_eq!(chord(&mut k, &[ALT, (0x3e, false)]), "<Alt+F4>");
        assert_eq!(chord(&mut k, &[SHIFT, (0x4f, true)]), "<Shift+End>");
        assert_eq!(chord(&mut k, &[ALT, (0x0f, false)]), "<Alt+Tab>");
        assert_eq!(chord(&mut k, &[SHIFT, (0x0f, false)]), "<Shift+Tab>");
        assert_eq!(chord(&mut k, &[CTRL, (0x1c, false)]), "<Ctrl+Enter>");
        // The Win key alone opens the Start menu; with another key it is part of a shortcut.
        assert_eq!(chord(&mut k, &[WIN]), "<Win>");
        assert_eq!(chord(&mut k, &[WIN, (0x20, false)]), "<Win+D>");
        // Nothing stays held: plain typing goes on.
        assert_eq!(chord(&mut k, &[(0x1e, false)]), "a");
    }

    #[test]
    fn the_layout_decides_what_a_key_types() {
        let mut de = KeyText::with_layout(KeyboardLayout::German);
        assert_eq!(chord(&mut de, &[(0x15, false)]), "z");
        assert_eq!(chord(&mut de, &[(0x2c, false)]), "y");
        assert_eq!(chord(&mut de, &[SHIFT, (0x08, false)]), "/");
        assert_eq!(chord(&mut de, &[ALTGR, (0x10, false)]), "@");
        // As a Windows client sends AltGr: left Ctrl, then right Alt.
        assert_eq!(chord(&mut de, &[CTRL, ALTGR, (0x12, false)]), "€");
        assert_eq!(chord(&mut de, &[CTRL, (0x15, false)]), "<Ctrl+Z>");
        assert_eq!(chord(&mut de, &[(0x27, false)]), "ö");
        de.feed(InputEvent::Sync {
            caps: true,
            num: false,
            scroll: false,
        });
        assert_eq!(chord(&mut de, &[(0x27, false)]), "Ö");
        assert_eq!(chord(&mut de, &[(0x0c, false)]), "ß");
        let mut fr = KeyText::with_layout(KeyboardLayout::French);
        assert_eq!(chord(&mut fr, &[(0x10, false)]), "a");
        assert_eq!(chord(&mut fr, &[(0x02, false)]), "&");
        assert_eq!(chord(&mut fr, &[SHIFT, (0x02, false)]), "1");
        assert_eq!(chord(&mut fr, &[ALTGR, (0x0b, false)]), "@");
        let mut uk = KeyText::with_layout(KeyboardLayout::UnitedKingdom);
        assert_eq!(chord(&mut uk, &[SHIFT, (0x03, false)]), "\"");
        assert_eq!(chord(&mut uk, &[SHIFT, (0x04, false)]), "£");
        // On a US keyboard the right Alt is Alt.
        let mut us = KeyText::new();
        assert_eq!(chord(&mut us, &[ALTGR, (0x10, false)]), "<Alt+Q>");
    }

    #[test]
    fn keypad_unicode_and_surrogates() {
        let mut k = KeyText::new();
        k.feed(InputEvent::Sync {
            caps: false,
            num: true,
            scroll: false,
        });
        assert_eq!(chord(&mut k, &[(0x4f, false), (0x52, false)]), "10");
        assert_eq!(chord(&mut k, &[(0x4f, true)]), "<End>");
        assert_eq!(chord(&mut k, &[(0x45, false)]), "<NumLock>");
        assert_eq!(chord(&mut k, &[(0x4f, false)]), "<End>");
        let mut out = String::new();
        for unit in "é😀".encode_utf16() {
            out.extend(k.feed(InputEvent::Unicode { unit, down: true }));
            out.extend(k.feed(InputEvent::Unicode { unit, down: false }));
        }
        assert_eq!(out, "é😀");
    }

    #[test]
    fn a_lock_screen_shortcut_starts_a_password_prompt_until_return() {
        let mut k = KeyText::new();
        assert!(!k.password_prompt());
        assert_eq!(chord(&mut k, &[WIN, (0x26, false)]), "<Win+L>");
        assert!(k.password_prompt());
        chord(&mut k, &[(0x1e, false)]);
        assert!(k.password_prompt());
        assert_eq!(chord(&mut k, &[(0x1c, false)]), "\r");
        assert!(!k.password_prompt());
        chord(&mut k, &[CTRL, ALT, (0x53, true)]);
        assert!(k.password_prompt());
        chord(&mut k, &[(0x01, false)]);
        assert!(!k.password_prompt());
    }

    #[test]
    fn a_secret_is_swallowed_wherever_it_is_typed() {
        let mut w = SecretWatch::new("s3cret!").unwrap();
        let mut rec = String::new();
        let mut n = 0;
        for t in [
            "a", "s", "3", "c", "<Ctrl+C>", "s", "3", "x", "\x7f", "c", "r", "e", "t", "!", "\r",
        ] {
            let o = w.feed(t);
            rec += &o.release;
            n += usize::from(o.secret_typed);
        }
        assert_eq!((rec.as_str(), n), ("as3c<Ctrl+C>\r", 1));
        assert!(SecretWatch::new("abc").is_none());
        let mut w = SecretWatch::new("abcd").unwrap();
        assert_eq!(w.feed("a").release, "");
        assert_eq!(w.release_all(), "a");
    }

    proptest::proptest! {
        /// Any typing: what is let through is what was typed with each (leftmost,
        /// non-overlapping) occurrence of the secret taken out.
        #[test]
        fn secret_watch_takes_out_exactly_the_secret(
            typed in "[abc]{0,40}",
            secret in "[abc]{4,6}",
        ) {
            let mut w = SecretWatch::new(&secret).unwrap();
            let mut out = String::new();
            let mut n = 0;
            for c in typed.chars() {
                let o = w.feed(&c.to_string());
                out += &o.release;
                n += usize::from(o.secret_typed);
            }
            out += &w.release_all();
            proptest::prop_assert_eq!(&out, &typed.replace(&secret, ""));
            proptest::prop_assert_eq!(n, typed.matches(&secret).count());
        }

        /// Any key events: no panic, and no modifier stays held once every key is up.
        #[test]
        fn key_text_takes_any_events(
            events in proptest::collection::vec((0u8..=0x7f, proptest::bool::ANY, proptest::bool::ANY, proptest::num::u16::ANY, 0u8..4), 0..200),
            layout in 0usize..4,
        ) {
            let mut k = KeyText::with_layout(KeyboardLayout::ALL[layout]);
            for (code, extended, down, unit, kind) in events {
                let e = match kind {
                    0 | 1 => InputEvent::Key { code, extended, down },
                    2 => InputEvent::Unicode { unit, down },
                    _ => InputEvent::Sync { caps: down, num: extended, scroll: false },
                };
                if let Some(t) = k.feed(e) {
                    proptest::prop_assert!(!t.is_empty() && t.len() < 64);
                }
            }
            for code in [0x2a, 0x36, 0x1d, 0x38] {
                for extended in [false, true] {
                    k.feed(InputEvent::Key { code, extended, down: false });
                }
            }
            for code in [0x5b, 0x5c] {
                k.feed(InputEvent::Key { code, extended: true, down: false });
            }
            let t = k.feed(InputEvent::Key { code: 0x1e, extended: false, down: true });
            proptest::prop_assert!(t.is_some_and(|t| t.chars().count() == 1), "a modifier stayed held");
        }
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
