//! What vxlan:// and vxvde:// share: their options, the multicast socket
//! set-up, and the table that learns behind which peer each MAC lives.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;

use super::inet::{parse_port, resolve_host, Family};
use super::OpenError;
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
        let params = loc.resolve(keys, None).map_err(|e| {
            eprintln!("{e}");
            OpenError(libc::EINVAL)
        })?;
        let mut o = VxOptions {
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
        let found =
            parse_port(port).and_then(|p| Some(SocketAddr::new(resolve_host(host, family)?, p)));
        found.ok_or_else(|| {
            log::warn!("{host} port {port}: cannot resolve");
            OpenError(libc::ENOENT)
        })
    }

    pub(crate) fn ttl(&self) -> i32 {
        self.ttl.as_deref().map_or(1, atoi)
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

    pub(crate) fn table(&self) -> MacTable {
        let size = self
            .hashsize
            .as_deref()
            .map_or(DEFAULT_HASHSIZE as i64, |s| i64::from(atoi(s)));
        let expire = self.expiretime.as_deref().map_or(0, atoi);
        let expire = if expire <= 0 {
            DEFAULT_EXPIRE
        } else {
            expire as u64
        };
        // C reads the size as unsigned: a negative one is huge.
        let size = if size < 0 {
            MAX_HASHSIZE
        } else {
            (size as usize).min(MAX_HASHSIZE)
        };
        MacTable::new(size, expire)
    }
}

/// `atoi`: leading blanks, a sign, digits; 0 when there are none.
pub(crate) fn atoi(s: &str) -> i32 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut v: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        v = (v * 10 + i64::from(b - b'0')).min(1 << 40);
    }
    (if neg { -v } else { v }) as i32
}

/// vdeplug4's `strtoullm`: a number (C prefixes allowed) with k, m, g, t
/// multipliers after it.
pub(crate) fn size_with_suffix(s: &str) -> u64 {
    let t = s.trim_start();
    let (radix, body) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (16, h)
    } else if t.len() > 1 && t.starts_with('0') {
        (8, &t[1..])
    } else {
        (10, t)
    };
    let end = body
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(body.len());
    let mut v = u64::from_str_radix(&body[..end], radix).unwrap_or(0);
    for c in body[end..].chars() {
        let shift = match c {
            'k' | 'K' => 10,
            'm' | 'M' => 20,
            'g' | 'G' => 30,
            't' | 'T' => 40,
            _ => 0,
        };
        v = v.wrapping_shl(shift);
    }
    v
}

/// A group name or number as vdeplug4's `vde_grnam2gid` reads it: empty
/// is our effective group, digits are a number, a name is looked up;
/// `None` when there is none or the name is unknown.
pub(crate) fn group_number(name: Option<&str>) -> Option<u32> {
    let name = name?;
    if name.is_empty() {
        // SAFETY: getegid cannot fail.
        return Some(unsafe { libc::getegid() });
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Some(atoi(name) as u32);
    }
    crate::accounts::group_id(name)
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

pub(crate) fn set_rcvbuf(fd: &OwnedFd, rcvbuf: Option<&str>) -> std::io::Result<()> {
    match rcvbuf {
        Some(r) => {
            let v = size_with_suffix(r) as u32 as libc::c_int;
            sys::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &v)
        }
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
            let req = libc::ip_mreqn {
                imr_multiaddr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(g.octets()),
                },
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

    #[test]
    fn numbers_as_c_reads_them() {
        assert_eq!(atoi(" 42x"), 42);
        assert_eq!(atoi("-3"), -3);
        assert_eq!(atoi("x"), 0);
        assert_eq!(size_with_suffix("1k"), 1024);
        assert_eq!(size_with_suffix("0x10M"), 16 << 20);
        assert_eq!(size_with_suffix("010"), 8);
        assert_eq!(group_number(Some("123")), Some(123));
        assert_eq!(group_number(None), None);
        assert_eq!(group_number(Some("no-such-group-here")), None);
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
