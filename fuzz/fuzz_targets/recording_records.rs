//! Any bytes as the records of validly signed chunks, so the fuzzer gets past the signatures
//! to the record decoder, the terminal emulation (keyframes, seeking) and every exporter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psm_recording::export::{self, AsciicastOptions};
use psm_recording::{Micros, ReadOptions, Reader};

fuzz_target!(|data: &[u8]| {
    // Layout: meta length (1 byte), meta, then payloads separated by 0xFF 0xFE.
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (meta, rest) = rest.split_at((n as usize).min(rest.len()));
    let payloads: Vec<&[u8]> = rest.split(|&b| b == 0xfe).take(16).collect();
    let finished = meta.first().is_some_and(|b| b & 1 == 1);
    let trailer = meta.get(1..).unwrap_or_default();
    let file = psm_recording::fuzzing::signed_file(&payloads, meta, finished.then_some(trailer));
    let Ok(mut r) = Reader::from_bytes(file, ReadOptions::default()) else {
        return;
    };
    for i in 0..r.chunks().len() {
        let _ = r.read_chunk(i);
    }
    let end = r.duration().0;
    for t in [0, end / 3, end] {
        let _ = r.screen_at(Micros(t));
    }
    let _ = export::export_asciicast(
        &mut r,
        std::io::sink(),
        &AsciicastOptions {
            include_input: true,
            ..Default::default()
        },
        |_, _| {},
    );
    let _ = export::export_text(&mut r, std::io::sink(), |_, _| {});
    let _ = export::export_commands(&mut r, std::io::sink(), |_, _| {});
    if let Ok(re) = regex::Regex::new("a|\\$") {
        let _ = psm_recording::search::search(&mut r, &re, |_, _| {});
    }
});
