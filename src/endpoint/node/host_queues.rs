//! Host-side flow queues: frames from the host that the kind could not
//! take yet (a bond whose cables are full) are handed to it flow by flow,
//! sparse flows first, so a ping or an acknowledgement does not wait
//! behind a bulk flow's backlog. The schedule is FQ-CoDel's (RFC 8290,
//! section 4): deficit round robin over flow queues (frames of one flow by
//! [`flow_bucket`]), a flow that was not backlogged joining a
//! list of new flows that is served before the old ones, for one quantum.
//! CoDel's drops are left out: the store is the lane the host's frames
//! come in (a ring made at start-up, [`HOST_STORE_SLOTS`]) and when it is
//! full the host is not read, so nothing is lost and a bulk flow's own
//! queue stays in the host, where its congestion control sees it.
//!
//! The kind takes frames from the lane in the queue's order and leaves the
//! rest in the same order, so the schedule *is* the queue's order: when
//! frames join a backlog, the queue is put in the order DRR serves it.
//! A flow's frames keep their order. Without a backlog (the kind took
//! everything last time) nothing is done: the plain path pays one test.
//!
//! [`HOST_STORE_SLOTS`]: crate::lane::HOST_STORE_SLOTS

use super::flow::{flow_bucket, FLOW_BUCKETS};
use crate::ring::{FrameRing, Slot};

/// Bytes a flow is served per round: a full Ethernet frame, as in RFC 8290.
const QUANTUM: i32 = 1514;
/// No frame, no bucket: slots and buckets are below it.
const NONE: u16 = u16::MAX;

/// A flow's queue while a schedule is made: its frames (linked through
/// `HostQueues::next`), its deficit, its place in a list of flows. Valid
/// only when `made` is the current schedule's number.
#[derive(Clone, Copy)]
struct Bucket {
    made: u32,
    head: Slot,
    tail: Slot,
    deficit: i32,
    next: u16,
}

impl Bucket {
    const UNUSED: Bucket = Bucket {
        made: 0,
        head: NONE,
        tail: NONE,
        deficit: 0,
        next: NONE,
    };
}

/// A list of buckets, linked through their `next`.
#[derive(Clone, Copy)]
struct List {
    head: u16,
    tail: u16,
}

impl List {
    const EMPTY: List = List {
        head: NONE,
        tail: NONE,
    };

    fn push(&mut self, buckets: &mut [Bucket], b: u16) {
        buckets[usize::from(b)].next = NONE;
        match self.tail {
            NONE => self.head = b,
            t => buckets[usize::from(t)].next = b,
        }
        self.tail = b;
    }

    fn pop(&mut self, buckets: &[Bucket]) {
        self.head = buckets[usize::from(self.head)].next;
        if self.head == NONE {
            self.tail = NONE;
        }
    }
}

pub(crate) struct HostQueues {
    /// Per slot: the bucket of the frame in it.
    bucket_of: Box<[u16]>,
    /// Per slot: the next frame of its flow, while a schedule is made.
    next: Box<[Slot]>,
    buckets: Box<[Bucket]>,
    /// The schedule being written.
    order: Box<[Slot]>,
    /// The current schedule's number (buckets of older ones are unused).
    made: u32,
    /// Frames the last hand-out left in the lane.
    left: usize,
    /// Whether those have their buckets and are in the schedule's order.
    ordered: bool,
}

impl HostQueues {
    /// Queues for a lane of `slots` frames.
    pub(crate) fn new(slots: usize) -> HostQueues {
        HostQueues {
            bucket_of: vec![0; slots].into_boxed_slice(),
            next: vec![NONE; slots].into_boxed_slice(),
            buckets: vec![Bucket::UNUSED; FLOW_BUCKETS].into_boxed_slice(),
            order: vec![0; slots].into_boxed_slice(),
            made: 0,
            left: 0,
            ordered: false,
        }
    }

    /// Before the kind is handed the frames in `ring`: if some wait from
    /// the last hand-out and frames came since (or the backlog was never
    /// ordered), the queue is put in DRR order. A flow with a frame left
    /// from before is old; a flow only among the newcomers is new.
    pub(crate) fn order(&mut self, ring: &mut FrameRing) {
        let queued = ring.queued().len();
        let left = self.left.min(queued);
        if left == 0 || (self.ordered && left == queued) || ring.capacity() > self.next.len() {
            return;
        }
        let known = if self.ordered { left } else { 0 };
        for i in known..queued {
            let slot = ring.queued()[i];
            let b = flow_bucket(ring.frame(slot));
            self.bucket_of[usize::from(slot)] = b as u16;
        }
        self.schedule(ring, left);
        self.ordered = true;
    }

    /// After the hand-out: what the kind left in `ring`.
    pub(crate) fn handed_out(&mut self, ring: &FrameRing) {
        if self.left == 0 {
            // Not ordered before this hand-out (the plain path).
            self.ordered = false;
        }
        self.left = ring.queued().len();
    }

