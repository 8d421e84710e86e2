//! One node's configuration ([`NodeConfig`]), made from one table of
//! options ([`OPTIONS`]) through either of two front doors: the keys of a
//! locator (`bonding:///p[policy=path/weights=3:1]`,
//! [`NodeConfig::from_locator`]) and the flags of the node programs
//! (`bonding_node --weights 3:1`, `node_cli.rs`). Both check a value with
//! the same function and refuse a bad one with the same message.

use std::time::Duration;

use super::bonding::parse_weights;
use super::bonding::policy::PolicyName;
use super::control::Access;
use super::multi::parse_dedup;
use super::switch::SwitchConfig;
use crate::endpoint::OpenError;
use crate::number;
use crate::url::Locator;

/// A switch's MAC table is made whole at start-up: this bounds `hashsize=`.
const MAX_HASH_SIZE: u64 = 1 << 20;

/// The four node kinds, by their module names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindName {
    Hub,
    Switch,
    Multi,
    Bonding,
}

impl KindName {
    pub fn scheme(self) -> &'static str {
        match self {
            KindName::Hub => "hub",
            KindName::Switch => "switch",
            KindName::Multi => "multi",
            KindName::Bonding => "bonding",
        }
    }

    pub fn from_scheme(scheme: &str) -> Option<KindName> {
        [
            KindName::Hub,
            KindName::Switch,
            KindName::Multi,
            KindName::Bonding,
        ]
        .into_iter()
        .find(|k| k.scheme() == scheme)
    }
}

/// Everything a node is made with.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub kind: KindName,
    /// `mode=`, `dirmode=` (derived from `mode=` if not given), `grp=`.
    pub mode: Option<u32>,
    pub dirmode: Option<u32>,
    pub group: Option<u32>,
    pub switch: SwitchConfig,
    pub policy: PolicyName,
    /// Bonding shares, in the order cables join; empty: plain turns.
    pub weights: Vec<u32>,
    /// Multi: a frame already given to the host is not given again within
    /// this window.
    pub dedup: Option<Duration>,
}

impl NodeConfig {
    /// A node of `kind` with vdeplug4's defaults.
    pub fn new(kind: KindName) -> NodeConfig {
        NodeConfig {
            kind,
            mode: None,
            dirmode: None,
            group: None,
            switch: SwitchConfig::default(),
            policy: PolicyName::default(),
            weights: Vec::new(),
            dedup: None,
        }
    }

    /// Reads a node's locator: its kind from the module, its settings from
    /// the keys (abbreviated as vdeplug4 allows; the last of a key wins).
    /// A bad key or value is `EINVAL`, with the message that names it.
    pub fn from_locator(loc: &Locator) -> Result<NodeConfig, OpenError> {
        let kind = KindName::from_scheme(&loc.module)
            .ok_or_else(|| OpenError::errno(libc::EPROTONOSUPPORT))?;
        let keys: Vec<&str> = options_for(kind).map(|o| o.key).collect();
        let params = loc.resolve(&keys, None).map_err(OpenError::invalid)?;
        let mut config = NodeConfig::new(kind);
        for (key, value) in params {
            if let Some(option) = options_for(kind).find(|o| o.key == key) {
                config.set(option, &value).map_err(OpenError::invalid)?;
            }
        }
        Ok(config)
    }

    /// Sets one option to `value`, or says why it cannot.
    pub fn set(&mut self, option: &NodeOption, value: &str) -> Result<(), String> {
        (option.set)(self, value)
    }

    /// The node directory's owner group and permissions.
    pub fn access(&self) -> Access {
        let mut access = self.mode.map_or_else(Access::default, Access::with_mode);
        if let Some(dirmode) = self.dirmode {
            access.dirmode = dirmode;
        }
        access.gid = self.group;
        access
    }

    /// The kind's settings, as `--status` shows them.
    pub fn settings(&self) -> String {
        match self.kind {
            KindName::Hub => "-".into(),
            KindName::Switch => format!(
                "hashsize={} expiretime={}",
                self.switch.hash_size,
                self.switch.expire.as_secs()
            ),
            KindName::Multi => match self.dedup {
                Some(w) => format!("dedup={}", w.as_millis()),
                None => "-".into(),
            },
            KindName::Bonding if self.weights.is_empty() => self.policy.name().into(),
            KindName::Bonding => {
                let shares: Vec<String> = self.weights.iter().map(u32::to_string).collect();
                format!("{} weights={}", self.policy.name(), shares.join(":"))
            }
        }
    }
}

