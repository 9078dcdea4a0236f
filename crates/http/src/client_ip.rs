//! Which address a request comes from: the socket's peer, or, when the peer
//! is a proxy we trust, the nearest address in `X-Forwarded-For` that is not
//! one of our proxies.

use std::net::IpAddr;

use ipnet::IpNet;

/// One trusted address or network (`10.0.0.0/8`, `127.0.0.1`, `fd00::/8`).
fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if text.contains('/') {
        return text
            .parse::<IpNet>()
            .map(|net| net.trunc())
            .map_err(|_| format!("{text:?} is not an IP address or CIDR"));
    }
    text.parse::<IpAddr>().map(IpNet::from).map_err(|_| format!("{text:?} is not an IP address or CIDR"))
}

/// Whether `net` holds `ip`; an IPv4-mapped IPv6 address counts as its IPv4 one.
fn holds(net: &IpNet, ip: IpAddr) -> bool {
    let ip = match (net, ip) {
        (IpNet::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        _ => ip,
    };
    net.contains(&ip)
}

/// The proxies whose `X-Forwarded-For` we believe (`AUTH_TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// A comma-separated list of addresses and CIDRs; empty trusts nobody.
    ///
    /// # Errors
    /// A message naming the entry that does not parse.
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(parse_net)
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub(crate) fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| holds(net, ip))
    }

    /// The client's address: the peer's, unless the peer is trusted, in which
    /// case `X-Forwarded-For` is walked from the right (each trusted proxy
    /// appended the address it saw) to the first address that is not a
    /// trusted proxy. An entry that is not a bare IP address (one with a
    /// port, `unknown`, garbage) stops the walk: the hop that wrote it is the
    /// client as far as anyone can tell. Skipping it instead would make the
    /// entry left of it, which the client may have written, the client.
    #[must_use]
    pub(crate) fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: &[&str]) -> Option<IpAddr> {
        let mut client = peer?;
        if !self.trusts(client) {
            return Some(client);
        }
        // Several headers count as one list, in order.
        let entries = forwarded_for.iter().rev().flat_map(|header| header.rsplit(','));
        for entry in entries {
            let Ok(hop) = entry.trim().parse::<IpAddr>() else { return Some(client) };
            client = hop;
            if !self.trusts(hop) {
                return Some(hop);
            }
        }
        Some(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_are_taken_at_their_word_and_nothing_more() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(trusted.client_ip(Some(ip("203.0.113.9")), &["1.2.3.4"]), Some(ip("203.0.113.9")));
    }

    #[test]
    fn trusted_proxies_hand_over_the_nearest_untrusted_address() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1, fd00::/8").unwrap();
        let forwarded = ["198.51.100.7, 203.0.113.5", "10.1.2.3"];
        assert_eq!(trusted.client_ip(Some(ip("127.0.0.1")), &forwarded), Some(ip("203.0.113.5")));
        assert_eq!(trusted.client_ip(Some(ip("10.9.9.9")), &[]), Some(ip("10.9.9.9")));
        assert_eq!(trusted.client_ip(Some(ip("fd00::1")), &["2001:db8::1"]), Some(ip("2001:db8::1")));
    }

    #[test]
    fn an_entry_that_is_no_bare_address_stops_the_walk() {
        let trusted = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").unwrap();
        let peer = Some(ip("127.0.0.1"));
        // The client wrote the left entry; the proxy could only say `unknown`.
        for stopper in ["unknown", "203.0.113.9:4711", "[2001:db8::1]", "garbage", ""] {
            let forwarded = format!("198.51.100.77, {stopper}");
            assert_eq!(trusted.client_ip(peer, &[&forwarded]), peer, "{stopper:?}");
        }
        // Behind two trusted hops, the stop is at the second one.
        assert_eq!(trusted.client_ip(peer, &["198.51.100.77, unknown, 10.0.0.5"]), Some(ip("10.0.0.5")));
        // An empty header list leaves the peer.
        assert_eq!(trusted.client_ip(peer, &[]), peer);
        // Several headers read as one list, the last header nearest.
        assert_eq!(trusted.client_ip(peer, &["198.51.100.1", "10.0.0.7"]), Some(ip("198.51.100.1")));
    }

    #[test]
    fn networks_hold_their_addresses_and_mapped_ones() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 192.168.1.7/24, 2001:db8::/32").unwrap();
        for inside in ["10.255.0.1", "192.168.1.200", "::ffff:10.1.2.3", "2001:db8:ffff::1"] {
            assert!(trusted.trusts(ip(inside)), "{inside}");
        }
        for outside in ["11.0.0.1", "192.168.2.1", "2001:db9::1", "::ffff:11.0.0.1"] {
            assert!(!trusted.trusts(ip(outside)), "{outside}");
        }
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in ["nope", "10.0.0.0/33", "::1/129", "1.2.3"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(TrustedProxies::parse("").unwrap(), TrustedProxies::default());
    }
}
