//! Refusals of unauthenticated requests, aggregated per client.
//!
//! Anyone who can reach the port can send requests without a key or a session; auditing
//! each refusal on its own would let them fill the audit trail and flood the SIEM with one
//! event per request. So the first refusal of a client in a window
//! ([`ServerConfig::refusal_window`](crate::ServerConfig::refusal_window), a minute by
//! default) is audited as it happens, the rest of that window are only counted, and when
//! the window is over one more audit row says how many were refused
//! (`N more unauthenticated requests refused from PEER in the last 60 s`). Nothing is lost:
//! the count is exact, only the rows are fewer. Refusals of authenticated callers (a key
//! used on an endpoint its role may not call, a CSRF failure) are still audited one by one.
//!
//! A client is its IPv4 address or its IPv6 /64 (one host usually holds a whole /64);
//! past [`MAX_PEERS`] distinct clients in a window the rest share one count.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use psm_server::refusals::RefusalLog;
//! let log = RefusalLog::new(Duration::from_secs(60));
//! let peer = "192.0.2.7".parse().unwrap();
//! let now = Instant::now();
//! assert_eq!(log.note_at(peer, now), Some(0), "the first is audited");
//! assert_eq!(log.note_at(peer, now), None, "the next ones are counted");
//! assert_eq!(log.note_at(peer, now), None);
//! let later = now + Duration::from_secs(61);
//! assert_eq!(log.drain_at(later), vec![("192.0.2.7".to_owned(), 2)]);
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use psm_core::AuditAction;
use tokio::sync::watch;

use crate::state::AppState;

/// Most clients counted apart in one window.
pub const MAX_PEERS: usize = 10_000;

/// The name of the shared count past [`MAX_PEERS`].
const OTHERS: &str = "other clients";

struct Window {
    started: Instant,
    suppressed: u64,
}

/// Per-client windows of refusals, shared by clones.
#[derive(Clone)]
pub struct RefusalLog {
    windows: Arc<Mutex<HashMap<String, Window>>>,
    window: Duration,
}

impl std::fmt::Debug for RefusalLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefusalLog")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// How refusals of `ip` are counted: the address, or its /64 for IPv6.
pub fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
    }
}

