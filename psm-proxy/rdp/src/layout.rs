//! Keyboard layouts: the character a key types, by its PC/AT set-1 scan code, under the
//! layout the user's client announced.
//!
//! A native RDP client names its keyboard layout in the GCC Client Core Data of its MCS
//! Connect Initial ([MS-RDPBCGR] 2.2.1.3.2, `keyboardLayout`: a Windows keyboard layout
//! identifier, KLID) and then sends scan codes: the position of each key, not its character.
//! The target maps them through that layout; the recorder maps them through the same one
//! ([`KeyboardLayout`]) so the recording says what the target typed. [`ConnectInitialSniffer`]
//! reads the KLID off the client's bytes on their way to ironrdp-server (which does not hand
//! it on), with ironrdp's own decoder.
//!
//! ironrdp has no scan-code-to-character tables (its `ironrdp-input` tracks key state only),
//! and the crates that do (xkbcommon) need the X keyboard database at run time, so the
//! layouts supported are tables here, each checked against Microsoft's published layout
//! (the "Keyboard layouts" pages of Windows' globalization documentation, kbdus, kbduk,
//! kbdgr, kbdfr): US English (`0x0409`), United Kingdom (`0x0809`), German (`0x0407`, also
//! Austria `0x0c07`), French (`0x040c`, also Belgium `0x080c`). Any other KLID is recorded
//! as US English, and the recording's header says which layout the client announced.
//! Dead keys (German `^` and `´`, French `^` and `¨`) are recorded as their own character:
//! the recording shows `^e` where the target composed `ê`.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use ironrdp::pdu::mcs::ConnectInitial;
use ironrdp::pdu::x224::{X224, X224Data};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A keyboard layout the recorder can map scan codes through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeyboardLayout {
    /// US English (KLID `0x00000409`), also the layout of any KLID not known here.
    #[default]
    UsEnglish,
    /// United Kingdom (`0x00000809`).
    UnitedKingdom,
    /// German (`0x00000407`; Austria `0x00000c07`).
    German,
    /// French (`0x0000040c`; Belgium `0x0000080c` is recorded as French too).
    French,
}

/// No character at this level.
const NONE: char = '\0';

/// Scan code, unshifted, shifted, AltGr (or [`NONE`]).
type Row = (u8, char, char, char);

const US: &[Row] = &[
    (0x02, '1', '!', NONE),
    (0x03, '2', '@', NONE),
    (0x04, '3', '#', NONE),
    (0x05, '4', '$', NONE),
    (0x06, '5', '%', NONE),
    (0x07, '6', '^', NONE),
    (0x08, '7', '&', NONE),
    (0x09, '8', '*', NONE),
    (0x0a, '9', '(', NONE),
    (0x0b, '0', ')', NONE),
    (0x0c, '-', '_', NONE),
    (0x0d, '=', '+', NONE),
    (0x10, 'q', 'Q', NONE),
    (0x11, 'w', 'W', NONE),
    (0x12, 'e', 'E', NONE),
    (0x13, 'r', 'R', NONE),
    (0x14, 't', 'T', NONE),
    (0x15, 'y', 'Y', NONE),
    (0x16, 'u', 'U', NONE),
    (0x17, 'i', 'I', NONE),
    (0x18, 'o', 'O', NONE),
    (0x19, 'p', 'P', NONE),
    (0x1a, '[', '{', NONE),
    (0x1b, ']', '}', NONE),
    (0x1e, 'a', 'A', NONE),
    (0x1f, 's', 'S', NONE),
    (0x20, 'd', 'D', NONE),
    (0x21, 'f', 'F', NONE),
    (0x22, 'g', 'G', NONE),
    (0x23, 'h', 'H', NONE),
    (0x24, 'j', 'J', NONE),
    (0x25, 'k', 'K', NONE),
    (0x26, 'l', 'L', NONE),
    (0x27, ';', ':', NONE),
    (0x28, '\'', '"', NONE),
    (0x29, '`', '~', NONE),
    (0x2b, '\\', '|', NONE),
    (0x2c, 'z', 'Z', NONE),
    (0x2d, 'x', 'X', NONE),
    (0x2e, 'c', 'C', NONE),
    (0x2f, 'v', 'V', NONE),
    (0x30, 'b', 'B', NONE),
    (0x31, 'n', 'N', NONE),
    (0x32, 'm', 'M', NONE),
    (0x33, ',', '<', NONE),
    (0x34, '.', '>', NONE),
    (0x35, '/', '?', NONE),
    (0x56, '\\', '|', NONE),
];

