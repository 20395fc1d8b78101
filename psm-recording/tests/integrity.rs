//! Crash safety, tamper evidence, signer trust, encryption, hostile input.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use psm_recording::*;

/// A small finished recording with several chunks (closed by the flush interval).
fn sample(key: &SigningKey, config: WriterConfig) -> (Vec<u8>, Vec<Event>) {
    let events = sample_session(24);
    let (bytes, done) = write_all(&events, key, config);
    assert!(done.chunks >= 5, "sample has only {} chunks", done.chunks);
    let mut r = Reader::from_bytes(bytes.clone(), ReadOptions::default()).unwrap();
    let all = r.events().collect::<Result<Vec<_>, _>>().unwrap();
    (bytes, all)
}

fn timed_chunks() -> WriterConfig {
    WriterConfig {
        flush_interval: Duration::from_millis(1500),
        ..small_chunks()
    }
}

#[test]
fn a_file_cut_at_any_byte_yields_every_complete_chunk() {
    let key = SigningKey::generate().unwrap();
    let (bytes, all) = sample(&key, timed_chunks());
    let full = Reader::from_bytes(bytes.clone(), ReadOptions::default()).unwrap();
    let chunks = full.chunks().to_vec();
    let header_end = chunks[0].offset as usize;
    for cut in 0..=bytes.len() {
        let r = Reader::from_bytes(bytes[..cut].to_vec(), ReadOptions::default());
        if cut < header_end {
            let e = r.expect_err("a file without a complete header must not open");
            assert!(
                matches!(
                    e,
                    RecordingError::Truncated { .. } | RecordingError::NotARecording(_)
                ),
                "cut {cut}: {e}"
            );
            continue;
        }
        let mut r = r.unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let complete: Vec<_> = chunks
            .iter()
            .filter(|c| (c.offset + c.frame_len) as usize <= cut)
            .collect();
        assert_eq!(r.chunks().len(), complete.len(), "cut at {cut}");
        let trailer_end = bytes.len() - 16;
        if cut >= trailer_end {
            assert!(r.integrity().is_intact(), "cut at {cut}: {}", r.integrity());
        } else {
            let expected = match complete.last() {
                Some(c) => format!("truncated after chunk {} at {}", c.seq, c.t_end),
                None => "truncated before the first chunk".to_owned(),
            };
            assert_eq!(r.integrity().to_string(), expected, "cut at {cut}");
        }
        let n: u64 = complete.iter().map(|c| c.event_count).sum();
        let got = r.events().collect::<Result<Vec<_>, _>>().unwrap();
        assert_eq!(got.as_slice(), &all[..n as usize], "cut at {cut}");
    }
}

/// Which frame a byte belongs to.
fn place_of(offset: usize, r: &Reader<std::io::Cursor<Vec<u8>>>, len: usize) -> Place {
    let header_end = r.chunks()[0].offset as usize;
    if offset < header_end {
        return Place::Header;
    }
    for c in r.chunks() {
        if offset < (c.offset + c.frame_len) as usize {
            return Place::Chunk(c.seq);
        }
    }
    if offset >= len - 16 {
        Place::Footer
    } else {
        Place::Trailer
    }
}

#[test]
fn every_flipped_bit_is_detected_and_located() {
    let key = SigningKey::generate().unwrap();
    let (bytes, _) = sample(&key, timed_chunks());
    let good = Reader::from_bytes(bytes.clone(), ReadOptions::default()).unwrap();
    let quick = VerifyOptions {
        decode: false,
        ..VerifyOptions::trusting(key.verifying_key())
    };
    for i in 0..bytes.len() {
        // One bit per byte, a different one each time (all eight over any 8 bytes).
        {
            let bit = (i % 8) as u8;
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            let place = place_of(i, &good, b.len());
            let report = verify_reader(std::io::Cursor::new(b), &quick);
            match (place, report) {
                (Place::Header, Err(_)) => {}
                (Place::Header, Ok(r)) => {
                    panic!("byte {i} bit {bit} in the header: opened as {}", r.status)
                }
                (p, Ok(r)) => match &r.status {
                    Integrity::Tampered { place, .. } => {
                        assert_eq!(*place, p, "byte {i} bit {bit}: {}", r.status);
                        if let Place::Chunk(k) = p {
                            assert!(
                                r.status
                                    .to_string()
                                    .starts_with(&format!("tampered at chunk {k}"))
                            );
                        }
                    }
                    other => panic!("byte {i} bit {bit} in the {p}: {other}"),
                },
                (p, Err(e)) => panic!("byte {i} bit {bit} in the {p}: {e}"),
            }
        }
    }
}

