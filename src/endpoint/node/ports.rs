//! The port table of a node: a slab of ports addressed by small ids (the
//! ids make the poll tokens), plus the list of connected ports in the
//! order vdeplug4 keeps them, which its round robin walks.

use std::os::fd::OwnedFd;
use std::time::Instant;

use super::bonding::path::PathState;
use super::bonding::reorder::CableSeen;
use crate::batch::BATCH;
use crate::ring::Slot;
use crate::stats::LinkStats;
use crate::sys::UnlinkOnDrop;
use crate::wire::request::MAX_REQUEST_LEN;

pub type PortId = usize;

pub struct Port {
    /// The accepted control stream; its end ends the port.
    pub ctl: OwnedFd,
    /// The datagram socket, once the request was honoured.
    pub data: Option<OwnedFd>,
    /// The request as read so far.
    pub request: [u8; MAX_REQUEST_LEN],
    pub request_len: usize,
    pub description: String,
    pub stats: LinkStats,
    pub readable: bool,
    pub writable: bool,
    /// WRITABLE is registered (only while the socket is full).
    pub write_armed: bool,
    pub accepted: Instant,
    /// Frames picked for this port in the batch being sent (bonding).
    pub outbox: Vec<Slot>,
    /// This port's place in the queues it is fanned out from (hub, multi,
    /// switch): how many of the frames queued from the host, and from the
    /// other ports, it is done with (see `forward::Queue`).
    pub cursor: [usize; 2],
    /// Share of a weighted bonding node (`weights=`), and the credit of its
    /// smooth weighted round robin.
    pub weight: u32,
    pub credit: i64,
    /// Since when the port has been full (no room in its socket).
    pub full_since: Option<Instant>,
    /// What a path-aware bonding node knows of this cable's path, and the
    /// numbers it brought (see `reorder.rs`).
    pub(crate) path: PathState,
    pub(crate) seen: CableSeen,
    /// `NODE/fdN`, removed when the port goes. Last, so that both sockets
    /// are closed by then: whoever sees the name gone sees the port gone.
    pub data_path: Option<UnlinkOnDrop>,
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
            weight: 1,
            credit: 0,
            full_since: None,
            path: PathState::default(),
            seen: CableSeen::default(),
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
}

#[derive(Default)]
pub struct PortTable {
    slots: Vec<Option<Port>>,
    free: Vec<PortId>,
    /// Connected ports. Removal moves the last one into the gap, as the C
    /// node does, so that `policy=rr` walks the same sequence.
    active: Vec<PortId>,
}

impl PortTable {
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
