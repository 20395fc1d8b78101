//! Content checksums: BLAKE3 of every stored object, and the MD5-based ETag S3 computes.

use std::fmt;
use std::path::Path;

use md5::{Digest, Md5};
use tokio::io::AsyncReadExt;

use crate::error::{StorageError, cut};

/// The BLAKE3 hash of an object's whole content, stored beside it as metadata
/// (`psmblake3`) and compared after every upload.
///
/// ```
/// use psm_storage::Checksum;
/// let c = Checksum::of(b"hello");
/// assert_eq!(c.to_string().len(), 64);
/// assert_eq!(c.to_string().parse::<Checksum>()?, c);
/// # Ok::<(), psm_storage::StorageError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checksum([u8; 32]);

impl Checksum {
    /// The checksum of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// Wraps a raw BLAKE3 digest.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Hashes a local file, reading it in 1 MiB pieces.
    pub async fn of_file(path: &Path) -> Result<(Self, u64), StorageError> {
        let local = |source| StorageError::LocalFile {
            path: path.to_owned(),
            source,
        };
        let mut file = tokio::fs::File::open(path).await.map_err(local)?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut len = 0u64;
        loop {
            let n = file.read(&mut buf).await.map_err(local)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            len += n as u64;
        }
        Ok((Self(*hasher.finalize().as_bytes()), len))
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum(blake3:{self})")
    }
}

impl std::str::FromStr for Checksum {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || StorageError::Malformed {
            what: "checksum".into(),
            store: String::new(),
            reason: format!("{:?} is not 64 hex digits", cut(s, 80)),
        };
        if s.len() != 64 {
            return Err(malformed());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| malformed())?;
        Ok(Self(out))
    }
}

impl serde::Serialize for Checksum {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Checksum {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Computes the ETag S3 gives an object from the parts it was uploaded in: the hex MD5 of the
/// content for a single PUT, `hex(MD5(MD5(part 1) ‖ … ‖ MD5(part n)))-n` for a multipart upload.
/// A match with the service's ETag proves the service stored exactly the bytes sent.
#[derive(Clone, Debug, Default)]
pub(crate) struct S3Etag {
    part_digests: Vec<u8>,
    parts: usize,
}

impl S3Etag {
    pub(crate) fn add_part(&mut self, bytes: &[u8]) {
        self.part_digests.extend_from_slice(&Md5::digest(bytes));
        self.parts += 1;
    }

    pub(crate) fn single(bytes: &[u8]) -> String {
        hex::encode(Md5::digest(bytes))
    }

    pub(crate) fn multipart(&self) -> String {
        format!(
            "{}-{}",
            hex::encode(Md5::digest(&self.part_digests)),
            self.parts
        )
    }
}

/// Strips the quotes and weak marker services put around ETags.
pub(crate) fn bare_etag(e: &str) -> &str {
    e.trim().trim_start_matches("W/").trim_matches('"')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parse_refuses_garbage() {
        assert!("zz".parse::<Checksum>().is_err());
        assert!("g".repeat(64).parse::<Checksum>().is_err());
        assert!("ab".repeat(33).parse::<Checksum>().is_err());
    }

    #[test]
    fn etag_of_known_content() {
        // MD5("") and the multipart form of two empty parts.
        assert_eq!(S3Etag::single(b""), "d41d8cd98f00b204e9800998ecf8427e");
        let mut e = S3Etag::default();
        e.add_part(b"a");
        e.add_part(b"b");
        assert!(e.multipart().ends_with("-2"));
        assert_eq!(bare_etag("\"abc\""), "abc");
    }
}
