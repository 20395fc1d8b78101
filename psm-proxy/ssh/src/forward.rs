//! Where `ssh -L` may lead: the destination allow-list of direct-tcpip channels.

use std::fmt;
use std::str::FromStr;

use psm_proxy::ProxyError;

/// One allowed destination of `ssh -L` / `ssh -W`, written `[TARGET/]HOST:PORT`.
///
/// `HOST` is the name or address the user's client asks the target to connect to, compared
/// as written (case-insensitively), so `127.1` does not match `127.0.0.1`: list every
/// spelling you allow. IPv6 addresses go in brackets (`[::1]:22`). `TARGET`, `HOST` and
/// `PORT` may use `*` as a wildcard (`*.db.internal:5432`, `web-*/localhost:*`); without
/// `TARGET/` the entry holds for every target. The target resolves names, so listing a
/// name trusts the target's DNS.
///
/// ```
/// use psm_proxy_ssh::ForwardDestination;
/// let d: ForwardDestination = "web-*/db.internal:5432".parse()?;
/// assert!(d.allows("web-01", "DB.internal", 5432));
/// assert!(!d.allows("web-01", "db.internal", 22));
/// assert!(!d.allows("mail", "db.internal", 5432));
/// # Ok::<(), psm_proxy::ProxyError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardDestination {
    target: Option<String>,
    host: String,
    port: Option<u16>,
}

impl ForwardDestination {
    /// The target's own loopback, any port: the default, which lets a user reach a
    /// service the target keeps on loopback but not pivot into the network behind it.
    pub fn target_loopback() -> Vec<Self> {
        ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(|host| Self {
                target: None,
                host: host.into(),
                port: None,
            })
            .collect()
    }

    /// Whether a direct-tcpip channel of a session on `target` may open to `host:port`.
    pub fn allows(&self, target: &str, host: &str, port: u32) -> bool {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        self.target.as_deref().is_none_or(|t| glob(t, target))
            && glob(&self.host, host)
            && self.port.is_none_or(|p| u32::from(p) == port)
    }
}

impl FromStr for ForwardDestination {
    type Err = ProxyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            ProxyError::Config(format!(
                "forward destination {s:?}: {why} (expected [TARGET/]HOST:PORT, `*` as a wildcard)"
            ))
        };
        let (target, rest) = match s.split_once('/') {
            Some((t, r)) if !t.is_empty() => (Some(t.to_owned()), r),
            Some(_) => return Err(bad("empty target")),
            None => (None, s),
        };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, p) = v6.split_once("]:").ok_or_else(|| bad("no port"))?;
            (h, p)
        } else {
            rest.rsplit_once(':').ok_or_else(|| bad("no port"))?
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(bad("no host"));
        }
        let port = match port {
            "*" => None,
            p => Some(
                p.parse::<u16>()
                    .map_err(|_| bad("the port is not 1-65535 or *"))?,
            )
            .filter(|p| *p != 0),
        };
        if port.is_none() && !rest.ends_with(":*") {
            return Err(bad("port 0"));
        }
        Ok(Self {
            target,
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for ForwardDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = &self.target {
            write!(f, "{t}/")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => f.write_str(":*"),
        }
    }
}

/// `*`-only glob, ASCII case-insensitive (iterative, no backtracking blow-up).
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi].eq_ignore_ascii_case(&t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_and_matches() {
        let d: ForwardDestination = "db.internal:5432".parse().unwrap();
        assert!(d.allows("any", "db.internal", 5432));
        assert!(!d.allows("any", "db.internal.evil", 5432));
        let d: ForwardDestination = "[::1]:*".parse().unwrap();
        assert!(d.allows("t", "::1", 22));
        assert!(d.allows("t", "[::1]", 22));
        assert_eq!(d.to_string(), "[::1]:*");
        let d: ForwardDestination = "web-*/*.corp:443".parse().unwrap();
        assert!(d.allows("web-7", "a.b.corp", 443));
        assert!(!d.allows("db-1", "a.b.corp", 443));
        assert_eq!(d.to_string(), "web-*/*.corp:443");
        for bad in ["", "host", "host:0", "host:x", "/h:1", ":22", "h:70000"] {
            assert!(bad.parse::<ForwardDestination>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_is_the_targets_loopback_as_written() {
        let l = ForwardDestination::target_loopback();
        let ok = |h: &str| l.iter().any(|d| d.allows("t", h, 5432));
        assert!(ok("localhost") && ok("127.0.0.1") && ok("[::1]"));
        assert!(!ok("127.1") && !ok("10.0.0.5") && !ok("localhost.evil.com"));
    }

    #[test]
    fn glob_is_linear_and_exact() {
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
        assert!(glob(&"*a".repeat(20), &"a".repeat(60)));
        assert!(!glob(&"*a".repeat(20), &"b".repeat(60)));
    }
}
