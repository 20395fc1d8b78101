//! Any bytes as an asciicast file: import into a signed recording, read it back, export it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psm_recording::export::{self, AsciicastOptions};
use psm_recording::import::{ImportMeta, import_asciicast};
use psm_recording::{FsyncPolicy, MemorySink, ReadOptions, Reader, WriterConfig};

fuzz_target!(|data: &[u8]| {
    let sink = MemorySink::new();
    let config = WriterConfig {
        chunk_bytes: 4096,
        keyframe_bytes: 1024,
        fsync: FsyncPolicy::Never,
        ..WriterConfig::default()
    };
    let imported = import_asciicast(
        data,
        Box::new(sink.clone()),
        psm_recording::fuzzing::key(),
        config,
        ImportMeta::default(),
        |_| {},
    );
    let bytes = sink.bytes();
    let Ok(mut r) = Reader::from_bytes(bytes, ReadOptions::default()) else {
        assert!(imported.is_err(), "an import that succeeded must read back");
        return;
    };
    if imported.is_ok() {
        assert!(r.integrity().is_intact(), "{}", r.integrity());
    }
    let _ = r.screen_at(r.duration());
    let _ = export::export_asciicast(
        &mut r,
        std::io::sink(),
        &AsciicastOptions::default(),
        |_, _| {},
    );
});
