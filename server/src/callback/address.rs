//! Which addresses the relay may POST callbacks to.
//!
//! A callback URL is chosen by an agent, so without a check an agent could
//! make the relay call its own admin port, a database on the private
//! network or a cloud metadata service (SSRF). Every address the relay is
//! about to connect to passes [`check`]: IP literals before the request,
//! resolved names in the resolver, so the address checked is the address
//! connected to (no DNS-rebinding window). Loopback, private, link-local,
//! CGNAT, multicast, reserved, IPv4-mapped and cloud-metadata ranges are
//! refused unless the operator allows a network with
//! `--callback-allow-cidr`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why an address is refused: the address and the range it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub ip: IpAddr,
    pub range: &'static str,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is {} address, which callbacks may not reach (the relay operator can allow it with --callback-allow-cidr)",
            self.ip, self.range
        )
    }
}

/// Refuses `ip` if it is in a forbidden range and no `allow`ed network
/// holds it. An allowed IPv4 network does not allow the same address
/// written as IPv4-mapped IPv6 (`::ffff:127.0.0.1`): that needs an IPv6
/// network of its own.
pub fn check(ip: IpAddr, allow: &[IpNet]) -> Result<(), Blocked> {
    if allow.iter().any(|net| net.contains(&ip)) {
        return Ok(());
    }
    match forbidden_range(ip) {
        Some(range) => Err(Blocked { ip, range }),
        None => Ok(()),
    }
}

/// The forbidden range `ip` is in, named with its article, if any.
pub fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_range(v4),
        IpAddr::V6(v6) => v6_range(v6),
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, d] = ip.octets();
    Some(match (a, b, c, d) {
        (169, 254, 169, 254) => "a cloud metadata",
        (100, 100, 100, 200) => "a cloud metadata",
        (0, ..) => "an unspecified (\"this network\")",
        (127, ..) => "a loopback",
        (10, ..) => "a private",
        (172, 16..=31, ..) => "a private",
        (192, 168, ..) => "a private",
        (100, 64..=127, ..) => "a carrier-grade NAT (CGNAT)",
        (169, 254, ..) => "a link-local",
        (192, 0, 0, _) => "an IETF protocol assignment",
        (192, 0, 2, _) | (198, 51, 100, _) | (203, 0, 113, _) => "a documentation",
        (198, 18..=19, ..) => "a benchmarking",
        (224..=239, ..) => "a multicast",
        (240..=255, ..) => "a reserved or broadcast",
        _ => return None,
    })
}

