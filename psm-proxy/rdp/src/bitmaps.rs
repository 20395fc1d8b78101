//! Bitmap updates whose bitmap is wider (or taller) than its destination rectangle, made
//! safe for ironrdp-session before it paints them.
//!
//! A server may send a `TS_BITMAP_DATA` whose `width`/`height` exceed the destination
//! rectangle: xrdp always rounds the width up to a multiple of four pixels. The bitmap's
//! rows then have `width` pixels, of which the first `destRight - destLeft + 1` are shown.
//! ironrdp-session 0.11 decodes the bitmap at its own width but slices the decoded rows at
//! the rectangle's width, so every row after the first is shifted by the padding and text
//! comes out as diagonal hatching (IronRDP issues #1251 and #1399, fixed upstream after the
//! 0.11 release this gateway is built on; warpgate #2173 saw the same). The gateway's
//! screen, and so the user's view, the browser's and the recording, would show that.
//!
//! [`Normalizer`] rewrites an output PDU (fast-path, or a slow-path bitmap update, which
//! xrdp sends most of its bitmaps as) before the session sees it: every bitmap
//! whose size differs from its rectangle is decoded here (RDP 6.0 planar, interleaved RLE,
//! or raw), cropped to the rectangle, and sent on as a raw bitmap of exactly that size,
//! split into bands small enough for one fast-path PDU; everything else passes unchanged
//! and in order. Bitmaps the session already paints correctly are not touched, and a PDU
//! without one is passed through as it came.
//!
//! Bounds: a bitmap larger than the desktop (plus the 3-pixel padding) is dropped, a
//! fragmented bitmap update is reassembled up to [`MAX_REASSEMBLY`] bytes, and a decoding
//! error drops that one rectangle (as the session itself would), never the session.

use ironrdp::core::{Decode as _, ReadCursor, WriteCursor};
use ironrdp::graphics::rdp6::BitmapStreamDecoder;
use ironrdp::graphics::rle::{self, RlePixelFormat};
use ironrdp::pdu::bitmap::{BitmapData, BitmapUpdateData, Compression};
use ironrdp::pdu::fast_path::{FastPathHeader, FastPathUpdatePdu, Fragmentation, UpdateCode};
use ironrdp::pdu::geometry::InclusiveRectangle;

/// Largest fragmented bitmap update reassembled, in bytes.
pub const MAX_REASSEMBLY: usize = 8 << 20;
/// Largest payload of one rewritten fast-path PDU (its length field holds 15 bits).
const MAX_PDU_PAYLOAD: usize = 0x7000;

/// What became of one fast-path PDU.
#[derive(Debug, PartialEq, Eq)]
pub enum Normalized {
    /// Pass it on as it came.
    Unchanged,
    /// Pass these fast-path PDUs on instead, in order (possibly none: a fragment kept for
    /// later).
    Rewritten(Vec<Vec<u8>>),
}

/// Rewrites the fast-path output of one target connection (it keeps the reassembly of a
/// fragmented bitmap update between PDUs).
#[derive(Debug)]
pub struct Normalizer {
    max_width: usize,
    max_height: usize,
    fragments: Option<Vec<u8>>,
    rdp6: BitmapStreamDecoder,
}

/// One rectangle ready to encode.
struct Raw {
    rect: InclusiveRectangle,
    width: u16,
    height: u16,
    bpp: u16,
    data: Vec<u8>,
}

impl Normalizer {
    /// For a desktop of `width` x `height`.
    pub fn new(width: u16, height: u16) -> Self {
        Self {
            max_width: usize::from(width) + 3,
            max_height: usize::from(height),
            fragments: None,
            rdp6: BitmapStreamDecoder::default(),
        }
    }

    /// The desktop size changed.
    pub fn resize(&mut self, width: u16, height: u16) {
        self.max_width = usize::from(width) + 3;
        self.max_height = usize::from(height);
    }

