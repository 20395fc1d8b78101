//! A recording's frame events at export time (a recording file is outside bytes): the
//! first 8 bytes give the frame's claimed place and size, the rest is its PNG.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psm_proxy_rdp::export::Canvas;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let x = u32::from(u16::from_le_bytes([data[0], data[1]]));
    let y = u32::from(u16::from_le_bytes([data[2], data[3]]));
    let w = u32::from(u16::from_le_bytes([data[4], data[5]])) % 2048;
    let h = u32::from(u16::from_le_bytes([data[6], data[7]])) % 2048;
    let mut c = Canvas::new(64, 48);
    let _ = c.apply(x, y, w, h, &data[8..]);
});
