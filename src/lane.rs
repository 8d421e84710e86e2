//! One direction of a cable: the frame ring plus the batch scratch used to
//! move frames in and out of it.

use crate::batch::BatchIo;
use crate::ring::FrameRing;

/// Frames a lane holds, in both shells (slots of the largest frame; only
/// the pages that frames touch become resident). A node is told the size
/// of the lanes it is driven with, and sizes its own queues alike.
pub const LANE_SLOTS: usize = 64;

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
