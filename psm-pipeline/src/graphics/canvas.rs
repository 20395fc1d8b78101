//! One screen, replayed from a recording's PNG frame events.

use crate::error::PipelineError;

/// Longest side of a screen the exporters accept (a frame event claiming more is skipped).
pub const MAX_SIDE: u32 = 8192;

/// Most pixels of a screen (8K UHD): bounds the canvas at 128 MiB of RGBA.
pub const MAX_PIXELS: u64 = 7680 * 4320;

fn bad(reason: impl Into<String>) -> PipelineError {
    PipelineError::Export {
        export: "frames".into(),
        reason: reason.into(),
    }
}

fn check_size(width: u32, height: u32) -> Result<(), PipelineError> {
    if width == 0
        || height == 0
        || width > MAX_SIDE
        || height > MAX_SIDE
        || u64::from(width) * u64::from(height) > MAX_PIXELS
    {
        return Err(bad(format!(
            "a screen of {width}x{height} is outside 1..={MAX_SIDE} per side and \
             {MAX_PIXELS} pixels"
        )));
    }
    Ok(())
}

/// An RGBA screen. Frames are painted onto it in recording order; a whole-screen frame
/// larger than the canvas (the first keyframe, or a resized desktop) grows it.
///
/// ```
/// use psm_pipeline::graphics::Canvas;
/// let mut c = Canvas::new(4, 2)?;
/// let red = psm_recording::export::encode_png(2, 1, &[255, 0, 0, 255, 255, 0, 0, 255])
///     .expect("png");
/// c.paint(1, 1, 2, 1, &red)?;
/// assert_eq!(c.pixel(1, 1), [255, 0, 0, 255]);
/// assert_eq!(c.pixel(0, 0), [0, 0, 0, 255]);
/// # Ok::<(), psm_pipeline::PipelineError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canvas {
    width: u32,
    height: u32,
    rgba: Vec<u8>,
}

impl Canvas {
    /// A black, opaque canvas.
    pub fn new(width: u32, height: u32) -> Result<Self, PipelineError> {
        check_size(width, height)?;
        Ok(Self::black(width, height))
    }

    fn black(width: u32, height: u32) -> Self {
        let px = width as usize * height as usize;
        let mut rgba = vec![0u8; px * 4];
        for p in rgba.chunks_exact_mut(4) {
            p[3] = 0xff;
        }
        Self {
            width,
            height,
            rgba,
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The pixels, RGBA, row by row.
    pub fn rgba(&self) -> &[u8] {
        &self.rgba
    }

    /// The RGBA value at (x, y); black outside the canvas.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        if x >= self.width || y >= self.height {
            return [0, 0, 0, 0xff];
        }
        let i = (y as usize * self.width as usize + x as usize) * 4;
        [
            self.rgba[i],
            self.rgba[i + 1],
            self.rgba[i + 2],
            self.rgba[i + 3],
        ]
    }

    /// Paints a frame event: `png` (which must be `width` x `height`) at (x, y). The part
    /// outside the canvas is clipped. Nothing is painted if the PNG is bad.
    pub fn paint(
        &mut self,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
        png: &[u8],
    ) -> Result<(), PipelineError> {
        check_size(width, height)?;
        if x == 0 && y == 0 && (width > self.width || height > self.height) {
            self.resize(width.max(self.width), height.max(self.height))?;
        }
        let img = decode_rgba(png, width, height)?;
        if x >= self.width || y >= self.height {
            return Ok(());
        }
        let w = (width.min(self.width - x)) as usize;
        for row in 0..height.min(self.height - y) as usize {
            let src = row * width as usize * 4;
            let dst = ((y as usize + row) * self.width as usize + x as usize) * 4;
            self.rgba[dst..dst + w * 4].copy_from_slice(&img[src..src + w * 4]);
        }
        Ok(())
    }

    /// Paints every pixel `rgba`.
    pub fn fill(&mut self, rgba: [u8; 4]) {
        for p in self.rgba.chunks_exact_mut(4) {
            p.copy_from_slice(&rgba);
        }
    }

