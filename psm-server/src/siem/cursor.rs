//! Where each sink's position in the audit log is kept across restarts.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;

use super::error::SiemError;

/// Keeps, per sink, the `seq` of the last audit event whose delivery was confirmed.
///
/// ```
/// # async fn demo() -> Result<(), psm_server::siem::SiemError> {
/// use psm_server::siem::{CursorStore, FileCursorStore};
/// let dir = tempfile::tempdir().unwrap();
/// let cursors = FileCursorStore::new(dir.path());
/// assert_eq!(cursors.load("syslog-1").await?, None);
/// cursors.save("syslog-1", 42).await?;
/// assert_eq!(FileCursorStore::new(dir.path()).load("syslog-1").await?, Some(42));
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[async_trait]
pub trait CursorStore: Send + Sync + 'static {
    /// The saved position, if any.
    async fn load(&self, sink: &str) -> Result<Option<i64>, SiemError>;
    /// Saves a position; durable when this returns.
    async fn save(&self, sink: &str, seq: i64) -> Result<(), SiemError>;
}

/// Cursors in memory (tests, or a deployment that accepts re-sending on restart).
#[derive(Debug, Default)]
pub struct MemoryCursorStore(Mutex<HashMap<String, i64>>);

impl MemoryCursorStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl CursorStore for MemoryCursorStore {
    async fn load(&self, sink: &str) -> Result<Option<i64>, SiemError> {
        Ok(self
            .0
            .lock()
            .map_err(|_| poisoned(sink))?
            .get(sink)
            .copied())
    }

    async fn save(&self, sink: &str, seq: i64) -> Result<(), SiemError> {
        self.0
            .lock()
            .map_err(|_| poisoned(sink))?
            .insert(sink.to_owned(), seq);
        Ok(())
    }
}

fn poisoned(sink: &str) -> SiemError {
    SiemError::Cursor {
        sink: sink.to_owned(),
        reason: "the in-memory cursor map is poisoned".into(),
    }
}

/// Cursors as small files, `<dir>/<sink>.cursor`, each replaced atomically (written to a
/// temporary file, synced, renamed, directory synced).
#[derive(Clone, Debug)]
pub struct FileCursorStore {
    dir: PathBuf,
}

impl FileCursorStore {
    /// Cursors under `dir` (created on the first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self, sink: &str) -> Result<PathBuf, SiemError> {
        check_name(sink)?;
        Ok(self.dir.join(format!("{sink}.cursor")))
    }
}

/// Sink names are file names and log fields: 1 to 64 of `[A-Za-z0-9._-]`, not starting
/// with a dot.
pub(crate) fn check_name(sink: &str) -> Result<(), SiemError> {
    let ok = !sink.is_empty()
        && sink.len() <= 64
        && !sink.starts_with('.')
        && sink
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(SiemError::Config(format!(
            "sink name {:?}: use 1 to 64 of A-Z a-z 0-9 . _ - (not starting with a dot)",
            sink.chars().take(80).collect::<String>()
        )))
    }
}

#[async_trait]
impl CursorStore for FileCursorStore {
    async fn load(&self, sink: &str) -> Result<Option<i64>, SiemError> {
        let path = self.path(sink)?;
        let err = |reason: String| SiemError::Cursor {
            sink: sink.to_owned(),
            reason,
        };
        let text = match tokio::fs::read(&path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(format!("reading {}: {e}", path.display()))),
        };
        if text.len() > 64 {
            return Err(err(format!("{} is not a cursor file", path.display())));
        }
        let text = String::from_utf8_lossy(&text);
        text.trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| err(format!("{} does not hold a number", path.display())))
    }

    async fn save(&self, sink: &str, seq: i64) -> Result<(), SiemError> {
        let path = self.path(sink)?;
        let dir = self.dir.clone();
        let sink_name = sink.to_owned();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            std::fs::create_dir_all(&dir)?;
            let tmp = path.with_extension("cursor.tmp");
            {
                let mut f = std::fs::File::create(&tmp)?;
                writeln!(f, "{seq}")?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&dir)?.sync_all()
        })
        .await
        .map_err(|e| SiemError::Cursor {
            sink: sink_name.clone(),
            reason: format!("saving: {e}"),
        })?
        .map_err(|e| SiemError::Cursor {
            sink: sink_name,
            reason: format!("saving under {}: {e}", self.dir.display()),
        })
    }
}
