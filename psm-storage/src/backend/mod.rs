//! The backends: one [`ObjectBackend`] over an `object_store` client, built for a local
//! directory, an S3 bucket or an Azure container from a [`StoreConfig`].

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesUnordered, StreamExt, TryStreamExt};
use object_store::path::Path as OsPath;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, GetResult, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload,
};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::checksum::{Checksum, S3Etag, bare_etag};
use crate::config::{StoreConfig, Tuning};
use crate::error::StorageError;
use crate::key::ObjectKey;
use crate::store::{ObjectInfo, Progress, PutReceipt, RecordingStore, Verification, VerifyDepth};

mod azure;
mod local;
mod s3;

/// The metadata name under which an object's BLAKE3 is stored (`x-amz-meta-psmblake3`,
/// `x-ms-meta-psmblake3`; Azure allows only identifier characters).
pub const CHECKSUM_METADATA: &str = "psmblake3";

/// No part is smaller than this (S3's minimum for all but the last part).
const MIN_PART_SIZE: u64 = 5 << 20;
/// Parts per upload are kept under S3's limit of 10,000.
const MAX_PARTS: u64 = 9_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    /// Checksums in sidecar files; verification by reading back (a local read).
    Local,
    /// Checksums as object metadata; verification by the service's ETag (MD5), falling back
    /// to reading back.
    S3,
    /// Checksums as object metadata; verification by reading back.
    Azure,
}

/// Opens the store a configuration names. Nothing is contacted yet: a wrong endpoint or
/// credential shows up on the first call, as an error naming the store.
pub fn open(config: &StoreConfig) -> Result<Arc<dyn RecordingStore>, StorageError> {
    Ok(Arc::new(ObjectBackend::open(config)?))
}

/// A [`RecordingStore`] over any `object_store` client.
#[derive(Debug)]
pub struct ObjectBackend {
    inner: Arc<dyn ObjectStore>,
    prefix: Option<ObjectKey>,
    name: String,
    flavor: Flavor,
    tuning: Tuning,
}

