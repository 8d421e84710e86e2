//! The numbering of the frames a bonding node deals to far nodes of ours:
//! each frame dealt gets the next number in its ring tag ([`SeqNo`]), and
//! goes out with a sequence tag ([`crate::wire::seq_tag`]) that carries it
//! and how far back its flow's previous frame is, put in by the send path
//! from a buffer of its own ([`Insert`]).

use crate::batch::{Insert, INSERT_MAX};
use crate::endpoint::node::flow::FLOW_BUCKETS;
use crate::ring::{FrameRing, Slot, SlotTag};
use crate::wire::seq_tag::{
    self, TagFields, BACK_UNKNOWN, FLOW_SPAN, MAX_UNTAGGED, SEQ_TAG_LEN, TAG_AT,
};

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

/// A flow none of whose frames are among this many last numbered, or
/// none in this many ms, is sparse: a flow that fills a bond takes every
/// few numbers (a few flows served in turn) and a frame every ms or so,
/// one that sends now and then far fewer (a ping every 50 ms beside a
/// transfer over a slow bond is 45 numbers apart, but 50 ms).
const SPARSE_GAP: u32 = 64;
const SPARSE_MS: u16 = 10;

/// The numbering of the frames a node deals.
pub(crate) struct Sequencer {
    epoch: u8,
    next: u32,
    /// The stamp the frames of this deal go with.
    stamp: u16,
    /// By flow bucket: the number of the flow's last frame, and its stamp.
    last_of_flow: Box<[Option<(u32, u16)>]>,
    /// By number (mod [`FLOW_SPAN`]): the number and its `back`, from when
    /// it was given until the frame is sent (a number is sent long before
    /// [`FLOW_SPAN`] more are given: the far node's window bounds the
    /// numbering, see `in_flight.rs`).
    back_of: Box<[(u32, u16)]>,
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
            last_of_flow: vec![None; FLOW_BUCKETS].into_boxed_slice(),
            back_of: vec![(u32::MAX, BACK_UNKNOWN); usize::from(FLOW_SPAN)].into_boxed_slice(),
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

    /// The frame in `slot`, of flow bucket `flow` ([`flow_bucket`]), is
    /// being dealt: it gets the next number, in its ring tag (a frame too
    /// long to carry a tag gets none), and becomes its flow's last.
    ///
    /// [`flow_bucket`]: crate::endpoint::node::flow::flow_bucket
    pub(crate) fn number(&mut self, ring: &mut FrameRing, slot: Slot, flow: usize) {
        if ring.frame(slot).len() > MAX_UNTAGGED {
            return;
        }
        let n = self.next;
        let last = &mut self.last_of_flow[flow];
        let back = match last.map(|(p, _)| n.wrapping_sub(p)) {
            Some(d) if d < u32::from(FLOW_SPAN) => d as u16,
            _ => 0,
        };
        *last = Some((n, self.stamp));
        self.back_of[Self::index(n)] = (n, back);
        ring.set_tag(slot, SeqNo(n));
        self.next = n.wrapping_add(1);
    }

    /// Whether flow bucket `flow` is sparse: none of its frames among the
    /// last [`SPARSE_GAP`] numbered or in the last [`SPARSE_MS`] (a ping, a
    /// keystroke, a DNS query beside a bulk transfer; anything while the
    /// bond is quiet).
    pub(crate) fn is_sparse(&self, flow: usize) -> bool {
        self.last_of_flow[flow].is_none_or(|(p, ms)| {
            self.next.wrapping_sub(p) > SPARSE_GAP || self.stamp.wrapping_sub(ms) > SPARSE_MS
        })
    }

    fn index(n: u32) -> usize {
        n as usize % usize::from(FLOW_SPAN)
    }

    /// Whether number `n` (given, not sent yet) is a sparse flow's: its
    /// flow's previous frame is none of the [`SPARSE_GAP`] numbers before.
    pub(crate) fn sparse_number(&self, n: u32) -> bool {
        let back = self.back(n);
        back != BACK_UNKNOWN && (back == 0 || u32::from(back) > SPARSE_GAP)
    }

