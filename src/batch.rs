//! Batched datagram I/O straight into and out of the frame ring:
//! one `recvmmsg` fills up to [`BATCH`] ring slots in place, one `sendmmsg`
//! sends up to [`BATCH`] queued frames without copying them.

use std::io;
use std::os::fd::RawFd;

use crate::ring::{FrameRing, Slot};
use crate::stats::LinkStats;
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
                stats.drop_runt += 1;
                ring.unreserve(slot);
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
        // SAFETY: msgs[..n] point at iovecs over queued frames in `ring`,
        // which is borrowed for the call; sendmmsg only reads them.
        let r = unsafe {
            libc::sendmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                n as libc::c_uint,
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
        let sent = r as usize;
        for &slot in &slots[..sent] {
            stats.count_out(ring.frame(slot).len());
        }
        Ok(sent)
    }
}
