//! The node family: `hub://`, `switch://`, `multi://` and `bonding://`.
//!
//! A node owns a directory that vde clients join (see [`control`]); the
//! program that opened it is the node's *host*, reached through the lane of
//! engine or of the libvdeplug module shell. Frames from ports are read in
//! batches ([`from_ports`]); where frames go is decided by the node's
//! [`Kind`](kind::Kind), one value chosen when the node is made, which
//! answers the node's events (frames from the host, frames from port N,
//! a port joined or left, ...) from a room of its own: [`hub`], [`switch`],
//! [`multi`], [`bonding`]. What they share: the port table ([`ports`]),
//! the fan-out ([`fan_out`]), the configuration ([`config`]), the
//! host-side flow queues ([`host_queues`]: frames from the host that wait
//! for full cables handed out flow by flow, sparse flows first).

mod admission;
mod bonding;
pub mod config;
pub mod control;
mod fan_out;
pub(crate) mod flow;
mod from_ports;
mod host_queues;
mod hub;
mod kind;
pub mod multi;
pub mod ports;
pub mod switch;

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::{Interest, Registry};

pub use self::bonding::policy::PolicyName;
use self::config::NodeConfig;
use self::control::{absolute_node_path, NodeDir};
use self::host_queues::HostQueues;
use self::kind::{Kind, Link};
use self::ports::{PortId, PortTable};
use super::{
    register_fd, sync_write_interest, token, Endpoint, OpenError, Ready, Stop, SIDE_SHIFT,
};
use crate::lane::{Lane, HOST_STORE_SLOTS, LANE_SLOTS};
use crate::stats::{LinkStats, LogThrottle, StatsTable};
use crate::status;
use crate::url::Locator;
use crate::wire::ETH_HEADER_LEN;

/// More ports than this are refused (each costs two descriptors).
const MAX_PORTS: usize = 4096;
/// A control connection that has not sent a whole request by then is closed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

const LISTENER: usize = 0;
/// The status socket's token: above every port's.
const STATUS_LISTENER: usize = (1 << SIDE_SHIFT) - 1;

fn ctl_token(id: PortId) -> usize {
    1 + 2 * id
}

fn data_token(id: PortId) -> usize {
    2 + 2 * id
}

pub struct NetNode {
    kind: Box<dyn Kind>,
    label: String,
    side: usize,
    // Ports are declared before the directory so that their sockets are
    // removed before the directory is.
    ports: PortTable,
    dir: NodeDir,
    /// Counters of the host side: frames in from the host, out to it.
    host: LinkStats,
    /// The order in which frames from the host that wait are handed to
    /// the kind, for a kind that keeps them ([`kind::queues_host_flows`]).
    host_queues: Option<HostQueues>,
    /// Where the next read pass over the ports starts, for fairness.
    read_from: usize,
    /// Ports whose control stream ended: out of the forwarding, read until
    /// their socket is drained (the frames a cable sent just before it
    /// left still reach the host), then removed.
    leaving: Vec<PortId>,
    /// What the node's host side is, and its kind's settings (for
    /// `--status`).
    host_label: String,
    settings: String,
    /// Cables refused for want of descriptors, and their log's throttle.
    turned_away: u64,
    out_of_fds_log: LogThrottle,
}

impl NetNode {
    /// The node closes after one more delivery: what its kind holds back
    /// by choice goes with it.
    pub(crate) fn closing(&mut self) {
        self.kind.closing();
    }

    /// Opens `hub://`, `switch://`, `multi://` or `bonding://` from a
    /// locator. `lane_slots`: the size of the lanes the node is driven with.
    pub fn open(loc: &Locator, lane_slots: usize) -> Result<NetNode, OpenError> {
        let config = NodeConfig::from_locator(loc)?;
        let path = absolute_node_path(&loc.address)?;
        Self::create(&config, &path, lane_slots)
    }

    /// Makes the node `config` says at `path`.
    pub fn create(
        config: &NodeConfig,
        path: &std::path::Path,
        lane_slots: usize,
    ) -> Result<NetNode, OpenError> {
        let dir = NodeDir::create(path, config.access())?;
        let scheme = config.kind.scheme();
        info!("{scheme}://{}: ready", path.display());
        Ok(NetNode {
            label: format!("{scheme}://{}", path.display()),
            kind: kind::make(config, lane_slots),
            side: 0,
            ports: PortTable::default(),
            dir,
            host: LinkStats::default(),
            host_queues: kind::queues_host_flows(config).then(|| HostQueues::new(HOST_STORE_SLOTS)),
            read_from: 0,
            leaving: Vec::new(),
            host_label: String::new(),
            settings: config.settings(),
            turned_away: 0,
            out_of_fds_log: LogThrottle::default(),
        })
    }
}

impl Endpoint for NetNode {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn joined_to(&mut self, other: &str) {
        self.host_label = other.to_string();
    }

    fn register(&mut self, registry: &Registry, side: usize) -> io::Result<()> {
        self.side = side;
        for (fd, local) in [
            (self.dir.listener.as_raw_fd(), LISTENER),
            (self.dir.status.as_raw_fd(), STATUS_LISTENER),
        ] {
            register_fd(registry, fd, token(side, local), Interest::READABLE)?;
        }
        Ok(())
    }

