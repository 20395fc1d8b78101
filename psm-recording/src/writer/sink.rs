//! Where a writer's bytes go.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

/// Append-only destination of a recording. Implemented for [`std::fs::File`] and
/// [`MemorySink`]; implement it to write elsewhere (the writer calls it from a blocking
/// thread, never from an async task).
pub trait RecordingSink: Send + 'static {
    /// Appends all of `bytes`.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far durable (`fdatasync` for files).
    fn sync(&mut self) -> io::Result<()>;
}

impl RecordingSink for std::fs::File {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}

/// An in-memory sink whose bytes can be read while the writer runs (for tests, and for
/// embedding where the caller ships bytes itself).
#[derive(Clone, Debug, Default)]
pub struct MemorySink(Arc<Mutex<Vec<u8>>>);

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the bytes written so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

impl RecordingSink for MemorySink {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("memory sink poisoned"))?
            .extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}
