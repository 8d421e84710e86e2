//! What a bonding node keeps of each cable beside its port: what its path
//! delivers ([`PathState`]), what it brought of the far node's numbering
//! ([`CableSeen`]), what it carried that the far node has not confirmed
//! ([`InFlight`]), the numbered frames its socket did not take yet (pinned
//! to it), its share and credit when cables take turns. A table by port id
//! ([`Cables`]) that the bonding kind keeps as ports join and leave, with
//! the last sparse frames they carried ([`Rescue`]).

use std::time::{Duration, Instant};

use super::in_flight::InFlight;
use super::path::PathState;
use super::reorder::CableSeen;
use super::rescue::Rescue;
use super::sequencer::SeqNo;
use crate::batch::BATCH;
use crate::endpoint::node::ports::{PortId, PortTable};
use crate::ring::{FrameRing, Slot};

pub(crate) struct Cable {
    pub(crate) path: PathState,
    pub(crate) seen: CableSeen,
    /// Share of a weighted bonding node (`weights=`), and the credit of its
    /// smooth weighted round robin.
    pub(crate) weight: u32,
    pub(crate) credit: i64,
    pub(crate) in_flight: InFlight,
    /// Frames numbered for this cable that its socket did not take, or that
    /// wait to go with the next ones ([`Cable::held_until`]), oldest first:
    /// they keep their numbers and go before anything new on it (another
    /// cable's later numbers must not become the far node's holes).
    pinned: Vec<Slot>,
    /// Until when the pinned frames wait by choice (none: they were
    /// refused): a bulk flow's frames go to a cable a few at a time while
    /// its path is busy anyway (see `policy::deal::hold_until`).
    pub(crate) held_until: Option<Instant>,
    /// Frames in and out on the cable when its last path report went, and
    /// whether one came from the far node since.
    pub(crate) moved_at_report: u64,
    pub(crate) heard_since_report: bool,
}

impl Cable {
    pub(crate) fn pinned(&self) -> &[Slot] {
        &self.pinned
    }

    /// The oldest number the cable may still owe the far node: sent and
    /// not confirmed, or pinned to it.
    fn owes(&self, ring: &FrameRing) -> Option<u32> {
        self.in_flight
            .oldest()
            .or_else(|| self.pinned.first().map(|&s| ring.tag::<SeqNo>(s).0))
    }
}

fn set_bit(bits: &mut [u64], slot: Slot, on: bool) {
    let (word, bit) = (usize::from(slot) / 64, 1u64 << (slot % 64));
    if on {
        bits[word] |= bit;
    } else {
        bits[word] &= !bit;
    }
}

/// Slots of the host lane's ring (a `u16`), one bit each.
const SLOT_WORDS: usize = (Slot::MAX as usize + 1) / 64;

/// The cables by port id: one for every port that joined and is not gone.
pub(crate) struct Cables {
    by_port: Vec<Option<Cable>>,
    /// The host lane's slots pinned to some cable.
    pinned: Box<[u64]>,
    /// The node closes: nothing is held.
    closing: bool,
    /// The last sparse frames the cables carried, to send again.
    pub(crate) rescue: Rescue,
}

impl Default for Cables {
    fn default() -> Self {
        Cables {
            by_port: Vec::new(),
            pinned: vec![0; SLOT_WORDS].into_boxed_slice(),
            closing: false,
            rescue: Rescue::default(),
        }
    }
}

impl Cables {
    /// Port `id` joined, with a share of `weight`: a cable nothing is
    /// known of yet.
    pub(crate) fn join(&mut self, id: PortId, weight: u32) {
        if self.by_port.len() <= id {
            self.by_port.resize_with(id + 1, || None);
        }
        self.by_port[id] = Some(Cable {
            path: PathState::default(),
            seen: CableSeen::default(),
            weight,
            credit: 0,
            in_flight: InFlight::default(),
            pinned: Vec::with_capacity(2 * BATCH),
            held_until: None,
            moved_at_report: 0,
            heard_since_report: false,
        });
    }

