//! What kind of node: the knobs each kind has ([`NodeKind`]), and the
//! kind as one value with its state and its two entry points, frames from
//! the host and frames from port N ([`Kind`]). The node around it owns the
//! ports, the counters and the cleanup; the shells (the binaries' engine,
//! the libvdeplug module) drive the node and never look at its kind.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::dedup::Dedup;
use super::forward::{self, route, Queue};
use super::mac_table::{Dest, MacTable};
use super::path::{PathState, StampClock};
use super::ports::{Port, PortId, PortTable};
use super::reorder::{lag_floor, Moment, Reorder, Sequencer};
use crate::batch::BATCH;
use crate::engine::LANE_SLOTS;
use crate::lane::Lane;
use crate::number::{self, BadNumber};
use crate::wire::path_report::{self, PathReport, PATH_REPORT_LEN};
use crate::wire::{EthernetFrame, ETH_HEADER_LEN};

/// `dedup=MS`: the window of a multi node's duplicate filter (0: off).
pub fn parse_dedup(ms: &str) -> Result<Option<Duration>, BadNumber> {
    let ms = number::decimal("dedup window (ms)", ms, 0..=3_600_000)?;
    Ok((ms > 0).then(|| Duration::from_millis(ms)))
}

/// `weights=3:1:2`: the shares of a bonding node's cables, separated by `:`
/// or `,` (the `/` of a locator separates parameters).
pub fn parse_weights(s: &str) -> Result<Vec<u32>, BadNumber> {
    s.split([':', ','])
        .map(|w| number::decimal("weight", w, 1..=10_000).map(|w| w as u32))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BondingPolicy {
    /// The default: between bonding nodes of ours, each frame to the cable
    /// where it would arrive first, from what the far node reports of each
    /// cable (see `path.rs`), and the far node puts them back in order
    /// (`reorder.rs`); with any other far end, as `Adaptive`.
    #[default]
    Path,
    /// Round robin over the cables that can take a frame now; when none
    /// can, frames wait and the host side is not read (backpressure).
    Adaptive,
    /// Each flow (addresses and ports) to one cable: no reordering, a
    /// single flow gets one cable's bandwidth.
    Hash,
    /// vdeplug4's blind round robin: each frame to the next cable, dropped
    /// if that cable is full.
    RoundRobin,
}

impl BondingPolicy {
    pub fn name(&self) -> &'static str {
        match self {
            BondingPolicy::Path => "path",
            BondingPolicy::Adaptive => "adaptive",
            BondingPolicy::Hash => "hash",
            BondingPolicy::RoundRobin => "rr",
        }
    }
}

impl std::str::FromStr for BondingPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            BondingPolicy::Path,
            BondingPolicy::Adaptive,
            BondingPolicy::Hash,
            BondingPolicy::RoundRobin,
        ]
        .into_iter()
        .find(|p| p.name() == s)
        .ok_or_else(|| format!("unknown bonding policy '{s}' (path, adaptive, hash or rr)"))
    }
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// Host frames to every port; port frames to the host and every other port.
    Hub,
    /// A learning switch over the host and the ports.
    Switch(SwitchConfig),
    /// Host frames to every port; port frames to the host only. An optional
    /// window in which a frame already given to the host is not given again.
    Multi { dedup: Option<Duration> },
    /// Host frames to one port; port frames to the host only.
    Bonding(BondingPolicy),
}

impl NodeKind {
    pub fn scheme(&self) -> &'static str {
        match self {
            NodeKind::Hub => "hub",
            NodeKind::Switch(_) => "switch",
            NodeKind::Multi { .. } => "multi",
            NodeKind::Bonding(_) => "bonding",
        }
    }

    /// The kind's settings, as `--status` shows them.
    pub fn settings(&self) -> String {
        match self {
            NodeKind::Hub => "-".into(),
            NodeKind::Switch(c) => {
                format!("hashsize={} expiretime={}", c.hash_size, c.expire.as_secs())
            }
            NodeKind::Multi { dedup: None } => "-".into(),
            NodeKind::Multi { dedup: Some(w) } => format!("dedup={}", w.as_millis()),
            NodeKind::Bonding(policy) => policy.name().into(),
        }
    }
}

/// Frames from a port on their way to other ports (hub, switch): a lane of
/// the node's own, handed out by [`forward::fan_out`] like host frames, so
/// a port that cannot keep up loses only its own frames.
pub(crate) struct PortToPort {
    lane: Lane,
    waiting: bool,
}

