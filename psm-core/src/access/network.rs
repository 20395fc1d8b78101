//! Source networks: the CIDR lists an access window admits clients from.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use crate::error::CoreError;
use crate::id::truncate_for_error;

/// Most networks in one list.
pub const MAX_NETWORKS: usize = 64;

/// A list of IPv4 and IPv6 networks (`10.0.0.0/8`, `2001:db8::/32`; a bare address is its
/// own /32 or /128), comma-separated in text. An IPv4-mapped IPv6 client address
/// (`::ffff:10.0.0.1`, what a dual-stack listener reports) is matched as the IPv4 address.
///
/// ```
/// use psm_core::access::SourceNetworks;
/// let nets: SourceNetworks = "10.0.0.0/8, 192.0.2.7".parse()?;
/// assert!(nets.contains("10.9.8.7".parse().unwrap()));
/// assert!(nets.contains("::ffff:192.0.2.7".parse().unwrap()));
/// assert!(!nets.contains("192.0.2.8".parse().unwrap()));
/// assert_eq!(nets.to_string(), "10.0.0.0/8,192.0.2.7/32");
/// # Ok::<(), psm_core::CoreError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceNetworks(Vec<IpNet>);

impl SourceNetworks {
    /// Whether the list is empty (a window without networks admits every address).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is in one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }
}

impl FromStr for SourceNetworks {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if out.len() == MAX_NETWORKS {
                return Err(CoreError::InvalidInput {
                    field: "networks",
                    reason: format!("more than {MAX_NETWORKS} networks"),
                });
            }
            let net = match part.parse::<IpNet>() {
                Ok(n) => n,
                Err(_) => match part.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => {
                        return Err(CoreError::InvalidInput {
                            field: "networks",
                            reason: format!(
                                "{:?} is not a network (CIDR such as 10.0.0.0/8 or \
                                 2001:db8::/32, or an address)",
                                truncate_for_error(part)
                            ),
                        });
                    }
                },
            };
            // `10.1.2.3/8` means the network 10.0.0.0/8; an IPv4-mapped IPv6 network is
            // held as the IPv4 one, since client addresses are compared canonically.
            let net = match net {
                IpNet::V6(v6) => match v6.addr().to_ipv4_mapped() {
                    Some(v4) if v6.prefix_len() >= 96 => {
                        IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).unwrap_or(net)
                    }
                    _ => net,
                },
                IpNet::V4(_) => net,
            };
            out.push(net.trunc());
        }
        Ok(Self(out))
    }
}

impl fmt::Display for SourceNetworks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn parses_and_matches() {
        let n: SourceNetworks = "127.0.0.1/32".parse().unwrap();
        assert!(n.contains("127.0.0.1".parse().unwrap()));
        assert!(!n.contains("127.0.0.2".parse().unwrap()));
        let n: SourceNetworks = "10.1.2.3/8".parse().unwrap();
        assert_eq!(n.to_string(), "10.0.0.0/8");
        let n: SourceNetworks = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(n.to_string(), "10.0.0.0/8");
        assert!(n.contains("10.3.3.3".parse().unwrap()));
        let n: SourceNetworks = "0.0.0.0/0".parse().unwrap();
        assert!(n.contains("203.0.113.9".parse().unwrap()));
        assert!(
            !n.contains("2001:db8::1".parse().unwrap()),
            "v4 any is not v6"
        );
        for bad in ["", "10.0.0.0/33", "10.0.0", "::/129", "host", "10.0.0.0/8,"] {
            assert!(bad.parse::<SourceNetworks>().is_err(), "{bad:?}");
        }
        let many = vec!["10.0.0.0/8"; MAX_NETWORKS + 1].join(",");
        assert!(many.parse::<SourceNetworks>().is_err());
    }

    /// The reference: does `ip` share the first `prefix` bits of `net`?
    fn same_prefix(a: u128, b: u128, prefix: u32, bits: u32) -> bool {
        if prefix == 0 {
            return true;
        }
        let shift = bits - prefix;
        (a >> shift) == (b >> shift)
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = s.parse::<SourceNetworks>();
        }

        #[test]
        fn never_panics_near_misses(s in "[0-9a-f:./, ]{0,80}") {
            let _ = s.parse::<SourceNetworks>();
        }

        /// IPv4 membership agrees with comparing the top `prefix` bits.
        #[test]
        fn v4_matches_reference(net in any::<u32>(), ip in any::<u32>(), prefix in 0u32..=32) {
            let text = format!("{}/{prefix}", Ipv4Addr::from(net));
            let n: SourceNetworks = text.parse().unwrap();
            let want = same_prefix(u128::from(net), u128::from(ip), prefix, 32);
            prop_assert_eq!(n.contains(IpAddr::V4(Ipv4Addr::from(ip))), want);
            // The same address, IPv4-mapped, matches the same way.
            let mapped = IpAddr::V6(Ipv4Addr::from(ip).to_ipv6_mapped());
            prop_assert_eq!(n.contains(mapped), want);
            // Printed and parsed again, the list decides the same.
            let again: SourceNetworks = n.to_string().parse().unwrap();
            prop_assert_eq!(again.contains(IpAddr::V4(Ipv4Addr::from(ip))), want);
        }

        /// IPv6 membership agrees with comparing the top `prefix` bits.
        #[test]
        fn v6_matches_reference(net in any::<u128>(), ip in any::<u128>(), prefix in 0u32..=128) {
            // Leave out IPv4-mapped addresses: those are compared as IPv4 (tested above).
            prop_assume!(Ipv6Addr::from(ip).to_ipv4_mapped().is_none());
            prop_assume!(Ipv6Addr::from(net).to_ipv4_mapped().is_none());
            let text = format!("{}/{prefix}", Ipv6Addr::from(net));
            let n: SourceNetworks = text.parse().unwrap();
            let want = same_prefix(net, ip, prefix, 128);
            prop_assert_eq!(n.contains(IpAddr::V6(Ipv6Addr::from(ip))), want);
        }
    }
}