    /// Port `id` is gone: its pinned frames are to be dealt anew.
    pub(crate) fn leave(&mut self, id: PortId) {
        self.give_back(id);
        if let Some(cable) = self.by_port.get_mut(id) {
            *cable = None;
        }
    }

    /// Whether the host lane's frame in `slot` is pinned to a cable.
    pub(crate) fn is_pinned(&self, slot: Slot) -> bool {
        self.pinned[usize::from(slot) / 64] & (1 << (slot % 64)) != 0
    }

    /// Cable `id` keeps `slots` (numbered for it, newer than what it holds
    /// pinned) to send later.
    fn pin(&mut self, id: PortId, slots: &[Slot]) {
        let Cables {
            by_port, pinned, ..
        } = self;
        let Some(cable) = by_port.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        let room = cable.pinned.capacity() - cable.pinned.len();
        let slots = &slots[..slots.len().min(room)];
        cable.pinned.extend_from_slice(slots);
        for &s in slots {
            set_bit(pinned, s, true);
        }
    }

    /// Cable `id` took the first `n` of its pinned frames.
    pub(crate) fn took_pinned(&mut self, id: PortId, n: usize) {
        let Cables {
            by_port, pinned, ..
        } = self;
        let Some(cable) = by_port.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        let n = n.min(cable.pinned.len());
        for &s in &cable.pinned[..n] {
            set_bit(pinned, s, false);
        }
        cable.pinned.drain(..n);
        if cable.pinned.is_empty() {
            cable.held_until = None;
        }
    }

    /// Cable `id`'s socket did not take `slots`, after what it holds
    /// pinned: they wait for room, and so does everything it held.
    pub(crate) fn refused(&mut self, id: PortId, slots: &[Slot]) {
        self.pin(id, slots);
        if let Some(cable) = self.get_mut(id) {
            cable.held_until = None;
        }
    }

    /// Cable `id` holds `slots` (numbered for it, newer than what it holds
    /// pinned) until `until`, to send them with the next ones.
    pub(crate) fn hold(&mut self, id: PortId, slots: &[Slot], until: Instant) {
        self.pin(id, slots);
        if let Some(cable) = self.get_mut(id) {
            cable.held_until = Some(until);
        }
    }

    /// The node closes: every cable's held frames go as soon as it has
    /// room, and no more are held.
    pub(crate) fn stop_holding(&mut self) {
        self.closing = true;
        for cable in self.by_port.iter_mut().flatten() {
            cable.held_until = None;
        }
    }

    /// Whether frames may wait on a cable to go with the next ones.
    pub(crate) fn may_hold(&self) -> bool {
        !self.closing
    }

    /// Cable `id`'s pinned frames are dealt anew (it went, or went dark,
    /// or the frames go unnumbered now): the numbers they had are holes
    /// the far node gives up on.
    pub(crate) fn give_back(&mut self, id: PortId) {
        let n = self.get(id).map_or(0, |c| c.pinned.len());
        self.took_pinned(id, n);
    }

    /// How many more frames may be numbered when the next number is
    /// `next`: the oldest number a cable that answers may still owe the
    /// far node stays less than `window` behind.
    pub(crate) fn room_ahead(
        &self,
        ports: &PortTable,
        ring: &FrameRing,
        next: u32,
        window: u32,
        now: Instant,
    ) -> u32 {
        // Not a cable back from dark that the far end has not heard since:
        // what it owed from before, the far node gave up on, and the echo
        // that makes it dealt to again says so.
        let behind = self
            .answering(ports, now)
            .filter(|c| c.path.dealable(now))
            .filter_map(|c| c.owes(ring))
            .map(|n| next.wrapping_sub(n))
            .filter(|&d| d < 1 << 31)
            .max()
            .unwrap_or(0);
        window.saturating_sub(behind)
    }

    pub(crate) fn get(&self, id: PortId) -> Option<&Cable> {
        self.by_port.get(id).and_then(Option::as_ref)
    }

    pub(crate) fn get_mut(&mut self, id: PortId) -> Option<&mut Cable> {
        self.by_port.get_mut(id).and_then(Option::as_mut)
    }