fn to_time(dt: &object_store::ObjectMeta) -> OffsetDateTime {
    let nanos = i128::from(dt.last_modified.timestamp()) * 1_000_000_000
        + i128::from(dt.last_modified.timestamp_subsec_nanos());
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl ObjectBackend {
    /// Builds the backend a configuration names.
    pub fn open(config: &StoreConfig) -> Result<Self, StorageError> {
        match config {
            StoreConfig::Local(c) => local::build(c),
            StoreConfig::S3(c) => s3::build(c),
            StoreConfig::Azure(c) => azure::build(c),
        }
    }

    fn path(&self, key: &ObjectKey) -> OsPath {
        match &self.prefix {
            Some(p) => OsPath::from(format!("{p}/{key}")),
            None => OsPath::from(key.as_str()),
        }
    }

    fn sidecar(&self, key: &ObjectKey) -> OsPath {
        match &self.prefix {
            Some(p) => OsPath::from(format!("{p}/{}/{key}.b3", local::META_DIR)),
            None => OsPath::from(format!("{}/{key}.b3", local::META_DIR)),
        }
    }

    fn relative(&self, path: &OsPath) -> Option<ObjectKey> {
        let full = path.as_ref();
        let rel = match &self.prefix {
            Some(p) => full.strip_prefix(p.as_str())?.strip_prefix('/')?,
            None => full,
        };
        ObjectKey::new(rel).ok()
    }

    fn err(
        &self,
        operation: &'static str,
        key: &ObjectKey,
        e: object_store::Error,
    ) -> StorageError {
        match e {
            object_store::Error::NotFound { .. } if matches!(operation, "get" | "head") => {
                StorageError::NotFound {
                    key: key.to_string(),
                    store: self.name.clone(),
                }
            }
            object_store::Error::PermissionDenied { source, .. }
            | object_store::Error::Unauthenticated { source, .. } => StorageError::Denied {
                store: self.name.clone(),
                operation,
                key: key.to_string(),
                message: source.to_string(),
            },
            source => StorageError::Backend {
                store: self.name.clone(),
                operation,
                key: key.to_string(),
                source: Box::new(source),
            },
        }
    }

    fn mismatch(&self, key: &ObjectKey, reason: String) -> StorageError {
        StorageError::VerificationFailed {
            key: key.to_string(),
            store: self.name.clone(),
            reason,
        }
    }

    fn attributes(&self, checksum: &Checksum) -> Attributes {
        let mut attrs = Attributes::new();
        if self.flavor != Flavor::Local {
            attrs.insert(
                Attribute::Metadata(CHECKSUM_METADATA.into()),
                AttributeValue::from(checksum.to_string()),
            );
        }
        attrs
    }

    fn checksum_from_attributes(
        &self,
        key: &ObjectKey,
        attrs: &Attributes,
    ) -> Result<Option<Checksum>, StorageError> {
        match attrs.get(&Attribute::Metadata(CHECKSUM_METADATA.into())) {
            None => Ok(None),
            Some(v) => v
                .as_ref()
                .parse()
                .map(Some)
                .map_err(|_| StorageError::Malformed {
                    what: format!("{CHECKSUM_METADATA} metadata of {key}"),
                    store: self.name.clone(),
                    reason: "not 64 hex digits".into(),
                }),
        }
    }

    /// The checksum stored for `key`: metadata in the cloud, the sidecar locally.
    async fn stored_checksum(
        &self,
        key: &ObjectKey,
        attrs: &Attributes,
    ) -> Result<Option<Checksum>, StorageError> {
        match self.flavor {
            Flavor::Local => local::read_sidecar(self, key).await,
            Flavor::S3 | Flavor::Azure => self.checksum_from_attributes(key, attrs),
        }
    }

    async fn get_result(
        &self,
        key: &ObjectKey,
        head: bool,
    ) -> Result<Option<GetResult>, StorageError> {
        let op = if head { "head" } else { "get" };
        let options = GetOptions {
            head,
            ..GetOptions::default()
        };
        match self.inner.get_opts(&self.path(key), options).await {
            Ok(r) => Ok(Some(r)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(op, key, e)),
        }
    }

    fn info(
        &self,
        key: &ObjectKey,
        meta: &object_store::ObjectMeta,
        checksum: Option<Checksum>,
    ) -> ObjectInfo {
        ObjectInfo {
            key: key.clone(),
            size: meta.size,
            last_modified: to_time(meta),
            checksum,
            e_tag: meta.e_tag.clone(),
        }
    }

    /// Reads an object back whole: its BLAKE3, its size and its attributes.
    async fn hash_object(
        &self,
        key: &ObjectKey,
    ) -> Result<(Checksum, u64, Attributes), StorageError> {
        let result = self
            .get_result(key, false)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                key: key.to_string(),
                store: self.name.clone(),
            })?;
        let attrs = result.attributes.clone();
        let mut stream = result.into_stream();
        let mut hasher = blake3::Hasher::new();
        let mut len = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.err("read back", key, e))?;
            hasher.update(&chunk);
            len += chunk.len() as u64;
        }
        Ok((
            Checksum::from_bytes(*hasher.finalize().as_bytes()),
            len,
            attrs,
        ))
    }

    async fn verify_metadata(
        &self,
        key: &ObjectKey,
        checksum: &Checksum,
        size: u64,
    ) -> Result<ObjectInfo, StorageError> {
        let info = self
            .head(key)
            .await?
            .ok_or_else(|| self.mismatch(key, "the object is missing after the upload".into()))?;
        if info.size != size {
            return Err(self.mismatch(key, format!("stored size {} != {size} sent", info.size)));
        }
        match info.checksum {
            None => Err(self.mismatch(key, format!("no {CHECKSUM_METADATA} checksum stored"))),
            Some(c) if c != *checksum => {
                Err(self.mismatch(key, format!("stored checksum {c} != {checksum} sent")))
            }
            Some(_) => Ok(info),
        }
    }

    async fn verify_content(
        &self,
        key: &ObjectKey,
        checksum: &Checksum,
        size: u64,
    ) -> Result<(), StorageError> {
        let (actual, len, _) = self.hash_object(key).await?;
        if len != size {
            return Err(self.mismatch(key, format!("read back {len} bytes, {size} were sent")));
        }
        if actual != *checksum {
            return Err(self.mismatch(
                key,
                format!("content read back hashes to {actual}, {checksum} was sent"),
            ));
        }
        Ok(())
    }

    /// After a write: records the checksum where the backend keeps it and proves the stored
    /// object is what was sent.
    async fn finish_put(
        &self,
        key: &ObjectKey,
        size: u64,
        checksum: Checksum,
        expected_etag: String,
        service_etag: Option<String>,
    ) -> Result<PutReceipt, StorageError> {
        if self.flavor == Flavor::Local {
            local::write_sidecar(self, key, &checksum, size).await?;
        }
        self.verify_metadata(key, &checksum, size).await?;
        let by_etag = self.flavor == Flavor::S3
            && service_etag.as_deref().map(bare_etag) == Some(expected_etag.as_str());
        let verified_by = if by_etag {
            Verification::ServiceChecksum
        } else {
            if self.flavor == Flavor::S3 {
                // SSE-KMS and some S3-compatible services do not use MD5 ETags.
                tracing::debug!(key = %key, store = %self.name, etag = ?service_etag,
                    "ETag is not the MD5 of the content; verifying by reading back");
            }
            self.verify_content(key, &checksum, size).await?;
            Verification::ReadBack
        };
        tracing::debug!(key = %key, store = %self.name, size, checksum = %checksum,
            verified_by = ?verified_by, "object stored and verified");
        Ok(PutReceipt {
            key: key.clone(),
            size,
            checksum,
            verified_by,
        })
    }

    async fn put_small(
        &self,
        key: &ObjectKey,
        bytes: Bytes,
        expected: Option<Checksum>,
        origin: Option<&Path>,
    ) -> Result<PutReceipt, StorageError> {
        let checksum = Checksum::of(&bytes);
        if let (Some(e), Some(path)) = (expected, origin)
            && e != checksum
        {
            return Err(StorageError::LocalChanged {
                path: path.to_owned(),
                expected: e.to_string(),
                actual: checksum.to_string(),
            });
        }
        // Only S3 answers with an MD5 ETag to compare; elsewhere MD5 would be work for nothing.
        let etag = if self.flavor == Flavor::S3 {
            S3Etag::single(&bytes)
        } else {
            String::new()
        };
        let size = bytes.len() as u64;
        let options = PutOptions {
            attributes: self.attributes(&checksum),
            ..PutOptions::default()
        };
        let result = self
            .inner
            .put_opts(&self.path(key), PutPayload::from(bytes), options)
            .await
            .map_err(|e| self.err("put", key, e))?;
        self.finish_put(key, size, checksum, etag, result.e_tag)
            .await
    }

    async fn put_multipart(
        &self,
        key: &ObjectKey,
        path: &Path,
        size: u64,
        expected: Option<Checksum>,
        progress: &dyn Progress,
    ) -> Result<PutReceipt, StorageError> {
        let local = |source| StorageError::LocalFile {
            path: path.to_owned(),
            source,
        };
        let checksum = match expected {
            Some(c) => c,
            None => Checksum::of_file(path).await?.0,
        };
        let mut file = tokio::fs::File::open(path).await.map_err(local)?;
        let options = PutMultipartOptions {
            attributes: self.attributes(&checksum),
            ..PutMultipartOptions::default()
        };
        let mut upload = self
            .inner
            .put_multipart_opts(&self.path(key), options)
            .await
            .map_err(|e| self.err("start multipart upload", key, e))?;
        let part_size = self
            .tuning
            .part_size
            .max(size.div_ceil(MAX_PARTS))
            .max(MIN_PART_SIZE);
        let part_size = usize::try_from(part_size).unwrap_or(usize::MAX);
        let concurrency = self.tuning.part_concurrency.max(1);
        let mut hasher = blake3::Hasher::new();
        // Only S3 answers with an MD5 ETag to compare (see put_small).
        let mut etag = (self.flavor == Flavor::S3).then(S3Etag::default);
        let mut sent = 0u64;
        let sent_all: Result<(), StorageError> = async {
            let mut inflight = FuturesUnordered::new();
            loop {
                let part = read_part(&mut file, part_size).await.map_err(local)?;
                if part.is_empty() {
                    break;
                }
                hasher.update(&part);
                if let Some(etag) = etag.as_mut() {
                    etag.add_part(&part);
                }
                let len = part.len() as u64;
                sent += len;
                let fut = upload.put_part(PutPayload::from(part.freeze()));
                inflight.push(async move { fut.await.map(|()| len) });
                while inflight.len() >= concurrency {
                    if let Some(done) = inflight.next().await {
                        progress.advance(done.map_err(|e| self.err("upload part", key, e))?);
                    }
                }
            }
            while let Some(done) = inflight.next().await {
                progress.advance(done.map_err(|e| self.err("upload part", key, e))?);
            }
            let actual = Checksum::from_bytes(*hasher.finalize().as_bytes());
            if actual != checksum || sent == 0 {
                return Err(StorageError::LocalChanged {
                    path: path.to_owned(),
                    expected: checksum.to_string(),
                    actual: actual.to_string(),
                });
            }
            Ok(())
        }
        .await;
        if let Err(e) = sent_all {
            if let Err(abort) = upload.abort().await {
                tracing::debug!(key = %key, error = %abort, "aborting the multipart upload failed");
            }
            return Err(e);
        }
        let result = upload
            .complete()
            .await
            .map_err(|e| self.err("complete multipart upload", key, e))?;
        let etag = etag.map(|e| e.multipart()).unwrap_or_default();
        self.finish_put(key, sent, checksum, etag, result.e_tag)
            .await
    }
}