const UK: &[Row] = &[
    (0x02, '1', '!', NONE),
    (0x03, '2', '"', NONE),
    (0x04, '3', '£', NONE),
    (0x05, '4', '$', '€'),
    (0x06, '5', '%', NONE),
    (0x07, '6', '^', NONE),
    (0x08, '7', '&', NONE),
    (0x09, '8', '*', NONE),
    (0x0a, '9', '(', NONE),
    (0x0b, '0', ')', NONE),
    (0x0c, '-', '_', NONE),
    (0x0d, '=', '+', NONE),
    (0x10, 'q', 'Q', NONE),
    (0x11, 'w', 'W', NONE),
    (0x12, 'e', 'E', 'é'),
    (0x13, 'r', 'R', NONE),
    (0x14, 't', 'T', NONE),
    (0x15, 'y', 'Y', NONE),
    (0x16, 'u', 'U', 'ú'),
    (0x17, 'i', 'I', 'í'),
    (0x18, 'o', 'O', 'ó'),
    (0x19, 'p', 'P', NONE),
    (0x1a, '[', '{', NONE),
    (0x1b, ']', '}', NONE),
    (0x1e, 'a', 'A', 'á'),
    (0x1f, 's', 'S', NONE),
    (0x20, 'd', 'D', NONE),
    (0x21, 'f', 'F', NONE),
    (0x22, 'g', 'G', NONE),
    (0x23, 'h', 'H', NONE),
    (0x24, 'j', 'J', NONE),
    (0x25, 'k', 'K', NONE),
    (0x26, 'l', 'L', NONE),
    (0x27, ';', ':', NONE),
    (0x28, '\'', '@', NONE),
    (0x29, '`', '¬', '¦'),
    (0x2b, '#', '~', NONE),
    (0x2c, 'z', 'Z', NONE),
    (0x2d, 'x', 'X', NONE),
    (0x2e, 'c', 'C', NONE),
    (0x2f, 'v', 'V', NONE),
    (0x30, 'b', 'B', NONE),
    (0x31, 'n', 'N', NONE),
    (0x32, 'm', 'M', NONE),
    (0x33, ',', '<', NONE),
    (0x34, '.', '>', NONE),
    (0x35, '/', '?', NONE),
    (0x56, '\\', '|', NONE),
];

const DE: &[Row] = &[
    (0x29, '^', '°', NONE),
    (0x02, '1', '!', NONE),
    (0x03, '2', '"', '²'),
    (0x04, '3', '§', '³'),
    (0x05, '4', '$', NONE),
    (0x06, '5', '%', NONE),
    (0x07, '6', '&', NONE),
    (0x08, '7', '/', '{'),
    (0x09, '8', '(', '['),
    (0x0a, '9', ')', ']'),
    (0x0b, '0', '=', '}'),
    (0x0c, 'ß', '?', '\\'),
    (0x0d, '´', '`', NONE),
    (0x10, 'q', 'Q', '@'),
    (0x11, 'w', 'W', NONE),
    (0x12, 'e', 'E', '€'),
    (0x13, 'r', 'R', NONE),
    (0x14, 't', 'T', NONE),
    (0x15, 'z', 'Z', NONE),
    (0x16, 'u', 'U', NONE),
    (0x17, 'i', 'I', NONE),
    (0x18, 'o', 'O', NONE),
    (0x19, 'p', 'P', NONE),
    (0x1a, 'ü', 'Ü', NONE),
    (0x1b, '+', '*', '~'),
    (0x1e, 'a', 'A', NONE),
    (0x1f, 's', 'S', NONE),
    (0x20, 'd', 'D', NONE),
    (0x21, 'f', 'F', NONE),
    (0x22, 'g', 'G', NONE),
    (0x23, 'h', 'H', NONE),
    (0x24, 'j', 'J', NONE),
    (0x25, 'k', 'K', NONE),
    (0x26, 'l', 'L', NONE),
    (0x27, 'ö', 'Ö', NONE),
    (0x28, 'ä', 'Ä', NONE),
    (0x2b, '#', '\'', NONE),
    (0x56, '<', '>', '|'),
    (0x2c, 'y', 'Y', NONE),
    (0x2d, 'x', 'X', NONE),
    (0x2e, 'c', 'C', NONE),
    (0x2f, 'v', 'V', NONE),
    (0x30, 'b', 'B', NONE),
    (0x31, 'n', 'N', NONE),
    (0x32, 'm', 'M', 'µ'),
    (0x33, ',', ';', NONE),
    (0x34, '.', ':', NONE),
    (0x35, '-', '_', NONE),
];

