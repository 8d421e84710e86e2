//! Frames read from ports: what each kind does with them before they go
//! to the host (hub and switch forward, multi with `dedup=` filters), and
//! the last frames of ports that are leaving.

use std::os::fd::AsRawFd;
use std::time::Instant;

use super::forward;
use super::kind::NodeKind;
use super::mac_table::Dest;
use super::ports::PortId;
use super::NetNode;
use crate::lane::Lane;
use crate::wire::EthernetFrame;

impl NetNode {
    /// Reads what leaving ports still hold; a drained one is removed.
    pub(super) fn drain_leaving(&mut self, lane: &mut Lane) -> usize {
        let mut total = 0;
        let mut drained = Vec::new();
        for i in 0..self.leaving.len() {
            if lane.ring.free_slots() == 0 {
                break;
            }
            let id = self.leaving[i];
            let Some(port) = self.ports.get_mut(id) else {
                continue;
            };
            let Some(fd) = port.data.as_ref().map(|d| d.as_raw_fd()) else {
                drained.push(id);
                continue;
            };
            let got = match lane
                .io
                .recv(fd, &mut lane.ring, usize::MAX, id as u32, &mut port.stats)
            {
                Ok(r) if r.drained => {
                    drained.push(id);
                    r.frames
                }
                Ok(r) => r.frames,
                Err(_) => {
                    drained.push(id);
                    continue;
                }
            };
            if got > 0 {
                self.after_port_read(lane, id, got);
                total += got;
            }
        }
        for id in drained {
            self.remove_port(id);
        }
        total
    }

    /// The kind's work on the `count` frames just read from port `from`
    /// (the newest in the lane): hub and switch forward them to other
    /// ports, multi with `dedup=` drops the ones the host already had.
    pub(super) fn after_port_read(&mut self, lane: &mut Lane, from: PortId, count: usize) {
        match self.kind {
            NodeKind::Hub => forward::hub_ports(&mut self.ports, lane, from, count, &mut self.dead),
            NodeKind::Switch(_) => self.switch_ports(lane, from, count),
            NodeKind::Multi { dedup: Some(_) } => self.suppress_duplicates(lane, from, count),
            _ => {}
        }
    }

    /// Switch: learns the source of each new frame from port `from` and
    /// sends it on when its destination is another known port; frames for
    /// the host (or flooded) stay queued for the host.
    pub(super) fn switch_ports(&mut self, lane: &mut Lane, from: PortId, count: usize) {
        let Some(mac) = &mut self.mac else { return };
        let now = Instant::now();
        let Lane { ring, .. } = lane;
        let queued = ring.queued().len();
        for i in queued - count..queued {
            let slot = ring.queued()[i];
            let eth = match EthernetFrame::new_checked(ring.frame(slot)) {
                Ok(e) => e,
                Err(_) => continue,
            };
            let vlan = eth.vlan();
            mac.learn(eth.src(), vlan, Dest::Port(from), now);
            match mac.lookup(eth.dst(), vlan, now) {
                Some(Dest::Host) => {}
                Some(Dest::Port(to)) => {
                    if to != from {
                        forward::send_one(&mut self.ports, to, ring.frame(slot), &mut self.dead);
                    }
                    ring.mark_done(slot);
                }
                None => forward::flood_one(
                    &mut self.ports,
                    Some(from),
                    ring.frame(slot),
                    &mut self.dead,
                ),
            }
        }
        ring.sweep();
    }

    /// Multi with `dedup=`: drops new frames the host already had.
    pub(super) fn suppress_duplicates(&mut self, lane: &mut Lane, from: PortId, count: usize) {
        let Some(dedup) = &mut self.dedup else { return };
        let now = Instant::now();
        let ring = &mut lane.ring;
        let queued = ring.queued().len();
        let mut dropped = 0;
        for i in queued - count..queued {
            let slot = ring.queued()[i];
            if dedup.is_duplicate(ring.frame(slot), now) {
                ring.mark_done(slot);
                dropped += 1;
            }
        }
        if dropped > 0 {
            ring.sweep();
            if let Some(p) = self.ports.get_mut(from) {
                p.stats.drop_dup += dropped;
            }
        }
    }
}
