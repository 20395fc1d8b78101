//! Issue 17 L8: GetCredential's answer (the one wire type that carries a target secret) is
//! wiped when dropped, hides its secrets from `Debug`, and hands its strings over to
//! [`psm_core::vault::Secret`]s without another copy. Checked: the type declares wiping
//! (`ZeroizeOnDrop`, a compile-time check the old type fails), `Debug`, the round trip.
//! Not checked (it would take reading freed memory): that the bytes are gone after the drop;
//! the JSON body bytes that carried the answer are the HTTP stack's, not wiped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use psm_client::wire::CredentialResponse;
use psm_core::vault::{Credential, CredentialSecret, ZeroizeOnDrop};

const SECRET: &str = "vaulted-5531-password";

fn wiped_on_drop<T: ZeroizeOnDrop>(_: &T) {}

#[test]
fn the_credential_answer_is_wiped_and_never_printed() {
    let answer = CredentialResponse::from_credential(&Credential::password("root", SECRET), None);
    wiped_on_drop(&answer);
    let text = format!("{answer:?} {answer:#?}");
    assert!(!text.contains(SECRET), "{text}");
    let json = serde_json::to_string(&answer).unwrap();
    assert!(json.contains(SECRET), "the wire carries it to the gateway");
    let back: CredentialResponse = serde_json::from_str(&json).unwrap();
    let credential = back.into_credential().unwrap();
    assert_eq!(credential.username, "root");
    match &credential.secret {
        CredentialSecret::Password(p) => assert_eq!(p.expose_secret(), SECRET),
        other => panic!("{other:?}"),
    }
    let key = CredentialResponse::from_credential(
        &Credential::private_key("deploy", format!("KEY {SECRET}"), Some(SECRET.into())),
        None,
    );
    assert!(!format!("{key:?}").contains(SECRET));
    assert!(matches!(
        key.into_credential().unwrap().secret,
        CredentialSecret::PrivateKey {
            passphrase: Some(_),
            ..
        }
    ));
}
