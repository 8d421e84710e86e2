//! The sequence tag: 12 bytes that a bonding node of ours puts after the
//! addresses of each frame it deals to a cable whose far end is a bonding
//! node of ours (`policy=path`), so that the far node can give the host the
//! frames in the order they were sent, whichever cables they took. The far
//! node takes the tag out again: no host ever sees one.
//!
//! It sits where an 802.1Q tag would, so the addresses stay in place:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 12 | destination and source MAC, as in the frame |
//! | 12 | 2 | EtherType `0x88b5` (IEEE 802 local experimental) |
//! | 14 | 1 | magic `'g'` |
//! | 15 | 1 | `epoch`: chosen by the sending node when it starts |
//! | 16 | 4 | `seq`: the frame's number in the sending node's order (mod 2³²) |
//! | 20 | 2 | `stamp`: when it was sent, by the sending node's clock in ms (mod 2¹⁶), the clock of its path reports |
//! | 22 | 2 | `back`: how many numbers back the previous frame of the same flow is (below) |
//! | 24 | .. | the frame's EtherType and payload |
//!
//! All fields big endian. `back` lets the far node keep each flow in order
//! without holding one flow for another's missing frames: 0 when no frame
//! of the flow (by [`crate::endpoint::node::flow::flow_hash`]) was numbered
//! in the [`FLOW_SPAN`] numbers before this one, the distance to the
//! previous one when one was (1 to `FLOW_SPAN - 1`), and [`BACK_UNKNOWN`]
//! when the sender does not know: then the frame waits for every number
//! before it. (Earlier tags: magic `'s'` had no `back`; magic `'f'` had the
//! same fields over a span and window of 1024. The path reports change
//! magic with the tag, so nodes of different tags never answer each other
//! and deal to each other untagged, as to a C peer.)

use super::{WireError, MAX_FRAME};

/// Bytes a tag adds to a frame.
pub(crate) const SEQ_TAG_LEN: usize = 12;
/// Where the tag goes: after the two addresses.
pub(crate) const TAG_AT: usize = 12;
const ETHERTYPE: [u8; 2] = [0x88, 0xb5];
const MAGIC: u8 = b'g';
const EPOCH: usize = 15;
const SEQ: std::ops::Range<usize> = 16..20;
const STAMP: std::ops::Range<usize> = 20..22;
const BACK: std::ops::Range<usize> = 22..24;
/// How far back `back` can point: a flow's previous frame further back
/// than this is taken as delivered or given up on by the far node (whose
/// reorder window is as long).
pub(crate) const FLOW_SPAN: u16 = 2048;
/// `back` when the sender does not know the flow's previous frame.
pub(crate) const BACK_UNKNOWN: u16 = u16::MAX;
/// A tagged frame has at least the addresses, the tag and an EtherType.
const MIN_TAGGED: usize = TAG_AT + SEQ_TAG_LEN + 2;
/// Frames longer than this cannot carry a tag and go without one.
pub(crate) const MAX_UNTAGGED: usize = MAX_FRAME - SEQ_TAG_LEN;

