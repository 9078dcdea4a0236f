//! Client addresses written as text, digit by digit: the request context
//! writes its client's address on every request, and a limiter key holds
//! one (an address flood makes a new key every time), so neither goes
//! through the formatter. The text is `Display`'s (RFC 5952 for IPv6); the
//! tests in `rate` compare the two over every shape of address.

/// `ip` at the end of `out`, in the text its `Display` gives (RFC 5952 for
/// IPv6, an IPv4-mapped address dotted), without going through the
/// formatter: the request context writes its client's address on every
/// request.
pub fn push_ip(out: &mut String, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => push_ipv4(out, v4),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => {
                out.push_str("::ffff:");
                push_ipv4(out, v4);
            }
            None => push_ipv6(out, v6.segments()),
        },
    }
}

pub(crate) fn push_ipv4(out: &mut String, v4: std::net::Ipv4Addr) {
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
}

fn push_hex_group(out: &mut String, group: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut started = false;
    for shift in [12, 8, 4, 0] {
        let digit = usize::from((group >> shift) & 0xf);
        if started || digit != 0 || shift == 0 {
            started = true;
            out.push(char::from(HEX[digit]));
        }
    }
}

/// RFC 5952: the longest run of two or more zero groups (the first of equal
/// runs) is written `::`.
pub(crate) fn push_ipv6(out: &mut String, segments: [u16; 8]) {
    let (mut best, mut run) = ((0, 0), (0, 0));
    for (i, &group) in segments.iter().enumerate() {
        if group == 0 {
            if run.1 == 0 {
                run.0 = i;
            }
            run.1 += 1;
            if run.1 > best.1 {
                best = run;
            }
        } else {
            run.1 = 0;
        }
    }
    let write = |out: &mut String, groups: &[u16]| {
        for (i, &group) in groups.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            push_hex_group(out, group);
        }
    };
    if best.1 < 2 {
        write(out, &segments);
    } else {
        write(out, &segments[..best.0]);
        out.push_str("::");
        write(out, &segments[best.0 + best.1..]);
    }
}
