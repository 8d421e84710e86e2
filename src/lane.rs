//! One direction of a cable: the frame ring plus the batch scratch used to
//! move frames in and out of it.

use crate::batch::BatchIo;
use crate::ring::FrameRing;

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
