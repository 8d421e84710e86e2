//! The numbering of the frames a bonding node deals to far nodes of ours:
//! each frame dealt gets the next number in its ring tag ([`SeqNo`]), and
//! goes out with a sequence tag ([`crate::wire::seq_tag`]) that carries it,
//! put in by the send path from a buffer of its own ([`Insert`]).

use crate::batch::{Insert, INSERT_MAX};
use crate::ring::{FrameRing, Slot, SlotTag};
use crate::wire::seq_tag::{self, TagFields, MAX_UNTAGGED, SEQ_TAG_LEN, TAG_AT};

const _: () = assert!(SEQ_TAG_LEN <= INSERT_MAX);

/// A frame's number in its node's order, as its ring tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeqNo(pub(crate) u32);

impl SlotTag for SeqNo {
    fn from_word(word: u32) -> Self {
        SeqNo(word)
    }
    fn word(self) -> u32 {
        self.0
    }
}

/// The numbering of the frames a node deals.
pub(crate) struct Sequencer {
    epoch: u8,
    next: u32,
    /// The stamp the frames of this deal go with.
    stamp: u16,
}

impl Sequencer {
    pub(crate) fn new() -> Sequencer {
        // Tells the far node that this is a new numbering (this node, or
        // one that restarted): anything that differs from run to run does.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let epoch = (t.subsec_nanos() ^ std::process::id()) as u8;
        Sequencer {
            epoch,
            next: 0,
            stamp: 0,
        }
    }

    /// A deal starts at `stamp` (the clock of the path reports).
    pub(crate) fn start_deal(&mut self, stamp: u16) {
        self.stamp = stamp;
    }

    /// The number the next frame dealt gets.
    pub(crate) fn next(&self) -> u32 {
        self.next
    }

    /// The stamp of the deal under way.
    pub(crate) fn stamp(&self) -> u16 {
        self.stamp
    }

    /// The number of the dealt frame in `slot`, if it has one.
    pub(crate) fn number_of(ring: &FrameRing, slot: Slot) -> Option<u32> {
        (ring.frame(slot).len() <= MAX_UNTAGGED).then(|| ring.tag::<SeqNo>(slot).0)
    }

    /// The frame in `slot` is being dealt: it gets the next number, in its
    /// ring tag (a frame too long to carry a tag gets none).
    pub(crate) fn number(&mut self, ring: &mut FrameRing, slot: Slot) {
        if ring.frame(slot).len() <= MAX_UNTAGGED {
            ring.set_tag(slot, SeqNo(self.next));
            self.next = self.next.wrapping_add(1);
        }
    }
}

/// The sequence tag of a numbered frame, after its addresses.
impl Insert for Sequencer {
    fn write(
        &self,
        ring: &FrameRing,
        slot: Slot,
        buf: &mut [u8; INSERT_MAX],
    ) -> Option<(usize, usize)> {
        if ring.frame(slot).len() > MAX_UNTAGGED {
            return None;
        }
        let SeqNo(seq) = ring.tag(slot);
        let fields = TagFields {
            epoch: self.epoch,
            seq,
            stamp: self.stamp,
        };
        seq_tag::emit(buf.first_chunk_mut()?, &fields);
        Some((TAG_AT, SEQ_TAG_LEN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::seq_tag::SeqTagged;

    /// What goes out for the frame in `slot`: its tag's fields, if tagged.
    fn sent(seq: &Sequencer, ring: &FrameRing, slot: Slot) -> Option<(u8, u32, u16)> {
        let mut buf = [0u8; INSERT_MAX];
        let (at, len) = seq.write(ring, slot, &mut buf)?;
        let f = ring.frame(slot);
        let framed = [&f[..at], &buf[..len], &f[at..]].concat();
        let t = SeqTagged::new_checked(&framed[..]).unwrap();
        Some((t.epoch(), t.seq(), t.stamp()))
    }

    #[test]
    fn frames_are_numbered_as_they_are_dealt() {
        let mut seq = Sequencer::new();
        let mut ring = FrameRing::new(8);
        assert!(ring.push_copy(&[0; 60]));
        assert!(ring.push_copy(&[1; MAX_UNTAGGED + 1]));
        assert!(ring.push_copy(&[2; 60]));
        let q = ring.queued().to_vec();
        seq.start_deal(7);
        for &s in &q {
            seq.number(&mut ring, s);
        }
        assert_eq!(
            (ring.tag::<SeqNo>(q[0]), ring.tag::<SeqNo>(q[2])),
            (SeqNo(0), SeqNo(1))
        );
        assert_eq!(sent(&seq, &ring, q[2]), Some((seq.epoch, 1, 7)));
        // Too long for a tag: it goes as it is.
        assert_eq!(sent(&seq, &ring, q[1]), None);
        // Dealt again (given back by a cable that went): a new number.
        seq.number(&mut ring, q[0]);
        assert_eq!(ring.tag::<SeqNo>(q[0]), SeqNo(2));
        assert_eq!(sent(&seq, &ring, q[0]), Some((seq.epoch, 2, 7)));
    }
}