    /// Grows (or shrinks) to `width` x `height`, keeping the top-left content.
    pub fn resize(&mut self, width: u32, height: u32) -> Result<(), PipelineError> {
        check_size(width, height)?;
        let mut next = Self::black(width, height);
        next.blit(self, 0, 0);
        *self = next;
        Ok(())
    }

    /// Copies `src` with its top-left corner at (x, y), clipped.
    pub fn blit(&mut self, src: &Canvas, x: u32, y: u32) {
        if x >= self.width || y >= self.height {
            return;
        }
        let w = src.width.min(self.width - x) as usize;
        for row in 0..src.height.min(self.height - y) as usize {
            let s = row * src.width as usize * 4;
            let d = ((y as usize + row) * self.width as usize + x as usize) * 4;
            self.rgba[d..d + w * 4].copy_from_slice(&src.rgba[s..s + w * 4]);
        }
    }

    /// The canvas cut or padded (black) to exactly `width` x `height`, as RGBA bytes.
    pub fn framed(&self, width: u32, height: u32) -> std::borrow::Cow<'_, [u8]> {
        if (width, height) == (self.width, self.height) {
            return std::borrow::Cow::Borrowed(&self.rgba);
        }
        let mut out = Self::black(width, height);
        out.blit(self, 0, 0);
        std::borrow::Cow::Owned(out.rgba)
    }

    /// A copy `width` pixels wide (height in proportion, at least 1), each pixel the mean of
    /// the source pixels it covers.
    pub fn scaled_to_width(&self, width: u32) -> Canvas {
        let width = width.clamp(1, self.width);
        let height =
            ((u64::from(self.height) * u64::from(width) / u64::from(self.width)).max(1)) as u32;
        let mut out = Self::black(width, height);
        // Source span of output cell i along an axis of `src` pixels into `dst` cells.
        let span = |i: u32, src: u32, dst: u32| {
            let a = (u64::from(i) * u64::from(src) / u64::from(dst)) as u32;
            let b = ((u64::from(i + 1) * u64::from(src)).div_ceil(u64::from(dst)) as u32)
                .clamp(a + 1, src);
            (a, b)
        };
        for oy in 0..height {
            let (y0, y1) = span(oy, self.height, height);
            for ox in 0..width {
                let (x0, x1) = span(ox, self.width, width);
                let mut sum = [0u64; 3];
                for sy in y0..y1 {
                    let row = sy as usize * self.width as usize;
                    for sx in x0..x1 {
                        let i = (row + sx as usize) * 4;
                        sum[0] += u64::from(self.rgba[i]);
                        sum[1] += u64::from(self.rgba[i + 1]);
                        sum[2] += u64::from(self.rgba[i + 2]);
                    }
                }
                let n = u64::from(y1 - y0) * u64::from(x1 - x0);
                let o = (oy as usize * width as usize + ox as usize) * 4;
                for (c, total) in sum.iter().enumerate() {
                    out.rgba[o + c] = ((total + n / 2) / n) as u8;
                }
            }
        }
        out
    }

    /// The canvas as a PNG (deterministic bytes for the same pixels).
    pub fn to_png(&self) -> Result<Vec<u8>, PipelineError> {
        psm_recording::export::encode_png(self.width, self.height, &self.rgba)
            .map_err(|e| bad(format!("encoding a PNG: {e}")))
    }
}

