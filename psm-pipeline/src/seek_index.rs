//! The seek index of a raw recording, added without ever writing the raw file in place.
//!
//! A gateway writes no keyframes; the [`Encoder`](crate::Encoder) appends the recording's
//! seek index ([`psm_recording::index`]) before it commits Done-Encoded, so the stored
//! `.psmr` seeks in about a millisecond instead of replaying from the start. The `psm index`
//! command uses the same function for recordings made before.
//!
//! How it keeps the pipeline's guarantees:
//!
//! - **Only an intact recording is indexed** (every frame's seal checked first). A damaged or
//!   truncated one stays exactly as the gateway wrote it.
//! - **The raw file is never written in place.** The indexed file is built beside it, in a
//!   hidden `.<id>.psmr.<token>.index.tmp`: a copy of the recording, the index appended by
//!   [`add_seek_index`], fsynced, then checked (every frame's seal again, the index's
//!   signature and every keyframe) and renamed over the raw file, and the directory fsynced.
//!   At every instant the raw file is either the gateway's bytes or the complete indexed
//!   file; a crash before the rename leaves only a temporary, which [`remove_leftovers`] (the
//!   next indexing of that recording, or the uploader) deletes.
//! - **Idempotent.** A recording that already has a complete seek index is left as it is,
//!   whoever signed it, so a retake after the rename changes nothing; before the rename the
//!   retake starts over, and with the same key it produces the same bytes (ed25519
//!   signatures, zstd, the keyframes and, for encrypted recordings, their nonces are all
//!   deterministic).
//! - **The recording's signatures are untouched.** The index is one more frame after the
//!   footer, chained to the recording's last frame (its trailer) and signed by the index key
//!   that its body names; the recording's bytes, hash chain and signatures stay the
//!   gateway's. A reader checks that frame's seal, that it covers exactly the recording
//!   before it, and ignores it if its signer is not trusted; `psm verify` reports the
//!   recording as before, and the index's signer beside it.
//!
//! ```
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use psm_pipeline::seek_index::{IndexOutcome, index_recording};
//! use psm_recording::index::IndexOptions;
//! use psm_recording::*;
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("s.psmr");
//! let header = Header::new(psm_core::SessionId::new(), Protocol::Ssh, "alice", "web-01", "gw-1")
//!     .with_terminal(TermSize::new(80, 24), "xterm");
//! let mut w = BlockingWriter::create(&path, header, SigningKey::generate()?, WriterConfig::default())?;
//! for i in 0..3000u64 {
//!     w.output_at(Micros(i * 100_000), ChannelId(0), Stream::Stdout,
//!                 format!("\x1b[H\x1b[2Jframe {i}\r\n").as_bytes())?;
//! }
//! w.finish("done")?;
//!
//! let key = SigningKey::generate()?; // the encoder's index key
//! let IndexOutcome::Added(summary) = index_recording(&path, &IndexOptions::new(key.clone()))? else {
//!     panic!("a new recording has no index yet");
//! };
//! assert!(summary.keyframes > 0);
//! let mut r = Reader::open(&path, ReadOptions::default())?;
//! assert_eq!(r.seek_index().unwrap().signer, key.verifying_key());
//! assert_eq!(r.screen_at(Micros(150_000_000))?.terminal(ChannelId(0)).unwrap().lines()[0], "frame 1500");
//! // A second time: left as it is.
//! assert!(matches!(index_recording(&path, &IndexOptions::new(key))?, IndexOutcome::Present(_)));
//! # Ok(()) }
//! # demo().unwrap();
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use psm_recording::index::{IndexOptions, IndexSummary, add_seek_index};
use psm_recording::{ReadOptions, Reader, RecordingError, SeekIndexInfo};

use crate::error::PipelineError;
use crate::manifest::sync_dir;

/// What [`index_recording`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexOutcome {
    /// The index was computed and the raw file replaced by the indexed one.
    Added(IndexSummary),
    /// The recording already had a complete seek index: the file was left as it is.
    Present(SeekIndexInfo),
}

/// What [`stage`] found or prepared.
#[derive(Debug)]
#[non_exhaustive]
pub enum Staged {
    /// The recording already has a complete seek index: nothing to do.
    Present(SeekIndexInfo),
    /// The indexed file is written and checked beside the raw one, waiting for
    /// [`StagedIndex::commit`].
    Ready(StagedIndex),
}

/// An indexed copy of a recording, written, fsynced and checked, not yet renamed over the
/// raw file. Dropping it without [`commit`](Self::commit) deletes the copy.
#[derive(Debug)]
pub struct StagedIndex {
    raw: PathBuf,
    temp: Option<PathBuf>,
    summary: IndexSummary,
}

impl StagedIndex {
    /// Where the indexed copy is.
    pub fn temp_path(&self) -> &Path {
        self.temp.as_deref().unwrap_or(Path::new(""))
    }

    /// What the index holds.
    pub fn summary(&self) -> &IndexSummary {
        &self.summary
    }

    /// Renames the indexed copy over the raw file and fsyncs the directory.
    pub fn commit(mut self) -> Result<IndexSummary, PipelineError> {
        let Some(temp) = self.temp.take() else {
            return Ok(self.summary.clone());
        };
        if let Err(e) = std::fs::rename(&temp, &self.raw) {
            let _ = std::fs::remove_file(&temp);
            return Err(PipelineError::local(&self.raw)(e));
        }
        sync_dir(parent(&self.raw))?;
        Ok(self.summary.clone())
    }
}

