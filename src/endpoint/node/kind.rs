//! A node kind: one value that owns its state and its settings and answers
//! the node's few events ([`Kind`]), chosen once when the node is made
//! ([`make`]). The node around it owns the ports, the counters and the
//! cleanup; the shells (the binaries' engine, the libvdeplug module) drive
//! the node and never look at its kind. Each kind lives in a room of its
//! own (`hub.rs`, `switch/`, `multi/`, `bonding/`), and may use what the
//! node shares: the port table (`ports.rs`) and the fan-out (`fan_out.rs`).

use std::io;
use std::ops::Range;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use super::bonding::Bonding;
use super::config::{KindName, NodeConfig};
use super::hub::Hub;
use super::multi::Multi;
use super::ports::{PortId, PortTable};
use super::switch::Switch;
use crate::batch::BATCH;
use crate::figures::Figures;
use crate::lane::Lane;
use crate::ring::FrameRing;

/// What a node kind answers. Frames come from the host in a lane, and go
/// to the host in a lane; a kind finishes, drops or holds frames in them,
/// and sends to the ports through the port table.
pub(crate) trait Kind {
    /// Frames from the host, queued in `lane`: hands out what the ports
    /// can take now. Returns the frames finished with (sent or dropped);
    /// the rest stay queued for the next call.
    fn frames_from_host(&mut self, ports: &mut PortTable, lane: &mut Lane) -> usize;

    /// Frames were just read from a port (`got`, the newest in `lane`):
    /// they go to the host unless the kind takes them out of the lane.
    fn frames_from_port(&mut self, ports: &mut PortTable, lane: &mut Lane, got: FromPort);

    /// A message shorter than a frame came on port `from` (a path report
    /// of a bonding node at the cable's far end); the host never sees it.
    fn message_from_port(&mut self, _ports: &PortTable, _from: PortId, _msg: &[u8], _now: Instant) {
    }

    /// How many frames may be read from a port now.
    fn read_limit(&self) -> usize {
        BATCH
    }

    /// A port is being made: `data`, its socket, is connected to the
    /// client, which is not told the socket's name until this returns. The
    /// one moment a message the kind sends of its own accord can destroy
    /// nothing (see `control::answer_request`). An error (the client is
    /// gone) refuses the port.
    fn greet(&mut self, _data: BorrowedFd<'_>) -> io::Result<()> {
        Ok(())
    }

    /// Port `id` joined (it is in the forwarding from now on).
    fn port_joined(&mut self, _id: PortId) {}

    /// Port `id` is gone from the table.
    fn port_left(&mut self, _id: PortId) {}

    /// Ports may have room again (the node is about to move frames): what
    /// the kind queued for them goes now.
    fn ports_ready(&mut self, _ports: &mut PortTable) {}

    /// Frames the kind held back for the host whose time has come, into
    /// `lane`. Returns how many.
    fn frames_due_for_host(&mut self, _ports: &PortTable, _lane: &mut Lane) -> usize {
        0
    }

    /// The loop is about to wait: what is due on the ports goes now.
    fn before_wait(&mut self, _ports: &mut PortTable, _now: Instant) {}

    /// The node closes after one more delivery: nothing waits by choice
    /// (frames a bonding node holds to send together go with it).
    fn closing(&mut self) {}

    /// When the kind wants to be looked at again without an event.
    fn wake_in(&self, ports: &PortTable, now: Instant) -> Option<Duration>;

    /// What the kind knows of `link` beyond its counters, as typed, named
    /// figures (a section per subject, one call per figure): the counters
    /// table, `--status` and its JSON are made of them.
    fn figures(&self, _link: Link, _now: Instant, _out: &mut Figures) {}
}

/// One link of a node: its host side, or a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    Host,
    Port(PortId),
}

/// The frames just read from a port: the `count` newest in the lane to
/// the host, from port `port`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FromPort {
    pub(crate) port: PortId,
    pub(crate) count: usize,
}

impl FromPort {
    /// Where they are in `ring`'s queue.
    pub(crate) fn in_queue(&self, ring: &FrameRing) -> Range<usize> {
        let queued = ring.queued().len();
        queued - self.count..queued
    }
}

/// Whether the node hands the host's frames to its kind flow by flow
/// ([`HostQueues`](super::host_queues::HostQueues)): a bonding node, whose
/// frames wait for full cables. Not the fan-out kinds, which keep each
/// port's place in the lane and lose a laggard's frames rather than keep
/// a backlog.
pub(crate) fn queues_host_flows(config: &NodeConfig) -> bool {
    config.kind == KindName::Bonding
}

/// The kind `config` names, with its settings. `lane_slots`: the size of
/// the lanes the node is driven with (a kind's own queues are as big).
pub(crate) fn make(config: &NodeConfig, lane_slots: usize) -> Box<dyn Kind> {
    match config.kind {
        KindName::Hub => Box::new(Hub::new(lane_slots)),
        KindName::Switch => Box::new(Switch::new(&config.switch, lane_slots)),
        KindName::Multi => Box::new(Multi::new(config.dedup)),
        KindName::Bonding => Box::new(Bonding::new(config.policy, &config.weights)),
    }
}
