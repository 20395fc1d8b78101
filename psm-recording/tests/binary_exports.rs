//! Binary output on a channel without a terminal is left out of the text exports, with a
//! note where it starts and the byte count at the end; text and terminals are exported as
//! before.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use psm_recording::export::{AsciicastOptions, Omission, export_asciicast, export_text};
use psm_recording::*;

const BINARY: usize = 200_000;

fn session() -> Vec<Event> {
    let mut binary = vec![0u8; BINARY];
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for b in &mut binary {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        *b = s as u8;
    }
    let at = |ms: u64, kind| Event {
        time: Micros(ms * 1000),
        kind,
    };
    let out = |c: u32, d: &[u8]| EventKind::Output {
        channel: ChannelId(c),
        stream: Stream::Stdout,
        data: d.to_vec(),
    };
    let mut events = vec![
        at(
            0,
            EventKind::ChannelOpen {
                channel: ChannelId(1),
                kind: ChannelKind::Exec {
                    command: "echo start; head -c 200000 /dev/urandom".into(),
                    pty: None,
                },
            },
        ),
        at(1, out(1, b"start\n")),
    ];
    for (i, piece) in binary.chunks(32 << 10).enumerate() {
        events.push(at(2 + i as u64, out(1, piece)));
    }
    events.push(at(
        20,
        EventKind::ChannelOpen {
            channel: ChannelId(2),
            kind: ChannelKind::Shell {
                pty: Some(Pty {
                    term: "xterm".into(),
                    size: TermSize::new(80, 24),
                }),
            },
        },
    ));
    // A terminal shows whatever comes, NUL bytes included: never left out.
    events.push(at(21, out(2, b"$ ls\r\nfile\0name\r\n")));
    events
}

fn reader() -> Reader<std::io::Cursor<Vec<u8>>> {
    let (bytes, _) = write_all(&session(), &SigningKey::generate().unwrap(), small_chunks());
    Reader::from_bytes(bytes, ReadOptions::default()).unwrap()
}

#[test]
fn binary_output_without_a_terminal_is_left_out_of_the_transcript_with_a_note() {
    let mut out = Vec::new();
    let summary = export_text(&mut reader(), &mut out, |_, _| {}).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("ch1] start"), "{text}");
    assert!(
        text.contains("channel 1: binary output from here on is left out of this transcript"),
        "{text}"
    );
    assert!(
        text.contains(&format!("channel 1: {BINARY} bytes of binary output")),
        "{text}"
    );
    assert!(text.contains("ch2] $ ls"), "{text}");
    assert!(text.len() < 4096, "{} bytes of transcript", text.len());
    assert_eq!(
        summary.omitted,
        vec![Omission {
            channel: ChannelId(1),
            from: Micros(2000),
            bytes: BINARY as u64
        }]
    );
    // The header's terminal (channel 0) and the shell's pty.
    assert_eq!(summary.terminals, 2);
}

#[test]
fn binary_output_is_left_out_of_the_asciicast_of_its_channel() {
    let mut out = Vec::new();
    let options = AsciicastOptions {
        channel: Some(ChannelId(1)),
        ..AsciicastOptions::default()
    };
    let summary = export_asciicast(&mut reader(), &mut out, &options, |_, _| {}).unwrap();
    let cast = String::from_utf8(out).unwrap();
    assert!(cast.contains("\"o\", \"start\\n\""), "{cast}");
    assert!(
        cast.contains("[channel 1: binary output from here on is not in this export]"),
        "{cast}"
    );
    assert!(
        cast.contains(&format!("{BINARY} bytes of binary output")),
        "{cast}"
    );
    assert!(cast.len() < 4096, "{} bytes of asciicast", cast.len());
    assert_eq!(summary.omitted.len(), 1);

    // The terminal channel's cast is as before.
    let mut out = Vec::new();
    let options = AsciicastOptions {
        channel: Some(ChannelId(2)),
        ..AsciicastOptions::default()
    };
    let summary = export_asciicast(&mut reader(), &mut out, &options, |_, _| {}).unwrap();
    assert!(summary.omitted.is_empty());
    assert!(String::from_utf8(out).unwrap().contains("file"));
}