/// Decodes a frame's PNG to RGBA, refusing one whose header disagrees with the event's size
/// before allocating its pixels.
pub fn decode_rgba(png_bytes: &[u8], width: u32, height: u32) -> Result<Vec<u8>, PipelineError> {
    let mut decoder = png::Decoder::new_with_limits(
        std::io::Cursor::new(png_bytes),
        png::Limits {
            bytes: (MAX_PIXELS as usize) * 8,
        },
    );
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| bad(format!("frame PNG: {e}")))?;
    let (w, h) = (reader.info().width, reader.info().height);
    if (w, h) != (width, height) {
        return Err(bad(format!(
            "frame PNG is {w}x{h}, its event says {width}x{height}"
        )));
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| bad("frame PNG too large"))?;
    let mut buf = vec![0u8; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| bad(format!("frame PNG: {e}")))?;
    buf.truncate(info.buffer_size());
    let px = width as usize * height as usize;
    let rgba: Vec<u8> = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 0xff])
            .collect(),
        png::ColorType::GrayscaleAlpha => buf
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0], p[1]])
            .collect(),
        png::ColorType::Grayscale => buf.iter().flat_map(|&g| [g, g, g, 0xff]).collect(),
        png::ColorType::Indexed => return Err(bad("frame PNG: palette was not expanded")),
    };
    if rgba.len() < px * 4 {
        return Err(bad("frame PNG: pixel data is short"));
    }
    Ok(rgba)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn solid(w: u32, h: u32, rgba: [u8; 4]) -> Vec<u8> {
        let px: Vec<u8> = (0..w * h).flat_map(|_| rgba).collect();
        psm_recording::export::encode_png(w, h, &px).unwrap()
    }

    #[test]
    fn a_larger_keyframe_grows_the_canvas_and_regions_are_clipped() {
        let mut c = Canvas::new(2, 2).unwrap();
        c.paint(0, 0, 6, 4, &solid(6, 4, [0, 0, 255, 255])).unwrap();
        assert_eq!((c.width(), c.height()), (6, 4));
        c.paint(5, 3, 3, 3, &solid(3, 3, [0, 255, 0, 255])).unwrap();
        assert_eq!(c.pixel(5, 3), [0, 255, 0, 255]);
        assert_eq!(c.pixel(4, 3), [0, 0, 255, 255]);
        // Entirely outside: nothing painted, no panic.
        c.paint(100, 100, 1, 1, &solid(1, 1, [9, 9, 9, 255]))
            .unwrap();
    }

    #[test]
    fn a_png_that_disagrees_with_its_event_is_refused() {
        let mut c = Canvas::new(4, 4).unwrap();
        let e = c
            .paint(0, 0, 3, 3, &solid(2, 2, [1, 2, 3, 255]))
            .unwrap_err();
        assert!(e.to_string().contains("2x2"), "{e}");
        assert!(c.paint(0, 0, 2, 2, b"not a png").is_err());
        assert!(c.paint(0, 0, 0, 2, b"").is_err());
        assert!(c.paint(0, 0, MAX_SIDE + 1, 1, b"").is_err());
        assert_eq!(c.pixel(0, 0), [0, 0, 0, 255]);
    }

    #[test]
    fn scaling_averages() {
        let mut c = Canvas::new(4, 2).unwrap();
        c.paint(0, 0, 2, 2, &solid(2, 2, [200, 100, 0, 255]))
            .unwrap();
        let t = c.scaled_to_width(2);
        assert_eq!((t.width(), t.height()), (2, 1));
        assert_eq!(t.pixel(0, 0), [200, 100, 0, 255]);
        assert_eq!(t.pixel(1, 0), [0, 0, 0, 255]);
    }

    proptest! {
        #[test]
        fn any_bytes_as_a_frame_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            x in 0u32..20, y in 0u32..20, w in 0u32..40, h in 0u32..40,
        ) {
            let mut c = Canvas::new(16, 16).unwrap();
            let _ = c.paint(x, y, w, h, &bytes);
            let mut png = solid(3, 3, [1, 2, 3, 255]);
            let cut = bytes.len() % png.len();
            png.truncate(cut);
            let _ = c.paint(x, y, 3, 3, &png);
        }

        #[test]
        fn scaled_sizes_are_in_bounds(w in 1u32..64, h in 1u32..64, tw in 0u32..100) {
            let c = Canvas::new(w, h).unwrap();
            let t = c.scaled_to_width(tw);
            prop_assert!(t.width() >= 1 && t.width() <= w);
            prop_assert!(t.height() >= 1);
            prop_assert_eq!(t.rgba().len(), (t.width() * t.height() * 4) as usize);
        }
    }
}