#[test]
fn chunks_after_a_damaged_one_are_still_read_and_the_gap_is_marked() {
    let key = SigningKey::generate().unwrap();
    let (mut bytes, all) = sample(&key, timed_chunks());
    let r = Reader::from_bytes(bytes.clone(), ReadOptions::default()).unwrap();
    let c2 = r.chunks()[2];
    // A byte in the middle of chunk 2's payload.
    bytes[(c2.offset + c2.frame_len / 2) as usize] ^= 0x40;
    let mut r = Reader::from_bytes(
        bytes,
        ReadOptions {
            full_scan: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        r.integrity().to_string().starts_with("tampered at chunk 2"),
        "{}",
        r.integrity()
    );
    assert_eq!(r.damaged_chunks().len(), 1);
    let mut events = Vec::new();
    let mut gaps = Vec::new();
    export::walk(
        &mut r,
        |item| {
            match item {
                export::Item::Event(e) => events.push(e.clone()),
                export::Item::Gap(g) => gaps.push(g.clone()),
            }
            Ok(())
        },
        |_, _| {},
    )
    .unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert!(gaps[0].reason.contains("chunk 2"), "{gaps:?}");
    let lost = c2.event_count as usize;
    assert_eq!(events.len(), all.len() - lost);
    assert_eq!(events.last(), all.last());
}

#[test]
fn a_wrong_signing_key_is_rejected() {
    let key = SigningKey::generate().unwrap();
    let other = SigningKey::generate().unwrap();
    let (bytes, _) = sample(&key, timed_chunks());
    let e = Reader::from_bytes(
        bytes.clone(),
        ReadOptions {
            trusted_signers: vec![other.verifying_key()],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, RecordingError::UntrustedSigner { .. }), "{e}");
    let report = verify_reader(
        std::io::Cursor::new(bytes.clone()),
        &VerifyOptions::trusting(other.verifying_key()),
    )
    .unwrap();
    assert!(report.status.is_intact());
    assert_eq!(report.signer_trusted, Some(false));
    assert!(!report.is_trusted_and_intact());

    // Swapping the signer key in the header for an attacker's breaks the header's seal.
    let mut forged = bytes.clone();
    let pk = key.verifying_key().to_bytes();
    let at = forged.windows(32).position(|w| w == pk).unwrap();
    forged[at..at + 32].copy_from_slice(&other.verifying_key().to_bytes());
    let e = Reader::from_bytes(forged, ReadOptions::default()).unwrap_err();
    assert!(
        matches!(
            e,
            RecordingError::Tampered {
                place: Place::Header,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn encrypted_recordings_are_unreadable_without_a_recipient_key() {
    let key = SigningKey::generate().unwrap();
    let auditor = RecipientSecret::generate().unwrap();
    let stranger = RecipientSecret::generate().unwrap();
    let config = WriterConfig {
        recipients: vec![auditor.public()],
        ..timed_chunks()
    };
    let events = sample_events();
    let (bytes, _) = write_all(&events, &key, config);
    assert!(
        !bytes.windows(9).any(|w| w == b"echo line"),
        "plaintext in an encrypted file"
    );

    // Integrity is checkable by anyone.
    let report = verify_reader(
        std::io::Cursor::new(bytes.clone()),
        &VerifyOptions::trusting(key.verifying_key()),
    )
    .unwrap();
    assert!(report.status.is_intact());
    assert!(!report.decoded);
    assert_eq!(report.recipients, vec![auditor.public()]);

    let mut r = Reader::from_bytes(bytes.clone(), ReadOptions::default()).unwrap();
    assert!(matches!(
        r.read_chunk(0).unwrap_err(),
        RecordingError::Encrypted { .. }
    ));
    let e = Reader::from_bytes(
        bytes.clone(),
        ReadOptions {
            identity: Some(stranger),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, RecordingError::WrongRecipient { .. }), "{e}");
    let mut r = Reader::from_bytes(
        bytes,
        ReadOptions {
            identity: Some(auditor),
            ..Default::default()
        },
    )
    .unwrap();
    let got = r.events().collect::<Result<Vec<_>, _>>().unwrap();
    assert_eq!(&got[..events.len()], &events[..]);
}

#[test]
fn garbage_and_wrong_versions_give_clear_errors() {
    let e = Reader::from_bytes(
        b"hello world, not a recording".to_vec(),
        ReadOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("not a .psmr recording"), "{e}");
    assert!(Reader::from_bytes(Vec::new(), ReadOptions::default()).is_err());
    let key = SigningKey::generate().unwrap();
    let (mut bytes, _) = sample(&key, timed_chunks());
    bytes[8] = 2; // major version 2
    let e = Reader::from_bytes(bytes.clone(), ReadOptions::default()).unwrap_err();
    assert!(
        matches!(e, RecordingError::UnsupportedVersion { major: 2, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("version 2.0"), "{e}");
    // Random bytes after a valid magic and version never panic.
    let mut state = 0x1234_5678_9abc_def0u64;
    for n in 0..300 {
        let mut b = format::MAGIC.to_vec();
        b.extend_from_slice(&[1, 0, 0, 0]);
        for _ in 0..(n * 7) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b.push(state as u8);
        }
        let _ = Reader::from_bytes(b.clone(), ReadOptions::default());
        let _ = verify_reader(std::io::Cursor::new(b), &VerifyOptions::default());
    }
}

/// Builds frames by hand, from the spec, to feed the reader lengths and payloads no writer
/// makes.
mod forge {
    use super::*;

    pub fn sign(key: &SigningKey, hash: &[u8; 32]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        let text = key.to_text();
        let hexs = text.strip_prefix("psmr-signing-secret:").unwrap();
        let mut sk = [0u8; 32];
        hex::decode_to_slice(hexs, &mut sk).unwrap();
        let k = ed25519_dalek::SigningKey::from_bytes(&sk);
        let mut msg = b"psmr v1 frame signature\0".to_vec();
        msg.extend_from_slice(hash);
        k.sign(&msg).to_bytes()
    }

    pub fn frame(key: &SigningKey, prev: &[u8; 32], kind: u8, body: &[u8]) -> (Vec<u8>, [u8; 32]) {
        let mut f = vec![kind, 0];
        f.extend_from_slice(&(body.len() as u32).to_le_bytes());
        let mut h = blake3::Hasher::new();
        h.update(prev);
        h.update(&f);
        h.update(body);
        let hash = *h.finalize().as_bytes();
        f.extend_from_slice(body);
        f.extend_from_slice(&hash);
        f.extend_from_slice(&sign(key, &hash));
        (f, hash)
    }

    pub fn uvarint(b: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            b.push(v as u8 | 0x80);
            v >>= 7;
        }
        b.push(v as u8);
    }

    /// The preamble and header frame of a real recording, and the chain value after them.
    pub fn start(key: &SigningKey) -> (Vec<u8>, [u8; 32]) {
        let sink = MemorySink::new();
        let w = BlockingWriter::with_sink(
            Box::new(sink.clone()),
            header(),
            key.clone(),
            small_chunks(),
        )
        .unwrap();
        drop(w);
        let b = sink.bytes();
        let len = u32::from_le_bytes([b[14], b[15], b[16], b[17]]) as usize;
        let end = 12 + 6 + len + 96;
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&b[end - 96..end - 64]);
        (b[..end].to_vec(), hash)
    }

    pub fn chunk_body(raw_len: u64, codec: u8, payload: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        for v in [0u64, 0, 0, 1] {
            uvarint(&mut body, v); // seq, t_start, t_end, event count
        }
        body.push(0); // flags
        body.push(codec);
        uvarint(&mut body, raw_len);
        body.extend_from_slice(payload);
        body
    }
}

#[test]
fn a_zstd_bomb_is_refused_without_inflating_it() {
    let key = SigningKey::generate().unwrap();
    let (mut file, prev) = forge::start(&key);
    // 256 MiB of zeros compress to a few KiB; the chunk claims 100 bytes.
    let bomb = zstd::bulk::compress(&vec![0u8; 256 << 20], 19).unwrap();
    let (f, _) = forge::frame(&key, &prev, 2, &forge::chunk_body(100, 1, &bomb));
    file.extend_from_slice(&f);
    let mut r = Reader::from_bytes(file.clone(), ReadOptions::default()).unwrap();
    assert_eq!(
        r.integrity().to_string(),
        "truncated after chunk 0 at 00:00:00.000"
    );
    let e = r.read_chunk(0).unwrap_err();
    assert!(
        e.to_string()
            .contains("does not decompress within 100 bytes"),
        "{e}"
    );
    assert!(e.to_string().contains("chunk 0"), "{e}");

    // A raw length past the limit is refused before decompressing.
    let (mut file, prev) = forge::start(&key);
    let (f, _) = forge::frame(&key, &prev, 2, &forge::chunk_body(1 << 40, 1, &bomb));
    file.extend_from_slice(&f);
    let r = Reader::from_bytes(file, ReadOptions::default()).unwrap();
    assert!(
        r.integrity().to_string().contains("exceeds the limit"),
        "{}",
        r.integrity()
    );
}

#[test]
fn lengths_far_past_the_file_are_refused_without_allocating() {
    let key = SigningKey::generate().unwrap();
    let (file, prev) = forge::start(&key);
    // A frame header claiming 4 GiB.
    let mut f = file.clone();
    f.extend_from_slice(&[2, 0, 0xff, 0xff, 0xff, 0xff]);
    f.extend_from_slice(&[0u8; 200]);
    let r = Reader::from_bytes(f, ReadOptions::default()).unwrap();
    assert!(
        r.integrity()
            .to_string()
            .contains("exceeds the format's limit"),
        "{}",
        r.integrity()
    );

    // A record inside a valid, signed chunk whose length runs past the payload.
    let mut payload = vec![0x01, 0x00];
    forge::uvarint(&mut payload, 1 << 50);
    payload.extend_from_slice(b"short");
    let (c, _) = forge::frame(
        &key,
        &prev,
        2,
        &forge::chunk_body(payload.len() as u64, 0, &payload),
    );
    let mut f = file.clone();
    f.extend_from_slice(&c);
    let mut r = Reader::from_bytes(f, ReadOptions::default()).unwrap();
    let e = r.read_chunk(0).unwrap_err();
    assert!(e.to_string().contains("past the end"), "{e}");

    // A header frame that claims more than a header may be.
    let mut f = file[..12].to_vec();
    f.extend_from_slice(&[1, 0, 0xff, 0xff, 0xff, 0x7f]);
    let e = Reader::from_bytes(f, ReadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("a header is at most"), "{e}");
}

#[test]
fn unknown_frame_kinds_and_record_types_are_skipped() {
    let key = SigningKey::generate().unwrap();
    let (mut file, prev) = forge::start(&key);
    let (f, prev) = forge::frame(&key, &prev, 0x90, b"from the future");
    file.extend_from_slice(&f);
    // A chunk with an unknown record type (0x7e) before a marker.
    let mut payload = vec![0x7e, 0x00, 0x03, 1, 2, 3];
    payload.extend_from_slice(&[0x0a, 0x00, 0x03, 0x02, b'h', b'i']);
    let mut body = Vec::new();
    for v in [0u64, 5, 5, 1] {
        forge::uvarint(&mut body, v);
    }
    body.extend_from_slice(&[0, 0]);
    forge::uvarint(&mut body, payload.len() as u64);
    body.extend_from_slice(&payload);
    let (f, _) = forge::frame(&key, &prev, 2, &body);
    file.extend_from_slice(&f);
    let mut r = Reader::from_bytes(file, ReadOptions::default()).unwrap();
    let events = r.events().collect::<Result<Vec<_>, _>>().unwrap();
    assert_eq!(
        events,
        vec![Event::new(
            Micros(5),
            EventKind::Marker { label: "hi".into() }
        )]
    );
}
