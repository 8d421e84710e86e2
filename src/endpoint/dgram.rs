//! One endpoint for every module whose frames travel as datagrams on
//! sockets of its own (udp, ptp, seqpacket, vxlan, vxvde): the sockets,
//! their readiness, batched receives and sends through an [`AddrBatch`],
//! and the counters. What differs between modules — which datagrams to
//! keep, where each frame goes, what to do at the end — is a [`Policy`].

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use log::debug;
use mio::{Interest, Registry};

use super::{register_fd, sync_write_interest, token, Endpoint, Ready, Stop};
use crate::batch::{enable_gro, AddrBatch, Datagram, GroBatch, GroFrame, BATCH};
use crate::lane::Lane;
use crate::stats::{LinkStats, StatsTable};
use crate::sys::SockAddr;
use crate::wire::path_report::is_path_report;
use crate::wire::ETH_HEADER_LEN;

/// What to do with a datagram just received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A frame for the other side.
    Keep,
    /// Shorter than a frame: dropped and counted (`runt`).
    Runt,
    /// Not a frame of this link (another VNI, our own echo, a goodbye):
    /// dropped without a count.
    Ignore,
    /// The peer has gone: the link ends.
    End,
}

/// The part of a datagram module that is its own.
pub(crate) trait Policy {
    fn label(&self) -> String;

    /// Datagram `i` of `io`'s last receive arrived on socket `sock`; its
    /// frame part is `frame`. `now` counts seconds.
    fn accept(
        &mut self,
        sock: usize,
        io: &AddrBatch,
        i: usize,
        d: &Datagram,
        frame: &[u8],
        now: u64,
    ) -> Verdict;

    /// Where a frame from the other side goes (`None`: a connected socket).
    fn route(&mut self, frame: &[u8], now: u64) -> Option<SockAddr>;

    /// The socket frames are sent on.
    fn send_socket(&self) -> usize {
        0
    }

    /// Whether a hang-up on a socket ends the link (connected sockets).
    fn ends_on_hangup(&self) -> bool {
        false
    }

    /// Whether the sending socket is UDP, so that frames of one length
    /// can share a datagram as GSO segments.
    fn udp(&self) -> bool {
        false
    }

    /// Last words on the sending socket before it closes.
    fn on_close(&mut self, _send: &OwnedFd) {}
}

struct Sock {
    fd: OwnedFd,
    readable: bool,
    writable: bool,
    write_armed: bool,
}

pub(crate) struct DatagramLink<P: Policy> {
    policy: P,
    socks: Vec<Sock>,
    io: AddrBatch,
    stats: LinkStats,
    side: usize,
    clock: Instant,
    hung_up: bool,
    /// `fill` stopped at its round limit with datagrams left to read.
    more: bool,
    /// Frames of one length are sent as UDP GSO segments (see
    /// [`AddrBatch::stage`]); off for good once the path refuses.
    segments: bool,
    /// Coalesced receives on the (single, UDP) socket: see
    /// [`DatagramLink::with_gro`].
    gro: Option<Box<GroBatch>>,
}

/// Batches one `fill` reads from each socket at most, so that a flood of
/// datagrams that are not frames (another VNI, say) cannot hold the loop.
const FILL_ROUNDS: usize = 16;

/// Seconds on a clock that starts far from zero, so that a never-used
/// table entry (time 0) is never fresh.
const CLOCK_BASE: u64 = 1 << 32;

impl<P: Policy> DatagramLink<P> {
    /// A link over `socks` (the policy's socket indexes), with `prefix`
    /// before every frame on the wire.
    pub(crate) fn new(policy: P, socks: Vec<OwnedFd>, prefix: &[u8]) -> DatagramLink<P> {
        let policy_udp = policy.udp();
        DatagramLink {
            policy,
            socks: socks
                .into_iter()
                .map(|fd| Sock {
                    fd,
                    readable: true,
                    writable: true,
                    write_armed: false,
                })
                .collect(),
            io: AddrBatch::new(prefix),
            stats: LinkStats::default(),
            side: 0,
            clock: Instant::now(),
            hung_up: false,
            more: false,
            segments: policy_udp,
            gro: None,
        }
    }

    /// Receives with `UDP_GRO` when the kernel can: a GSO send of many
    /// frames (ours, on the same host) or a run that the NIC's GRO merged
    /// then costs one trip through the receive path, and one buffer's
    /// room in the socket's queue, instead of one per frame. For a
    /// policy with one UDP socket whose every datagram is a plain frame
    /// (no header, no per-sender rule: `udp://`).
    pub(crate) fn with_gro(mut self) -> DatagramLink<P> {
        if self.socks.len() == 1 && enable_gro(&self.socks[0].fd) {
            self.gro = Some(Box::new(GroBatch::new()));
        }
        self
    }

