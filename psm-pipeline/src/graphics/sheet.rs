//! A contact sheet: a grid of thumbnails of the screen at even times through the session, as
//! one PNG, to see at a glance what a graphical session was about.

use std::io::{Read, Seek, Write};

use psm_recording::export::{ExportSummary, Item, walk};
use psm_recording::{Micros, Reader, RecordingError};

use super::Canvas;
use super::frame_error;
use crate::error::PipelineError;

/// How contact sheets are laid out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SheetOptions {
    /// Thumbnails (1 to 100; default 12), at the middle of equal slices of the session.
    pub thumbnails: u32,
    /// Width of each thumbnail in pixels (16 to 1024; default 320).
    pub thumb_width: u32,
    /// Thumbnails per row (default 4).
    pub columns: u32,
}

impl Default for SheetOptions {
    fn default() -> Self {
        Self {
            thumbnails: 12,
            thumb_width: 320,
            columns: 4,
        }
    }
}

/// What [`export_contact_sheet`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SheetInfo {
    /// Thumbnails on the sheet.
    pub thumbnails: u32,
    /// The sheet's width.
    pub width: u32,
    /// The sheet's height.
    pub height: u32,
}

const BORDER: u32 = 4;
const BACKGROUND: [u8; 4] = [0x2a, 0x2a, 0x2a, 0xff];

/// Replays `reader`'s frames and writes the contact sheet PNG to `out`. Returns `None` (and
/// writes nothing) when the recording has no frame. Frames that do not decode are skipped and
/// listed as gaps.
pub fn export_contact_sheet<R: Read + Seek>(
    reader: &mut Reader<R>,
    out: &mut impl Write,
    options: &SheetOptions,
    progress: impl FnMut(usize, usize),
) -> Result<Option<(ExportSummary, SheetInfo)>, PipelineError> {
    let count = options.thumbnails.clamp(1, 100);
    let thumb_width = options.thumb_width.clamp(16, 1024);
    let end = reader.duration().0;
    let times: Vec<Micros> = (0..u64::from(count))
        .map(|i| Micros(end.saturating_mul(2 * i + 1) / (2 * u64::from(count))))
        .collect();
    let mut canvas: Option<Canvas> = None;
    let mut thumbs: Vec<Canvas> = Vec::new();
    let mut bad_frames: Vec<(Micros, String)> = Vec::new();
    let walked = walk(
        reader,
        |item| {
            let Item::Event(e) = item else { return Ok(()) };
            if psm_recording::graphics::picture_rect(&e.kind).is_none() {
                return Ok(());
            }
            if let Some(c) = &canvas {
                while thumbs.len() < times.len() && times[thumbs.len()] < e.time {
                    thumbs.push(c.scaled_to_width(thumb_width));
                }
            }
            let c = match &mut canvas {
                Some(c) => c,
                None => match Canvas::for_first(&e.kind) {
                    Some(Ok(c)) => canvas.insert(c),
                    Some(Err(e2)) => {
                        bad_frames.push((e.time, e2.to_string()));
                        return Ok(());
                    }
                    None => return Ok(()),
                },
            };
            if let Err(e2) = c.apply(&e.kind) {
                bad_frames.push((e.time, e2.to_string()));
            }
            Ok::<(), RecordingError>(())
        },
        progress,
    );
    let mut summary = walked.map_err(|e| PipelineError::Export {
        export: "contact-sheet".into(),
        reason: format!("reading the recording: {e}"),
    })?;
    let Some(last) = canvas else {
        return Ok(None);
    };
    while thumbs.len() < times.len() {
        thumbs.push(last.scaled_to_width(thumb_width));
    }
    let (tw, th) = thumbs
        .iter()
        .fold((1, 1), |(w, h), t| (w.max(t.width()), h.max(t.height())));
    let columns = options.columns.clamp(1, count);
    let rows = count.div_ceil(columns);
    let mut sheet = Canvas::new(
        columns * (tw + BORDER) + BORDER,
        rows * (th + BORDER) + BORDER,
    )
    .map_err(frame_error)?;
    sheet.fill(BACKGROUND);
    let (sw, sh) = (sheet.width(), sheet.height());
    for (i, t) in thumbs.iter().enumerate() {
        let i = i as u32;
        sheet.blit(
            t,
            BORDER + (i % columns) * (tw + BORDER),
            BORDER + (i / columns) * (th + BORDER),
        );
    }
    let png = sheet.to_png().map_err(frame_error)?;
    out.write_all(&png).map_err(|e| PipelineError::Export {
        export: "contact-sheet".into(),
        reason: format!("writing: {e}"),
    })?;
    for (t, reason) in bad_frames {
        summary.gaps.push(psm_recording::export::Gap {
            from: t,
            to: Some(t),
            reason: format!("frame skipped: {reason}"),
        });
    }
    summary.items = u64::from(count);
    Ok(Some((
        summary,
        SheetInfo {
            thumbnails: count,
            width: sw,
            height: sh,
        },
    )))
}
