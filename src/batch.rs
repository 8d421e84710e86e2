//! Batched datagram I/O straight into and out of the frame ring:
//! one `recvmmsg` fills up to [`BATCH`] ring slots in place, one `sendmmsg`
//! sends up to [`BATCH`] queued frames without copying them.

use std::io;
use std::os::fd::RawFd;

use crate::ring::{FrameRing, Slot};
use crate::stats::LinkStats;
use crate::wire::{ETH_HEADER_LEN, MAX_FRAME};

pub const BATCH: usize = 64;

/// The most bytes an [`Insert`] puts into one frame.
pub(crate) const INSERT_MAX: usize = 16;

/// Bytes that go into each frame on its way out, from a buffer of their
/// own (an iovec between two parts of the frame: no copy of the frame).
/// The sender that needs one (a bonding node numbering its frames) gives
/// it to [`BatchIo::send`].
pub(crate) trait Insert {
    /// Writes what goes into the frame in `slot` into `buf`, and says
    /// where in the frame it goes and how long it is; `None` leaves the
    /// frame as it is.
    fn write(
        &self,
        ring: &FrameRing,
        slot: Slot,
        buf: &mut [u8; INSERT_MAX],
    ) -> Option<(usize, usize)>;
}

/// Scratch headers for one batch, made once and reused for every call.
pub struct BatchIo {
    msgs: Box<[libc::mmsghdr]>,
    /// Per message: the frame, or the frame up to an insert, the insert
    /// and the rest of the frame.
    iovs: Box<[[libc::iovec; 3]]>,
    inserts: Box<[[u8; INSERT_MAX]]>,
    slots: [Slot; BATCH],
}

/// What a batched receive did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Frames queued in the ring.
    pub frames: usize,
    /// The socket had fewer datagrams than asked for: it is drained.
    pub drained: bool,
}

impl Default for BatchIo {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchIo {
    pub fn new() -> Self {
        // SAFETY: mmsghdr and iovec are plain old data; zero is valid.
        let msg: libc::mmsghdr = unsafe { std::mem::zeroed() };
        let iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        BatchIo {
            msgs: vec![msg; BATCH].into_boxed_slice(),
            iovs: vec![[iov; 3]; BATCH].into_boxed_slice(),
            inserts: vec![[0; INSERT_MAX]; BATCH].into_boxed_slice(),
            slots: [0; BATCH],
        }
    }

    /// Points the first `n` headers at their iovecs, `iovlen[i]` each.
    fn prepare(&mut self, n: usize, iovlen: impl Fn(usize) -> usize) {
        for i in 0..n {
            let hdr = &mut self.msgs[i].msg_hdr;
            hdr.msg_name = std::ptr::null_mut();
            hdr.msg_namelen = 0;
            hdr.msg_iov = self.iovs[i].as_mut_ptr();
            hdr.msg_iovlen = iovlen(i);
            hdr.msg_control = std::ptr::null_mut();
            hdr.msg_controllen = 0;
            hdr.msg_flags = 0;
            self.msgs[i].msg_len = 0;
        }
    }

    /// Receives up to `max` frames from `fd` into free ring slots. Runts
    /// and truncated (oversize) datagrams are counted in `stats` and
    /// dropped, but for the short messages `keep_short` accepts (a cable's
    /// path reports), which are queued and not counted.
    pub fn recv(
        &mut self,
        fd: RawFd,
        ring: &mut FrameRing,
        max: usize,
        stats: &mut LinkStats,
        keep_short: fn(&[u8]) -> bool,
    ) -> io::Result<Received> {
        let want = max.min(BATCH).min(ring.free_slots());
        if want == 0 {
            return Ok(Received::default());
        }
        for i in 0..want {
            let slot = ring.reserve().expect("free slots counted above");
            self.slots[i] = slot;
            self.iovs[i][0] = libc::iovec {
                iov_base: ring.slot_ptr(slot).cast(),
                iov_len: MAX_FRAME,
            };
        }
        self.prepare(want, |_| 1);
        // msgs[..want] point at iovecs over reserved ring slots of
        // MAX_FRAME bytes each, alive for the duration of the call; the
        // slots nothing came into are given back below.
        let (got, drained) = match recv_messages(fd, &mut self.msgs[..want]) {
            Ok(r) => r,
            Err(e) => {
                for i in 0..want {
                    ring.unreserve(self.slots[i]);
                }
                return Err(e);
            }
        };
        let mut frames = 0;
        for i in 0..want {
            let slot = self.slots[i];
            if i >= got {
                ring.unreserve(slot);
                continue;
            }
            let len = self.msgs[i].msg_len as usize;
            if self.msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                stats.drop_oversize += 1;
                ring.unreserve(slot);
            } else if len < ETH_HEADER_LEN {
                // Not counted: a bonding node's bytes in are what its path
                // reports tell.
                if keep_short(&ring.slot_buf(slot)[..len]) {
                    ring.push(slot, len);
                    frames += 1;
                } else {
                    stats.drop_runt += 1;
                    ring.unreserve(slot);
                }
            } else {
                stats.count_in(len);
                ring.push(slot, len);
                frames += 1;
            }
        }
        Ok(Received { frames, drained })
    }