const FR: &[Row] = &[
    (0x29, '²', NONE, NONE),
    (0x02, '&', '1', NONE),
    (0x03, 'é', '2', '~'),
    (0x04, '"', '3', '#'),
    (0x05, '\'', '4', '{'),
    (0x06, '(', '5', '['),
    (0x07, '-', '6', '|'),
    (0x08, 'è', '7', '`'),
    (0x09, '_', '8', '\\'),
    (0x0a, 'ç', '9', '^'),
    (0x0b, 'à', '0', '@'),
    (0x0c, ')', '°', ']'),
    (0x0d, '=', '+', '}'),
    (0x10, 'a', 'A', NONE),
    (0x11, 'z', 'Z', NONE),
    (0x12, 'e', 'E', '€'),
    (0x13, 'r', 'R', NONE),
    (0x14, 't', 'T', NONE),
    (0x15, 'y', 'Y', NONE),
    (0x16, 'u', 'U', NONE),
    (0x17, 'i', 'I', NONE),
    (0x18, 'o', 'O', NONE),
    (0x19, 'p', 'P', NONE),
    (0x1a, '^', '¨', NONE),
    (0x1b, '$', '£', '¤'),
    (0x1e, 'q', 'Q', NONE),
    (0x1f, 's', 'S', NONE),
    (0x20, 'd', 'D', NONE),
    (0x21, 'f', 'F', NONE),
    (0x22, 'g', 'G', NONE),
    (0x23, 'h', 'H', NONE),
    (0x24, 'j', 'J', NONE),
    (0x25, 'k', 'K', NONE),
    (0x26, 'l', 'L', NONE),
    (0x27, 'm', 'M', NONE),
    (0x28, 'ù', '%', NONE),
    (0x2b, '*', 'µ', NONE),
    (0x56, '<', '>', NONE),
    (0x2c, 'w', 'W', NONE),
    (0x2d, 'x', 'X', NONE),
    (0x2e, 'c', 'C', NONE),
    (0x2f, 'v', 'V', NONE),
    (0x30, 'b', 'B', NONE),
    (0x31, 'n', 'N', NONE),
    (0x32, ',', '?', NONE),
    (0x33, ';', '.', NONE),
    (0x34, ':', '/', NONE),
    (0x35, '!', '§', NONE),
];

/// What a key types at each level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyChars {
    /// Without Shift.
    pub base: char,
    /// With Shift (or Caps Lock, for letters).
    pub shifted: Option<char>,
    /// With AltGr (right Alt), on layouts that have it.
    pub altgr: Option<char>,
}

impl KeyChars {
    /// Whether Caps Lock shifts this key (letters: their shifted form is their capital).
    pub fn is_letter(&self) -> bool {
        self.base.is_alphabetic()
            && self
                .shifted
                .is_some_and(|s| self.base.to_uppercase().eq(std::iter::once(s)))
    }
}

impl KeyboardLayout {
    /// Every layout this table knows.
    pub const ALL: [KeyboardLayout; 4] = [
        KeyboardLayout::UsEnglish,
        KeyboardLayout::UnitedKingdom,
        KeyboardLayout::German,
        KeyboardLayout::French,
    ];

    /// The layout of a Windows keyboard layout identifier (its low word, the language:
    /// variants such as `0x00010409` US-Dvorak are not told apart), if this table has it.
    pub fn from_klid(klid: u32) -> Option<Self> {
        match klid & 0xffff {
            0x0409 => Some(KeyboardLayout::UsEnglish),
            0x0809 => Some(KeyboardLayout::UnitedKingdom),
            0x0407 | 0x0c07 => Some(KeyboardLayout::German),
            0x040c | 0x080c => Some(KeyboardLayout::French),
            _ => None,
        }
    }

    /// Its KLID.
    pub fn klid(self) -> u32 {
        match self {
            KeyboardLayout::UsEnglish => 0x0409,
            KeyboardLayout::UnitedKingdom => 0x0809,
            KeyboardLayout::German => 0x0407,
            KeyboardLayout::French => 0x040c,
        }
    }