impl PortToPort {
    fn new() -> PortToPort {
        PortToPort {
            lane: Lane::new(LANE_SLOTS),
            waiting: false,
        }
    }

    /// Queues a copy of `frame` with its route; false when full (the
    /// caller reads no more than [`Kind::port_read_limit`] allows).
    fn push(&mut self, frame: &[u8], from: PortId, to: Option<PortId>) -> bool {
        self.lane.ring.push_copy(frame, route(Some(from), to))
    }

    fn flush(&mut self, ports: &mut PortTable, dead: &mut Vec<PortId>) {
        let (_, waiting) = forward::fan_out(ports, &mut self.lane, Queue::FromPorts, dead);
        self.waiting = waiting;
    }
}

/// Whether a port other than `from` is there to take its frames.
fn others_than(ports: &PortTable, from: PortId) -> bool {
    ports.active().iter().any(|&id| id != from)
}

/// A node kind with its state.
pub(crate) enum Kind {
    Hub {
        ports_to_ports: PortToPort,
        /// Host frames already given a route (the newest are not yet).
        routed: usize,
        waiting: bool,
    },
    Switch {
        mac: MacTable,
        ports_to_ports: PortToPort,
        routed: usize,
        waiting: bool,
    },
    Multi {
        dedup: Option<Dedup>,
        routed: usize,
        waiting: bool,
    },
    Bonding {
        policy: BondingPolicy,
        /// Round-robin position in the active port list.
        rr: usize,
        /// Shares of the cables in the order they join (`weights=`);
        /// empty for plain round robin.
        weights: Vec<u32>,
        /// Cables that have joined so far (which weight the next one gets).
        joined: usize,
        /// The stamps of path reports (`policy=path`).
        clock: StampClock,
        /// The numbering of frames dealt, and the frames received held
        /// until their turn (`policy=path`, between nodes of ours).
        seq: Sequencer,
        reorder: Reorder,
    },
}

impl Kind {
    pub(crate) fn new(kind: NodeKind) -> Kind {
        match kind {
            NodeKind::Hub => Kind::Hub {
                ports_to_ports: PortToPort::new(),
                routed: 0,
                waiting: false,
            },
            NodeKind::Switch(c) => Kind::Switch {
                mac: MacTable::new(c.hash_size, c.hash_seed, c.expire),
                ports_to_ports: PortToPort::new(),
                routed: 0,
                waiting: false,
            },
            NodeKind::Multi { dedup } => Kind::Multi {
                dedup: dedup.map(Dedup::new),
                routed: 0,
                waiting: false,
            },
            NodeKind::Bonding(policy) => Kind::Bonding {
                policy,
                rr: 0,
                weights: Vec::new(),
                joined: 0,
                clock: StampClock::new(),
                seq: Sequencer::new(),
                reorder: Reorder::new(),
            },
        }
    }

    /// Bonding shares (`weights=`); other kinds have none.
    pub(crate) fn set_weights(&mut self, w: Vec<u32>) {
        if let Kind::Bonding { weights, .. } = self {
            *weights = w;
        }
    }

    /// Frames from the host, queued in `lane`: hands out what the ports
    /// can take now. Returns the frames finished with.
    pub(crate) fn frames_from_host(
        &mut self,
        ports: &mut PortTable,
        lane: &mut Lane,
        dead: &mut Vec<PortId>,
    ) -> usize {
        let now = Instant::now();
        match self {
            Kind::Hub {
                routed, waiting, ..
            }
            | Kind::Multi {
                routed, waiting, ..
            } => {
                let ring = &mut lane.ring;
                for i in *routed..ring.queued().len() {
                    ring.set_tag(ring.queued()[i], route(None, None));
                }
                fan_out_host(ports, lane, routed, waiting, dead)
            }
            Kind::Switch {
                mac,
                routed,
                waiting,
                ..
            } => {
                let ring = &mut lane.ring;
                for i in *routed..ring.queued().len() {
                    let slot = ring.queued()[i];
                    let to = match EthernetFrame::new_checked(ring.frame(slot)) {
                        Ok(eth) => {
                            let vlan = eth.vlan();
                            mac.learn(eth.src(), vlan, Dest::Host, now);
                            mac.lookup(eth.dst(), vlan, now)
                        }
                        Err(_) => Some(Dest::Host),
                    };
                    match to {
                        Some(Dest::Port(id)) => ring.set_tag(slot, route(None, Some(id))),
                        // The host's own address: nobody to send it to.
                        Some(Dest::Host) => ring.mark_done(slot),
                        None => ring.set_tag(slot, route(None, None)),
                    }
                }
                let swept = ring.sweep();
                *routed = ring.queued().len();
                swept + fan_out_host(ports, lane, routed, waiting, dead)
            }
            Kind::Bonding {
                policy,
                rr,
                weights,
                seq,
                clock,
                ..
            } => {
                let weighted = !weights.is_empty();
                seq.start_deal(clock.ms(now));
                match policy {
                    BondingPolicy::RoundRobin => {
                        forward::round_robin(ports, rr, weighted, lane, dead)
                    }
                    BondingPolicy::Adaptive => {
                        forward::adaptive(ports, rr, weighted, lane, dead, None)
                    }
                    BondingPolicy::Hash => forward::by_flow(ports, lane, dead),
                    BondingPolicy::Path if paths_known(ports, now) && !paths_alike(ports, now) => {
                        forward::by_arrival(ports, lane, dead, seq)
                    }
                    BondingPolicy::Path => {
                        // Numbered only while every far end is ours (a far
                        // node of ours puts them in order).
                        let seq = all_answered(ports).then_some(seq);
                        forward::adaptive(ports, rr, weighted, lane, dead, seq)
                    }
                }
            }
        }
    }

