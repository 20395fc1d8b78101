//! S3 and S3-compatible buckets.

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;

use super::{Flavor, ObjectBackend, client_options, retry_config};
use crate::config::{ExposeSecret, S3Config};
use crate::error::StorageError;

pub(super) fn build(c: &S3Config) -> Result<ObjectBackend, StorageError> {
    if c.bucket.is_empty() {
        return Err(StorageError::InvalidConfig(
            "S3 bucket name is empty".into(),
        ));
    }
    let mut b = AmazonS3Builder::new()
        .with_client_options(client_options(&c.tuning, c.allow_http))
        .with_retry(retry_config(&c.tuning))
        .with_bucket_name(&c.bucket)
        .with_region(&c.region)
        .with_allow_http(c.allow_http)
        .with_virtual_hosted_style_request(c.virtual_hosted_style);
    if let Some(endpoint) = &c.endpoint {
        b = b.with_endpoint(endpoint);
    }
    if let Some(id) = &c.access_key_id {
        b = b.with_access_key_id(id);
    }
    if let Some(secret) = &c.secret_access_key {
        b = b.with_secret_access_key(secret.expose_secret());
    }
    if let Some(token) = &c.session_token {
        b = b.with_token(token.expose_secret());
    }
    if c.request_checksums {
        b = b.with_checksum_algorithm(object_store::aws::Checksum::SHA256);
    }
    let store = b
        .build()
        .map_err(|e| StorageError::InvalidConfig(format!("S3 bucket {}: {e}", c.bucket)))?;
    let mut name = format!("s3://{}", c.bucket);
    if let Some(p) = &c.prefix {
        name = format!("{name}/{p}");
    }
    if let Some(endpoint) = &c.endpoint {
        name = format!("{name} at {endpoint}");
    }
    Ok(ObjectBackend {
        inner: Arc::new(store),
        prefix: c.prefix.clone(),
        name,
        flavor: Flavor::S3,
        tuning: c.tuning.clone(),
    })
}