    /// Looks at one fast-path output PDU (header included).
    pub fn normalize(&mut self, pdu: &[u8]) -> Normalized {
        let mut src = ReadCursor::new(pdu);
        let header = match FastPathHeader::decode(&mut src) {
            Ok(h) => h,
            Err(e) => {
                tracing::trace!(error = %e, "fast-path header");
                return Normalized::Unchanged;
            }
        };
        if !header.flags.is_empty() {
            // Encrypted (standard RDP security): never used toward targets.
            return Normalized::Unchanged;
        }
        let mut updates = Vec::new();
        while !src.is_empty() {
            match FastPathUpdatePdu::decode(&mut src) {
                Ok(u) => updates.push(u),
                // Let the session report what it cannot read.
                Err(e) => {
                    tracing::trace!(error = %e, "fast-path update");
                    return Normalized::Unchanged;
                }
            }
        }
        let touches_bitmaps = updates.iter().any(|u| u.update_code == UpdateCode::Bitmap);
        if !touches_bitmaps
            || updates
                .iter()
                .any(|u| u.compression_flags.is_some_and(|f| !f.is_empty()))
        {
            // Bulk-compressed payloads are the session's to decompress (the gateway does
            // not negotiate bulk compression, so these pass through untouched).
            return Normalized::Unchanged;
        }
        let mut out = Vec::new();
        let mut needed = false;
        for u in updates {
            if u.update_code != UpdateCode::Bitmap {
                out.push(single(&u));
                continue;
            }
            let complete = match u.fragmentation {
                Fragmentation::Single => Some(u.data.to_vec()),
                Fragmentation::First => {
                    self.fragments = Some(u.data.to_vec());
                    needed = true;
                    None
                }
                Fragmentation::Next | Fragmentation::Last => {
                    needed = true;
                    let Some(mut buf) = self.fragments.take() else {
                        tracing::warn!("a bitmap update fragment without its first part: dropped");
                        continue;
                    };
                    if buf.len() + u.data.len() > MAX_REASSEMBLY {
                        tracing::warn!(
                            limit = MAX_REASSEMBLY,
                            "a fragmented bitmap update over the limit: dropped"
                        );
                        continue;
                    }
                    buf.extend_from_slice(u.data);
                    if u.fragmentation == Fragmentation::Last {
                        Some(buf)
                    } else {
                        self.fragments = Some(buf);
                        None
                    }
                }
            };
            let Some(data) = complete else { continue };
            match self.bitmap_update(&data) {
                Some(pdus) => {
                    needed = true;
                    out.extend(pdus);
                }
                // Nothing to crop: the update goes on whole (reassembled from its fragments,
                // if it came in fragments, and fragmented again if it needs to be).
                None => out.extend(pdus_of(UpdateCode::Bitmap, &data)),
            }
        }
        if needed {
            Normalized::Rewritten(out)
        } else {
            Normalized::Unchanged
        }
    }

    /// Looks at one slow-path (X.224) PDU: a bitmap update on the I/O channel (xrdp sends
    /// most of its bitmaps this way) is rewritten as fast-path bitmap PDUs, which the
    /// session paints the same way; everything else is left alone.
    pub fn normalize_slow_path(&mut self, frame: &[u8], io_channel_id: u16) -> Normalized {
        use ironrdp::pdu::rdp::headers::{ShareControlHeader, ShareControlPdu, ShareDataPdu};
        let Ok(ctx) = ironrdp::pdu::mcs::decode_send_data_indication(frame) else {
            return Normalized::Unchanged;
        };
        if ctx.channel_id != io_channel_id {
            return Normalized::Unchanged;
        }
        let Ok(header) = ironrdp::core::decode::<ShareControlHeader>(ctx.user_data) else {
            return Normalized::Unchanged;
        };
        let ShareControlPdu::Data(data) = header.share_control_pdu else {
            return Normalized::Unchanged;
        };
        let ShareDataPdu::Update(update) = data.share_data_pdu else {
            return Normalized::Unchanged;
        };
        // Bulk-compressed updates, and anything but bitmaps, are the session's.
        if !data.compression_flags.is_empty() || !update.starts_with(&[1, 0]) {
            return Normalized::Unchanged;
        }
        match self.bitmap_update(&update) {
            Some(pdus) => Normalized::Rewritten(pdus),
            None => Normalized::Unchanged,
        }
    }

