//! The host gets the frames that far nodes of ours numbered in the order
//! they were sent: the reorder buffer ([`Reorder`]) driven by what the
//! cables that answer bring (the lag floor, which numbers can still come).

use std::time::{Duration, Instant};

use super::cable::Cables;
use super::path::StampClock;
use super::reorder::{lag_floor, Moment, Reorder};
use crate::endpoint::node::kind::FromPort;
use crate::endpoint::node::ports::PortTable;
use crate::figures::Figures;
use crate::lane::Lane;

/// How long a frame received is held for a number before it that no
/// cable has said it no longer brings (see `reorder.rs`). Only a cable
/// that says nothing at all leaves the question open, and such a cable is
/// soon dark (`PathState::silent`, at most 0.8 s) and asked no more; this
/// is the bound behind that, long enough for a machine so busy that its
/// cables' processes wait their turn for hundreds of ms.
const REORDER_WAIT: Duration = Duration::from_secs(1);

pub(super) struct InOrder {
    reorder: Reorder,
}

impl InOrder {
    pub(super) fn new() -> InOrder {
        InOrder {
            reorder: Reorder::new(),
        }
    }

    /// Frames came on a cable (`got`, the newest in `lane`): numbered ones
    /// are held until their turn (only a far node of ours numbers frames:
    /// from any other far end a frame is the host's, whatever its
    /// EtherType); then what is due goes.
    pub(super) fn take(
        &mut self,
        ports: &PortTable,
        cables: &mut Cables,
        clock: &StampClock,
        lane: &mut Lane,
        got: FromPort,
    ) {
        let at = moment(ports, cables, clock, Instant::now());
        match cables.get_mut(got.port).filter(|c| c.path.answered()) {
            Some(cable) => self.reorder.take(lane, got.count, at, &mut cable.seen),
            None => self.reorder.passed_untagged(got.count),
        }
        self.release(ports, cables, lane, at);
    }

    /// Gives the host what was held for its turn, if the turn came.
    /// Returns how many.
    pub(super) fn release_due(
        &mut self,
        ports: &PortTable,
        cables: &Cables,
        clock: &StampClock,
        lane: &mut Lane,
    ) -> usize {
        if !self.reorder.waiting() {
            return 0;
        }
        let at = moment(ports, cables, clock, Instant::now());
        self.release(ports, cables, lane, at)
    }

    /// Gives the host what was held whose turn has come (see
    /// [`Reorder::release`]): a missing number is given up on once no
    /// cable can still bring it, or after [`REORDER_WAIT`].
    fn release(
        &mut self,
        ports: &PortTable,
        cables: &Cables,
        lane: &mut Lane,
        at: Moment,
    ) -> usize {
        let epoch = self.reorder.epoch();
        // No cable (that answers and is not dark) can still bring number
        // `n`, which was sent no later than `stamp`.
        let gone = |n, stamp| {
            cables
                .answering(ports, at.now)
                .all(|c| c.seen.past(epoch, n, stamp, c.path.last_stamp()))
        };
        self.reorder
            .release(&mut lane.ring, at, REORDER_WAIT, &gone)
    }

    /// When held frames are to be looked at again.
    pub(super) fn due(
        &self,
        ports: &PortTable,
        cables: &Cables,
        clock: &StampClock,
        now: Instant,
    ) -> Option<Instant> {
        self.reorder
            .due(REORDER_WAIT, moment(ports, cables, clock, now))
    }

    pub(super) fn figures(&self, out: &mut Figures) {
        self.reorder.figures(out);
    }
}

/// `now` for the reorder buffer: on `clock`, with the lag floor of the
/// cables that answer and are not dark.
fn moment(ports: &PortTable, cables: &Cables, clock: &StampClock, now: Instant) -> Moment {
    Moment {
        now,
        ms: clock.ms(now),
        floor: lag_floor(
            cables
                .answering(ports, now)
                .filter_map(|c| c.seen.base_lag()),
        ),
    }
}
