//! `vxvde://[GROUP][/OPTION...]`: vdeplug4's distributed virtual network.
//! Every member has two UDP sockets: one bound to the multicast group and
//! port (14789, shared by every member on a host), and one on an
//! ephemeral port that sends everything and takes unicast replies. Frames
//! travel behind a VXLAN header that must match byte for byte; each member
//! learns behind which peer (address and ephemeral port) a MAC lives and
//! sends it unicast there, the rest to the group. A member's own multicast
//! coming back is recognised and dropped; a header alone says goodbye (the
//! peer's MACs are forgotten), and is what a member sends when it closes.
//!
//! Options: `v4`, `v6`, `port=`, `vni=` (a number or a group name),
//! `grp=` (sets the VNI and the last three bytes of the group address to a
//! group id), `ttl=`, `rcvbuf=`, `hashsize=`, `expiretime=`, `if=`,
//! `bind=` (the local address of the unicast socket).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

use super::dgram::{DatagramLink, Policy, Verdict};
use super::inet::{resolve_host, Family};
use super::mcast::{self, group_number, MacTable, VxOptions};
use super::OpenError;
use crate::batch::{AddrBatch, Datagram};
use crate::sys::{self, SockAddr};
use crate::wire::vxlan::{self as header, VxlanHeader, VNI_MAX, VXLAN_HEADER_LEN};
use crate::wire::ETH_HEADER_LEN;

const KEYS: [&str; 11] = [
    "port",
    "vni",
    "grp",
    "ttl",
    "rcvbuf",
    "v6",
    "v4",
    "hashsize",
    "expiretime",
    "if",
    "bind",
];
const DEFAULT_PORT: &str = "14789";
const DEFAULT_VNI: u32 = 1;
const MULTI: usize = 0;
const UNI: usize = 1;

pub(crate) struct Vxvde {
    label: String,
    vni: u32,
    header: [u8; VXLAN_HEADER_LEN],
    group: SockAddr,
    uniport: u16,
    /// The last of our own IPv6 addresses seen as a sender.
    local_v6: Ipv6Addr,
    table: MacTable,
}

pub(crate) fn open(rest: &str) -> Result<DatagramLink<Vxvde>, OpenError> {
    let opts = VxOptions::parse("vxvde", rest, &KEYS)?;
    let family = match (opts.v4, opts.v6) {
        (true, false) => Family::V4,
        (false, true) => Family::V6,
        _ => Family::Any,
    };
    let grp = group_number("grp", opts.grp.as_deref(), u32::MAX)?;
    let vni = group_number("vni", opts.vni.as_deref(), VNI_MAX)?
        .or(grp)
        .unwrap_or(DEFAULT_VNI);
    let ttl = opts.ttl()?;
    let rcvbuf = opts.rcvbuf()?;
    let table = opts.table()?;
    let mut group = opts.group(DEFAULT_PORT, family)?;
    if let Some(g) = grp {
        group.set_ip(with_group_id(group.ip(), g));
    }
    let ip = group.ip();
    let ifindex = opts.ifindex();

    let multi = mcast::udp_socket(&ip)?;
    let uni = mcast::udp_socket(&ip)?;
    mcast::set_rcvbuf(&uni, rcvbuf)?;
    let one: libc::c_int = 1;
    match ip {
        IpAddr::V4(_) => {
            sys::setsockopt(&uni, libc::IPPROTO_IP, libc::IP_TTL, &ttl)?;
            mcast::set_multicast_ttl(&uni, &ip, ttl)?;
            sys::setsockopt(&multi, libc::IPPROTO_IP, libc::IP_PKTINFO, &one)?;
        }
        IpAddr::V6(_) => {
            mcast::set_multicast_ttl(&uni, &ip, ttl)?;
            sys::setsockopt(&multi, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, &one)?;
        }
    }
    sys::setsockopt(&multi, libc::SOL_SOCKET, libc::SO_REUSEADDR, &one)?;
    sys::bind_addr(&multi, &SockAddr::from_inet(group))
        .map_err(|_| OpenError::errno(libc::ENETUNREACH))?;
    mcast::join_group(&multi, &ip, ifindex)?;
    let local = match opts.bind.as_deref() {
        None => Family::of(&ip).unspecified(),
        Some(b) => resolve_host(b, Family::of(&ip)).ok_or(OpenError::errno(libc::ENOENT))?,
    };
    sys::bind_addr(&uni, &SockAddr::from_inet(SocketAddr::new(local, 0)))
        .map_err(|_| OpenError::errno(libc::ENETUNREACH))?;
    mcast::set_multicast_if(&uni, &ip, ifindex)?;
    let uniport = sys::local_addr(&uni)?.inet().map_or(0, |a| a.port());

    let vni = vni & VNI_MAX;
    let mut hdr = [0u8; VXLAN_HEADER_LEN];
    header::emit(&mut hdr, vni);
    let policy = Vxvde {
        label: format!("vxvde://{rest}"),
        vni,
        header: hdr,
        group: SockAddr::from_inet(group),
        uniport,
        local_v6: match ip {
            IpAddr::V6(a) => a,
            IpAddr::V4(_) => Ipv6Addr::UNSPECIFIED,
        },
        table,
    };
    Ok(DatagramLink::new(policy, vec![multi, uni], &hdr))
}

