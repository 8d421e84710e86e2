//! What kind of node, and the knobs each kind has.

use std::time::Duration;

use crate::number::{self, BadNumber};

/// `dedup=MS`: the window of a multi node's duplicate filter (0: off).
pub fn parse_dedup(ms: &str) -> Result<Option<Duration>, BadNumber> {
    let ms = number::decimal("dedup window (ms)", ms, 0..=3_600_000)?;
    Ok((ms > 0).then(|| Duration::from_millis(ms)))
}

/// `weights=3:1:2`: the shares of a bonding node's cables, separated by `:`
/// or `,` (the `/` of a locator separates parameters).
pub fn parse_weights(s: &str) -> Result<Vec<u32>, BadNumber> {
    s.split([':', ','])
        .map(|w| number::decimal("weight", w, 1..=10_000).map(|w| w as u32))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BondingPolicy {
    /// Round robin over the cables that can take a frame now; when none
    /// can, frames wait and the host side is not read (backpressure).
    Adaptive,
    /// vdeplug4's blind round robin: each frame to the next cable, dropped
    /// if that cable is full.
    RoundRobin,
}

impl std::str::FromStr for BondingPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "adaptive" => Ok(BondingPolicy::Adaptive),
            "rr" => Ok(BondingPolicy::RoundRobin),
            _ => Err(format!("unknown bonding policy '{s}' (adaptive or rr)")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchConfig {
    pub hash_size: usize,
    pub hash_seed: u64,
    pub expire: Duration,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        SwitchConfig {
            hash_size: 256,
            hash_seed: 0,
            expire: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// Host frames to every port; port frames to the host and every other port.
    Hub,
    /// A learning switch over the host and the ports.
    Switch(SwitchConfig),
    /// Host frames to every port; port frames to the host only. An optional
    /// window in which a frame already given to the host is not given again.
    Multi { dedup: Option<Duration> },
    /// Host frames to one port; port frames to the host only.
    Bonding(BondingPolicy),
}

impl NodeKind {
    pub fn scheme(&self) -> &'static str {
        match self {
            NodeKind::Hub => "hub",
            NodeKind::Switch(_) => "switch",
            NodeKind::Multi { .. } => "multi",
            NodeKind::Bonding(_) => "bonding",
        }
    }

    /// Whether a frame from one port also goes to the other ports.
    pub fn port_to_port(&self) -> bool {
        matches!(self, NodeKind::Hub | NodeKind::Switch(_))
    }
}
