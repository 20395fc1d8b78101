//! Seeking through keyframes gives exactly the screen a replay from the start gives.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use proptest::prelude::*;
use psm_recording::*;

fn terminal_output() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => "[a-z0-9 .:/-]{0,70}".prop_map(|s| format!("{s}\r\n").into_bytes()),
        2 => "[a-z ]{0,20}".prop_map(|s| format!("\x1b[1;3{}m{s}\x1b[0m", s.len() % 8).into_bytes()),
        1 => (1u16..30, 1u16..90).prop_map(|(r, c)| format!("\x1b[{r};{c}Htop-like").into_bytes()),
        1 => Just(b"\x1b[?1049h\x1b[2J\x1b[Heditor".to_vec()),
        1 => Just(b"\x1b[?1049l".to_vec()),
        1 => Just(b"\x1b[3;20r\x1b[20;1H\n\n".to_vec()),
        1 => Just(b"\x1b[r".to_vec()),
        1 => Just("€ split ".as_bytes()[..2].to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

fn session() -> impl Strategy<Value = Vec<Event>> {
    let step = prop_oneof![
        20 => terminal_output().prop_map(|data| EventKind::Output { channel: ChannelId(0), stream: Stream::Stdout, data }),
        1 => (20u16..120, 5u16..40).prop_map(|(c, r)| EventKind::Resize { channel: ChannelId(0), size: TermSize::new(c, r) }),
        1 => terminal_output().prop_map(|data| EventKind::Output { channel: ChannelId(1), stream: Stream::Stdout, data }),
        1 => Just(EventKind::ChannelOpen { channel: ChannelId(1), kind: ChannelKind::Shell { pty: Some(Pty { term: "xterm".into(), size: TermSize::new(40, 10) }) } }),
        1 => Just(EventKind::ChannelClose { channel: ChannelId(1), exit_status: Some(0), exit_signal: None }),
    ];
    proptest::collection::vec((0u64..2_000_000, step), 1..400).prop_map(|v| {
        let mut t = 0;
        v.into_iter()
            .map(|(dt, k)| {
                t += dt;
                Event::new(Micros(t), k)
            })
            .collect()
    })
}

/// The reference: every event replayed from the start, up to `t`.
fn replay(events: &[Event], t: Micros) -> Vec<(ChannelId, String)> {
    let mut tr = TerminalTracker::new(Some(TermSize::new(80, 24)));
    for e in events.iter().filter(|e| e.time <= t) {
        tr.apply(&e.kind);
    }
    dumps(&mut tr)
}

fn dumps(tr: &mut TerminalTracker) -> Vec<(ChannelId, String)> {
    tr.channels()
        .into_iter()
        .map(|c| (c, tr.terminal(c).unwrap().dump()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn screen_at_any_time_equals_replay_from_the_start(events in session(), probes in proptest::collection::vec(any::<u64>(), 1..8)) {
        let key = SigningKey::generate().unwrap();
        let config = WriterConfig { keyframe_bytes: 512, ..small_chunks() };
        let (bytes, _) = write_all(&events, &key, config);
        let mut r = Reader::from_bytes(bytes, ReadOptions::default()).unwrap();
        // With or without keyframes in the chunks (the writer keeps few now: seeking relies on
        // the seek index the encoder appends), the screen at any instant is what a replay gives.
        let end = events.last().unwrap().time.0 + 1;
        for p in probes {
            let t = Micros(p % end);
            let mut got = r.screen_at(t).unwrap();
            prop_assert_eq!(dumps(&mut got), replay(&events, t), "at {}", t);
        }
    }
}
