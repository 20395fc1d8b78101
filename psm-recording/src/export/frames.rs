//! PNG frames of graphical sessions, one file each, plus `frames.json` listing them.

use std::io::{Read, Seek};
use std::path::Path;

use serde::Serialize;

use super::{ExportSummary, Item, walk};
use crate::error::RecordingError;
use crate::event::EventKind;
use crate::reader::Reader;

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// One exported frame, as listed in `frames.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FrameFile {
    /// File name inside the output directory.
    pub file: String,
    /// Microseconds since the start.
    pub time_us: u64,
    /// `HH:MM:SS.mmm`.
    pub offset: String,
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// Writes every [`EventKind::Frame`] into `dir` (created if needed) as
/// `frame-NNNNNN.png`, and `frames.json`. Frames whose bytes are not a PNG are skipped and
/// counted as gaps.
pub fn export_frames<R: Read + Seek>(
    reader: &mut Reader<R>,
    dir: &Path,
    progress: impl FnMut(usize, usize),
) -> Result<ExportSummary, RecordingError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| RecordingError::io(format!("creating {}", dir.display()), e))?;
    let mut files = Vec::new();
    let mut bad = Vec::new();
    let mut summary = walk(
        reader,
        |item| {
            if let Item::Event(e) = item
                && let EventKind::Frame {
                    x,
                    y,
                    width,
                    height,
                    png,
                } = &e.kind
            {
                if !png.starts_with(&PNG_SIGNATURE) {
                    bad.push(e.time);
                    return Ok(());
                }
                let file = format!("frame-{:06}.png", files.len());
                let path = dir.join(&file);
                std::fs::write(&path, png).map_err(|err| {
                    RecordingError::io(format!("writing {}", path.display()), err)
                })?;
                files.push(FrameFile {
                    file,
                    time_us: e.time.0,
                    offset: e.time.to_string(),
                    x: *x,
                    y: *y,
                    width: *width,
                    height: *height,
                });
            }
            Ok(())
        },
        progress,
    )?;
    for t in bad {
        summary.gaps.push(super::Gap {
            from: t,
            to: Some(t),
            reason: "frame is not a PNG".into(),
        });
    }
    let json = serde_json::to_vec_pretty(&files)
        .map_err(|e| RecordingError::Export(format!("encoding frames.json: {e}")))?;
    let path = dir.join("frames.json");
    std::fs::write(&path, json)
        .map_err(|e| RecordingError::io(format!("writing {}", path.display()), e))?;
    summary.items = files.len() as u64;
    Ok(summary)
}

/// Encodes an RGBA image as PNG, for [`EventKind::Frame`].
pub fn encode_png(width: u32, height: u32, rgba: &[u8]) -> Result<Vec<u8>, RecordingError> {
    let expected = (width as usize)
        .checked_mul(height as usize)
        .and_then(|n| n.checked_mul(4));
    if expected != Some(rgba.len()) {
        return Err(RecordingError::InvalidInput {
            field: "rgba",
            reason: format!("{} bytes for {width}x{height} RGBA", rgba.len()),
        });
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc
        .write_header()
        .map_err(|e| RecordingError::Export(format!("PNG header: {e}")))?;
    w.write_image_data(rgba)
        .map_err(|e| RecordingError::Export(format!("PNG data: {e}")))?;
    w.finish()
        .map_err(|e| RecordingError::Export(format!("PNG end: {e}")))?;
    Ok(out)
}