    /// How far back the previous frame of number `n`'s flow is, as the tag
    /// says it.
    fn back(&self, n: u32) -> u16 {
        match self.back_of[Self::index(n)] {
            (m, back) if m == n => back,
            _ => BACK_UNKNOWN,
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
            back: self.back(seq),
        };
        seq_tag::emit(buf.first_chunk_mut()?, &fields);
        Some((TAG_AT, SEQ_TAG_LEN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::node::flow::flow_bucket;
    use crate::wire::seq_tag::SeqTagged;

    /// What goes out for the frame in `slot`: its tag's fields, if tagged.
    fn sent(seq: &Sequencer, ring: &FrameRing, slot: Slot) -> Option<(u8, u32, u16)> {
        let t = sent_tag(seq, ring, slot)?;
        Some((t.epoch, t.seq, t.stamp))
    }

    fn sent_tag(seq: &Sequencer, ring: &FrameRing, slot: Slot) -> Option<TagFields> {
        let mut buf = [0u8; INSERT_MAX];
        let (at, len) = seq.write(ring, slot, &mut buf)?;
        let f = ring.frame(slot);
        let framed = [&f[..at], &buf[..len], &f[at..]].concat();
        let t = SeqTagged::new_checked(&framed[..]).unwrap();
        Some(TagFields {
            epoch: t.epoch(),
            seq: t.seq(),
            stamp: t.stamp(),
            back: t.back(),
        })
    }

    /// A 60-byte frame from MAC address `src` (a flow of its own).
    fn from(src: u8) -> [u8; 60] {
        let mut f = [0u8; 60];
        f[11] = src;
        f[12..14].copy_from_slice(&[0x88, 0x88]);
        f
    }

    /// Deals a frame of flow `src` through `ring`: the `back` it goes with.
    fn deal_one(seq: &mut Sequencer, ring: &mut FrameRing, src: u8) -> u16 {
        assert!(ring.push_copy(&from(src)));
        let slot = *ring.queued().last().unwrap();
        seq.number(ring, slot, flow_bucket(&from(src)));
        let back = sent_tag(seq, ring, slot).unwrap().back;
        ring.consume_front(1);
        back
    }

    #[test]
    fn each_frame_says_where_its_flow_was_before() {
        let mut seq = Sequencer::new();
        let mut ring = FrameRing::new(4);
        let mut deal = |seq: &mut Sequencer, src: u8| deal_one(seq, &mut ring, src);
        // Flows 1 and 2 interleaved, flow 1 twice in a row: 0 for each
        // flow's first frame, then the distance.
        let backs: Vec<u16> = [1, 2, 1, 1, 2].iter().map(|&f| deal(&mut seq, f)).collect();
        assert_eq!(backs, [0, 0, 2, 1, 3]);
        // A flow quiet for a whole span starts again at 0.
        for _ in 0..FLOW_SPAN {
            deal(&mut seq, 3);
        }
        assert_eq!(deal(&mut seq, 1), 0);
        assert_eq!(deal(&mut seq, 3), 2);
    }

    #[test]
    fn a_flow_is_sparse_until_it_takes_many_of_the_last_numbers() {
        let mut seq = Sequencer::new();
        let mut ring = FrameRing::new(4);
        let mut deal = |seq: &mut Sequencer, src: u8| {
            deal_one(seq, &mut ring, src);
        };
        assert!(seq.is_sparse(flow_bucket(&from(1))));
        deal(&mut seq, 1);
        assert!(!seq.is_sparse(flow_bucket(&from(1))));
        // Flow 2 takes the next SPARSE_GAP numbers: flow 1 is sparse again.
        for _ in 0..SPARSE_GAP {
            deal(&mut seq, 2);
        }
        assert!(seq.is_sparse(flow_bucket(&from(1))));
        assert!(!seq.is_sparse(flow_bucket(&from(2))));
        // Or fewer, but more than SPARSE_MS ago.
        deal(&mut seq, 1);
        seq.start_deal(SPARSE_MS);
        assert!(!seq.is_sparse(flow_bucket(&from(1))));
        seq.start_deal(SPARSE_MS + 1);
        assert!(seq.is_sparse(flow_bucket(&from(1))));
    }

    #[test]
    fn a_number_no_longer_known_is_sent_as_unknown() {
        let mut seq = Sequencer::new();
        let mut ring = FrameRing::new(4);
        assert!(ring.push_copy(&from(1)));
        let slot = ring.queued()[0];
        seq.number(&mut ring, slot, flow_bucket(&from(1)));
        // The table has moved a whole span on since it was numbered.
        seq.back_of[0] = (u32::from(FLOW_SPAN), 0);
        assert_eq!(sent_tag(&seq, &ring, slot).unwrap().back, BACK_UNKNOWN);
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
            seq.number(&mut ring, s, 0);
        }
        assert_eq!(
            (ring.tag::<SeqNo>(q[0]), ring.tag::<SeqNo>(q[2])),
            (SeqNo(0), SeqNo(1))
        );
        assert_eq!(sent(&seq, &ring, q[2]), Some((seq.epoch, 1, 7)));
        // Too long for a tag: it goes as it is.
        assert_eq!(sent(&seq, &ring, q[1]), None);
        // Dealt again (given back by a cable that went): a new number.
        seq.number(&mut ring, q[0], 0);
        assert_eq!(ring.tag::<SeqNo>(q[0]), SeqNo(2));
        assert_eq!(sent(&seq, &ring, q[0]), Some((seq.epoch, 2, 7)));
    }
}
