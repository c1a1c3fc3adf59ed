//! Network rules (R-NET-1): which address a request comes from, and whether that address may
//! reach the gateway, and a given route.
//!
//! The client address is decided here and only here: the connection's peer, unless the peer is
//! a trusted proxy, in which case `X-Forwarded-For` is read from the right, skipping trusted
//! proxies, and the first address that is not one is the client. Entries a client wrote
//! itself (to the left of an untrusted hop) are never believed. Rate limits, failed-attempt
//! lockout, the audit record and these rules all use the address this module returns.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

use crate::decision::{Reason, Refusal};

/// The header trusted proxies append the address they received the request from to.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// A list of networks. Small lists (the usual tens of entries) are scanned; each check is a
/// mask and a compare per entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkList(Vec<IpNet>);

impl NetworkList {
    /// A list of the given networks.
    pub fn new(networks: Vec<IpNet>) -> Self {
        NetworkList(networks)
    }

    /// Whether `addr` is in one of the networks. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`)
    /// count as their IPv4 address, so a dual-stack socket cannot slip past an IPv4 rule.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.0.iter().any(|net| net.contains(&addr))
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The networks, as written.
    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }
}

fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// The key an address is counted under by the per-client rate and connection limits and the
/// failed-attempt lockout (R-NET-3, R-AUTH-5): an IPv4 address as it is (an IPv4-mapped IPv6
/// one as its IPv4), an IPv6 address by its /64. One IPv6 subscriber holds at least a /64
/// (RFC 6177; most get a /56 or a /48) and can take a new address in it for every request:
/// counted one by one, no per-client limit would hold.
pub fn limit_key(addr: IpAddr) -> IpAddr {
    match canonical(addr) {
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(
            u128::from(v6) & !(u128::from(u64::MAX)),
        )),
        v4 => v4,
    }
}

/// Parse a network as the policy writes it: `10.0.0.0/8`, `2001:db8::/32`, or one address.
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    if let Ok(net) = text.parse::<IpNet>() {
        if net.trunc() != net {
            return Err(format!(
                "`{text}` has host bits set; did you mean `{}`?",
                net.trunc()
            ));
        }
        return Ok(net);
    }
    text.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        format!(
            "`{text}` is not an IP address or CIDR network (e.g. `10.0.0.0/8`, `2001:db8::/32`)"
        )
    })
}

/// The gateway-wide network rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkPlan {
    /// When not empty, only these networks may use the public listener.
    pub allow: NetworkList,
    /// These networks are always refused (deny wins over allow).
    pub deny: NetworkList,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: NetworkList,
}

impl NetworkPlan {
    /// The client's address: the peer, or what trusted proxies say the peer was.
    pub fn client_address(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if self.trusted_proxies.is_empty() || !self.trusted_proxies.contains(peer) {
            return Some(peer);
        }
        let mut client = peer;
        // Several header lines count as one list, in order (RFC 9110 §5.3).
        let hops: Vec<&str> = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev() {
            let Some(addr) = parse_hop(hop) else {
                // A hop we cannot read ends what can be believed; the last one read stands.
                break;
            };
            client = canonical(addr);
            if !self.trusted_proxies.contains(client) {
                break;
            }
        }
        Some(client)
    }

    /// The gateway-wide check on the client's address.
    pub fn check(&self, client: Option<IpAddr>) -> Result<(), Refusal> {
        let Some(client) = client else {
            return Ok(());
        };
        if self.deny.contains(client) || (!self.allow.is_empty() && !self.allow.contains(client)) {
            return Err(denied());
        }
        Ok(())
    }
}

/// A route's own allow list (`allow_from`), checked after routing.
pub fn check_route(allow_from: &NetworkList, client: Option<IpAddr>) -> Result<(), Refusal> {
    match client {
        Some(client) if !allow_from.is_empty() && !allow_from.contains(client) => Err(denied()),
        _ => Ok(()),
    }
}