/// One option of a node, with both of its names.
pub struct NodeOption {
    /// Its locator key; a key may be abbreviated to a prefix, and the
    /// first in [`OPTIONS`] that it starts wins, as in vdeplug4.
    pub key: &'static str,
    /// Its flag on the node programs (`--group`), and a short one (`-g`).
    pub flag: &'static str,
    pub short: Option<&'static str>,
    /// The name of its value in the usage; `None`: it takes none.
    pub value: Option<&'static str>,
    /// The kinds that take it.
    pub kinds: &'static [KindName],
    /// Its line in the usage.
    pub help: &'static str,
    /// Checks a value and sets it.
    pub set: fn(&mut NodeConfig, &str) -> Result<(), String>,
}

const EVERY_KIND: &[KindName] = &[
    KindName::Hub,
    KindName::Switch,
    KindName::Multi,
    KindName::Bonding,
];

/// Every option of every node, vdeplug4's first, in its order.
pub static OPTIONS: [NodeOption; 9] = [
    NodeOption {
        key: "mode",
        flag: "--mode",
        short: None,
        value: Some("MODE"),
        kinds: EVERY_KIND,
        help: "socket permissions, octal (default 0600)",
        set: |c, v| {
            c.mode = Some(number::octal("mode", v, number::MAX_MODE).map_err(|e| e.to_string())?);
            Ok(())
        },
    },
    NodeOption {
        key: "dirmode",
        flag: "--dirmode",
        short: None,
        value: Some("MODE"),
        kinds: EVERY_KIND,
        help: "directory permissions (default derived from --mode)",
        set: |c, v| {
            let mode =
                number::octal("dirmode", v, number::MAX_DIRMODE).map_err(|e| e.to_string())?;
            c.dirmode = Some(mode);
            Ok(())
        },
    },
    NodeOption {
        key: "grp",
        flag: "--group",
        short: Some("-g"),
        value: Some("GROUP"),
        kinds: EVERY_KIND,
        help: "group owning the node",
        set: |c, v| {
            c.group = Some(crate::accounts::known_group(v).map_err(|e| e.to_string())?);
            Ok(())
        },
    },
    NodeOption {
        key: "hashsize",
        flag: "--hashsize",
        short: None,
        value: Some("N"),
        kinds: EVERY_KIND,
        help: "a switch's MAC table size (default 256)",
        set: |c, v| {
            let n = number::decimal("hashsize", v, 1..=MAX_HASH_SIZE).map_err(|e| e.to_string())?;
            c.switch.hash_size = n as usize;
            Ok(())
        },
    },
    NodeOption {
        key: "hashseed",
        flag: "--hashseed",
        short: None,
        value: Some("N"),
        kinds: EVERY_KIND,
        help: "a switch's MAC table hash seed",
        set: |c, v| {
            let n = number::decimal("hashseed", v, 0..=u64::from(u32::MAX));
            c.switch.hash_seed = n.map_err(|e| e.to_string())?;
            Ok(())
        },
    },
    NodeOption {
        key: "expiretime",
        flag: "--expiretime",
        short: None,
        value: Some("S"),
        kinds: EVERY_KIND,
        help: "a switch forgets an address unseen S seconds (default 120)",
        set: |c, v| {
            let s = number::decimal("expiretime (s)", v, 1..=u64::from(u32::MAX));
            c.switch.expire = Duration::from_secs(s.map_err(|e| e.to_string())?);
            Ok(())
        },
    },
    NodeOption {
        key: "policy",
        flag: "--policy",
        short: None,
        value: Some("POLICY"),
        kinds: &[KindName::Bonding],
        help: "path (default), adaptive, hash or rr (see bonding_node(1))",
        set: |c, v| {
            c.policy = v.parse()?;
            Ok(())
        },
    },
    NodeOption {
        key: "weights",
        flag: "--weights",
        short: None,
        value: Some("W:W..."),
        kinds: &[KindName::Bonding],
        help: "shares of the cables, in the order they join",
        set: |c, v| {
            c.weights = parse_weights(v).map_err(|e| e.to_string())?;
            Ok(())
        },
    },
    NodeOption {
        key: "dedup",
        flag: "--dedup",
        short: None,
        value: Some("MS"),
        kinds: &[KindName::Multi],
        help: "give the host each frame once within MS milliseconds",
        set: |c, v| {
            c.dedup = parse_dedup(v).map_err(|e| e.to_string())?;
            Ok(())
        },
    },
];

/// The options a node of `kind` takes, in the table's order.
pub fn options_for(kind: KindName) -> impl Iterator<Item = &'static NodeOption> {
    OPTIONS.iter().filter(move |o| o.kinds.contains(&kind))
}
