//! Frames to every port their route names (hub, switch, multi): each
//! queued frame carries its [`Route`] in its ring tag, each port keeps its
//! own place in the queue and takes what it can ([`fan_out`]), so a port
//! that cannot keep up loses only its own frames, and only after
//! [`LAGGARD_GRACE`]. Frames from the host are handed out from the lane
//! they came in ([`HostFanOut`]); frames from a port to others wait in a
//! lane of the kind's own ([`PortToPort`]).

use std::ops::Range;
use std::time::{Duration, Instant};

use super::ports::{PortId, PortTable, Sent};
use crate::batch::BATCH;
use crate::lane::Lane;
use crate::ring::{FrameRing, SlotTag};

/// How long a port may hold up the others by being full before it starts
/// losing frames.
pub(crate) const LAGGARD_GRACE: Duration = Duration::from_millis(20);

/// Where a queued frame goes, as its ring tag: the port it came from
/// (never sent back there; none for the host) and the one port it is for
/// (none: every port). Port ids are poll tokens, far below 2^16 - 1: each
/// end is kept in half the word, as the id plus one (0: none), so that the
/// test every port makes of every frame is a few integer operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route(u32);

impl Route {
    /// Every port.
    pub(crate) const ALL: Route = Route(0);

    pub(crate) fn new(from: Option<PortId>, to: Option<PortId>) -> Route {
        let half = |p: Option<PortId>| p.map_or(0, |id| id as u32 + 1);
        Route(half(from) | half(to) << 16)
    }

    fn meant_for(self, id: PortId) -> bool {
        let me = id as u32 + 1;
        let (from, to) = (self.0 & 0xffff, self.0 >> 16);
        from != me && (to == 0 || to == me)
    }
}

impl SlotTag for Route {
    fn from_word(word: u32) -> Self {
        Route(word)
    }
    fn word(self) -> u32 {
        self.0
    }
}

/// Which of a port's two places in the queues: in the lane of host frames,
/// or in the kind's own queue of frames from ports to ports.
#[derive(Clone, Copy)]
pub(crate) enum Queue {
    FromHost = 0,
    FromPorts = 1,
}

/// Every frame of `lane` to every port its route names. Each port keeps its
/// own place in the lane, so one that is briefly full catches up later
/// instead of losing frames; a frame is finished once every port it is
/// for has it. When the lane is full and some port has every frame meant
/// for it while another has been unable to take anything for
/// [`LAGGARD_GRACE`], that laggard gives up the oldest frames, up to where
/// the others are (counted in its `full` column): a
/// stalled port costs a lane of buffering and a moment, never the others'
/// traffic. Until then, and whenever no port can take anything, frames
/// wait. Returns the frames finished and whether it is waiting out a
/// laggard's grace (the caller should look again soon).
pub(crate) fn fan_out(ports: &mut PortTable, lane: &mut Lane, queue: Queue) -> (usize, bool) {
    let q = queue as usize;
    let mut done = 0;
    let now = Instant::now();
    loop {
        let Lane { ring, io } = &mut *lane;
        let queued = ring.queued();
        let mut progress = false;
        for i in 0..ports.active().len() {
            let id = ports.active()[i];
            let port = ports.nth_active_mut(i);
            // The frames for this port from its place on, a batch at most;
            // those for others are passed over.
            let mut at = port.cursor[q];
            let mut first = None;
            port.outbox.clear();
            while at < queued.len() && port.outbox.len() < BATCH {
                if ring.tag::<Route>(queued[at]).meant_for(id) {
                    first.get_or_insert(at);
                    port.outbox.push(queued[at]);
                }
                at += 1;
            }
            let Some(first) = first else {
                port.cursor[q] = at;
                continue;
            };
            port.cursor[q] = first;
            if !port.writable {
                continue;
            }
            let outbox = std::mem::take(&mut port.outbox);
            let sent = port.send(io, ring, &outbox, None);
            port.outbox = outbox;
            let Sent::Took(sent) = sent else {
                port.cursor[q] = queued.len();
                ports.mark_gone(id);
                continue;
            };
            progress |= sent > 0;
            port.cursor[q] = if sent == port.outbox.len() {
                at
            } else {
                // Just past the last frame it took.
                let mut left = sent;
                let mut c = first;
                while left > 0 {
                    if ring.tag::<Route>(queued[c]).meant_for(id) {
                        left -= 1;
                    }
                    c += 1;
                }
                c
            };
        }
        let cursors = || ports.connected().map(|p| p.cursor[q]);
        let mut front = cursors().min().unwrap_or(queued.len());
        // A port that has every frame queued for it (not merely none, as
        // the port they came from) and waits for the laggards to make room.
        let someone_waits = || {
            ports.active().iter().any(|&id| {
                ports.get(id).is_some_and(|p| p.cursor[q] == queued.len())
                    && queued.iter().any(|&s| ring.tag::<Route>(s).meant_for(id))
            })
        };
        if front == 0 && !progress && ring.free_slots() == 0 && someone_waits() {
            let laggards_stalled = ports.connected().filter(|p| p.cursor[q] == 0).all(|p| {
                p.full_since
                    .is_some_and(|t| now.duration_since(t) >= LAGGARD_GRACE)
            });
            if !laggards_stalled {
                return (done, true);
            }
            // The laggards give up frames up to where the slowest of the
            // others is, a batch at most; nobody else loses any.
            front = cursors()
                .filter(|&c| c > 0)
                .min()
                .unwrap_or(queued.len())
                .min(BATCH);
            for i in 0..ports.active().len() {
                let id = ports.active()[i];
                let port = ports.nth_active_mut(i);
                if port.cursor[q] < front {
                    let lost = queued[port.cursor[q]..front]
                        .iter()
                        .filter(|&&s| ring.tag::<Route>(s).meant_for(id))
                        .count();
                    port.stats.drop_full += lost as u64;
                    port.cursor[q] = front;
                }
            }
        }
        if front > 0 {
            ring.consume_front(front);
            for i in 0..ports.active().len() {
                ports.nth_active_mut(i).cursor[q] -= front;
            }
            done += front;
            progress = true;
        }
        if !progress {
            break;
        }
    }
    (done, false)
}

