//! Per-source limits before authentication, in the manner of OpenSSH's
//! `PerSourceMaxStartups` and `PerSourcePenalties`: one address cannot hold every
//! unauthenticated slot, cannot open connections (each a key exchange the gateway pays
//! for: the DHEat denial of service) faster than a steady rate after a burst, and an address
//! whose connections keep timing out or failing authentication is refused for a while.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;

/// Most sources with a penalty record kept (a flood of fresh IPv6 /64s cannot grow it
/// without bound; past it, the oldest expired records go first, then new sources are not
/// tracked).
const MAX_TRACKED: usize = 65_536;

/// The source a connection is counted under: an IPv4 address, or an IPv6 /64 (one host
/// usually holds a whole /64). IPv4-mapped IPv6 addresses count as IPv4.
pub(crate) fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

struct Source {
    /// Unauthenticated connections open now.
    open: usize,
    /// New connections the source may open now (a token bucket, refilled at the rate).
    tokens: f64,
    /// When `tokens` was last refilled.
    refilled: Instant,
    /// Unauthenticated connections in a row that ended without a login.
    strikes: u32,
    /// Refused until then.
    refused_until: Option<Instant>,
}

/// Why a connection from a source was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The source already holds its share of unauthenticated connections.
    TooMany,
    /// The source opens connections faster than the rate allows.
    TooFast,
    /// The source is serving a penalty.
    Penalised,
}

/// Counts per source; shared by the accept loop and the connections' slots.
pub(crate) struct SourceLimits {
    per_source: usize,
    /// New connections per second and burst (`None`: no rate limit).
    rate: Option<(f64, f64)>,
    penalty: Option<Duration>,
    penalty_after: u32,
    sources: Mutex<HashMap<IpAddr, Source>>,
}

