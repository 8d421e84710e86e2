//! Cables taking turns (`policy=rr`, `adaptive`, and `path` while it deals
//! as `adaptive`): unweighted, the next one after the last, which is
//! vdeplug4's order; weighted (`weights=`), smooth weighted round robin.

use crate::endpoint::node::bonding::cable::{Cable, Cables};
use crate::endpoint::node::ports::{Port, PortTable};

pub(super) struct Turns {
    /// The last pick, an index into the active ports.
    at: usize,
    weighted: bool,
}

impl Turns {
    pub(super) fn new(weighted: bool) -> Turns {
        Turns { at: 0, weighted }
    }

    /// Picks the cable (an index into the active ports) for the next frame
    /// among those `eligible` accepts. Weighted, every eligible cable gains
    /// its weight in credit, and the richest one is picked and pays the
    /// sum, so 3:1 gives A A B A, A A B A, ...
    pub(super) fn next(
        &mut self,
        ports: &PortTable,
        cables: &mut Cables,
        eligible: impl Fn(&Port, &Cable) -> bool,
    ) -> Option<usize> {
        let active = ports.active();
        let n = active.len();
        if !self.weighted {
            let at = (1..=n).map(|step| (self.at + step) % n).find(|&at| {
                let id = active[at];
                matches!((ports.get(id), cables.get(id)), (Some(p), Some(c)) if eligible(p, c))
            })?;
            self.at = at;
            return Some(at);
        }
        let mut best: Option<(usize, i64)> = None;
        let mut total = 0i64;
        for (at, &id) in active.iter().enumerate() {
            let (Some(port), Some(cable)) = (ports.get(id), cables.get_mut(id)) else {
                continue;
            };
            if !eligible(port, cable) {
                continue;
            }
            cable.credit += i64::from(cable.weight);
            total += i64::from(cable.weight);
            if best.is_none_or(|(_, c)| cable.credit > c) {
                best = Some((at, cable.credit));
            }
        }
        let (at, _) = best?;
        if let Some(cable) = cables.get_mut(active[at]) {
            cable.credit -= total;
        }
        Some(at)
    }
}
