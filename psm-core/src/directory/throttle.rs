//! Failed-login limiting: after [`LoginThrottle::max_failures`] failed logins against one key
//! (a user name, a client address) within [`LoginThrottle::lockout`], further attempts are
//! refused without being checked until the lockout has passed. Every place that checks a
//! password uses one: the web UI's login, the control plane's VerifyUser, and the SSH and
//! RDP gateways, each with its own count (clones share one), so no door allows more
//! guessing than another.
//!
//! A lockout by name can be triggered by anyone who knows the name (the price of stopping
//! guessing); it ends by itself after `lockout`, and a successful login clears the count.
//! Memory is bounded: at most [`MAX_TRACKED`] keys are remembered.
//!
//! ```
//! use psm_core::directory::LoginThrottle;
//! let t = LoginThrottle::new(3, std::time::Duration::from_secs(300));
//! for _ in 0..3 {
//!     assert!(!t.locked_out("user:bob"));
//!     t.failed("user:bob");
//! }
//! assert!(t.locked_out("user:bob"));
//! assert!(!t.locked_out("user:carol"));
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most keys a throttle remembers; beyond it the expired ones are forgotten, and under a
/// flood of distinct keys, all of them.
pub const MAX_TRACKED: usize = 10_000;

#[derive(Default)]
struct Failures {
    count: u32,
    since: Option<Instant>,
}

/// Failed-login counters, shared by clones.
#[derive(Clone)]
pub struct LoginThrottle {
    failures: Arc<Mutex<HashMap<String, Failures>>>,
    max_failures: u32,
    lockout: Duration,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle")
            .field("max_failures", &self.max_failures)
            .field("lockout", &self.lockout)
            .finish_non_exhaustive()
    }
}

impl Default for LoginThrottle {
    /// Five failures lock a key out for five minutes.
    fn default() -> Self {
        Self::new(5, Duration::from_secs(5 * 60))
    }
}

impl LoginThrottle {
    /// `max_failures` (at least 1) failures within `lockout` lock a key out for the rest of
    /// that time.
    pub fn new(max_failures: u32, lockout: Duration) -> Self {
        Self {
            failures: Arc::new(Mutex::new(HashMap::new())),
            max_failures: max_failures.max(1),
            lockout,
        }
    }

    /// Failures that lock a key out.
    pub fn max_failures(&self) -> u32 {
        self.max_failures
    }

