//! Graphical screens in recordings: the [`Canvas`] that replays a session's
//! [`EventKind::Frame`] (PNG) and [`EventKind::Pixels`] (raw palette-indexed pixels) events,
//! the [`Palette`] a recorder keeps to write `Pixels` events whose bytes repeat from frame to
//! frame, and PNG encoding and decoding with the checks a replayer of untrusted recordings
//! needs.
//!
//! Why two picture events: a PNG still is compressed on its own, so a terminal that scrolls
//! by one line costs a whole new picture. A `Pixels` event is left to the recording's zstd
//! stream, which compresses it against everything earlier in its compression group: a
//! scrolled region is one long match against the previous frame, a redrawn line a match
//! against the last time it was on screen. The palette stays the same from event to event
//! (colours are only ever added), so the same pixels are the same bytes.
//!
//! ```
//! use psm_recording::EventKind;
//! use psm_recording::graphics::{Canvas, Palette};
//! let red_green = [255, 0, 0, 255, 0, 255, 0, 255];
//! let mut palette = Palette::new();
//! let indices = palette.indices(&red_green).expect("two colours fit");
//! let event = EventKind::Pixels { x: 1, y: 0, width: 2, height: 1, palette: palette.rgb(), indices };
//! let mut canvas = Canvas::new(4, 2)?;
//! assert!(canvas.apply(&event)?);
//! assert_eq!(canvas.pixel(2, 0), [0, 255, 0, 255]);
//! assert_eq!(canvas.pixel(0, 0), [0, 0, 0, 255]);
//! # Ok::<(), psm_recording::RecordingError>(())
//! ```

use std::collections::HashMap;
use std::io::{Read, Seek};

use crate::error::RecordingError;
use crate::event::EventKind;
use crate::reader::Reader;
use crate::time::Micros;

/// Longest side of a screen a canvas accepts (an event claiming more is refused).
pub const MAX_SIDE: u32 = 8192;

/// Most pixels of a screen (8K UHD): bounds a canvas at 128 MiB of RGBA.
pub const MAX_PIXELS: u64 = 7680 * 4320;

/// Most colours of a [`EventKind::Pixels`] palette.
pub const MAX_PALETTE: usize = 256;

fn bad(reason: impl Into<String>) -> RecordingError {
    RecordingError::Export(format!("frame: {}", reason.into()))
}

/// Checks a screen or region size against [`MAX_SIDE`] and [`MAX_PIXELS`].
pub fn check_size(width: u32, height: u32) -> Result<(), RecordingError> {
    if width == 0
        || height == 0
        || width > MAX_SIDE
        || height > MAX_SIDE
        || u64::from(width) * u64::from(height) > MAX_PIXELS
    {
        return Err(bad(format!(
            "{width}x{height} is outside 1..={MAX_SIDE} per side and {MAX_PIXELS} pixels"
        )));
    }
    Ok(())
}

/// The rectangle `(x, y, width, height)` a picture event paints; `None` for other events.
pub fn picture_rect(kind: &EventKind) -> Option<(u32, u32, u32, u32)> {
    match kind {
        EventKind::Frame {
            x,
            y,
            width,
            height,
            ..
        }
        | EventKind::Pixels {
            x,
            y,
            width,
            height,
            ..
        } => Some((*x, *y, *width, *height)),
        _ => None,
    }
}

/// An opaque RGBA screen. Picture events are painted onto it in recording order; a picture
/// at the origin larger than the canvas (the first keyframe, or a resized desktop) grows it.
/// Memory is one screen whatever the recording's length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canvas {
    width: u32,
    height: u32,
    rgba: Vec<u8>,
}

impl Canvas {
    /// A black, opaque canvas.
    pub fn new(width: u32, height: u32) -> Result<Self, RecordingError> {
        check_size(width, height)?;
        Ok(Self::black(width, height))
    }

    /// A canvas sized for the first picture event of a recording (its right and bottom
    /// edges); `None` for other events.
    pub fn for_first(kind: &EventKind) -> Option<Result<Self, RecordingError>> {
        let (x, y, w, h) = picture_rect(kind)?;
        Some(Self::new(x.saturating_add(w), y.saturating_add(h)))
    }