    /// How many frames may be read from ports now (hub and switch also
    /// queue them toward other ports, which has room for so many).
    pub(crate) fn port_read_limit(&self) -> usize {
        match self {
            Kind::Hub { ports_to_ports, .. } | Kind::Switch { ports_to_ports, .. } => {
                ports_to_ports.lane.ring.free_slots()
            }
            _ => BATCH,
        }
    }

    /// The `count` frames just read from port `from`, the newest in `lane`
    /// (which goes to the host): hub queues each for the other ports too;
    /// switch learns, and queues for a port or floods what is not for the
    /// host; multi with `dedup=` drops what the host already had.
    pub(crate) fn frames_from_port(
        &mut self,
        ports: &mut PortTable,
        lane: &mut Lane,
        from: PortId,
        count: usize,
        dead: &mut Vec<PortId>,
    ) {
        let now = Instant::now();
        let count = count - self.take_reports(ports, lane, from, count, now);
        let ring = &mut lane.ring;
        let new = ring.queued().len() - count..ring.queued().len();
        match self {
            Kind::Hub { ports_to_ports, .. } => {
                // A hub's lone port has no one to copy to: no copy, and the
                // node lane's pages stay untouched (half the resident
                // growth of `vde_plug_rs hub://A bonding://B` under load).
                if others_than(ports, from) {
                    for i in new {
                        ports_to_ports.push(ring.frame(ring.queued()[i]), from, None);
                    }
                }
                ports_to_ports.flush(ports, dead);
            }
            Kind::Switch {
                mac,
                ports_to_ports,
                ..
            } => {
                for i in new {
                    let slot = ring.queued()[i];
                    let Ok(eth) = EthernetFrame::new_checked(ring.frame(slot)) else {
                        continue;
                    };
                    let vlan = eth.vlan();
                    mac.learn(eth.src(), vlan, Dest::Port(from), now);
                    match mac.lookup(eth.dst(), vlan, now) {
                        Some(Dest::Host) => {}
                        Some(Dest::Port(to)) => {
                            if to != from {
                                ports_to_ports.push(ring.frame(slot), from, Some(to));
                            }
                            ring.mark_done(slot);
                        }
                        None if others_than(ports, from) => {
                            ports_to_ports.push(ring.frame(slot), from, None);
                        }
                        None => {}
                    }
                }
                ring.sweep();
                ports_to_ports.flush(ports, dead);
            }
            Kind::Multi {
                dedup: Some(dedup), ..
            } => {
                let mut dropped = 0;
                for i in new {
                    let slot = ring.queued()[i];
                    if dedup.is_duplicate(ring.frame(slot), now) {
                        ring.mark_done(slot);
                        dropped += 1;
                    }
                }
                if dropped > 0 {
                    ring.sweep();
                    if let Some(p) = ports.get_mut(from) {
                        p.stats.drop_dup += dropped;
                    }
                }
            }
            Kind::Bonding {
                policy: BondingPolicy::Path,
                reorder,
                clock,
                ..
            } => {
                let at = moment(ports, clock, now);
                // Only a far node of ours tags frames: from any other far
                // end a frame is the host's, whatever its EtherType.
                if let Some(port) = ports.get_mut(from).filter(|p| p.path.answered()) {
                    reorder.take(lane, count, at, &mut port.seen);
                }
                release_in_turn(reorder, ports, lane, at);
            }
            Kind::Multi { dedup: None, .. } | Kind::Bonding { .. } => {}
        }
    }

