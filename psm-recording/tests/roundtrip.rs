//! Write → read round trips.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use proptest::prelude::*;
use psm_recording::*;

fn read_back(bytes: Vec<u8>, options: ReadOptions) -> Vec<Event> {
    let mut r = Reader::from_bytes(bytes, options).unwrap();
    assert!(r.integrity().is_intact(), "{}", r.integrity());
    r.events().collect::<Result<Vec<_>, _>>().unwrap()
}

fn with_end(mut events: Vec<Event>) -> Vec<Event> {
    let end = events.last().map_or(Micros::ZERO, |e| e.time);
    events.push(Event::new(
        end,
        EventKind::SessionEnd {
            reason: "test over".into(),
        },
    ));
    events
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_event_sequence_reads_back_equal(events in events()) {
        let key = SigningKey::generate().unwrap();
        let (bytes, done) = write_all(&events, &key, small_chunks());
        let expected = with_end(events);
        prop_assert_eq!(done.events, expected.len() as u64);
        prop_assert_eq!(read_back(bytes.clone(), ReadOptions::default()), expected.clone());
        // Also through a full scan, and through verify.
        prop_assert_eq!(read_back(bytes.clone(), ReadOptions { full_scan: true, ..Default::default() }), expected);
        let report = verify_reader(std::io::Cursor::new(bytes), &VerifyOptions::trusting(key.verifying_key())).unwrap();
        prop_assert!(report.is_trusted_and_intact(), "{:?}", report.status);
    }

    #[test]
    fn encrypted_sequences_read_back_equal_for_every_recipient(events in events()) {
        let key = SigningKey::generate().unwrap();
        let alice = RecipientSecret::generate().unwrap();
        let bob = RecipientSecret::generate().unwrap();
        let config = WriterConfig { recipients: vec![alice.public(), bob.public()], ..small_chunks() };
        let (bytes, _) = write_all(&events, &key, config);
        let expected = with_end(events);
        for id in [alice, bob] {
            let got = read_back(bytes.clone(), ReadOptions { identity: Some(id), ..Default::default() });
            prop_assert_eq!(&got, &expected);
        }
    }
}

#[test]
fn header_round_trips() {
    let key = SigningKey::generate().unwrap();
    let mut h = header();
    h.metadata.insert("client".into(), "127.0.0.1:5555".into());
    h.metadata.insert("ticket".into(), "CHG-42".into());
    let sink = MemorySink::new();
    let w = BlockingWriter::with_sink(
        Box::new(sink.clone()),
        h.clone(),
        key.clone(),
        small_chunks(),
    )
    .unwrap();
    w.finish("done").unwrap();
    let r = Reader::from_bytes(sink.bytes(), ReadOptions::default()).unwrap();
    assert_eq!(r.header(), &h);
    assert_eq!(r.signer(), key.verifying_key());
    assert_eq!(r.ending().unwrap().reason, "done");
}

#[test]
fn echo_off_input_is_redacted_by_default() {
    let key = SigningKey::generate().unwrap();
    let events = vec![
        Event::new(
            Micros(1),
            EventKind::Input {
                channel: ChannelId(0),
                data: b"sudo -s\r".to_vec(),
                echo_off: false,
            },
        ),
        Event::new(
            Micros(2),
            EventKind::Input {
                channel: ChannelId(0),
                data: b"hunter2\r".to_vec(),
                echo_off: true,
            },
        ),
    ];
    let config = WriterConfig {
        fsync: FsyncPolicy::Never,
        ..WriterConfig::default()
    };
    let (bytes, _) = write_all(&events, &key, config);
    assert!(
        !bytes.windows(7).any(|w| w == b"hunter2"),
        "a password reached the file"
    );
    let got = read_back(bytes, ReadOptions::default());
    assert_eq!(got[0], events[0]);
    assert_eq!(
        got[1].kind,
        EventKind::InputRedacted {
            channel: ChannelId(0)
        }
    );
}
