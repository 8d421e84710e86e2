//! The bonding node: each frame from the host to one cable, as its policy
//! deals ([`policy`]); frames from any cable to the host. Everything
//! bonding lives in this room: what it keeps of each cable ([`cable`]),
//! what each path delivers ([`path`]) and the path reports that tell it
//! ([`reports`]), the numbering of frames dealt ([`sequencer`]) and the
//! reorder buffer that puts numbered frames back in order for the host
//! ([`in_order`], [`reorder`], [`pace`]), a sparse flow's frames sent again
//! past a cable that stalls ([`rescue`]), the flow of a frame ([`flow`](crate::endpoint::node::flow), shared with the host-side queues).

mod cable;
mod in_flight;
mod in_order;
mod pace;
mod path;
pub(crate) mod policy;
mod reorder;
mod reports;
mod rescue;
pub(crate) mod sequencer;

use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use self::cable::Cables;
use self::in_order::InOrder;
use self::path::{PathState, StampClock, MAX_BACKLOG};
use self::policy::{Bond, Policy, PolicyName};
use super::kind::{FromPort, Kind, Link};
use super::ports::{PortId, PortTable};
use crate::figures::Figures;
use crate::lane::Lane;
use crate::number::{self, BadNumber};

/// `weights=3:1:2`: the shares of a bonding node's cables, separated by `:`
/// or `,` (the `/` of a locator separates parameters).
pub fn parse_weights(s: &str) -> Result<Vec<u32>, BadNumber> {
    s.split([':', ','])
        .map(|w| number::decimal("weight", w, 1..=10_000).map(|w| w as u32))
        .collect()
}

pub(crate) struct Bonding {
    policy: Box<dyn Policy>,
    /// The policy learns paths (asked once: the loop asks often).
    learns_paths: bool,
    cables: Cables,
    /// Shares of the cables in the order they join (`weights=`); empty for
    /// plain turns.
    weights: Vec<u32>,
    /// Cables that have joined so far (which weight the next one gets).
    joined: usize,
    /// The stamps of path reports and sequence tags.
    clock: StampClock,
    in_order: InOrder,
}

impl Bonding {
    pub(crate) fn new(policy: PolicyName, weights: &[u32]) -> Bonding {
        let policy = policy::choose(policy, !weights.is_empty());
        Bonding {
            learns_paths: policy.learns_paths(),
            policy,
            cables: Cables::default(),
            weights: weights.to_vec(),
            joined: 0,
            clock: StampClock::new(),
            in_order: InOrder::new(),
        }
    }
}

impl Kind for Bonding {
    fn frames_from_host(&mut self, ports: &mut PortTable, lane: &mut Lane) -> usize {
        let now = Instant::now();
        let mut bond = Bond {
            ports,
            cables: &mut self.cables,
            now,
            ms: self.clock.ms(now),
        };
        self.policy.deal(&mut bond, lane)
    }

    fn frames_from_port(&mut self, ports: &mut PortTable, lane: &mut Lane, got: FromPort) {
        if self.learns_paths {
            self.in_order
                .take(ports, &mut self.cables, &self.clock, lane, got);
        }
    }

    fn message_from_port(&mut self, ports: &PortTable, from: PortId, msg: &[u8], now: Instant) {
        if !self.learns_paths {
            return;
        }
        if let (Some(port), Some(cable)) = (ports.get(from), self.cables.get_mut(from)) {
            reports::take(msg, port, cable, &self.clock, now);
            if let Some(echo) = cable.path.stalled() {
                rescue::stalled(ports, &mut self.cables, from, echo, now);
            }
        }
    }

    /// A cable's one hello, while nothing can wait in its socket (see
    /// `reports::hello`).
    fn greet(&mut self, data: BorrowedFd<'_>) -> io::Result<()> {
        if !self.learns_paths {
            return Ok(());
        }
        reports::hello(data, &self.clock, Instant::now())
    }

    /// A cable's share is the next of `weights=`, in the order they join.
    fn port_joined(&mut self, id: PortId) {
        let weight = self.weights.get(self.joined).copied().unwrap_or(1);
        self.joined += 1;
        self.cables.join(id, weight);
    }

    fn port_left(&mut self, id: PortId) {
        self.cables.leave(id);
    }

    fn frames_due_for_host(&mut self, ports: &PortTable, lane: &mut Lane) -> usize {
        self.in_order
            .release_due(ports, &self.cables, &self.clock, lane)
    }

    /// Path reports that are due go now (here, because the loop passes
    /// here whatever the lanes hold).
    fn before_wait(&mut self, ports: &mut PortTable, now: Instant) {
        if self.learns_paths {
            reports::send_due(ports, &mut self.cables, &self.clock, now);
        }
    }

    fn closing(&mut self) {
        self.cables.stop_holding();
    }

    /// A path report due, held frames due (for the host, or for a cable),
    /// a cable's virtual queue back within bounds.
    fn wake_in(&self, ports: &PortTable, now: Instant) -> Option<Duration> {
        if !self.learns_paths {
            return None;
        }
        let paths = || self.cables.connected(ports).map(|c| &c.path);
        let nearest = self.cables.nearest_rtt(ports, now);
        paths()
            .filter_map(PathState::report_due)
            .chain(self.in_order.due(ports, &self.cables, &self.clock, now))
            .chain(paths().filter_map(|p| p.backlog_ends(now, MAX_BACKLOG)))
            .chain(paths().filter_map(|p| p.backlog_ends(now, p.queue_cap(nearest))))
            .chain(self.cables.connected(ports).filter_map(|c| c.held_until))
            .min()
            .map(|t| t.saturating_duration_since(now))
    }

    /// The reorder buffer's figures on the host side; what a cable's path
    /// delivers on its port.
    fn figures(&self, link: Link, now: Instant, out: &mut Figures) {
        match link {
            Link::Host => {
                self.in_order.figures(out);
                self.cables.rescue.figures(out);
            }
            Link::Port(id) => {
                if let Some(cable) = self.cables.get(id) {
                    cable.path.figures(now, out);
                }
            }
        }
    }
}
