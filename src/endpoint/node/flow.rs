//! The flow of a frame, for `policy=hash`: like Linux bonding's
//! `layer3+4` hash, the IP addresses and the TCP or UDP ports (not for a
//! fragment, whose ports are in its first piece only), the IP addresses
//! alone for other IP traffic, the two MAC addresses for the rest. Every
//! frame of one flow hashes alike, so a flow keeps to one cable and is
//! never reordered by the bond. And which frames the reorder buffer holds
//! for the lag floor ([`waits_for_floor`]).

use crate::wire::EthernetFrame;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;

/// FNV-1a over the flow's fields.
struct Fnv(u32);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0x811c_9dc5)
    }

    fn eat(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    }
}

/// How many buckets the node's flows are kept in, where it keeps state
/// per flow (the host-side queues, the numbering's last frame of each
/// flow): two flows that share one are served as one.
pub(crate) const FLOW_BUCKETS: usize = 1024;

/// The bucket of `frame`'s flow, below [`FLOW_BUCKETS`].
pub(crate) fn flow_bucket(frame: &[u8]) -> usize {
    flow_hash(frame) as usize % FLOW_BUCKETS
}

/// The hash of `frame`'s flow.
pub(crate) fn flow_hash(frame: &[u8]) -> u32 {
    let mut h = Fnv::new();
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        h.eat(frame);
        return h.0;
    };
    let (ethertype, ip) = eth.payload();
    match ethertype {
        ETHERTYPE_IPV4 if ip.len() >= 20 && ip[0] >> 4 == 4 => {
            h.eat(&ip[12..20]);
            let header = usize::from(ip[0] & 0x0f) * 4;
            let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
            if !fragment && matches!(ip[9], PROTO_TCP | PROTO_UDP) && ip.len() >= header + 4 {
                h.eat(&[ip[9]]);
                h.eat(&ip[header..header + 4]);
            }
        }
        ETHERTYPE_IPV6 if ip.len() >= 40 && ip[0] >> 4 == 6 => {
            h.eat(&ip[8..40]);
            if matches!(ip[6], PROTO_TCP | PROTO_UDP) && ip.len() >= 44 {
                h.eat(&[ip[6]]);
                h.eat(&ip[40..44]);
            }
        }
        _ => {
            h.eat(&eth.dst());
            h.eat(&eth.src());
        }
    }
    mix(h.0)
}

/// Whether the reorder buffer holds `frame` until the slowest live path
/// would have brought it (the floor, docs/multipath.md): a TCP segment that
/// carries data, SYN or FIN, so that a TCP sender measures the slow path's
/// round trip from its first packet (BBR keeps at most twice its bandwidth
/// times its least round trip in flight: one that learnt the fast path's
/// alone would never fill both). Pure ACKs, ICMP, UDP and anything not IP
/// go as soon as their turn comes. An IPv4 fragment or an IPv6 packet with
/// extension headers is held, as it may be such a segment.
pub(crate) fn waits_for_floor(frame: &[u8]) -> bool {
    const SYN_FIN: u8 = 0x03;
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    let (ethertype, ip) = eth.payload();
    let (tcp, ip_len, header) = match ethertype {
        ETHERTYPE_IPV4 if ip.len() >= 20 && ip[0] >> 4 == 4 => {
            if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
                return true;
            }
            let len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            (ip[9] == PROTO_TCP, len, usize::from(ip[0] & 0x0f) * 4)
        }
        ETHERTYPE_IPV6 if ip.len() >= 40 && ip[0] >> 4 == 6 => match ip[6] {
            PROTO_TCP => (
                true,
                40 + usize::from(u16::from_be_bytes([ip[4], ip[5]])),
                40,
            ),
            PROTO_UDP | PROTO_ICMPV6 => (false, 0, 0),
            _ => return true,
        },
        _ => return false,
    };
    if !tcp {
        return false;
    }
    let Some(seg) = ip
        .get(header..ip_len.min(ip.len()))
        .filter(|s| s.len() >= 20)
    else {
        return true;
    };
    let data_at = usize::from(seg[12] >> 4) * 4;
    seg[13] & SYN_FIN != 0 || ip_len > header + data_at
}

