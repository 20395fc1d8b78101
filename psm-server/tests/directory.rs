//! The user directory over HTTP: psm-client's HttpDirectory against a real server, so a
//! remote gateway authenticates users exactly as an in-process one, while password hashes
//! and TOTP secrets never leave the control plane (GetUser and ListUsers say only whether
//! a user has them; VerifyUser checks them there); reads for gateways, writes for admins
//! only; and checkouts honour the directory's role grants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Backend, Harness};
use psm_client::HttpDirectory;
use psm_core::directory::{
    AuthorizedKey, DirectoryAdmin, DirectoryLookup, Factor, NewUser, PasswordHash, TotpSecret,
    UserUpdate,
};
use psm_core::store::AuditQuery;
use psm_core::vault::{
    CheckoutRequest, Credential, DirectoryPolicy, Keyring, MasterKey, Secret, Target, Vault,
    VaultConfig,
};
use psm_core::{AuditAction, CoreError, Protocol};
use psm_server::Role;
use reqwest::Method;

const P: &str = "/api/services/v1/secureaccessgateway";

fn pw(s: &str) -> Secret<String> {
    Secret::new(s.to_owned())
}

/// The server's clock (the harness' manual clock), in Unix seconds: VerifyUser judges TOTP
/// codes by it.
fn server_now(h: &Harness) -> u64 {
    u64::try_from(h.engine.now().as_micros() / 1_000_000).unwrap()
}

/// A six-digit code that is not `totp`'s at `t` nor one step either side.
fn wrong_code(totp: &TotpSecret, t: u64) -> String {
    let near: Vec<String> = [t - 30, t, t + 30]
        .iter()
        .map(|&at| totp.code_at(at).unwrap())
        .collect();
    (0..4)
        .map(|i| format!("{:06}", i * 111_111))
        .find(|c| !near.contains(c))
        .unwrap()
}

async fn refusals(h: &Harness) -> Vec<String> {
    h.engine
        .store()
        .audit_events(&AuditQuery::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.record.action == AuditAction::Refused)
        .map(|e| format!("{} {}", e.record.actor, e.record.detail))
        .collect()
}

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop";

