//! Any bytes as a .psmr file: open (lazily and by full scan), verify, read every chunk, seek,
//! export. Must never panic, hang or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psm_recording::{Micros, ReadOptions, Reader, VerifyOptions, export};

fuzz_target!(|data: &[u8]| {
    let _ = psm_recording::verify_reader(
        std::io::Cursor::new(data),
        &VerifyOptions {
            decode: true,
            ..VerifyOptions::default()
        },
    );
    for full_scan in [false, true] {
        let Ok(mut r) = Reader::from_bytes(
            data.to_vec(),
            ReadOptions {
                full_scan,
                ..Default::default()
            },
        ) else {
            continue;
        };
        for i in 0..r.chunks().len().min(64) {
            let _ = r.read_chunk(i);
        }
        let _ = r.screen_at(Micros(r.duration().0 / 2));
        let _ = export::export_text(&mut r, std::io::sink(), |_, _| {});
    }
});
