//! Turning an RDP recording into something people watch: a video (ffmpeg, driven as a
//! process and fed raw frames on its standard input) and a contact sheet (a grid of PNG
//! thumbnails at even times). Both replay the recording's [`EventKind::Frame`] events onto
//! one canvas, so memory is one screen whatever the recording's length.
//!
//! ```no_run
//! # fn demo() -> Result<(), psm_proxy_rdp::RdpError> {
//! use psm_proxy_rdp::export::{contact_sheet, to_video, VideoOptions};
//! let path = std::path::Path::new("session.psmr");
//! to_video(path, "session.mp4".as_ref(), &VideoOptions::default())?;
//! contact_sheet(path, "session-sheet.png".as_ref(), 12, 240)?;
//! # Ok(()) }
//! ```

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use psm_recording::{Event, EventKind, ReadOptions, Reader};

use crate::error::RdpError;

/// Largest canvas side the exporters accept (a recording claiming more is refused).
pub const MAX_SIDE: u32 = 8192;

/// A replayed screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canvas {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// RGBA pixels.
    pub rgba: Vec<u8>,
}

impl Canvas {
    /// A black canvas.
    pub fn new(width: u32, height: u32) -> Self {
        let len = (width as usize) * (height as usize) * 4;
        let mut rgba = vec![0u8; len];
        for px in rgba.chunks_exact_mut(4) {
            px[3] = 0xff;
        }
        Self {
            width,
            height,
            rgba,
        }
    }

    /// Paints a frame event's PNG at its place. A canvas grows to a whole-screen frame's
    /// size (the first keyframe, or a resize).
    pub fn apply(
        &mut self,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
        png: &[u8],
    ) -> Result<(), RdpError> {
        if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
            return Err(RdpError::Export(format!(
                "a frame of {width}x{height} is outside 1..={MAX_SIDE}"
            )));
        }
        // A frame at the origin larger than the canvas is a whole-screen keyframe of a
        // (first or resized) desktop: the canvas grows to hold it.
        if x == 0 && y == 0 && (width > self.width || height > self.height) {
            self.grow(width.max(self.width), height.max(self.height));
        }
        let img = decode_png(png, width, height)?;
        for row in 0..height {
            let cy = y + row;
            if cy >= self.height || x >= self.width {
                continue;
            }
            let n = width.min(self.width - x) as usize * 4;
            let src = (row * width) as usize * 4;
            let dst = ((cy * self.width + x) as usize) * 4;
            self.rgba[dst..dst + n].copy_from_slice(&img[src..src + n]);
        }
        Ok(())
    }

    fn grow(&mut self, width: u32, height: u32) {
        let mut bigger = Canvas::new(width, height);
        for row in 0..self.height {
            let s = (row * self.width) as usize * 4;
            let d = (row * width) as usize * 4;
            let n = self.width as usize * 4;
            bigger.rgba[d..d + n].copy_from_slice(&self.rgba[s..s + n]);
        }
        *self = bigger;
    }

    /// PNG of the canvas.
    pub fn to_png(&self) -> Result<Vec<u8>, RdpError> {
        crate::screen::encode_png(
            &self.rgba,
            self.width,
            self.height,
            png::Compression::Balanced,
        )
        .map_err(|e| RdpError::Export(format!("PNG encoding: {e}")))
    }

    /// A copy scaled to `width` (aspect kept), by box averaging.
    pub fn thumbnail(&self, width: u32) -> Canvas {
        let width = width.clamp(1, self.width.max(1));
        let height = ((u64::from(self.height) * u64::from(width)) / u64::from(self.width.max(1)))
            .max(1) as u32;
        let mut out = Canvas::new(width, height);
        for ty in 0..height {
            let y0 = ty * self.height / height;
            let y1 = ((ty + 1) * self.height / height).max(y0 + 1);
            for tx in 0..width {
                let x0 = tx * self.width / width;
                let x1 = ((tx + 1) * self.width / width).max(x0 + 1);
                let mut sum = [0u64; 3];
                let mut n = 0u64;
                for sy in y0..y1.min(self.height) {
                    for sx in x0..x1.min(self.width) {
                        let i = ((sy * self.width + sx) as usize) * 4;
                        for (acc, v) in sum.iter_mut().zip(&self.rgba[i..i + 3]) {
                            *acc += u64::from(*v);
                        }
                        n += 1;
                    }
                }
                let o = ((ty * width + tx) as usize) * 4;
                for (dst, acc) in out.rgba[o..o + 3].iter_mut().zip(sum) {
                    *dst = (acc / n.max(1)) as u8;
                }
            }
        }
        out
    }
}