    /// `fill` for a link with [`DatagramLink::with_gro`]: frames left over
    /// from the last receive go first; the socket is read again only when
    /// all are in the lane.
    fn fill_gro(&mut self, lane: &mut Lane) -> Result<usize, Stop> {
        let Some(gro) = self.gro.as_mut() else {
            return Ok(0);
        };
        let mut total = 0;
        let mut rounds = 0;
        let mut failed = None;
        loop {
            while lane.ring.free_slots() > 0 {
                match gro.next_frame() {
                    None => break,
                    Some(GroFrame::Oversize) => self.stats.drop_oversize += 1,
                    Some(GroFrame::Frame(f)) => match plain_frame(f) {
                        Verdict::Keep => {
                            self.stats.count_in(f.len());
                            lane.ring.push_copy(f);
                            total += 1;
                        }
                        _ => self.stats.drop_runt += 1,
                    },
                }
            }
            if gro.pending() || !self.socks[0].readable || rounds == FILL_ROUNDS {
                break;
            }
            rounds += 1;
            match gro.recv(self.socks[0].fd.as_raw_fd()) {
                Ok((_, drained)) => {
                    if drained {
                        self.socks[0].readable = false;
                    }
                }
                Err(e) => {
                    self.socks[0].readable = false;
                    failed = Some(e);
                    break;
                }
            }
        }
        self.more = lane.ring.free_slots() > 0 && (gro.pending() || self.socks[0].readable);
        if let Some(e) = failed {
            self.recv_error(e)?;
        }
        Ok(total)
    }

    fn now(&self) -> u64 {
        CLOCK_BASE + self.clock.elapsed().as_secs()
    }

    fn recv_error(&self, e: io::Error) -> Result<(), Stop> {
        match e.raw_os_error() {
            Some(libc::ECONNRESET) | Some(libc::ENOTCONN) | Some(libc::EPIPE)
                if self.policy.ends_on_hangup() =>
            {
                Err(Stop::Ended(format!(
                    "{}: the peer went away",
                    self.policy.label()
                )))
            }
            _ => {
                // An ICMP error or the like on a datagram socket: the
                // socket stays usable.
                debug!("{}: receive: {e}", self.policy.label());
                Ok(())
            }
        }
    }
}

impl<P: Policy> Drop for DatagramLink<P> {
    fn drop(&mut self) {
        let send = &self.socks[self.policy.send_socket()].fd;
        self.policy.on_close(send);
    }
}

impl<P: Policy> Endpoint for DatagramLink<P> {
    fn label(&self) -> String {
        self.policy.label()
    }

    fn register(&mut self, registry: &Registry, side: usize) -> io::Result<()> {
        self.side = side;
        for (i, s) in self.socks.iter().enumerate() {
            register_fd(
                registry,
                s.fd.as_raw_fd(),
                token(side, i),
                Interest::READABLE,
            )?;
        }
        Ok(())
    }

    fn sync_interest(&mut self, registry: &Registry) {
        let i = self.policy.send_socket();
        let s = &mut self.socks[i];
        sync_write_interest(
            registry,
            s.fd.as_raw_fd(),
            token(self.side, i),
            s.writable,
            &mut s.write_armed,
        );
    }

    fn on_event(&mut self, _registry: &Registry, local: usize, ready: Ready) -> Result<(), Stop> {
        if let Some(s) = self.socks.get_mut(local) {
            s.readable |= ready.readable || ready.closed;
            s.writable |= ready.writable;
            if ready.closed && self.policy.ends_on_hangup() {
                self.hung_up = true;
            }
        }
        Ok(())
    }

