//! The port table of a node: a slab of ports addressed by small ids (the
//! ids make the poll tokens), plus the list of connected ports in the
//! order vdeplug4 keeps them, which its round robin walks. A port holds
//! what every node kind needs of it: its handshake, its readiness, its
//! place in the queues it is fanned out from, its counters; a kind keeps
//! anything more in a table of its own, by port id.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use crate::batch::{BatchIo, Insert, BATCH};
use crate::ring::{FrameRing, Slot};
use crate::stats::LinkStats;
use crate::sys::UnlinkOnDrop;
use crate::wire::request::MAX_REQUEST_LEN;

pub type PortId = usize;

pub struct Port {
    /// The accepted control stream; its end ends the port.
    pub(crate) ctl: OwnedFd,
    /// The datagram socket, once the request was honoured.
    pub(crate) data: Option<OwnedFd>,
    /// The request as read so far.
    pub(crate) request: [u8; MAX_REQUEST_LEN],
    pub(crate) request_len: usize,
    pub(crate) description: String,
    pub(crate) stats: LinkStats,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// WRITABLE is registered (only while the socket is full).
    pub(crate) write_armed: bool,
    pub(crate) accepted: Instant,
    /// Frames picked for this port in the batch being sent.
    pub(crate) outbox: Vec<Slot>,
    /// This port's place in the queues it is fanned out from (hub, multi,
    /// switch): how many of the frames queued from the host, and from the
    /// other ports, it is done with (see `fan_out::Queue`).
    pub(crate) cursor: [usize; 2],
    /// Since when the port has been full (no room in its socket).
    pub(crate) full_since: Option<Instant>,
    /// `NODE/fdN`, removed when the port goes. Last, so that both sockets
    /// are closed by then: whoever sees the name gone sees the port gone.
    pub(crate) data_path: Option<UnlinkOnDrop>,
}

/// What became of a batch sent to a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// It took so many (fewer than offered: it is full now).
    Took(usize),
    /// Its peer is gone: it took none, and is to be removed.
    Gone,
}

impl Port {
    pub fn pending(ctl: OwnedFd) -> Port {
        Port {
            ctl,
            data: None,
            request: [0; MAX_REQUEST_LEN],
            request_len: 0,
            description: String::new(),
            stats: LinkStats::default(),
            readable: false,
            writable: false,
            write_armed: false,
            accepted: Instant::now(),
            outbox: Vec::with_capacity(BATCH),
            cursor: [0; 2],
            full_since: None,
            data_path: None,
        }
    }

    /// The socket is full: wait for the poll to say it has room again.
    pub fn mark_full(&mut self, now: Instant) {
        self.writable = false;
        self.full_since.get_or_insert(now);
    }

    pub fn is_connected(&self) -> bool {
        self.data.is_some()
    }

    /// Sends `slots` (at most a batch), each with what `insert` puts into
    /// it: the one send loop of every kind. A port that took fewer than
    /// offered is marked full.
    pub(crate) fn send(
        &mut self,
        io: &mut BatchIo,
        ring: &FrameRing,
        slots: &[Slot],
        insert: Option<&dyn Insert>,
    ) -> Sent {
        let Some(fd) = self.data.as_ref().map(|d| d.as_raw_fd()) else {
            return Sent::Took(0);
        };
        let sent = match io.send(fd, ring, slots, &mut self.stats, insert) {
            Ok(sent) => sent,
            Err(e) if peer_gone(&e) => return Sent::Gone,
            Err(_) => 0,
        };
        if sent < slots.len().min(BATCH) {
            self.mark_full(Instant::now());
        }
        Sent::Took(sent)
    }
}

/// A send error that means the peer is gone, not that it is busy.
pub(crate) fn peer_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNREFUSED)
            | Some(libc::ENOTCONN)
            | Some(libc::EPIPE)
            | Some(libc::ECONNRESET)
    )
}

pub struct PortTable {
    slots: Vec<Option<Port>>,
    free: Vec<PortId>,
    /// Connected ports. Removal moves the last one into the gap, as the C
    /// node does, so that `policy=rr` walks the same sequence.
    active: Vec<PortId>,
    /// Ports found gone during a pass, removed after it by the node.
    gone: Vec<PortId>,
}

impl Default for PortTable {
    fn default() -> Self {
        PortTable {
            slots: Vec::new(),
            free: Vec::new(),
            active: Vec::new(),
            gone: Vec::with_capacity(16),
        }
    }
}

impl PortTable {
    /// Whether a connected port other than `from` is there: a frame from
    /// `from` for the other ports then has somewhere to go (copying it into
    /// a queue between ports for nobody would only make pages resident).
    pub(crate) fn any_other_than(&self, from: PortId) -> bool {
        self.active.iter().any(|&id| id != from)
    }

    pub fn insert(&mut self, port: Port) -> PortId {
        match self.free.pop() {
            Some(id) => {
                self.slots[id] = Some(port);
                id
            }
            None => {
                self.slots.push(Some(port));
                self.slots.len() - 1
            }
        }
    }

    pub fn get(&self, id: PortId) -> Option<&Port> {
        self.slots.get(id).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, id: PortId) -> Option<&mut Port> {
        self.slots.get_mut(id).and_then(Option::as_mut)
    }

    /// Makes a port part of the forwarding (after its handshake).
    pub fn activate(&mut self, id: PortId) {
        self.active.push(id);
    }

    /// Takes a port out of the forwarding (its cable left); it stays in
    /// the table until removed.
    pub fn deactivate(&mut self, id: PortId) {
        if let Some(i) = self.active.iter().position(|&a| a == id) {
            self.active.swap_remove(i);
        }
    }

    pub fn remove(&mut self, id: PortId) -> Option<Port> {
        let port = self.slots.get_mut(id)?.take()?;
        self.free.push(id);
        if let Some(i) = self.active.iter().position(|&a| a == id) {
            self.active.swap_remove(i);
        }
        Some(port)
    }

    pub fn active(&self) -> &[PortId] {
        &self.active
    }

    /// The connected ports, in the order of [`active`](Self::active).
    pub fn connected(&self) -> impl Iterator<Item = &Port> {
        self.active.iter().filter_map(|&id| self.get(id))
    }

    /// The `i`th connected port (an index into [`active`](Self::active)).
    pub fn nth_active_mut(&mut self, i: usize) -> &mut Port {
        let id = self.active[i];
        self.get_mut(id).expect("active ports are in the table")
    }

    /// Every port, pending or connected.
    pub fn iter(&self) -> impl Iterator<Item = (PortId, &Port)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (i, p)))
    }

    /// Port `id` was found gone (its peer left): the node removes it
    /// after the pass.
    pub(crate) fn mark_gone(&mut self, id: PortId) {
        self.gone.push(id);
    }

    /// The next port found gone, to remove.
    pub(crate) fn next_gone(&mut self) -> Option<PortId> {
        self.gone.pop()
    }

    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dummy() -> Port {
        let fd = crate::sys::unix_socket(libc::SOCK_STREAM).unwrap();
        Port::pending(fd)
    }

    #[test]
    fn swap_remove_order_and_reuse() {
        let mut t = PortTable::default();
        let ids: Vec<_> = (0..4).map(|_| t.insert(dummy())).collect();
        for &id in &ids {
            t.activate(id);
        }
        t.remove(ids[1]);
        assert_eq!(t.active(), &[0, 3, 2]);
        let again = t.insert(dummy());
        assert_eq!(again, 1);
        assert_eq!(t.len(), 4);
    }
}
