//! One direction of a cable: the frame ring plus the batch scratch used to
//! move frames in and out of it.

use crate::batch::BatchIo;
use crate::ring::FrameRing;

/// Frames a lane holds, in both shells (slots of the largest frame; only
/// the pages that frames touch become resident). A node is told the size
/// of the lanes it is driven with, and sizes its own queues alike.
pub const LANE_SLOTS: usize = 64;
/// Frames from the host a bonding node keeps while its cables are full,
/// in both shells: its host-side flow queues (a ping overtakes what waits
/// here) and, in the module shell, room for a batch held and a receiver
/// descheduled for two milliseconds at 100k frames/s.
pub const HOST_STORE_SLOTS: usize = 4 * LANE_SLOTS;

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
