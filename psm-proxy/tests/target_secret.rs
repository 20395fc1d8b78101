//! Issue 17 L8: a target credential the gateway holds is wiped when dropped and never
//! printed. What is checked here: the types declare wiping (`ZeroizeOnDrop`, a compile-time
//! check that fails on the old types), `Debug` hides every secret field, and the credential
//! the control plane releases arrives intact. What is not (and cannot be, without reading
//! freed memory): that the bytes are gone after the drop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use psm_core::vault::ZeroizeOnDrop;
use psm_proxy::{TargetCredential, TargetSecret};

const SECRET: &str = "target-password-9917";

fn wiped_on_drop<T: ZeroizeOnDrop>(_: &T) {}

#[test]
fn target_secrets_are_wiped_and_never_printed() {
    let password = TargetCredential {
        account: "root".into(),
        secret: TargetSecret::Password(SECRET.into()),
    };
    let key = TargetSecret::PrivateKey {
        key: format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{SECRET}\n"),
        passphrase: Some(SECRET.into()),
    };
    wiped_on_drop(&password.secret);
    wiped_on_drop(&key);
    for text in [
        format!("{password:?}"),
        format!("{password:#?}"),
        format!("{key:?}"),
        format!("{:?}", password.clone()),
    ] {
        assert!(!text.contains(SECRET) && !text.contains("BEGIN"), "{text}");
        assert!(text.contains("***"), "{text}");
    }
    match &password.clone().secret {
        TargetSecret::Password(p) => assert_eq!(p, SECRET, "a clone keeps its own copy"),
        other => panic!("{other:?}"),
    }
}
