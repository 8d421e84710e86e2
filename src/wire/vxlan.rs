//! The 8-byte VXLAN header (RFC 7348) that vxlan:// and vxvde:// put in
//! front of every Ethernet frame in a UDP datagram:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 1 | flags: `0x08` (the I bit: the VNI is valid) |
//! | 1 | 3 | reserved, zero |
//! | 4 | 3 | VNI, big endian |
//! | 7 | 1 | reserved, zero |
//!
//! vdeplug4 accepts a datagram only when its flags byte is exactly `0x08`
//! and the VNI is its own (vxvde also wants the reserved bytes zero: it
//! compares all eight bytes). A datagram that is a header alone is vxvde's
//! goodbye: its sender is leaving.

use super::WireError;

pub(crate) const VXLAN_HEADER_LEN: usize = 8;
/// The I flag, the only flag vdeplug4 sets or accepts.
pub(crate) const VXLAN_FLAG_VNI: u8 = 0x08;
const FLAGS: usize = 0;
const VNI: std::ops::Range<usize> = 4..7;
/// The largest VNI (24 bits).
pub(crate) const VNI_MAX: u32 = 0x00ff_ffff;

/// A view of a VXLAN header at the start of a buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VxlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanHeader<T> {
    pub(crate) fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < VXLAN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(VxlanHeader { buffer })
    }

    pub(crate) fn flags(&self) -> u8 {
        self.buffer.as_ref()[FLAGS]
    }

    pub(crate) fn vni(&self) -> u32 {
        let b = &self.buffer.as_ref()[VNI];
        u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2])
    }

    /// What vxlan:// accepts: the I flag alone and this VNI (the reserved
    /// bytes are not looked at).
    pub(crate) fn matches_loosely(&self, vni: u32) -> bool {
        self.flags() == VXLAN_FLAG_VNI && self.vni() == vni
    }

    /// What vxvde:// accepts: the header is byte for byte the one it sends.
    pub(crate) fn matches_exactly(&self, vni: u32) -> bool {
        let mut own = [0u8; VXLAN_HEADER_LEN];
        emit(&mut own, vni);
        self.buffer.as_ref()[..VXLAN_HEADER_LEN] == own
    }
}

/// Writes the header for `vni` (its low 24 bits, as the C modules do).
pub(crate) fn emit(buf: &mut [u8; VXLAN_HEADER_LEN], vni: u32) {
    *buf = [0; VXLAN_HEADER_LEN];
    buf[FLAGS] = VXLAN_FLAG_VNI;
    let v = (vni & VNI_MAX).to_be_bytes();
    buf[VNI].copy_from_slice(&v[1..4]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_and_read_back() {
        let mut h = [0xaa; VXLAN_HEADER_LEN];
        emit(&mut h, 0x12_3456);
        assert_eq!(h, [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        let v = VxlanHeader::new_checked(&h[..]).unwrap();
        assert_eq!((v.flags(), v.vni()), (0x08, 0x12_3456));
        assert!(v.matches_loosely(0x12_3456) && v.matches_exactly(0x12_3456));
        assert!(!v.matches_loosely(1));
        emit(&mut h, 0x0100_0001);
        assert_eq!(VxlanHeader::new_checked(&h[..]).unwrap().vni(), 1);
        assert!(VxlanHeader::new_checked(&h[..7]).is_err());
    }

    #[test]
    fn reserved_bytes_matter_only_to_vxvde() {
        let mut h = [0u8; VXLAN_HEADER_LEN];
        emit(&mut h, 5);
        h[7] = 1;
        let v = VxlanHeader::new_checked(&h[..]).unwrap();
        assert!(v.matches_loosely(5));
        assert!(!v.matches_exactly(5));
        h[7] = 0;
        h[0] = 0x0c;
        assert!(!VxlanHeader::new_checked(&h[..]).unwrap().matches_loosely(5));
    }
}
