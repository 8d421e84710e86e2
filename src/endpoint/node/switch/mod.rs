//! The switch node: a learning switch over the host and the ports.

pub mod mac_table;
