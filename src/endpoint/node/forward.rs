//! How frames leave a node for its ports. Frames wait in a lane and leave
//! in batches, one `sendmmsg` per port ([`send_batch`], the one send loop);
//! a port that cannot take more is marked unwritable until the poll says
//! otherwise.
//!
//! Two ways to hand out a queue: [`fan_out`] gives each frame to every port
//! its route names (hub, multi, switch, from the host or from a port), each
//! port at its own pace; [`round_robin`], [`adaptive`], [`by_flow`] and
//! [`by_arrival`] deal each frame to one port (bonding's policies).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use super::bonding::flow::flow_hash;
use super::bonding::path::MAX_BACKLOG;
use super::bonding::sequencer::Sequencer;
use super::ports::{Port, PortId, PortTable};
use crate::batch::{BatchIo, Insert, BATCH};
use crate::lane::Lane;
use crate::ring::{FrameRing, Slot, SlotTag};

/// How long a port may hold up the others by being full before it starts
/// losing frames.
pub const LAGGARD_GRACE: Duration = Duration::from_millis(20);

/// Where a queued frame goes, as its ring tag: the port it came from
/// (never sent back there; none for the host) and the one port it is for
/// (none: every port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) from: Option<PortId>,
    pub(crate) to: Option<PortId>,
}

impl Route {
    /// Every port.
    pub(crate) const ALL: Route = Route {
        from: None,
        to: None,
    };

    fn meant_for(self, id: PortId) -> bool {
        self.from != Some(id) && self.to.is_none_or(|to| to == id)
    }
}

/// Port ids are poll tokens, far below 2^16 - 1: each end of a route fits
/// in half the word (0: none).
impl SlotTag for Route {
    fn from_word(word: u32) -> Self {
        let port = |half: u32| (half != 0).then(|| half as PortId - 1);
        Route {
            from: port(word & 0xffff),
            to: port(word >> 16),
        }
    }
    fn word(self) -> u32 {
        let half = |p: Option<PortId>| p.map_or(0, |id| id as u32 + 1);
        half(self.from) | half(self.to) << 16
    }
}

fn meant_for(tag: Route, id: PortId) -> bool {
    tag.meant_for(id)
}

/// A send error that means the peer is gone, not that it is busy.
fn peer_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNREFUSED)
            | Some(libc::ENOTCONN)
            | Some(libc::EPIPE)
            | Some(libc::ECONNRESET)
    )
}

fn data_fd(port: &Port) -> Option<RawFd> {
    port.data.as_ref().map(|d| d.as_raw_fd())
}

/// Sends `slots` (at most a batch) to port `id`, each with what `insert`
/// puts into it (a bonding node's sequence tag). Returns how many it took;
/// a port that took fewer is full (marked so), one whose peer is gone is
/// put on `dead` and took none.
fn send_batch(
    io: &mut BatchIo,
    ring: &FrameRing,
    id: PortId,
    port: &mut Port,
    slots: &[Slot],
    dead: &mut Vec<PortId>,
    insert: Option<&dyn Insert>,
) -> usize {
    let Some(fd) = data_fd(port) else {
        return 0;
    };
    let sent = match io.send(fd, ring, slots, &mut port.stats, insert) {
        Ok(sent) => sent,
        Err(e) if peer_gone(&e) => {
            dead.push(id);
            return 0;
        }
        Err(_) => 0,
    };
    if sent < slots.len().min(BATCH) {
        port.mark_full(Instant::now());
    }
    sent
}

