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

/// The default writer configuration, without fsync, keeping every keystroke.
fn defaults() -> WriterConfig {
    WriterConfig {
        fsync: FsyncPolicy::Never,
        input_policy: InputPolicy::RecordAll,
        ..WriterConfig::default()
    }
}

/// Three stretches of shell work separated by pauses of 12 s: with the default
/// configuration, 5-second chunks in three compression groups (a pause of more than
/// `idle_release`, 10 s, starts a group) of several chunks each.
fn grouped_session() -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    let mut t0 = 0;
    for _ in 0..3 {
        for e in sample_session(40) {
            events.push(Event::new(Micros(t0 + e.time.0), e.kind));
        }
        t0 = events.last().unwrap().time.0 + 12_000_000;
    }
    events
}

/// The chunk ranges of each compression group.
fn groups(chunks: &[ChunkInfo]) -> Vec<std::ops::Range<usize>> {
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        match out.last_mut() {
            Some(g) if c.continues => g.end = i + 1,
            _ => {
                assert!(!c.continues, "chunk {i} continues nothing");
                out.push(i..i + 1);
            }
        }
    }
    out
}

/// The grouped session written with the default configuration, and its events read back.
fn grouped(key: &SigningKey) -> (Vec<u8>, Vec<Event>) {
    let (bytes, _) = write_all(&grouped_session(), key, defaults());
    let mut r = Reader::from_bytes(bytes.clone(), ReadOptions::default()).unwrap();
    let g = groups(r.chunks());
    assert!(g.len() >= 3, "only {} groups: {g:?}", g.len());
    assert!(
        g.iter().all(|g| g.len() >= 2),
        "a group of one chunk: {g:?}"
    );
    let all = r.events().collect::<Result<Vec<_>, _>>().unwrap();
    (bytes, all)
}

