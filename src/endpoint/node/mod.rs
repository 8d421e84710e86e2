//! The node family: `hub://`, `switch://`, `multi://` and `bonding://`.
//!
//! A node owns a directory that vde clients join (see [`control`]); the
//! program that opened it is the node's *host*, reached through the lane of
//! the engine. Frames from ports are read here in batches; where they go is
//! decided by the node's [`NodeKind`] (see [`forward`]).

pub mod control;
pub mod dedup;
mod forward;
pub mod kind;
pub mod mac_table;
pub mod ports;

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::{Interest, Registry};

use self::control::{absolute_node_path, answer_request, Access, NodeDir, Refused};
use self::dedup::Dedup;
use self::kind::{BondingPolicy, NodeKind, SwitchConfig};
use self::mac_table::{Dest, MacTable};
use self::ports::{Port, PortId, PortTable};
use super::{register_fd, sync_write_interest, token, Endpoint, OpenError, Ready, Stop};
use crate::lane::Lane;
use crate::stats::{LinkStats, StatsTable};
use crate::sys;
use crate::url::Locator;
use crate::wire::{EthernetFrame, REQUEST_HEADER_LEN};

/// More ports than this are refused (each costs two descriptors).
const MAX_PORTS: usize = 4096;
/// A control connection that has not sent a whole request by then is closed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

const LISTENER: usize = 0;

fn ctl_token(id: PortId) -> usize {
    1 + 2 * id
}

fn data_token(id: PortId) -> usize {
    2 + 2 * id
}

pub struct NetNode {
    kind: NodeKind,
    label: String,
    side: usize,
    // Ports are declared before the directory so that their sockets are
    // removed before the directory is.
    ports: PortTable,
    dir: NodeDir,
    /// Counters of the host side: frames in from the host, out to it.
    host: LinkStats,
    /// Round-robin position (bonding) in the active port list.
    rr: usize,
    /// Where the next read pass over the ports starts, for fairness.
    read_from: usize,
    mac: Option<MacTable>,
    dedup: Option<Dedup>,
    /// Ports found dead during a pass, removed after it.
    dead: Vec<PortId>,
    /// Ports whose control stream ended: out of the forwarding, read until
    /// their socket is drained (the frames a cable sent just before it
    /// left still reach the host), then removed.
    leaving: Vec<PortId>,
    /// Host frames wait for a full port's grace to run out.
    waiting_on_laggard: bool,
}

/// Parameters every node takes, in vdeplug4's order (abbreviations match
/// the first), then the ones only some kinds take.
const NODE_KEYS: [&str; 6] = [
    "mode",
    "dirmode",
    "grp",
    "hashsize",
    "hashseed",
    "expiretime",
];

impl NetNode {
    /// Opens `hub://`, `switch://`, `multi://` or `bonding://` from a locator.
    pub fn open(loc: &Locator) -> Result<NetNode, OpenError> {
        let mut keys: Vec<&str> = NODE_KEYS.to_vec();
        match loc.module.as_str() {
            "bonding" => keys.push("policy"),
            "multi" => keys.push("dedup"),
            _ => {}
        }
        let params = loc.resolve(&keys, None).map_err(|e| {
            eprintln!("{e}");
            OpenError(libc::EINVAL)
        })?;
        let mut access = Access::default();
        let mut dirmode = None;
        let mut switch = SwitchConfig::default();
        let mut policy = BondingPolicy::Adaptive;
        let mut dedup = None;
        let invalid = |what: &str, v: &str| {
            eprintln!("invalid {what}: {v}");
            OpenError(libc::EINVAL)
        };
        for (k, v) in &params {
            match *k {
                "mode" => {
                    access = Access {
                        gid: access.gid,
                        ..Access::with_mode(parse_octal(v))
                    }
                }
                "dirmode" => dirmode = Some(parse_octal(v)),
                "grp" => access.gid = Some(sys::group_id(v).ok_or_else(|| invalid("group", v))?),
                "hashsize" => switch.hash_size = parse_c_int(v) as usize,
                "hashseed" => switch.hash_seed = parse_c_int(v) as u64,
                "expiretime" => switch.expire = Duration::from_secs(parse_c_int(v) as u64),
                "policy" => policy = v.parse().map_err(|_| invalid("policy", v))?,
                _ => {
                    let ms: u64 = v.parse().map_err(|_| invalid("dedup window", v))?;
                    dedup = (ms > 0).then(|| Duration::from_millis(ms));
                }
            }
        }
        if let Some(d) = dirmode {
            access.dirmode = d;
        }
        let kind = match loc.module.as_str() {
            "hub" => NodeKind::Hub,
            "switch" => NodeKind::Switch(switch),
            "multi" => NodeKind::Multi { dedup },
            "bonding" => NodeKind::Bonding(policy),
            _ => return Err(OpenError(libc::EPROTONOSUPPORT)),
        };
        let path = absolute_node_path(&loc.address)?;
        Self::create(kind, &path, access)
    }

