//! vde_plug_rs: a drop-in Rust `vde_plug` and the vdeplug4 node family
//! (hub, switch, multi, bonding) on one single-threaded `mio` loop.
//!
//! Layers, bottom up: [`wire`] (byte layouts, no I/O), [`ring`] and
//! [`batch`] (frame storage and batched datagram calls), [`endpoint`] (the
//! things a plug joins), [`engine`] (the loop), then [`cli`] and [`run`]
//! for the binaries.

pub mod accounts;
pub mod batch;
pub mod cli;
pub mod daemon;
pub mod endpoint;
pub mod engine;
pub mod hosted;
pub mod iplog;
pub mod lane;
pub mod node_cli;
pub mod number;
pub mod open;
pub mod ring;
pub mod run;
pub mod signals;
pub mod stats;
pub mod status;
pub mod sys;
pub mod url;
pub mod wire;