    /// The rewritten PDUs of one complete bitmap update, or `None` when every rectangle
    /// already matches its bitmap (or the update cannot be read: the session decides).
    fn bitmap_update(&mut self, data: &[u8]) -> Option<Vec<Vec<u8>>> {
        let update = match BitmapUpdateData::decode(&mut ReadCursor::new(data)) {
            Ok(u) => u,
            Err(e) => {
                tracing::trace!(error = %e, "bitmap update");
                return None;
            }
        };
        // A rectangle whose right is left of its left (or bottom above its top) has no size:
        // ironrdp's `width()` would overflow on it, so it counts as mismatched and is dropped
        // below.
        let mismatched = |b: &BitmapData<'_>| rect_size(&b.rectangle) != Some((b.width, b.height));
        if !update.rectangles.iter().any(mismatched) {
            return None;
        }
        // Each rectangle as it came, or as raw bands when it was mismatched.
        let mut entries: Vec<Result<&BitmapData<'_>, Raw>> = Vec::new();
        for b in &update.rectangles {
            if !mismatched(b) {
                entries.push(Ok(b));
                continue;
            }
            match self.crop(b) {
                Some(bands) => entries.extend(bands.into_iter().map(Err)),
                None => tracing::debug!(rect = ?b.rectangle, width = b.width, height = b.height,
                    "a bitmap that could not be decoded or is too large: dropped"),
            }
        }
        // Packed into PDUs of at most MAX_PDU_PAYLOAD bytes.
        let mut pdus = Vec::new();
        let mut batch: Vec<BitmapData<'_>> = Vec::new();
        let mut batch_size = 4;
        for entry in &entries {
            let data = match entry {
                Ok(b) => (*b).clone(),
                Err(raw) => BitmapData {
                    rectangle: raw.rect.clone(),
                    width: raw.width,
                    height: raw.height,
                    bits_per_pixel: raw.bpp,
                    compression_flags: Compression::empty(),
                    compressed_data_header: None,
                    bitmap_data: &raw.data,
                },
            };
            let size = ironrdp::core::Encode::size(&data);
            if !batch.is_empty() && batch_size + size > MAX_PDU_PAYLOAD {
                pdus.extend(encode_bitmaps(std::mem::take(&mut batch))?);
                batch_size = 4;
            }
            batch_size += size;
            batch.push(data);
        }
        if !batch.is_empty() {
            pdus.extend(encode_bitmaps(batch)?);
        }
        Some(pdus)
    }

    /// Decodes `b`, crops it to its rectangle, and returns it as raw bands (bottom-up rows
    /// padded to 4 bytes, as [MS-RDPBCGR] 2.2.9.1.1.3.1.2.2 lays out uncompressed data).
    fn crop(&mut self, b: &BitmapData<'_>) -> Option<Vec<Raw>> {
        let (w, h) = (usize::from(b.width), usize::from(b.height));
        if w == 0 || h == 0 || w > self.max_width || h > self.max_height {
            return None;
        }
        let compressed = b
            .compression_flags
            .contains(Compression::BITMAP_COMPRESSION);
        // Decoded rows: bottom-up, tightly packed, `bytes` per pixel, sent on as `bpp`.
        let mut rows = Vec::new();
        let (bytes, bpp) = if compressed && b.bits_per_pixel == 32 {
            self.rdp6
                .decode_bitmap_stream_to_rgb24(b.bitmap_data, &mut rows, w, h)
                .ok()?;
            // RGB to the BGR of raw 24-bpp bitmaps.
            for px in rows.chunks_exact_mut(3) {
                px.swap(0, 2);
            }
            (3, 24)
        } else if compressed {
            match rle::decompress(
                b.bitmap_data,
                &mut rows,
                w,
                h,
                usize::from(b.bits_per_pixel),
            )
            .ok()?
            {
                RlePixelFormat::Rgb24 => (3, 24),
                RlePixelFormat::Rgb16 => (2, 16),
                RlePixelFormat::Rgb15 => (2, 15),
                RlePixelFormat::Rgb8 => (1, 8),
            }
        } else {
            let bytes = usize::from(b.bits_per_pixel).div_ceil(8);
            if !matches!(bytes, 1..=4) {
                return None;
            }
            let padded = (w * bytes + 3) & !3;
            if b.bitmap_data.len() < padded * h {
                return None;
            }
            for row in b.bitmap_data.chunks_exact(padded).take(h) {
                rows.extend_from_slice(&row[..w * bytes]);
            }
            (bytes, b.bits_per_pixel)
        };
        if rows.len() != w * h * bytes {
            return None;
        }
        let (rect_w, rect_h) = rect_size(&b.rectangle)?;
        let keep_w = w.min(usize::from(rect_w));
        let keep_h = h.min(usize::from(rect_h));
        if keep_w == 0 || keep_h == 0 {
            return None;
        }
        let row_out = (keep_w * bytes + 3) & !3;
        // The bitmap's top row is the destination's top row; bottom-up, the shown rows are
        // the last `keep_h` of the buffer.
        let shown = &rows[(h - keep_h) * w * bytes..];
        let band_rows = (MAX_PDU_PAYLOAD / 2 / row_out).max(1);
        let mut bands = Vec::new();
        let mut top = 0; // top-down index of the band's first row
        while top < keep_h {
            let n = band_rows.min(keep_h - top);
            // Bottom-up: the band's rows are buffer rows keep_h-top-n .. keep_h-top.
            let mut data = Vec::with_capacity(row_out * n);
            for r in (keep_h - top - n)..(keep_h - top) {
                let start = r * w * bytes;
                data.extend_from_slice(&shown[start..start + keep_w * bytes]);
                data.resize(data.len() + (row_out - keep_w * bytes), 0);
            }
            let left = b.rectangle.left;
            // Within the (valid) rectangle: these cannot overflow.
            let band_top = b.rectangle.top + top as u16;
            bands.push(Raw {
                rect: InclusiveRectangle {
                    left,
                    top: band_top,
                    right: left + (keep_w as u16 - 1),
                    bottom: band_top + (n as u16 - 1),
                },
                width: keep_w as u16,
                height: n as u16,
                bpp,
                data,
            });
            top += n;
        }
        Some(bands)
    }
}