async fn run(backend: Backend) {
    let h = Harness::start(backend).await;
    let admin = HttpDirectory::new(h.client(Role::Admin));
    let gateway = HttpDirectory::new(h.client(Role::Gateway));
    let totp = TotpSecret::generate();
    let hash = PasswordHash::hash("alice-pw").unwrap();
    admin
        .create_user(&NewUser {
            name: "alice".parse().unwrap(),
            password: Some(hash.clone()),
            keys: vec![AuthorizedKey::parse(KEY).unwrap()],
            totp: Some(totp.clone()),
            roles: vec!["ops".into()],
        })
        .await
        .unwrap();
    assert!(matches!(
        admin
            .create_user(&NewUser {
                name: "alice".parse().unwrap(),
                ..NewUser::default()
            })
            .await,
        Err(CoreError::UserExists(_))
    ));
    admin.grant("ops", "web-01").await.unwrap();

    // The gateway reads the user without its secrets, and authenticates through the
    // directory as it would in-process.
    let u = gateway.user("alice").await.unwrap().unwrap();
    assert_eq!(u.password, Factor::Remote);
    assert_eq!(u.totp, Factor::Remote);
    assert!(u.has_password() && u.needs_totp());
    assert!(
        !u.verify_password("alice-pw"),
        "the record holds no hash to check against"
    );
    assert!(u.has_key(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    ));
    let now = server_now(&h);
    let code = totp.code_at(now).unwrap();
    assert!(
        !u.verify_totp(&code, now),
        "a remote second factor is never waved through locally"
    );
    assert!(
        gateway
            .verify_password("alice", &pw("alice-pw"))
            .await
            .unwrap()
    );
    assert!(
        !gateway
            .verify_password("alice", &pw("wrong"))
            .await
            .unwrap()
    );
    assert!(!gateway.verify_password("alice", &pw("")).await.unwrap());
    assert!(
        !gateway
            .verify_password("nobody", &pw("alice-pw"))
            .await
            .unwrap()
    );
    assert!(
        !gateway
            .verify_password("bad+name", &pw("alice-pw"))
            .await
            .unwrap()
    );
    assert!(gateway.verify_totp("alice", &code, now).await.unwrap());
    assert!(
        !gateway.verify_totp("alice", &code, now).await.unwrap(),
        "a code is accepted once"
    );
    h.clock.advance(Duration::from_secs(30));
    let code = totp.code_at(now + 30).unwrap();
    assert!(
        gateway.verify_totp("alice", &code, 0).await.unwrap(),
        "the control plane's clock decides, not the caller's"
    );
    // The next answers use the step after.
    h.clock.advance(Duration::from_secs(30));
    let now = now + 60;
    let code = totp.code_at(now).unwrap();
    assert!(
        !gateway
            .verify_totp("alice", &wrong_code(&totp, now), now)
            .await
            .unwrap()
    );
    assert!(!gateway.verify_totp("alice", "abcdef", now).await.unwrap());
    assert!(!gateway.verify_totp("nobody", &code, now).await.unwrap());
    assert!(gateway.may_reach(&u, "web-01").await.unwrap());
    assert!(!gateway.may_reach(&u, "db-01").await.unwrap());
    assert_eq!(
        gateway.targets_of_roles(&["ops".into()]).await.unwrap(),
        vec!["web-01"]
    );
    assert!(gateway.user("nobody").await.unwrap().is_none());

    // On the wire: neither the PHC string nor the base32 seed, in any answer.
    let phc = hash.as_phc();
    let seed = totp.as_base32();
    assert!(phc.starts_with("$argon2id$") && seed.len() >= 26);
    let (st, got) = h
        .raw(
            Some(Role::Gateway),
            Method::POST,
            &format!("{P}/GetUser"),
            Some(r#"{"name":"alice"}"#),
        )
        .await;
    assert_eq!(st, 200, "{got}");
    assert_eq!(got["User"]["HasPassword"], true);
    assert_eq!(got["User"]["HasTotp"], true);
    let (st, listed) = h
        .raw(
            Some(Role::Admin),
            Method::GET,
            &format!("{P}/ListUsers"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{listed}");
    assert_eq!(listed[0]["Name"], "alice");
    assert_eq!(listed[0]["HasTotp"], true);
    for body in [got.to_string(), listed.to_string()] {
        assert!(!body.contains(phc), "the password hash left: {body}");
        assert!(!body.contains("argon2"), "the password hash left: {body}");
        assert!(!body.contains(seed), "the TOTP seed left: {body}");
        assert!(
            !body.contains(&seed.to_ascii_lowercase()),
            "the TOTP seed left: {body}"
        );
        assert!(
            !body.contains("PasswordHash") && !body.contains("\"Totp\""),
            "{body}"
        );
    }

    // VerifyUser on the wire: accepted or refused, the same answer whatever the reason;
    // refusals audited; only the gateway role may ask.
    let verify = |role: Role, body: String| {
        let h = &h;
        async move {
            h.raw(
                Some(role),
                Method::POST,
                &format!("{P}/VerifyUser"),
                Some(&body),
            )
            .await
        }
    };
    let (st, yes) = verify(
        Role::Gateway,
        format!(r#"{{"name":"alice","password":"alice-pw","totpCode":"{code}"}}"#),
    )
    .await;
    assert_eq!(
        (st, &yes),
        (
            200,
            &serde_json::json!({"Result":"Success","Accepted":true})
        )
    );
    let before = refusals(&h).await.len();
    let wrong_pw = verify(
        Role::Gateway,
        r#"{"name":"alice","password":"not-alices"}"#.into(),
    )
    .await;
    let unknown = verify(
        Role::Gateway,
        r#"{"name":"nobody","password":"alice-pw"}"#.into(),
    )
    .await;
    let bad_code = verify(
        Role::Gateway,
        format!(
            r#"{{"name":"alice","password":"alice-pw","totpCode":"{}"}}"#,
            wrong_code(&totp, now)
        ),
    )
    .await;
    let refused = (
        200,
        serde_json::json!({"Result":"Success","Accepted":false}),
    );
    assert_eq!(wrong_pw, refused);
    assert_eq!(
        unknown, refused,
        "an unknown user reads like a wrong password"
    );
    assert_eq!(bad_code, refused);
    let audited = refusals(&h).await;
    assert_eq!(audited.len(), before + 3, "{audited:?}");
    assert!(
        audited[before..]
            .iter()
            .all(|r| r.starts_with("gateway-test ") && r.contains("VerifyUser")),
        "{audited:?}"
    );
    assert!(
        audited
            .iter()
            .all(|r| !r.contains("not-alices") && !r.contains("alice-pw")),
        "a refusal audit holds the password: {audited:?}"
    );
    let (st, e) = verify(Role::Gateway, r#"{"name":"alice"}"#.into()).await;
    assert_eq!(
        (st, &e["Code"]),
        (400, &serde_json::json!("invalid-input")),
        "{e}"
    );
    for role in [Role::Encoder, Role::Uploader, Role::Admin] {
        let before = refusals(&h).await.len();
        let (st, e) = verify(role, r#"{"name":"alice","password":"alice-pw"}"#.into()).await;
        assert_eq!(st, 403, "{role} on VerifyUser: {e}");
        assert_eq!(e["Code"], "forbidden");
        assert_eq!(refusals(&h).await.len(), before + 1, "refusal audited");
    }
    assert!(matches!(
        HttpDirectory::new(h.client(Role::Encoder))
            .verify_password("alice", &pw("alice-pw"))
            .await,
        Err(CoreError::Forbidden(_))
    ));

    // The control plane's clock moves on: the same code is refused.
    h.clock.advance(Duration::from_secs(600));
    assert!(!gateway.verify_totp("alice", &code, now).await.unwrap());

    // A gateway cannot write.
    assert!(matches!(
        gateway.grant("ops", "*").await,
        Err(CoreError::Forbidden(_))
    ));
    assert!(matches!(
        gateway.users().await,
        Err(CoreError::Forbidden(_))
    ));

    // Admin writes.
    admin
        .update_user(
            "alice",
            &UserUpdate {
                password: Some(None),
                roles: Some(vec!["ops".into(), "dba".into()]),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    let u = admin.user("alice").await.unwrap().unwrap();
    assert!(u.password.is_none());
    assert!(u.totp.is_some(), "absent field left as it is");
    assert!(
        !gateway
            .verify_password("alice", &pw("alice-pw"))
            .await
            .unwrap()
    );
    assert_eq!(u.roles, vec!["dba", "ops"], "sorted by the directory");
    let k = AuthorizedKey::parse(KEY).unwrap();
    assert!(admin.remove_key("alice", &k).await.unwrap());
    assert!(!admin.remove_key("alice", &k).await.unwrap());
    admin.add_key("alice", &k).await.unwrap();
    assert_eq!(admin.users().await.unwrap().len(), 1);
    assert!(admin.revoke("ops", "web-01").await.unwrap());
    assert!(!admin.revoke("ops", "web-01").await.unwrap());
    assert!(matches!(
        admin.update_user("nobody", &UserUpdate::default()).await,
        Err(CoreError::UnknownUser(_))
    ));

    // Checkouts under the directory policy.
    admin.grant("dba", "db-01").await.unwrap();
    let vault = Vault::new(
        h.vault_store.clone(),
        Keyring::new(MasterKey::generate().unwrap()),
        h.engine.clone(),
        VaultConfig::default(),
    )
    .with_policy(Arc::new(DirectoryPolicy::new(h.directory.clone())));
    for name in ["db-01", "web-01"] {
        vault
            .put_target(
                Target {
                    name: name.into(),
                    host: "127.0.0.1".into(),
                    port: 22,
                    protocol: Protocol::Ssh,
                    host_key: None,
                },
                "admin",
            )
            .await
            .unwrap();
        vault
            .set_credential(name, Credential::password("root", "pw"), "admin")
            .await
            .unwrap();
    }
    let req = |user: &str, target: &str| CheckoutRequest {
        user: user.into(),
        target: target.into(),
        duration: Duration::from_secs(600),
    };
    vault
        .checkout(req("alice", "db-01"), "admin")
        .await
        .unwrap();
    assert!(matches!(
        vault.checkout(req("alice", "web-01"), "admin").await,
        Err(CoreError::Forbidden(_))
    ));
    assert!(matches!(
        vault.checkout(req("mallory", "db-01"), "admin").await,
        Err(CoreError::Forbidden(_))
    ));
    assert!(admin.delete_user("alice").await.unwrap());
    assert!(!admin.delete_user("alice").await.unwrap());
    h.stop().await;
}

#[tokio::test]
async fn directory_over_http_on_sqlite() {
    run(Backend::Sqlite).await;
}

#[tokio::test]
async fn directory_over_http_on_postgres() {
    run(Backend::Postgres).await;
}

#[tokio::test]
async fn verify_user_locks_a_name_out_after_five_refusals() {
    let h = Harness::start(Backend::Sqlite).await;
    let admin = HttpDirectory::new(h.client(Role::Admin));
    let gateway = HttpDirectory::new(h.client(Role::Gateway));
    for name in ["bob", "carol"] {
        admin
            .create_user(&NewUser {
                name: name.parse().unwrap(),
                password: Some(PasswordHash::hash(&format!("{name}-pw")).unwrap()),
                ..NewUser::default()
            })
            .await
            .unwrap();
    }
    // A success clears the count: four wrong, one right, four wrong again is no lockout.
    for _ in 0..4 {
        assert!(!gateway.verify_password("bob", &pw("guess")).await.unwrap());
    }
    assert!(gateway.verify_password("bob", &pw("bob-pw")).await.unwrap());
    for _ in 0..4 {
        assert!(!gateway.verify_password("BOB", &pw("guess")).await.unwrap());
    }
    assert!(gateway.verify_password("bob", &pw("bob-pw")).await.unwrap());
    // Five refusals in a row: the right password is refused too, without a check, and
    // the refusal is audited as a lockout; another user is not affected.
    for _ in 0..5 {
        assert!(!gateway.verify_password("bob", &pw("guess")).await.unwrap());
    }
    let before = refusals(&h).await.len();
    assert!(
        !gateway.verify_password("bob", &pw("bob-pw")).await.unwrap(),
        "locked out"
    );
    let audited = refusals(&h).await;
    assert_eq!(audited.len(), before + 1);
    assert!(
        audited[before].contains("user bob: locked out after 5 failed attempts"),
        "{audited:?}"
    );
    assert!(
        gateway
            .verify_password("carol", &pw("carol-pw"))
            .await
            .unwrap()
    );
    h.stop().await;
}