    /// Sends the frames in `slots` (at most [`BATCH`]) on the connected
    /// datagram socket `fd`, in order, each with what `insert` puts into it.
    /// Returns how many the socket took: fewer than asked means it is full
    /// now.
    pub(crate) fn send(
        &mut self,
        fd: RawFd,
        ring: &FrameRing,
        slots: &[Slot],
        stats: &mut LinkStats,
        insert: Option<&dyn Insert>,
    ) -> io::Result<usize> {
        let n = slots.len().min(BATCH);
        if n == 0 {
            return Ok(0);
        }
        let mut parts = [1usize; BATCH];
        for (i, &slot) in slots[..n].iter().enumerate() {
            let f = ring.frame(slot);
            let iov = |b: &[u8]| libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            };
            let inserted = insert
                .and_then(|h| h.write(ring, slot, &mut self.inserts[i]))
                .filter(|&(at, len)| at <= f.len() && len <= INSERT_MAX);
            match inserted {
                Some((at, len)) => {
                    let (head, rest) = f.split_at(at);
                    self.iovs[i] = [iov(head), iov(&self.inserts[i][..len]), iov(rest)];
                    parts[i] = 3;
                }
                None => self.iovs[i][0] = iov(f),
            }
        }
        self.prepare(n, |i| parts[i]);
        // msgs[..n] point at iovecs over queued frames in `ring`, which is
        // borrowed for the call, and over `inserts`.
        let sent = send_messages(fd, &mut self.msgs[..n])?;
        for &slot in &slots[..sent] {
            stats.count_out(ring.frame(slot).len());
        }
        Ok(sent)
    }
}

/// One non-blocking `recvmmsg` into `msgs`, whose buffers the caller
/// keeps alive for the call: how many datagrams came, and whether the
/// socket is drained (fewer came than there was room for; none and
/// drained when it had nothing, none and not drained when a signal came).
fn recv_messages(fd: RawFd, msgs: &mut [libc::mmsghdr]) -> io::Result<(usize, bool)> {
    // SAFETY: every header in `msgs` points at buffers that outlive the
    // call (the caller's promise); recvmmsg writes only into them.
    let r = unsafe {
        libc::recvmmsg(
            fd,
            msgs.as_mut_ptr(),
            msgs.len() as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock => Ok((0, true)),
            io::ErrorKind::Interrupted => Ok((0, false)),
            _ => Err(e),
        };
    }
    let got = r as usize;
    Ok((got, got < msgs.len()))
}

/// One non-blocking `sendmmsg` of `msgs`, whose buffers the caller keeps
/// alive for the call: how many went out (0 when the socket is full).
fn send_messages(fd: RawFd, msgs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    // SAFETY: every header in `msgs` points at buffers that outlive the
    // call (the caller's promise); sendmmsg only reads them.
    let r = unsafe {
        libc::sendmmsg(
            fd,
            msgs.as_mut_ptr(),
            msgs.len() as libc::c_uint,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
            _ => Err(e),
        };
    }
    Ok(r as usize)
}

/// The largest fixed header an [`AddrBatch`] puts before each frame.
pub(crate) const PREFIX_MAX: usize = 8;
/// Room for one `IP_PKTINFO` or `IPV6_PKTINFO` control message.
const CMSG_ROOM: usize = 64;

