//! The one loop every policy deals with: a pick per frame, then a batch
//! sent to each cable that was dealt frames.

use super::Bond;
use crate::batch::{BatchIo, Insert, BATCH};
use crate::endpoint::node::bonding::cable::{Cable, Cables};
use crate::endpoint::node::bonding::reorder::WINDOW;
use crate::endpoint::node::bonding::sequencer::Sequencer;
use crate::endpoint::node::flow::flow_bucket;
use crate::endpoint::node::ports::{Port, PortId, PortTable, Sent};
use crate::lane::Lane;
use crate::ring::{FrameRing, Slot};

/// Names the cable for a frame (an index into the port table's active
/// list), or none to stop dealing. The last argument says whether the
/// frame's flow is sparse ([`Sequencer::is_sparse`]; false in a deal
/// without numbers).
pub(crate) type Pick<'a> = dyn FnMut(&PortTable, &mut Cables, &[u8], bool) -> Option<usize> + 'a;

/// Deals the next batch of `lane` into the ports' outboxes, one frame per
/// pick, and sends each outbox. With a [`Sequencer`], each frame dealt is
/// numbered and goes with its sequence tag; a frame a port does not take
/// keeps its number and stays pinned to that port, first to go when it has
/// room (see [`send_pinned`]), and no more frames are numbered than keep
/// every cable within the far node's reorder window ([`WINDOW_AHEAD`]).
/// Without one, `what_is_left` says what becomes of frames a port did not
/// take. Returns the frames dealt (0: no port to pick) and sent.
/// (`dyn`: one copy of this loop for every policy, not one each; the
/// indirect call per frame costs nothing next to the send.)
pub(crate) fn deal(
    bond: &mut Bond<'_>,
    lane: &mut Lane,
    pick: &mut Pick<'_>,
    mut seq: Option<&mut Sequencer>,
    what_is_left: fn(&mut Port, usize),
) -> (usize, usize) {
    let Lane { ring, io } = lane;
    let ports = &mut *bond.ports;
    let cables = &mut *bond.cables;
    let mut sent_total = send_pinned(ports, cables, io, ring, seq.as_deref(), bond.now);
    for i in 0..ports.active().len() {
        ports.nth_active_mut(i).outbox.clear();
    }
    let mut room = match seq.as_deref() {
        Some(s) => cables.room_ahead(ports, ring, s.next(), WINDOW_AHEAD, bond.now),
        None => u32::MAX,
    };
    let mut dealt = 0;
    for i in 0..ring.queued().len() {
        if dealt == BATCH {
            break;
        }
        let slot = ring.queued()[i];
        if cables.is_pinned(slot) || ring.is_done(slot) {
            continue;
        }
        if room == 0 {
            break;
        }
        let frame = ring.frame(slot);
        // The frame's flow, once: whether it is sparse, then its number.
        let flow = seq.as_deref().map(|s| {
            let bucket = flow_bucket(frame);
            (bucket, s.is_sparse(bucket))
        });
        let sparse = flow.is_some_and(|(_, sparse)| sparse);
        let Some(at) = pick(ports, cables, frame, sparse) else {
            break;
        };
        let id = ports.active()[at];
        if cables.get(id).is_some_and(|c| !c.pinned().is_empty()) {
            // Its pinned frames go first (a policy that picks a full port).
            break;
        }
        if let (Some(seq), Some((bucket, _))) = (seq.as_deref_mut(), flow) {
            let before = seq.next();
            seq.number(ring, slot, bucket);
            room -= seq.next().wrapping_sub(before);
        }
        ports.nth_active_mut(at).outbox.push(slot);
        dealt += 1;
    }
    let seq = seq.as_deref();
    for i in 0..ports.active().len() {
        let id = ports.active()[i];
        let port = ports.nth_active_mut(i);
        if port.outbox.is_empty() {
            continue;
        }
        let outbox = std::mem::take(&mut port.outbox);
        let sent = send_to(port, id, cables, io, ring, &outbox, seq);
        let took = sent.unwrap_or(0);
        match seq {
            Some(_) if sent.is_some() => cables.pin(id, &outbox[took..]),
            _ => what_is_left(port, outbox.len() - took),
        }
        port.outbox = outbox;
        sent_total += took;
        if sent.is_none() {
            ports.mark_gone(id);
        }
    }
    (dealt, sent_total)
}