impl RefusalLog {
    /// Windows of `window` (at least a second).
    pub fn new(window: Duration) -> Self {
        Self {
            windows: Arc::new(Mutex::new(HashMap::new())),
            window: window.max(Duration::from_secs(1)),
        }
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Window>> {
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes a refusal of `ip` now; see [`note_at`](Self::note_at).
    pub fn note(&self, ip: IpAddr) -> Option<u64> {
        self.note_at(ip, Instant::now())
    }

    /// Notes a refusal of `ip` at `now`. `Some(n)`: audit this refusal, and say that `n`
    /// earlier ones of the client's previous window were not audited apart (when the
    /// summary has not been written yet). `None`: only counted.
    pub fn note_at(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let mut windows = self.lock();
        let mut key = client_key(ip);
        if !windows.contains_key(&key) && windows.len() >= MAX_PEERS {
            let window = self.window;
            windows.retain(|_, w| now.saturating_duration_since(w.started) < window);
            if windows.len() >= MAX_PEERS {
                key = OTHERS.to_owned();
            }
        }
        match windows.get_mut(&key) {
            Some(w) if now.saturating_duration_since(w.started) < self.window => {
                w.suppressed += 1;
                None
            }
            Some(w) => {
                let earlier = w.suppressed;
                *w = Window {
                    started: now,
                    suppressed: 0,
                };
                Some(earlier)
            }
            None => {
                windows.insert(
                    key,
                    Window {
                        started: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }

    /// The clients whose window is over at `now` with refusals not audited apart, and how
    /// many; their windows are forgotten.
    pub fn drain_at(&self, now: Instant) -> Vec<(String, u64)> {
        let window = self.window;
        let mut out = Vec::new();
        self.lock().retain(|key, w| {
            if now.saturating_duration_since(w.started) < window {
                return true;
            }
            if w.suppressed > 0 {
                out.push((key.clone(), w.suppressed));
            }
            false
        });
        out.sort();
        out
    }
}

/// Audits an unauthenticated refusal of `ip` unless its window already holds one (then it
/// is only counted). `actor` and `detail` are what the audit row says.
pub async fn refuse_unauthenticated(state: &AppState, ip: IpAddr, actor: &str, detail: String) {
    match state.refusals.note(ip) {
        Some(earlier) => {
            let detail = if earlier > 0 {
                format!(
                    "{detail} ({earlier} more unauthenticated requests refused from {} in the \
                     previous {} s)",
                    client_key(ip),
                    state.refusals.window().as_secs()
                )
            } else {
                detail
            };
            audit(state, actor, detail).await;
        }
        None => {
            tracing::debug!(peer = %ip, reason = %detail, "refused (counted, not audited apart)")
        }
    }
}

async fn audit(state: &AppState, actor: &str, detail: String) {
    let engine = state.cp.engine();
    let record = psm_core::AuditRecord {
        at: engine.now(),
        session: None,
        actor: actor.chars().take(200).collect(),
        action: AuditAction::Refused,
        from_stage: None,
        to_stage: None,
        detail: detail.chars().take(1000).collect(),
    };
    if let Err(e) = engine.store().append_audit(&record).await {
        tracing::error!(error = %e, "could not audit a refusal");
    }
    tracing::warn!(actor = %record.actor, reason = %record.detail, "refused");
}

/// Writes the summaries of windows that are over, every second, until `stop` turns true
/// (then once more).
pub(crate) async fn run_summaries(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    break;
                }
            }
        }
        summarize(&state, Instant::now()).await;
    }
    // What is still counted is reported at shutdown, as if its window were over.
    summarize(&state, Instant::now() + state.refusals.window()).await;
}

async fn summarize(state: &AppState, now: Instant) {
    for (client, n) in state.refusals.drain_at(now) {
        audit(
            state,
            &format!("anonymous@{client}"),
            format!(
                "{n} more unauthenticated requests refused from {client} in the last {} s",
                state.refusals.window().as_secs()
            ),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_has_its_own_window_and_ipv6_counts_by_slash_64() {
        let log = RefusalLog::new(Duration::from_secs(10));
        let now = Instant::now();
        let a: IpAddr = "2001:db8::1".parse().unwrap_or(IpAddr::from([0; 16]));
        let b: IpAddr = "2001:db8::2".parse().unwrap_or(IpAddr::from([0; 16]));
        let c: IpAddr = "198.51.100.1".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(log.note_at(a, now), Some(0));
        assert_eq!(log.note_at(b, now), None, "same /64");
        assert_eq!(log.note_at(c, now), Some(0));
        assert!(log.drain_at(now).is_empty(), "windows still open");
        let later = now + Duration::from_secs(11);
        assert_eq!(log.note_at(c, later), Some(0));
        assert_eq!(log.drain_at(later), vec![("2001:db8::/64".to_owned(), 1)]);
    }

    #[test]
    fn a_flood_of_clients_shares_one_count() {
        let log = RefusalLog::new(Duration::from_secs(10));
        let now = Instant::now();
        for i in 0..(MAX_PEERS as u32 + 5) {
            log.note_at(IpAddr::from(i.to_be_bytes()), now);
        }
        assert!(log.lock().len() <= MAX_PEERS + 1);
        let total: u64 = log
            .drain_at(now + Duration::from_secs(11))
            .iter()
            .map(|(_, n)| n)
            .sum();
        assert_eq!(
            total, 4,
            "the first of the shared count is audited, 4 counted"
        );
    }
}

/// GetCredential refusals per authenticated principal (issue 17 M7). A gateway that keeps
/// asking for credentials it is not given — another gateway's session, a session without a
/// valid checkout — is probing: each refusal is audited, the one that reaches
/// [`ServerConfig::credential_refusal_limit`](crate::ServerConfig::credential_refusal_limit)
/// within a [`refusal_window`](crate::ServerConfig::refusal_window) writes an `ALERT:` audit
/// row (streamed to the SIEM like every audit row), and from then until the window ends the
/// principal's GetCredential calls are answered 429 without a look at the vault.
///
/// ```
/// use std::time::{Duration, Instant};
/// use psm_server::refusals::CredentialRefusals;
/// let log = CredentialRefusals::new(Duration::from_secs(60), 2);
/// let now = Instant::now();
/// assert!(!log.is_limited_at("gw-2", now));
/// assert_eq!(log.note_at("gw-2", now), None);
/// assert_eq!(log.note_at("gw-2", now), Some(2), "the limit is reached: alert");
/// assert!(log.is_limited_at("gw-2", now));
/// assert!(!log.is_limited_at("gw-1", now), "per principal");
/// assert!(!log.is_limited_at("gw-2", now + Duration::from_secs(61)), "until the window ends");
/// ```
#[derive(Clone)]
pub struct CredentialRefusals {
    windows: Arc<Mutex<HashMap<String, CredentialWindow>>>,
    window: Duration,
    limit: u32,
}

struct CredentialWindow {
    started: Instant,
    refused: u32,
    /// Calls answered 429 in this window.
    limited: u64,
}

impl std::fmt::Debug for CredentialRefusals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialRefusals")
            .field("window", &self.window)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl CredentialRefusals {
    /// At most `limit` (at least 1) refusals per principal and `window`.
    pub fn new(window: Duration, limit: u32) -> Self {
        Self {
            windows: Arc::new(Mutex::new(HashMap::new())),
            window: window.max(Duration::from_secs(1)),
            limit: limit.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CredentialWindow>> {
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `principal` is over its limit now; a call that is counts as refused.
    pub fn is_limited(&self, principal: &str) -> bool {
        self.is_limited_at(principal, Instant::now())
    }

    /// [`is_limited`](Self::is_limited) at `now`.
    pub fn is_limited_at(&self, principal: &str, now: Instant) -> bool {
        let mut windows = self.lock();
        match windows.get_mut(principal) {
            Some(w)
                if now.saturating_duration_since(w.started) < self.window
                    && w.refused >= self.limit =>
            {
                w.limited += 1;
                true
            }
            _ => false,
        }
    }

    /// Notes a refusal of `principal` now; see [`note_at`](Self::note_at).
    pub fn note(&self, principal: &str) -> Option<u32> {
        self.note_at(principal, Instant::now())
    }

    /// Notes a refusal of `principal` at `now`; `Some(count)` when this one reaches the
    /// limit (raise the alert).
    pub fn note_at(&self, principal: &str, now: Instant) -> Option<u32> {
        let mut windows = self.lock();
        if !windows.contains_key(principal) && windows.len() >= MAX_PEERS {
            let window = self.window;
            windows.retain(|_, w| now.saturating_duration_since(w.started) < window);
        }
        let w = windows
            .entry(principal.to_owned())
            .or_insert(CredentialWindow {
                started: now,
                refused: 0,
                limited: 0,
            });
        if now.saturating_duration_since(w.started) >= self.window {
            *w = CredentialWindow {
                started: now,
                refused: 0,
                limited: 0,
            };
        }
        w.refused = w.refused.saturating_add(1);
        (w.refused == self.limit).then_some(w.refused)
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }
}

/// Audits the alert of a principal whose GetCredential calls reached the limit.
pub async fn alert_credential_probing(state: &AppState, principal: &str, count: u32) {
    let window = state.credential_refusals.window().as_secs();
    audit(
        state,
        principal,
        format!(
            "ALERT: GetCredential refused {count} times to {principal} within {window} s; its \
             GetCredential calls are refused for the rest of the window"
        ),
    )
    .await;
}
