//! RegisterSigner (docs/threat-model.md M12): a gateway registers the key it signs recordings
//! with, an encoder the key it signs sets with, in the control plane's registry; neither can
//! register the other's kind, a key that is not one is refused, and every new key is an
//! audit row first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, Harness};
use psm_client::wire::{RegisterSignerRequest, SignerKind};
use psm_core::ProcessInstance;
use psm_core::store::AuditQuery;
use psm_recording::SigningKey;
use psm_recording::layout::LocalLayout;
use psm_server::{Role, ServerConfig};

fn status(e: &psm_client::ClientError) -> Option<u16> {
    match e {
        psm_client::ClientError::Api { status, .. } => Some(*status),
        _ => None,
    }
}

fn request(name: &str, kind: SignerKind, key: &str) -> RegisterSignerRequest {
    RegisterSignerRequest {
        process_instance: ProcessInstance::new(name).unwrap(),
        kind,
        key: key.to_owned(),
    }
}

#[tokio::test]
async fn gateways_and_encoders_register_their_own_kind_of_key() {
    let data = tempfile::tempdir().unwrap();
    let h = Harness::start_with(
        Backend::Sqlite,
        ServerConfig {
            signers_data_dir: Some(data.path().to_owned()),
            ..ServerConfig::default()
        },
    )
    .await;
    let layout = LocalLayout::new(data.path());
    let gw_key = SigningKey::generate().unwrap().verifying_key();
    let enc_key = SigningKey::generate().unwrap().verifying_key();

    let gateway = h.client(Role::Gateway);
    gateway
        .register_signer(&request("gw-a", SignerKind::Gateway, &gw_key.to_string()))
        .await
        .unwrap();
    // Again: nothing changes, nothing more is audited.
    gateway
        .register_signer(&request("gw-a", SignerKind::Gateway, &gw_key.to_string()))
        .await
        .unwrap();
    let encoder = h.client(Role::Encoder);
    encoder
        .register_signer(&request("enc-a", SignerKind::Encoder, &enc_key.to_string()))
        .await
        .unwrap();
    assert_eq!(
        layout.gateway_signers().entries(),
        vec![("gw-a".to_owned(), gw_key)]
    );
    assert_eq!(
        layout.encoder_signers().entries(),
        vec![("enc-a".to_owned(), enc_key)]
    );

    // A gateway's key cannot make a key trusted for sets, nor an encoder's for recordings,
    // nor an uploader's for either.
    for (client, kind) in [
        (&gateway, SignerKind::Encoder),
        (&encoder, SignerKind::Gateway),
        (&h.client(Role::Uploader), SignerKind::Gateway),
    ] {
        let e = client
            .register_signer(&request("x", kind, &gw_key.to_string()))
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(403), "{e}");
    }
    // Not a key.
    let e = gateway
        .register_signer(&request(
            "gw-a",
            SignerKind::Gateway,
            "psmr-signing-public:00",
        ))
        .await
        .unwrap_err();
    assert_eq!(status(&e), Some(400), "{e}");
    // A name the registry cannot hold as a file (a process instance may be any printable
    // ASCII): refused as bad input, nothing written.
    for name in [".hidden", "a/b", "..\\x"] {
        let e = gateway
            .register_signer(&request(name, SignerKind::Gateway, &gw_key.to_string()))
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(400), "{name}: {e}");
    }
    assert_eq!(layout.gateway_signers().keys(), vec![gw_key]);

    let rows = h
        .engine
        .store()
        .audit_events(&AuditQuery::default())
        .await
        .unwrap();
    let registered: Vec<_> = rows
        .iter()
        .filter(|r| r.record.detail.starts_with("signer registered"))
        .map(|r| r.record.detail.clone())
        .collect();
    assert_eq!(
        registered,
        [
            format!("signer registered: gateway gw-a {gw_key}"),
            format!("signer registered: encoder enc-a {enc_key}"),
        ]
    );
    h.stop().await;
}
