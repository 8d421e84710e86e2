//! The one loop every policy deals with: a pick per frame, then a batch
//! sent to each cable that was dealt frames.

use super::Bond;
use crate::batch::{Insert, BATCH};
use crate::endpoint::node::bonding::cable::{Cable, Cables};
use crate::endpoint::node::bonding::sequencer::Sequencer;
use crate::endpoint::node::ports::{Port, PortTable, Sent};
use crate::lane::Lane;

/// Names the cable for a frame (an index into the port table's active
/// list), or none to stop dealing.
pub(crate) type Pick<'a> = dyn FnMut(&PortTable, &mut Cables, &[u8]) -> Option<usize> + 'a;

/// Deals the next batch of `lane` into the ports' outboxes, one frame per
/// pick, and sends each outbox. With a [`Sequencer`], each frame dealt is
/// numbered and goes with its sequence tag (a frame a port does not take
/// is numbered again when it is dealt again). `what_is_left` says what
/// becomes of frames a port did not take. Returns the frames dealt (0: no
/// port to pick) and sent.
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
    for i in 0..ports.active().len() {
        ports.nth_active_mut(i).outbox.clear();
    }
    let mut dealt = 0;
    for i in 0..ring.queued().len().min(BATCH) {
        let slot = ring.queued()[i];
        let Some(at) = pick(ports, bond.cables, ring.frame(slot)) else {
            break;
        };
        if let Some(seq) = seq.as_deref_mut() {
            seq.number(ring, slot);
        }
        ports.nth_active_mut(at).outbox.push(slot);
        dealt += 1;
    }
    let insert = seq.as_deref().map(|s| s as &dyn Insert);
    let mut sent_total = 0;
    for i in 0..ports.active().len() {
        let id = ports.active()[i];
        let port = ports.nth_active_mut(i);
        if port.outbox.is_empty() {
            continue;
        }
        let outbox = std::mem::take(&mut port.outbox);
        let (sent, gone) = match port.send(io, ring, &outbox, insert) {
            Sent::Took(n) => (n, false),
            Sent::Gone => (0, true),
        };
        what_is_left(port, outbox.len() - sent);
        for &slot in &outbox[..sent] {
            ring.mark_done(slot);
        }
        port.outbox = outbox;
        sent_total += sent;
        if gone {
            ports.mark_gone(id);
        }
    }
    (dealt, sent_total)
}

/// Deals with `pick` (numbering with `seq`, if given) until the queue is
/// empty or no port takes more: the frames a full port did not take stay
/// queued (counted as `skipped`) and go to the others. Returns the frames
/// finished.
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