    /// A picture event on its own: a canvas of exactly its size painted with it (its place
    /// on the screen ignored). `None` for other events; an error for a bad picture.
    pub fn of_picture(kind: &EventKind) -> Option<Result<Self, RecordingError>> {
        let (_, _, width, height) = picture_rect(kind)?;
        let mut c = match Self::new(width, height) {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        let painted = match kind {
            EventKind::Frame { png, .. } => c.paint_png(0, 0, width, height, png),
            EventKind::Pixels {
                palette, indices, ..
            } => c.paint_indexed(0, 0, width, height, palette, indices),
            _ => Ok(()),
        };
        Some(painted.map(|()| c))
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

    /// Paints a picture event ([`EventKind::Frame`] or [`EventKind::Pixels`]) and says
    /// `true`; any other event is left alone (`false`). A bad picture (a PNG that is not one
    /// or disagrees with its event's size, an index outside its palette) is refused with an
    /// error and nothing is painted.
    pub fn apply(&mut self, kind: &EventKind) -> Result<bool, RecordingError> {
        match kind {
            EventKind::Frame {
                x,
                y,
                width,
                height,
                png,
            } => self.paint_png(*x, *y, *width, *height, png).map(|()| true),
            EventKind::Pixels {
                x,
                y,
                width,
                height,
                palette,
                indices,
            } => self
                .paint_indexed(*x, *y, *width, *height, palette, indices)
                .map(|()| true),
            _ => Ok(false),
        }
    }

    /// Paints `png` (which must be `width` x `height`) at (x, y), clipped to the canvas.
    pub fn paint_png(
        &mut self,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
        png: &[u8],
    ) -> Result<(), RecordingError> {
        check_size(width, height)?;
        let img = decode_png(png, width, height)?;
        self.grow_for(x, y, width, height)?;
        self.put(x, y, width, height, |row, out| {
            let s = row * width as usize * 4;
            out.copy_from_slice(&img[s..s + out.len()]);
        });
        Ok(())
    }

    /// Paints `width` x `height` palette indices (`palette`: RGB triples) at (x, y),
    /// clipped to the canvas.
    pub fn paint_indexed(
        &mut self,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
        palette: &[u8],
        indices: &[u8],
    ) -> Result<(), RecordingError> {
        check_size(width, height)?;
        let colours = check_pixels(width, height, palette, indices).map_err(bad)?;
        let mut lut = [[0u8, 0, 0, 0xff]; MAX_PALETTE];
        for (slot, rgb) in lut.iter_mut().zip(palette.chunks_exact(3)) {
            slot[..3].copy_from_slice(rgb);
        }
        if let Some(i) = indices.iter().find(|&&i| usize::from(i) >= colours) {
            return Err(bad(format!(
                "palette index {i} is outside its {colours} colours"
            )));
        }
        self.grow_for(x, y, width, height)?;
        self.put(x, y, width, height, |row, out| {
            let s = row * width as usize;
            for (px, &i) in out.chunks_exact_mut(4).zip(&indices[s..]) {
                px.copy_from_slice(&lut[usize::from(i)]);
            }
        });
        Ok(())
    }

    /// A picture at the origin larger than the canvas is a whole-screen keyframe of a
    /// (first or resized) desktop: the canvas grows to hold it.
    fn grow_for(&mut self, x: u32, y: u32, width: u32, height: u32) -> Result<(), RecordingError> {
        if x == 0 && y == 0 && (width > self.width || height > self.height) {
            self.resize(width.max(self.width), height.max(self.height))?;
        }
        Ok(())
    }

    /// Writes the visible part of a `width` x `height` picture at (x, y): `fill(row, out)`
    /// fills `out` (RGBA, the visible width) from the picture's row `row`.
    fn put(
        &mut self,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
        mut fill: impl FnMut(usize, &mut [u8]),
    ) {
        if x >= self.width || y >= self.height {
            return;
        }
        let w = width.min(self.width - x) as usize;
        for row in 0..height.min(self.height - y) as usize {
            let d = ((y as usize + row) * self.width as usize + x as usize) * 4;
            fill(row, &mut self.rgba[d..d + w * 4]);
        }
    }

    /// Paints every pixel `rgba`.
    pub fn fill(&mut self, rgba: [u8; 4]) {
        for p in self.rgba.chunks_exact_mut(4) {
            p.copy_from_slice(&rgba);
        }
    }

    /// Grows (or shrinks) to `width` x `height`, keeping the top-left content.
    pub fn resize(&mut self, width: u32, height: u32) -> Result<(), RecordingError> {
        check_size(width, height)?;
        let mut next = Self::black(width, height);
        next.blit(self, 0, 0);
        *self = next;
        Ok(())
    }

    /// Copies `src` with its top-left corner at (x, y), clipped.
    pub fn blit(&mut self, src: &Canvas, x: u32, y: u32) {
        self.put(x, y, src.width, src.height, |row, out| {
            let s = row * src.width as usize * 4;
            out.copy_from_slice(&src.rgba[s..s + out.len()]);
        });
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
    pub fn to_png(&self) -> Result<Vec<u8>, RecordingError> {
        encode_png(self.width, self.height, &self.rgba)
    }
}

/// The screen a graphical recording shows at `at`: every picture event up to that time
/// painted in order (bad pictures skipped, as the exporters do). `None` if no picture
/// comes by then. Memory is one screen.
pub fn screen_at<R: Read + Seek>(
    reader: &mut Reader<R>,
    at: Micros,
) -> Result<Option<Canvas>, RecordingError> {
    let mut canvas: Option<Canvas> = None;
    for ev in reader.events() {
        let ev = ev?;
        if ev.time > at {
            break;
        }
        let c = match &mut canvas {
            Some(c) => c,
            None => match Canvas::for_first(&ev.kind) {
                Some(Ok(c)) => canvas.insert(c),
                Some(Err(_)) | None => continue,
            },
        };
        let _ = c.apply(&ev.kind);
    }
    Ok(canvas)
}

/// Checks a `Pixels` event's shape: `palette` is 1..=256 RGB triples and `indices` holds
/// exactly `width × height` bytes. Returns the number of colours. (Whether every index is
/// inside the palette is checked when painting.)
pub(crate) fn check_pixels(
    width: u32,
    height: u32,
    palette: &[u8],
    indices: &[u8],
) -> Result<usize, String> {
    if palette.is_empty() || !palette.len().is_multiple_of(3) || palette.len() > MAX_PALETTE * 3 {
        return Err(format!(
            "a palette of {} bytes is not 1..={MAX_PALETTE} RGB colours",
            palette.len()
        ));
    }
    let expected = u64::from(width) * u64::from(height);
    if indices.len() as u64 != expected {
        return Err(format!(
            "{} pixel indices for a {width}x{height} region",
            indices.len()
        ));
    }
    Ok(palette.len() / 3)
}

/// The palette of a recorder writing [`EventKind::Pixels`] events. Colours are added as
/// they appear and never move, so the same pixels are the same index bytes in every event,
/// which is what lets the recording's zstd stream match a frame against earlier ones.
#[derive(Clone, Debug, Default)]
pub struct Palette {
    colours: Vec<[u8; 3]>,
    index: HashMap<[u8; 3], u8>,
}

impl Palette {
    /// An empty palette.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of colours so far.
    pub fn len(&self) -> usize {
        self.colours.len()
    }

    /// No colour yet.
    pub fn is_empty(&self) -> bool {
        self.colours.is_empty()
    }

    /// Forgets every colour (the next event starts a new numbering).
    pub fn clear(&mut self) {
        self.colours.clear();
        self.index.clear();
    }

    /// The colours as RGB triples: an event's `palette`.
    pub fn rgb(&self) -> Vec<u8> {
        self.colours.iter().flatten().copied().collect()
    }

    /// The opaque RGBA pixels `rgba` (alpha ignored) as indices into this palette, adding
    /// the colours it lacks. `None`, with the palette as it was, if they would take it over
    /// [`MAX_PALETTE`] colours.
    pub fn indices(&mut self, rgba: &[u8]) -> Option<Vec<u8>> {
        let before = self.colours.len();
        let mut out = Vec::with_capacity(rgba.len() / 4);
        // Screens are runs of one colour: the last lookup answers most pixels.
        let mut last: Option<([u8; 3], u8)> = None;
        for px in rgba.chunks_exact(4) {
            let c = [px[0], px[1], px[2]];
            let i = match last {
                Some((lc, li)) if lc == c => li,
                _ => {
                    let i = match self.index.get(&c) {
                        Some(i) => *i,
                        None => {
                            if self.colours.len() == MAX_PALETTE {
                                for c in self.colours.drain(before..) {
                                    self.index.remove(&c);
                                }
                                return None;
                            }
                            let i = self.colours.len() as u8;
                            self.colours.push(c);
                            self.index.insert(c, i);
                            i
                        }
                    };
                    last = Some((c, i));
                    i
                }
            };
            out.push(i);
        }
        Some(out)
    }
}

/// Encodes opaque RGBA pixels as a PNG: indexed colour when the picture has at most 256
/// colours (text and desktop chrome nearly always do), RGB otherwise. Alpha is dropped.
pub fn encode_png(width: u32, height: u32, rgba: &[u8]) -> Result<Vec<u8>, RecordingError> {
    encode_png_at(width, height, rgba, png::Compression::Balanced)
}

fn encode_png_at(
    width: u32,
    height: u32,
    rgba: &[u8],
    compression: png::Compression,
) -> Result<Vec<u8>, RecordingError> {
    let expected = (width as usize)
        .checked_mul(height as usize)
        .and_then(|n| n.checked_mul(4));
    if expected != Some(rgba.len()) {
        return Err(RecordingError::InvalidInput {
            field: "rgba",
            reason: format!("{} bytes for {width}x{height} RGBA", rgba.len()),
        });
    }
    let mut palette = Palette::new();
    let indexed = palette.indices(rgba).filter(|_| !palette.is_empty());
    let mut out = Vec::with_capacity(rgba.len() / 16 + 64);
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(compression);
        if indexed.is_some() {
            enc.set_color(png::ColorType::Indexed);
            enc.set_palette(palette.rgb());
        } else {
            enc.set_color(png::ColorType::Rgb);
        }
        let png_err = |e: png::EncodingError| RecordingError::Export(format!("PNG: {e}"));
        let mut w = enc.write_header().map_err(png_err)?;
        match &indexed {
            Some(ix) => w.write_image_data(ix).map_err(png_err)?,
            None => {
                let rgb: Vec<u8> = rgba
                    .chunks_exact(4)
                    .flat_map(|p| [p[0], p[1], p[2]])
                    .collect();
                w.write_image_data(&rgb).map_err(png_err)?;
            }
        }
        w.finish().map_err(png_err)?;
    }
    Ok(out)
}

/// Decodes a frame's PNG to RGBA, refusing one whose header disagrees with the event's size
/// before allocating its pixels.
pub fn decode_png(png_bytes: &[u8], width: u32, height: u32) -> Result<Vec<u8>, RecordingError> {
    let mut decoder = png::Decoder::new_with_limits(
        std::io::Cursor::new(png_bytes),
        png::Limits {
            bytes: (MAX_PIXELS as usize) * 8,
        },
    );
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| bad(format!("PNG: {e}")))?;
    let (w, h) = (reader.info().width, reader.info().height);
    if (w, h) != (width, height) {
        return Err(bad(format!(
            "PNG is {w}x{h}, its event says {width}x{height}"
        )));
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| bad("PNG too large"))?;
    let mut buf = vec![0u8; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| bad(format!("PNG: {e}")))?;
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
        png::ColorType::Indexed => return Err(bad("PNG palette was not expanded")),
    };
    if rgba.len() < px * 4 {
        return Err(bad("PNG pixel data is short"));
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
        encode_png(w, h, &px).unwrap()
    }

