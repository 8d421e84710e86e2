//! What vxlan:// and vxvde:// share: their options, the multicast socket
//! set-up, and the table that learns behind which peer each MAC lives.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;

use super::inet::{lookup_error, resolve, Family};
use super::OpenError;
use crate::number::{self, BadNumber};
use crate::sys::{self, SockAddr};
use crate::url::Locator;

pub(crate) const DEFAULT_GROUP_V4: &str = "239.0.0.1";
pub(crate) const DEFAULT_GROUP_V6: &str = "ff05:56de::1";
const DEFAULT_HASHSIZE: usize = 1024;
/// Seconds a learned address stays valid (vdeplug4's `STDEXPIRETIME`).
const DEFAULT_EXPIRE: u64 = 128;
/// The largest table we make, whatever `hashsize=` asks for.
const MAX_HASHSIZE: usize = 1 << 20;

/// The raw option values of a vxlan:// or vxvde:// locator, by key.
#[derive(Debug, Default, Clone)]
pub(crate) struct VxOptions {
    /// `vxlan` or `vxvde`, for messages.
    pub(crate) module: String,
    pub(crate) address: String,
    pub(crate) port: Option<String>,
    pub(crate) vni: Option<String>,
    pub(crate) grp: Option<String>,
    pub(crate) ttl: Option<String>,
    pub(crate) rcvbuf: Option<String>,
    pub(crate) v6: bool,
    pub(crate) v4: bool,
    pub(crate) hashsize: Option<String>,
    pub(crate) expiretime: Option<String>,
    pub(crate) ifname: Option<String>,
    pub(crate) bind: Option<String>,
}

impl VxOptions {
    /// Reads `ADDRESS/key=value/...` against the module's keys (in the C
    /// module's order, which decides what an abbreviation means).
    pub(crate) fn parse(module: &str, rest: &str, keys: &[&str]) -> Result<VxOptions, OpenError> {
        let loc = Locator::parse_slashed(module, rest);
        let params = loc.resolve(keys, None).map_err(OpenError::invalid)?;
        let mut o = VxOptions {
            module: module.to_string(),
            address: loc.address.clone(),
            ..VxOptions::default()
        };
        for (k, v) in params {
            match k {
                "port" => o.port = Some(v),
                "vni" => o.vni = Some(v),
                "grp" => o.grp = Some(v),
                "ttl" => o.ttl = Some(v),
                "rcvbuf" => o.rcvbuf = Some(v),
                "v6" => o.v6 = true,
                "v4" => o.v4 = true,
                "hashsize" => o.hashsize = Some(v),
                "expiretime" => o.expiretime = Some(v),
                "if" => o.ifname = Some(v),
                _ => o.bind = Some(v),
            }
        }
        Ok(o)
    }

    /// The multicast group and port: the address given or the default one
    /// (IPv6 with `v6`), restricted to `family`.
    pub(crate) fn group(
        &self,
        default_port: &str,
        family: Family,
    ) -> Result<SocketAddr, OpenError> {
        let host = if self.address.is_empty() {
            if self.v6 {
                DEFAULT_GROUP_V6
            } else {
                DEFAULT_GROUP_V4
            }
        } else {
            self.address.as_str()
        };
        let port = self.port.as_deref().unwrap_or(default_port);
        resolve(host, port, family).ok_or_else(|| {
            // The C module's line, then its errno.
            OpenError::with_detail(
                libc::ENOENT,
                format!("{} getaddrinfo: {}", self.module, lookup_error(host, port)),
            )
        })
    }

    /// `ttl=`, 0 to 255 (default 1).
    pub(crate) fn ttl(&self) -> Result<i32, OpenError> {
        self.ttl.as_deref().map_or(Ok(1), |t| {
            number::decimal("ttl", t, 0..=255)
                .map(|t| t as i32)
                .map_err(invalid)
        })
    }

