//! The switch: a learning switch over the host and the ports. Each frame's
//! source is learnt ([`MacTable`]); a frame goes where its destination was
//! seen, or everywhere but where it came from when that is not known.

pub mod mac_table;

use std::time::{Duration, Instant};

use self::mac_table::{Dest, MacTable};
use super::fan_out::{laggard_wake, HostFanOut, PortToPort, Route};
use super::kind::{FromPort, Kind};
use super::ports::{PortId, PortTable};
use crate::lane::Lane;
use crate::wire::EthernetFrame;

/// The MAC table's settings (`hashsize=`, `hashseed=`, `expiretime=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchConfig {
    pub hash_size: usize,
    pub hash_seed: u64,
    pub expire: Duration,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        SwitchConfig {
            hash_size: 256,
            hash_seed: 0,
            expire: Duration::from_secs(120),
        }
    }
}

pub(crate) struct Switch {
    mac: MacTable,
    from_host: HostFanOut,
    to_ports: PortToPort,
}

impl Switch {
    /// A switch whose own queue between ports holds `slots` frames.
    pub(crate) fn new(c: &SwitchConfig, slots: usize) -> Switch {
        Switch {
            mac: MacTable::new(c.hash_size, c.hash_seed, c.expire),
            from_host: HostFanOut::default(),
            to_ports: PortToPort::new(slots),
        }
    }
}

impl Kind for Switch {
    /// Learns each new frame's source as the host's; a frame for the host
    /// itself goes nowhere.
    fn frames_from_host(&mut self, ports: &mut PortTable, lane: &mut Lane) -> usize {
        let now = Instant::now();
        let ring = &mut lane.ring;
        for i in self.from_host.fresh(ring) {
            let slot = ring.queued()[i];
            let to = match EthernetFrame::new_checked(ring.frame(slot)) {
                Ok(eth) => {
                    let vlan = eth.vlan();
                    self.mac.learn(eth.src(), vlan, Dest::Host, now);
                    self.mac.lookup(eth.dst(), vlan, now)
                }
                Err(_) => Some(Dest::Host),
            };
            match to {
                Some(Dest::Port(id)) => ring.set_tag(slot, Route::new(None, Some(id))),
                // The host's own address: nobody to send it to.
                Some(Dest::Host) => ring.mark_done(slot),
                None => ring.set_tag(slot, Route::ALL),
            }
        }
        let swept = ring.sweep();
        swept + self.from_host.send(ports, lane)
    }

    /// Learns each frame's source as port `from`'s; a frame for another
    /// port, or for nobody known, is queued for the ports (and only the
    /// latter also goes to the host).
    fn frames_from_port(&mut self, ports: &mut PortTable, lane: &mut Lane, got: FromPort) {
        let now = Instant::now();
        let (from, ring) = (got.port, &mut lane.ring);
        for i in got.in_queue(ring) {
            let slot = ring.queued()[i];
            let Ok(eth) = EthernetFrame::new_checked(ring.frame(slot)) else {
                continue;
            };
            let vlan = eth.vlan();
            self.mac.learn(eth.src(), vlan, Dest::Port(from), now);
            match self.mac.lookup(eth.dst(), vlan, now) {
                Some(Dest::Host) => {}
                Some(Dest::Port(to)) => {
                    if to != from {
                        self.to_ports.push(ring.frame(slot), from, Some(to));
                    }
                    ring.mark_done(slot);
                }
                None if ports.any_other_than(from) => {
                    self.to_ports.push(ring.frame(slot), from, None);
                }
                None => {}
            }
        }
        ring.sweep();
        self.to_ports.flush(ports);
    }

    fn read_limit(&self) -> usize {
        self.to_ports.room()
    }

    /// The addresses behind a port that went are forgotten.
    fn port_left(&mut self, id: PortId) {
        self.mac.forget_port(id);
    }

    fn ports_ready(&mut self, ports: &mut PortTable) {
        self.to_ports.flush(ports);
    }

    fn wake_in(&self, _ports: &PortTable, _now: Instant) -> Option<Duration> {
        laggard_wake(self.from_host.waiting || self.to_ports.waiting)
    }
}
