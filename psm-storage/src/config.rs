//! Typed configuration of a store: where it is, how to reach it, how to move bytes.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{StorageError, cut};
use crate::key::ObjectKey;
pub use secrecy::{ExposeSecret, SecretString};

/// Which store, and its settings. Built by the assembling binary from its arguments or from
/// the control plane's `PSMStorageMode` (`UNC`, `AWS`, `Azure`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StoreConfig {
    /// A local directory, or a mounted UNC/SMB share.
    Local(LocalConfig),
    /// An S3 or S3-compatible bucket.
    S3(S3Config),
    /// An Azure Blob Storage container.
    Azure(AzureConfig),
}

impl StoreConfig {
    /// The transfer settings.
    pub fn tuning(&self) -> &Tuning {
        match self {
            StoreConfig::Local(c) => &c.tuning,
            StoreConfig::S3(c) => &c.tuning,
            StoreConfig::Azure(c) => &c.tuning,
        }
    }

    /// The transfer settings, to change.
    pub fn tuning_mut(&mut self) -> &mut Tuning {
        match self {
            StoreConfig::Local(c) => &mut c.tuning,
            StoreConfig::S3(c) => &mut c.tuning,
            StoreConfig::Azure(c) => &mut c.tuning,
        }
    }

    /// Parses a location: a path or `file:///path` (local or mounted share),
    /// `s3://bucket[/prefix]`, or `az://account/container[/prefix]`. Credentials, region and
    /// endpoints are set on the returned config afterwards.
    ///
    /// ```
    /// use psm_storage::StoreConfig;
    /// let StoreConfig::S3(s3) = StoreConfig::parse("s3://recordings/psm")? else { panic!() };
    /// assert_eq!((s3.bucket.as_str(), s3.prefix.unwrap().as_str()), ("recordings", "psm"));
    /// assert!(StoreConfig::parse("ftp://x").is_err());
    /// # Ok::<(), psm_storage::StorageError>(())
    /// ```
    pub fn parse(location: &str) -> Result<Self, StorageError> {
        let bad = |reason: &str| {
            StorageError::InvalidConfig(format!("location {:?}: {reason}", cut(location, 200)))
        };
        let split_prefix = |rest: &str| -> Result<(String, Option<ObjectKey>), StorageError> {
            let rest = rest.trim_end_matches('/');
            match rest.split_once('/') {
                Some((head, prefix)) => Ok((head.to_owned(), Some(ObjectKey::new(prefix)?))),
                None => Ok((rest.to_owned(), None)),
            }
        };
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = split_prefix(rest)?;
            if bucket.is_empty() {
                return Err(bad("no bucket"));
            }
            let mut c = S3Config::new(bucket);
            c.prefix = prefix;
            return Ok(StoreConfig::S3(c));
        }
        if let Some(rest) = location.strip_prefix("az://") {
            let (account, rest) = rest
                .split_once('/')
                .ok_or_else(|| bad("expected az://account/container[/prefix]"))?;
            let (container, prefix) = split_prefix(rest)?;
            if account.is_empty() || container.is_empty() {
                return Err(bad("expected az://account/container[/prefix]"));
            }
            let mut c = AzureConfig::new(account, container);
            c.prefix = prefix;
            return Ok(StoreConfig::Azure(c));
        }
        let path = location.strip_prefix("file://").unwrap_or(location);
        if path.is_empty() || location.contains("://") && !location.starts_with("file://") {
            return Err(bad("expected a path, file://, s3:// or az://"));
        }
        Ok(StoreConfig::Local(LocalConfig::new(path)))
    }
}

/// How bytes move: multipart sizes, parallelism, timeouts and retries of the HTTP client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Files at least this large are uploaded in parts.
    pub multipart_threshold: u64,
    /// The size of each part (S3 needs at least 5 MiB; grown automatically so a file never
    /// needs more than 9,000 parts).
    pub part_size: u64,
    /// Parts of one file in flight at once.
    pub part_concurrency: usize,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Timeout to connect.
    pub connect_timeout: Duration,
    /// Retries of one failed request by the HTTP client before the error reaches the caller.
    pub max_retries: usize,
    /// Give up retrying one request after this long.
    pub retry_timeout: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            multipart_threshold: 16 << 20,
            part_size: 8 << 20,
            part_concurrency: 8,
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            max_retries: 5,
            retry_timeout: Duration::from_secs(120),
        }
    }
}

