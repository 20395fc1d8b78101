//! Padded bitmaps (a bitmap wider than its destination rectangle, as xrdp sends them) are
//! painted by ironrdp-session exactly as the same picture sent unpadded, after the
//! gateway's [`Normalizer`]: for RDP 6.0 planar (what xrdp sends at 32 bpp) and raw bitmaps,
//! in fast-path and in fragments. Any bytes: no panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ironrdp::core::{WriteBuf, encode_vec};
use ironrdp::graphics::rdp6::{BitmapStreamEncoder, RgbAChannels};
use ironrdp::pdu::bitmap::{BitmapData, BitmapUpdateData, Compression};
use ironrdp::pdu::fast_path::{
    EncryptionFlags, FastPathHeader, FastPathUpdatePdu, Fragmentation, UpdateCode,
};
use ironrdp::pdu::geometry::InclusiveRectangle;
use ironrdp::session::fast_path::ProcessorBuilder;
use ironrdp::session::image::DecodedImage;
use proptest::prelude::*;
use psm_proxy_rdp::bitmaps::{Normalized, Normalizer};

const W: u16 = 64;
const H: u16 = 32;

/// A picture of `w` x `h` RGBA pixels, different everywhere.
fn picture(w: usize, h: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(w * h * 4);
    for y in 0..h {
        for x in 0..w {
            v.extend([
                (x * 37 + y * 11) as u8,
                (x * 5 + y * 71) as u8,
                ((x ^ y) * 9) as u8,
                255,
            ]);
        }
    }
    v
}

/// The left `w` columns of a `full_w`-wide picture.
fn left_columns(rgba: &[u8], full_w: usize, w: usize) -> Vec<u8> {
    rgba.chunks_exact(full_w * 4)
        .flat_map(|row| row[..w * 4].to_vec())
        .collect()
}

fn fast_path(fragmentation: Fragmentation, data: &[u8]) -> Vec<u8> {
    let update = FastPathUpdatePdu {
        fragmentation,
        update_code: UpdateCode::Bitmap,
        compression_flags: None,
        compression_type: None,
        data,
    };
    let body = encode_vec(&update).unwrap();
    let mut pdu = encode_vec(&FastPathHeader::new(EncryptionFlags::empty(), body.len())).unwrap();
    pdu.extend(body);
    pdu
}

fn bitmap_update(b: BitmapData<'_>) -> Vec<u8> {
    encode_vec(&BitmapUpdateData {
        rectangles: vec![b],
    })
    .unwrap()
}

fn rdp6(rgba: &[u8], w: usize, h: usize) -> Vec<u8> {
    let mut out = vec![0u8; w * h * 4 + 64];
    let n = BitmapStreamEncoder::new(w, h)
        .encode_bitmap::<RgbAChannels>(rgba, &mut out, true)
        .unwrap();
    out.truncate(n);
    out
}

/// Raw 32-bpp BGRX rows, bottom-up ([MS-RDPBCGR] 2.2.9.1.1.3.1.2.2).
fn raw32(rgba: &[u8], w: usize) -> Vec<u8> {
    rgba.chunks_exact(w * 4)
        .rev()
        .flat_map(|row| {
            row.chunks_exact(4)
                .flat_map(|p| [p[2], p[1], p[0], 0])
                .collect::<Vec<_>>()
        })
        .collect()
}

fn rect(left: u16, top: u16, w: u16, h: u16) -> InclusiveRectangle {
    InclusiveRectangle {
        left,
        top,
        right: left + w - 1,
        bottom: top + h - 1,
    }
}

/// Paints fast-path PDUs on a fresh desktop the way the gateway's session does.
fn paint(pdus: &[Vec<u8>]) -> Vec<u8> {
    let mut image = DecodedImage::new(
        ironrdp::graphics::image_processing::PixelFormat::RgbA32,
        W,
        H,
    );
    let mut processor = ProcessorBuilder {
        io_channel_id: 1003,
        user_channel_id: 1007,
        share_id: 0x10000,
        enable_server_pointer: false,
        pointer_software_rendering: false,
        bulk_decompressor: None,
    }
    .build();
    let mut out = WriteBuf::new();
    for pdu in pdus {
        processor.process(&mut image, pdu, &mut out).unwrap();
    }
    image.data().to_vec()
}

/// Through the normalizer first.
fn paint_normalized(pdus: &[Vec<u8>]) -> Vec<u8> {
    let mut n = Normalizer::new(W, H);
    let mut all = Vec::new();
    for pdu in pdus {
        match n.normalize(pdu) {
            Normalized::Unchanged => all.push(pdu.clone()),
            Normalized::Rewritten(v) => all.extend(v),
        }
    }
    paint(&all)
}

