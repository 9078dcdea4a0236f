/// How many hits a key may make per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub period_secs: u32,
}

impl Quota {
    #[must_use]
    pub const fn new(limit: u32, period_secs: u32) -> Self {
        Self { limit, period_secs }
    }
}

/// A limiter's answer, with what the `X-RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the key's budget is whole again.
    pub reset_after_secs: u64,
    /// Seconds until the next hit would be allowed (0 when allowed).
    pub retry_after_secs: u64,
}

/// The part of a client's address that per-address limits count by: an IPv4
/// address as it is (an IPv4-mapped IPv6 address counts as the IPv4 one), an
/// IPv6 address by its /64 prefix, since one subscriber usually holds a whole
/// /64 and could otherwise take a fresh budget for every address in it.
/// Anything that is not an address (or none at all) is `unknown`, one key
/// shared by every such request.
#[must_use]
pub fn address_key(ip: Option<&str>) -> String {
    use std::net::IpAddr;

    match ip.and_then(|ip| ip.trim().parse::<IpAddr>().ok()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let prefix = u128::from(v6) & (u128::MAX << 64);
                format!("{}/64", std::net::Ipv6Addr::from(prefix))
            }
        },
        None => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::address_key;

    #[test]
    fn ipv6_clients_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(address_key(Some("203.0.113.9")), "203.0.113.9");
        assert_eq!(address_key(Some("::ffff:203.0.113.9")), "203.0.113.9");
        assert_eq!(address_key(Some("2001:db8:1:2:aaaa:bbbb:cccc:dddd")), "2001:db8:1:2::/64");
        assert_eq!(address_key(Some("2001:db8:1:2::1")), address_key(Some("2001:db8:1:2:ffff::9")));
        assert_ne!(address_key(Some("2001:db8:1:2::1")), address_key(Some("2001:db8:1:3::1")));
        assert_eq!(address_key(Some("::1")), "::/64");
        for nothing in [None, Some(""), Some("unknown"), Some("1.2.3.4:80"), Some("[::1]")] {
            assert_eq!(address_key(nothing), "unknown", "{nothing:?}");
        }
    }
}