fn denied() -> Refusal {
    // The detail does not echo the address or the rule: a scanner learns nothing from it.
    Refusal::new(
        Reason::NetworkDenied,
        "requests from this network are not accepted",
    )
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`[v6]:port`, `v4:port`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(addr) = hop.parse::<IpAddr>() {
        return Some(addr);
    }
    hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn list(items: &[&str]) -> NetworkList {
        NetworkList::new(
            items
                .iter()
                .map(|s| parse_network(s).unwrap_or_else(|e| panic!("{e}")))
                .collect(),
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                X_FORWARDED_FOR,
                HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        h
    }

    #[test]
    fn networks_parse_with_clear_errors() {
        assert_eq!(parse_network("10.0.0.0/8").map(|n| n.prefix_len()), Ok(8));
        assert_eq!(
            parse_network("2001:db8::1").map(|n| n.prefix_len()),
            Ok(128)
        );
        let err = parse_network("10.0.0.1/8").err().unwrap_or_default();
        assert!(err.contains("10.0.0.0/8"), "{err}");
        assert!(parse_network("ten.0.0.0/8").is_err());
    }

    #[test]
    fn deny_wins_and_allow_lists_close_everything_else() {
        let plan = NetworkPlan {
            allow: list(&["10.0.0.0/8", "2001:db8::/32"]),
            deny: list(&["10.6.6.0/24", "2001:db8:bad::/48"]),
            trusted_proxies: NetworkList::default(),
        };
        assert!(plan.check(Some(ip("10.1.2.3"))).is_ok());
        assert!(plan.check(Some(ip("2001:db8::7"))).is_ok());
        for refused in ["10.6.6.1", "192.0.2.1", "2001:db8:bad::1", "2001:db9::1"] {
            let r = plan.check(Some(ip(refused)));
            assert_eq!(
                r.map_err(|r| r.reason),
                Err(Reason::NetworkDenied),
                "{refused}"
            );
        }
        // An IPv4-mapped IPv6 address is its IPv4 address.
        assert!(plan.check(Some(ip("::ffff:10.6.6.1"))).is_err());
        assert!(plan.check(Some(ip("::ffff:10.1.2.3"))).is_ok());
    }

    #[test]
    fn route_allow_list_with_both_families() {
        let allow = list(&["192.168.10.0/24", "fd00:10::/64"]);
        assert!(check_route(&allow, Some(ip("192.168.10.9"))).is_ok());
        assert!(check_route(&allow, Some(ip("fd00:10::9"))).is_ok());
        assert!(check_route(&allow, Some(ip("192.168.11.9"))).is_err());
        assert!(check_route(&allow, Some(ip("fd00:11::9"))).is_err());
        assert!(check_route(&NetworkList::default(), Some(ip("192.0.2.1"))).is_ok());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let plan = NetworkPlan {
            trusted_proxies: list(&["10.0.0.0/8"]),
            ..NetworkPlan::default()
        };
        // An untrusted peer's header is ignored: the peer is the client.
        let spoofed = xff(&["198.51.100.7"]);
        assert_eq!(
            plan.client_address(Some(ip("203.0.113.5")), &spoofed),
            Some(ip("203.0.113.5"))
        );
        // From a trusted proxy: the rightmost untrusted hop, not what the client prepended.
        let chain = xff(&["1.2.3.4, 198.51.100.7", "10.0.0.2"]);
        assert_eq!(
            plan.client_address(Some(ip("10.0.0.1")), &chain),
            Some(ip("198.51.100.7"))
        );
        // IPv6 and ports.
        let v6 = xff(&["[2001:db8::5]:4711"]);
        assert_eq!(
            plan.client_address(Some(ip("10.0.0.1")), &v6),
            Some(ip("2001:db8::5"))
        );
        // Garbage stops the walk at the last readable hop.
        let junk = xff(&["198.51.100.7, not-an-address"]);
        assert_eq!(
            plan.client_address(Some(ip("10.0.0.1")), &junk),
            Some(ip("10.0.0.1"))
        );
        // No header: the proxy itself.
        assert_eq!(
            plan.client_address(Some(ip("10.0.0.1")), &HeaderMap::new()),
            Some(ip("10.0.0.1"))
        );
    }
}