impl SourceLimits {
    pub(crate) fn new(
        per_source: usize,
        rate: Option<(u32, u32)>,
        penalty: Option<Duration>,
        penalty_after: u32,
    ) -> Self {
        Self {
            per_source: per_source.max(1),
            rate: rate
                .filter(|(per_second, _)| *per_second > 0)
                .map(|(per_second, burst)| (f64::from(per_second), f64::from(burst.max(1)))),
            penalty,
            penalty_after: penalty_after.max(1),
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for one more unauthenticated connection from `ip`, or why not.
    pub(crate) fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<SourceSlot, Refusal> {
        let key = source_key(ip);
        let now = Instant::now();
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        if sources.len() >= MAX_TRACKED && !sources.contains_key(&key) {
            sources.retain(|_, s| {
                s.open > 0 || s.strikes > 0 || s.refused_until.is_some_and(|u| u > now)
            });
        }
        let burst = self.rate.map_or(0.0, |(_, burst)| burst);
        let s = sources.entry(key).or_insert_with(|| Source {
            open: 0,
            tokens: burst,
            refilled: now,
            strikes: 0,
            refused_until: None,
        });
        if let Some(until) = s.refused_until {
            if until > now {
                return Err(Refusal::Penalised);
            }
            s.refused_until = None;
            s.strikes = 0;
        }
        if s.open >= self.per_source {
            return Err(Refusal::TooMany);
        }
        if let Some((per_second, burst)) = self.rate {
            let elapsed = now.saturating_duration_since(s.refilled).as_secs_f64();
            s.tokens = (s.tokens + elapsed * per_second).min(burst);
            s.refilled = now;
            if s.tokens < 1.0 {
                return Err(Refusal::TooFast);
            }
            s.tokens -= 1.0;
        }
        s.open += 1;
        Ok(SourceSlot {
            limits: self.clone(),
            key,
            outcome: Outcome::Abandoned,
        })
    }

    fn release(&self, key: IpAddr, outcome: Outcome) {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = sources.get_mut(&key) else {
            return;
        };
        s.open = s.open.saturating_sub(1);
        match outcome {
            Outcome::LoggedIn => {
                s.strikes = 0;
                // A connection that logged in gives its token back: the rate holds back
                // connections that never authenticate (a DHEat flood, a scanner), not a
                // user's automation opening many sessions.
                if let Some((_, burst)) = self.rate {
                    s.tokens = (s.tokens + 1.0).min(burst);
                }
            }
            Outcome::Struck => {
                s.strikes = s.strikes.saturating_add(1);
                if let Some(p) = self.penalty
                    && s.strikes >= self.penalty_after
                {
                    s.refused_until = Some(Instant::now() + p);
                    tracing::warn!(source = %key, strikes = s.strikes, penalty = ?p,
                        "unauthenticated connections in a row from one source: refusing it for a while");
                }
            }
            Outcome::Abandoned => {}
        }
        // A source is forgotten once nothing about it matters: no connection open, no
        // strike, no penalty, and a full bucket again.
        let full = self.rate.is_none_or(|(per_second, burst)| {
            s.tokens + s.refilled.elapsed().as_secs_f64() * per_second >= burst
        });
        if s.open == 0 && s.strikes == 0 && s.refused_until.is_none() && full {
            sources.remove(&key);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Closed before trying to authenticate.
    Abandoned,
    /// Timed out, or closed after a failed authentication.
    Struck,
    /// Logged in.
    LoggedIn,
}

/// One unauthenticated connection's place in its source's count, given back on drop.
pub(crate) struct SourceSlot {
    limits: Arc<SourceLimits>,
    key: IpAddr,
    outcome: Outcome,
}

impl SourceSlot {
    /// The connection timed out or failed authentication: a strike for its source when the
    /// slot is given back.
    pub(crate) fn strike(&mut self) {
        if self.outcome != Outcome::LoggedIn {
            self.outcome = Outcome::Struck;
        }
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        self.limits.release(self.key, self.outcome);
    }
}

/// What an unauthenticated connection holds: its place in the gateway-wide count and, for
/// network connections, in its source's.
pub(crate) struct PreAuth {
    _global: OwnedSemaphorePermit,
    source: Option<SourceSlot>,
}

impl PreAuth {
    pub(crate) fn new(global: OwnedSemaphorePermit, source: Option<SourceSlot>) -> Self {
        Self {
            _global: global,
            source,
        }
    }

    /// Marks the connection as one that struck out (see [`SourceSlot::strike`]).
    pub(crate) fn strike(&mut self) {
        if let Some(s) = &mut self.source {
            s.strike();
        }
    }

    /// The connection logged in: its source's strikes are cleared.
    pub(crate) fn logged_in(&mut self) {
        if let Some(s) = &mut self.source {
            s.outcome = Outcome::LoggedIn;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sources_are_v4_addresses_and_v6_slash_64s() {
        let k = |s: &str| source_key(s.parse().unwrap());
        assert_eq!(k("10.1.2.3"), k("::ffff:10.1.2.3"));
        assert_eq!(k("2001:db8:1:2::5"), k("2001:db8:1:2:ffff::9"));
        assert_ne!(k("2001:db8:1:2::5"), k("2001:db8:1:3::5"));
    }

    #[test]
    fn one_source_is_capped_and_others_are_not() {
        let l = Arc::new(SourceLimits::new(2, None, None, 3));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let s1 = l.try_acquire(a).unwrap();
        let _s2 = l.try_acquire(a).unwrap();
        assert_eq!(l.try_acquire(a).err(), Some(Refusal::TooMany));
        let _t = l.try_acquire(b).unwrap();
        drop(s1);
        let _s3 = l.try_acquire(a).unwrap();
    }

    #[test]
    fn a_burst_then_the_rate() {
        // One per hour after a burst of three: the fourth is refused, other sources are not.
        let l = Arc::new(SourceLimits::new(100, Some((1, 3)), None, 3));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            drop(l.try_acquire(a).unwrap());
        }
        assert_eq!(l.try_acquire(a).err(), Some(Refusal::TooFast));
        assert!(l.try_acquire("192.0.2.2".parse().unwrap()).is_ok());
        // Connections that log in give their token back.
        let b: IpAddr = "192.0.2.3".parse().unwrap();
        for _ in 0..100 {
            let mut s = l.try_acquire(b).unwrap();
            s.outcome = Outcome::LoggedIn;
        }
    }

    #[test]
    fn strikes_in_a_row_earn_a_penalty_and_a_login_clears_them() {
        let l = Arc::new(SourceLimits::new(
            10,
            None,
            Some(Duration::from_secs(3600)),
            2,
        ));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mut s = l.try_acquire(a).unwrap();
        s.strike();
        drop(s);
        let mut ok = l.try_acquire(a).unwrap();
        ok.outcome = Outcome::LoggedIn;
        drop(ok);
        let mut s = l.try_acquire(a).unwrap();
        s.strike();
        drop(s);
        assert!(l.try_acquire(a).is_ok());
        let mut s = l.try_acquire(a).unwrap();
        s.strike();
        drop(s);
        assert_eq!(l.try_acquire(a).err(), Some(Refusal::Penalised));
        assert!(l.try_acquire("192.0.2.9".parse().unwrap()).is_ok());
    }
}