/// Reads up to `max` bytes (less only at the end of the file).
async fn read_part(file: &mut tokio::fs::File, max: usize) -> std::io::Result<BytesMut> {
    let mut buf = BytesMut::zeroed(max);
    let mut filled = 0;
    while filled < max {
        let n = file.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
}

fn download_temp(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".psm-download");
    path.with_file_name(name)
}

#[async_trait]
impl RecordingStore for ObjectBackend {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn put_file(
        &self,
        key: &ObjectKey,
        path: &Path,
        expected: Option<Checksum>,
        progress: &dyn Progress,
    ) -> Result<PutReceipt, StorageError> {
        let local = |source| StorageError::LocalFile {
            path: path.to_owned(),
            source,
        };
        let size = tokio::fs::metadata(path).await.map_err(local)?.len();
        if size < self.tuning.multipart_threshold {
            let file = tokio::fs::File::open(path).await.map_err(local)?;
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            // Bounded by the threshold: a file that grew since is caught by the checksum.
            file.take(self.tuning.multipart_threshold)
                .read_to_end(&mut bytes)
                .await
                .map_err(local)?;
            let len = bytes.len() as u64;
            let receipt = self
                .put_small(key, Bytes::from(bytes), expected, Some(path))
                .await?;
            progress.advance(len);
            return Ok(receipt);
        }
        self.put_multipart(key, path, size, expected, progress)
            .await
    }

