//! The multi node: host frames to every port, port frames to the host.

pub mod dedup;
