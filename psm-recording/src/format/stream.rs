//! Codec 2: the chunks of a group are consecutive pieces of one zstd frame. The writer
//! flushes the frame at the end of every chunk, so each chunk's piece decodes to exactly its
//! own records once the pieces before it (in its group) were decoded; a later chunk finds
//! the earlier ones as compression history, so a five-second chunk costs about what that
//! stretch costs inside one long stream.

use zstd::zstd_safe::{self, CCtx, CParameter, DCtx, DParameter, InBuffer, OutBuffer};

/// Largest zstd window a reader accepts (and a writer uses): 16 MiB.
pub(crate) const MAX_WINDOW_LOG: u32 = 24;
/// Smallest window a writer uses.
pub(crate) const MIN_WINDOW_LOG: u32 = 17;

fn zstd_error(code: usize) -> String {
    zstd_safe::get_error_name(code).to_owned()
}

/// The writer's side: one zstd frame per group, flushed at every chunk.
pub(crate) struct StreamCompressor {
    cctx: CCtx<'static>,
}

impl std::fmt::Debug for StreamCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamCompressor").finish_non_exhaustive()
    }
}

impl StreamCompressor {
    /// A compressor at `level` whose frames declare a window of `2^window_log` bytes; with
    /// `long_distance`, zstd's long-distance matcher also looks for long repeats anywhere in
    /// the window (the decoder needs nothing more).
    pub(crate) fn new(level: i32, window_log: u32, long_distance: bool) -> Result<Self, String> {
        let mut cctx = CCtx::try_create().ok_or("zstd could not allocate a context")?;
        let window_log = window_log.clamp(MIN_WINDOW_LOG, MAX_WINDOW_LOG);
        for p in [
            CParameter::CompressionLevel(level),
            CParameter::WindowLog(window_log),
            CParameter::EnableLongDistanceMatching(long_distance),
            CParameter::ChecksumFlag(false),
            CParameter::ContentSizeFlag(false),
        ] {
            cctx.set_parameter(p).map_err(zstd_error)?;
        }
        Ok(Self { cctx })
    }

    /// Ends the current frame (without its epilogue: readers never need it) so the next
    /// piece starts a new one.
    pub(crate) fn start_frame(&mut self) -> Result<(), String> {
        self.cctx
            .reset(zstd_safe::ResetDirective::SessionOnly)
            .map(|_| ())
            .map_err(zstd_error)
    }

    /// Compresses `input` as the next piece of the frame and flushes, appending to `out`.
    pub(crate) fn piece(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let mut inb = InBuffer::around(input);
        loop {
            out.reserve(zstd_safe::compress_bound(input.len() - inb.pos()).max(64));
            let at = out.len();
            let mut ob = OutBuffer::around_pos(out, at);
            let left = self
                .cctx
                .compress_stream2(
                    &mut ob,
                    &mut inb,
                    zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_flush,
                )
                .map_err(zstd_error)?;
            if left == 0 && inb.pos() == input.len() {
                return Ok(());
            }
        }
    }

    /// Bytes the context holds.
    pub(crate) fn memory(&self) -> usize {
        self.cctx.sizeof()
    }
}

/// The reader's side: decodes a group's pieces in order.
pub(crate) struct StreamDecompressor {
    dctx: DCtx<'static>,
}

impl StreamDecompressor {
    pub(crate) fn new() -> Result<Self, String> {
        let mut dctx = DCtx::try_create().ok_or("zstd could not allocate a context")?;
        dctx.set_parameter(DParameter::WindowLogMax(MAX_WINDOW_LOG))
            .map_err(zstd_error)?;
        Ok(Self { dctx })
    }

    /// The next piece starts a new frame.
    pub(crate) fn start_frame(&mut self) -> Result<(), String> {
        self.dctx
            .reset(zstd_safe::ResetDirective::SessionOnly)
            .map(|_| ())
            .map_err(zstd_error)
    }

    /// Decodes the next piece, which must give exactly `raw_len` bytes: never more (the
    /// output is allocated once, at `raw_len`, which the caller bounded).
    pub(crate) fn piece(&mut self, input: &[u8], raw_len: usize) -> Result<Vec<u8>, String> {
        let mut out: Vec<u8> = Vec::with_capacity(raw_len);
        let mut inb = InBuffer::around(input);
        let too_much = || format!("does not decompress within {raw_len} bytes");
        loop {
            let (in_before, out_before) = (inb.pos(), out.len());
            if out.len() < raw_len {
                let at = out.len();
                let mut ob = OutBuffer::around_pos(&mut out, at);
                self.dctx
                    .decompress_stream(&mut ob, &mut inb)
                    .map_err(|c| format!("{}: {}", too_much(), zstd_error(c)))?;
            } else {
                // Full: anything more the piece holds is an error; input that only closes
                // blocks without output is consumed.
                let mut probe: Vec<u8> = Vec::with_capacity(1);
                let mut ob = OutBuffer::around(&mut probe);
                self.dctx
                    .decompress_stream(&mut ob, &mut inb)
                    .map_err(|c| format!("{}: {}", too_much(), zstd_error(c)))?;
                if !probe.is_empty() {
                    return Err(too_much());
                }
                if inb.pos() == input.len() {
                    return Ok(out);
                }
            }
            if inb.pos() == in_before && out.len() == out_before {
                return Err(if out.len() < raw_len {
                    format!(
                        "decompresses to {} bytes where the chunk says {raw_len}",
                        out.len()
                    )
                } else {
                    too_much()
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pieces_decode_one_by_one_and_later_pieces_use_earlier_history() {
        let mut c = StreamCompressor::new(3, 20, false).unwrap();
        let a = b"top - 10:00:01 up 12 days, load average: 0.51, 0.42, 0.40\r\n".repeat(20);
        let mut b = a.clone();
        b[10] = b'9';
        let (mut pa, mut pb) = (Vec::new(), Vec::new());
        c.piece(&a, &mut pa).unwrap();
        c.piece(&b, &mut pb).unwrap();
        assert!(
            pb.len() < 40,
            "the second piece reuses the first: {} bytes",
            pb.len()
        );
        let mut d = StreamDecompressor::new().unwrap();
        assert_eq!(d.piece(&pa, a.len()).unwrap(), a);
        assert_eq!(d.piece(&pb, b.len()).unwrap(), b);
        // A wrong length either way is an error, never a bigger allocation.
        let mut d = StreamDecompressor::new().unwrap();
        assert!(
            d.piece(&pa, a.len() - 1)
                .unwrap_err()
                .contains("does not decompress within")
        );
        let mut d = StreamDecompressor::new().unwrap();
        assert!(d.piece(&pa, a.len() + 1).is_err());
        // A new frame after a reset.
        c.start_frame().unwrap();
        let mut pc = Vec::new();
        c.piece(&b, &mut pc).unwrap();
        let mut d = StreamDecompressor::new().unwrap();
        assert_eq!(d.piece(&pc, b.len()).unwrap(), b);
        d.start_frame().unwrap();
        assert_eq!(d.piece(&pa, a.len()).unwrap(), a);
    }

    #[test]
    fn a_bomb_piece_is_refused_within_its_length() {
        let zeros = vec![0u8; 64 << 20];
        let mut c = StreamCompressor::new(19, 24, true).unwrap();
        let mut p = Vec::new();
        c.piece(&zeros, &mut p).unwrap();
        assert!(p.len() < 64 << 10);
        let mut d = StreamDecompressor::new().unwrap();
        let e = d.piece(&p, 1000).unwrap_err();
        assert!(e.contains("does not decompress within 1000 bytes"), "{e}");
    }
}
