//! A node hosted inside someone else's program: the libvdeplug module
//! shell. Where the binaries' [`engine`](crate::engine) loops, here the
//! program's calls drive the same node: `send` is a frame from the host,
//! `recv` does one step of control work and hands out the next frame for
//! the host. Nothing here blocks, prints, spawns or touches signals.
//!
//! The program polls [`HostedNode::datafd`], an epoll descriptor holding
//! the node's sockets plus an eventfd (readable while frames wait for the
//! host) and a timerfd (frames held for a batch, a laggard's grace). Why
//! the eventfd is written so rarely and frames are held: docs/architecture.md,
//! "The same node inside another program".

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use log::debug;
use mio::{Events, Interest, Poll, Token};

use crate::endpoint::node::NetNode;
use crate::endpoint::{register_fd, split_token, Endpoint, OpenError, Ready};
use crate::lane::{Lane, HOST_STORE_SLOTS, LANE_SLOTS};
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
/// Once [`HOLD_AFTER`] frames in a row came from the host each within
/// this of the last send to the ports (the host sends faster than 20 000
/// frames/s), the next are held, to go in one batch with those that
/// follow them. Slower traffic, and a short burst, goes frame by frame
/// with nothing added to its latency.
pub const HOLD_GAP: Duration = Duration::from_micros(50);
/// How many close frames in a row make a run worth holding.
pub const HOLD_AFTER: u8 = 4;
/// The longest a frame is held.
pub const HOLD: Duration = Duration::from_micros(250);
/// Held frames go at once when this many wait. Each send to a port may
/// wake a program that sleeps on it, and waking one costs more than
/// sending a frame: the bigger the batch, the fewer.
pub const BATCH: usize = 60;
/// Room for frames from the host: a batch held, and three more that wait
/// for full cables (a bonding node's host-side flow queues order them).
/// A receiver descheduled for two milliseconds at 100k frames/s costs no
/// frame; only the slots used become resident. Fewer than a node under
/// `vde_plug_rs` keeps ([`HOST_STORE_SLOTS`]): the program is not made to
/// wait, so what does not fit is dropped, and a TCP sender in it learns
/// of a full bond no later than here.
const FROM_HOST_SLOTS: usize = 4 * LANE_SLOTS;
const _: () = assert!(FROM_HOST_SLOTS <= HOST_STORE_SLOTS);

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
    /// A kick is in the poll and no wait has consumed it yet: the data fd
    /// is readable.
    kicked: bool,
    /// When the timerfd fires, if it is set.
    timer_due: Option<Instant>,
    /// Since when frames from the host are held for a batch, if they are.
    holding_since: Option<Instant>,
    /// When frames last went to the ports.
    last_sent: Instant,
    /// Frames from the host in a row that came within [`HOLD_GAP`] of the
    /// last send (up to [`HOLD_AFTER`]).
    close_in_a_row: u8,
    /// The last delivery left frames behind (full cables, a laggard).
    blocked: bool,
}

