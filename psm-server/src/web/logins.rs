//! Login sessions of the web UI (server-side, keyed by a hash of the cookie's token) and the
//! failed-login limiter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::TryRngCore;
use subtle::ConstantTimeEq;

use psm_core::directory::LoginThrottle;

use super::WebConfig;
use super::guard::Capabilities;

/// Most login sessions kept at once; the oldest is dropped beyond it.
const MAX_SESSIONS: usize = 10_000;

/// Random bytes as base64url (256 bits).
pub(crate) fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn token_hash(token: &str) -> [u8; 32] {
    *blake3::keyed_hash(b"psm web ui session token v1 \0\0\0\0", token.as_bytes()).as_bytes()
}

/// One logged-in browser.
#[derive(Clone, Debug)]
pub(crate) struct LoginSession {
    /// The directory user.
    pub(crate) user: String,
    /// What the user may do.
    pub(crate) caps: Capabilities,
    /// The CSRF token the page sends back on every state-changing request.
    pub(crate) csrf: String,
    /// What the directory said about the user when it was last read
    /// ([`user_stamp`](super::login::user_stamp)).
    pub(crate) stamp: [u8; 32],
    /// When the directory was last read for this session.
    pub(crate) checked: Instant,
    created: Instant,
    last_seen: Instant,
}

impl LoginSession {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub(crate) fn csrf_matches(&self, presented: &str) -> bool {
        presented.len() == self.csrf.len()
            && bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

struct Inner {
    sessions: HashMap<[u8; 32], LoginSession>,
}

/// The web UI's login sessions and failed-login counters (in memory: a restart logs
/// everybody out).
#[derive(Clone)]
pub struct LoginSessions {
    inner: Arc<Mutex<Inner>>,
    idle: Duration,
    max: Duration,
    throttle: LoginThrottle,
    /// Password checks (argon2) running at once.
    pub(crate) hashing: Arc<tokio::sync::Semaphore>,
}

/// [`LoginSessions`] without keeping them alive.
pub(crate) struct WeakLoginSessions {
    inner: std::sync::Weak<Mutex<Inner>>,
    idle: Duration,
    max: Duration,
    throttle: LoginThrottle,
    hashing: Arc<tokio::sync::Semaphore>,
}

impl WeakLoginSessions {
    /// The sessions, while the web UI that holds them lives.
    pub(crate) fn upgrade(&self) -> Option<LoginSessions> {
        Some(LoginSessions {
            inner: self.inner.upgrade()?,
            idle: self.idle,
            max: self.max,
            throttle: self.throttle.clone(),
            hashing: self.hashing.clone(),
        })
    }
}

impl std::fmt::Debug for LoginSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginSessions").finish_non_exhaustive()
    }
}