    fn frame(x: u32, y: u32, w: u32, h: u32, png: Vec<u8>) -> EventKind {
        EventKind::Frame {
            x,
            y,
            width: w,
            height: h,
            png,
        }
    }

    #[test]
    fn a_larger_keyframe_grows_the_canvas_and_regions_are_clipped() {
        let mut c = Canvas::new(2, 2).unwrap();
        c.apply(&frame(0, 0, 6, 4, solid(6, 4, [0, 0, 255, 255])))
            .unwrap();
        assert_eq!((c.width(), c.height()), (6, 4));
        c.apply(&frame(5, 3, 3, 3, solid(3, 3, [0, 255, 0, 255])))
            .unwrap();
        assert_eq!(c.pixel(5, 3), [0, 255, 0, 255]);
        assert_eq!(c.pixel(4, 3), [0, 0, 255, 255]);
        // Entirely outside: nothing painted, no panic.
        c.apply(&frame(100, 100, 1, 1, solid(1, 1, [9, 9, 9, 255])))
            .unwrap();
        assert!(!c.apply(&EventKind::Marker { label: "m".into() }).unwrap());
    }

    #[test]
    fn a_png_that_disagrees_with_its_event_is_refused() {
        let mut c = Canvas::new(4, 4).unwrap();
        let e = c
            .paint_png(0, 0, 3, 3, &solid(2, 2, [1, 2, 3, 255]))
            .unwrap_err();
        assert!(e.to_string().contains("2x2"), "{e}");
        assert!(c.paint_png(0, 0, 2, 2, b"not a png").is_err());
        assert!(c.paint_png(0, 0, 0, 2, b"").is_err());
        assert!(c.paint_png(0, 0, MAX_SIDE + 1, 1, b"").is_err());
        // A refused keyframe does not grow the canvas either.
        assert!(c.paint_png(0, 0, 9, 9, b"not a png").is_err());
        assert_eq!((c.width(), c.height()), (4, 4));
        assert_eq!(c.pixel(0, 0), [0, 0, 0, 255]);
    }