/// Batched datagrams on an unconnected socket: each one has its own peer
/// address and may carry a fixed header (VXLAN's) in front of the frame.
/// The frame part lands in a ring slot in place; the header, the sender's
/// address and the control message land in scratch made once here.
pub(crate) struct AddrBatch {
    msgs: Box<[libc::mmsghdr]>,
    iovs: Box<[[libc::iovec; 2]]>,
    prefixes: Box<[[u8; PREFIX_MAX]]>,
    names: Box<[crate::sys::SockAddr]>,
    cmsgs: Box<[[u64; CMSG_ROOM / 8]]>,
    slots: [Slot; BATCH],
    prefix_len: usize,
    /// The header sent before every frame.
    send_prefix: [u8; PREFIX_MAX],
    /// The send batch being staged: its iovecs (a header and a frame per
    /// frame, message after message), and per message how many frames it
    /// carries and their wire length (see [`AddrBatch::stage`]).
    send_iovs: Box<[libc::iovec]>,
    runs: [Run; BATCH],
    staged: usize,
    staged_frames: usize,
    staged_iovs: usize,
}

/// One staged message: `segments` frames of `seg_len` bytes on the wire
/// (the last may be shorter), to the address in `names`.
#[derive(Clone, Copy, Default)]
struct Run {
    segments: usize,
    seg_len: usize,
    has_dest: bool,
    /// A shorter last segment ends the datagram.
    closed: bool,
}

/// `UDP_SEGMENT` (linux/udp.h): the segment size of a UDP GSO send.
const UDP_SEGMENT: libc::c_int = 103;
/// Segments in one UDP GSO datagram at most (the kernel's
/// `UDP_MAX_SEGMENTS` is 64 or more).
const GSO_MAX_SEGMENTS: usize = 64;
/// UDP payload bytes in one GSO datagram at most (IPv4 allows 65507).
const GSO_MAX_BYTES: usize = 65_000;
/// Longer frames go one per datagram: every segment must fit the path's
/// MTU, and these fit any Ethernet path with room for the headers.
pub(crate) const GSO_MAX_SEGMENT: usize = 1400;

/// One datagram of the last [`AddrBatch::recv`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Datagram {
    pub(crate) slot: Slot,
    /// Bytes after the header (0 when the datagram is shorter than it).
    pub(crate) len: usize,
    /// The whole datagram was shorter than the header.
    pub(crate) short: bool,
    pub(crate) truncated: bool,
}

impl AddrBatch {
    /// `prefix` is the header sent before every frame, and the length of
    /// the header expected before every frame received.
    pub(crate) fn new(prefix: &[u8]) -> AddrBatch {
        assert!(prefix.len() <= PREFIX_MAX);
        // SAFETY: mmsghdr and iovec are plain old data; zero is valid.
        let msg: libc::mmsghdr = unsafe { std::mem::zeroed() };
        let iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        let mut send_prefix = [0u8; PREFIX_MAX];
        send_prefix[..prefix.len()].copy_from_slice(prefix);
        AddrBatch {
            msgs: vec![msg; BATCH].into_boxed_slice(),
            iovs: vec![[iov; 2]; BATCH].into_boxed_slice(),
            prefixes: vec![[0u8; PREFIX_MAX]; BATCH].into_boxed_slice(),
            names: vec![crate::sys::SockAddr::empty(); BATCH].into_boxed_slice(),
            cmsgs: vec![[0u64; CMSG_ROOM / 8]; BATCH].into_boxed_slice(),
            slots: [0; BATCH],
            prefix_len: prefix.len(),
            send_prefix,
            send_iovs: vec![iov; 2 * BATCH].into_boxed_slice(),
            runs: [Run::default(); BATCH],
            staged: 0,
            staged_frames: 0,
            staged_iovs: 0,
        }
    }

