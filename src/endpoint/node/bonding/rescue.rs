//! A sparse flow's frame (a ping, a keystroke beside a transfer) held up
//! on a cable that has stopped goes again on another. A node keeps the
//! last sparse frames it sent, tag and all; when a far end's path report
//! says it has heard nothing of us on a cable for a while
//! ([`PathState::stalled`]: an ssh cable's TCP waiting to send a lost
//! segment again, or holding back for BBR's ProbeRTT), the frames sent on
//! that cable since the stamp it echoes go again on the cable where they
//! arrive first among those it still hears us on. The far node gives its
//! host whichever copy comes first and drops the other (`reorder.rs`).
//! This is MPTCP's opportunistic retransmission (Raiciu et al., "How hard
//! can it be? Designing and implementing a deployable multipath TCP", NSDI
//! 2012) for the frames that wait most for it: a bulk flow's would take
//! the other cable's room, and gain less (docs/multipath.md).
//!
//! [`PathState::stalled`]: super::path::PathState::stalled

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::cable::Cables;
use super::path::after16;
use super::policy::deal::can_take;
use super::reorder::WINDOW;
use super::sequencer::Sequencer;
use crate::batch::{Insert, INSERT_MAX};
use crate::endpoint::node::ports::{PortId, PortTable};
use crate::figures::Figures;
use crate::ring::{FrameRing, PageBuf, Slot};

/// Sparse frames kept: the last this many sent (a ping every 10 ms is 640
/// ms of them).
const KEPT: usize = 64;
/// Room for each: a frame of a 1500-byte MTU with its tag. Larger ones
/// are not kept.
const KEPT_BYTES: usize = 2048;
/// A frame sent longer ago than this goes again no more: it is no longer
/// a ping's to rescue, and its stamp, which wraps after 65 s, would be
/// compared with others' for half of them.
const KEPT_FOR: Duration = Duration::from_secs(1);
/// Nor one numbered this far behind the last number sent: the far node
/// tells a copy from a new frame only within its reorder window, and the
/// other cables run no further behind than half of it (`deal.rs`).
const KEPT_NUMBERS: u32 = (WINDOW / 2) as u32;

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Its number, and its length, tag and all.
    n: u32,
    len: u16,
    /// The cable it went on, and when: the stamp of its deal, and the
    /// time (none: nothing kept here).
    port: PortId,
    stamp: u16,
    at: Option<Instant>,
    resent: bool,
}

pub(crate) struct Rescue {
    frames: PageBuf,
    kept: [Entry; KEPT],
    /// Where the next one is kept.
    next: usize,
    /// The number of the last frame sent.
    latest: u32,
    sent: u64,
}

impl Default for Rescue {
    fn default() -> Self {
        Rescue {
            // Mapped at once, resident only once used.
            frames: PageBuf::new(KEPT * KEPT_BYTES),
            kept: [Entry::default(); KEPT],
            next: 0,
            latest: 0,
            sent: 0,
        }
    }
}

impl Rescue {
    /// The frame in `slot` of `ring`, numbered `n` by `seq`, went on cable
    /// `port` just now: kept if its flow is sparse.
    pub(crate) fn sent(
        &mut self,
        ring: &FrameRing,
        slot: Slot,
        n: u32,
        seq: &Sequencer,
        port: PortId,
    ) {
        self.latest = n;
        if !seq.sparse_number(n) {
            return;
        }
        let frame = ring.frame(slot);
        let mut tag = [0u8; INSERT_MAX];
        let Some((at, tag_len)) = seq.write(ring, slot, &mut tag) else {
            return;
        };
        let len = frame.len() + tag_len;
        if len > KEPT_BYTES || at > frame.len() {
            return;
        }
        let i = self.next;
        self.next = (i + 1) % KEPT;
        let buf = self.frames.slice_mut(i * KEPT_BYTES, len);
        buf[..at].copy_from_slice(&frame[..at]);
        buf[at..at + tag_len].copy_from_slice(&tag[..tag_len]);
        buf[at + tag_len..].copy_from_slice(&frame[at..]);
        self.kept[i] = Entry {
            n,
            len: len as u16,
            port,
            stamp: seq.stamp(),
            at: Some(Instant::now()),
            resent: false,
        };
    }

    /// Whether entry `e` may go again now: sent within [`KEPT_FOR`], no
    /// more than [`KEPT_NUMBERS`] behind, past a numbering's first window
    /// (a far node that took this one up lately may still get frames of
    /// the one before, and starts its memory of what it gave its host anew
    /// with each), and not sent again yet.
    fn may_go_again(&self, e: &Entry, now: Instant) -> bool {
        e.at.is_some_and(|t| now.saturating_duration_since(t) < KEPT_FOR)
            && self.latest.wrapping_sub(e.n) < KEPT_NUMBERS
            && e.n >= WINDOW as u32
            && !e.resent
    }

    pub(crate) fn figures(&self, out: &mut Figures) {
        if self.sent > 0 {
            out.section("rescue").count("sent_again", self.sent);
        }
    }
}

/// The far end said on cable `from` that it has heard nothing of us there
/// since our stamp `echo`: the sparse frames sent on it since (that
/// millisecond included) go again, each once, on another cable
/// ([`send_again`]).
pub(crate) fn stalled(
    ports: &PortTable,
    cables: &mut Cables,
    from: PortId,
    echo: u16,
    now: Instant,
) {
    for i in 0..KEPT {
        let e = cables.rescue.kept[i];
        // At or after: one dealt in the millisecond of the echoed report
        // may have gone behind it (and a copy of one that got there is
        // dropped by the far node).
        if e.port != from || after16(echo, e.stamp) || !cables.rescue.may_go_again(&e, now) {
            continue;
        }
        if !send_again(ports, cables, i, now) {
            return;
        }
        cables.rescue.sent += 1;
    }
}