    /// How long a lockout lasts (counted from the first failure of the run).
    pub fn lockout(&self) -> Duration {
        self.lockout
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `key` is locked out now.
    pub fn locked_out(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut failures = self.lock();
        let Some(f) = failures.get(key) else {
            return false;
        };
        match f.since {
            Some(since) if now.duration_since(since) < self.lockout => f.count >= self.max_failures,
            _ => {
                failures.remove(key);
                false
            }
        }
    }

    /// Counts a failed login against `key`.
    pub fn failed(&self, key: &str) {
        let now = Instant::now();
        let lockout = self.lockout;
        let mut failures = self.lock();
        if failures.len() >= MAX_TRACKED && !failures.contains_key(key) {
            failures.retain(|_, f| f.since.is_some_and(|s| now.duration_since(s) < lockout));
            if failures.len() >= MAX_TRACKED {
                // Under a flood of distinct keys, forget the lot rather than grow.
                failures.clear();
            }
        }
        let f = failures.entry(key.to_owned()).or_default();
        match f.since {
            Some(since) if now.duration_since(since) < lockout => f.count += 1,
            _ => {
                f.count = 1;
                f.since = Some(now);
            }
        }
    }

    /// Counts an attempt against `key` **before** it is checked, unless `key` is locked out
    /// (then `false`, nothing counted). Checking and counting under one lock means that
    /// concurrent attempts cannot all pass the lockout check before any failure is
    /// counted: at most `max_failures` attempts per key are ever in flight or failed within
    /// a lockout. A wrong answer leaves the attempt counted; a right one calls
    /// [`succeeded`](Self::succeeded) (a user name: clear the count) or
    /// [`release`](Self::release) (an address: take back just this attempt).
    ///
    /// ```
    /// use psm_core::directory::LoginThrottle;
    /// let t = LoginThrottle::new(2, std::time::Duration::from_secs(300));
    /// assert!(t.reserve("addr:192.0.2.1"));
    /// assert!(t.reserve("addr:192.0.2.1"));
    /// assert!(!t.reserve("addr:192.0.2.1"), "two attempts in flight: the third waits");
    /// t.release("addr:192.0.2.1");
    /// assert!(t.reserve("addr:192.0.2.1"));
    /// ```
    pub fn reserve(&self, key: &str) -> bool {
        let now = Instant::now();
        let lockout = self.lockout;
        let mut failures = self.lock();
        if let Some(f) = failures.get(key)
            && f.since.is_some_and(|s| now.duration_since(s) < lockout)
            && f.count >= self.max_failures
        {
            return false;
        }
        if failures.len() >= MAX_TRACKED && !failures.contains_key(key) {
            failures.retain(|_, f| f.since.is_some_and(|s| now.duration_since(s) < lockout));
            if failures.len() >= MAX_TRACKED {
                failures.clear();
            }
        }
        let f = failures.entry(key.to_owned()).or_default();
        match f.since {
            Some(since) if now.duration_since(since) < lockout => f.count += 1,
            _ => {
                f.count = 1;
                f.since = Some(now);
            }
        }
        true
    }

    /// Takes back one attempt [`reserve`](Self::reserve) counted against `key` (the attempt
    /// turned out right, or was never checked).
    pub fn release(&self, key: &str) {
        let mut failures = self.lock();
        if let Some(f) = failures.get_mut(key) {
            f.count = f.count.saturating_sub(1);
            if f.count == 0 {
                failures.remove(key);
            }
        }
    }

    /// Clears the failures of `key` (after a successful login).
    pub fn succeeded(&self, key: &str) {
        self.lock().remove(key);
    }

    /// The key of a user name: case-insensitive, so `Bob` and `bob` share a count.
    pub fn user_key(name: &str) -> String {
        format!("user:{}", name.to_ascii_lowercase())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn failures_lock_out_after_the_limit_and_success_clears_them() {
        let t = LoginThrottle::new(3, Duration::from_secs(60));
        for _ in 0..2 {
            t.failed("bob");
            assert!(!t.locked_out("bob"));
        }
        t.failed("bob");
        assert!(t.locked_out("bob"));
        assert!(!t.locked_out("carol"));
        t.succeeded("bob");
        assert!(!t.locked_out("bob"));
        assert_eq!(
            LoginThrottle::user_key("Bob"),
            LoginThrottle::user_key("bob")
        );
    }

    #[test]
    fn a_lockout_ends_by_itself() {
        let t = LoginThrottle::new(1, Duration::from_millis(1));
        t.failed("bob");
        std::thread::sleep(Duration::from_millis(5));
        assert!(!t.locked_out("bob"));
        // A new run of failures starts counting afresh.
        t.failed("bob");
        assert_eq!(t.lock().get("bob").unwrap().count, 1);
    }

    #[test]
    fn concurrent_attempts_cannot_all_pass_the_check() {
        let t = LoginThrottle::new(3, Duration::from_secs(60));
        let passed = std::thread::scope(|s| {
            let handles: Vec<_> = (0..32).map(|_| s.spawn(|| t.reserve("bob"))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|&ok| ok)
                .count()
        });
        assert_eq!(passed, 3);
        assert!(t.locked_out("bob"));
        t.release("bob");
        assert!(!t.locked_out("bob"));
    }

    #[test]
    fn a_flood_of_names_stays_bounded() {
        let t = LoginThrottle::default();
        for i in 0..(MAX_TRACKED + 10) {
            t.failed(&format!("u{i}"));
        }
        assert!(t.lock().len() <= MAX_TRACKED);
    }
}