impl HostedNode {
    /// Opens `scheme://args` (hub, switch, multi or bonding). The
    /// program's open arguments (vde_plug's `-m`, `-g`) are not taken: the
    /// installed vdeplug 4.0.1 modules ignore them for nodes too.
    pub fn open(scheme: &str, args: &str) -> Result<HostedNode, OpenError> {
        let loc = Locator::parse(&format!("{scheme}://{args}"));
        let mut node = NetNode::open(&loc, LANE_SLOTS)?;
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
            from_host: Lane::new(FROM_HOST_SLOTS),
            kick,
            timer,
            program: LinkStats::default(),
            next_tick: Instant::now() + TICK,
            kicked: false,
            timer_due: None,
            holding_since: None,
            last_sent: Instant::now(),
            close_in_a_row: 0,
            blocked: false,
        })
    }

    /// The descriptor the program polls for POLLIN.
    pub fn datafd(&self) -> RawFd {
        self.poll.as_raw_fd()
    }

    /// A frame from the host. Never blocks: when the node cannot take it
    /// (its queue toward the ports is full) it is dropped and counted.
    /// A frame in a run of close ones is held for a batch (see
    /// [`HOLD_GAP`]); while a batch is held nothing else changes (the timer
    /// is set), so the clock is read once per batch, not per frame.
    pub fn send(&mut self, frame: &[u8]) {
        if frame.len() < ETH_HEADER_LEN {
            self.program.drop_runt += 1;
            return;
        }
        if frame.len() > MAX_FRAME {
            self.program.drop_oversize += 1;
            return;
        }
        if self.holding_since.is_some() {
            // A hold starts only on an empty lane, so there is room.
            self.queue_from_host(frame);
            if self.from_host.ring.queued().len() >= BATCH {
                let now = Instant::now();
                self.deliver();
                self.rearm(now);
            }
            return;
        }
        let now = Instant::now();
        self.close_in_a_row = if now.saturating_duration_since(self.last_sent) < HOLD_GAP {
            (self.close_in_a_row + 1).min(HOLD_AFTER)
        } else {
            0
        };
        if self.from_host.ring.free_slots() == 0 {
            self.deliver();
        }
        if self.queue_from_host(frame) {
            // Frames that wait for a full cable are not held: the cable's
            // write event brings the next try, and a timer would only
            // wake the program for nothing.
            if !self.blocked && self.close_in_a_row == HOLD_AFTER {
                self.holding_since = Some(now);
            } else {
                self.deliver();
            }
        }
        self.rearm(now);
    }

    /// Copies a frame from the host into its lane, counted as taken or,
    /// when the lane is full, as dropped. Returns whether it was taken.
    fn queue_from_host(&mut self, frame: &[u8]) -> bool {
        let taken = self.from_host.ring.push_copy(frame);
        if taken {
            self.program.count_in(frame.len());
        } else {
            self.program.drop_full += 1;
        }
        taken
    }

    /// One step: control work for whatever the poll reports, frames moved
    /// both ways, then the next frame for the host copied into `buf`
    /// (truncated to its size). Returns the frame's length, or
    /// [`CONTROL_STEP`] when there is none. While frames wait for the host
    /// the poll is not asked: they are handed out first.
    pub fn recv(&mut self, buf: &mut [u8]) -> usize {
        if self.to_host.ring.is_empty() {
            self.step();
        } else if !self.from_host.ring.is_empty() {
            // The poll is not asked while frames wait for the host, so a
            // batch whose time is up (its timer's event may wait in the
            // poll) and frames waiting for a cable go from here.
            self.deliver_unless_held(Instant::now());
        }
        let ring = &mut self.to_host.ring;
        let n = match ring.queued().first() {
            Some(&slot) => {
                let frame = ring.frame(slot);
                let n = frame.len().min(buf.len());
                buf[..n].copy_from_slice(&frame[..n]);
                self.program.count_out(frame.len());
                ring.consume_front(1);
                // Read ahead when that was the last: the ports' readiness
                // was consumed by the poll, so frames still in their
                // sockets must be queued (and the fd kept readable) now,
                // or nobody would ever ask for them; and the wait takes
                // back the kick, so the fd is not readable for nothing.
                if ring.is_empty() {
                    self.step();
                }
                n
            }
            None => CONTROL_STEP,
        };
        self.rearm(Instant::now());
        n
    }

    /// [`deliver`](Self::deliver), but a batch being held waits for its
    /// time (frames for the host must not cut it short: traffic both ways
    /// would go frame by frame again).
    fn deliver_unless_held(&mut self, now: Instant) {
        if self
            .holding_since
            .is_none_or(|since| now.saturating_duration_since(since) >= HOLD)
        {
            self.deliver();
        }
    }

    /// Hands what the host sent to the node (held frames included).
    /// The clock is read again once the send is over: a batch takes tens of
    /// microseconds to send, and measured from before it the next frame
    /// would look like the end of a run (four frames would go one by one
    /// before the next hold).
    fn deliver(&mut self) {
        self.holding_since = None;
        if !self.from_host.ring.is_empty() {
            let _ = self.node.deliver(&mut self.from_host);
            self.last_sent = Instant::now();
        }
        self.blocked = !self.from_host.ring.is_empty();
    }

    fn step(&mut self) {
        if self
            .poll
            .poll(&mut self.events, Some(Duration::ZERO))
            .is_ok()
        {
            for ev in self.events.iter() {
                match ev.token() {
                    KICK => self.kicked = false,
                    TIMER => {
                        self.timer_due = None;
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
        let now = Instant::now();
        self.deliver_unless_held(now);
        if self.to_host.ring.is_empty() {
            let _ = self.node.fill(&mut self.to_host);
        }
        if now >= self.next_tick {
            self.next_tick = now + TICK;
            self.node.tick();
        }
    }

    /// Keeps the data fd truthful: readable while frames wait for the host,
    /// write interest on full ports, a timer while frames are held for a
    /// batch or a laggard holds frames. Each only when it changes.
    fn rearm(&mut self, now: Instant) {
        self.node.sync_interest(self.poll.registry());
        if !self.to_host.ring.is_empty() && !self.kicked {
            sys::kick(self.kick.as_raw_fd());
            self.kicked = true;
        }
        let held = self.holding_since.map(|since| since + HOLD);
        let laggard = self.node.wake_in().map(|soon| now + soon);
        let due = match (held, laggard) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(due) = due {
            // A timer set to fire by then will do, and so will one that
            // fired and whose event the poll still holds (the fd is
            // readable: the program calls `recv`, which sends the held
            // frames); setting a timer is not cheap.
            if self.timer_due.is_none_or(|set| set > due) {
                sys::arm_timer(self.timer.as_raw_fd(), due.saturating_duration_since(now));
                self.timer_due = Some(due);
            }
        }
    }

    /// The counters table: the program's side, then the node's.
    pub fn report(&self) -> String {
        let mut table = StatsTable::new();
        table.row("program", &self.program, "");
        self.node.report(&mut table);
        table.text()
    }
}

impl Drop for HostedNode {
    fn drop(&mut self) {
        // Frames held for a batch go now: a program that only sends may
        // close without polling the data fd again.
        self.node.closing();
        self.deliver();
        debug!("link counters\n{}", self.report());
    }
}