    /// Puts `ring`'s queue in the order DRR with a new-flows list serves
    /// it; flows with a frame among the `old` first are old flows.
    fn schedule(&mut self, ring: &mut FrameRing, old: usize) {
        self.made = self.made.wrapping_add(1);
        if self.made == 0 {
            self.buckets.fill(Bucket::UNUSED);
            self.made = 1;
        }
        let (mut new_flows, mut old_flows) = (List::EMPTY, List::EMPTY);
        let queued = ring.queued();
        for (i, &slot) in queued.iter().enumerate() {
            let s = usize::from(slot);
            let b = self.bucket_of[s];
            self.next[s] = NONE;
            let bucket = &mut self.buckets[usize::from(b)];
            if bucket.made == self.made {
                self.next[usize::from(bucket.tail)] = slot;
                bucket.tail = slot;
                continue;
            }
            *bucket = Bucket {
                made: self.made,
                head: slot,
                tail: slot,
                deficit: QUANTUM,
                next: NONE,
            };
            let list = if i < old {
                &mut old_flows
            } else {
                &mut new_flows
            };
            list.push(&mut self.buckets, b);
        }
        let mut out = 0;
        loop {
            let (b, from_new) = match (new_flows.head, old_flows.head) {
                (NONE, NONE) => break,
                (NONE, b) => (b, false),
                (b, _) => (b, true),
            };
            let list = if from_new {
                &mut new_flows
            } else {
                &mut old_flows
            };
            let bucket = &mut self.buckets[usize::from(b)];
            if bucket.deficit <= 0 {
                bucket.deficit += QUANTUM;
                list.pop(&self.buckets);
                old_flows.push(&mut self.buckets, b);
                continue;
            }
            if bucket.head == NONE {
                // An emptied new flow goes to the end of the old list
                // (so that it cannot come back as new at once); an
                // emptied old one leaves.
                list.pop(&self.buckets);
                if from_new {
                    old_flows.push(&mut self.buckets, b);
                }
                continue;
            }
            let slot = bucket.head;
            bucket.head = self.next[usize::from(slot)];
            bucket.deficit -= ring.frame(slot).len() as i32;
            self.order[out] = slot;
            out += 1;
        }
        ring.set_order(&self.order[..out]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of flow `flow` (its source address) carrying `n`.
    fn frame(flow: u8, n: u8, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, flow]);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        f[14] = n;
        f
    }

    fn queue(ring: &FrameRing) -> Vec<(u8, u8)> {
        ring.queued()
            .iter()
            .map(|&s| (ring.frame(s)[11], ring.frame(s)[14]))
            .collect()
    }

    /// The kind takes `n` frames from the front.
    fn take(q: &mut HostQueues, ring: &mut FrameRing, n: usize) {
        q.order(ring);
        ring.consume_front(n);
        q.handed_out(ring);
    }

    #[test]
    fn without_a_backlog_nothing_moves() {
        let mut ring = FrameRing::new(16);
        let mut q = HostQueues::new(16);
        for n in 0..4 {
            ring.push_copy(&frame(1, n, 1000));
        }
        ring.push_copy(&frame(2, 0, 60));
        q.order(&mut ring);
        assert_eq!(queue(&ring)[4], (2, 0), "arrival order");
    }

    #[test]
    fn a_sparse_flow_overtakes_a_backlog_and_flows_keep_their_order() {
        let mut ring = FrameRing::new(32);
        let mut q = HostQueues::new(32);
        for n in 0..10 {
            ring.push_copy(&frame(1, n, 1500));
        }
        take(&mut q, &mut ring, 2);
        // The backlog (8 bulk frames) is there; a ping, more bulk, a
        // second ping come.
        ring.push_copy(&frame(2, 0, 98));
        ring.push_copy(&frame(1, 10, 1500));
        ring.push_copy(&frame(2, 1, 98));
        q.order(&mut ring);
        let mut want = vec![(2, 0), (2, 1)];
        want.extend((2..11).map(|n| (1, n)));
        assert_eq!(queue(&ring), want);
        // Nothing new: the order stands while the kind takes part of it.
        take(&mut q, &mut ring, 3);
        q.order(&mut ring);
        assert_eq!(queue(&ring), want[3..]);
    }

    #[test]
    fn backlogged_flows_take_turns_by_bytes() {
        let mut ring = FrameRing::new(32);
        let mut q = HostQueues::new(32);
        for n in 0..6 {
            ring.push_copy(&frame(1, n, 1500));
        }
        for n in 0..6 {
            ring.push_copy(&frame(3, n, 700));
        }
        take(&mut q, &mut ring, 0);
        ring.push_copy(&frame(3, 6, 700));
        q.order(&mut ring);
        // Old flows in the order they first appear, served while their
        // deficit (a quantum, 1514 bytes, a round) lasts; the last frame
        // of a turn overdraws it, and the overdraft is paid next round.
        let order = queue(&ring);
        assert_eq!(
            order[..9],
            [
                (1, 0),
                (1, 1),
                (3, 0),
                (3, 1),
                (3, 2),
                (1, 2),
                (3, 3),
                (3, 4),
                (1, 3)
            ]
        );
        assert_eq!(order.len(), 13);
    }
}