    fn fill(&mut self, lane: &mut Lane) -> Result<usize, Stop> {
        if self.gro.is_some() {
            return self.fill_gro(lane);
        }
        let mut total = 0;
        self.more = false;
        for round in 0.. {
            if round == FILL_ROUNDS {
                self.more = lane.ring.free_slots() > 0 && self.socks.iter().any(|s| s.readable);
                break;
            }
            let mut any = false;
            for s in 0..self.socks.len() {
                if !self.socks[s].readable || lane.ring.free_slots() == 0 {
                    continue;
                }
                any = true;
                let fd = self.socks[s].fd.as_raw_fd();
                let (got, drained) = match self.io.recv(fd, &mut lane.ring, BATCH) {
                    Ok(r) => r,
                    Err(e) => {
                        self.socks[s].readable = false;
                        self.recv_error(e)?;
                        continue;
                    }
                };
                if drained {
                    self.socks[s].readable = false;
                }
                let now = self.now();
                let mut ended = false;
                for i in 0..got {
                    let d = self.io.datagram(i);
                    if ended {
                        lane.ring.unreserve(d.slot);
                        continue;
                    }
                    if d.truncated {
                        self.stats.drop_oversize += 1;
                        lane.ring.unreserve(d.slot);
                        continue;
                    }
                    let frame = &lane.ring.slot_buf(d.slot)[..d.len];
                    match self.policy.accept(s, &self.io, i, &d, frame, now) {
                        Verdict::Keep => {
                            self.stats.count_in(d.len);
                            lane.ring.push(d.slot, d.len);
                            total += 1;
                        }
                        Verdict::Runt => {
                            self.stats.drop_runt += 1;
                            lane.ring.unreserve(d.slot);
                        }
                        Verdict::Ignore => lane.ring.unreserve(d.slot),
                        Verdict::End => {
                            ended = true;
                            lane.ring.unreserve(d.slot);
                        }
                    }
                }
                if ended {
                    self.hung_up = true;
                    self.socks[s].readable = false;
                }
            }
            if !any {
                break;
            }
        }
        if self.hung_up && total == 0 && self.socks.iter().all(|s| !s.readable) {
            return Err(Stop::Ended(format!(
                "{}: the peer went away",
                self.policy.label()
            )));
        }
        Ok(total)
    }

    fn deliver(&mut self, lane: &mut Lane) -> Result<usize, Stop> {
        let si = self.policy.send_socket();
        let fd = self.socks[si].fd.as_raw_fd();
        let mut total = 0;
        while self.socks[si].writable && !lane.ring.is_empty() {
            let now = self.now();
            let queued = lane.ring.queued();
            let n = queued.len().min(BATCH);
            self.io.clear_staged();
            for &slot in &queued[..n] {
                let frame = lane.ring.frame(slot);
                let dest = self.policy.route(frame, now);
                self.io.stage(frame, dest.as_ref(), self.segments);
            }
            match self.io.send_staged(fd) {
                Ok(0) => self.socks[si].writable = false,
                Ok(sent) => {
                    for &slot in &lane.ring.queued()[..sent] {
                        self.stats.count_out(lane.ring.frame(slot).len());
                    }
                    lane.ring.consume_front(sent);
                    total += sent;
                }
                Err(e)
                    if self.io.first_is_segmented()
                        && matches!(
                            e.raw_os_error(),
                            Some(libc::EIO)
                                | Some(libc::EINVAL)
                                | Some(libc::EMSGSIZE)
                                | Some(libc::ENOPROTOOPT)
                                | Some(libc::EOPNOTSUPP)
                        ) =>
                {
                    // The path cannot take UDP GSO (no checksum offload,
                    // an old kernel): one datagram per frame from now on.
                    debug!("{}: send: {e}; no more GSO", self.policy.label());
                    self.segments = false;
                }
                Err(e) => {
                    match e.raw_os_error() {
                        Some(libc::EPIPE) | Some(libc::ECONNRESET) | Some(libc::ENOTCONN)
                            if self.policy.ends_on_hangup() =>
                        {
                            return Err(Stop::Ended(format!(
                                "{}: the peer went away",
                                self.policy.label()
                            )));
                        }
                        _ => {}
                    }
                    // The frame cannot go (no peer yet, no route): dropped,
                    // as the C module's failed sendto drops it.
                    debug!("{}: send: {e}", self.policy.label());
                    self.stats.drop_full += 1;
                    lane.ring.consume_front(1);
                    total += 1;
                }
            }
        }
        Ok(total)
    }

    fn wake_in(&self) -> Option<std::time::Duration> {
        self.more.then_some(std::time::Duration::ZERO)
    }

    fn report(&self, table: &mut StatsTable) {
        table.row(&self.policy.label(), &self.stats, "");
    }
}

/// The common test of the modules without a header: a datagram shorter
/// than an Ethernet header is not a frame (a path report passes: see
/// [`crate::wire::path_report`]).
pub(crate) fn plain_frame(frame: &[u8]) -> Verdict {
    if frame.len() < ETH_HEADER_LEN && !is_path_report(frame) {
        Verdict::Runt
    } else {
        Verdict::Keep
    }
}