    /// Gives the host what a bonding node held for its turn, if the turn
    /// came (`policy=path`). Returns how many.
    pub(crate) fn release_held(&mut self, ports: &PortTable, lane: &mut Lane) -> usize {
        match self {
            Kind::Bonding { reorder, clock, .. } if reorder.held() > 0 => {
                let at = moment(ports, clock, Instant::now());
                release_in_turn(reorder, ports, lane, at)
            }
            _ => 0,
        }
    }

    /// What `--status` says of the host side beyond its counters.
    pub(crate) fn host_summary(&self) -> Option<String> {
        match self {
            Kind::Bonding { reorder, .. } => reorder.summary(),
            _ => None,
        }
    }

    /// Takes the path reports out of the `count` frames just read from
    /// port `from`: a path-aware bonding node learns from them, every other
    /// kind drops them (they are for no host). Returns how many there were.
    fn take_reports(
        &mut self,
        ports: &mut PortTable,
        lane: &mut Lane,
        from: PortId,
        count: usize,
        now: Instant,
    ) -> usize {
        let ring = &mut lane.ring;
        let queued = ring.queued().len();
        let mut reports = 0;
        for i in queued - count..queued {
            let slot = ring.queued()[i];
            // Only reports are shorter than an Ethernet header here: the
            // ports' reads drop every other runt.
            if ring.frame(slot).len() >= ETH_HEADER_LEN {
                continue;
            }
            if let (Kind::Bonding { clock, policy, .. }, Some(port)) = (&*self, ports.get_mut(from))
            {
                if let (BondingPolicy::Path, Ok(report)) =
                    (policy, PathReport::new_checked(ring.frame(slot)))
                {
                    port.path
                        .on_report(&report, now, clock, port.stats.bytes_in);
                    port.seen.note_lag(report.stamp(), clock.ms(now), now);
                }
            }
            ring.mark_done(slot);
            reports += 1;
        }
        if reports > 0 {
            ring.sweep();
        }
        reports
    }

    /// Sends the path reports that are due (`policy=path`), one datagram
    /// each, never waiting: one that finds the socket full is skipped (the
    /// next follows soon).
    pub(crate) fn send_reports(&mut self, ports: &mut PortTable, now: Instant) {
        let Kind::Bonding {
            policy: BondingPolicy::Path,
            clock,
            ..
        } = self
        else {
            return;
        };
        for i in 0..ports.active().len() {
            let port = ports.nth_active_mut(i);
            if port.path.report_due().is_some_and(|t| t > now) {
                continue;
            }
            let Some(fd) = port.data.as_ref().map(|d| d.as_raw_fd()) else {
                continue;
            };
            // Sending to a peer that has gone makes the kernel drop what the
            // port's socket holds, the frames the peer sent before it left:
            // those are read first, the report waits for the next pass.
            if crate::sys::has_input(fd) {
                port.path.skip_report(now);
                continue;
            }
            let mut buf = [0u8; PATH_REPORT_LEN];
            path_report::emit(&mut buf, &port.path.report(now, clock));
            let _ = crate::sys::send(fd, &buf);
        }
    }

    /// When the kind wants to be looked at again without an event: a
    /// laggard's grace, a path report due.
    pub(crate) fn wake_in(&self, ports: &PortTable, now: Instant) -> Option<Duration> {
        match self {
            Kind::Bonding {
                policy: BondingPolicy::Path,
                reorder,
                clock,
                ..
            } => paths(ports)
                .filter_map(PathState::report_due)
                .chain(reorder.due(REORDER_WAIT, moment(ports, clock, now)))
                .chain(paths(ports).filter_map(|p| p.backlog_ends(now)))
                .min()
                .map(|t| t.saturating_duration_since(now)),
            _ => self
                .waiting_on_laggard()
                .then_some(forward::LAGGARD_GRACE / 4),
        }
    }

    /// Moves frames queued from ports to ports as far as the ports take
    /// them (after ports drained, say).
    pub(crate) fn flush_port_to_port(&mut self, ports: &mut PortTable, dead: &mut Vec<PortId>) {
        if let Kind::Hub { ports_to_ports, .. } | Kind::Switch { ports_to_ports, .. } = self {
            ports_to_ports.flush(ports, dead);
        }
    }

