//! `policy=path`, the default. Once every cable's far end answers (bonding
//! nodes of ours), each frame goes numbered to the cable where it would
//! arrive first ([`PathState::arrival`]) — a dense flow's frame, first
//! among the cables within their queue cap ([`PathState::queue_cap`]) —
//! and the far node gives its host each flow's frames in that order
//! ([`Reorder`]), so one flow may take every cable. Cables whose paths are
//! alike take turns instead (still numbered, and within the same queue
//! caps near a sparse flow: [`SparseMemory`]); while some far end has not
//! answered (a C peer), the node deals as `adaptive`, numbering only when
//! every far end is ours.
//!
//! [`PathState::arrival`]: crate::endpoint::node::bonding::path::PathState::arrival
//! [`PathState::queue_cap`]: crate::endpoint::node::bonding::path::PathState::queue_cap
//! [`Reorder`]: crate::endpoint::node::bonding::reorder::Reorder

use std::time::{Duration, Instant};

use super::adaptive::Adaptive;
use super::deal::deal_all;
use super::{Bond, Policy};
use crate::endpoint::node::bonding::path::MAX_BACKLOG;
use crate::endpoint::node::bonding::sequencer::Sequencer;
use crate::lane::Lane;

/// How much later than on the best cable a frame may arrive on the cable
/// it is sent to when the best cannot take it now: further, it waits for
/// the best (the far node would hold everything behind it that long).
const ARRIVAL_SLACK: Duration = Duration::from_millis(10);
/// How long after a sparse flow's frame the paths' queues are kept short
/// for the next one: while none comes, no one waits in them, and longer
/// queues carry a bulk transfer through the pauses of a busy machine.
const SPARSE_MEMORY: Duration = Duration::from_secs(1);

pub(super) struct ByArrival {
    /// The numbering of the frames dealt.
    seq: Sequencer,
    /// How it deals while the paths are unknown or alike.
    in_turn: Adaptive,
    /// When the last frame of a sparse flow was dealt.
    sparse: SparseMemory,
}

/// When the last frame of a sparse flow was dealt: for [`SPARSE_MEMORY`]
/// after it, a dense flow's frames keep to the paths' queue caps.
#[derive(Default)]
pub(super) struct SparseMemory(Option<Instant>);

impl SparseMemory {
    /// A frame is dealt at `now` (of a sparse flow or not): whether it is
    /// held to the paths' queue caps.
    pub(super) fn capped(&mut self, sparse: bool, now: Instant) -> bool {
        if sparse {
            self.0 = Some(now);
        }
        !sparse
            && self
                .0
                .is_some_and(|t| now.saturating_duration_since(t) < SPARSE_MEMORY)
    }
}

impl ByArrival {
    pub(super) fn new(weighted: bool) -> ByArrival {
        ByArrival {
            seq: Sequencer::new(),
            in_turn: Adaptive::new(weighted),
            sparse: SparseMemory::default(),
        }
    }

    /// A frame to the cable where it would arrive first, or, when that one
    /// is full, to one where it would arrive at most [`ARRIVAL_SLACK`]
    /// later; otherwise it waits for room, as it does while more than
    /// [`MAX_BACKLOG`] stands queued on the path of the cable it would take
    /// and in its virtual queue. But within [`SPARSE_MEMORY`] of a sparse
    /// flow's frame (a ping beside a transfer), a dense flow's frame goes
    /// to the cable where it would arrive first among those with no more
    /// than their cap queued (5 ms on the nearest paths, 20 ms on farther
    /// ones: `PathState::queue_cap`), else it waits: the nearest paths'
    /// queues, where the sparse flows go, stay short, and what the paths
    /// do not carry yet waits in the node, where sparse flows overtake it,
    /// and beyond that at the host (a TCP sender slows down). A TCP flow's
    /// segments that took a slower path add little to its delay (the far
    /// node holds them all as long as the slowest path takes: the floor).
    /// The caps hold only because the queue is read as it stands now
    /// (`PathState::queued`): read a round trip late, they left the paths
    /// empty for that long. Returns the frames finished.
    fn by_arrival(&mut self, bond: &mut Bond<'_>, lane: &mut Lane) -> usize {
        let now = bond.now;
        let memory = &mut self.sparse;
        // The paths' least round trip does not change within a deal.
        let nearest = bond.cables.nearest_rtt(bond.ports, now);
        deal_all(
            bond,
            lane,
            &mut |ports, cables, frame, sparse| {
                let capped = memory.capped(sparse, now);
                // The first arrival on any lit cable, and on one with room.
                let mut first: Option<Duration> = None;
                let mut open: Option<(usize, Duration)> = None;
                for (i, &id) in ports.active().iter().enumerate() {
                    let (Some(p), Some(c)) = (ports.get(id), cables.get(id)) else {
                        continue;
                    };
                    if p.data.is_none() || !c.path.dealable(now) {
                        continue;
                    }
                    let arrival = match sparse {
                        true => c.path.sparse_arrival(now, frame.len()),
                        false => c.path.arrival(now, frame.len()),
                    };
                    first = Some(first.map_or(arrival, |f| f.min(arrival)));
                    let short = !capped || c.path.queued(now) <= c.path.queue_cap(nearest);
                    if p.writable && short && open.is_none_or(|(_, a)| arrival < a) {
                        open = Some((i, arrival));
                    }
                }
                let (at, arrival) = open?;
                let c = cables.get_mut(ports.active()[at])?;
                if !capped && (arrival > first? + ARRIVAL_SLACK || c.path.queued(now) > MAX_BACKLOG)
                {
                    return None;
                }
                c.path.take(now, frame.len());
                Some(at)
            },
            Some(&mut self.seq),
        )
    }
}

impl Policy for ByArrival {
    fn deal(&mut self, bond: &mut Bond<'_>, lane: &mut Lane) -> usize {
        self.seq.start_deal(bond.ms);
        let (ports, cables, now) = (&*bond.ports, &*bond.cables, bond.now);
        if cables.paths_known(ports, now) && !cables.paths_alike(ports, now) {
            return self.by_arrival(bond, lane);
        }
        // Numbered only while every far end is ours (a far node of ours
        // puts them in order).
        let numbered = cables
            .all_answered(ports)
            .then_some((&mut self.seq, &mut self.sparse));
        self.in_turn.deal_numbered(bond, lane, numbered)
    }

    fn learns_paths(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_frames_keep_to_the_caps_for_a_second_after_a_sparse_one() {
        let mut memory = SparseMemory::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // No sparse flow yet: nothing is capped, and a sparse frame never.
        assert!(!memory.capped(false, t0));
        assert!(!memory.capped(true, t0));
        assert!(memory.capped(false, t0 + ms(999)));
        assert!(!memory.capped(false, t0 + SPARSE_MEMORY));
        // Each sparse frame starts the second again.
        assert!(!memory.capped(true, t0 + ms(1500)));
        assert!(memory.capped(false, t0 + ms(2400)));
    }
}
