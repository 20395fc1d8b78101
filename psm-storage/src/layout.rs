//! Where a session's recording set lives in a store: `sessions/<session-id>/`, closed by a
//! `manifest.json` written last.

use serde::Deserialize;

use crate::error::StorageError;
use crate::key::ObjectKey;

/// The top-level prefix of recording sets.
pub const SESSIONS_PREFIX: &str = "sessions";

/// The object that closes a recording set: written after every other object of the set was
/// verified, deleted after all of them.
pub const MANIFEST_NAME: &str = "manifest.json";

/// Largest manifest read back (retention, replay).
pub const MAX_MANIFEST_LEN: u64 = 4 << 20;

/// `sessions/<session>`: the prefix of one session's recording set.
///
/// ```
/// let p = psm_storage::layout::session_prefix("123e4567-e89b-12d3-a456-426614174000")?;
/// assert_eq!(p.as_str(), "sessions/123e4567-e89b-12d3-a456-426614174000");
/// # Ok::<(), psm_storage::StorageError>(())
/// ```
pub fn session_prefix(session: &str) -> Result<ObjectKey, StorageError> {
    ObjectKey::new(format!("{SESSIONS_PREFIX}/{session}"))
}

/// `sessions/<session>/manifest.json`.
pub fn manifest_key(session: &str) -> Result<ObjectKey, StorageError> {
    session_prefix(session)?.join(MANIFEST_NAME)
}

/// The session a key belongs to, if it lies under `sessions/<session>/`.
pub fn session_of(key: &ObjectKey) -> Option<&str> {
    let mut parts = key.as_str().split('/');
    (parts.next() == Some(SESSIONS_PREFIX)).then_some(())?;
    let session = parts.next()?;
    parts.next()?;
    Some(session)
}

/// The fields of a manifest storage itself reads (retention); the writer (psm-pipeline) puts
/// many more, which are ignored here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ManifestSummary {
    /// The target the session reached (per-target retention).
    #[serde(default)]
    pub target: Option<String>,
}