/// How many numbers a cable may be behind the next one: half the far
/// node's reorder window (it holds frames that came for the floor and its
/// pace until half its window is taken, see `Reorder::crowded`), less a
/// batch.
const WINDOW_AHEAD: u32 = (WINDOW / 2 - BATCH) as u32;

/// Sends `slots` to `port` (cable `id`) with `seq`'s tags; marks the sent
/// frames done and notes what the cable now carries. Returns how many it
/// took, none if its peer is gone.
fn send_to(
    port: &mut Port,
    id: PortId,
    cables: &mut Cables,
    io: &mut BatchIo,
    ring: &mut FrameRing,
    slots: &[Slot],
    seq: Option<&Sequencer>,
) -> Option<usize> {
    let insert = seq.map(|s| s as &dyn Insert);
    let sent = match port.send(io, ring, slots, insert) {
        Sent::Took(n) => n,
        Sent::Gone => return None,
    };
    for &slot in &slots[..sent] {
        ring.mark_done(slot);
    }
    if let (Some(seq), Some(cable)) = (seq, cables.get_mut(id)) {
        if let Some(first) = slots[..sent]
            .iter()
            .find_map(|&s| Sequencer::number_of(ring, s))
        {
            cable.in_flight.sent(seq.stamp(), first);
        }
    }
    Some(sent)
}

/// Frames pinned to a cable go to it first, before anything new, as far as
/// it has room; a cable gone dark, or a deal without numbers, gives its
/// pinned frames back to be dealt anew. Returns how many went.
fn send_pinned(
    ports: &mut PortTable,
    cables: &mut Cables,
    io: &mut BatchIo,
    ring: &mut FrameRing,
    seq: Option<&Sequencer>,
    now: std::time::Instant,
) -> usize {
    let mut sent_total = 0;
    for i in 0..ports.active().len() {
        let id = ports.active()[i];
        let Some(cable) = cables.get(id).filter(|c| !c.pinned().is_empty()) else {
            continue;
        };
        if seq.is_none() || cable.path.silent(now) {
            cables.give_back(id);
            continue;
        }
        let port = ports.nth_active_mut(i);
        if !port.writable {
            continue;
        }
        let mut slots = [0 as Slot; BATCH];
        let n = cable.pinned().len().min(BATCH);
        slots[..n].copy_from_slice(&cable.pinned()[..n]);
        let Some(sent) = send_to(port, id, cables, io, ring, &slots[..n], seq) else {
            ports.mark_gone(id);
            cables.give_back(id);
            continue;
        };
        cables.took_pinned(id, sent);
        sent_total += sent;
    }
    sent_total
}

/// Deals with `pick` (numbering with `seq`, if given) until the queue is
/// empty or no port takes more: the frames a full port did not take stay
/// queued (pinned to it when numbered, else counted as `skipped` and dealt
/// to the others). Returns the frames finished.
pub(crate) fn deal_all(
    bond: &mut Bond<'_>,
    lane: &mut Lane,
    pick: &mut Pick<'_>,
    mut seq: Option<&mut Sequencer>,
) -> usize {
    let mut done = 0;
    while !lane.ring.is_empty() {
        let (dealt, sent) = deal(bond, lane, pick, seq.as_deref_mut(), |p, left| {
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

/// A cable a frame may be dealt to now: connected, room in its socket, and
/// not a dark path (see [`PathState::silent`]).
///
/// [`PathState::silent`]: crate::endpoint::node::bonding::path::PathState::silent
pub(crate) fn can_take(port: &Port, cable: &Cable, now: std::time::Instant) -> bool {
    port.writable && port.data.is_some() && !cable.path.silent(now)
}