    pub fn create(
        kind: NodeKind,
        path: &std::path::Path,
        access: Access,
    ) -> Result<NetNode, OpenError> {
        let dir = NodeDir::create(path, access)?;
        info!("{}://{}: ready", kind.scheme(), path.display());
        Ok(NetNode {
            label: format!("{}://{}", kind.scheme(), path.display()),
            mac: match kind {
                NodeKind::Switch(c) => Some(MacTable::new(c.hash_size, c.hash_seed, c.expire)),
                _ => None,
            },
            dedup: match kind {
                NodeKind::Multi { dedup: Some(w) } => Some(Dedup::new(w)),
                _ => None,
            },
            kind,
            side: 0,
            ports: PortTable::default(),
            dir,
            host: LinkStats::default(),
            rr: 0,
            read_from: 0,
            dead: Vec::with_capacity(16),
            leaving: Vec::new(),
            waiting_on_laggard: false,
        })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.dir.path
    }

    fn accept_all(&mut self, registry: &Registry) {
        loop {
            let fd = match sys::accept(&self.dir.listener) {
                Ok(Some(fd)) => fd,
                Ok(None) => return,
                Err(e) => {
                    warn!("{}: accept: {e}", self.label);
                    return;
                }
            };
            if self.ports.len() >= MAX_PORTS {
                warn!(
                    "{}: {} ports already, refusing another",
                    self.label, MAX_PORTS
                );
                continue;
            }
            let raw = fd.as_raw_fd();
            let id = self.ports.insert(Port::pending(fd));
            if let Err(e) = register_fd(
                registry,
                raw,
                token(self.side, ctl_token(id)),
                Interest::READABLE,
            ) {
                warn!("{}: {e}", self.label);
                self.ports.remove(id);
            }
        }
    }