    /// Its name (`US English`, `German`, ...).
    pub fn name(self) -> &'static str {
        match self {
            KeyboardLayout::UsEnglish => "US English",
            KeyboardLayout::UnitedKingdom => "United Kingdom",
            KeyboardLayout::German => "German",
            KeyboardLayout::French => "French",
        }
    }

    /// Whether the right Alt key is AltGr (a third level) rather than Alt.
    pub fn has_altgr(self) -> bool {
        self != KeyboardLayout::UsEnglish
    }

    fn rows(self) -> &'static [Row] {
        match self {
            KeyboardLayout::UsEnglish => US,
            KeyboardLayout::UnitedKingdom => UK,
            KeyboardLayout::German => DE,
            KeyboardLayout::French => FR,
        }
    }

    /// What the (not E0-prefixed) key `code` types, if it types a character.
    ///
    /// ```
    /// use psm_proxy_rdp::layout::KeyboardLayout;
    /// // The key right of T: y on a US keyboard, z on a German one.
    /// assert_eq!(KeyboardLayout::UsEnglish.chars(0x15).unwrap().base, 'y');
    /// assert_eq!(KeyboardLayout::German.chars(0x15).unwrap().base, 'z');
    /// assert_eq!(KeyboardLayout::German.chars(0x10).unwrap().altgr, Some('@'));
    /// ```
    pub fn chars(self, code: u8) -> Option<KeyChars> {
        let some = |c: char| (c != NONE).then_some(c);
        self.rows()
            .iter()
            .find(|(c, ..)| *c == code)
            .map(|&(_, base, shifted, altgr)| KeyChars {
                base,
                shifted: some(shifted),
                altgr: some(altgr),
            })
    }

    /// The key (scan code) and levels that type `c`: `(code, shift, altgr)`; the inverse
    /// of [`KeyboardLayout::chars`], for tools that type into a session.
    pub fn key_for(self, c: char) -> Option<(u8, bool, bool)> {
        if c == NONE {
            return None;
        }
        // The simplest way: unshifted, else shifted, else with AltGr.
        let rows = self.rows();
        rows.iter()
            .find(|r| r.1 == c)
            .map(|r| (r.0, false, false))
            .or_else(|| rows.iter().find(|r| r.2 == c).map(|r| (r.0, true, false)))
            .or_else(|| rows.iter().find(|r| r.3 == c).map(|r| (r.0, false, true)))
    }
}

/// The most client bytes [`ConnectInitialSniffer`] looks through for the Connect Initial
/// (the Connection Request, a CredSSP exchange with NLA, then the Connect Initial itself,
/// typically well under 8 KiB).
pub const SNIFF_LIMIT: usize = 64 << 10;

/// What looking through the client's first bytes found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sniffed {
    /// The Connect Initial's keyboard layout identifier.
    Layout(u32),
    /// No Connect Initial in the complete PDUs so far: the first `consumed` bytes can be
    /// dropped, the rest is the start of a PDU still arriving.
    NeedMore {
        /// Bytes of complete PDUs looked at.
        consumed: usize,
    },
    /// Bytes that are neither a TPKT-framed PDU nor a CredSSP message: stop looking.
    Stop,
}

/// Looks for the MCS Connect Initial in `bytes`, the client's bytes from the start of
/// the connection: TPKT-framed PDUs (the Connection Request, then the Connect Initial),
/// with NLA CredSSP messages (DER `SEQUENCE`s) between them. Each TPKT PDU is decoded by
/// ironrdp's X.224 and MCS decoders; every byte is looked at once.
///
/// ```
/// use psm_proxy_rdp::layout::{sniff_keyboard_layout, Sniffed};
/// assert_eq!(sniff_keyboard_layout(b"\x03\x00\x00\x07abc\x03\x00"), Sniffed::NeedMore { consumed: 7 });
/// assert_eq!(sniff_keyboard_layout(b"GET / HTTP/1.1"), Sniffed::Stop);
/// ```
pub fn sniff_keyboard_layout(bytes: &[u8]) -> Sniffed {
    let mut at = 0;
    loop {
        let rest = &bytes[at..];
        let len = match rest {
            [] => return Sniffed::NeedMore { consumed: at },
            [0x03, 0x00, hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])),
            [0x03] | [0x03, 0x00] | [0x03, 0x00, _] => {
                return Sniffed::NeedMore { consumed: at };
            }
            [0x30, rest @ ..] => match der_length(rest) {
                Some(Some((header, len))) => 1 + header + len,
                Some(None) => return Sniffed::NeedMore { consumed: at },
                None => return Sniffed::Stop,
            },
            _ => return Sniffed::Stop,
        };
        if !(4..=SNIFF_LIMIT).contains(&len) {
            return Sniffed::Stop;
        }
        let Some(pdu) = rest.get(..len) else {
            return Sniffed::NeedMore { consumed: at };
        };
        // As ironrdp's acceptor reads it: an X.224 Data TPDU whose payload is the MCS
        // Connect Initial.
        if pdu[0] == 0x03
            && let Ok(X224(data)) = ironrdp::core::decode::<X224<X224Data<'_>>>(pdu)
            && let Ok(ci) = ironrdp::core::decode::<ConnectInitial>(data.data.as_ref())
        {
            return Sniffed::Layout(
                ci.conference_create_request
                    .gcc_blocks()
                    .core
                    .keyboard_layout,
            );
        }
        at += len;
    }
}

