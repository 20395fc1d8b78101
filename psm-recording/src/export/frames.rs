//! PNG frames of graphical sessions, one file each, plus `frames.json` listing them.

use std::io::{Read, Seek};
use std::path::Path;

use serde::Serialize;

use super::{ExportSummary, Item, walk};
use crate::error::RecordingError;
use crate::event::EventKind;
use crate::graphics;
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

/// Writes every picture event into `dir` (created if needed) as `frame-NNNNNN.png`, and
/// `frames.json`: [`EventKind::Frame`] PNGs as they are, [`EventKind::Pixels`] encoded as PNG.
/// Pictures that are bad (not a PNG, an index outside the palette) are skipped and counted
/// as gaps.
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
            let Item::Event(e) = item else { return Ok(()) };
            let Some((x, y, width, height)) = graphics::picture_rect(&e.kind) else {
                return Ok(());
            };
            let png = match &e.kind {
                EventKind::Frame { png, .. } if png.starts_with(&PNG_SIGNATURE) => {
                    std::borrow::Cow::Borrowed(png)
                }
                EventKind::Pixels { .. } => match graphics::Canvas::of_picture(&e.kind) {
                    Some(Ok(region)) => std::borrow::Cow::Owned(region.to_png()?),
                    _ => {
                        bad.push(e.time);
                        return Ok(());
                    }
                },
                _ => {
                    bad.push(e.time);
                    return Ok(());
                }
            };
            let file = format!("frame-{:06}.png", files.len());
            let path = dir.join(&file);
            std::fs::write(&path, &*png)
                .map_err(|err| RecordingError::io(format!("writing {}", path.display()), err))?;
            files.push(FrameFile {
                file,
                time_us: e.time.0,
                offset: e.time.to_string(),
                x,
                y,
                width,
                height,
            });
            Ok(())
        },
        progress,
    )?;
    for t in bad {
        summary.gaps.push(super::Gap {
            from: t,
            to: Some(t),
            reason: "frame is not a picture (a bad PNG or pixels)".into(),
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

pub use crate::graphics::encode_png;