/// A local directory or mounted share. Each object is a file under `root`; its checksum
/// lives in a small sidecar under `root/<prefix>/.psm-meta/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalConfig {
    /// The directory (created if missing). On Windows a UNC path `\\server\share\psm` works
    /// as is; on Linux mount the share (cifs) and give the mount point.
    pub root: PathBuf,
    /// Optional key prefix under the root.
    pub prefix: Option<ObjectKey>,
    /// fsync files and directories before a write returns (on by default: a verified upload
    /// must survive a power cut before the local copy is deleted).
    pub fsync: bool,
    /// Transfer settings.
    pub tuning: Tuning,
}

impl LocalConfig {
    /// A local store at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            prefix: None,
            fsync: true,
            tuning: Tuning::default(),
        }
    }
}

/// An S3 bucket, on AWS or an S3-compatible service (MinIO, Ceph, moto...).
#[derive(Clone, Debug)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// Optional key prefix in the bucket.
    pub prefix: Option<ObjectKey>,
    /// The region (`us-east-1` by default).
    pub region: String,
    /// The endpoint of an S3-compatible service (`http://127.0.0.1:9000`); AWS's when `None`.
    pub endpoint: Option<String>,
    /// Allow plain `http://` endpoints (off by default).
    pub allow_http: bool,
    /// Address buckets as `bucket.host` instead of `host/bucket`.
    pub virtual_hosted_style: bool,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<SecretString>,
    /// Session token of temporary credentials.
    pub session_token: Option<SecretString>,
    /// Send `x-amz-checksum-sha256` with every request, so the service checks each part on
    /// receipt (on by default; turn off for services that refuse the header).
    pub request_checksums: bool,
    /// Transfer settings.
    pub tuning: Tuning,
}

impl S3Config {
    /// A bucket on AWS in `us-east-1`, without credentials yet.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: None,
            region: "us-east-1".into(),
            endpoint: None,
            allow_http: false,
            virtual_hosted_style: false,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            request_checksums: true,
            tuning: Tuning::default(),
        }
    }
}

/// An Azure Blob Storage container.
#[derive(Clone, Debug)]
pub struct AzureConfig {
    /// The storage account.
    pub account: String,
    /// The container.
    pub container: String,
    /// Optional key prefix in the container.
    pub prefix: Option<ObjectKey>,
    /// The account's shared key.
    pub access_key: Option<SecretString>,
    /// The account URL when not `https://<account>.blob.core.windows.net`, e.g. Azurite's
    /// path-style `http://127.0.0.1:10000/devstoreaccount1`.
    pub endpoint: Option<String>,
    /// Allow plain `http://` endpoints (off by default).
    pub allow_http: bool,
    /// Transfer settings.
    pub tuning: Tuning,
}

impl AzureConfig {
    /// A container in `account`, without credentials yet.
    pub fn new(account: impl Into<String>, container: impl Into<String>) -> Self {
        Self {
            account: account.into(),
            container: container.into(),
            prefix: None,
            access_key: None,
            endpoint: None,
            allow_http: false,
            tuning: Tuning::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secrets_never_print() {
        let mut c = S3Config::new("b");
        c.secret_access_key = Some(SecretString::from("hunter2-very-secret"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn parses_locations() {
        assert!(matches!(
            StoreConfig::parse("/srv/psm").unwrap(),
            StoreConfig::Local(_)
        ));
        assert!(matches!(
            StoreConfig::parse("file:///srv/psm").unwrap(),
            StoreConfig::Local(_)
        ));
        let StoreConfig::Azure(a) = StoreConfig::parse("az://acct/cont/p/q").unwrap() else {
            panic!()
        };
        assert_eq!((a.account.as_str(), a.container.as_str()), ("acct", "cont"));
        assert_eq!(a.prefix.unwrap().as_str(), "p/q");
        assert!(StoreConfig::parse("s3://").is_err());
        assert!(StoreConfig::parse("s3://b/../x").is_err());
        assert!(StoreConfig::parse("az://acct").is_err());
        assert!(StoreConfig::parse("gs://b").is_err());
    }
}