    /// Frames wait for a full port's grace to run out: look again soon.
    fn waiting_on_laggard(&self) -> bool {
        match self {
            Kind::Hub {
                ports_to_ports,
                waiting,
                ..
            }
            | Kind::Switch {
                ports_to_ports,
                waiting,
                ..
            } => *waiting || ports_to_ports.waiting,
            Kind::Multi { waiting, .. } => *waiting,
            Kind::Bonding { .. } => false,
        }
    }

    /// A port joined: its bonding share.
    pub(crate) fn port_joined(&mut self, port: &mut Port) {
        if let Kind::Bonding {
            weights, joined, ..
        } = self
        {
            port.weight = weights.get(*joined).copied().unwrap_or(1);
            *joined += 1;
        }
    }

    /// A port is gone: the switch forgets the addresses behind it.
    pub(crate) fn port_removed(&mut self, id: PortId) {
        if let Kind::Switch { mac, .. } = self {
            mac.forget_port(id);
        }
    }
}

fn paths(ports: &PortTable) -> impl Iterator<Item = &PathState> {
    ports.connected().map(|p| &p.path)
}

/// The cables whose far end answers (a node of ours) and that are not dark:
/// those the reorder buffer waits for.
fn answering(ports: &PortTable, now: Instant) -> impl Iterator<Item = &Port> {
    ports
        .connected()
        .filter(move |p| p.path.answered() && !p.path.silent(now))
}

/// Every cable's far end has answered: it is a bonding node of ours.
fn all_answered(ports: &PortTable) -> bool {
    paths(ports).all(PathState::answered)
}

/// Every cable's far end has answered, and some cable is not dark: deal
/// by arrival (unless the paths are alike). Otherwise as `adaptive`.
fn paths_known(ports: &PortTable, now: Instant) -> bool {
    all_answered(ports) && paths(ports).any(|p| !p.silent(now))
}

/// How long a frame received is held for a number before it that no
/// cable has said it no longer brings (see `reorder.rs`). Only a cable
/// that says nothing at all leaves the question open, and such a cable is
/// soon dark (`PathState::silent`, at most 0.8 s) and asked no more; this
/// is the bound behind that, long enough for a machine so busy that its
/// cables' processes wait their turn for hundreds of ms.
const REORDER_WAIT: Duration = Duration::from_secs(1);

/// Gives the host what `reorder` held whose turn has come (see
/// [`Reorder::release`]): a missing number is given up on once no cable can
/// still bring it, or after [`REORDER_WAIT`].
fn release_in_turn(reorder: &mut Reorder, ports: &PortTable, lane: &mut Lane, at: Moment) -> usize {
    let epoch = reorder.epoch();
    let gone = |n, stamp| gone_from_every_cable(ports, at.now, epoch, n, stamp);
    reorder.release(&mut lane.ring, at, REORDER_WAIT, &gone)
}

/// `now` for the reorder buffer: on `clock`, with the lag floor of the
/// cables that answer and are not dark.
fn moment(ports: &PortTable, clock: &StampClock, now: Instant) -> Moment {
    Moment {
        now,
        ms: clock.ms(now),
        floor: lag_floor(answering(ports, now).filter_map(|p| p.seen.base_lag())),
    }
}

/// No cable (that answers and is not dark) can still bring number `n` of
/// numbering `epoch`, which was sent no later than `stamp`.
fn gone_from_every_cable(
    ports: &PortTable,
    now: Instant,
    epoch: Option<u8>,
    n: u32,
    stamp: u16,
) -> bool {
    answering(ports, now).all(|p| p.seen.past(epoch, n, stamp, p.path.last_stamp()))
}

/// The cables that are not dark have alike paths (`PathState::alike`):
/// taking turns, as `adaptive` does, serves them best.
fn paths_alike(ports: &PortTable, now: Instant) -> bool {
    let mut lit = paths(ports).filter(|p| !p.silent(now));
    let Some(first) = lit.next() else {
        return false;
    };
    lit.all(|p| p.alike(first))
}

/// Host frames (routed) to the ports by [`forward::fan_out`]; keeps count
/// of the routed ones still queued.
fn fan_out_host(
    ports: &mut PortTable,
    lane: &mut Lane,
    routed: &mut usize,
    waiting: &mut bool,
    dead: &mut Vec<PortId>,
) -> usize {
    *routed = lane.ring.queued().len();
    let (done, wait) = forward::fan_out(ports, lane, Queue::FromHost, dead);
    *routed -= done;
    *waiting = wait;
    done
}