/// Spreads every input bit over the whole hash (MurmurHash3's finaliser):
/// FNV's low bit is the parity of the input's low bits, and Linux gives
/// the client ends of connections ports of one parity, so without this
/// `hash % 2` would put every such flow on one cable.
fn mix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ h >> 16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet + IPv4 + TCP/UDP frame (addresses and ports only).
    fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, sport: u16, dport: u16) -> [u8; 60] {
        let mut f = [0u8; 60];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let ip = &mut f[14..];
        ip[0] = 0x45;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        ip[20..22].copy_from_slice(&sport.to_be_bytes());
        ip[22..24].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn one_flow_one_hash_and_ports_matter() {
        let a = ipv4([198, 18, 0, 1], [198, 18, 0, 2], PROTO_TCP, 40000, 5201);
        let mut a_later = a;
        a_later[40..50].copy_from_slice(&[9; 10]); // payload differs
        assert_eq!(flow_hash(&a), flow_hash(&a_later));
        let b = ipv4([198, 18, 0, 1], [198, 18, 0, 2], PROTO_TCP, 40001, 5201);
        assert_ne!(flow_hash(&a), flow_hash(&b));
        // A fragment is hashed by its addresses alone.
        let mut frag = b;
        frag[14 + 6] = 0x20; // more fragments
        let mut frag2 = a;
        frag2[14 + 6] = 0x20;
        assert_eq!(flow_hash(&frag), flow_hash(&frag2));
    }

    #[test]
    fn flows_from_ports_of_one_parity_spread_over_two_cables() {
        let on_cable = |port: u16| {
            flow_hash(&ipv4(
                [198, 18, 0, 1],
                [198, 18, 0, 2],
                PROTO_TCP,
                port,
                5201,
            )) % 2
        };
        let odd: Vec<u32> = (0..8).map(|k| on_cable(40001 + 2 * k)).collect();
        assert!(odd.contains(&0) && odd.contains(&1), "{odd:?}");
    }

    #[test]
    fn tcp_data_syn_and_fin_wait_for_the_floor_acks_and_pings_do_not() {
        // An IPv4 TCP segment with `flags` and `data` bytes.
        let tcp = |flags: u8, data: usize| {
            let mut f = vec![0u8; 14 + 20 + 20 + data];
            let head = ipv4([198, 18, 0, 1], [198, 18, 0, 2], PROTO_TCP, 1, 2);
            let n = head.len().min(f.len());
            f[..n].copy_from_slice(&head[..n]);
            let len = (20 + 20 + data) as u16;
            f[14 + 2..14 + 4].copy_from_slice(&len.to_be_bytes());
            f[14 + 20 + 12] = 5 << 4;
            f[14 + 20 + 13] = flags;
            f
        };
        assert!(waits_for_floor(&tcp(0x02, 0))); // SYN
        assert!(waits_for_floor(&tcp(0x11, 0))); // FIN ACK
        assert!(waits_for_floor(&tcp(0x18, 100))); // data
        assert!(!waits_for_floor(&tcp(0x10, 0))); // pure ACK
                                                  // An ACK padded to Ethernet's minimum is still a pure ACK.
        let mut padded = tcp(0x10, 0);
        padded.resize(60, 0);
        assert!(!waits_for_floor(&padded));
        let ping = ipv4([198, 18, 0, 1], [198, 18, 0, 2], 1, 0, 0);
        assert!(!waits_for_floor(&ping));
        let dns = ipv4([198, 18, 0, 1], [198, 18, 0, 2], PROTO_UDP, 5353, 53);
        assert!(!waits_for_floor(&dns));
    }

    #[test]
    fn other_frames_by_their_addresses() {
        let mut arp = [0u8; 42];
        arp[0..6].copy_from_slice(&[0xff; 6]);
        arp[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        let mut other = arp;
        other[20] = 1;
        assert_eq!(flow_hash(&arp), flow_hash(&other));
        other[11] = 2;
        assert_ne!(flow_hash(&arp), flow_hash(&other));
    }
}
