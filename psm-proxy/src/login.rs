//! The login name a user gives a gateway: `USER+TARGET`, or `USER` alone for a target menu.
//!
//! Directory user names never contain `+` (see `psm_core::directory::is_valid_name`), so the
//! first `+` splits the login unambiguously; everything after it is the target's name,
//! which may itself contain `+`. OpenSSH passes it through untouched:
//! `ssh alice+web-01@gateway` or `ssh -l alice+web-01 gateway`.

/// Longest login name accepted, in bytes.
pub const MAX_LOGIN_LEN: usize = 512;

/// A parsed login name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginName {
    /// The gateway user.
    pub user: String,
    /// The target, when one was named.
    pub target: Option<String>,
}

/// Why a login name was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// Longer than [`MAX_LOGIN_LEN`].
    #[error("the login name is longer than {MAX_LOGIN_LEN} bytes")]
    TooLong,
    /// The user part is not a valid directory user name.
    #[error("{0:?} is not a valid user name")]
    BadUser(String),
    /// The target part is empty or holds control characters.
    #[error("the target name after '+' is empty or holds control characters")]
    BadTarget,
}

/// Parses `USER` or `USER+TARGET`.
///
/// ```
/// use psm_proxy::{parse_login, LoginName};
/// assert_eq!(parse_login("alice+web-01").unwrap(),
///            LoginName { user: "alice".into(), target: Some("web-01".into()) });
/// assert_eq!(parse_login("alice").unwrap().target, None);
/// assert!(parse_login("alice+").is_err());
/// ```
pub fn parse_login(login: &str) -> Result<LoginName, LoginError> {
    if login.len() > MAX_LOGIN_LEN {
        return Err(LoginError::TooLong);
    }
    let (user, target) = match login.split_once('+') {
        Some((u, t)) => (u, Some(t)),
        None => (login, None),
    };
    if !psm_core::directory::is_valid_name(user) {
        let shown: String = user.chars().take(64).collect();
        return Err(LoginError::BadUser(shown));
    }
    if let Some(t) = target
        && (t.is_empty() || t.len() > 256 || t.chars().any(char::is_control))
    {
        return Err(LoginError::BadTarget);
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
    fn splits_on_the_first_plus() {
        let l = parse_login("bob+db+replica").expect("valid");
        assert_eq!(l.user, "bob");
        assert_eq!(l.target.as_deref(), Some("db+replica"));
        assert!(matches!(parse_login("+web"), Err(LoginError::BadUser(_))));
        assert!(matches!(
            parse_login("a b+web"),
            Err(LoginError::BadUser(_))
        ));
        assert!(matches!(
            parse_login("bob+we\nb"),
            Err(LoginError::BadTarget)
        ));
        assert!(matches!(
            parse_login(&"a".repeat(600)),
            Err(LoginError::TooLong)
        ));
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
