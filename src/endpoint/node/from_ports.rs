//! Frames read from ports, in batches, into the lane toward the host; each
//! batch then goes through the kind's "frames from port N" entry point
//! ([`Kind::frames_from_port`](super::kind::Kind::frames_from_port)). Ports that are
//! leaving are read until drained, so what a cable sent before it left
//! still arrives.

use std::os::fd::AsRawFd;
use std::time::Instant;

use log::debug;

use super::kind::FromPort;
use super::ports::PortId;
use super::NetNode;
use crate::lane::Lane;
use crate::wire::path_report::is_path_report;
use crate::wire::ETH_HEADER_LEN;

/// What one read of a port gave.
enum Read {
    Frames(usize),
    Drained(usize),
    Failed,
}

impl NetNode {
    /// Reads every readable connected port once, starting one further
    /// each pass for fairness, while the lane (and the kind) has room.
    pub(super) fn read_ports(&mut self, lane: &mut Lane) -> usize {
        let n = self.ports.active().len();
        let mut total = 0;
        for k in 0..n {
            let id = self.ports.active()[(self.read_from + k) % n];
            if !self.ports.get(id).is_some_and(|p| p.readable) {
                continue;
            }
            match self.read_port(lane, id) {
                None => break,
                Some(Read::Frames(got)) => total += got,
                Some(Read::Drained(got)) => {
                    if let Some(p) = self.ports.get_mut(id) {
                        p.readable = false;
                    }
                    total += got;
                }
                Some(Read::Failed) => self.ports.mark_gone(id),
            }
        }
        self.read_from = self.read_from.wrapping_add(1);
        total
    }

    /// Reads what leaving ports still hold; a drained one is removed.
    pub(super) fn drain_leaving(&mut self, lane: &mut Lane) -> usize {
        let mut total = 0;
        let mut i = 0;
        while i < self.leaving.len() {
            let id = self.leaving[i];
            match self.read_port(lane, id) {
                None => break,
                Some(Read::Frames(got)) => {
                    total += got;
                    i += 1;
                }
                Some(Read::Drained(got)) => {
                    total += got;
                    self.remove_port(id);
                }
                Some(Read::Failed) => self.remove_port(id),
            }
        }
        total
    }

    /// One batched read of port `id` into `lane`, then the kind's work on
    /// what came. `None` when there is no room to read into.
    fn read_port(&mut self, lane: &mut Lane, id: PortId) -> Option<Read> {
        let room = self.kind.read_limit().min(lane.ring.free_slots());
        if room == 0 {
            return None;
        }
        let Some(port) = self.ports.get_mut(id) else {
            return Some(Read::Failed);
        };
        let Some(fd) = port.data.as_ref().map(|d| d.as_raw_fd()) else {
            return Some(Read::Drained(0));
        };
        // Our cables carry path reports, which are no frames: kept for the
        // kind (`take_messages`), not counted as runts.
        let got = match lane
            .io
            .recv(fd, &mut lane.ring, room, &mut port.stats, is_path_report)
        {
            Ok(r) => r,
            Err(e) => {
                debug!("{}: port {id}: {e}", self.label);
                return Some(Read::Failed);
            }
        };
        if got.frames > 0 {
            let count = self.take_messages(lane, id, got.frames);
            let got = FromPort { port: id, count };
            self.kind.frames_from_port(&mut self.ports, lane, got);
        }
        Some(if got.drained {
            Read::Drained(got.frames)
        } else {
            Read::Frames(got.frames)
        })
    }

    /// Takes the messages shorter than a frame (path reports) out of the
    /// `count` newest frames of `lane`, just read from port `from`: the
    /// kind reads them, the host never sees them. Returns how many frames
    /// are left. (Only messages are that short here: the ports' reads drop
    /// every other runt.)
    fn take_messages(&mut self, lane: &mut Lane, from: PortId, count: usize) -> usize {
        let now = Instant::now();
        let ring = &mut lane.ring;
        let queued = ring.queued().len();
        let mut messages = 0;
        for i in queued - count..queued {
            let slot = ring.queued()[i];
            if ring.frame(slot).len() >= ETH_HEADER_LEN {
                continue;
            }
            self.kind
                .message_from_port(&self.ports, from, ring.frame(slot), now);
            ring.mark_done(slot);
            messages += 1;
        }
        if messages > 0 {
            ring.sweep();
        }
        count - messages
    }
}
