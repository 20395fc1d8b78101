//! Shared helpers for the integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use proptest::prelude::*;
use psm_recording::*;

pub fn header() -> Header {
    Header::new(
        psm_core::SessionId::new(),
        Protocol::Ssh,
        "alice",
        "web-01",
        "test-writer/1",
    )
    .with_terminal(TermSize::new(80, 24), "xterm-256color")
}

pub fn small_chunks() -> WriterConfig {
    WriterConfig {
        chunk_bytes: 4096,
        fsync: FsyncPolicy::Never,
        input_policy: InputPolicy::RecordAll,
        keyframe_bytes: 2048,
        ..WriterConfig::default()
    }
}

/// Writes `events` with a blocking writer into memory and returns the file's bytes.
pub fn write_all(
    events: &[Event],
    key: &SigningKey,
    config: WriterConfig,
) -> (Vec<u8>, FinishedRecording) {
    let sink = MemorySink::new();
    let mut w =
        BlockingWriter::with_sink(Box::new(sink.clone()), header(), key.clone(), config).unwrap();
    for e in events {
        w.record_at(e.time, &e.kind).unwrap();
    }
    let end = events.last().map_or(Micros::ZERO, |e| e.time);
    let done = w.finish_at(end, "test over").unwrap();
    (sink.bytes(), done)
}

/// A realistic little session.
pub fn sample_events() -> Vec<Event> {
    sample_session(60)
}

/// A shell session with `n` prompt/command/output rounds.
pub fn sample_session(n: u64) -> Vec<Event> {
    let mut v = Vec::new();
    let mut t = 0u64;
    let mut push = |dt: u64, kind: EventKind| {
        t += dt;
        v.push(Event::new(Micros(t), kind));
    };
    push(
        0,
        EventKind::ChannelOpen {
            channel: ChannelId(0),
            kind: ChannelKind::Shell {
                pty: Some(Pty {
                    term: "xterm".into(),
                    size: TermSize::new(80, 24),
                }),
            },
        },
    );
    for i in 0..n {
        push(
            100_000,
            EventKind::Output {
                channel: ChannelId(0),
                stream: Stream::Stdout,
                data: b"\x1b[1;32muser@host\x1b[0m:~$ ".to_vec(),
            },
        );
        push(
            250_000,
            EventKind::Input {
                channel: ChannelId(0),
                data: format!("echo line {i}\r").into_bytes(),
                echo_off: false,
            },
        );
        push(
            1_000,
            EventKind::Output {
                channel: ChannelId(0),
                stream: Stream::Stdout,
                data: format!("echo line {i}\r\nline {i}\r\n").into_bytes(),
            },
        );
        if i % 10 == 0 {
            push(
                5,
                EventKind::Marker {
                    label: format!("m{i}"),
                },
            );
        }
    }
    push(
        10,
        EventKind::Resize {
            channel: ChannelId(0),
            size: TermSize::new(100, 30),
        },
    );
    push(
        10,
        EventKind::ChannelClose {
            channel: ChannelId(0),
            exit_status: Some(0),
            exit_signal: None,
        },
    );
    v
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,20}"
}

fn size() -> impl Strategy<Value = TermSize> {
    (0u16..300, 0u16..100).prop_map(|(c, r)| TermSize::new(c, r))
}

fn pty() -> impl Strategy<Value = Option<Pty>> {
    proptest::option::of((text(), size()).prop_map(|(term, size)| Pty { term, size }))
}

fn channel_kind() -> impl Strategy<Value = ChannelKind> {
    prop_oneof![
        pty().prop_map(|pty| ChannelKind::Shell { pty }),
        (text(), pty()).prop_map(|(command, pty)| ChannelKind::Exec { command, pty }),
        text().prop_map(|name| ChannelKind::Subsystem { name }),
        (any::<bool>(), text(), any::<u16>(), text()).prop_map(|(l, host, port, originator)| {
            ChannelKind::PortForward {
                direction: if l {
                    ForwardDirection::Local
                } else {
                    ForwardDirection::Remote
                },
                host,
                port,
                originator,
            }
        }),
        Just(ChannelKind::X11),
        Just(ChannelKind::Agent),
        text().prop_map(|name| ChannelKind::Other { name }),
    ]
}

