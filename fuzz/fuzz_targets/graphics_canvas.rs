//! A recording's picture events at replay time (a recording file is outside bytes): the
//! first 9 bytes give the event's kind and its claimed place and size, the rest is a PNG
//! (`Frame`) or a palette length byte, a palette and indices (`Pixels`). Painting must
//! refuse what is bad without panicking or allocating more than the claimed screen.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psm_recording::EventKind;
use psm_recording::graphics::Canvas;

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let x = u32::from(u16::from_le_bytes([data[1], data[2]]));
    let y = u32::from(u16::from_le_bytes([data[3], data[4]]));
    let width = u32::from(u16::from_le_bytes([data[5], data[6]])) % 2048;
    let height = u32::from(u16::from_le_bytes([data[7], data[8]])) % 2048;
    let rest = &data[9..];
    let kind = if data[0] & 1 == 0 {
        EventKind::Frame {
            x,
            y,
            width,
            height,
            png: rest.to_vec(),
        }
    } else {
        let n = usize::from(rest.first().copied().unwrap_or(0)) * 3;
        let rest = rest.get(1..).unwrap_or_default();
        let (palette, indices) = rest.split_at(n.min(rest.len()));
        EventKind::Pixels {
            x,
            y,
            width,
            height,
            palette: palette.to_vec(),
            indices: indices.to_vec(),
        }
    };
    let Ok(mut c) = Canvas::new(64, 48) else {
        return;
    };
    let before = c.clone();
    if c.apply(&kind).is_err() {
        assert_eq!(c, before, "a refused picture changed the canvas");
    }
    assert_eq!(c.rgba().len(), (c.width() * c.height() * 4) as usize);
});