    /// Points message `i` at its header scratch (when there is one), at
    /// `frame` and at its address and control scratch, for a receive.
    fn point(&mut self, i: usize, frame: *mut u8, frame_len: usize) {
        let (iov, iovlen) = if self.prefix_len > 0 {
            self.iovs[i][0] = libc::iovec {
                iov_base: self.prefixes[i].as_mut_ptr().cast(),
                iov_len: self.prefix_len,
            };
            self.iovs[i][1] = libc::iovec {
                iov_base: frame.cast(),
                iov_len: frame_len,
            };
            (self.iovs[i].as_mut_ptr(), 2)
        } else {
            self.iovs[i][0] = libc::iovec {
                iov_base: frame.cast(),
                iov_len: frame_len,
            };
            (self.iovs[i].as_mut_ptr(), 1)
        };
        let hdr = &mut self.msgs[i].msg_hdr;
        hdr.msg_iov = iov;
        hdr.msg_iovlen = iovlen;
        hdr.msg_flags = 0;
        self.msgs[i].msg_len = 0;
        hdr.msg_name = (&mut self.names[i].storage as *mut libc::sockaddr_storage).cast();
        hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        hdr.msg_control = self.cmsgs[i].as_mut_ptr().cast();
        hdr.msg_controllen = CMSG_ROOM as _;
    }

    /// Receives up to `max` datagrams into reserved ring slots. Each one
    /// must then be pushed or unreserved by the caller (see
    /// [`AddrBatch::datagram`]). Returns how many arrived and whether the
    /// socket is drained.
    pub(crate) fn recv(
        &mut self,
        fd: RawFd,
        ring: &mut FrameRing,
        max: usize,
    ) -> io::Result<(usize, bool)> {
        let want = max.min(BATCH).min(ring.free_slots());
        if want == 0 {
            return Ok((0, false));
        }
        for i in 0..want {
            let slot = ring.reserve().expect("free slots counted above");
            self.slots[i] = slot;
            let p = ring.slot_ptr(slot);
            self.point(i, p, MAX_FRAME);
        }
        // msgs[..want] point at iovecs over reserved ring slots and this
        // batch's own scratch, all alive for the call.
        let received = recv_messages(fd, &mut self.msgs[..want]);
        let got = received.as_ref().map_or(0, |&(got, _)| got);
        for i in got..want {
            ring.unreserve(self.slots[i]);
        }
        for i in 0..got {
            self.names[i].len = self.msgs[i].msg_hdr.msg_namelen;
        }
        received
    }

    /// Datagram `i` of the last receive.
    pub(crate) fn datagram(&self, i: usize) -> Datagram {
        let total = self.msgs[i].msg_len as usize;
        Datagram {
            slot: self.slots[i],
            len: total.saturating_sub(self.prefix_len),
            short: total < self.prefix_len,
            truncated: self.msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        }
    }

    /// The header received before datagram `i`.
    pub(crate) fn prefix(&self, i: usize) -> &[u8] {
        &self.prefixes[i][..self.prefix_len]
    }

    /// The sender of datagram `i`.
    pub(crate) fn sender(&self, i: usize) -> &crate::sys::SockAddr {
        &self.names[i]
    }