#[test]
fn a_padded_planar_bitmap_paints_like_the_unpadded_one() {
    // 13 shown columns, sent 16 wide (xrdp's rounding); 9 rows.
    let (shown, padded, h) = (13usize, 16usize, 9usize);
    let full = picture(padded, h);
    let exact = left_columns(&full, padded, shown);
    let reference = paint(&[fast_path(
        Fragmentation::Single,
        &bitmap_update(BitmapData {
            rectangle: rect(5, 3, shown as u16, h as u16),
            width: shown as u16,
            height: h as u16,
            bits_per_pixel: 32,
            compression_flags: Compression::BITMAP_COMPRESSION
                | Compression::NO_BITMAP_COMPRESSION_HDR,
            compressed_data_header: None,
            bitmap_data: &rdp6(&exact, shown, h),
        }),
    )]);
    let encoded = rdp6(&full, padded, h);
    let padded_pdu = fast_path(
        Fragmentation::Single,
        &bitmap_update(BitmapData {
            rectangle: rect(5, 3, shown as u16, h as u16),
            width: padded as u16,
            height: h as u16,
            bits_per_pixel: 32,
            compression_flags: Compression::BITMAP_COMPRESSION
                | Compression::NO_BITMAP_COMPRESSION_HDR,
            compressed_data_header: None,
            bitmap_data: &encoded,
        }),
    );
    assert_ne!(
        paint(std::slice::from_ref(&padded_pdu)),
        reference,
        "ironrdp-session 0.11 shears it"
    );
    assert_eq!(paint_normalized(&[padded_pdu]), reference);
}

#[test]
fn a_padded_raw_bitmap_in_fragments_paints_like_the_unpadded_one() {
    let (shown, padded, h) = (30usize, 32usize, 20usize);
    let full = picture(padded, h);
    let exact = left_columns(&full, padded, shown);
    let reference = paint(&[fast_path(
        Fragmentation::Single,
        &bitmap_update(BitmapData {
            rectangle: rect(0, 0, shown as u16, h as u16),
            width: shown as u16,
            height: h as u16,
            bits_per_pixel: 32,
            compression_flags: Compression::empty(),
            compressed_data_header: None,
            bitmap_data: &raw32(&exact, shown),
        }),
    )]);
    let raw = raw32(&full, padded);
    let update = bitmap_update(BitmapData {
        rectangle: rect(0, 0, shown as u16, h as u16),
        width: padded as u16,
        height: h as u16,
        bits_per_pixel: 32,
        compression_flags: Compression::empty(),
        compressed_data_header: None,
        bitmap_data: &raw,
    });
    let third = update.len() / 3;
    let pdus = vec![
        fast_path(Fragmentation::First, &update[..third]),
        fast_path(Fragmentation::Next, &update[third..2 * third]),
        fast_path(Fragmentation::Last, &update[2 * third..]),
    ];
    assert_eq!(paint_normalized(&pdus), reference);
}

#[test]
fn a_bitmap_taller_than_its_rectangle_shows_its_top_rows() {
    let (w, shown_h, h) = (8usize, 3usize, 5usize);
    let full = picture(w, h);
    let top = full[..w * shown_h * 4].to_vec();
    let reference = paint(&[fast_path(
        Fragmentation::Single,
        &bitmap_update(BitmapData {
            rectangle: rect(2, 2, w as u16, shown_h as u16),
            width: w as u16,
            height: shown_h as u16,
            bits_per_pixel: 32,
            compression_flags: Compression::empty(),
            compressed_data_header: None,
            bitmap_data: &raw32(&top, w),
        }),
    )]);
    let raw = raw32(&full, w);
    let pdu = fast_path(
        Fragmentation::Single,
        &bitmap_update(BitmapData {
            rectangle: rect(2, 2, w as u16, shown_h as u16),
            width: w as u16,
            height: h as u16,
            bits_per_pixel: 32,
            compression_flags: Compression::empty(),
            compressed_data_header: None,
            bitmap_data: &raw,
        }),
    );
    assert_eq!(paint_normalized(&[pdu]), reference);
}