/// Opens `bytes[..cut]` and checks that it yields exactly the chunks complete before the
/// cut, their events, and the right verdict.
fn check_cut(bytes: &[u8], chunks: &[ChunkInfo], all: &[Event], cut: usize) {
    let header_end = chunks[0].offset as usize;
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
        return;
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

#[test]
fn a_file_cut_at_any_byte_yields_every_complete_chunk() {
    let key = SigningKey::generate().unwrap();
    // Small chunks, one group; and the default configuration, several groups of several
    // chunks: a cut inside a group keeps the group's complete chunks readable.
    for (bytes, all) in [sample(&key, timed_chunks()), grouped(&key)] {
        let full = Reader::from_bytes(bytes.clone(), ReadOptions::default()).unwrap();
        let chunks = full.chunks().to_vec();
        assert!(chunks.iter().any(|c| c.continues));
        for cut in 0..=bytes.len() {
            check_cut(&bytes, &chunks, &all, cut);
        }
    }
}

/// Flips one bit inside chunk `k`'s body (`at` picks the byte).
fn flip_in_body(bytes: &mut [u8], c: &ChunkInfo, at: usize, bit: u8) {
    let body_len = c.frame_len as usize - 6 - 64;
    bytes[c.offset as usize + 6 + at % body_len] ^= 1 << bit;
}

/// Reads every chunk of `bytes` and checks that exactly `damaged` (seq numbers) fail, the
/// first as changed and the others as depending on it, and the rest read as in `good`.
fn check_damage(
    bytes: &[u8],
    good: &[ChunkRecords],
    k: usize,
    damaged: std::ops::Range<usize>,
    full_scan: bool,
) {
    let mut r = Reader::from_bytes(
        bytes.to_vec(),
        ReadOptions {
            full_scan,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.chunks().len(), good.len());
    for (i, want) in good.iter().enumerate() {
        match r.read_chunk(i) {
            Ok(c) => {
                assert!(!damaged.contains(&i), "chunk {i} read despite the change");
                assert_eq!(c.events, want.events, "chunk {i}");
            }
            Err(e) => {
                assert!(damaged.contains(&i), "chunk {i}: {e}");
                let s = e.to_string();
                assert!(s.starts_with(&format!("tampered at chunk {i}")), "{s}");
                if i == k {
                    // By its signature, or by the chain hash the signed trailer vouches for.
                    assert!(
                        s.contains("signature does not verify")
                            || s.contains("does not match its BLAKE3 chain hash"),
                        "{s}"
                    );
                } else {
                    assert!(s.contains(&format!("depends on chunk {k}")), "{s}");
                }
            }
        }
    }
    let want: Vec<u64> = damaged.map(|i| i as u64).collect();
    let got: Vec<u64> = r.damaged_chunks().iter().map(|(s, _)| *s).collect();
    assert_eq!(got, want, "full scan: {full_scan}");
    assert!(
        r.integrity()
            .to_string()
            .starts_with(&format!("tampered at chunk {k} ")),
        "{}",
        r.integrity()
    );
}

#[test]
fn a_chunk_changed_inside_a_group_loses_the_rest_of_that_group_only() {
    let key = SigningKey::generate().unwrap();
    let (bytes, all) = grouped(&key);
    let mut r = Reader::from_bytes(bytes.clone(), ReadOptions::default()).unwrap();
    let chunks = r.chunks().to_vec();
    let good: Vec<_> = (0..chunks.len())
        .map(|i| r.read_chunk(i).unwrap())
        .collect();
    let g = groups(&chunks)[1].clone();
    assert!(g.len() >= 3, "{g:?}");
    // The second chunk of the second group: the group's first chunk and every other group
    // still read; the chunks after it in its group depend on it.
    let k = g.start + 1;
    let mut bad = bytes.clone();
    flip_in_body(&mut bad, &chunks[k], 40, 3);
    for full_scan in [false, true] {
        check_damage(&bad, &good, k, k..g.end, full_scan);
    }
    let report = verify_reader(
        std::io::Cursor::new(bad),
        &VerifyOptions::trusting(key.verifying_key()),
    )
    .unwrap();
    assert!(
        report
            .status
            .to_string()
            .starts_with(&format!("tampered at chunk {k} ")),
        "{}",
        report.status
    );
    assert_eq!(
        report.damaged_chunks,
        (k..g.end).map(|i| i as u64).collect::<Vec<_>>()
    );
    let lost: u64 = chunks[k..g.end].iter().map(|c| c.event_count).sum();
    assert_eq!(report.events, all.len() as u64 - lost);
    assert!(report.decoded, "the other chunks decode");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    #[test]
    fn any_cut_and_any_changed_chunk_lose_no_more_than_they_must(
        events in events(),
        group_chunks in 1u32..6,
        cut in proptest::prelude::any::<proptest::sample::Index>(),
        which in proptest::prelude::any::<proptest::sample::Index>(),
        at in 0usize..1 << 20,
        bit in 0u8..8,
    ) {
        let key = SigningKey::generate().unwrap();
        let config = WriterConfig { group_chunks, ..small_chunks() };
        let (bytes, _) = write_all(&events, &key, config);
        let mut r = Reader::from_bytes(bytes.clone(), ReadOptions::default()).unwrap();
        let chunks = r.chunks().to_vec();
        let good: Vec<_> = (0..chunks.len()).map(|i| r.read_chunk(i).unwrap()).collect();
        let all: Vec<Event> = good.iter().flat_map(|c| c.events.clone()).collect();
        // A cut anywhere after the header.
        let header_end = chunks[0].offset as usize;
        check_cut(&bytes, &chunks, &all, header_end + cut.index(bytes.len() - header_end + 1));
        // A changed chunk: it and the chunks after it in its group are lost, nothing else.
        let k = which.index(chunks.len());
        let g = groups(&chunks).into_iter().find(|g| g.contains(&k)).unwrap();
        let mut bad = bytes;
        flip_in_body(&mut bad, &chunks[k], at, bit);
        for full_scan in [false, true] {
            check_damage(&bad, &good, k, k..g.end, full_scan);
        }
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
fn groups_after_a_damaged_one_are_still_read_and_the_gap_is_marked() {
    let key = SigningKey::generate().unwrap();
    let (mut bytes, all) = grouped(&key);
    let r = Reader::from_bytes(bytes.clone(), ReadOptions::default()).unwrap();
    let chunks = r.chunks().to_vec();
    let g = groups(&chunks)[0].clone();
    let k = g.start + 1;
    // A byte in the middle of chunk k's payload.
    let c = chunks[k];
    bytes[(c.offset + c.frame_len / 2) as usize] ^= 0x40;
    let mut r = Reader::from_bytes(
        bytes,
        ReadOptions {
            full_scan: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        r.integrity()
            .to_string()
            .starts_with(&format!("tampered at chunk {k}")),
        "{}",
        r.integrity()
    );
    assert_eq!(r.damaged_chunks().len(), g.end - k);
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
    assert!(!gaps.is_empty(), "{gaps:?}");
    assert!(gaps[0].reason.contains(&format!("chunk {k}")), "{gaps:?}");
    let lost: u64 = chunks[k..g.end].iter().map(|c| c.event_count).sum();
    assert_eq!(events.len(), all.len() - lost as usize);
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
    // A 1.0 file (no compression groups, stored chain hashes) and a future major version
    // are both refused by name; a later minor version is read.
    for major in [1u8, 3] {
        bytes[8] = major;
        bytes[10] = 0;
        let e = Reader::from_bytes(bytes.clone(), ReadOptions::default()).unwrap_err();
        assert!(
            matches!(e, RecordingError::UnsupportedVersion { major: m, .. } if m == u16::from(major)),
            "{e}"
        );
        assert!(e.to_string().contains(&format!("version {major}.0")), "{e}");
    }
    bytes[8] = 2;
    let (start, _) = forge::start(&key);
    let mut minor7 = start[..12].to_vec();
    minor7[10] = 7;
    let h0 = *blake3::hash(&minor7).as_bytes();
    let (header, _) = forge::frame(&key, &h0, 1, &start[18..start.len() - 64]);
    minor7.extend_from_slice(&header);
    let r = Reader::from_bytes(minor7, ReadOptions::default()).unwrap();
    assert_eq!(
        r.integrity().to_string(),
        "truncated before the first chunk"
    );
    // Random bytes after a valid magic and version never panic.
    let mut state = 0x1234_5678_9abc_def0u64;
    for n in 0..300 {
        let mut b = format::MAGIC.to_vec();
        b.extend_from_slice(&[2, 0, 0, 0]);
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
        let mut msg = b"psmr v2 frame signature\0".to_vec();
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
        let end = 12 + 6 + len + 64;
        // The chain hash is not stored: h_0 = BLAKE3(BLAKE3(preamble) || frame header || body).
        let start = *blake3::hash(&b[..12]).as_bytes();
        let mut h = blake3::Hasher::new();
        h.update(&start);
        h.update(&b[12..end - 64]);
        (b[..end].to_vec(), *h.finalize().as_bytes())
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

#[test]
fn a_chunk_continuing_a_group_without_a_stream_is_refused() {
    let key = SigningKey::generate().unwrap();
    let (mut file, prev) = forge::start(&key);
    let marker = [0x0a, 0x00, 0x03, 0x02, b'h', b'i'];
    // Chunk 0: stored (codec 0), a group of its own.
    let (f, prev) = forge::frame(
        &key,
        &prev,
        2,
        &forge::chunk_body(marker.len() as u64, 0, &marker),
    );
    file.extend_from_slice(&f);
    // Chunk 1: "continues" with codec 2, but there is no group stream to continue (its
    // payload would decode on its own, so only the rule can refuse it).
    let piece = zstd::bulk::compress(&marker, 3).unwrap();
    let mut body = Vec::new();
    for v in [1u64, 0, 0, 1] {
        forge::uvarint(&mut body, v); // seq, t_start, span, event count
    }
    body.extend_from_slice(&[1, 2]); // flags: continues; codec 2
    forge::uvarint(&mut body, marker.len() as u64);
    body.extend_from_slice(&piece);
    let (f, _) = forge::frame(&key, &prev, 2, &body);
    file.extend_from_slice(&f);
    let mut r = Reader::from_bytes(file, ReadOptions::default()).unwrap();
    assert_eq!(r.chunks().len(), 2);
    assert!(r.chunks()[1].continues);
    assert_eq!(r.read_chunk(0).unwrap().events.len(), 1);
    for _ in 0..2 {
        let e = r.read_chunk(1).unwrap_err();
        assert!(
            e.to_string()
                .contains("continues a group whose previous chunk is not a codec-2 piece"),
            "{e}"
        );
    }
}

/// What a gateway commits to at EndSession (`FinishedRecording::final_hash`) is what any
/// reader finds at the end of the chain, by the trailer or by a full scan, and a copy cut back to an earlier chunk (which alone reads as merely truncated) ends elsewhere.
#[test]
fn the_committed_chain_end_is_what_readers_find_and_a_cut_copy_differs() {
    let key = SigningKey::generate().unwrap();
    let events = sample_session(24);
    let (bytes, done) = write_all(&events, &key, small_chunks());
    assert!(done.chunks >= 3);
    let r = Reader::from_bytes(bytes.clone(), ReadOptions::default()).unwrap();
    assert_eq!(r.chain_end(), done.final_hash);
    let full = ReadOptions {
        full_scan: true,
        ..ReadOptions::default()
    };
    let report = verify_reader(
        std::io::Cursor::new(bytes.clone()),
        &VerifyOptions::default(),
    )
    .unwrap();
    assert!(report.status.is_intact());
    assert_eq!(report.chain_end, done.final_hash);
    let scanned = Reader::from_bytes(bytes.clone(), full.clone()).unwrap();
    assert_eq!(scanned.chain_end(), done.final_hash);

    // Cut right after the second chunk: a valid prefix, signed by the same key.
    let cut = r.chunks()[2].offset as usize;
    let report = verify_reader(
        std::io::Cursor::new(bytes[..cut].to_vec()),
        &VerifyOptions::trusting(key.verifying_key()),
    )
    .unwrap();
    assert!(
        matches!(report.status, Integrity::Truncated { .. }),
        "{}",
        report.status
    );
    assert_eq!(report.signer_trusted, Some(true));
    assert_ne!(report.chain_end, done.final_hash);
}