    /// The local address an IPv4 datagram `i` was received on
    /// (`ipi_spec_dst` of `IP_PKTINFO`), when the socket asked for it.
    pub(crate) fn pktinfo_v4_dst(&self, i: usize) -> Option<[u8; 4]> {
        let hdr = &self.msgs[i].msg_hdr;
        // SAFETY: the kernel filled msg_control up to msg_controllen; the
        // CMSG_* helpers stay inside it.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(hdr);
            while !c.is_null() {
                if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_PKTINFO {
                    let info =
                        std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::in_pktinfo);
                    return Some(info.ipi_spec_dst.s_addr.to_ne_bytes());
                }
                c = libc::CMSG_NXTHDR(hdr, c);
            }
        }
        None
    }

    /// Empties the send batch.
    pub(crate) fn clear_staged(&mut self) {
        self.staged = 0;
        self.staged_frames = 0;
        self.staged_iovs = 0;
    }

    /// Stages `frame` for the next send, to `dest` (`None` on a connected
    /// socket); the frame must stay alive until then. With `segment` (a
    /// UDP socket), frames of one length to one address share a datagram
    /// as UDP GSO segments: one trip through the stack for the lot, one
    /// datagram each on the wire. At most [`BATCH`] frames per batch.
    pub(crate) fn stage(
        &mut self,
        frame: &[u8],
        dest: Option<&crate::sys::SockAddr>,
        segment: bool,
    ) {
        assert!(
            self.staged_frames < BATCH,
            "a send batch holds {BATCH} frames"
        );
        let wire = self.prefix_len + frame.len();
        let joins = segment && self.staged > 0 && {
            let run = &self.runs[self.staged - 1];
            let same_dest = match dest {
                None => !run.has_dest,
                Some(d) => run.has_dest && same_addr(&self.names[self.staged - 1], d),
            };
            !run.closed
                && same_dest
                && run.seg_len <= GSO_MAX_SEGMENT
                && wire <= run.seg_len
                && run.segments < GSO_MAX_SEGMENTS
                && (run.segments + 1) * run.seg_len <= GSO_MAX_BYTES
        };
        if !joins {
            let m = self.staged;
            self.staged += 1;
            self.runs[m] = Run {
                segments: 0,
                seg_len: wire,
                has_dest: dest.is_some(),
                closed: false,
            };
            if let Some(d) = dest {
                self.names[m] = *d;
            }
            let first = self.staged_iovs;
            let hdr = &mut self.msgs[m].msg_hdr;
            hdr.msg_iov = self.send_iovs[first..].as_mut_ptr();
            hdr.msg_iovlen = 0;
            hdr.msg_flags = 0;
            self.msgs[m].msg_len = 0;
            match dest {
                Some(d) => {
                    hdr.msg_name =
                        (&mut self.names[m].storage as *mut libc::sockaddr_storage).cast();
                    hdr.msg_namelen = d.len;
                }
                None => {
                    hdr.msg_name = std::ptr::null_mut();
                    hdr.msg_namelen = 0;
                }
            }
        }
        let m = self.staged - 1;
        if self.prefix_len > 0 {
            self.send_iovs[self.staged_iovs] = libc::iovec {
                iov_base: self.send_prefix.as_mut_ptr().cast(),
                iov_len: self.prefix_len,
            };
            self.staged_iovs += 1;
        }
        self.send_iovs[self.staged_iovs] = libc::iovec {
            iov_base: frame.as_ptr() as *mut libc::c_void,
            iov_len: frame.len(),
        };
        self.staged_iovs += 1;
        let run = &mut self.runs[m];
        run.segments += 1;
        run.closed = wire < run.seg_len;
        self.msgs[m].msg_hdr.msg_iovlen += if self.prefix_len > 0 { 2 } else { 1 };
        self.staged_frames += 1;
    }

    /// Whether the first staged message carries several frames (a GSO
    /// datagram).
    pub(crate) fn first_is_segmented(&self) -> bool {
        self.staged > 0 && self.runs[0].segments > 1
    }

    /// Sends the staged messages; the frames they point at must still be
    /// alive. Returns how many frames went out, in order. An error means
    /// the first message could not be sent at all.
    pub(crate) fn send_staged(&mut self, fd: RawFd) -> io::Result<usize> {
        if self.staged == 0 {
            return Ok(0);
        }
        for m in 0..self.staged {
            let run = self.runs[m];
            let hdr = &mut self.msgs[m].msg_hdr;
            if run.segments > 1 {
                let room = &mut self.cmsgs[m];
                // SAFETY: `room` is CMSG_ROOM bytes, u64-aligned, more than
                // CMSG_SPACE of a u16; the CMSG_* helpers stay inside it.
                unsafe {
                    hdr.msg_control = room.as_mut_ptr().cast();
                    hdr.msg_controllen = libc::CMSG_SPACE(2) as _;
                    let c = libc::CMSG_FIRSTHDR(hdr);
                    (*c).cmsg_level = libc::SOL_UDP;
                    (*c).cmsg_type = UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(2) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), run.seg_len as u16);
                }
            } else {
                hdr.msg_control = std::ptr::null_mut();
                hdr.msg_controllen = 0;
            }
        }
        // msgs[..staged] were staged over live frames and this batch's
        // scratch.
        let sent = send_messages(fd, &mut self.msgs[..self.staged])?;
        Ok(self.runs[..sent].iter().map(|r| r.segments).sum())
    }
}