    /// The cables of the connected ports, in the order of the port table.
    pub(crate) fn connected<'a>(&'a self, ports: &'a PortTable) -> impl Iterator<Item = &'a Cable> {
        self.connected_ids(ports).map(|(_, c)| c)
    }

    /// The same, with their port ids.
    pub(crate) fn connected_ids<'a>(
        &'a self,
        ports: &'a PortTable,
    ) -> impl Iterator<Item = (PortId, &'a Cable)> {
        ports
            .active()
            .iter()
            .filter_map(|&id| self.get(id).map(|c| (id, c)))
    }

    /// The cables whose far end answers (a node of ours) and that are not
    /// dark: those the reorder buffer waits for.
    pub(crate) fn answering<'a>(
        &'a self,
        ports: &'a PortTable,
        now: Instant,
    ) -> impl Iterator<Item = &'a Cable> {
        self.connected(ports)
            .filter(move |c| c.path.answered() && !c.path.silent(now))
    }

    /// Every cable's far end has answered: it is a bonding node of ours.
    pub(crate) fn all_answered(&self, ports: &PortTable) -> bool {
        self.connected(ports).all(|c| c.path.answered())
    }

    /// Every cable's far end has answered, and some cable may be dealt to
    /// ([`PathState::dealable`]).
    pub(crate) fn paths_known(&self, ports: &PortTable, now: Instant) -> bool {
        self.all_answered(ports) && self.connected(ports).any(|c| c.path.dealable(now))
    }

    /// The least round trip of the paths of the cables that may be dealt to.
    pub(crate) fn nearest_rtt(&self, ports: &PortTable, now: Instant) -> Duration {
        self.connected(ports)
            .filter(|c| c.path.dealable(now))
            .map(|c| c.path.base_rtt())
            .min()
            .unwrap_or_default()
    }

    /// The cables that may be dealt to have alike paths
    /// ([`PathState::alike`]): taking turns serves them best.
    pub(crate) fn paths_alike(&self, ports: &PortTable, now: Instant) -> bool {
        let mut lit = self.connected(ports).filter(|c| c.path.dealable(now));
        let Some(first) = lit.next() else {
            return false;
        };
        lit.all(|c| c.path.alike(&first.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closing_node_holds_nothing() {
        let mut cables = Cables::default();
        cables.join(2, 1);
        let later = Instant::now() + Duration::from_millis(8);
        cables.hold(2, &[40, 41], later);
        assert_eq!(cables.get(2).unwrap().held_until, Some(later));
        assert!(cables.may_hold());
        // Closing: what it held goes at once (as refused frames do), and
        // nothing more waits.
        cables.stop_holding();
        assert_eq!(cables.get(2).unwrap().held_until, None);
        assert_eq!(cables.get(2).unwrap().pinned(), &[40, 41]);
        assert!(!cables.may_hold());
    }

    #[test]
    fn pinned_frames_are_marked_until_taken_or_given_back() {
        let mut cables = Cables::default();
        cables.join(3, 1);
        cables.join(5, 1);
        cables.pin(3, &[10, 11, 12]);
        cables.pin(5, &[700]);
        assert!([10, 11, 12, 700].iter().all(|&s| cables.is_pinned(s)));
        assert!(!cables.is_pinned(13));
        // Cable 3 took the first two: the third waits, first now.
        cables.took_pinned(3, 2);
        assert_eq!(cables.get(3).unwrap().pinned(), &[12]);
        assert!(!cables.is_pinned(10) && !cables.is_pinned(11) && cables.is_pinned(12));
        // More refused frames queue behind it, no more than two batches.
        let many: Vec<Slot> = (100..100 + 3 * BATCH as Slot).collect();
        cables.pin(3, &many);
        assert_eq!(cables.get(3).unwrap().pinned().len(), 2 * BATCH);
        // A cable that goes gives its frames back; the other keeps its own.
        cables.leave(3);
        assert!(!cables.is_pinned(12) && !cables.is_pinned(100));
        assert!(cables.is_pinned(700));
        cables.give_back(5);
        assert!(!cables.is_pinned(700));
    }
}
