//! Wrong credentials, a wrong bucket or container, an unreachable endpoint: clear errors that
//! name the store and the object, never the secret, and classified for retrying.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};

use bytes::Bytes;
use psm_storage::conformance::{self, peers};
use psm_storage::{NoProgress, ObjectKey, SecretString, StorageError, StoreConfig, Verification};

fn key() -> ObjectKey {
    ObjectKey::new("sessions/s1/recording.psmr").unwrap()
}

#[tokio::test]
async fn s3_wrong_bucket_names_it() {
    let moto = peers::Moto::start();
    let store = psm_storage::open(&StoreConfig::S3(
        moto.config("no-such-bucket", conformance::tuning()),
    ))
    .unwrap();
    let err = store
        .put_bytes(&key(), Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("s3://no-such-bucket"), "{text}");
    assert!(text.contains("NoSuchBucket"), "{text}");
    assert!(text.contains("sessions/s1/recording.psmr"), "{text}");
}

#[tokio::test]
async fn s3_wrong_credentials_are_denied_without_leaking_the_secret() {
    // moto checks signatures against its IAM users once INITIAL_NO_AUTH_ACTION_COUNT runs out.
    let port = peers::free_port();
    let mut child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server: install with `pip install 'moto[server]'`");
    // Wait for it, then spend the one free action creating the bucket.
    let start = std::time::Instant::now();
    loop {
        if peers::http(port, "PUT", "/authbucket", &[]).is_ok_and(|(c, _)| c == 200) {
            break;
        }
        assert!(start.elapsed().as_secs() < 60, "moto did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut c = psm_storage::S3Config::new("authbucket");
    c.endpoint = Some(format!("http://127.0.0.1:{port}"));
    c.allow_http = true;
    c.access_key_id = Some("AKIAWRONGWRONGWRONG1".into());
    c.secret_access_key = Some(SecretString::from("s3cr3t-that-must-not-leak"));
    c.tuning = conformance::tuning();
    let store = psm_storage::open(&StoreConfig::S3(c.clone())).unwrap();
    let err = store
        .put_bytes(&key(), Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    let _ = child.kill();
    let _ = child.wait();
    assert!(matches!(err, StorageError::Denied { .. }), "{err:?}");
    assert!(!err.is_transient());
    for shown in [
        err.to_string(),
        format!("{err:?}"),
        format!("{c:?}"),
        store.describe(),
    ] {
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
}

#[tokio::test]
async fn azure_wrong_key_and_missing_container() {
    let azurite = peers::Azurite::start();
    azurite.create_container("real");
    let mut c = azurite.config("real", conformance::tuning());
    // A valid base64 key, but not the account's.
    c.access_key = Some(SecretString::from(
        "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5IQ==",
    ));
    let store = psm_storage::open(&StoreConfig::Azure(c)).unwrap();
    let err = store
        .put_bytes(&key(), Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Denied { .. }), "{err:?}");
    assert!(!format!("{err:?}").contains("d3Jvbmc"), "{err:?}");

    let store = psm_storage::open(&StoreConfig::Azure(
        azurite.config("missing", conformance::tuning()),
    ))
    .unwrap();
    let err = store
        .put_bytes(&key(), Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("az://devstoreaccount1/missing"), "{text}");
    assert!(text.contains("ContainerNotFound"), "{text}");
}

#[tokio::test]
async fn unreachable_endpoint_fails_in_bounded_time_and_is_transient() {
    let port = peers::free_port(); // nothing listens there
    let mut c = psm_storage::S3Config::new("b");
    c.endpoint = Some(format!("http://127.0.0.1:{port}"));
    c.allow_http = true;
    c.access_key_id = Some("test".into());
    c.secret_access_key = Some(SecretString::from("test"));
    c.tuning = conformance::tuning();
    c.tuning.max_retries = 1;
    let store = psm_storage::open(&StoreConfig::S3(c)).unwrap();
    let err = store
        .put_bytes(&key(), Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn s3_uploads_are_verified_by_the_service_etag() {
    let moto = peers::Moto::start();
    moto.create_bucket("etag");
    let store =
        psm_storage::open(&StoreConfig::S3(moto.config("etag", conformance::tuning()))).unwrap();
    let small = store
        .put_bytes(&key(), Bytes::from_static(b"small"))
        .await
        .unwrap();
    assert_eq!(small.verified_by, Verification::ServiceChecksum);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    std::fs::write(&path, conformance::content(13 << 20, 9)).unwrap();
    let big = store
        .put_file(&key(), &path, None, &NoProgress)
        .await
        .unwrap();
    assert_eq!(big.verified_by, Verification::ServiceChecksum);
}