    /// `rcvbuf=`: bytes, with a k, m or g suffix as vdeplug4 allows.
    pub(crate) fn rcvbuf(&self) -> Result<Option<libc::c_int>, OpenError> {
        let Some(r) = self.rcvbuf.as_deref() else {
            return Ok(None);
        };
        let (digits, shift) = match r.as_bytes().last() {
            Some(b'k' | b'K') => (&r[..r.len() - 1], 10),
            Some(b'm' | b'M') => (&r[..r.len() - 1], 20),
            Some(b'g' | b'G') => (&r[..r.len() - 1], 30),
            _ => (r, 0),
        };
        let max = i32::MAX as u64 >> shift;
        let n = number::decimal("rcvbuf", digits, 0..=max).map_err(|mut e| {
            e.value = r.to_string();
            invalid(e)
        })?;
        Ok(Some((n << shift) as libc::c_int))
    }

    pub(crate) fn ifindex(&self) -> u32 {
        let Some(name) = self.ifname.as_deref() else {
            return 0;
        };
        let Ok(c) = std::ffi::CString::new(name) else {
            return 0;
        };
        // SAFETY: c is a valid C string.
        unsafe { libc::if_nametoindex(c.as_ptr()) }
    }

    /// The learning table of `hashsize=` entries (0: learn nothing, every
    /// frame to the group), valid for `expiretime=` seconds.
    pub(crate) fn table(&self) -> Result<MacTable, OpenError> {
        let size = match self.hashsize.as_deref() {
            None => DEFAULT_HASHSIZE,
            Some(h) => {
                number::decimal("hashsize", h, 0..=MAX_HASHSIZE as u64).map_err(invalid)? as usize
            }
        };
        let expire = match self.expiretime.as_deref() {
            None => DEFAULT_EXPIRE,
            Some(e) => {
                number::decimal("expiretime (s)", e, 1..=u64::from(u32::MAX)).map_err(invalid)?
            }
        };
        Ok(MacTable::new(size, expire))
    }
}

/// A bad number: the message names it.
pub(crate) fn invalid(e: BadNumber) -> OpenError {
    OpenError::invalid(e)
}

/// A group name or number as vdeplug4's `vde_grnam2gid` reads it: empty
/// is our effective group, digits are a number (at most `max`), a name is
/// looked up. An unknown name is an error (vdeplug4 ignores it).
pub(crate) fn group_number(
    what: &'static str,
    name: Option<&str>,
    max: u32,
) -> Result<Option<u32>, OpenError> {
    let Some(name) = name else {
        return Ok(None);
    };
    if name.is_empty() {
        // SAFETY: getegid cannot fail.
        return Ok(Some(unsafe { libc::getegid() }));
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return number::decimal(what, name, 0..=u64::from(max))
            .map(|n| Some(n as u32))
            .map_err(invalid);
    }
    crate::accounts::known_group(name)
        .map(Some)
        .map_err(OpenError::invalid)
}

/// The socket family of an address.
pub(crate) fn af(addr: &IpAddr) -> i32 {
    match addr {
        IpAddr::V4(_) => libc::AF_INET,
        IpAddr::V6(_) => libc::AF_INET6,
    }
}

/// A UDP socket of `addr`'s family, non-blocking.
pub(crate) fn udp_socket(addr: &IpAddr) -> std::io::Result<OwnedFd> {
    sys::socket(af(addr), libc::SOCK_DGRAM, libc::IPPROTO_UDP)
}

pub(crate) fn set_rcvbuf(fd: &OwnedFd, rcvbuf: Option<libc::c_int>) -> std::io::Result<()> {
    match rcvbuf {
        Some(v) => sys::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &v),
        None => Ok(()),
    }
}

/// The hop limit of the multicast datagrams `fd` sends.
pub(crate) fn set_multicast_ttl(fd: &OwnedFd, group: &IpAddr, ttl: i32) -> std::io::Result<()> {
    match group {
        IpAddr::V4(_) => sys::setsockopt(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, &ttl),
        IpAddr::V6(_) => sys::setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, &ttl),
    }
}

/// Whether `fd` hears its own multicast datagrams.
pub(crate) fn set_multicast_loop(fd: &OwnedFd, group: &IpAddr, on: bool) -> std::io::Result<()> {
    let v = libc::c_int::from(on);
    match group {
        IpAddr::V4(_) => sys::setsockopt(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, &v),
        IpAddr::V6(_) => sys::setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, &v),
    }
}

