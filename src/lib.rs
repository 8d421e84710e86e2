//! vde_plug_rs: a drop-in Rust `vde_plug` and the vdeplug4 node family
//! (hub, switch, multi, bonding) on one single-threaded `mio` loop.
//!
//! Layers, bottom up: [`wire`] (byte layouts, no I/O), [`ring`] and
//! [`batch`] (frame storage and batched datagram calls), [`endpoint`] (the
//! things a plug joins), [`engine`] (the loop), then [`cli`] and [`run`]
//! for the binaries.

pub(crate) mod accounts;
pub(crate) mod batch;
pub mod cli;
pub(crate) mod daemon;
pub mod endpoint;
pub mod engine;
pub mod figures;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod getopt;
pub mod hosted;
pub(crate) mod iplog;
pub(crate) mod lane;
pub mod logger;
pub mod node_cli;
pub(crate) mod number;
pub mod open;
pub(crate) mod ring;
pub mod run;
pub(crate) mod signals;
pub(crate) mod stats;
pub mod status;
pub(crate) mod sys;
pub(crate) mod syslog;
pub(crate) mod url;
pub mod wire;