fn v6_range(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    if ip.is_unspecified() {
        return Some("an unspecified");
    }
    if ip.is_loopback() {
        return Some("a loopback");
    }
    if ip.to_ipv4_mapped().is_some() {
        return Some("an IPv4-mapped IPv6");
    }
    // fd00:ec2::254: the AWS metadata service over IPv6 (also in fc00::/7).
    if seg == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] {
        return Some("a cloud metadata");
    }
    let embedded_v4 = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    Some(match seg[0] {
        // ::a.b.c.d, the deprecated IPv4-compatible form.
        0 if seg[1..6] == [0; 5] => "an IPv4-compatible IPv6",
        // NAT64 (64:ff9b::/96): the IPv4 address inside decides.
        0x64 if seg[1..6] == [0xff9b, 0, 0, 0, 0] => {
            return v4_range(embedded_v4(seg[6], seg[7]));
        }
        // 6to4 (2002::/16): likewise.
        0x2002 => return v4_range(embedded_v4(seg[1], seg[2])),
        // Teredo (2001::/32) hides an IPv4 address: refused whole.
        0x2001 if seg[1] == 0 => "a Teredo tunnel",
        0x2001 if seg[1] == 0xdb8 => "a documentation",
        0x100 if seg[1..4] == [0; 3] => "a discard-only",
        s if s & 0xfe00 == 0xfc00 => "a unique local (private IPv6)",
        s if s & 0xffc0 == 0xfe80 => "a link-local",
        s if s & 0xffc0 == 0xfec0 => "a site-local",
        s if s & 0xff00 == 0xff00 => "a multicast",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(text: &str) -> Option<&'static str> {
        forbidden_range(text.parse().unwrap())
    }

    #[test]
    fn every_forbidden_ipv4_range_is_refused() {
        for (ip, range) in [
            ("127.0.0.1", "a loopback"),
            ("127.255.255.254", "a loopback"),
            ("0.0.0.0", "an unspecified (\"this network\")"),
            ("10.0.0.1", "a private"),
            ("10.255.255.255", "a private"),
            ("172.16.0.1", "a private"),
            ("172.31.255.255", "a private"),
            ("192.168.1.1", "a private"),
            ("100.64.0.1", "a carrier-grade NAT (CGNAT)"),
            ("100.127.255.255", "a carrier-grade NAT (CGNAT)"),
            ("169.254.0.1", "a link-local"),
            ("169.254.169.254", "a cloud metadata"),
            ("100.100.100.200", "a cloud metadata"),
            ("192.0.0.192", "an IETF protocol assignment"),
            ("192.0.2.1", "a documentation"),
            ("198.18.0.1", "a benchmarking"),
            ("224.0.0.1", "a multicast"),
            ("239.255.255.250", "a multicast"),
            ("240.0.0.1", "a reserved or broadcast"),
            ("255.255.255.255", "a reserved or broadcast"),
        ] {
            assert_eq!(blocked(ip), Some(range), "{ip}");
        }
    }

    #[test]
    fn public_ipv4_addresses_pass_including_the_edges_of_forbidden_ranges() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "9.255.255.255",
            "11.0.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "169.253.255.255",
            "223.255.255.255",
        ] {
            assert_eq!(blocked(ip), None, "{ip}");
        }
    }

    #[test]
    fn every_forbidden_ipv6_range_is_refused() {
        for (ip, range) in [
            ("::", "an unspecified"),
            ("::1", "a loopback"),
            ("::ffff:127.0.0.1", "an IPv4-mapped IPv6"),
            ("::ffff:8.8.8.8", "an IPv4-mapped IPv6"),
            ("::127.0.0.1", "an IPv4-compatible IPv6"),
            ("64:ff9b::10.0.0.1", "a private"),
            ("64:ff9b::169.254.169.254", "a cloud metadata"),
            ("2002:7f00:1::", "a loopback"),
            ("2002:a9fe:a9fe::", "a cloud metadata"),
            ("2001::1", "a Teredo tunnel"),
            ("2001:db8::1", "a documentation"),
            ("100::1", "a discard-only"),
            ("fc00::1", "a unique local (private IPv6)"),
            ("fd12:3456::1", "a unique local (private IPv6)"),
            ("fd00:ec2::254", "a cloud metadata"),
            ("fe80::1", "a link-local"),
            ("febf::1", "a link-local"),
            ("fec0::1", "a site-local"),
            ("ff02::1", "a multicast"),
        ] {
            assert_eq!(blocked(ip), Some(range), "{ip}");
        }
    }

    #[test]
    fn public_ipv6_addresses_pass() {
        for ip in [
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "64:ff9b::8.8.8.8",
            "2002:808:808::",
        ] {
            assert_eq!(blocked(ip), None, "{ip}");
        }
    }

    #[test]
    fn an_allowed_network_lifts_the_ban_for_its_addresses_only() {
        let allow: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        assert!(check("127.0.0.1".parse().unwrap(), &allow).is_ok());
        let err = check("127.0.0.2".parse().unwrap(), &allow).unwrap_err();
        assert_eq!(err.range, "a loopback");
        // The same address in IPv4-mapped form is not covered by the IPv4 net.
        assert!(check("::ffff:127.0.0.1".parse().unwrap(), &allow).is_err());
        assert!(check("::1".parse().unwrap(), &allow).is_err());
        let err = check("10.1.2.3".parse().unwrap(), &[]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("10.1.2.3 is a private address")
                && text.contains("--callback-allow-cidr"),
            "{text}"
        );
    }
}