/// Decodes a frame's PNG, checking it is `width` x `height` before allocating its pixels.
pub fn decode_png(png_bytes: &[u8], width: u32, height: u32) -> Result<Vec<u8>, RdpError> {
    let bad = |m: String| RdpError::Export(format!("frame PNG: {m}"));
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| bad(e.to_string()))?;
    let info = reader.info();
    if (info.width, info.height) != (width, height) {
        return Err(bad(format!(
            "is {}x{}, the event says {width}x{height}",
            info.width, info.height
        )));
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| bad("too large".into()))?;
    if size > (MAX_SIDE as usize) * (MAX_SIDE as usize) * 4 {
        return Err(bad("too large".into()));
    }
    let mut buf = vec![0u8; size];
    let out = reader
        .next_frame(&mut buf)
        .map_err(|e| bad(e.to_string()))?;
    buf.truncate(out.buffer_size());
    let px = (width as usize) * (height as usize);
    let rgba = match out.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 0xff])
            .collect(),
        png::ColorType::Grayscale => buf.iter().flat_map(|&g| [g, g, g, 0xff]).collect(),
        png::ColorType::GrayscaleAlpha => buf
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0], p[1]])
            .collect(),
        png::ColorType::Indexed => return Err(bad("indexed colour was not expanded".into())),
    };
    if rgba.len() != px * 4 {
        return Err(bad("pixel data is short".into()));
    }
    Ok(rgba)
}

/// The frames of a recording, replayed: calls `at` with each frame's time and the canvas
/// after it. Non-frame events are skipped.
pub fn replay(
    path: &Path,
    mut at: impl FnMut(u64, &Canvas) -> Result<(), RdpError>,
) -> Result<(), RdpError> {
    let mut reader = Reader::open(path, ReadOptions::default())?;
    let mut canvas = Canvas::new(1, 1);
    for ev in reader.events() {
        let Event { time, kind } = ev?;
        if let EventKind::Frame {
            x,
            y,
            width,
            height,
            png,
        } = kind
        {
            canvas.apply(x, y, width, height, &png)?;
            at(time.0, &canvas)?;
        }
    }
    Ok(())
}

/// The screen as the recording shows it at its end.
pub fn last_screen(path: &Path) -> Result<Canvas, RdpError> {
    let mut last = None;
    replay(path, |_, c| {
        last = Some(c.clone());
        Ok(())
    })?;
    last.ok_or_else(|| RdpError::Export("the recording has no frame".into()))
}

/// Options of [`to_video`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoOptions {
    /// Frames per second of the output.
    pub fps: u32,
    /// The ffmpeg program.
    pub ffmpeg: String,
    /// Video codec arguments (default: H.264, yuv420p, fast preset).
    pub codec_args: Vec<String>,
}

impl Default for VideoOptions {
    fn default() -> Self {
        Self {
            fps: 5,
            ffmpeg: "ffmpeg".into(),
            codec_args: [
                "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        }
    }
}

/// Encodes the recording's screen as a video at `out` (format from its extension), one
/// frame every `1/fps` seconds of session time. Returns the number of frames written.
pub fn to_video(path: &Path, out: &Path, options: &VideoOptions) -> Result<u64, RdpError> {
    let fps = options.fps.clamp(1, 60);
    let first = last_size(path)?;
    let (w, h) = (first.0 & !1, first.1 & !1); // yuv420p needs even sides
    let mut child = Command::new(&options.ffmpeg)
        .args([
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgba",
            "-s",
        ])
        .arg(format!("{w}x{h}"))
        .args(["-r", &fps.to_string(), "-i", "-"])
        .args(&options.codec_args)
        .arg(out)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            RdpError::Export(format!(
                "starting {} (install Debian's ffmpeg): {e}",
                options.ffmpeg
            ))
        })?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| RdpError::Export("ffmpeg's stdin".into()))?;
    let step = 1_000_000 / u64::from(fps);
    let mut next_t = 0u64;
    let mut frames = 0u64;
    let mut last: Option<Vec<u8>> = None;
    let write_frame = |c: &[u8], stdin: &mut std::process::ChildStdin| -> Result<(), RdpError> {
        stdin
            .write_all(c)
            .map_err(|e| RdpError::Export(format!("writing to ffmpeg: {e}")))
    };
    let crop = |c: &Canvas| -> Vec<u8> {
        let mut out = Vec::with_capacity((w * h * 4) as usize);
        for row in 0..h.min(c.height) {
            let s = (row * c.width) as usize * 4;
            let n = (w.min(c.width) as usize) * 4;
            out.extend_from_slice(&c.rgba[s..s + n]);
            out.resize(out.len() + (w as usize * 4 - n), 0);
        }
        out.resize((w * h * 4) as usize, 0);
        out
    };
    let r = replay(path, |t, canvas| {
        while next_t + step <= t {
            if let Some(prev) = &last {
                write_frame(prev, &mut stdin)?;
                frames += 1;
            }
            next_t += step;
        }
        last = Some(crop(canvas));
        Ok(())
    });
    if r.is_ok()
        && let Some(prev) = &last
    {
        write_frame(prev, &mut stdin)?;
        frames += 1;
    }
    drop(stdin);
    let output = child
        .wait_with_output()
        .map_err(|e| RdpError::Export(format!("waiting for ffmpeg: {e}")))?;
    r?;
    if !output.status.success() {
        let msg = String::from_utf8_lossy(&output.stderr);
        return Err(RdpError::Export(format!(
            "ffmpeg failed ({}): {}",
            output.status,
            msg.chars().take(500).collect::<String>()
        )));
    }
    Ok(frames)
}

