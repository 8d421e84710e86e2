//! The multi node: frames from the host to every port (a handoff: lay the
//! new cable, then cut the old one); frames from a port to the host only,
//! each once within `dedup=` milliseconds if asked ([`Dedup`]).

pub mod dedup;

use std::time::{Duration, Instant};

use self::dedup::Dedup;
use super::fan_out::{laggard_wake, HostFanOut};
use super::kind::{FromPort, Kind};
use super::ports::PortTable;
use crate::lane::Lane;
use crate::number::{self, BadNumber};

/// `dedup=MS`: the window of the duplicate filter (0: off).
pub fn parse_dedup(ms: &str) -> Result<Option<Duration>, BadNumber> {
    let ms = number::decimal("dedup window (ms)", ms, 0..=3_600_000)?;
    Ok((ms > 0).then(|| Duration::from_millis(ms)))
}

pub(crate) struct Multi {
    dedup: Option<Dedup>,
    from_host: HostFanOut,
}

impl Multi {
    pub(crate) fn new(dedup: Option<Duration>) -> Multi {
        Multi {
            dedup: dedup.map(Dedup::new),
            from_host: HostFanOut::default(),
        }
    }
}

impl Kind for Multi {
    fn frames_from_host(&mut self, ports: &mut PortTable, lane: &mut Lane) -> usize {
        self.from_host.send_to_every_port(ports, lane)
    }

    /// With `dedup=`, drops what the host already had (counted on the port).
    fn frames_from_port(&mut self, ports: &mut PortTable, lane: &mut Lane, got: FromPort) {
        let Some(dedup) = &mut self.dedup else {
            return;
        };
        let now = Instant::now();
        let ring = &mut lane.ring;
        let mut dropped = 0;
        for i in got.in_queue(ring) {
            let slot = ring.queued()[i];
            if dedup.is_duplicate(ring.frame(slot), now) {
                ring.mark_done(slot);
                dropped += 1;
            }
        }
        if dropped > 0 {
            ring.sweep();
            if let Some(p) = ports.get_mut(got.port) {
                p.stats.drop_dup += dropped;
            }
        }
    }

    fn wake_in(&self, _ports: &PortTable, _now: Instant) -> Option<Duration> {
        laggard_wake(self.from_host.waiting)
    }
}
