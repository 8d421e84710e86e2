//! Everything bonding: what each cable's path delivers, frames numbered and
//! put back in order, the pace of what waited, the flow of a frame.

pub(crate) mod flow;
pub(crate) mod pace;
pub(crate) mod path;
pub(crate) mod reorder;
pub(crate) mod sequencer;
