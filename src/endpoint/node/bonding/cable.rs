//! What a bonding node keeps of each cable beside its port: what its path
//! delivers ([`PathState`]), what it brought of the far node's numbering
//! ([`CableSeen`]), its share and credit when cables take turns. A table by
//! port id ([`Cables`]) that the bonding kind keeps as ports join and leave.

use std::time::Instant;

use super::path::PathState;
use super::reorder::CableSeen;
use crate::endpoint::node::ports::{PortId, PortTable};

pub(crate) struct Cable {
    pub(crate) path: PathState,
    pub(crate) seen: CableSeen,
    /// Share of a weighted bonding node (`weights=`), and the credit of its
    /// smooth weighted round robin.
    pub(crate) weight: u32,
    pub(crate) credit: i64,
}

/// The cables by port id: one for every port that joined and is not gone.
#[derive(Default)]
pub(crate) struct Cables {
    by_port: Vec<Option<Cable>>,
}

impl Cables {
    /// Port `id` joined, with a share of `weight`: a cable nothing is
    /// known of yet.
    pub(crate) fn join(&mut self, id: PortId, weight: u32) {
        if self.by_port.len() <= id {
            self.by_port.resize_with(id + 1, || None);
        }
        self.by_port[id] = Some(Cable {
            path: PathState::default(),
            seen: CableSeen::default(),
            weight,
            credit: 0,
        });
    }

    /// Port `id` is gone.
    pub(crate) fn leave(&mut self, id: PortId) {
        if let Some(cable) = self.by_port.get_mut(id) {
            *cable = None;
        }
    }

    pub(crate) fn get(&self, id: PortId) -> Option<&Cable> {
        self.by_port.get(id).and_then(Option::as_ref)
    }

    pub(crate) fn get_mut(&mut self, id: PortId) -> Option<&mut Cable> {
        self.by_port.get_mut(id).and_then(Option::as_mut)
    }

    /// The cables of the connected ports, in the order of the port table.
    pub(crate) fn connected<'a>(&'a self, ports: &'a PortTable) -> impl Iterator<Item = &'a Cable> {
        ports.active().iter().filter_map(|&id| self.get(id))
    }

    /// The cables whose far end answers (a node of ours) and that are not
    /// dark: those the reorder buffer waits for.
    pub(crate) fn answering<'a>(
        &'a self,
        ports: &'a PortTable,
        now: Instant,
    ) -> impl Iterator<Item = &'a Cable> {
        self.connected(ports)
            .filter(move |c| c.path.answered() && !c.path.silent(now))
    }

    /// Every cable's far end has answered: it is a bonding node of ours.
    pub(crate) fn all_answered(&self, ports: &PortTable) -> bool {
        self.connected(ports).all(|c| c.path.answered())
    }

    /// Every cable's far end has answered, and some cable is not dark.
    pub(crate) fn paths_known(&self, ports: &PortTable, now: Instant) -> bool {
        self.all_answered(ports) && self.connected(ports).any(|c| !c.path.silent(now))
    }

    /// The cables that are not dark have alike paths
    /// ([`PathState::alike`]): taking turns serves them best.
    pub(crate) fn paths_alike(&self, ports: &PortTable, now: Instant) -> bool {
        let mut lit = self.connected(ports).filter(|c| !c.path.silent(now));
        let Some(first) = lit.next() else {
            return false;
        };
        lit.all(|c| c.path.alike(&first.path))
    }
}
