//! A node hosted inside someone else's program: the libvdeplug module
//! shell. Where the binaries' [`engine`](crate::engine) loops, here the
//! program's calls drive the same node: `send` is a frame from the host,
//! `recv` does one step of control work and hands out the next frame for
//! the host. Nothing here blocks, prints, spawns or touches signals.
//!
//! The program polls [`HostedNode::datafd`], an epoll descriptor holding
//! the node's sockets plus an eventfd and a timerfd of our own: frames
//! still queued for the host keep it readable (the eventfd), and a node
//! waiting out a laggard's grace gets a wake-up (the timerfd).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use log::debug;
use mio::{Events, Interest, Poll, Token};

use crate::endpoint::node::NetNode;
use crate::endpoint::{register_fd, split_token, Endpoint, OpenError, Ready};
use crate::engine::LANE_SLOTS;
use crate::lane::Lane;
use crate::stats::{LinkStats, StatsTable};
use crate::sys;
use crate::url::Locator;
use crate::wire::{ETH_HEADER_LEN, MAX_FRAME};

/// What `recv` returns when a call did control work but has no frame: the
/// C node module returns 1 there too (programs ignore anything shorter than
/// an Ethernet header).
pub const CONTROL_STEP: usize = 1;

/// The node's tokens use side 0; ours side 1.
const NODE_SIDE: usize = 0;
const KICK: Token = Token(1 << crate::endpoint::SIDE_SHIFT);
const TIMER: Token = Token((1 << crate::endpoint::SIDE_SHIFT) | 1);
const TICK: Duration = Duration::from_secs(1);

pub struct HostedNode {
    // The node is dropped first: its directory goes before the poll.
    node: NetNode,
    poll: Poll,
    events: Events,
    /// Frames read from the ports for the host, handed out one per `recv`.
    to_host: Lane,
    /// Frames the host sent that wait for a port (backpressure or a
    /// laggard's grace).
    from_host: Lane,
    kick: OwnedFd,
    timer: OwnedFd,
    /// The program's side: frames it sent (in) and received (out), and
    /// what was dropped because the node could not take it.
    program: LinkStats,
    next_tick: Instant,
}

impl HostedNode {
    /// Opens `scheme://args` (hub, switch, multi or bonding). The
    /// program's open arguments (vde_plug's `-m`, `-g`) are not taken: the
    /// installed vdeplug 4.0.1 modules ignore them for nodes too.
    pub fn open(scheme: &str, args: &str) -> Result<HostedNode, OpenError> {
        let loc = Locator::parse(&format!("{scheme}://{args}"));
        let mut node = NetNode::open(&loc)?;
        let poll = Poll::new()?;
        let program = std::fs::read_to_string("/proc/self/comm").unwrap_or_default();
        node.joined_to(&format!("program {} (pid {})", program.trim(), sys::pid()));
        node.register(poll.registry(), NODE_SIDE)?;
        let kick = sys::eventfd()?;
        let timer = sys::timerfd()?;
        register_fd(poll.registry(), kick.as_raw_fd(), KICK, Interest::READABLE)?;
        register_fd(
            poll.registry(),
            timer.as_raw_fd(),
            TIMER,
            Interest::READABLE,
        )?;
        Ok(HostedNode {
            node,
            poll,
            events: Events::with_capacity(64),
            to_host: Lane::new(LANE_SLOTS),
            from_host: Lane::new(LANE_SLOTS),
            kick,
            timer,
            program: LinkStats::default(),
            next_tick: Instant::now() + TICK,
        })
    }

    /// The descriptor the program polls for POLLIN.
    pub fn datafd(&self) -> RawFd {
        self.poll.as_raw_fd()
    }

    /// A frame from the host. Never blocks: when the node cannot take it
    /// (its queue toward the ports is full) it is dropped and counted.
    pub fn send(&mut self, frame: &[u8]) {
        if frame.len() < ETH_HEADER_LEN {
            self.program.drop_runt += 1;
            return;
        }
        if frame.len() > MAX_FRAME {
            self.program.drop_oversize += 1;
            return;
        }
        if self.from_host.ring.free_slots() == 0 {
            let _ = self.node.deliver(&mut self.from_host);
        }
        if self.from_host.ring.push_copy(frame, 0) {
            self.program.count_in(frame.len());
            let _ = self.node.deliver(&mut self.from_host);
        } else {
            self.program.drop_full += 1;
        }
        self.rearm();
    }

    /// One step: control work for whatever the poll reports, frames moved
    /// both ways, then the next frame for the host copied into `buf`
    /// (truncated to its size). Returns the frame's length, or
    /// [`CONTROL_STEP`] when there is none.
    pub fn recv(&mut self, buf: &mut [u8]) -> usize {
        self.step();
        let ring = &mut self.to_host.ring;
        let n = match ring.queued().first() {
            Some(&slot) => {
                let frame = ring.frame(slot);
                let n = frame.len().min(buf.len());
                buf[..n].copy_from_slice(&frame[..n]);
                self.program.count_out(frame.len());
                ring.consume_front(1);
                n
            }
            None => CONTROL_STEP,
        };
        // Read ahead: the ports' readiness was consumed by the poll, so
        // frames still in their sockets must be queued (and the fd kept
        // readable) now, or nobody would ever ask for them.
        if self.to_host.ring.is_empty() {
            let _ = self.node.fill(&mut self.to_host);
        }
        self.rearm();
        n
    }

    fn step(&mut self) {
        if self
            .poll
            .poll(&mut self.events, Some(Duration::ZERO))
            .is_ok()
        {
            for ev in self.events.iter() {
                match ev.token() {
                    KICK => {}
                    TIMER => {
                        let mut expirations = [0u8; 8];
                        let _ = sys::read(self.timer.as_raw_fd(), &mut expirations);
                    }
                    t => {
                        let (_, local) = split_token(t);
                        let _ = self
                            .node
                            .on_event(self.poll.registry(), local, Ready::from(ev));
                    }
                }
            }
        }
        let _ = self.node.deliver(&mut self.from_host);
        if self.to_host.ring.is_empty() {
            let _ = self.node.fill(&mut self.to_host);
        }
        let now = Instant::now();
        if now >= self.next_tick {
            self.next_tick = now + TICK;
            self.node.tick();
        }
    }

    /// Keeps the data fd truthful: readable while frames wait for the host,
    /// write interest on full ports, a timer while a laggard holds frames.
    fn rearm(&mut self) {
        self.node.sync_interest(self.poll.registry());
        if !self.to_host.ring.is_empty() {
            sys::kick(self.kick.as_raw_fd());
        }
        if let Some(soon) = self.node.wake_in() {
            sys::arm_timer(self.timer.as_raw_fd(), soon);
        }
    }

    /// The counters table: the program's side, then the node's.
    pub fn report(&self) -> String {
        let mut table = StatsTable::new();
        table.row("program", &self.program, "");
        self.node.report(&mut table);
        table.text().to_string()
    }
}

impl Drop for HostedNode {
    fn drop(&mut self) {
        debug!("link counters\n{}", self.report());
    }
}