    /// Reads the request of a pending port, and honours it once whole.
    fn read_request(&mut self, registry: &Registry, id: PortId) {
        let Some(port) = self.ports.get_mut(id) else {
            return;
        };
        loop {
            let at = port.request_len;
            if at == port.request.len() {
                break;
            }
            match sys::read(port.ctl.as_raw_fd(), &mut port.request[at..]) {
                Ok(0) => {
                    debug!("{}: a client left before its request", self.label);
                    self.remove_port(id);
                    return;
                }
                Ok(n) => port.request_len += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.remove_port(id);
                    return;
                }
            }
        }
        if port.request_len < REQUEST_HEADER_LEN {
            return;
        }
        match answer_request(&self.dir, &port.ctl, &port.request[..port.request_len]) {
            Ok(new) => {
                let raw = new.data.as_raw_fd();
                port.data = Some(new.data);
                port.data_path = Some(new.path);
                port.description = new.description;
                port.readable = true;
                port.writable = true;
                port.stats = LinkStats::default();
                let interest = Interest::READABLE;
                if let Err(e) =
                    register_fd(registry, raw, token(self.side, data_token(id)), interest)
                {
                    warn!("{}: {e}", self.label);
                    self.remove_port(id);
                    return;
                }
                info!("{}: port {} joined ({})", self.label, id, port.description);
                self.ports.activate(id);
            }
            Err(Refused::Malformed) => {
                warn!(
                    "{}: dropped a connection with a malformed request",
                    self.label
                );
                self.remove_port(id);
            }
            Err(Refused::Unreachable(e)) => {
                warn!(
                    "{}: the client's socket cannot be reached ({e}); no port made",
                    self.label
                );
                self.remove_port(id);
            }
            Err(Refused::Io(e)) => {
                warn!("{}: cannot make a port: {e}", self.label);
                self.remove_port(id);
            }
        }
    }

    /// Drains the control stream of a connected port; EOF ends the port.
    fn read_control(&mut self, id: PortId, closed: bool) {
        let Some(port) = self.ports.get_mut(id) else {
            return;
        };
        let mut scratch = [0u8; 256];
        loop {
            match sys::read(port.ctl.as_raw_fd(), &mut scratch) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !closed => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        info!("{}: port {} left", self.label, id);
        self.retire(id);
    }

    /// Takes a port whose cable left out of the forwarding; what it sent
    /// before leaving is still read (see `leaving`).
    fn retire(&mut self, id: PortId) {
        if self.leaving.contains(&id) {
            return;
        }
        match self.ports.get_mut(id) {
            Some(port) if port.is_connected() => {
                port.readable = true;
                self.ports.deactivate(id);
                self.leaving.push(id);
            }
            _ => self.remove_port(id),
        }
    }

    fn remove_port(&mut self, id: PortId) {
        self.leaving.retain(|&l| l != id);
        if let Some(port) = self.ports.remove(id) {
            if port.is_connected() {
                debug!("{}: port {id}: {:?}", self.label, port.stats);
            }
        }
        if let Some(mac) = &mut self.mac {
            mac.forget_port(id);
        }
    }

    /// Reads what leaving ports still hold; a drained one is removed.
    fn drain_leaving(&mut self, lane: &mut Lane) -> usize {
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
            if got == 0 {
                continue;
            }
            match self.kind {
                NodeKind::Hub => forward::hub_ports(&mut self.ports, lane, id, got, &mut self.dead),
                NodeKind::Switch(_) => self.switch_ports(lane, id, got),
                NodeKind::Multi { dedup: Some(_) } => self.suppress_duplicates(lane, id, got),
                _ => {}
            }
            total += got;
        }
        for id in drained {
            self.remove_port(id);
        }
        total
    }

    fn remove_dead(&mut self) {
        while let Some(id) = self.dead.pop() {
            info!("{}: port {} is gone", self.label, id);
            self.remove_port(id);
        }
    }

    /// Switch: learns the source of each new frame from port `from` and
    /// sends it on when its destination is another known port; frames for
    /// the host (or flooded) stay queued for the host.
    fn switch_ports(&mut self, lane: &mut Lane, from: PortId, count: usize) {
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
    fn suppress_duplicates(&mut self, lane: &mut Lane, from: PortId, count: usize) {
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

impl Endpoint for NetNode {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn register(&mut self, registry: &Registry, side: usize) -> io::Result<()> {
        self.side = side;
        register_fd(
            registry,
            self.dir.listener.as_raw_fd(),
            token(side, LISTENER),
            Interest::READABLE,
        )?;
        Ok(())
    }

    fn on_event(&mut self, registry: &Registry, local: usize, ready: Ready) -> Result<(), Stop> {
        if local == LISTENER {
            self.accept_all(registry);
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

    fn fill(&mut self, lane: &mut Lane) -> Result<usize, Stop> {
        let n = self.ports.active().len();
        let queued_before = lane.ring.queued().len();
        let mut total = 0;
        for k in 0..n {
            if lane.ring.free_slots() == 0 {
                break;
            }
            let id = self.ports.active()[(self.read_from + k) % n];
            let Some(port) = self.ports.get_mut(id) else {
                continue;
            };
            let Some(fd) = port
                .data
                .as_ref()
                .map(|d| d.as_raw_fd())
                .filter(|_| port.readable)
            else {
                continue;
            };
            let got = match lane
                .io
                .recv(fd, &mut lane.ring, usize::MAX, id as u32, &mut port.stats)
            {
                Ok(r) => {
                    port.readable = !r.drained;
                    r.frames
                }
                Err(e) => {
                    debug!("{}: port {id}: {e}", self.label);
                    self.dead.push(id);
                    continue;
                }
            };
            if got == 0 {
                continue;
            }
            match self.kind {
                NodeKind::Hub => forward::hub_ports(&mut self.ports, lane, id, got, &mut self.dead),
                NodeKind::Switch(_) => self.switch_ports(lane, id, got),
                NodeKind::Multi { dedup: Some(_) } => self.suppress_duplicates(lane, id, got),
                _ => {}
            }
            total += got;
        }
        self.read_from = self.read_from.wrapping_add(1);
        total += self.drain_leaving(lane);
        for i in queued_before..lane.ring.queued().len() {
            self.host
                .count_out(lane.ring.frame(lane.ring.queued()[i]).len());
        }
        self.remove_dead();
        Ok(total)
    }

    fn deliver(&mut self, lane: &mut Lane) -> Result<usize, Stop> {
        if lane.ring.is_empty() {
            return Ok(0);
        }
        let bytes_before = queued_bytes(lane);
        let done = if self.ports.active().is_empty() {
            // Nobody to give the frames to: vdeplug4 drops them too.
            let n = lane.ring.queued().len();
            self.host.drop_nocable += n as u64;
            lane.ring.consume_front(n)
        } else {
            match self.kind {
                NodeKind::Hub | NodeKind::Multi { .. } => {
                    let (done, waiting) =
                        forward::to_every_port(&mut self.ports, lane, &mut self.dead);
                    self.waiting_on_laggard = waiting;
                    done
                }
                NodeKind::Switch(_) => {
                    let mac = self.mac.as_mut().expect("switch has a table");
                    forward::switch_from_host(&mut self.ports, mac, lane, &mut self.dead)
                }
                NodeKind::Bonding(BondingPolicy::RoundRobin) => {
                    forward::round_robin(&mut self.ports, &mut self.rr, lane, &mut self.dead)
                }
                NodeKind::Bonding(BondingPolicy::Adaptive) => {
                    forward::adaptive(&mut self.ports, &mut self.rr, lane, &mut self.dead)
                }
            }
        };
        self.host.frames_in += done as u64;
        self.host.bytes_in += bytes_before - queued_bytes(lane);
        self.remove_dead();
        Ok(done)
    }

    fn sync_interest(&mut self, registry: &Registry) {
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
        self.waiting_on_laggard
            .then_some(forward::LAGGARD_GRACE / 4)
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
        table.row(&format!("{} host", self.label), &self.host, "");
        for (id, p) in self.ports.iter().filter(|(_, p)| p.is_connected()) {
            table.row(&format!("  port {id}"), &p.stats, &p.description);
        }
    }
}

fn queued_bytes(lane: &Lane) -> u64 {
    let ring = &lane.ring;
    ring.queued()
        .iter()
        .map(|&s| ring.frame(s).len() as u64)
        .sum()
}

/// Octal as vdeplug4 reads modes (`strtol(s, NULL, 8)`: leading digits).
fn parse_octal(s: &str) -> u32 {
    let digits: String = s
        .trim()
        .chars()
        .take_while(|c| ('0'..='7').contains(c))
        .collect();
    u32::from_str_radix(&digits, 8).unwrap_or(0)
}

/// A decimal number as `atoi` reads it.
fn parse_c_int(s: &str) -> i64 {
    let digits: String = s
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().unwrap_or(0)
}
