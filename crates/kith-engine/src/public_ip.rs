//! Which IP addresses are public unicast: the only ones a mailbox may be made to contact
//! for a device's push endpoint (server-side request forgery otherwise reaches the
//! mailbox's own host, its LAN or its provider's network).
//!
//! The decision is an allow-list where it can be: for IPv6 only global unicast (`2000::/3`)
//! is public, less the special ranges inside it. IPv6 forms that embed an IPv4 address
//! (IPv4-mapped and IPv4-compatible, NAT64's well-known prefix, 6to4, Teredo) are judged
//! by the IPv4 address they carry, since that is where a packet to them ends up. Ranges
//! follow the IANA special-purpose registries (RFC 6890 and updates).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is a public unicast address: not loopback, private, shared (CGNAT),
/// link-local, unspecified, multicast, broadcast, reserved, documentation or benchmarking,
/// and, for IPv6 forms that embed an IPv4 address, the IPv4 address is public too.
pub fn is_public_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// IPv4 ranges that are not public unicast, as (network, prefix length).
const NOT_PUBLIC_V4: [([u8; 4], u8); 16] = [
    ([0, 0, 0, 0], 8),       // "this network"
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // shared address space (CGNAT)
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation (TEST-NET-1)
    ([192, 31, 196, 0], 24), // AS112
    ([192, 52, 193, 0], 24), // AMT
    ([192, 88, 99, 0], 24),  // 6to4 relay anycast (deprecated)
    ([192, 168, 0, 0], 16),  // private
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation (TEST-NET-2)
    ([203, 0, 113, 0], 24),  // documentation (TEST-NET-3)
    ([224, 0, 0, 0], 3),     // multicast, reserved (240/4) and broadcast
];

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let bits = u32::from(ip);
    !NOT_PUBLIC_V4.iter().any(|&(net, len)| {
        let mask = u32::MAX << (32 - u32::from(len));
        bits & mask == u32::from(Ipv4Addr::from(net))
    })
}