/// Joins `group` on interface `ifindex` (0: the kernel's choice).
pub(crate) fn join_group(fd: &OwnedFd, group: &IpAddr, ifindex: u32) -> std::io::Result<()> {
    match group {
        IpAddr::V4(g) => {
            let multiaddr = libc::in_addr {
                s_addr: u32::from_ne_bytes(g.octets()),
            };
            if ifindex == 0 {
                // The kernel's choice needs no index: the 8-byte form, which
                // qemu-user 7.2 also passes on right for 64-bit targets (it
                // takes a 12-byte ip_mreqn for a shorter one there and sends
                // the kernel an index it never set).
                let req = libc::ip_mreq {
                    imr_multiaddr: multiaddr,
                    imr_interface: libc::in_addr { s_addr: 0 },
                };
                return sys::setsockopt(fd, libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &req);
            }
            let req = libc::ip_mreqn {
                imr_multiaddr: multiaddr,
                imr_address: libc::in_addr { s_addr: 0 },
                imr_ifindex: ifindex as libc::c_int,
            };
            sys::setsockopt(fd, libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &req)
        }
        IpAddr::V6(g) => {
            let req = libc::ipv6_mreq {
                ipv6mr_multiaddr: libc::in6_addr {
                    s6_addr: g.octets(),
                },
                ipv6mr_interface: ifindex,
            };
            sys::setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP, &req)
        }
    }
}

/// Sends multicast datagrams out of interface `ifindex` (when not 0).
pub(crate) fn set_multicast_if(fd: &OwnedFd, group: &IpAddr, ifindex: u32) -> std::io::Result<()> {
    if ifindex == 0 {
        return Ok(());
    }
    match group {
        IpAddr::V4(_) => {
            let req = libc::ip_mreqn {
                imr_multiaddr: libc::in_addr { s_addr: 0 },
                imr_address: libc::in_addr { s_addr: 0 },
                imr_ifindex: ifindex as libc::c_int,
            };
            sys::setsockopt(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &req)
        }
        IpAddr::V6(_) => sys::setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, &ifindex),
    }
}

/// vdeplug4's `vde_hashtable`: a direct-mapped table from a MAC (on
/// VLAN 1) to the peer it was last heard from. A new MAC whose slot is taken
/// evicts the old one, exactly as in C, so both pick the same peers.
pub(crate) struct MacTable {
    entries: Box<[Entry]>,
    mask: u64,
    expire: u64,
}

#[derive(Clone, Copy)]
struct Entry {
    key: u64,
    last_seen: u64,
    peer: Option<SocketAddr>,
}

/// The VLAN vdeplug4's tunnels file every MAC under.
const TABLE_VLAN: u64 = 1;

impl MacTable {
    /// `size` rounded up to a power of two; 0 makes a table that learns
    /// nothing (every frame goes to the group), as in C.
    pub(crate) fn new(size: usize, expire: u64) -> MacTable {
        let n = if size == 0 {
            0
        } else {
            size.next_power_of_two()
        };
        let empty = Entry {
            key: 0,
            last_seen: 0,
            peer: None,
        };
        MacTable {
            entries: vec![empty; n].into_boxed_slice(),
            mask: (n as u64).saturating_sub(1),
            expire,
        }
    }

    /// The C key: the MAC's first four bytes and last two read in host
    /// order, the VLAN above them.
    fn key(mac: &[u8]) -> u64 {
        let lo = u64::from(u32::from_ne_bytes([mac[0], mac[1], mac[2], mac[3]]));
        let hi = u64::from(u16::from_ne_bytes([mac[4], mac[5]])) + (TABLE_VLAN << 16);
        lo.wrapping_add(hi << 32)
    }

    fn index(&self, key: u64) -> usize {
        let mut h = key ^ (key >> 33);
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        (h & self.mask) as usize
    }

    /// Remembers that `src` (a unicast MAC) was heard from `peer` at `now`.
    pub(crate) fn learn(&mut self, src: &[u8], peer: SocketAddr, now: u64) {
        if self.entries.is_empty() || src.len() < 6 || src[0] & 1 == 1 {
            return;
        }
        let key = Self::key(src);
        let i = self.index(key);
        self.entries[i] = Entry {
            key,
            last_seen: now,
            peer: Some(peer),
        };
    }

