//! `policy=adaptive`: round robin over the cables that can take a frame
//! now. A cable that fills up mid-batch is skipped and its frames go to the
//! others; when no cable can take any, the frames stay queued and the host
//! is not read until a cable drains.

use super::deal::{can_take, deal_all};
use super::path::SparseMemory;
use super::turns::Turns;
use super::{Bond, Policy};
use crate::endpoint::node::bonding::cable::Cable;
use crate::endpoint::node::bonding::sequencer::Sequencer;
use crate::endpoint::node::ports::Port;
use crate::lane::Lane;

pub(super) struct Adaptive {
    turns: Turns,
}

impl Adaptive {
    pub(super) fn new(weighted: bool) -> Adaptive {
        Adaptive {
            turns: Turns::new(weighted),
        }
    }

    /// Deals as `adaptive` does, numbering the frames with the sequencer
    /// if given (`policy=path` on paths alike, with its memory of sparse
    /// flows).
    pub(super) fn deal_numbered(
        &mut self,
        bond: &mut Bond<'_>,
        lane: &mut Lane,
        numbered: Option<(&mut Sequencer, &mut SparseMemory)>,
    ) -> usize {
        let now = bond.now;
        let turns = &mut self.turns;
        let nearest = bond.cables.nearest_rtt(bond.ports, now);
        // Numbered, each cable's virtual queue follows what it is dealt, as
        // when frames go by arrival: its rate is learnt from it, a bulk
        // flow's frames wait to go together while the path is busy, and
        // near a sparse flow they keep to the queue caps, so that its
        // frames find short queues here too.
        let (seq, mut memory) = numbered.unzip();
        let learn = seq.is_some();
        deal_all(
            bond,
            lane,
            &mut |ports, cables, frame, sparse| {
                let capped = memory.as_mut().is_some_and(|m| m.capped(sparse, now));
                let open = |p: &Port, c: &Cable| {
                    can_take(p, c, now)
                        && (!capped || c.path.queued(now) <= c.path.queue_cap(nearest))
                };
                // A sparse flow's frame skips a path the far end has stopped
                // hearing us on, while another is open.
                let at = match sparse && learn {
                    true => turns
                        .next(ports, cables, |p, c| {
                            open(p, c) && c.path.stalled().is_none()
                        })
                        .or_else(|| turns.next(ports, cables, open)),
                    false => turns.next(ports, cables, open),
                }?;
                if let Some(c) = cables.get_mut(ports.active()[at]).filter(|_| learn) {
                    c.path.take(now, frame.len());
                }
                Some(at)
            },
            seq,
        )
    }
}

impl Policy for Adaptive {
    fn deal(&mut self, bond: &mut Bond<'_>, lane: &mut Lane) -> usize {
        self.deal_numbered(bond, lane, None)
    }
}