/// A DER length after a tag: `Some(Some((length bytes, length)))`, `Some(None)` when cut
/// short, `None` when not a length this looks for (indefinite, or over 4 bytes).
fn der_length(bytes: &[u8]) -> Option<Option<(usize, usize)>> {
    let Some(&first) = bytes.first() else {
        return Some(None);
    };
    if first < 0x80 {
        return Some(Some((1, usize::from(first))));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let Some(digits) = bytes.get(1..=n) else {
        return Some(None);
    };
    let len = digits
        .iter()
        .fold(0usize, |acc, &d| (acc << 8) | usize::from(d));
    Some(Some((1 + n, len)))
}

/// A client stream whose first [`SNIFF_LIMIT`] bytes are looked through for the keyboard
/// layout on their way to ironrdp-server; everything is passed on unchanged.
pub(crate) struct ConnectInitialSniffer<S> {
    inner: S,
    /// The start of a PDU still arriving.
    pending: Vec<u8>,
    /// Bytes looked at so far.
    looked: usize,
    /// Where the layout goes, once found (`0`: none found).
    found: Arc<OnceLock<u32>>,
}

impl<S> ConnectInitialSniffer<S> {
    /// Over `inner`; the layout is put in `found` when seen.
    pub(crate) fn new(inner: S, found: Arc<OnceLock<u32>>) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            looked: 0,
            found,
        }
    }

    fn look(&mut self, fresh: &[u8]) {
        if self.found.get().is_some() || fresh.is_empty() {
            return;
        }
        self.looked += fresh.len();
        self.pending.extend_from_slice(fresh);
        match sniff_keyboard_layout(&self.pending) {
            Sniffed::Layout(klid) => {
                let _ = self.found.set(klid);
                self.pending = Vec::new();
            }
            Sniffed::NeedMore { consumed } if self.looked < SNIFF_LIMIT => {
                self.pending.drain(..consumed);
            }
            // Not there in the bytes a connection sequence takes: stop looking.
            _ => {
                let _ = self.found.set(0);
                self.pending = Vec::new();
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ConnectInitialSniffer<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r
            && self.found.get().is_none()
        {
            let fresh = buf.filled()[before..].to_vec();
            self.look(&fresh);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ConnectInitialSniffer<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_each_key_once_and_types_back_what_it_names() {
        for layout in KeyboardLayout::ALL {
            let mut codes = std::collections::HashSet::new();
            for &(code, base, shifted, altgr) in layout.rows() {
                assert!(codes.insert(code), "{layout:?}: {code:#x} twice");
                // Typing a character finds a key that types it (US has `\\` twice).
                let (k, with_shift, with_altgr) = layout.key_for(base).unwrap();
                assert!(!with_shift && !with_altgr, "{layout:?} {base}");
                assert_eq!(layout.chars(k).unwrap().base, base);
                if shifted != NONE && shifted != base {
                    let (k, with_shift, _) = layout.key_for(shifted).unwrap();
                    assert!(with_shift || layout.chars(k).unwrap().base == shifted);
                }
                if altgr != NONE {
                    assert!(layout.has_altgr(), "{layout:?}");
                }
            }
            assert_eq!(KeyboardLayout::from_klid(layout.klid()), Some(layout));
        }
        assert_eq!(KeyboardLayout::from_klid(0x0411), None);
        assert_eq!(
            KeyboardLayout::from_klid(0x0001_0409),
            Some(KeyboardLayout::UsEnglish)
        );
        assert!(KeyboardLayout::German.chars(0x1a).unwrap().is_letter());
        assert!(!KeyboardLayout::German.chars(0x0c).unwrap().is_letter());
        assert!(!KeyboardLayout::French.chars(0x03).unwrap().is_letter());
    }

    #[test]
    fn the_layout_is_read_from_a_connect_initial_anywhere_in_the_first_bytes() {
        use ironrdp::pdu::gcc;
        use ironrdp::pdu::mcs::{ConnectInitial, DomainParameters};
        // A Connect Initial as ironrdp's own connector writes one, for a German keyboard.
        let core = gcc::ClientCoreData {
            version: gcc::RdpVersion::V5_PLUS,
            desktop_width: 1024,
            desktop_height: 768,
            color_depth: gcc::ColorDepth::Bpp8,
            sec_access_sequence: gcc::SecureAccessSequence::Del,
            keyboard_layout: 0x0407,
            client_build: 1,
            client_name: "psm-test".into(),
            keyboard_type: gcc::KeyboardType::IbmEnhanced,
            keyboard_subtype: 0,
            keyboard_functional_keys_count: 12,
            ime_file_name: String::new(),
            optional_data: gcc::ClientCoreOptionalData::default(),
        };
        let blocks = gcc::ClientGccBlocks {
            core,
            security: gcc::ClientSecurityData::no_security(),
            network: None,
            cluster: None,
            monitor: None,
            message_channel: None,
            multi_transport_channel: None,
            monitor_extended: None,
        };
        let ci = ConnectInitial {
            conference_create_request: gcc::ConferenceCreateRequest::new(blocks).unwrap(),
            calling_domain_selector: vec![1],
            called_domain_selector: vec![1],
            upward_flag: true,
            target_parameters: DomainParameters::target(),
            min_parameters: DomainParameters::min(),
            max_parameters: DomainParameters::max(),
        };
        let mcs = ironrdp::core::encode_vec(&ci).unwrap();
        let pdu = ironrdp::core::encode_vec(&X224(X224Data {
            data: std::borrow::Cow::Owned(mcs),
        }))
        .unwrap();
        // A Connection Request, a CredSSP message (DER, long-form length), the Connect Initial.
        let mut bytes = b"\x03\x00\x00\x0b\x06\xe0\x00\x00\x00\x00\x00".to_vec();
        bytes.extend_from_slice(b"\x30\x82\x00\x03abc");
        bytes.extend_from_slice(&pdu);
        assert_eq!(sniff_keyboard_layout(&bytes), Sniffed::Layout(0x0407));
        // Cut short, it is not there yet: the complete PDUs before it can go.
        assert_eq!(
            sniff_keyboard_layout(&bytes[..bytes.len() - 1]),
            Sniffed::NeedMore { consumed: 18 }
        );
        // Fed in pieces of any size through the sniffer's own bookkeeping.
        for piece in [1, 3, 7, 100] {
            let found = Arc::new(OnceLock::new());
            let mut s = ConnectInitialSniffer::new((), found.clone());
            for chunk in bytes.chunks(piece) {
                s.look(chunk);
            }
            assert_eq!(found.get(), Some(&0x0407), "pieces of {piece}");
        }
    }

    proptest::proptest! {
        /// Arbitrary client bytes, whole or in pieces: no panic, the same answer either
        /// way, and never more held than one PDU.
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..4096),
            piece in 1usize..64,
        ) {
            let whole = sniff_keyboard_layout(&bytes);
            if let Sniffed::NeedMore { consumed } = whole {
                proptest::prop_assert!(consumed <= bytes.len());
            }
            let found = Arc::new(OnceLock::new());
            let mut s = ConnectInitialSniffer::new((), found.clone());
            for chunk in bytes.chunks(piece) {
                s.look(chunk);
                proptest::prop_assert!(s.pending.len() <= bytes.len());
            }
            match whole {
                Sniffed::Layout(k) => proptest::prop_assert_eq!(found.get(), Some(&k)),
                Sniffed::Stop => proptest::prop_assert_eq!(found.get(), Some(&0)),
                Sniffed::NeedMore { .. } => proptest::prop_assert!(found.get().is_none()),
            }
        }
    }
}