    #[test]
    fn indexed_pixels_paint_and_bad_ones_are_refused_whole() {
        let mut c = Canvas::new(4, 4).unwrap();
        let palette = vec![10, 20, 30, 40, 50, 60];
        c.paint_indexed(1, 1, 2, 2, &palette, &[0, 1, 1, 0])
            .unwrap();
        assert_eq!(c.pixel(1, 1), [10, 20, 30, 255]);
        assert_eq!(c.pixel(2, 1), [40, 50, 60, 255]);
        assert_eq!(c.pixel(0, 0), [0, 0, 0, 255]);
        // An index past the palette: refused, nothing painted.
        let e = c.paint_indexed(0, 0, 2, 1, &palette, &[1, 2]).unwrap_err();
        assert!(e.to_string().contains("index 2"), "{e}");
        assert_eq!(c.pixel(0, 0), [0, 0, 0, 255]);
        // Wrong count, bad palettes.
        assert!(c.paint_indexed(0, 0, 2, 2, &palette, &[0, 0, 0]).is_err());
        assert!(c.paint_indexed(0, 0, 1, 1, &[], &[0]).is_err());
        assert!(c.paint_indexed(0, 0, 1, 1, &[1, 2], &[0]).is_err());
        assert!(c.paint_indexed(0, 0, 1, 1, &[0; 257 * 3], &[0]).is_err());
    }

