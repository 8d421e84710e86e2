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
use std::time::{Duration, Instant};

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
    // The cables (by active index) dealt a sparse flow's frame: they hold
    // nothing back.
    let mut urgent = 0u128;
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
        if cables
            .get(id)
            .is_some_and(|c| !c.pinned().is_empty() && c.held_until.is_none())
        {
            // Its refused frames go first (a policy that picks a full port).
            break;
        }
        if sparse && at < 128 {
            urgent |= 1 << at;
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
        let free = i < 128 && urgent & (1 << i) == 0 && cables.may_hold();
        let hold = match (seq, cables.get(id)) {
            (Some(_), Some(c)) if free => hold_until(port, c, ring, &outbox, bond.now),
            _ => None,
        };
        if let Some(until) = hold {
            cables.hold(id, &outbox, until);
            port.outbox = outbox;
            continue;
        }
        // What it held goes first, in the same send (it held fewer than
        // HOLD_FRAMES: refused frames stop the deal to it).
        let held = cables.get(id).map_or(0, |c| c.pinned().len());
        let mut slots = [0 as Slot; BATCH + HOLD_FRAMES];
        let n = held + outbox.len();
        if n > slots.len() {
            // Not reached (see above); if it were, they would wait their turn.
            cables.refused(id, &outbox);
            port.outbox = outbox;
            continue;
        }
        if let Some(c) = cables.get(id) {
            slots[..held].copy_from_slice(c.pinned());
        }
        slots[held..n].copy_from_slice(&outbox);
        let sent = send_to(port, id, cables, io, ring, &slots[..n], seq);
        let took = sent.unwrap_or(0);
        cables.took_pinned(id, took.min(held));
        let took_new = took.saturating_sub(held);
        match seq {
            Some(_) if sent.is_some() => cables.refused(id, &outbox[took_new..]),
            _ => what_is_left(port, outbox.len() - took_new),
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

/// A bulk flow's frames wait for more to go with them, up to this many
/// (about 15 kB: one packet of an ssh session channel, which takes up to
/// 32 kB)...
const HOLD_FRAMES: usize = 10;
/// ... or this long...
const HOLD_MAX: Duration = Duration::from_millis(8);
/// ... or until their path has no more than this left to carry of what
/// went before them: held longer, they would leave it idle.
const HOLD_MARGIN: Duration = Duration::from_millis(1);

/// Until when a cable may hold the frames pinned to it and `more` dealt
/// to it now, to send them together: none when they must go now. A byte
/// stream (an ssh cable) makes a packet of each write, and a lone frame's
/// packet leaves as a full TCP segment and a short one; frames that go
/// together fill their segments. A sparse flow's frames are never held
/// (the caller does not ask), nor refused ones, nor frames a path report
/// due would overtake.
fn hold_until(
    port: &Port,
    cable: &Cable,
    ring: &FrameRing,
    more: &[Slot],
    now: Instant,
) -> Option<Instant> {
    let pinned = cable.pinned();
    let refused = !pinned.is_empty() && cable.held_until.is_none();
    let report_due = cable.path.report_due().is_some_and(|t| t <= now);
    if !port.writable || refused || report_due {
        return None;
    }
    let frames = pinned.len() + more.len();
    let bytes: u64 = pinned
        .iter()
        .chain(more)
        .map(|&s| ring.frame(s).len() as u64)
        .sum();
    let busy = cable.path.busy_without(now, bytes);
    hold_deadline(frames, busy, cable.held_until, now)
}

/// The deadline of a hold of `frames` frames on a path that stays `busy`
/// that long with what went before them, held until `held_until` so far:
/// until fewer than [`HOLD_MARGIN`] of that is left, for at most
/// [`HOLD_MAX`] in all, and not once [`HOLD_FRAMES`] wait. Holding costs a
/// frame nothing while its path is busy anyway (as Linux's TCP autocorking
/// holds small writes while the device still has data queued).
fn hold_deadline(
    frames: usize,
    busy: Duration,
    held_until: Option<Instant>,
    now: Instant,
) -> Option<Instant> {
    if frames >= HOLD_FRAMES {
        return None;
    }
    let until = (now + busy.checked_sub(HOLD_MARGIN)?).min(held_until.unwrap_or(now + HOLD_MAX));
    (until > now).then_some(until)
}

/// Sends `slots` to `port` (cable `id`) with `seq`'s tags; marks the sent
/// frames done and notes what the cable now carries (and keeps the sparse
/// flows' frames, to send again: `rescue.rs`). Returns how many it
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
    if let Some(seq) = seq {
        let mut first = None;
        for &s in &slots[..sent] {
            if let Some(n) = Sequencer::number_of(ring, s) {
                first.get_or_insert(n);
                cables.rescue.sent(ring, s, n, seq, id);
            }
        }
        if let (Some(first), Some(cable)) = (first, cables.get_mut(id)) {
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
    now: Instant,
) -> usize {
    let mut sent_total = 0;
    for i in 0..ports.active().len() {
        let id = ports.active()[i];
        let Some(cable) = cables.get(id).filter(|c| !c.pinned().is_empty()) else {
            continue;
        };
        if seq.is_none() || !cable.path.dealable(now) {
            cables.give_back(id);
            continue;
        }
        let port = ports.nth_active_mut(i);
        if !port.writable {
            continue;
        }
        if cable.held_until.is_some() {
            if let Some(until) = hold_until(port, cable, ring, &[], now) {
                cables.hold(id, &[], until);
                continue;
            }
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
        if sent < n {
            cables.refused(id, &[]);
        }
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
/// neither a dark path nor one back from dark that the far end has not
/// heard us on since (see [`PathState::dealable`]).
///
/// [`PathState::dealable`]: crate::endpoint::node::bonding::path::PathState::dealable
pub(crate) fn can_take(port: &Port, cable: &Cable, now: Instant) -> bool {
    port.writable && port.data.is_some() && cable.path.dealable(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn frames_wait_while_their_path_is_busy_with_earlier_ones() {
        let now = Instant::now();
        // 5 ms of earlier frames on the path: held until 1 ms is left.
        assert_eq!(hold_deadline(1, 5 * MS, None, now), Some(now + 4 * MS));
        // A path about to go idle: they go now.
        assert_eq!(hold_deadline(1, HOLD_MARGIN, None, now), None);
        assert_eq!(hold_deadline(1, Duration::ZERO, None, now), None);
    }

    #[test]
    fn a_hold_is_short_and_small() {
        let now = Instant::now();
        // A long queue ahead: no longer than HOLD_MAX from the first frame.
        assert_eq!(hold_deadline(1, 50 * MS, None, now), Some(now + HOLD_MAX));
        let first = now - 2 * MS;
        let deadline = first + HOLD_MAX;
        assert_eq!(
            hold_deadline(3, 50 * MS, Some(deadline), now),
            Some(deadline)
        );
        // A deadline passed, or enough frames for a full write: they go.
        assert_eq!(hold_deadline(3, 50 * MS, Some(now), now), None);
        assert_eq!(hold_deadline(HOLD_FRAMES, 50 * MS, None, now), None);
        // The path drained sooner than the deadline said: sooner.
        assert_eq!(
            hold_deadline(2, 2 * MS, Some(deadline), now),
            Some(now + MS)
        );
    }
}
