//! One direction of a cable: the frame ring plus the batch scratch used to
//! move frames in and out of it.

use crate::batch::BatchIo;
use crate::ring::FrameRing;

/// Frames a lane holds, in both shells (slots of the largest frame; only
/// the pages that frames touch become resident). A node is told the size
/// of the lanes it is driven with, and sizes its own queues alike.
pub const LANE_SLOTS: usize = 64;
/// Frames from the host a bonding node keeps while its cables are full,
/// under `vde_plug_rs`: its host-side flow queues, where a ping overtakes
/// a bulk flow's backlog. The host is read while they have room, so what
/// a TCP sender's start puts beyond the bond's paths waits here rather
/// than in a tap's ring (FIFO, 1 000 frames): with 256 slots a loaded
/// ping's worst was 46-71 ms on unequal paths over ssh, with 1 024 26-48.
/// (The module shell keeps fewer: there a full store drops.)
pub const HOST_STORE_SLOTS: usize = 16 * LANE_SLOTS;

pub struct Lane {
    pub ring: FrameRing,
    pub io: BatchIo,
}

impl Lane {
    pub fn new(capacity: usize) -> Self {
        Lane {
            ring: FrameRing::new(capacity),
            io: BatchIo::new(),
        }
    }
}