    #[test]
    fn the_palette_keeps_indices_stable_and_refuses_overflow_unchanged() {
        let mut p = Palette::new();
        let a = p
            .indices(&[1, 1, 1, 255, 2, 2, 2, 255, 1, 1, 1, 0])
            .unwrap();
        assert_eq!(a, vec![0, 1, 0]);
        let b = p.indices(&[3, 3, 3, 255, 1, 1, 1, 255]).unwrap();
        assert_eq!(b, vec![2, 0]);
        assert_eq!(p.rgb(), vec![1, 1, 1, 2, 2, 2, 3, 3, 3]);
        // 300 new colours do not fit: refused, and the palette is as it was.
        let many: Vec<u8> = (0..300u32)
            .flat_map(|i| [(i % 256) as u8, (i / 256) as u8, 9, 255])
            .collect();
        assert!(p.indices(&many).is_none());
        assert_eq!(p.len(), 3);
        assert_eq!(p.indices(&[2, 2, 2, 255]).unwrap(), vec![1]);
        p.clear();
        assert!(p.is_empty());
    }

    #[test]
    fn png_is_indexed_up_to_256_colours_and_rgb_beyond() {
        let few: Vec<u8> = (0..64u32)
            .flat_map(|i| [(i % 4) as u8, 0, 0, 255])
            .collect();
        let many: Vec<u8> = (0..1024u32)
            .flat_map(|i| [(i % 256) as u8, (i / 256) as u8, 0, 255])
            .collect();
        for (w, h, px) in [(8, 8, few), (32, 32, many)] {
            let png = encode_png(w, h, &px).unwrap();
            assert_eq!(decode_png(&png, w, h).unwrap(), px);
        }
        assert!(encode_png(2, 2, &[0; 12]).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_as_a_picture_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            palette in proptest::collection::vec(any::<u8>(), 0..20),
            x in 0u32..20, y in 0u32..20, w in 0u32..40, h in 0u32..40,
        ) {
            let mut c = Canvas::new(16, 16).unwrap();
            let _ = c.paint_png(x, y, w, h, &bytes);
            let _ = c.paint_indexed(x, y, w, h, &palette, &bytes);
            let mut png = solid(3, 3, [1, 2, 3, 255]);
            let cut = bytes.len() % png.len();
            png.truncate(cut);
            let _ = c.paint_png(x, y, 3, 3, &png);
            prop_assert_eq!(c.rgba().len(), (c.width() * c.height() * 4) as usize);
        }

        #[test]
        fn pixels_events_replay_exactly(
            w in 1u32..24, h in 1u32..24, seed in any::<u64>(), colours in 1u64..300,
        ) {
            // Any opaque picture: through a Palette and back through a Canvas it is the
            // same pixels (or the palette refuses it whole when it has > 256 colours).
            let rgba: Vec<u8> = (0..u64::from(w * h))
                .flat_map(|i| {
                    let c = (i.wrapping_mul(seed | 1) >> 3) % colours;
                    [c as u8, (c >> 8) as u8, 7, 255]
                })
                .collect();
            let mut p = Palette::new();
            if let Some(ix) = p.indices(&rgba) {
                let mut c = Canvas::new(w, h).unwrap();
                c.paint_indexed(0, 0, w, h, &p.rgb(), &ix).unwrap();
                prop_assert_eq!(c.rgba(), &rgba[..]);
            } else {
                prop_assert!(p.is_empty());
            }
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