/// Width and height of an inclusive rectangle, `None` when it is inverted.
fn rect_size(r: &InclusiveRectangle) -> Option<(u16, u16)> {
    let w = r.right.checked_sub(r.left)?.checked_add(1)?;
    let h = r.bottom.checked_sub(r.top)?.checked_add(1)?;
    Some((w, h))
}

/// One update as a PDU of its own (unchanged bytes: it fitted in one PDU as it came).
fn single(u: &FastPathUpdatePdu<'_>) -> Vec<u8> {
    pdu_of(u.fragmentation, u.update_code, u.data)
}

/// A complete update as PDUs: one when it fits, else fragments (first, next..., last) that
/// the session reassembles, so no PDU ever exceeds the fast-path length field.
fn pdus_of(update_code: UpdateCode, data: &[u8]) -> Vec<Vec<u8>> {
    if data.len() <= MAX_PDU_PAYLOAD {
        return vec![pdu_of(Fragmentation::Single, update_code, data)];
    }
    let pieces: Vec<&[u8]> = data.chunks(MAX_PDU_PAYLOAD).collect();
    let last = pieces.len() - 1;
    pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            let fragmentation = match i {
                0 => Fragmentation::First,
                i if i == last => Fragmentation::Last,
                _ => Fragmentation::Next,
            };
            pdu_of(fragmentation, update_code, piece)
        })
        .collect()
}

/// One update in one PDU; `data` is at most [`MAX_PDU_PAYLOAD`] bytes (callers split).
fn pdu_of(fragmentation: Fragmentation, update_code: UpdateCode, data: &[u8]) -> Vec<u8> {
    let update = FastPathUpdatePdu {
        fragmentation,
        update_code,
        compression_flags: None,
        compression_type: None,
        data,
    };
    let body = ironrdp::core::Encode::size(&update);
    let header = FastPathHeader::new(ironrdp::pdu::fast_path::EncryptionFlags::empty(), body);
    let mut out = vec![0u8; ironrdp::core::Encode::size(&header) + body];
    let mut dst = WriteCursor::new(&mut out);
    // Sizes were computed from these very values and the length fits its 15 bits: encoding
    // cannot fail.
    let _ = ironrdp::core::Encode::encode(&header, &mut dst);
    let _ = ironrdp::core::Encode::encode(&update, &mut dst);
    out
}

fn encode_bitmaps(rectangles: Vec<BitmapData<'_>>) -> Option<Vec<Vec<u8>>> {
    let update = BitmapUpdateData { rectangles };
    let data = ironrdp::core::encode_vec(&update).ok()?;
    Some(pdus_of(UpdateCode::Bitmap, &data))
}
