//! The client's keyboard as the recorder reads it: its first bytes looked through for the
//! Connect Initial's keyboard layout (whole and in pieces: the same answer), and arbitrary
//! key events through every layout's text mapping (each key's text short and non-empty) and
//! the vaulted-password watch: no panic, no unbounded growth.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psm_proxy_rdp::input::{InputEvent, KeyText, SecretWatch};
use psm_proxy_rdp::layout::{KeyboardLayout, Sniffed, sniff_keyboard_layout};

fuzz_target!(|data: &[u8]| {
    let whole = sniff_keyboard_layout(data);
    if let Sniffed::NeedMore { consumed } = whole {
        assert!(consumed <= data.len());
    }
    let Some((&pick, events)) = data.split_first() else {
        return;
    };
    let layout = KeyboardLayout::ALL[usize::from(pick) % KeyboardLayout::ALL.len()];
    let mut keys = KeyText::with_layout(layout);
    let mut watch = SecretWatch::new("Tgt-s3cret").expect("a watched secret");
    let mut released = String::new();
    for e in events.chunks_exact(3) {
        let event = match e[0] % 4 {
            0 | 1 => InputEvent::Key {
                code: e[1],
                extended: e[2] & 1 == 1,
                down: e[2] & 2 == 2,
            },
            2 => InputEvent::Unicode {
                unit: u16::from_le_bytes([e[1], e[2]]),
                down: true,
            },
            _ => InputEvent::Sync {
                caps: e[1] & 1 == 1,
                num: e[1] & 2 == 2,
                scroll: false,
            },
        };
        if let Some(text) = keys.feed(event) {
            assert!(!text.is_empty() && text.len() < 64, "{text:?}");
            released += &watch.feed(&text).release;
        }
    }
    released += &watch.release_all();
    let _ = released;
});
