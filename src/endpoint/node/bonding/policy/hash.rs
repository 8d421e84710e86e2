//! `policy=hash`: each flow ([`flow_hash`]) to one of the cables that can
//! take a frame now, so that a flow is never reordered; a flow moves only
//! when its cable is full or gone.

use super::deal::{can_take, deal_all};
use super::{Bond, Policy};
use crate::endpoint::node::flow::flow_hash;
use crate::lane::Lane;

pub(super) struct ByFlow;

impl Policy for ByFlow {
    fn deal(&mut self, bond: &mut Bond<'_>, lane: &mut Lane) -> usize {
        let now = bond.now;
        deal_all(
            bond,
            lane,
            &mut |ports, cables, frame, _| {
                let open = |i: &usize| {
                    let id = ports.active()[*i];
                    matches!((ports.get(id), cables.get(id)), (Some(p), Some(c)) if can_take(p, c, now))
                };
                let count = (0..ports.active().len()).filter(open).count();
                if count == 0 {
                    return None;
                }
                (0..ports.active().len())
                    .filter(open)
                    .nth(flow_hash(frame) as usize % count)
            },
            None,
        )
    }
}