/// When a kind that fans out wants to be looked at again: soon, while
/// frames wait out a laggard's grace.
pub(crate) fn laggard_wake(waiting: bool) -> Option<Duration> {
    waiting.then_some(LAGGARD_GRACE / 4)
}

/// The frames from the host, handed out from the lane they came in: which
/// of them have a route, and whether they wait out a laggard's grace.
#[derive(Default)]
pub(crate) struct HostFanOut {
    /// Host frames already given a route (the newest are not yet).
    routed: usize,
    pub(crate) waiting: bool,
}

impl HostFanOut {
    /// The queued frames not yet given a route, as indexes into the queue.
    pub(crate) fn fresh(&self, ring: &FrameRing) -> Range<usize> {
        self.routed..ring.queued().len()
    }

    /// Every fresh frame to every port, then out as far as they take them.
    pub(crate) fn send_to_every_port(&mut self, ports: &mut PortTable, lane: &mut Lane) -> usize {
        let ring = &mut lane.ring;
        for i in self.fresh(ring) {
            ring.set_tag(ring.queued()[i], Route::ALL);
        }
        self.send(ports, lane)
    }

    /// The queued frames (every one routed now) out, as far as the ports
    /// take them. Returns the frames finished with.
    pub(crate) fn send(&mut self, ports: &mut PortTable, lane: &mut Lane) -> usize {
        self.routed = lane.ring.queued().len();
        let (done, waiting) = fan_out(ports, lane, Queue::FromHost);
        self.routed -= done;
        self.waiting = waiting;
        done
    }
}

/// Frames from a port on their way to other ports (hub, switch): a lane of
/// the kind's own, handed out by [`fan_out`] like host frames, so a port
/// that cannot keep up loses only its own frames.
pub(crate) struct PortToPort {
    lane: Lane,
    pub(crate) waiting: bool,
}

impl PortToPort {
    /// Room for `slots` frames.
    pub(crate) fn new(slots: usize) -> PortToPort {
        PortToPort {
            lane: Lane::new(slots),
            waiting: false,
        }
    }

    /// How many more frames it can take.
    pub(crate) fn room(&self) -> usize {
        self.lane.ring.free_slots()
    }

    /// Queues a copy of `frame` with its route; false when full (the kind
    /// reads no more from ports than [`room`](Self::room) allows).
    pub(crate) fn push(&mut self, frame: &[u8], from: PortId, to: Option<PortId>) -> bool {
        self.lane
            .ring
            .push_copy_tagged(frame, Route::new(Some(from), to))
    }

    /// Moves what is queued to the ports, as far as they take it.
    pub(crate) fn flush(&mut self, ports: &mut PortTable) {
        let (_, waiting) = fan_out(ports, &mut self.lane, Queue::FromPorts);
        self.waiting = waiting;
    }
}