/// A view of a tagged frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeqTagged<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SeqTagged<T> {
    /// The frame, if it carries a tag.
    pub(crate) fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < MIN_TAGGED {
            return Err(WireError::Truncated);
        }
        if b[TAG_AT..TAG_AT + 2] != ETHERTYPE || b[TAG_AT + 2] != MAGIC {
            return Err(WireError::Malformed);
        }
        Ok(SeqTagged { buffer })
    }

    pub(crate) fn epoch(&self) -> u8 {
        self.buffer.as_ref()[EPOCH]
    }

    pub(crate) fn seq(&self) -> u32 {
        let b = &self.buffer.as_ref()[SEQ];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    pub(crate) fn stamp(&self) -> u16 {
        let b = &self.buffer.as_ref()[STAMP];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The `back` field as sent.
    pub(crate) fn back(&self) -> u16 {
        let b = &self.buffer.as_ref()[BACK];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// How many numbers back the flow's previous frame is: `None` when
    /// the sender does not know (any `back` from [`FLOW_SPAN`] on),
    /// `Some(0)` when there is none within [`FLOW_SPAN`].
    pub(crate) fn flow_back(&self) -> Option<u16> {
        Some(self.back()).filter(|&d| d < FLOW_SPAN)
    }
}

/// What a tag says besides the frame: the numbering, the number, the
/// stamp, and where the flow's previous frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TagFields {
    pub(crate) epoch: u8,
    pub(crate) seq: u32,
    pub(crate) stamp: u16,
    pub(crate) back: u16,
}

/// Writes the tag that goes after a frame's addresses.
pub(crate) fn emit(buf: &mut [u8; SEQ_TAG_LEN], f: &TagFields) {
    buf[..2].copy_from_slice(&ETHERTYPE);
    buf[2] = MAGIC;
    buf[EPOCH - TAG_AT] = f.epoch;
    buf[SEQ.start - TAG_AT..SEQ.end - TAG_AT].copy_from_slice(&f.seq.to_be_bytes());
    buf[STAMP.start - TAG_AT..STAMP.end - TAG_AT].copy_from_slice(&f.stamp.to_be_bytes());
    buf[BACK.start - TAG_AT..].copy_from_slice(&f.back.to_be_bytes());
}

/// Takes the tag out of the tagged frame in `frame`, in place: the
/// frame's length without it.
pub(crate) fn strip(frame: &mut [u8]) -> usize {
    frame.copy_within(TAG_AT + SEQ_TAG_LEN.., TAG_AT);
    frame.len() - SEQ_TAG_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(frame: &[u8], epoch: u8, seq: u32, back: u16) -> Vec<u8> {
        let mut tag = [0u8; SEQ_TAG_LEN];
        let stamp = 0x1234;
        emit(
            &mut tag,
            &TagFields {
                epoch,
                seq,
                stamp,
                back,
            },
        );
        [&frame[..TAG_AT], &tag[..], &frame[TAG_AT..]].concat()
    }

    #[test]
    fn tag_read_back_and_stripped() {
        let frame: Vec<u8> = (0..60u8).collect();
        let mut t = tagged(&frame, 7, 0xdead_beef, 3);
        assert_eq!(t.len(), frame.len() + SEQ_TAG_LEN);
        let view = SeqTagged::new_checked(&t[..]).unwrap();
        assert_eq!(
            (view.epoch(), view.seq(), view.stamp(), view.flow_back()),
            (7, 0xdead_beef, 0x1234, Some(3))
        );
        let len = strip(&mut t);
        assert_eq!(&t[..len], &frame[..]);
    }

    #[test]
    fn back_beyond_the_span_is_not_known() {
        let frame = [0u8; 60];
        let back = |b| {
            let t = tagged(&frame, 1, 9, b);
            let view = SeqTagged::new_checked(&t[..]).unwrap();
            assert_eq!(view.back(), b);
            view.flow_back()
        };
        assert_eq!(back(0), Some(0));
        assert_eq!(back(FLOW_SPAN - 1), Some(FLOW_SPAN - 1));
        assert_eq!(back(FLOW_SPAN), None);
        assert_eq!(back(BACK_UNKNOWN), None);
    }

    #[test]
    fn the_tag_without_flows_is_not_taken_for_one() {
        // The first tag's magic ('s', no `back`): its frames are not read
        // as tagged (and its nodes never answer ours, see path_report).
        let mut t = tagged(&[0u8; 60], 1, 9, 0);
        t[TAG_AT + 2] = b's';
        assert_eq!(
            SeqTagged::new_checked(&t[..]).unwrap_err(),
            WireError::Malformed
        );
    }

    #[test]
    fn plain_frames_are_not_tagged() {
        let mut frame = [0u8; 60];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(
            SeqTagged::new_checked(&frame[..]).unwrap_err(),
            WireError::Malformed
        );
        // The local experimental type without the magic is someone's frame.
        frame[12..14].copy_from_slice(&ETHERTYPE);
        assert!(SeqTagged::new_checked(&frame[..]).is_err());
        assert_eq!(
            SeqTagged::new_checked(&frame[..MIN_TAGGED - 1]).unwrap_err(),
            WireError::Truncated
        );
    }
}
