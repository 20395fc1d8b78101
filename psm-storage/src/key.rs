//! Object keys: the names recordings are stored under, checked before they reach a backend.

use std::fmt;

use crate::error::{StorageError, cut};

/// Longest key, in bytes (S3's limit is 1024 including the store's prefix).
pub const MAX_KEY_LEN: usize = 512;

/// Longest segment between slashes, in bytes.
pub const MAX_SEGMENT_LEN: usize = 128;

/// The name of one stored object, relative to the store's prefix: segments of ASCII letters,
/// digits, `.`, `_` and `-` separated by `/`, none empty and none starting with a dot.
///
/// The same key is a valid S3 key, Azure blob name and file path on Linux and Windows (SMB), and
/// names beginning with a dot stay free for a backend's own bookkeeping.
///
/// ```
/// use psm_storage::ObjectKey;
/// let key = ObjectKey::new("sessions/123e4567-e89b-12d3-a456-426614174000/recording.psmr")?;
/// assert_eq!(key.file_name(), "recording.psmr");
/// assert!(ObjectKey::new("../etc/passwd").is_err());
/// # Ok::<(), psm_storage::StorageError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

fn invalid(key: &str, reason: &'static str) -> StorageError {
    StorageError::InvalidKey {
        key: cut(key, 200),
        reason,
    }
}

pub(crate) fn check_segments(key: &str) -> Result<(), StorageError> {
    if key.is_empty() {
        return Err(invalid(key, "empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(invalid(key, "longer than 512 bytes"));
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return Err(invalid(
                key,
                "empty segment (leading, trailing or double slash)",
            ));
        }
        if segment.len() > MAX_SEGMENT_LEN {
            return Err(invalid(key, "a segment is longer than 128 bytes"));
        }
        if segment.starts_with('.') {
            return Err(invalid(key, "a segment starts with a dot"));
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(invalid(
                key,
                "only ASCII letters, digits, '.', '_', '-' and '/' are allowed",
            ));
        }
    }
    Ok(())
}

impl ObjectKey {
    /// Checks and wraps a key.
    pub fn new(key: impl Into<String>) -> Result<Self, StorageError> {
        let key = key.into();
        check_segments(&key)?;
        Ok(Self(key))
    }

    /// `self/child`.
    pub fn join(&self, child: &str) -> Result<Self, StorageError> {
        Self::new(format!("{}/{child}", self.0))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// Whether this key lies under `prefix` (segment-wise: `a/bc` is not under `a/b`).
    pub fn starts_with(&self, prefix: &ObjectKey) -> bool {
        self.0
            .strip_prefix(prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ObjectKey {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refuses_traversal_and_oddities() {
        for bad in [
            "", "/a", "a/", "a//b", "..", "a/../b", ".hidden", "a/.x", "a b", "a\\b", "ä", "a\0",
        ] {
            assert!(ObjectKey::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(ObjectKey::new("x".repeat(MAX_SEGMENT_LEN + 1)).is_err());
    }

    #[test]
    fn starts_with_is_segment_wise() {
        let k = ObjectKey::new("a/bc/d").unwrap();
        assert!(k.starts_with(&ObjectKey::new("a/bc").unwrap()));
        assert!(k.starts_with(&ObjectKey::new("a").unwrap()));
        assert!(!k.starts_with(&ObjectKey::new("a/b").unwrap()));
    }

    proptest! {
        #[test]
        fn any_accepted_key_is_a_safe_relative_path(s in "\\PC{0,80}") {
            if let Ok(k) = ObjectKey::new(s.clone()) {
                let path = std::path::Path::new(k.as_str());
                prop_assert!(path.is_relative());
                prop_assert!(path.components().all(|c| matches!(c, std::path::Component::Normal(_))));
            }
        }
    }
}