/// The group address with its last three bytes replaced by group id `gid`.
fn with_group_id(ip: IpAddr, gid: u32) -> IpAddr {
    let low = gid.to_be_bytes();
    match ip {
        IpAddr::V4(a) => {
            let mut o = a.octets();
            o[1..4].copy_from_slice(&low[1..4]);
            IpAddr::from(o)
        }
        IpAddr::V6(a) => {
            let mut o = a.octets();
            o[13..16].copy_from_slice(&low[1..4]);
            IpAddr::from(o)
        }
    }
}

/// Whether `ip` is one of this host's addresses.
fn is_local_v6(ip: &Ipv6Addr) -> bool {
    let mut addrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free below.
    if unsafe { libc::getifaddrs(&mut addrs) } != 0 {
        return false;
    }
    let mut found = false;
    let mut p = addrs;
    while !p.is_null() && !found {
        // SAFETY: p walks the list getifaddrs made.
        let ifa = unsafe { &*p };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points at a sockaddr of the family it names.
            let fam = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if fam == libc::AF_INET6 {
                // SAFETY: the family is AF_INET6.
                let a = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                found = a.sin6_addr.s6_addr == ip.octets();
            }
        }
        p = ifa.ifa_next;
    }
    // SAFETY: the list from getifaddrs above.
    unsafe { libc::freeifaddrs(addrs) };
    found
}

impl Vxvde {
    /// A multicast datagram we sent ourselves, come back.
    fn is_own_echo(&mut self, io: &AddrBatch, i: usize, from: &SocketAddr) -> bool {
        if from.port() != self.uniport {
            return false;
        }
        match from.ip() {
            IpAddr::V4(a) => io.pktinfo_v4_dst(i) == Some(a.octets()),
            IpAddr::V6(a) => {
                if a == self.local_v6 {
                    true
                } else if is_local_v6(&a) {
                    self.local_v6 = a;
                    true
                } else {
                    false
                }
            }
        }
    }
}

impl Policy for Vxvde {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn accept(
        &mut self,
        sock: usize,
        io: &AddrBatch,
        i: usize,
        d: &Datagram,
        frame: &[u8],
        now: u64,
    ) -> Verdict {
        if d.short {
            return Verdict::Runt;
        }
        let ours =
            VxlanHeader::new_checked(io.prefix(i)).is_ok_and(|h| h.matches_exactly(self.vni));
        let Some(from) = io.sender(i).inet() else {
            return Verdict::Ignore;
        };
        if d.len == 0 {
            // A peer's goodbye.
            if ours {
                self.table.forget_peer(from);
            }
            return Verdict::Ignore;
        }
        if d.len <= ETH_HEADER_LEN {
            return Verdict::Runt;
        }
        if !ours || (sock == MULTI && self.is_own_echo(io, i, &from)) {
            return Verdict::Ignore;
        }
        self.table
            .learn(frame.get(6..12).unwrap_or_default(), from, now);
        Verdict::Keep
    }

    fn route(&mut self, frame: &[u8], now: u64) -> Option<SockAddr> {
        Some(match self.table.lookup(frame, now) {
            Some(peer) => mcast::peer_addr(peer),
            None => self.group,
        })
    }

    fn send_socket(&self) -> usize {
        UNI
    }

    fn on_close(&mut self, send: &OwnedFd) {
        // SAFETY: a header-only datagram to the group from our own buffer.
        unsafe {
            libc::sendto(
                send.as_raw_fd(),
                self.header.as_ptr().cast(),
                self.header.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                self.group.as_ptr(),
                self.group.len,
            )
        };
    }
}
