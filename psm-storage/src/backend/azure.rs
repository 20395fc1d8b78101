//! Azure Blob Storage containers (and Azurite).

use std::sync::Arc;

use object_store::azure::MicrosoftAzureBuilder;

use super::{Flavor, ObjectBackend, client_options, retry_config};
use crate::config::{AzureConfig, ExposeSecret};
use crate::error::StorageError;

pub(super) fn build(c: &AzureConfig) -> Result<ObjectBackend, StorageError> {
    if c.account.is_empty() || c.container.is_empty() {
        return Err(StorageError::InvalidConfig(
            "Azure account and container must not be empty".into(),
        ));
    }
    let mut b = MicrosoftAzureBuilder::new()
        .with_client_options(client_options(&c.tuning, c.allow_http))
        .with_retry(retry_config(&c.tuning))
        .with_account(&c.account)
        .with_container_name(&c.container)
        .with_allow_http(c.allow_http);
    if let Some(key) = &c.access_key {
        b = b.with_access_key(key.expose_secret());
    }
    if let Some(endpoint) = &c.endpoint {
        b = b.with_endpoint(endpoint.clone());
    }
    let store = b.build().map_err(|e| {
        StorageError::InvalidConfig(format!(
            "Azure container {}/{}: {e}",
            c.account, c.container
        ))
    })?;
    let mut name = format!("az://{}/{}", c.account, c.container);
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
        flavor: Flavor::Azure,
        tuning: c.tuning.clone(),
    })
}
