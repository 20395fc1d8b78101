//! One-time launch credentials: how a native client gets NLA (CredSSP) toward the gateway.
//!
//! CredSSP's NTLM needs the server to know the user's password (or its NT hash); the PSM
//! directory keeps argon2id hashes only. So a user who authenticated elsewhere (the web UI,
//! or `POST /launch` on the browser gateway with their PSM password) gets a launch
//! credential: their login name (`alice+desk-01`) and a random one-time password the gateway
//! holds in memory for a few minutes. The client connects with it, over NLA or TLS; the first
//! successful use consumes it.
//!
//! ```
//! use std::time::Duration;
//! use psm_proxy_rdp::access::Identity;
//! use psm_proxy_rdp::launch::LaunchTokens;
//! let tokens = LaunchTokens::new();
//! let cred = tokens.issue(Identity { user: "alice".into(), target: "desk-01".into() },
//!     Duration::from_secs(300));
//! assert_eq!(cred.username, "alice+desk-01");
//! let pw = cred.password.expose_secret().clone();
//! assert!(tokens.peek("alice+desk-01").is_some());
//! assert_eq!(tokens.redeem("alice+desk-01", &pw).unwrap().target, "desk-01");
//! assert!(tokens.redeem("alice+desk-01", &pw).is_none(), "one use only");
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use psm_core::vault::Secret;

use crate::access::Identity;

/// Most launch credentials held at once (older ones are dropped first).
pub const MAX_TOKENS: usize = 10_000;

/// A launch credential as handed to the user.
#[derive(Clone, Debug)]
pub struct LaunchCredential {
    /// The login name to use (`USER+TARGET`).
    pub username: String,
    /// The one-time password (`Debug` prints `***`).
    pub password: Secret<String>,
    /// How long it stays valid.
    pub valid_for: Duration,
}

struct Entry {
    identity: Identity,
    password: Secret<String>,
    expires: Instant,
}

/// The gateway's launch credentials. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct LaunchTokens {
    inner: Arc<Mutex<HashMap<String, Vec<Entry>>>>,
}

impl std::fmt::Debug for LaunchTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchTokens").finish_non_exhaustive()
    }
}

fn random_password() -> String {
    use std::io::Read as _;
    let mut b = [0u8; 18];
    // /dev/urandom never fails on Linux once booted; fall back to the clock rather than panic.
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b[..16].copy_from_slice(&t.to_le_bytes());
    }
    hex::encode(b)
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl LaunchTokens {
    /// None yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Entry>>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Issues a one-time credential for an authenticated `identity`, valid for `ttl`.
    pub fn issue(&self, identity: Identity, ttl: Duration) -> LaunchCredential {
        let username = format!("{}+{}", identity.user, identity.target);
        let password = random_password();
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, v| {
            v.retain(|e| e.expires > now);
            !v.is_empty()
        });
        if map.values().map(Vec::len).sum::<usize>() >= MAX_TOKENS
            && let Some(k) = map.keys().next().cloned()
        {
            map.remove(&k);
        }
        map.entry(username.clone()).or_default().push(Entry {
            identity,
            password: Secret::new(password.clone()),
            expires: now + ttl,
        });
        LaunchCredential {
            username,
            password: Secret::new(password),
            valid_for: ttl,
        }
    }

    /// The newest valid credential for `login` (not consumed): the gateway's NLA server
    /// needs the password before the client proves it knows it.
    pub fn peek(&self, login: &str) -> Option<(Identity, Secret<String>)> {
        let map = self.lock();
        let now = Instant::now();
        map.get(login)?
            .iter()
            .rev()
            .find(|e| e.expires > now)
            .map(|e| (e.identity.clone(), e.password.clone()))
    }

    /// Consumes the credential if `password` is a valid one for `login`.
    pub fn redeem(&self, login: &str, password: &str) -> Option<Identity> {
        let mut map = self.lock();
        let now = Instant::now();
        let list = map.get_mut(login)?;
        let i = list
            .iter()
            .position(|e| e.expires > now && same(e.password.expose_secret(), password))?;
        let e = list.remove(i);
        if list.is_empty() {
            map.remove(login);
        }
        Some(e.identity)
    }
}
