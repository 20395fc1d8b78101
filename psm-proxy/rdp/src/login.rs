//! The RDP login name: `USER+TARGET` (the SSH gateway's syntax), or `USER` alone when the
//! gateway has a default target.
//!
//! RDP clients send the name in the Client Info PDU (TLS security) or in CredSSP (NLA); some
//! also send a domain, which the gateway ignores: PSM users live in the PSM directory.

use crate::error::RdpError;

/// Longest login name accepted, in bytes.
pub const MAX_LOGIN_LEN: usize = 512;

/// A parsed login name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginName {
    /// The PSM user.
    pub user: String,
    /// The target, when one was named.
    pub target: Option<String>,
}

/// Parses `USER`, `USER+TARGET`, and the same with a `DOMAIN\` prefix (dropped).
///
/// ```
/// use psm_proxy_rdp::login::{parse_login, LoginName};
/// assert_eq!(parse_login("alice+web-01").unwrap(),
///            LoginName { user: "alice".into(), target: Some("web-01".into()) });
/// assert_eq!(parse_login("PSM\\alice").unwrap().target, None);
/// assert!(parse_login("alice+").is_err());
/// ```
pub fn parse_login(login: &str) -> Result<LoginName, RdpError> {
    if login.len() > MAX_LOGIN_LEN {
        return Err(RdpError::BadLogin(format!(
            "longer than {MAX_LOGIN_LEN} bytes"
        )));
    }
    let login = login.rsplit_once('\\').map_or(login, |(_, u)| u);
    let (user, target) = match login.split_once('+') {
        Some((u, t)) => (u, Some(t)),
        None => (login, None),
    };
    if !psm_core::directory::is_valid_name(user) {
        let shown: String = user.chars().take(64).filter(|c| !c.is_control()).collect();
        return Err(RdpError::BadLogin(format!(
            "{shown:?} is not a valid user name"
        )));
    }
    if let Some(t) = target
        && (t.is_empty() || t.len() > 256 || t.chars().any(char::is_control))
    {
        return Err(RdpError::BadLogin(
            "the target name after '+' is empty, too long or holds control characters".into(),
        ));
    }
    Ok(LoginName {
        user: user.to_owned(),
        target: target.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_the_first_plus_and_drops_domains() {
        let l = parse_login("bob+db+replica").expect("valid");
        assert_eq!(l.user, "bob");
        assert_eq!(l.target.as_deref(), Some("db+replica"));
        assert_eq!(parse_login("CORP\\bob+web").expect("valid").user, "bob");
        assert!(parse_login("+web").is_err());
        assert!(parse_login("a b+web").is_err());
        assert!(parse_login("bob+we\nb").is_err());
        assert!(parse_login(&"a".repeat(600)).is_err());
    }

    proptest::proptest! {
        #[test]
        fn round_trips(user in "[a-z][a-z0-9._-]{0,20}", target in "[a-zA-Z0-9+.:#_-]{1,40}") {
            let l = parse_login(&format!("{user}+{target}")).expect("valid");
            proptest::prop_assert_eq!(l.user, user);
            proptest::prop_assert_eq!(l.target, Some(target));
        }

        #[test]
        fn never_panics(s in ".{0,700}") {
            let _ = parse_login(&s);
        }
    }
}
