//! Support for the fuzz targets (feature `fuzzing`): wraps arbitrary bytes into validly
//! signed frames, so the fuzzer reaches the record decoder, the terminal emulation and the
//! exporters instead of stopping at the first signature check.

use crate::event::TermSize;
use crate::format::codec::put_uvarint;
use crate::format::frame::{self, KIND_CHUNK, KIND_HEADER, KIND_TRAILER, write_frame};
use crate::format::header::{self as header_codec, HeaderFrame};
use crate::header::Header;
use crate::keys::SigningKey;
use psm_core::Protocol;

/// A fixed key, so runs are reproducible.
pub fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

/// A signed recording whose chunks carry `payloads` as their (stored, uncompressed) record
/// payloads, with `meta` bytes choosing times, flags and counts; optionally finished with a
/// trailer built from `trailer` bytes.
pub fn signed_file(payloads: &[&[u8]], meta: &[u8], trailer: Option<&[u8]>) -> Vec<u8> {
    let key = key();
    let header = Header::new(
        psm_core::SessionId::from_uuid(uuid::Uuid::from_bytes([1; 16])),
        Protocol::Ssh,
        "fuzz",
        "target",
        "fuzz",
    )
    .with_terminal(TermSize::new(80, 24), "xterm");
    let body = header_codec::encode(&HeaderFrame {
        header,
        signer: key.verifying_key(),
        recipients: Vec::new(),
    });
    let pre = frame::preamble();
    let mut out = pre.to_vec();
    let Ok(mut prev) = write_frame(
        &mut out,
        KIND_HEADER,
        &body,
        &frame::chain_start(&pre),
        &key,
    ) else {
        return out;
    };
    let mut t = 0u64;
    for (i, p) in payloads.iter().enumerate() {
        let m = |k: usize| u64::from(meta.get(i * 3 + k).copied().unwrap_or(0));
        let mut body = Vec::new();
        put_uvarint(&mut body, i as u64);
        t += m(0) * 1000;
        put_uvarint(&mut body, t);
        put_uvarint(&mut body, t + m(1) * 1000);
        // The true event count (when the payload decodes), so readers go past the check.
        let probe = crate::format::record::ChunkMeta {
            seq: i as u64,
            t_start: crate::time::Micros(t),
            t_end: crate::time::Micros(t),
            event_count: 0,
            flags: 0,
            codec: 0,
            raw_len: 0,
        };
        let mut state = crate::format::record::DecodeState::default();
        let events = crate::format::record::RecordIter::new(p, &probe, &mut state)
            .take_while(Result::is_ok)
            .filter(|r| matches!(r, Ok(crate::event::Record::Event(_))))
            .count() as u64;
        put_uvarint(&mut body, if m(2) == 255 { m(1) } else { events });
        body.push((m(2) & 1) as u8);
        body.push(0);
        put_uvarint(&mut body, p.len() as u64);
        body.extend_from_slice(p);
        match write_frame(&mut out, KIND_CHUNK, &body, &prev, &key) {
            Ok(h) => prev = h,
            Err(_) => return out,
        }
    }
    if let Some(tr) = trailer {
        let at = out.len() as u64;
        if write_frame(&mut out, KIND_TRAILER, tr, &prev, &key).is_ok() {
            out.extend_from_slice(&frame::footer(at));
        }
    }
    out
}

/// The decompressed record payloads of a (plain) recording's chunks, keyframes included:
/// seeds for the `recording_records` target.
pub fn payloads_of(file: &[u8]) -> Vec<Vec<u8>> {
    let Ok(r) = crate::reader::Reader::from_bytes(file.to_vec(), Default::default()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut stream = crate::format::stream::StreamDecompressor::new().ok();
    for c in r.chunks() {
        let start = c.offset as usize + frame::FRAME_HEADER_LEN;
        let end = (c.offset + c.frame_len) as usize - frame::SEAL_LEN;
        let Some(body) = file.get(start..end) else {
            continue;
        };
        let Ok((meta, at)) =
            crate::format::record::ChunkMeta::decode(body, crate::Place::Chunk(c.seq), 0)
        else {
            continue;
        };
        let data = &body[at..];
        let raw_len = meta.raw_len as usize;
        let payload = match meta.codec {
            crate::format::record::CODEC_ZSTD => {
                zstd::bulk::decompress(data, raw_len).unwrap_or_default()
            }
            crate::format::record::CODEC_ZSTD_STREAM => match &mut stream {
                Some(s) => {
                    let fresh = meta.continues() || s.start_frame().is_ok();
                    if fresh {
                        s.piece(data, raw_len).unwrap_or_default()
                    } else {
                        Vec::new()
                    }
                }
                None => Vec::new(),
            },
            _ => data.to_vec(),
        };
        out.push(payload);
    }
    out
}
