//! Byte layouts with no I/O: typed views over byte slices, in the manner of
//! smoltcp's `wire` module. Nothing here allocates or touches a socket.

pub mod ethernet;
pub mod path_report;
pub mod request;
pub(crate) mod seq_tag;
pub mod sockaddr;
pub mod stream;
pub(crate) mod stream_delta;
pub(crate) mod vxlan;

pub use ethernet::EthernetFrame;
pub use request::{RequestV3, REQUEST_HEADER_LEN};
pub use sockaddr::{SockaddrUn, SOCKADDR_UN_LEN};

/// Length of an Ethernet header: two MACs and the ethertype.
pub const ETH_HEADER_LEN: usize = 14;
/// vdeplug4's `VDE_ETHBUFSIZE`: a 9216-byte MTU plus an Ethernet and an 802.1Q header.
pub const VDE_ETHBUFSIZE: usize = 9216 + 14 + 4;
/// The largest frame a stream may carry (the C decoder accepts two bytes more
/// than `VDE_ETHBUFSIZE`); every frame buffer in the process is this large.
pub const MAX_FRAME: usize = VDE_ETHBUFSIZE + 2;

/// A wire view was handed a buffer too short or with a field out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    Truncated,
    Malformed,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Truncated => f.write_str("truncated"),
            WireError::Malformed => f.write_str("malformed"),
        }
    }
}

impl std::error::Error for WireError {}

#[cfg(test)]
pub(crate) mod test_rng;