fn same_addr(a: &crate::sys::SockAddr, b: &crate::sys::SockAddr) -> bool {
    let n = a.len as usize;
    a.len == b.len && {
        // SAFETY: both are sockaddr_storage, `n` is at most its size.
        let (x, y) = unsafe {
            (
                std::slice::from_raw_parts(a.as_ptr().cast::<u8>(), n),
                std::slice::from_raw_parts(b.as_ptr().cast::<u8>(), n),
            )
        };
        x == y
    }
}

/// `UDP_GRO` (linux/udp.h): the socket takes coalesced datagrams, each
/// with a control message giving its segment size.
const UDP_GRO: libc::c_int = 104;
/// Datagrams one [`GroBatch::recv`] takes at most.
pub(crate) const GRO_MSGS: usize = 8;
/// Room for one datagram: the largest UDP payload, coalesced or not.
const GRO_ROOM: usize = 1 << 16;

/// Asks for coalesced receives (`UDP_GRO`) on the UDP socket `fd`: a
/// run of datagrams from one sender (the segments of one GSO send on the
/// same host, or what the receiving NIC's GRO merged) then comes up as one
/// buffer and one trip through the receive path instead of one per frame,
/// and takes a single buffer's room in the socket's receive queue. False
/// when the kernel cannot (before Linux 5.0).
pub(crate) fn enable_gro(fd: &std::os::fd::OwnedFd) -> bool {
    let on: libc::c_int = 1;
    crate::sys::setsockopt(fd, libc::SOL_UDP, UDP_GRO, &on).is_ok()
}

/// Batched receives on a UDP socket with `UDP_GRO` on. Each datagram may
/// carry many frames of one length (the last may be shorter), so it lands
/// in scratch of its own (64 KiB, resident only as far as datagrams
/// reach) and its frames are handed out one by one with
/// [`GroBatch::next_frame`] as the ring has room; the socket is read again
/// only when all of them are out, so what the ring cannot take stays in
/// the kernel's queue.
pub(crate) struct GroBatch {
    buf: crate::ring::PageBuf,
    msgs: [libc::mmsghdr; GRO_MSGS],
    iovs: [libc::iovec; GRO_MSGS],
    cmsgs: [[u64; CMSG_ROOM / 8]; GRO_MSGS],
    /// Per datagram of the last receive: its length and segment size.
    lens: [usize; GRO_MSGS],
    segs: [usize; GRO_MSGS],
    truncated: [bool; GRO_MSGS],
    got: usize,
    /// The next frame to hand out: datagram `at`, from byte `off`.
    at: usize,
    off: usize,
}

/// A frame handed out by [`GroBatch::next_frame`].
pub(crate) enum GroFrame<'a> {
    Frame(&'a [u8]),
    /// A datagram too big for its room, or a segment longer than a frame.
    Oversize,
}

impl GroBatch {
    pub(crate) fn new() -> GroBatch {
        // SAFETY: mmsghdr and iovec are plain old data; zero is valid.
        let msg: libc::mmsghdr = unsafe { std::mem::zeroed() };
        let iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        GroBatch {
            buf: crate::ring::PageBuf::new(GRO_MSGS * GRO_ROOM),
            msgs: [msg; GRO_MSGS],
            iovs: [iov; GRO_MSGS],
            cmsgs: [[0; CMSG_ROOM / 8]; GRO_MSGS],
            lens: [0; GRO_MSGS],
            segs: [0; GRO_MSGS],
            truncated: [false; GRO_MSGS],
            got: 0,
            at: 0,
            off: 0,
        }
    }

    /// Whether frames of the last receive are still to be handed out.
    pub(crate) fn pending(&self) -> bool {
        self.at < self.got
    }