#[test]
fn a_large_reassembled_update_is_fragmented_again() {
    // Raw 32-bpp rectangles whose widths match (nothing to crop), sent in fragments.
    let (w, h) = (60usize, 200usize);
    let pic = picture(w, h);
    let raw = raw32(&pic, w);
    let update = bitmap_update(BitmapData {
        rectangle: rect(0, 0, w as u16, 32),
        width: w as u16,
        height: 32,
        bits_per_pixel: 32,
        compression_flags: Compression::empty(),
        compressed_data_header: None,
        bitmap_data: &raw[..w * 4 * 32],
    });
    let mut big = bitmap_update(BitmapData {
        rectangle: rect(0, 0, w as u16, 32),
        width: w as u16,
        height: 32,
        bits_per_pixel: 32,
        compression_flags: Compression::empty(),
        compressed_data_header: None,
        bitmap_data: &raw[..w * 4 * 32],
    });
    // Five rectangles in one update: 5 x 7 700 bytes, more than the 32 767 a fast-path
    // PDU's length field can say.
    big.truncate(2);
    big.extend(5u16.to_le_bytes());
    for _ in 0..5 {
        big.extend_from_slice(&update[4..]);
    }
    assert!(big.len() > 0x7FFF);
    let third = big.len() / 3;
    let pdus = vec![
        fast_path(Fragmentation::First, &big[..third]),
        fast_path(Fragmentation::Next, &big[third..2 * third]),
        fast_path(Fragmentation::Last, &big[2 * third..]),
    ];
    let mut n = Normalizer::new(W, H);
    let mut out = Vec::new();
    for p in &pdus {
        match n.normalize(p) {
            Normalized::Unchanged => out.push(p.clone()),
            Normalized::Rewritten(v) => out.extend(v),
        }
    }
    assert!(out.len() >= 2, "fragmented again");
    assert!(
        out.iter().all(|p| p.len() <= 0x7FFF),
        "every PDU fits its length field"
    );
    assert_eq!(paint(&out), paint(&pdus));
}

#[test]
fn matching_bitmaps_and_other_updates_pass_unchanged() {
    let pic = picture(4, 4);
    let pdu = fast_path(
        Fragmentation::Single,
        &bitmap_update(BitmapData {
            rectangle: rect(0, 0, 4, 4),
            width: 4,
            height: 4,
            bits_per_pixel: 32,
            compression_flags: Compression::empty(),
            compressed_data_header: None,
            bitmap_data: &raw32(&pic, 4),
        }),
    );
    assert_eq!(Normalizer::new(W, H).normalize(&pdu), Normalized::Unchanged);
    assert_eq!(
        Normalizer::new(W, H).normalize(&[0, 3, 0]),
        Normalized::Unchanged
    );
    assert_eq!(
        Normalizer::new(W, H).normalize_slow_path(&[3, 0, 0, 4], 1003),
        Normalized::Unchanged
    );
}

#[test]
fn a_bitmap_larger_than_the_desktop_is_dropped() {
    let pic = picture(200, 2);
    let pdu = fast_path(
        Fragmentation::Single,
        &bitmap_update(BitmapData {
            rectangle: rect(0, 0, 10, 2),
            width: 200,
            height: 2,
            bits_per_pixel: 32,
            compression_flags: Compression::empty(),
            compressed_data_header: None,
            bitmap_data: &raw32(&pic, 200),
        }),
    );
    match Normalizer::new(W, H).normalize(&pdu) {
        Normalized::Rewritten(v) => assert!(v.is_empty(), "{v:?}"),
        other => panic!("{other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any bytes, as a fast-path PDU or a slow-path frame: no panic, and every PDU it
    /// rewrites to is one ironrdp-session reads without error.
    #[test]
    fn any_bytes_are_handled(bytes in proptest::collection::vec(any::<u8>(), 0..256), w in 1u16..40, h in 1u16..20, corners in prop_oneof![
        (1u16..30, 1u16..12, 1u16..40, 1u16..20).prop_map(|(l, t, rw, rh)| (l, t, l + rw - 1, t + rh - 1)),
        // Anywhere, inverted or at the edge of the coordinate space.
        (any::<u16>(), any::<u16>(), any::<u16>(), any::<u16>()),
    ], bpp in prop_oneof![Just(8u16), Just(15), Just(16), Just(24), Just(32)], compressed in any::<bool>()) {
        let (left, top, right, bottom) = corners;
        let mut n = Normalizer::new(W, H);
        let _ = n.normalize(&bytes);
        let _ = n.normalize_slow_path(&bytes, 1003);
        // A well-formed update around arbitrary bitmap bytes.
        let pdu = fast_path(Fragmentation::Single, &bitmap_update(BitmapData {
            rectangle: InclusiveRectangle { left, top, right, bottom },
            width: w,
            height: h,
            bits_per_pixel: bpp,
            compression_flags: if compressed { Compression::BITMAP_COMPRESSION | Compression::NO_BITMAP_COMPRESSION_HDR } else { Compression::empty() },
            compressed_data_header: None,
            bitmap_data: &bytes,
        }));
        if let Normalized::Rewritten(pdus) = n.normalize(&pdu) {
            let _ = paint(&pdus);
        }
    }
}
