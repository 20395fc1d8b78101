//! The RecordingStore conformance suite against every backend: a temporary directory, S3 on
//! moto's server, Azure Blob on Azurite. Each run uses a fresh directory, bucket or container.

#![allow(clippy::unwrap_used)]

use psm_storage::conformance::{self, peers};
use psm_storage::{LocalConfig, StoreConfig};

#[tokio::test]
async fn local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut c = LocalConfig::new(dir.path().join("store"));
    c.tuning = conformance::tuning();
    let store = psm_storage::open(&StoreConfig::Local(c)).unwrap();
    conformance::run_all(store.as_ref(), scratch.path()).await;
    // Bookkeeping stays out of sight: only sidecars are left, under the dot directory.
    let left: Vec<_> = walk(&dir.path().join("store"));
    assert!(left.iter().all(|p| p.contains("/.psm-meta")), "{left:?}");
}

#[tokio::test]
async fn local_directory_with_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut c = LocalConfig::new(dir.path());
    c.prefix = Some("psm/recordings".parse().unwrap());
    c.tuning = conformance::tuning();
    let store = psm_storage::open(&StoreConfig::Local(c)).unwrap();
    conformance::run_all(store.as_ref(), scratch.path()).await;
}

#[tokio::test]
async fn s3_on_moto() {
    let moto = peers::Moto::start();
    moto.create_bucket("conformance");
    let scratch = tempfile::tempdir().unwrap();
    let mut c = moto.config("conformance", conformance::tuning());
    c.prefix = Some("psm".parse().unwrap());
    let store = psm_storage::open(&StoreConfig::S3(c)).unwrap();
    conformance::run_all(store.as_ref(), scratch.path()).await;
}

#[tokio::test]
async fn azure_on_azurite() {
    let azurite = peers::Azurite::start();
    azurite.create_container("conformance");
    let scratch = tempfile::tempdir().unwrap();
    let store = psm_storage::open(&StoreConfig::Azure(
        azurite.config("conformance", conformance::tuning()),
    ))
    .unwrap();
    conformance::run_all(store.as_ref(), scratch.path()).await;
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}