fn last_size(path: &Path) -> Result<(u32, u32), RdpError> {
    let mut size = None;
    replay(path, |_, c| {
        if size.is_none() {
            size = Some((c.width, c.height));
        }
        Ok(())
    })?;
    size.filter(|(w, h)| *w >= 2 && *h >= 2)
        .ok_or_else(|| RdpError::Export("the recording has no frame".into()))
}

/// Writes a grid of `count` thumbnails (`thumb_width` pixels wide), taken at even times
/// through the session, as one PNG at `out`. Returns how many thumbnails it holds.
pub fn contact_sheet(
    path: &Path,
    out: &Path,
    count: u32,
    thumb_width: u32,
) -> Result<u32, RdpError> {
    let count = count.clamp(1, 100);
    let duration = {
        let reader = Reader::open(path, ReadOptions::default())?;
        reader.duration().0
    };
    let times: Vec<u64> = (0..count)
        .map(|i| duration * u64::from(i + 1) / u64::from(count))
        .collect();
    let mut thumbs: Vec<Canvas> = Vec::new();
    let mut latest: Option<Canvas> = None;
    let mut idx = 0usize;
    replay(path, |t, c| {
        while idx < times.len() && times[idx] < t {
            if let Some(l) = &latest {
                thumbs.push(l.thumbnail(thumb_width));
            }
            idx += 1;
        }
        latest = Some(c.clone());
        Ok(())
    })?;
    if let Some(l) = &latest {
        while thumbs.len() < (count as usize) {
            thumbs.push(l.thumbnail(thumb_width));
        }
    }
    let Some(first) = thumbs.first() else {
        return Err(RdpError::Export("the recording has no frame".into()));
    };
    let cols = (count as f64).sqrt().ceil() as u32;
    let rows = (thumbs.len() as u32).div_ceil(cols);
    let gap = 4;
    let (tw, th) = (first.width, first.height);
    let mut sheet = Canvas::new(cols * (tw + gap) + gap, rows * (th + gap) + gap);
    for px in sheet.rgba.chunks_exact_mut(4) {
        px.copy_from_slice(&[0x30, 0x30, 0x30, 0xff]);
    }
    for (i, t) in thumbs.iter().enumerate() {
        let (cx, cy) = (
            (i as u32 % cols) * (tw + gap) + gap,
            (i as u32 / cols) * (th + gap) + gap,
        );
        for row in 0..t.height.min(th) {
            let s = (row * t.width) as usize * 4;
            let d = (((cy + row) * sheet.width + cx) as usize) * 4;
            let n = t.width.min(tw) as usize * 4;
            sheet.rgba[d..d + n].copy_from_slice(&t.rgba[s..s + n]);
        }
    }
    std::fs::write(out, sheet.to_png()?)
        .map_err(|e| RdpError::io(format!("writing {}", out.display()), e))?;
    Ok(thumbs.len() as u32)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn canvas_applies_frames_and_thumbnails() {
        let mut c = Canvas::new(1, 1);
        let full =
            crate::screen::encode_png(&[10u8; 8 * 6 * 4], 8, 6, png::Compression::Fast).unwrap();
        c.apply(0, 0, 8, 6, &full).unwrap();
        assert_eq!((c.width, c.height), (8, 6));
        let red =
            crate::screen::encode_png(&[255, 0, 0, 255].repeat(4), 2, 2, png::Compression::Fast)
                .unwrap();
        c.apply(7, 5, 2, 2, &red).unwrap();
        assert_eq!(&c.rgba[((5 * 8 + 7) * 4) as usize..][..3], &[255, 0, 0]);
        assert!(
            c.apply(0, 0, 3, 3, &red).is_err(),
            "size mismatch is refused"
        );
        let t = c.thumbnail(4);
        assert_eq!((t.width, t.height), (4, 3));
        assert!(decode_png(b"not a png", 1, 1).is_err());
    }
}
