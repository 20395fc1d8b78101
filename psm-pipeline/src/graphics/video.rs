//! A graphical recording as a video: the frames are replayed onto one [`Canvas`] and the
//! canvas is sampled at a fixed frame rate into Debian's `ffmpeg`, driven as a process and fed
//! raw RGBA on its standard input. Memory is one screen whatever the session's length.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use psm_recording::export::{ExportSummary, Item, walk};
use psm_recording::{Micros, Reader, RecordingError};

use super::{Canvas, frame_error};
use crate::error::PipelineError;

/// How videos are encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoOptions {
    /// The ffmpeg program (default `ffmpeg`, from `PATH`).
    pub ffmpeg: PathBuf,
    /// Frames per second of the output (1 to 30; default 5): the screen as it was at each
    /// tick of session time.
    pub fps: u32,
    /// libx264 quality (`-crf`, 0 to 51; default 28: screens of text stay legible).
    pub crf: u8,
    /// libx264 preset (default `veryfast`).
    pub preset: String,
}

impl Default for VideoOptions {
    fn default() -> Self {
        Self {
            ffmpeg: PathBuf::from("ffmpeg"),
            fps: 5,
            crf: 28,
            preset: "veryfast".into(),
        }
    }
}

/// What [`export_video`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoInfo {
    /// Frames in the video.
    pub frames: u64,
    /// Width (the first screen's, rounded up to even).
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
}

fn err(reason: impl Into<String>) -> PipelineError {
    PipelineError::Export {
        export: "video".into(),
        reason: reason.into(),
    }
}

/// ffmpeg at work: its input pipe and the thread draining its error output.
struct Ffmpeg {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Option<std::thread::JoinHandle<String>>,
    program: PathBuf,
}