    /// Receives up to [`GRO_MSGS`] datagrams; only when none are pending.
    /// Returns how many arrived and whether the socket is drained.
    pub(crate) fn recv(&mut self, fd: RawFd) -> io::Result<(usize, bool)> {
        debug_assert!(!self.pending());
        self.got = 0;
        self.at = 0;
        self.off = 0;
        for i in 0..GRO_MSGS {
            self.iovs[i] = libc::iovec {
                iov_base: self
                    .buf
                    .slice_mut(i * GRO_ROOM, GRO_ROOM)
                    .as_mut_ptr()
                    .cast(),
                iov_len: GRO_ROOM,
            };
            let hdr = &mut self.msgs[i].msg_hdr;
            hdr.msg_name = std::ptr::null_mut();
            hdr.msg_namelen = 0;
            hdr.msg_iov = &mut self.iovs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = self.cmsgs[i].as_mut_ptr().cast();
            hdr.msg_controllen = CMSG_ROOM as _;
            hdr.msg_flags = 0;
            self.msgs[i].msg_len = 0;
        }
        // msgs point at this batch's own iovecs, buffer and control
        // scratch, alive for the call.
        let (got, drained) = recv_messages(fd, &mut self.msgs)?;
        for i in 0..got {
            let hdr = &self.msgs[i].msg_hdr;
            let len = self.msgs[i].msg_len as usize;
            let mut seg = len;
            // SAFETY: the kernel filled msg_control up to msg_controllen;
            // the CMSG_* helpers stay inside it.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(hdr);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == UDP_GRO {
                        let size =
                            std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int);
                        if size > 0 {
                            seg = size as usize;
                        }
                    }
                    c = libc::CMSG_NXTHDR(hdr, c);
                }
            }
            self.lens[i] = len;
            // An empty datagram is one empty frame (a runt).
            self.segs[i] = seg.max(1);
            self.truncated[i] = hdr.msg_flags & libc::MSG_TRUNC != 0;
        }
        self.got = got;
        Ok((got, drained))
    }

    /// The next frame of the last receive, in arrival order.
    pub(crate) fn next_frame(&mut self) -> Option<GroFrame<'_>> {
        if self.at < self.got {
            let i = self.at;
            let (len, seg) = (self.lens[i], self.segs[i]);
            if self.truncated[i] {
                self.at += 1;
                self.off = 0;
                return Some(GroFrame::Oversize);
            }
            // Segment after segment; an empty datagram is one empty frame.
            let at = self.off;
            let n = seg.min(len - at);
            self.off += seg;
            if self.off >= len {
                self.at += 1;
                self.off = 0;
            }
            if n > MAX_FRAME {
                return Some(GroFrame::Oversize);
            }
            Some(GroFrame::Frame(self.buf.slice(i * GRO_ROOM + at, n)))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{self, SockAddr};
    use std::os::fd::AsRawFd;

    /// Frames staged for GSO on one loopback socket come out of a GRO
    /// socket one by one, byte for byte, in order, a shorter last segment
    /// and a lone frame included.
    #[test]
    fn gso_sends_come_out_of_gro_receives_frame_by_frame() {
        let lo = SockAddr::from_inet("127.0.0.1:0".parse().unwrap());
        let tx = sys::socket(libc::AF_INET, libc::SOCK_DGRAM, 0).unwrap();
        let rx = sys::socket(libc::AF_INET, libc::SOCK_DGRAM, 0).unwrap();
        sys::bind_addr(&tx, &lo).unwrap();
        sys::bind_addr(&rx, &lo).unwrap();
        assert!(enable_gro(&rx));
        let dest = sys::local_addr(&rx).unwrap();
        let frames: Vec<Vec<u8>> = [[64usize; 40].as_slice(), &[1000; 20], &[1000, 999], &[70]]
            .concat()
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|b| (b * 7 + i) as u8).collect())
            .collect();
        let mut out = AddrBatch::new(&[]);
        out.clear_staged();
        for f in &frames {
            out.stage(f, Some(&dest), true);
        }
        assert_eq!(out.send_staged(tx.as_raw_fd()).unwrap(), frames.len());
        let mut gro = GroBatch::new();
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut datagrams = 0;
        for _ in 0..100 {
            if got.len() == frames.len() {
                break;
            }
            let (n, _) = gro.recv(rx.as_raw_fd()).unwrap();
            datagrams += n;
            while let Some(f) = gro.next_frame() {
                match f {
                    GroFrame::Frame(f) => got.push(f.to_vec()),
                    GroFrame::Oversize => panic!("oversize"),
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(got == frames, "{} of {} frames", got.len(), frames.len());
        assert!(datagrams < frames.len() / 4, "{datagrams} datagrams");
    }
}
