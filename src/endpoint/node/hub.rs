//! The hub: frames from the host to every port; frames from a port to the
//! host and to every other port.

use std::time::{Duration, Instant};

use super::fan_out::{laggard_wake, HostFanOut, PortToPort};
use super::kind::{FromPort, Kind};
use super::ports::PortTable;
use crate::lane::Lane;

pub(crate) struct Hub {
    from_host: HostFanOut,
    to_ports: PortToPort,
}

impl Hub {
    /// A hub whose own queue between ports holds `slots` frames.
    pub(crate) fn new(slots: usize) -> Hub {
        Hub {
            from_host: HostFanOut::default(),
            to_ports: PortToPort::new(slots),
        }
    }
}

impl Kind for Hub {
    fn frames_from_host(&mut self, ports: &mut PortTable, lane: &mut Lane) -> usize {
        self.from_host.send_to_every_port(ports, lane)
    }

    fn frames_from_port(&mut self, ports: &mut PortTable, lane: &mut Lane, got: FromPort) {
        let ring = &lane.ring;
        if ports.any_other_than(got.port) {
            for i in got.in_queue(ring) {
                self.to_ports
                    .push(ring.frame(ring.queued()[i]), got.port, None);
            }
        }
        self.to_ports.flush(ports);
    }

    fn read_limit(&self) -> usize {
        self.to_ports.room()
    }

    fn ports_ready(&mut self, ports: &mut PortTable) {
        self.to_ports.flush(ports);
    }

    fn wake_in(&self, _ports: &PortTable, _now: Instant) -> Option<Duration> {
        laggard_wake(self.from_host.waiting || self.to_ports.waiting)
    }
}
