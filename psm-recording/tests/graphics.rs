//! Graphical recordings: raw palette pixels (`EventKind::Pixels`) written, read back, replayed
//! onto a canvas, exported, and their size against PNG stills of the same pictures.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Cursor;

use common::*;
use psm_recording::graphics::{Canvas, Palette, screen_at};
use psm_recording::*;

const W: u32 = 640;
const H: u32 = 384;
const LINE: u32 = 16;

/// A terminal-like screen: black text on white, `rows` text lines, each line's "glyphs"
/// picked by a deterministic hash of the line's number, so line `n` looks the same wherever
/// it is on the screen.
fn terminal(first_line: u32) -> Vec<u8> {
    let mut rgba = vec![0u8; (W * H * 4) as usize];
    for y in 0..H {
        let line = first_line + y / LINE;
        for x in 0..W {
            let glyph = (x / 8).wrapping_mul(2_654_435_761) ^ line.wrapping_mul(40_503);
            let ink = y % LINE < 12 && (glyph >> ((x % 8) + (y % LINE))) & 1 == 1;
            let c = if ink { [20, 20, 20] } else { [250, 250, 250] };
            let i = ((y * W + x) * 4) as usize;
            rgba[i..i + 3].copy_from_slice(&c);
            rgba[i + 3] = 255;
        }
    }
    rgba
}

/// 40 pictures of a terminal scrolling one line each, one second apart, as raw pixels
/// (with one palette) or as PNG stills; plus the screens themselves.
fn scrolling(raw: bool) -> (Vec<Event>, Vec<Vec<u8>>) {
    let mut palette = Palette::new();
    let mut events = Vec::new();
    let mut screens = Vec::new();
    for k in 0..40u32 {
        let rgba = terminal(k);
        let kind = if raw {
            EventKind::Pixels {
                x: 0,
                y: 0,
                width: W,
                height: H,
                indices: palette.indices(&rgba).unwrap(),
                palette: palette.rgb(),
            }
        } else {
            EventKind::Frame {
                x: 0,
                y: 0,
                width: W,
                height: H,
                png: graphics::encode_png(W, H, &rgba).unwrap(),
            }
        };
        events.push(Event::new(Micros(u64::from(k) * 1_000_000), kind));
        screens.push(rgba);
    }
    (events, screens)
}

/// The RDP gateway's writer settings for raw pixels (psm-proxy-rdp's `writer_config`).
fn raw_config() -> WriterConfig {
    WriterConfig {
        chunk_bytes: 1 << 20,
        group_bytes: 16 << 20,
        long_distance_matching: true,
        fsync: FsyncPolicy::Never,
        ..WriterConfig::default()
    }
}

/// ... and for PNG stills.
fn png_config() -> WriterConfig {
    WriterConfig {
        chunk_bytes: 1 << 20,
        compression_level: 1,
        fsync: FsyncPolicy::Never,
        ..WriterConfig::default()
    }
}

#[test]
fn raw_pixels_read_back_and_replay_exactly() {
    let key = SigningKey::generate().unwrap();
    let (events, screens) = scrolling(true);
    let (bytes, _) = write_all(&events, &key, raw_config());
    let mut r = Reader::new(Cursor::new(bytes.clone()), ReadOptions::default()).unwrap();
    let read: Vec<Event> = r
        .events()
        .map(Result::unwrap)
        .filter(|e| graphics::picture_rect(&e.kind).is_some())
        .collect();
    assert_eq!(read, events);
    // The screen at each second is that second's picture.
    for k in [0usize, 17, 39] {
        let mut r = Reader::new(Cursor::new(bytes.clone()), ReadOptions::default()).unwrap();
        let c = screen_at(&mut r, Micros(k as u64 * 1_000_000 + 500_000))
            .unwrap()
            .unwrap();
        assert_eq!((c.width(), c.height()), (W, H));
        assert!(c.rgba() == &screens[k][..], "screen {k}");
    }
    // Frames export: every picture as a PNG file that decodes to the same pixels.
    let dir = tempfile::tempdir().unwrap();
    let mut r = Reader::new(Cursor::new(bytes), ReadOptions::default()).unwrap();
    let summary = export::export_frames(&mut r, dir.path(), |_, _| {}).unwrap();
    assert_eq!(summary.items, 40);
    assert!(summary.gaps.is_empty(), "{:?}", summary.gaps);
    let png = std::fs::read(dir.path().join("frame-000039.png")).unwrap();
    assert_eq!(graphics::decode_png(&png, W, H).unwrap(), screens[39]);
}

#[test]
fn raw_pixels_of_a_scrolling_terminal_are_far_smaller_than_png_stills() {
    // Deterministic sizes (same pictures, same settings), not timings.
    let key = SigningKey::generate().unwrap();
    let (raw, _) = write_all(&scrolling(true).0, &key, raw_config());
    let (png, _) = write_all(&scrolling(false).0, &key, png_config());
    let ratio = raw.len() as f64 / png.len() as f64;
    eprintln!(
        "40 scrolled screens: raw pixels {} bytes, PNG stills {} bytes ({ratio:.3}x)",
        raw.len(),
        png.len()
    );
    assert!(
        ratio < 0.2,
        "raw pixels {} bytes vs PNG {} bytes",
        raw.len(),
        png.len()
    );
}

#[test]
fn a_bad_pixels_event_is_refused_by_the_writer_and_a_bad_index_is_a_gap() {
    let key = SigningKey::generate().unwrap();
    let sink = MemorySink::new();
    let mut w =
        BlockingWriter::with_sink(Box::new(sink.clone()), header(), key, png_config()).unwrap();
    // Wrong number of indices, empty palette: refused before anything is written.
    for bad in [
        EventKind::Pixels {
            x: 0,
            y: 0,
            width: 2,
            height: 2,
            palette: vec![1, 2, 3],
            indices: vec![0; 3],
        },
        EventKind::Pixels {
            x: 0,
            y: 0,
            width: 1,
            height: 1,
            palette: vec![],
            indices: vec![0],
        },
    ] {
        let e = w.record(&bad).unwrap_err();
        assert!(e.to_string().contains("pixels"), "{e}");
    }
    // An index past the palette is well-formed on disk but cannot be painted: the
    // exporters skip it as a gap and keep going.
    let two_pixels = |indices: Vec<u8>| EventKind::Pixels {
        x: 0,
        y: 0,
        width: 2,
        height: 1,
        palette: vec![9, 9, 9],
        indices,
    };
    w.record_at(Micros(1), &two_pixels(vec![0, 5])).unwrap();
    w.record_at(Micros(2), &two_pixels(vec![0, 0])).unwrap();
    w.finish_at(Micros(3), "done").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut r = Reader::new(Cursor::new(sink.bytes()), ReadOptions::default()).unwrap();
    let summary = export::export_frames(&mut r, dir.path(), |_, _| {}).unwrap();
    assert_eq!(summary.items, 1);
    assert_eq!(summary.gaps.len(), 1);
    let mut r = Reader::new(Cursor::new(sink.bytes()), ReadOptions::default()).unwrap();
    let c: Canvas = screen_at(&mut r, Micros(10)).unwrap().unwrap();
    assert_eq!(c.pixel(1, 0), [9, 9, 9, 255]);
    // The text transcript names both pictures.
    let mut r = Reader::new(Cursor::new(sink.bytes()), ReadOptions::default()).unwrap();
    let mut text = Vec::new();
    export::export_text(&mut r, &mut text, |_, _| {}).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert_eq!(
        text.matches("screen frame 2x1 at 0,0 (raw, 1 colours)")
            .count(),
        2
    );
}
