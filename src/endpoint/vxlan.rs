//! `vxlan://[GROUP][/OPTION...]`: a VXLAN network, as vdeplug4's vxlan
//! module joins it. One UDP socket bound to the VXLAN port (4789) on every
//! address, a member of the multicast group, deaf to its own multicast.
//! Each frame travels behind an 8-byte VXLAN header; frames to a MAC heard
//! recently go to the peer it was heard from (on the VXLAN port), the rest
//! to the group.
//!
//! Options: `v4`, `v6` (only the default group's family: the C module reads
//! them after choosing the address family), `port=`, `vni=`, `ttl=`,
//! `rcvbuf=`, `hashsize=`, `expiretime=`, `if=`.

use std::net::SocketAddr;

use super::dgram::{DatagramLink, Policy, Verdict};
use super::inet::Family;
use super::mcast::{self, invalid, MacTable, VxOptions};
use super::OpenError;
use crate::batch::{AddrBatch, Datagram};
use crate::number;
use crate::sys::{self, SockAddr};
use crate::wire::vxlan::{self as header, VxlanHeader, VNI_MAX, VXLAN_HEADER_LEN};
use crate::wire::ETH_HEADER_LEN;

const KEYS: [&str; 9] = [
    "port",
    "vni",
    "ttl",
    "rcvbuf",
    "v6",
    "v4",
    "hashsize",
    "expiretime",
    "if",
];
const DEFAULT_PORT: &str = "4789";

pub(crate) struct Vxlan {
    label: String,
    vni: u32,
    group: SockAddr,
    port: u16,
    table: MacTable,
}

pub(crate) fn open(rest: &str) -> Result<DatagramLink<Vxlan>, OpenError> {
    let opts = VxOptions::parse("vxlan", rest, &KEYS)?;
    let group = opts.group(DEFAULT_PORT, Family::Any)?;
    let ip = group.ip();
    let ifindex = opts.ifindex();
    let ttl = opts.ttl()?;
    let rcvbuf = opts.rcvbuf()?;
    let table = opts.table()?;
    let vni = match opts.vni.as_deref() {
        None => 1,
        Some(v) => number::decimal("vni", v, 0..=u64::from(VNI_MAX)).map_err(invalid)? as u32,
    };
    let fd = mcast::udp_socket(&ip)?;
    mcast::set_rcvbuf(&fd, rcvbuf)?;
    mcast::set_multicast_ttl(&fd, &ip, ttl)?;
    mcast::set_multicast_loop(&fd, &ip, false)?;
    let any = SocketAddr::new(Family::of(&ip).unspecified(), group.port());
    sys::bind_addr(&fd, &SockAddr::from_inet(any))
        .map_err(|_| OpenError::errno(libc::ENETUNREACH))?;
    mcast::join_group(&fd, &ip, ifindex)?;
    mcast::set_multicast_if(&fd, &ip, ifindex)?;
    let mut hdr = [0u8; VXLAN_HEADER_LEN];
    header::emit(&mut hdr, vni);
    let policy = Vxlan {
        label: format!("vxlan://{rest}"),
        vni,
        group: SockAddr::from_inet(group),
        port: group.port(),
        table,
    };
    Ok(DatagramLink::new(policy, vec![fd], &hdr))
}

impl Policy for Vxlan {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn accept(
        &mut self,
        _sock: usize,
        io: &AddrBatch,
        i: usize,
        d: &Datagram,
        frame: &[u8],
        now: u64,
    ) -> Verdict {
        // The C module wants more than a bare Ethernet header.
        if d.short || d.len <= ETH_HEADER_LEN {
            return Verdict::Runt;
        }
        let ok = VxlanHeader::new_checked(io.prefix(i)).is_ok_and(|h| h.matches_loosely(self.vni));
        if !ok {
            return Verdict::Ignore;
        }
        if let Some(mut from) = io.sender(i).inet() {
            // VXLAN peers are always reached on the VXLAN port.
            from.set_port(self.port);
            self.table
                .learn(frame.get(6..12).unwrap_or_default(), from, now);
        }
        Verdict::Keep
    }

    fn route(&mut self, frame: &[u8], now: u64) -> Option<SockAddr> {
        Some(match self.table.lookup(frame, now) {
            Some(peer) => mcast::peer_addr(peer),
            None => self.group,
        })
    }
}