/// The IPv4 address in the last 32 bits.
fn low_v4(v6: Ipv6Addr) -> Ipv4Addr {
    let o = v6.octets();
    Ipv4Addr::new(o[12], o[13], o[14], o[15])
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let o = ip.octets();
    // IPv4-compatible (`::a.b.c.d`, deprecated; `::` and `::1` fall in here and fail as
    // 0.0.0.0/8) and IPv4-mapped (`::ffff:a.b.c.d`).
    if s[..5] == [0; 5] && (s[5] == 0 || s[5] == 0xffff) {
        return is_public_v4(low_v4(ip));
    }
    // NAT64, the well-known prefix 64:ff9b::/96: the IPv4 address is in the last 32 bits.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(low_v4(ip));
    }
    // Everything else outside global unicast 2000::/3: NAT64 for local use (64:ff9b:1::/48,
    // where the IPv4 address sits wherever the operator's prefix ends), discard-only
    // (100::/64), unique local (fc00::/7), link-local (fe80::/10), multicast (ff00::/8),
    // SRv6 (5f00::/16), the other reserved blocks.
    if s[0] & 0xe000 != 0x2000 {
        return false;
    }
    // 6to4, 2002::/16: the IPv4 address is bits 16 to 47.
    if s[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    // Teredo, 2001::/32: the server's IPv4 address is bits 32 to 63, the client's (inverted)
    // the last 32 bits; both must be public.
    if s[0] == 0x2001 && s[1] == 0 {
        let server = Ipv4Addr::new(o[4], o[5], o[6], o[7]);
        let client = Ipv4Addr::from(!u32::from(low_v4(ip)));
        return is_public_v4(server) && is_public_v4(client);
    }
    // The rest of 2001::/23 (IETF protocol assignments: benchmarking, ORCHID, AMT, ...),
    // documentation 2001:db8::/32 and 3fff::/20.
    let ietf = s[0] == 0x2001 && s[1] < 0x200;
    let doc = (s[0] == 0x2001 && s[1] == 0x0db8) || (s[0] & 0xfff0) == 0x3ff0;
    !(ietf || doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row: an address and whether it is public unicast.
    fn check(rows: &[(&str, bool)]) {
        for &(text, public) in rows {
            let ip: IpAddr = text.parse().expect(text);
            assert_eq!(is_public_unicast(ip), public, "{text}");
        }
    }

    #[test]
    fn ipv4_special_ranges_are_not_public() {
        // parse only
        check(&[
            ("1.1.1.1", true),
            ("8.8.8.8", true),
            ("100.63.255.255", true),
            ("100.128.0.0", true),
            ("172.15.255.255", true),
            ("172.32.0.0", true),
            ("192.0.1.1", true),
            ("198.17.255.255", true),
            ("198.20.0.0", true),
            ("223.255.255.255", true),
            ("0.0.0.0", false),
            ("0.1.2.3", false),
            ("10.1.2.3", false),
            ("100.64.0.1", false),
            ("100.127.255.254", false),
            ("127.0.0.1", false),
            ("127.255.255.254", false),
            ("169.254.169.254", false),
            ("172.16.0.1", false),
            ("172.31.255.255", false),
            ("192.0.0.1", false),
            ("192.0.0.170", false),
            ("192.0.2.1", false),
            ("192.88.99.1", false),
            ("192.168.1.1", false),
            ("198.18.0.1", false),
            ("198.19.255.255", false),
            ("198.51.100.7", false),
            ("203.0.113.9", false),
            ("224.0.0.1", false),
            ("239.255.255.250", false),
            ("240.0.0.1", false),
            ("255.255.255.255", false),
        ]);
    }

    #[test]
    fn ipv6_special_ranges_are_not_public() {
        // parse only
        check(&[
            ("2606:4700::1111", true),
            ("2a00:1450:4001::1", true),
            ("2001:4860:4860::8888", true),
            ("::", false),
            ("::1", false),
            ("fc00::1", false),
            ("fd12:3456::1", false),
            ("fe80::1", false),
            ("febf::1", false),
            ("fec0::1", false),
            ("ff02::1", false),
            ("100::1", false),
            ("2001:db8::1", false),
            ("2001:db8:ffff::1", false),
            ("3fff::1", false),
            ("2001:2::1", false),
            ("2001:10::1", false),
            ("64:ff9b:1::1", false),
            ("64:ff9b:1:ffff::808:808", false),
            ("4000::1", false),
        ]);
    }

    #[test]
    fn ipv6_forms_that_embed_ipv4_are_judged_by_it() {
        // parse only
        check(&[
            // IPv4-mapped.
            ("::ffff:8.8.8.8", true),
            ("::ffff:127.0.0.1", false),
            ("::ffff:10.0.0.1", false),
            ("::ffff:169.254.169.254", false),
            ("::ffff:100.64.0.1", false),
            // IPv4-compatible (deprecated).
            ("::8.8.8.8", true),
            ("::127.0.0.1", false),
            ("::192.168.0.1", false),
            // NAT64, well-known prefix.
            ("64:ff9b::808:808", true),
            ("64:ff9b::7f00:1", false),
            ("64:ff9b::a00:1", false),
            ("64:ff9b::a9fe:a9fe", false),
            ("64:ff9b::c000:201", false),
            // 6to4.
            ("2002:808:808::1", true),
            ("2002:7f00:1::1", false),
            ("2002:a00:1::", false),
            ("2002:c0a8:101::1", false),
            ("2002:a9fe:a9fe::1", false),
            // Teredo: server 65.54.227.120, client inverted in the last 32 bits.
            ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", true), // client 8.8.8.8
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", false), // client 127.0.0.1
            ("2001:0:4136:e378:8000:63bf:f5ff:fffe", false), // client 10.0.0.1
            ("2001:0:a00:1:8000:63bf:f7f7:f7f7", false),    // server 10.0.0.1
        ]);
    }
}