impl Drop for StagedIndex {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// Gives the recording at `raw` its seek index, signed by `options.key`, unless it has one
/// already: [`stage`], then [`StagedIndex::commit`]. Errors: [`PipelineError::SeekIndex`]
/// when the recording cannot get an index (not intact, encrypted without a key for it; the
/// file is left as it is), [`PipelineError::Local`] when a file could not be written (a
/// full disk: the raw file is left as it is too).
pub fn index_recording(raw: &Path, options: &IndexOptions) -> Result<IndexOutcome, PipelineError> {
    match stage(raw, options)? {
        Staged::Present(info) => Ok(IndexOutcome::Present(info)),
        Staged::Ready(staged) => staged.commit().map(IndexOutcome::Added),
    }
}

/// The first half of [`index_recording`]: checks the recording and writes its indexed copy
/// beside it, without touching the raw file. Deletes the temporaries an earlier, interrupted
/// indexing of the same file left.
pub fn stage(raw: &Path, options: &IndexOptions) -> Result<Staged, PipelineError> {
    let refuse = |reason: String| PipelineError::SeekIndex {
        path: raw.to_owned(),
        reason,
    };
    // Every signer: an index signed by another key is still an index, left as it is.
    let read = ReadOptions {
        identity: options.identity.clone(),
        trusted_signers: Vec::new(),
        full_scan: true,
    };
    let r = Reader::open(raw, read.clone()).map_err(|e| read_error(raw, e))?;
    if let Some(info) = r.seek_index() {
        return Ok(Staged::Present(info));
    }
    if !r.integrity().is_intact() {
        return Err(refuse(format!(
            "only an intact recording gets a seek index, this one is {}",
            r.integrity()
        )));
    }
    if r.is_encrypted()
        && !options
            .identity
            .as_ref()
            .is_some_and(|id| r.recipients().contains(&id.public()))
    {
        return Err(refuse(
            "the recording is encrypted and no key to read it was given".into(),
        ));
    }
    let chunks = r.chunks().len();
    drop(r);
    remove_leftovers(raw)?;

    let temp = temp_path(raw);
    // From here on, dropping `staged` deletes the copy, whatever fails.
    let mut staged = StagedIndex {
        raw: raw.to_owned(),
        temp: Some(temp.clone()),
        summary: IndexSummary {
            keyframes: 0,
            bytes: 0,
            replaced: false,
        },
    };
    std::fs::copy(raw, &temp).map_err(PipelineError::local(&temp))?;
    // Appends to the copy and fsyncs it; an unfinished index a crash left after the footer
    // is cut off first.
    staged.summary = add_seek_index(&temp, options).map_err(|e| match e {
        RecordingError::Io { source, .. } => PipelineError::local(&temp)(source),
        other => refuse(other.to_string()),
    })?;

    // The copy must read as the same intact recording, with the index, before it replaces
    // anything.
    let mut r = Reader::open(&temp, read).map_err(|e| refuse(format!("the indexed copy: {e}")))?;
    let info = r.seek_index();
    if !r.integrity().is_intact()
        || r.chunks().len() != chunks
        || info.as_ref().map(|i| i.signer) != Some(options.key.verifying_key())
    {
        return Err(refuse(format!(
            "the indexed copy does not verify: {} with {} of {chunks} chunks, {}",
            r.integrity(),
            r.chunks().len(),
            r.seek_index_note().unwrap_or("no usable seek index")
        )));
    }
    for i in 0..r.chunks().len() {
        if r.chunks()[i].has_keyframes {
            r.keyframes(i)
                .map_err(|e| refuse(format!("the indexed copy's keyframes: {e}")))?;
        }
    }
    Ok(Staged::Ready(staged))
}

/// Deletes what an interrupted indexing of the recording at `raw` left beside it (the
/// hidden indexed copies); returns how many. An indexing of the same file still running
/// elsewhere then fails its rename, and the raw file is unchanged.
pub fn remove_leftovers(raw: &Path) -> Result<usize, PipelineError> {
    let Some(name) = raw.file_name().and_then(|n| n.to_str()) else {
        return Ok(0);
    };
    let prefix = format!(".{name}.");
    let dir = parent(raw);
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(PipelineError::local(dir)(e)),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        if file.starts_with(&prefix) && file.ends_with(TEMP_SUFFIX) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(PipelineError::local(entry.path())(e)),
            }
        }
    }
    Ok(removed)
}

const TEMP_SUFFIX: &str = ".index.tmp";

/// `.<name>.<token>.index.tmp` beside the raw file: a name no other process uses, so a
/// rename only ever moves this process's own complete copy.
fn temp_path(raw: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = raw
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let token = format!(
        "{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    parent(raw).join(format!(".{name}.{token}{TEMP_SUFFIX}"))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn read_error(raw: &Path, e: RecordingError) -> PipelineError {
    match e {
        RecordingError::Io { source, .. } => PipelineError::local(raw)(source),
        other => PipelineError::SeekIndex {
            path: raw.to_owned(),
            reason: other.to_string(),
        },
    }
}
