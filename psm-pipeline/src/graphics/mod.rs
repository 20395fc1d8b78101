//! Exports of graphical (RDP) sessions: a video through Debian's `ffmpeg` and a contact
//! sheet of thumbnails, both replayed from the recording's picture events (PNG frames and
//! raw palette-indexed pixels) onto one [`Canvas`] (psm-recording's
//! [`graphics`](psm_recording::graphics)).
//!
//! ```no_run
//! use psm_pipeline::graphics::{SheetOptions, VideoOptions, export_contact_sheet, export_video};
//! use psm_recording::{ReadOptions, Reader};
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut r = Reader::open("session.psmr", ReadOptions::default())?;
//! if let Some((_, info)) = export_video(&mut r, "session.mp4".as_ref(), &VideoOptions::default(), |_, _| {})? {
//!     println!("{} frames of {}x{}", info.frames, info.width, info.height);
//! }
//! let mut r = Reader::open("session.psmr", ReadOptions::default())?;
//! let mut png = Vec::new();
//! export_contact_sheet(&mut r, &mut png, &SheetOptions::default(), |_, _| {})?;
//! # Ok(()) }
//! ```

mod sheet;
mod video;

pub use psm_recording::graphics::{Canvas, MAX_PIXELS, MAX_SIDE, decode_png};
pub use sheet::{SheetInfo, SheetOptions, export_contact_sheet};
pub use video::{VideoInfo, VideoOptions, export_video};

/// A picture that cannot be painted, as the exporters report it (skipped and listed as a
/// gap, see `PipelineError::is_bad_frame`).
pub(crate) fn frame_error(e: psm_recording::RecordingError) -> crate::error::PipelineError {
    crate::error::PipelineError::Export {
        export: "frames".into(),
        reason: e.to_string(),
    }
}