impl LoginSessions {
    pub(crate) fn new(config: &WebConfig) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                sessions: HashMap::new(),
            })),
            idle: config.idle_timeout,
            max: config.max_session,
            throttle: LoginThrottle::new(config.max_failed_logins, config.lockout),
            hashing: Arc::new(tokio::sync::Semaphore::new(
                config.max_concurrent_logins.max(1),
            )),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session; returns the cookie's token and the session.
    pub(crate) fn create(
        &self,
        user: &str,
        caps: Capabilities,
        stamp: [u8; 32],
    ) -> Option<(String, LoginSession)> {
        let token = random_token()?;
        let csrf = random_token()?;
        let now = Instant::now();
        let session = LoginSession {
            user: user.to_owned(),
            caps,
            csrf,
            stamp,
            checked: now,
            created: now,
            last_seen: now,
        };
        let mut inner = self.lock();
        let (idle, max) = (self.idle, self.max);
        inner.sessions.retain(|_, s| {
            now.duration_since(s.last_seen) < idle && now.duration_since(s.created) < max
        });
        if inner.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = inner
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k)
        {
            inner.sessions.remove(&oldest);
        }
        inner.sessions.insert(token_hash(&token), session.clone());
        Some((token, session))
    }

    /// The live session of `token`, refreshed; `None` if unknown or expired.
    pub(crate) fn get(&self, token: &str) -> Option<LoginSession> {
        let key = token_hash(token);
        let now = Instant::now();
        let mut inner = self.lock();
        let s = inner.sessions.get_mut(&key)?;
        if now.duration_since(s.last_seen) >= self.idle || now.duration_since(s.created) >= self.max
        {
            inner.sessions.remove(&key);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    /// Notes that the directory was read for the session of `token` just now and still
    /// says what it said at login.
    pub(crate) fn checked(&self, token: &str) {
        if let Some(s) = self.lock().sessions.get_mut(&token_hash(token)) {
            s.checked = Instant::now();
        }
    }

    /// Ends the session of `token`.
    pub(crate) fn remove(&self, token: &str) -> bool {
        self.lock().sessions.remove(&token_hash(token)).is_some()
    }

    /// Every user with a session, with what the directory said when it was last read and
    /// what they may do (one entry per distinct user, stamp and capabilities).
    pub(crate) fn users(&self) -> Vec<(String, [u8; 32], super::guard::Capabilities)> {
        let inner = self.lock();
        let mut out: Vec<(String, [u8; 32], super::guard::Capabilities)> = Vec::new();
        for s in inner.sessions.values() {
            if !out
                .iter()
                .any(|(u, st, c)| *u == s.user && *st == s.stamp && *c == s.caps)
            {
                out.push((s.user.clone(), s.stamp, s.caps));
            }
        }
        out
    }

    /// A handle that does not keep the sessions alive (for a background task that must end
    /// with the web UI).
    pub(crate) fn downgrade(&self) -> WeakLoginSessions {
        WeakLoginSessions {
            inner: Arc::downgrade(&self.inner),
            idle: self.idle,
            max: self.max,
            throttle: self.throttle.clone(),
            hashing: self.hashing.clone(),
        }
    }

    /// Ends every session of `user` (e.g. after their password changed).
    pub fn end_user(&self, user: &str) -> usize {
        let mut inner = self.lock();
        let before = inner.sessions.len();
        inner.sessions.retain(|_, s| s.user != user);
        before - inner.sessions.len()
    }

    /// Counts an attempt against `key` (a user name or an address) before it is checked;
    /// `false` if `key` is locked out ([`LoginThrottle::reserve`]).
    pub(crate) fn reserve(&self, key: &str) -> bool {
        self.throttle.reserve(key)
    }

    /// Takes back an attempt counted by [`reserve`](Self::reserve).
    pub(crate) fn release(&self, key: &str) {
        self.throttle.release(key);
    }

    /// Clears the failures of `key` (after a successful login).
    pub(crate) fn succeeded(&self, key: &str) {
        self.throttle.succeeded(key);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config() -> WebConfig {
        WebConfig {
            idle_timeout: Duration::from_secs(60),
            max_failed_logins: 3,
            ..WebConfig::default()
        }
    }

    #[test]
    fn tokens_find_their_session_only() {
        let s = LoginSessions::new(&config());
        let (token, session) = s.create("alice", Capabilities::admin(), [0; 32]).unwrap();
        assert_eq!(token.len(), 43);
        assert_eq!(s.get(&token).unwrap().user, "alice");
        assert!(s.get("not-a-token").is_none());
        assert!(session.csrf_matches(&session.csrf.clone()));
        assert!(!session.csrf_matches(""));
        assert!(!session.csrf_matches(&token));
        assert!(s.remove(&token));
        assert!(s.get(&token).is_none());
    }

    #[test]
    fn expired_sessions_are_gone() {
        let s = LoginSessions::new(&WebConfig {
            idle_timeout: Duration::ZERO,
            ..WebConfig::default()
        });
        let (token, _) = s.create("alice", Capabilities::admin(), [0; 32]).unwrap();
        assert!(s.get(&token).is_none());
    }
}
