//! Batched datagram I/O straight into and out of the frame ring:
//! one `recvmmsg` fills up to [`BATCH`] ring slots in place, one `sendmmsg`
//! sends up to [`BATCH`] queued frames without copying them.

use std::io;
use std::os::fd::RawFd;

use crate::ring::{FrameRing, Slot};
use crate::stats::LinkStats;
use crate::wire::path_report::is_path_report;
use crate::wire::{ETH_HEADER_LEN, MAX_FRAME};

pub const BATCH: usize = 64;

/// Scratch headers for one batch, made once and reused for every call.
pub struct BatchIo {
    msgs: Box<[libc::mmsghdr]>,
    iovs: Box<[libc::iovec]>,
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
            iovs: vec![iov; BATCH].into_boxed_slice(),
            slots: [0; BATCH],
        }
    }

    fn prepare(&mut self, n: usize) {
        for i in 0..n {
            let hdr = &mut self.msgs[i].msg_hdr;
            hdr.msg_name = std::ptr::null_mut();
            hdr.msg_namelen = 0;
            hdr.msg_iov = &mut self.iovs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = std::ptr::null_mut();
            hdr.msg_controllen = 0;
            hdr.msg_flags = 0;
            self.msgs[i].msg_len = 0;
        }
    }

    /// Receives up to `max` frames from `fd` into free ring slots, tagging
    /// them with `tag`. Runts and truncated (oversize) datagrams are counted
    /// in `stats` and dropped.
    pub fn recv(
        &mut self,
        fd: RawFd,
        ring: &mut FrameRing,
        max: usize,
        tag: u32,
        stats: &mut LinkStats,
    ) -> io::Result<Received> {
        let want = max.min(BATCH).min(ring.free_slots());
        if want == 0 {
            return Ok(Received::default());
        }
        for i in 0..want {
            let slot = ring.reserve().expect("free slots counted above");
            self.slots[i] = slot;
            self.iovs[i] = libc::iovec {
                iov_base: ring.slot_ptr(slot).cast(),
                iov_len: MAX_FRAME,
            };
        }
        self.prepare(want);
        // SAFETY: msgs[..want] point at iovecs over reserved ring slots of
        // MAX_FRAME bytes each, alive for the duration of the call.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                want as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let got = if r < 0 {
            let e = io::Error::last_os_error();
            for i in 0..want {
                ring.unreserve(self.slots[i]);
            }
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(Received {
                    frames: 0,
                    drained: true,
                }),
                io::ErrorKind::Interrupted => Ok(Received::default()),
                _ => Err(e),
            };
        } else {
            r as usize
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
                // A path report is no frame, but a cable carries it. Not
                // counted: a node's bytes in are what its reports tell.
                if is_path_report(&ring.slot_buf(slot)[..len]) {
                    ring.push(slot, len, tag);
                    frames += 1;
                } else {
                    stats.drop_runt += 1;
                    ring.unreserve(slot);
                }
            } else {
                stats.count_in(len);
                ring.push(slot, len, tag);
                frames += 1;
            }
        }
        Ok(Received {
            frames,
            drained: got < want,
        })
    }

    /// Sends the frames in `slots` (at most [`BATCH`]) on the connected
    /// datagram socket `fd`, in order. Returns how many the socket took:
    /// fewer than asked means it is full now.
    pub fn send(
        &mut self,
        fd: RawFd,
        ring: &FrameRing,
        slots: &[Slot],
        stats: &mut LinkStats,
    ) -> io::Result<usize> {
        let n = slots.len().min(BATCH);
        if n == 0 {
            return Ok(0);
        }
        for (i, &slot) in slots[..n].iter().enumerate() {
            let f = ring.frame(slot);
            self.iovs[i] = libc::iovec {
                iov_base: f.as_ptr() as *mut libc::c_void,
                iov_len: f.len(),
            };
        }
        self.prepare(n);
        // msgs[..n] point at iovecs over queued frames in `ring`, which is
        // borrowed for the call.
        let sent = send_messages(fd, &mut self.msgs[..n])?;
        for &slot in &slots[..sent] {
            stats.count_out(ring.frame(slot).len());
        }
        Ok(sent)
    }
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
}

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
        }
    }

    /// Points message `i` at its header (when there is one) and `frame`.
    fn point(&mut self, i: usize, frame: *mut u8, frame_len: usize, recv: bool) {
        let (iov, iovlen) = if self.prefix_len > 0 {
            let hdr = if recv {
                self.prefixes[i].as_mut_ptr()
            } else {
                self.send_prefix.as_mut_ptr()
            };
            self.iovs[i][0] = libc::iovec {
                iov_base: hdr.cast(),
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
        if recv {
            hdr.msg_name = (&mut self.names[i].storage as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_control = self.cmsgs[i].as_mut_ptr().cast();
            hdr.msg_controllen = CMSG_ROOM as _;
        } else {
            hdr.msg_control = std::ptr::null_mut();
            hdr.msg_controllen = 0;
        }
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
            self.point(i, p, MAX_FRAME, true);
        }
        // SAFETY: msgs[..want] point at iovecs over reserved ring slots and
        // this batch's own scratch, all alive for the call.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                want as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            for i in 0..want {
                ring.unreserve(self.slots[i]);
            }
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok((0, true)),
                io::ErrorKind::Interrupted => Ok((0, false)),
                _ => Err(e),
            };
        }
        let got = r as usize;
        for i in got..want {
            ring.unreserve(self.slots[i]);
        }
        for i in 0..got {
            self.names[i].len = self.msgs[i].msg_hdr.msg_namelen;
        }
        Ok((got, got < want))
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

    /// Stages frame `frame` as message `i` of the next send, to `dest`
    /// (`None` on a connected socket).
    pub(crate) fn stage(&mut self, i: usize, frame: &[u8], dest: Option<&crate::sys::SockAddr>) {
        self.point(i, frame.as_ptr() as *mut u8, frame.len(), false);
        let hdr = &mut self.msgs[i].msg_hdr;
        match dest {
            Some(d) => {
                self.names[i] = *d;
                hdr.msg_name = (&mut self.names[i].storage as *mut libc::sockaddr_storage).cast();
                hdr.msg_namelen = d.len;
            }
            None => {
                hdr.msg_name = std::ptr::null_mut();
                hdr.msg_namelen = 0;
            }
        }
    }

    /// Sends the `n` staged messages; the frames they point at must still
    /// be alive. Returns how many the socket took. An error means the
    /// first one could not be sent at all.
    pub(crate) fn send_staged(&mut self, fd: RawFd, n: usize) -> io::Result<usize> {
        if n == 0 {
            return Ok(0);
        }
        // msgs[..n] were staged over live frames and this batch's scratch.
        send_messages(fd, &mut self.msgs[..n])
    }
}