impl Ffmpeg {
    fn start(
        options: &VideoOptions,
        width: u32,
        height: u32,
        fps: u32,
        out: &Path,
    ) -> Result<Self, PipelineError> {
        let mut cmd = Command::new(&options.ffmpeg);
        cmd.args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "rawvideo", "-pix_fmt", "rgba"])
            .arg("-s")
            .arg(format!("{width}x{height}"))
            .arg("-framerate")
            .arg(fps.to_string())
            .args(["-i", "pipe:0", "-an", "-c:v", "libx264", "-preset"])
            .arg(&options.preset)
            .arg("-crf")
            .arg(options.crf.min(51).to_string())
            .args(["-pix_fmt", "yuv420p", "-g"])
            .arg((fps * 10).to_string())
            // The same recording gives the same bytes: no encoder version strings or times.
            .args(["-fflags", "+bitexact", "-flags:v", "+bitexact"])
            .args([
                "-map_metadata",
                "-1",
                "-movflags",
                "+faststart",
                "-f",
                "mp4",
            ])
            .arg(out)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            err(format!(
                "cannot start {} ({e}): install Debian's ffmpeg (`apt-get install ffmpeg`) or \
                 set the ffmpeg path",
                options.ffmpeg.display()
            ))
        })?;
        let stdin = child.stdin.take();
        let stderr = child.stderr.take().map(|mut s| {
            std::thread::spawn(move || {
                // Keep the last 2 KiB: enough for ffmpeg's reason, bounded whatever it prints.
                let mut tail = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    tail.extend_from_slice(&buf[..n]);
                    if tail.len() > 2048 {
                        tail.drain(..tail.len() - 2048);
                    }
                }
                String::from_utf8_lossy(&tail).trim().to_owned()
            })
        });
        Ok(Self {
            child,
            stdin,
            stderr,
            program: options.ffmpeg.clone(),
        })
    }

    fn write(&mut self, frame: &[u8]) -> Result<(), PipelineError> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(err("ffmpeg's input is closed"));
        };
        match stdin.write_all(frame) {
            Ok(()) => Ok(()),
            // ffmpeg quit: its own message says why.
            Err(e) => Err(err(format!(
                "writing to ffmpeg: {e}: {}",
                self.finish_err()
            ))),
        }
    }

    fn finish_err(&mut self) -> String {
        self.stdin = None;
        let _ = self.child.wait();
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }

    fn finish(mut self) -> Result<(), PipelineError> {
        self.stdin = None;
        let status = self
            .child
            .wait()
            .map_err(|e| err(format!("waiting for {}: {e}", self.program.display())))?;
        let msg = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if !status.success() {
            return Err(err(format!("ffmpeg failed ({status}): {msg}")));
        }
        Ok(())
    }
}

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        if self.stdin.take().is_some() {
            // Abandoned mid-way (an error elsewhere): do not leave the process behind.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Replays `reader`'s frames and encodes them as an H.264 MP4 at `out`, one frame every
/// `1/fps` seconds of session time from 0 to the end of the recording. The size is the first
/// screen's (later, larger screens are cut; smaller ones padded black).
///
/// Returns `None` (and writes nothing) when the recording has no frame: a graphical session
/// that never showed a screen. Frames that do not decode are skipped and listed as gaps;
/// unreadable parts of the recording show the last screen before them (and are gaps too).
pub fn export_video<R: Read + Seek>(
    reader: &mut Reader<R>,
    out: &Path,
    options: &VideoOptions,
    progress: impl FnMut(usize, usize),
) -> Result<Option<(ExportSummary, VideoInfo)>, PipelineError> {
    let fps = options.fps.clamp(1, 30);
    let end = reader.duration();
    let tick = |k: u64| Micros(k.saturating_mul(1_000_000) / u64::from(fps));
    let mut canvas: Option<Canvas> = None;
    let mut ffmpeg: Option<Ffmpeg> = None;
    let mut size = (0u32, 0u32);
    let mut next = 0u64; // the next output frame
    let mut failure: Option<PipelineError> = None;
    let mut bad_frames: Vec<(Micros, String)> = Vec::new();
    let mut last = Micros::ZERO;

    // Writes every output frame whose time is before `t` (or at it, with `inclusive`).
    let emit = |ff: &mut Ffmpeg,
                c: &Canvas,
                next: &mut u64,
                size: (u32, u32),
                t: Micros,
                inclusive: bool|
     -> Result<(), PipelineError> {
        let frame = c.framed(size.0, size.1);
        while tick(*next) < t || (inclusive && tick(*next) == t) {
            ff.write(&frame)?;
            *next += 1;
        }
        Ok(())
    };

    let walked = walk(
        reader,
        |item| {
            let Item::Event(e) = item else { return Ok(()) };
            if psm_recording::graphics::picture_rect(&e.kind).is_none() {
                return Ok(());
            }
            last = last.max(e.time);
            let step = (|| -> Result<(), PipelineError> {
                if canvas.is_none() {
                    let Some(c) = Canvas::for_first(&e.kind) else {
                        return Ok(());
                    };
                    let c = c.map_err(frame_error)?;
                    let (w, h) = (c.width(), c.height());
                    size = (w.div_ceil(2) * 2, h.div_ceil(2) * 2);
                    ffmpeg = Some(Ffmpeg::start(options, size.0, size.1, fps, out)?);
                    canvas = Some(c);
                }
                if let (Some(ff), Some(c)) = (ffmpeg.as_mut(), canvas.as_ref()) {
                    emit(ff, c, &mut next, size, e.time, false)?;
                }
                Ok(())
            })();
            match step {
                Ok(()) => {}
                Err(bad @ PipelineError::Export { .. }) if bad.is_bad_frame() => {
                    bad_frames.push((e.time, bad.to_string()));
                    return Ok(());
                }
                Err(other) => {
                    failure = Some(other);
                    return Err(RecordingError::Export("video export stopped".into()));
                }
            }
            if let Some(c) = canvas.as_mut()
                && let Err(e2) = c.apply(&e.kind)
            {
                bad_frames.push((e.time, e2.to_string()));
            }
            Ok(())
        },
        progress,
    );
    if let Some(f) = failure {
        return Err(f);
    }
    let mut summary = walked.map_err(|e| err(format!("reading the recording: {e}")))?;
    let (Some(mut ff), Some(c)) = (ffmpeg, canvas) else {
        return Ok(None);
    };
    emit(&mut ff, &c, &mut next, size, end.max(last), true)?;
    ff.finish()?;
    for (t, reason) in bad_frames {
        summary.gaps.push(psm_recording::export::Gap {
            from: t,
            to: Some(t),
            reason: format!("frame skipped: {reason}"),
        });
    }
    summary.items = next;
    Ok(Some((
        summary,
        VideoInfo {
            frames: next,
            width: size.0,
            height: size.1,
            fps,
        },
    )))
}