/// Which of a port's two places in the queues: in the lane of host frames,
/// or in the node's own queue of frames from ports to ports.
#[derive(Clone, Copy)]
pub enum Queue {
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
pub fn fan_out(
    ports: &mut PortTable,
    lane: &mut Lane,
    queue: Queue,
    dead: &mut Vec<PortId>,
) -> (usize, bool) {
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
                if meant_for(ring.tag(queued[at]), id) {
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
            let sent = send_batch(io, ring, id, port, &outbox, dead, None);
            port.outbox = outbox;
            if dead.last() == Some(&id) {
                port.cursor[q] = queued.len();
                continue;
            }
            progress |= sent > 0;
            port.cursor[q] = if sent == port.outbox.len() {
                at
            } else {
                // Just past the last frame it took.
                let mut left = sent;
                let mut c = first;
                while left > 0 {
                    if meant_for(ring.tag(queued[c]), id) {
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
                    && queued.iter().any(|&s| meant_for(ring.tag(s), id))
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
                        .filter(|&&s| meant_for(ring.tag(s), id))
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

/// Picks the port (an index into the active list) for the next frame among
/// those `eligible` accepts. Unweighted: the next one after `rr`, which is
/// vdeplug4's order. Weighted (`weights=`): smooth weighted round robin,
/// where every eligible port gains its weight in credit and the richest
/// one is picked and pays the sum, so 3:1 gives A A B A, A A B A, ...
fn next_port(
    ports: &mut PortTable,
    rr: &mut usize,
    weighted: bool,
    eligible: impl Fn(&Port) -> bool,
) -> Option<usize> {
    let n = ports.active().len();
    if !weighted {
        let at = (1..=n)
            .map(|step| (*rr + step) % n)
            .find(|&at| ports.get(ports.active()[at]).is_some_and(&eligible))?;
        *rr = at;
        return Some(at);
    }
    let mut best: Option<(usize, i64)> = None;
    let mut total = 0i64;
    for at in 0..n {
        let port = ports.nth_active_mut(at);
        if !eligible(port) {
            continue;
        }
        port.credit += i64::from(port.weight);
        total += i64::from(port.weight);
        if best.is_none_or(|(_, c)| port.credit > c) {
            best = Some((at, port.credit));
        }
    }
    let (at, _) = best?;
    ports.nth_active_mut(at).credit -= total;
    Some(at)
}

/// Deals the next batch of `ring` into the ports' outboxes, one frame per
/// pick (`pick` is given the frame and names an index into the active list,
/// or none to stop), and sends each outbox. With a [`Sequencer`], each frame
/// dealt is numbered and goes with its sequence tag (a frame a port does
/// not take is numbered again when it is dealt again). `what_is_left` says
/// what becomes of frames a port did not take. Returns the frames dealt
/// (0: no port to pick) and sent.
/// (`dyn`: one copy of this loop for every policy, not one each; the
/// indirect call per frame costs nothing next to the send.)
fn deal(
    ports: &mut PortTable,
    lane: &mut Lane,
    dead: &mut Vec<PortId>,
    pick: &mut dyn FnMut(&mut PortTable, &[u8]) -> Option<usize>,
    mut seq: Option<&mut Sequencer>,
    what_is_left: fn(&mut Port, usize),
) -> (usize, usize) {
    let Lane { ring, io } = lane;
    for i in 0..ports.active().len() {
        ports.nth_active_mut(i).outbox.clear();
    }
    let mut dealt = 0;
    for i in 0..ring.queued().len().min(BATCH) {
        let slot = ring.queued()[i];
        let Some(at) = pick(ports, ring.frame(slot)) else {
            break;
        };
        if let Some(seq) = seq.as_deref_mut() {
            seq.number(ring, slot);
        }
        ports.nth_active_mut(at).outbox.push(slot);
        dealt += 1;
    }
    let tag = seq.as_deref().map(|s| s as &dyn Insert);
    let mut sent_total = 0;
    for i in 0..ports.active().len() {
        let id = ports.active()[i];
        let port = ports.nth_active_mut(i);
        if port.outbox.is_empty() {
            continue;
        }
        let outbox = std::mem::take(&mut port.outbox);
        let sent = send_batch(io, ring, id, port, &outbox, dead, tag);
        what_is_left(port, outbox.len() - sent);
        for &slot in &outbox[..sent] {
            ring.mark_done(slot);
        }
        port.outbox = outbox;
        sent_total += sent;
    }
    (dealt, sent_total)
}

/// Bonding, `policy=rr`: vdeplug4's round robin. Each frame goes to the
/// next port in turn whether or not it can take it; what it cannot take is
/// dropped. Every frame is finished.
pub fn round_robin(
    ports: &mut PortTable,
    rr: &mut usize,
    weighted: bool,
    lane: &mut Lane,
    dead: &mut Vec<PortId>,
) -> usize {
    let mut done = 0;
    while !lane.ring.is_empty() {
        let (dealt, _) = deal(
            ports,
            lane,
            dead,
            &mut |ports, _| next_port(ports, rr, weighted, |_| true),
            None,
            |p, left| p.stats.drop_full += left as u64,
        );
        if dealt == 0 {
            break;
        }
        done += lane.ring.consume_front(dealt);
    }
    done
}

/// A port a frame may be dealt to now: connected, room in its socket, and
/// not a dark path (see [`path`](super::path)).
fn can_take(port: &Port, now: Instant) -> bool {
    port.writable && port.data.is_some() && !port.path.silent(now)
}

/// Deals with `pick` (numbering with `seq`, if given) until the queue is
/// empty or no port takes more: the frames a full port did not take stay
/// queued (counted as `skipped`) and go to the others. Returns the frames
/// finished.
fn deal_all(
    ports: &mut PortTable,
    lane: &mut Lane,
    dead: &mut Vec<PortId>,
    pick: &mut dyn FnMut(&mut PortTable, &[u8]) -> Option<usize>,
    mut seq: Option<&mut Sequencer>,
) -> usize {
    let mut done = 0;
    while !lane.ring.is_empty() {
        let (dealt, sent) = deal(ports, lane, dead, pick, seq.as_deref_mut(), |p, left| {
            p.stats.skipped += left as u64
        });
        done += lane.ring.sweep();
        if dealt == 0 || sent == 0 {
            // Every port that looked free was full, or went away.
            break;
        }
    }
    done
}

/// Bonding, `policy=adaptive`: round robin over the ports that can take a
/// frame now. A port that fills up mid-batch is skipped and its frames go
/// to the others; when no port can take any, the frames stay queued and
/// the host is not read until a port drains. With `seq`, frames are
/// numbered (`policy=path` while it deals this way).
pub fn adaptive(
    ports: &mut PortTable,
    rr: &mut usize,
    weighted: bool,
    lane: &mut Lane,
    dead: &mut Vec<PortId>,
    seq: Option<&mut Sequencer>,
) -> usize {
    let now = Instant::now();
    deal_all(
        ports,
        lane,
        dead,
        &mut |ports, _| next_port(ports, rr, weighted, |p| can_take(p, now)),
        seq,
    )
}

/// Bonding, `policy=hash`: each flow ([`flow_hash`]) to one of the ports
/// that can take a frame now, so that a flow is never reordered; a flow
/// moves only when its port is full or gone.
pub fn by_flow(ports: &mut PortTable, lane: &mut Lane, dead: &mut Vec<PortId>) -> usize {
    let now = Instant::now();
    deal_all(
        ports,
        lane,
        dead,
        &mut |ports, frame| {
            let open = |i: &usize| {
                ports
                    .get(ports.active()[*i])
                    .is_some_and(|p| can_take(p, now))
            };
            let count = (0..ports.active().len()).filter(open).count();
            if count == 0 {
                return None;
            }
            (0..ports.active().len())
                .filter(open)
                .nth(flow_hash(frame) as usize % count)
        },
        None,
    )
}

/// How much later than on the best cable a frame may arrive on the cable
/// it is sent to when the best cannot take it now: further, it waits for
/// the best (the far node would hold everything behind it that long).
const ARRIVAL_SLACK: Duration = Duration::from_millis(10);

/// Bonding, `policy=path` once every cable's far end answers: each frame
/// to the port where it would arrive first
/// ([`PathState::arrival`](super::path::PathState::arrival)), or, when
/// that port is full, to one where it would arrive at most
/// [`ARRIVAL_SLACK`] later; otherwise it waits for room. It waits too while
/// more than [`MAX_BACKLOG`] stands queued on the path of the port it would
/// take and in its virtual queue: queues stay short, and what the host
/// sends beyond what the paths carry waits at the host (a TCP sender slows
/// down). Frames are numbered (`seq`) and the far node gives them to its
/// host in that order ([`Reorder`](super::reorder::Reorder)), so a flow may
/// take every cable. Returns the frames finished.
pub fn by_arrival(
    ports: &mut PortTable,
    lane: &mut Lane,
    dead: &mut Vec<PortId>,
    seq: &mut Sequencer,
) -> usize {
    let now = Instant::now();
    deal_all(
        ports,
        lane,
        dead,
        &mut |ports, frame| {
            // The first arrival on any lit port, and on one with room.
            let mut first: Option<Duration> = None;
            let mut open: Option<(usize, Duration)> = None;
            for i in 0..ports.active().len() {
                let p = ports.nth_active_mut(i);
                if p.data.is_none() || p.path.silent(now) {
                    continue;
                }
                let arrival = p.path.arrival(now, frame.len());
                first = Some(first.map_or(arrival, |f| f.min(arrival)));
                if p.writable && open.is_none_or(|(_, a)| arrival < a) {
                    open = Some((i, arrival));
                }
            }
            let (at, arrival) = open?;
            let p = ports.nth_active_mut(at);
            if arrival > first? + ARRIVAL_SLACK || p.path.queued(now) > MAX_BACKLOG {
                return None;
            }
            p.path.take(now, frame.len());
            Some(at)
        },
        Some(seq),
    )
}
