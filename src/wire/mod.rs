//! Byte layouts with no I/O: typed views over byte slices, in the manner of
//! smoltcp's `wire` module. Nothing here allocates or touches a socket.

pub mod ethernet;
pub mod request;
pub mod sockaddr;
pub mod stream;

pub use ethernet::EthernetFrame;
pub use request::{RequestV3, REQUEST_HEADER_LEN};
pub use sockaddr::{SockaddrUn, SOCKADDR_UN_LEN};
pub use stream::{StreamDecoder, StreamEvent};

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

/// A deterministic PRNG (xorshift64*) for the randomized unit tests: fixed
/// seeds, no extra crate.
#[cfg(test)]
pub(crate) mod test_rng {
    pub struct XorShift(u64);

    impl XorShift {
        pub fn new(seed: u64) -> XorShift {
            XorShift(seed.max(1))
        }

        pub fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// A number in `0..n` (n > 0).
        pub fn below(&mut self, n: usize) -> usize {
            (self.next_u64() % n as u64) as usize
        }

        pub fn chance(&mut self, percent: usize) -> bool {
            self.below(100) < percent
        }

        pub fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next_u64() as u8).collect()
        }
    }
}