    fn on_event(&mut self, registry: &Registry, local: usize, ready: Ready) -> Result<(), Stop> {
        if local == LISTENER {
            self.accept_all(registry);
            return Ok(());
        }
        if local == STATUS_LISTENER {
            self.answer_status();
            return Ok(());
        }
        let id = (local - 1) / 2;
        let Some(port) = self.ports.get_mut(id) else {
            return Ok(());
        };
        if local == data_token(id) {
            port.readable |= ready.readable;
            if ready.writable {
                port.writable = true;
                port.full_since = None;
            }
            if ready.closed && !ready.readable {
                self.remove_port(id);
            }
        } else if port.is_connected() {
            self.read_control(id, ready.closed);
        } else {
            self.read_request(registry, id);
        }
        Ok(())
    }

    fn inbound_slots(&self) -> usize {
        if self.host_queues.is_some() {
            HOST_STORE_SLOTS
        } else {
            LANE_SLOTS
        }
    }

    fn fill(&mut self, lane: &mut Lane) -> Result<usize, Stop> {
        self.kind.ports_ready(&mut self.ports);
        let queued_before = lane.ring.queued().len();
        let total = self.kind.frames_due_for_host(&self.ports, lane)
            + self.read_ports(lane)
            + self.drain_leaving(lane);
        for i in queued_before..lane.ring.queued().len() {
            self.host
                .count_out(lane.ring.frame(lane.ring.queued()[i]).len());
        }
        self.remove_gone();
        Ok(total)
    }

    fn deliver(&mut self, lane: &mut Lane) -> Result<usize, Stop> {
        self.kind.ports_ready(&mut self.ports);
        if lane.ring.is_empty() {
            self.remove_gone();
            return Ok(0);
        }
        let (runts, bytes_before) = drop_runts(lane);
        self.host.drop_runt += runts as u64;
        let done = if self.ports.active().is_empty() {
            // Nobody to give the frames to: vdeplug4 drops them too.
            let n = lane.ring.queued().len();
            self.host.drop_nocable += n as u64;
            lane.ring.consume_front(n)
        } else {
            if let Some(q) = &mut self.host_queues {
                q.order(&mut lane.ring);
            }
            self.kind.frames_from_host(&mut self.ports, lane)
        };
        if let Some(q) = &mut self.host_queues {
            q.handed_out(&lane.ring);
        }
        self.host.frames_in += done as u64;
        self.host.bytes_in += bytes_before - queued_bytes(lane);
        self.remove_gone();
        Ok(done + runts)
    }

    /// The loop is about to wait: what the kind has due on the ports goes
    /// now (here, because the loop passes here whatever the lanes hold),
    /// then write interest follows the ports' state.
    fn sync_interest(&mut self, registry: &Registry) {
        self.kind.before_wait(&mut self.ports, Instant::now());
        for i in 0..self.ports.active().len() {
            let id = self.ports.active()[i];
            let Some(port) = self.ports.get_mut(id) else {
                continue;
            };
            if let Some(fd) = port.data.as_ref().map(|d| d.as_raw_fd()) {
                let tok = token(self.side, data_token(id));
                sync_write_interest(registry, fd, tok, port.writable, &mut port.write_armed);
            }
        }
    }

    fn wake_in(&self) -> Option<Duration> {
        self.kind.wake_in(&self.ports, Instant::now())
    }

    fn tick(&mut self) {
        let stale: Vec<PortId> = self
            .ports
            .iter()
            .filter(|(_, p)| !p.is_connected() && p.accepted.elapsed() > REQUEST_TIMEOUT)
            .map(|(id, _)| id)
            .collect();
        for id in stale {
            warn!(
                "{}: closing a control connection that sent no request",
                self.label
            );
            self.remove_port(id);
        }
    }

    fn report(&self, table: &mut StatsTable) {
        self.rows(table, &format!("{} host", self.label));
    }
}

impl NetNode {
    /// Answers every waiting `--status` connection with the counters.
    fn answer_status(&mut self) {
        while let Ok(Some(conn)) = crate::sys::accept(&self.dir.status) {
            let header = status::StatusHeader {
                node: &self.label,
                kind: self.label.split("://").next().unwrap_or_default(),
                policy: &self.settings,
                host: &self.host_label,
            };
            status::answer(&conn, &header, |t| self.rows(t, "host"));
        }
    }

    /// The counters rows: the host side (as `host`), then every cable.
    fn rows(&self, table: &mut StatsTable, host: &str) {
        let now = Instant::now();
        let row = table.row(host, &self.host, "");
        self.kind.figures(Link::Host, now, &mut row.figures);
        for (id, p) in self.ports.iter().filter(|(_, p)| p.is_connected()) {
            let row = table.row(&format!("  port {id}"), &p.stats, &p.description);
            row.full_now = Some(!p.writable);
            self.kind.figures(Link::Port(id), now, &mut row.figures);
        }
    }
}

/// Drops what is shorter than an Ethernet header from the host's queue:
/// a path report that a plug carried to the host side is for no cable.
/// Only frames not yet handed out can be runts (this runs first on each).
/// Returns how many it dropped and the bytes of the frames left, in the
/// one pass over the queue.
fn drop_runts(lane: &mut Lane) -> (usize, u64) {
    let ring = &mut lane.ring;
    let (mut runts, mut bytes) = (0, 0);
    for i in 0..ring.queued().len() {
        let slot = ring.queued()[i];
        let len = ring.frame(slot).len();
        if len < ETH_HEADER_LEN {
            ring.mark_done(slot);
            runts += 1;
        } else {
            bytes += len as u64;
        }
    }
    if runts > 0 {
        ring.sweep();
    }
    (runts, bytes)
}

fn queued_bytes(lane: &Lane) -> u64 {
    let ring = &lane.ring;
    ring.queued()
        .iter()
        .map(|&s| ring.frame(s).len() as u64)
        .sum()
}