    async fn put_bytes(&self, key: &ObjectKey, bytes: Bytes) -> Result<PutReceipt, StorageError> {
        self.put_small(key, bytes, None, None).await
    }

    async fn get(&self, key: &ObjectKey, limit: u64) -> Result<Bytes, StorageError> {
        let result = self
            .get_result(key, false)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                key: key.to_string(),
                store: self.name.clone(),
            })?;
        if result.meta.size > limit {
            return Err(StorageError::TooLarge {
                key: key.to_string(),
                store: self.name.clone(),
                size: result.meta.size,
                limit,
            });
        }
        let bytes = result.bytes().await.map_err(|e| self.err("get", key, e))?;
        if bytes.len() as u64 > limit {
            return Err(StorageError::TooLarge {
                key: key.to_string(),
                store: self.name.clone(),
                size: bytes.len() as u64,
                limit,
            });
        }
        Ok(bytes)
    }

    async fn get_range(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes, StorageError> {
        self.inner
            .get_range(&self.path(key), range)
            .await
            .map_err(|e| self.err("get", key, e))
    }

    async fn download(
        &self,
        key: &ObjectKey,
        path: &Path,
        progress: &dyn Progress,
    ) -> Result<ObjectInfo, StorageError> {
        let result = self
            .get_result(key, false)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                key: key.to_string(),
                store: self.name.clone(),
            })?;
        let stored = self.stored_checksum(key, &result.attributes).await?;
        let info = self.info(key, &result.meta, stored);
        let temp = download_temp(path);
        let local = |source| StorageError::LocalFile {
            path: temp.clone(),
            source,
        };
        let mut file = tokio::fs::File::create(&temp).await.map_err(local)?;
        let mut hasher = blake3::Hasher::new();
        let mut stream = result.into_stream();
        let copied: Result<(), StorageError> = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.err("get", key, e))?;
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(local)?;
                progress.advance(chunk.len() as u64);
            }
            file.sync_all().await.map_err(local)?;
            let actual = Checksum::from_bytes(*hasher.finalize().as_bytes());
            if let Some(expected) = stored
                && expected != actual
            {
                return Err(self.mismatch(
                    key,
                    format!("downloaded content hashes to {actual}, stored checksum is {expected}"),
                ));
            }
            Ok(())
        }
        .await;
        drop(file);
        if let Err(e) = copied {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(e);
        }
        tokio::fs::rename(&temp, path)
            .await
            .map_err(|source| StorageError::LocalFile {
                path: path.to_owned(),
                source,
            })?;
        Ok(info)
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, StorageError> {
        let Some(result) = self.get_result(key, true).await? else {
            return Ok(None);
        };
        let checksum = self.stored_checksum(key, &result.attributes).await?;
        Ok(Some(self.info(key, &result.meta, checksum)))
    }

    async fn list(&self, prefix: Option<&ObjectKey>) -> Result<Vec<ObjectInfo>, StorageError> {
        let under = match (&self.prefix, prefix) {
            (_, Some(p)) => Some(self.path(p)),
            (Some(root), None) => Some(OsPath::from(root.as_str())),
            (None, None) => None,
        };
        let label = prefix
            .cloned()
            .or_else(|| self.prefix.clone())
            .unwrap_or_else(|| ObjectKey::new("all").unwrap_or_else(|_| unreachable!()));
        let metas: Vec<object_store::ObjectMeta> = self
            .inner
            .list(under.as_ref())
            .try_collect()
            .await
            .map_err(|e| self.err("list", &label, e))?;
        let mut out: Vec<ObjectInfo> = metas
            .iter()
            .filter_map(|m| {
                let key = self.relative(&m.location)?;
                // A prefix match by the service is textual: keep only whole segments.
                if prefix.is_some_and(|p| !key.starts_with(p)) {
                    return None;
                }
                Some(self.info(&key, m, None))
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        match self.inner.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.err("delete", key, e)),
        }
        if self.flavor == Flavor::Local {
            match self.inner.delete(&self.sidecar(key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.err("delete", key, e)),
            }
        }
        Ok(())
    }

    async fn verify(
        &self,
        key: &ObjectKey,
        checksum: &Checksum,
        size: u64,
        depth: VerifyDepth,
    ) -> Result<(), StorageError> {
        self.verify_metadata(key, checksum, size).await?;
        if depth == VerifyDepth::Content {
            self.verify_content(key, checksum, size).await?;
        }
        Ok(())
    }
}

/// The HTTP client settings shared by the cloud backends.
fn client_options(tuning: &Tuning, allow_http: bool) -> object_store::ClientOptions {
    object_store::ClientOptions::new()
        .with_timeout(tuning.request_timeout)
        .with_connect_timeout(tuning.connect_timeout)
        .with_allow_http(allow_http)
}

fn retry_config(tuning: &Tuning) -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: tuning.max_retries,
        retry_timeout: tuning.retry_timeout,
        ..object_store::RetryConfig::default()
    }
}