pub fn event_kind() -> impl Strategy<Value = EventKind> {
    let ch = (0u32..4).prop_map(ChannelId);
    prop_oneof![
        10 => (ch.clone(), any::<bool>(), bytes(3000)).prop_map(|(channel, e, data)| EventKind::Output {
            channel, stream: if e { Stream::Stderr } else { Stream::Stdout }, data }),
        3 => (ch.clone(), bytes(20), any::<bool>()).prop_map(|(channel, data, echo_off)| EventKind::Input { channel, data, echo_off }),
        1 => ch.clone().prop_map(|channel| EventKind::InputRedacted { channel }),
        1 => (ch.clone(), size()).prop_map(|(channel, size)| EventKind::Resize { channel, size }),
        1 => (ch.clone(), channel_kind()).prop_map(|(channel, kind)| EventKind::ChannelOpen { channel, kind }),
        1 => (ch.clone(), proptest::option::of(any::<u32>()), proptest::option::of(text())).prop_map(|(channel, exit_status, exit_signal)| EventKind::ChannelClose { channel, exit_status, exit_signal }),
        1 => (ch.clone(), any::<bool>(), text(), text(), proptest::option::of(any::<u64>()), proptest::option::of(any::<[u8; 32]>())).prop_map(|(channel, up, protocol, path, size, blake3)| EventKind::FileTransfer(FileTransfer {
            channel, direction: if up { TransferDirection::Upload } else { TransferDirection::Download }, protocol, path, size, blake3 })),
        1 => (any::<bool>(), text(), bytes(100)).prop_map(|(c, mime, data)| EventKind::Clipboard {
            direction: if c { ClipboardDirection::ClientToTarget } else { ClipboardDirection::TargetToClient }, mime, data }),
        1 => (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>(), bytes(200)).prop_map(|(x, y, width, height, png)| EventKind::Frame { x, y, width, height, png }),
        1 => (any::<u32>(), any::<u32>(), 1u32..40, 1u32..20, 1usize..=256, any::<u64>()).prop_map(|(x, y, width, height, colours, seed)| EventKind::Pixels {
            x, y, width, height,
            palette: (0..colours * 3).map(|i| (i as u64 ^ seed) as u8).collect(),
            indices: (0..u64::from(width * height)).map(|i| ((i ^ seed) % colours as u64) as u8).collect() }),
        1 => text().prop_map(|label| EventKind::Marker { label }),
        1 => (text(), text()).prop_map(|(author, text)| EventKind::Annotation { author, text }),
        1 => (0u8..5, text(), text()).prop_map(|(a, rule, detail)| EventKind::Policy {
            action: [PolicyAction::Blocked, PolicyAction::Paused, PolicyAction::Resumed, PolicyAction::Terminated, PolicyAction::Alert][a as usize], rule, detail }),
        1 => (text(), any::<bool>()).prop_map(|(viewer, c)| EventKind::ViewerJoined { viewer, mode: if c { ViewerMode::Control } else { ViewerMode::Watch } }),
        1 => text().prop_map(|viewer| EventKind::ViewerLeft { viewer }),
        2 => db_statement().prop_map(|s| EventKind::DbStatement(Box::new(s))),
    ]
}

fn db_statement() -> impl Strategy<Value = DbStatement> {
    (
        (
            text(),
            "\\PC{0,200}",
            proptest::option::of(text()),
            proptest::collection::vec(proptest::option::of(text()), 0..5),
            text(),
        ),
        (
            any::<u64>(),
            proptest::option::of(text()),
            proptest::option::of(any::<u64>()),
            proptest::collection::vec(text(), 0..6),
            any::<u64>(),
        ),
        proptest::option::of((text(), text())),
    )
        .prop_map(
            |(
                (database, text, prepared, parameters, class),
                (duration_us, tag, rows, columns, rows_returned),
                error,
            )| DbStatement {
                database,
                text,
                prepared,
                parameters,
                class,
                duration_us,
                tag,
                rows,
                columns,
                rows_returned,
                error: error.map(|(code, message)| DbError { code, message }),
            },
        )
}

pub fn events() -> impl Strategy<Value = Vec<Event>> {
    proptest::collection::vec((0u64..3_000_000, event_kind()), 0..120).prop_map(|v| {
        let mut t = 0;
        v.into_iter()
            .map(|(dt, kind)| {
                t += dt;
                Event::new(Micros(t), kind)
            })
            .collect()
    })
}