    /// The peer behind `dst`, if heard from within the expiry time.
    pub(crate) fn lookup(&self, dst: &[u8], now: u64) -> Option<SocketAddr> {
        if self.entries.is_empty() || dst.len() < 6 || dst[0] & 1 == 1 {
            return None;
        }
        let key = Self::key(dst);
        let e = &self.entries[self.index(key)];
        (e.key == key && e.last_seen >= now.saturating_sub(self.expire))
            .then_some(e.peer)
            .flatten()
    }

    /// Forgets every MAC learned from `peer` (it said goodbye).
    pub(crate) fn forget_peer(&mut self, peer: SocketAddr) {
        for e in self.entries.iter_mut() {
            if e.peer == Some(peer) {
                e.last_seen = 0;
            }
        }
    }
}

/// Converts a learned peer for sending.
pub(crate) fn peer_addr(peer: SocketAddr) -> SockAddr {
    SockAddr::from_inet(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(rest: &str) -> VxOptions {
        VxOptions::parse("vxvde", rest, &["ttl", "rcvbuf", "hashsize", "expiretime"]).unwrap()
    }

    #[test]
    fn strict_numbers() {
        assert_eq!(opts("/ttl=7").ttl().unwrap(), 7);
        assert_eq!(opts("").ttl().unwrap(), 1);
        for bad in ["/ttl=256", "/ttl=x", "/ttl=-1", "/ttl="] {
            assert!(opts(bad).ttl().is_err(), "{bad}");
        }
        assert_eq!(opts("/rcvbuf=1k").rcvbuf().unwrap(), Some(1024));
        assert_eq!(opts("/rcvbuf=3M").rcvbuf().unwrap(), Some(3 << 20));
        assert_eq!(opts("/rcvbuf=100").rcvbuf().unwrap(), Some(100));
        for bad in ["/rcvbuf=1x", "/rcvbuf=k", "/rcvbuf=4g", "/rcvbuf=0x10"] {
            assert!(opts(bad).rcvbuf().is_err(), "{bad}");
        }
        assert!(opts("/hashsize=0/expiretime=5").table().is_ok());
        assert!(opts("/hashsize=-1").table().is_err());
        assert!(opts("/expiretime=0").table().is_err());
        assert_eq!(group_number("vni", Some("123"), 255).unwrap(), Some(123));
        assert!(group_number("vni", Some("256"), 255).is_err());
        assert_eq!(group_number("vni", None, 255).unwrap(), None);
        assert!(group_number("grp", Some("no-such-group-here"), 255).is_err());
    }

    #[test]
    fn table_learns_expires_and_forgets() {
        let a: SocketAddr = "198.18.0.1:4000".parse().unwrap();
        let b: SocketAddr = "198.18.0.2:4000".parse().unwrap();
        let mut t = MacTable::new(1000, 10);
        let m1 = [2, 0, 0, 0, 0, 1];
        let m2 = [2, 0, 0, 0, 0, 2];
        t.learn(&m1, a, 100);
        t.learn(&m2, b, 100);
        t.learn(&[0xff; 6], a, 100);
        assert_eq!(t.lookup(&m1, 105), Some(a));
        assert_eq!(t.lookup(&m2, 110), Some(b));
        assert_eq!(t.lookup(&m2, 111), None);
        assert_eq!(t.lookup(&[0xff; 6], 100), None);
        t.forget_peer(a);
        assert_eq!(t.lookup(&m1, 100), None);
        assert_eq!(t.lookup(&m2, 100), Some(b));
        let mut none = MacTable::new(0, 10);
        none.learn(&m1, a, 1);
        assert_eq!(none.lookup(&m1, 1), None);
        // Too short to hold a MAC: nothing learned, nothing found.
        t.learn(&[2, 0], a, 100);
        assert_eq!(t.lookup(&[2, 0], 100), None);
        assert_eq!(t.lookup(&[], 100), None);
        // An unused entry is never a match, even for an all-zero MAC.
        assert_eq!(MacTable::new(4, 10).lookup(&[0; 6], 1 << 32), None);
    }
}
