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
    let mut key = String::with_capacity(24);
    push_address_key(&mut key, ip);
    key
}

/// [`address_key`] written at the end of `out`: a limiter key is built per
/// request (an address flood makes a new one every time), so it is written
/// digit by digit rather than through `Display`, in the same text.
pub fn push_address_key(out: &mut String, ip: Option<&str>) {
    use std::net::IpAddr;

    use super::address::{push_ipv4, push_ipv6};

    match ip.and_then(|ip| ip.trim().parse::<IpAddr>().ok()) {
        Some(IpAddr::V4(v4)) => push_ipv4(out, v4),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => push_ipv4(out, v4),
            None => {
                let mut prefix = v6.segments();
                prefix[4..].fill(0);
                push_ipv6(out, prefix);
                out.push_str("/64");
            }
        },
        None => out.push_str("unknown"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::address_key;
    use crate::model::address::push_ip;

    /// What the key was before it was written by hand: `Display`'s text.
    fn by_display(ip: IpAddr) -> String {
        match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => format!("{}/64", Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
            },
        }
    }

    #[test]
    fn keys_are_the_text_display_gives_for_every_shape_of_address() {
        // A small generator (no dependency): every octet value, and groups
        // with zeros in each position, so each compression case comes up.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for octet in 0..=255_u8 {
            let ip = IpAddr::V4(Ipv4Addr::new(octet, 255 - octet, octet / 3, 9));
            assert_eq!(address_key(Some(&ip.to_string())), by_display(ip));
        }
        for _ in 0..20_000 {
            let mut groups = [0_u16; 8];
            for group in &mut groups {
                let r = next();
                // Half the groups zero, the others of 1 to 4 hex digits.
                *group = if r % 2 == 0 {
                    0
                } else {
                    u16::try_from((r >> 8) & 0xffff).unwrap_or(1) >> ((r >> 4) % 4 * 4)
                };
            }
            let ip = IpAddr::V6(Ipv6Addr::from(groups));
            assert_eq!(address_key(Some(&ip.to_string())), by_display(ip), "{ip}");
            let mut text = String::new();
            push_ip(&mut text, ip);
            assert_eq!(text, ip.to_string());
            // The same groups as the end of a mapped and of a compatible address.
            for head in [[0, 0, 0, 0, 0, 0xffff], [0; 6]] {
                let mut mixed = [0_u16; 8];
                mixed[..6].copy_from_slice(&head);
                mixed[6..].copy_from_slice(&groups[6..]);
                let ip = IpAddr::V6(Ipv6Addr::from(mixed));
                let mut text = String::new();
                push_ip(&mut text, ip);
                assert_eq!(text, ip.to_string());
            }
        }
        for octet in 0..=255_u8 {
            let ip = IpAddr::V4(Ipv4Addr::new(octet, 0, 255 - octet, octet / 7));
            let mut text = String::new();
            push_ip(&mut text, ip);
            assert_eq!(text, ip.to_string());
        }
    }

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
