//! `policy=rr`: vdeplug4's round robin. Each frame goes to the next cable
//! in turn whether or not it can take it; what it cannot take is dropped
//! (counted in its `full` column). Every frame is finished.

use super::deal::deal;
use super::turns::Turns;
use super::{Bond, Policy};
use crate::lane::Lane;

pub(super) struct RoundRobin {
    turns: Turns,
}

impl RoundRobin {
    pub(super) fn new(weighted: bool) -> RoundRobin {
        RoundRobin {
            turns: Turns::new(weighted),
        }
    }
}

impl Policy for RoundRobin {
    fn deal(&mut self, bond: &mut Bond<'_>, lane: &mut Lane) -> usize {
        let mut done = 0;
        while !lane.ring.is_empty() {
            let turns = &mut self.turns;
            let (dealt, _) = deal(
                bond,
                lane,
                &mut |ports, cables, _, _| turns.next(ports, cables, |_, _| true),
                None,
                |p, left| p.stats.drop_full += left as u64,
            );
            if dealt == 0 {
                break;
            }
            done += lane.ring.consume_front(dealt);
        }
        done
    }
}