/// Sends kept frame `i` again on the cable where it arrives first among
/// those but its own that can take it and whose far end still hears us;
/// false when none could. Not on one with frames pinned to it (refused or
/// held back to go together): one of them may be numbered before this
/// one, and a far node takes a number lower than the highest a cable
/// brought as one that cable no longer brings; it would give up on the
/// pinned frame, which then comes late.
fn send_again(ports: &PortTable, cables: &mut Cables, i: usize, now: Instant) -> bool {
    let e = cables.rescue.kept[i];
    let len = usize::from(e.len);
    let to = cables
        .connected_ids(ports)
        .filter(|&(id, c)| id != e.port && c.path.stalled().is_none() && c.pinned().is_empty())
        .filter_map(|(id, c)| Some((ports.get(id)?, id, c)))
        .filter(|&(port, _, c)| can_take(port, c, now))
        .min_by_key(|&(_, _, c)| c.path.arrival(now, len))
        .and_then(|(port, id, _)| Some((id, port.data.as_ref()?.as_raw_fd())));
    let Some((to, fd)) = to else {
        return false;
    };
    let frame = cables.rescue.frames.slice(i * KEPT_BYTES, len);
    if crate::sys::send(fd, frame).is_err() {
        return false;
    }
    cables.rescue.kept[i].resent = true;
    if let Some(c) = cables.get_mut(to) {
        c.path.take(now, len);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::node::flow::flow_bucket;
    use crate::wire::seq_tag::SeqTagged;

    /// A 60-byte frame from MAC address `src` (a flow of its own).
    fn from(src: u8) -> [u8; 60] {
        let mut f = [0u8; 60];
        f[11] = src;
        f[12..14].copy_from_slice(&[0x88, 0x88]);
        f
    }

    #[test]
    fn a_frame_goes_again_on_no_cable_with_frames_pinned_to_it() {
        use crate::endpoint::node::ports::Port;
        use std::os::unix::net::UnixDatagram;
        let now = Instant::now();
        let (mut ports, mut cables) = (PortTable::default(), Cables::default());
        let mut far_ends = Vec::new();
        for _ in 0..3 {
            let (near, far) = UnixDatagram::pair().unwrap();
            far.set_nonblocking(true).unwrap();
            let ctl = crate::sys::unix_socket(libc::SOCK_STREAM).unwrap();
            let mut port = Port::pending(ctl);
            port.data = Some(near.into());
            port.writable = true;
            let id = ports.insert(port);
            ports.activate(id);
            cables.join(id, 1);
            far_ends.push(far);
        }
        // A sparse frame that went on cable 0, past a numbering's first window.
        let n = WINDOW as u32 + 5;
        cables.rescue.latest = n;
        cables
            .rescue
            .frames
            .slice_mut(0, 60)
            .copy_from_slice(&from(1));
        cables.rescue.kept[0] = Entry {
            n,
            len: 60,
            port: 0,
            stamp: 0,
            at: Some(now),
            resent: false,
        };
        // Cable 1 (as quick as cable 2, and first) holds a refused frame.
        cables.refused(1, &[7]);
        assert!(send_again(&ports, &mut cables, 0, now));
        let mut buf = [0u8; 100];
        assert_eq!(far_ends[2].recv(&mut buf).unwrap(), 60);
        assert!(far_ends[1].recv(&mut buf).is_err());
        // Sent again once; and with both others pinned, nowhere.
        assert!(cables.rescue.kept[0].resent);
        cables.rescue.kept[0].resent = false;
        cables.refused(2, &[8]);
        assert!(!send_again(&ports, &mut cables, 0, now));
        assert!(far_ends[1].recv(&mut buf).is_err() && far_ends[2].recv(&mut buf).is_err());
    }

    #[test]
    fn only_sparse_flows_frames_are_kept_tag_and_all() {
        let (mut seq, mut ring, mut rescue) =
            (Sequencer::new(), FrameRing::new(8), Rescue::default());
        seq.start_deal(700);
        // Flow 1's first frame (sparse), then its second right behind it
        // (dense), then flow 2's first (sparse).
        for (src, port) in [(1, 3), (1, 3), (2, 4)] {
            assert!(ring.push_copy(&from(src)));
            let slot = *ring.queued().last().unwrap();
            seq.number(&mut ring, slot, flow_bucket(&from(src)));
            let n = Sequencer::number_of(&ring, slot).unwrap();
            rescue.sent(&ring, slot, n, &seq, port);
        }
        let kept: Vec<(PortId, u16)> = rescue.kept[..3].iter().map(|e| (e.port, e.len)).collect();
        assert_eq!(kept, [(3, 72), (4, 72), (0, 0)]);
        let mut second = rescue.frames.slice(KEPT_BYTES, 72).to_vec();
        let tagged = SeqTagged::new_checked(&second[..]).unwrap();
        assert_eq!(
            (tagged.seq(), tagged.stamp(), rescue.kept[1].stamp),
            (2, 700, 700)
        );
        // Without its tag, it is the frame as it came.
        let len = crate::wire::seq_tag::strip(&mut second);
        assert_eq!(&second[..len], &from(2)[..]);
    }
}
