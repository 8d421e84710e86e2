//! IPv4 and IPv6 names and addresses for the udp, vxlan and vxvde modules,
//! the way their `getaddrinfo` calls read them: numeric addresses, names
//! from `/etc/hosts`, numeric ports. (A static glibc cannot load the NSS
//! modules `getaddrinfo` would need for anything else.)

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const HOSTS: &str = "/etc/hosts";

/// Which address families a look-up may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Any,
    V4,
    V6,
}

impl Family {
    pub(crate) fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    fn admits(self, addr: &IpAddr) -> bool {
        self == Family::Any || self == Family::of(addr)
    }

    /// The wildcard address (`AI_PASSIVE` with no host).
    pub(crate) fn unspecified(self) -> IpAddr {
        match self {
            Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    }
}

/// A numeric port, as glibc's `getaddrinfo` reads a service given in
/// digits: any number, kept modulo 65536 (`99999` is port 34463); an
/// empty one is port 0.
pub(crate) fn parse_port(s: &str) -> Option<u16> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        v = v.saturating_mul(10).saturating_add(u64::from(b - b'0'));
    }
    Some(v as u16)
}

/// A host: a numeric address, or a name in `/etc/hosts` (first match of
/// the family, in file order).
pub(crate) fn resolve_host(host: &str, family: Family) -> Option<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return family.admits(&ip).then_some(ip);
    }
    let text = std::fs::read_to_string(HOSTS).ok()?;
    hosts_lookup(&text, host, family)
}

fn hosts_lookup(text: &str, host: &str, family: Family) -> Option<IpAddr> {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        if family.admits(&ip) && words.any(|w| w.eq_ignore_ascii_case(host)) {
            return Some(ip);
        }
    }
    None
}

/// Why `resolve` found nothing, as `getaddrinfo` says it
/// (`gai_strerror`): the port is looked at first.
pub(crate) fn lookup_error(host: &str, port: &str) -> &'static str {
    if parse_port(port).is_none() {
        "Servname not supported for ai_socktype"
    } else if host.parse::<IpAddr>().is_ok() {
        "Address family for hostname not supported"
    } else {
        "Name or service not known"
    }
}

/// `host` and `port` as one socket address.
pub(crate) fn resolve(host: &str, port: &str, family: Family) -> Option<SocketAddr> {
    let port = parse_port(port)?;
    Some(SocketAddr::new(resolve_host(host, family)?, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_hosts_and_ports() {
        assert_eq!(
            resolve("198.18.0.1", "5000", Family::Any),
            Some("198.18.0.1:5000".parse().unwrap())
        );
        assert_eq!(
            resolve("::1", "7", Family::Any),
            Some("[::1]:7".parse().unwrap())
        );
        assert_eq!(resolve("::1", "7", Family::V4), None);
        assert_eq!(resolve("198.18.0.1", "x", Family::Any), None);
        assert_eq!(
            resolve("198.18.0.1", "99999", Family::Any),
            Some("198.18.0.1:34463".parse().unwrap())
        );
        assert_eq!(
            resolve("198.18.0.1", "", Family::Any),
            Some("198.18.0.1:0".parse().unwrap())
        );
        assert_eq!(resolve("[::1]", "7", Family::Any), None);
    }

    #[test]
    fn lookup_errors_in_getaddrinfo_words() {
        let port = "Servname not supported for ai_socktype";
        assert_eq!(lookup_error("239.0.0.1", "abc"), port);
        assert_eq!(lookup_error("no.such.host", "x1"), port);
        let family = "Address family for hostname not supported";
        assert_eq!(lookup_error("239.0.0.1", "4789"), family);
        assert_eq!(
            lookup_error("no.such.host", "4789"),
            "Name or service not known"
        );
    }

    #[test]
    fn hosts_file() {
        let text = "# c\n127.0.0.1 localhost\n::1 localhost ip6-localhost # x\nbad line\n";
        assert_eq!(
            hosts_lookup(text, "localhost", Family::Any),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            hosts_lookup(text, "LOCALHOST", Family::V6),
            Some("::1".parse().unwrap())
        );
        assert_eq!(hosts_lookup(text, "x", Family::Any), None);
    }
}
