//! How a bonding node deals the host's frames to its cables: one
//! [`Policy`] per node, chosen once from its name ([`choose`]), each in a
//! file of its own that owns its state. They deal with the one loop of
//! [`deal`] (a pick per frame, a batch sent per cable) and the cables'
//! table of the bonding room ([`Cables`]).
//!
//! To add a policy: a file here with a type that implements [`Policy`]
//! (its `deal` gives [`deal::deal_all`] a pick, as `adaptive.rs` does), a
//! name in [`PolicyName`], and a line in [`choose`].

mod adaptive;
pub(crate) mod deal;
mod hash;
mod path;
mod rr;
mod turns;

use std::time::Instant;

use super::cable::Cables;
use crate::endpoint::node::ports::PortTable;
use crate::lane::Lane;

/// What a deal works on: the ports (their sockets and readiness), the
/// cables (what the bonding node knows of each), and the time, also on the
/// clock of the path reports (`ms`).
pub(crate) struct Bond<'a> {
    pub(crate) ports: &'a mut PortTable,
    pub(crate) cables: &'a mut Cables,
    pub(crate) now: Instant,
    pub(crate) ms: u16,
}

/// A way to deal frames to cables.
pub(crate) trait Policy {
    /// Deals the host's frames queued in `lane` to the cables. Returns the
    /// frames finished with; the rest wait in the lane (the host is read
    /// no further until they go).
    fn deal(&mut self, bond: &mut Bond<'_>, lane: &mut Lane) -> usize;

    /// Whether the node learns each cable's path (path reports both ways)
    /// and puts the frames that far nodes of ours numbered back in order.
    fn learns_paths(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyName {
    /// The default: between bonding nodes of ours, each frame to the cable
    /// where it would arrive first, from what the far node reports of each
    /// cable, and the far node puts them back in order; with any other far
    /// end, as `Adaptive`.
    #[default]
    Path,
    /// Round robin over the cables that can take a frame now; when none
    /// can, frames wait and the host side is not read (backpressure).
    Adaptive,
    /// Each flow (addresses and ports) to one cable: no reordering, a
    /// single flow gets one cable's bandwidth.
    Hash,
    /// vdeplug4's blind round robin: each frame to the next cable, dropped
    /// if that cable is full.
    RoundRobin,
}

const POLICIES: [PolicyName; 4] = [
    PolicyName::Path,
    PolicyName::Adaptive,
    PolicyName::Hash,
    PolicyName::RoundRobin,
];

impl PolicyName {
    /// The name `policy=` and `--policy` take.
    pub fn name(&self) -> &'static str {
        match self {
            PolicyName::Path => "path",
            PolicyName::Adaptive => "adaptive",
            PolicyName::Hash => "hash",
            PolicyName::RoundRobin => "rr",
        }
    }
}

impl std::str::FromStr for PolicyName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        POLICIES
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown bonding policy '{s}' (path, adaptive, hash or rr)"))
    }
}

/// The policy `name` names; `weighted`: cables take turns by their shares.
pub(crate) fn choose(name: PolicyName, weighted: bool) -> Box<dyn Policy> {
    match name {
        PolicyName::Path => Box::new(path::ByArrival::new(weighted)),
        PolicyName::Adaptive => Box::new(adaptive::Adaptive::new(weighted)),
        PolicyName::Hash => Box::new(hash::ByFlow),
        PolicyName::RoundRobin => Box::new(rr::RoundRobin::new(weighted)),
    }
}
