//! The Ethernet header fields the switch node looks at.

use super::{WireError, ETH_HEADER_LEN};

const ETHERTYPE_VLAN: u16 = 0x8100;

/// A read-only view of an Ethernet frame.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` after checking it holds at least a whole header.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < ETH_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(EthernetFrame { buffer })
    }

    pub fn dst(&self) -> [u8; 6] {
        self.mac_at(0)
    }

    pub fn src(&self) -> [u8; 6] {
        self.mac_at(6)
    }

    pub fn ethertype(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[12], b[13]])
    }

    /// The VLAN id of an 802.1Q-tagged frame, 0 for an untagged one. Like the
    /// C switch, only the low 10 bits of the tag are used.
    pub fn vlan(&self) -> u16 {
        let b = self.buffer.as_ref();
        if self.ethertype() == ETHERTYPE_VLAN && b.len() >= ETH_HEADER_LEN + 4 {
            u16::from_be_bytes([b[14], b[15]]) & 0x3ff
        } else {
            0
        }
    }

    /// The ethertype of what the frame carries and the carried bytes,
    /// past an 802.1Q tag if there is one.
    pub fn payload(&self) -> (u16, &[u8]) {
        let b = self.buffer.as_ref();
        if self.ethertype() == ETHERTYPE_VLAN && b.len() >= 18 {
            (u16::from_be_bytes([b[16], b[17]]), &b[18..])
        } else {
            (self.ethertype(), &b[ETH_HEADER_LEN..])
        }
    }

    /// The IPv4 or IPv6 source address of an IP packet, with its VLAN id
    /// (0 when untagged), as `-L` logs them.
    pub fn ip_source(&self) -> Option<(std::net::IpAddr, u16)> {
        let (ethertype, ip) = self.payload();
        let vlan = self.vlan();
        match ethertype {
            0x0800 if ip.len() >= 20 && ip[0] >> 4 == 4 => {
                let src: [u8; 4] = ip[12..16].try_into().ok()?;
                Some((src.into(), vlan))
            }
            0x86dd if ip.len() >= 40 && ip[0] >> 4 == 6 => {
                let src: [u8; 16] = ip[8..24].try_into().ok()?;
                Some((src.into(), vlan))
            }
            _ => None,
        }
    }

    fn mac_at(&self, at: usize) -> [u8; 6] {
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&self.buffer.as_ref()[at..at + 6]);
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_vlan() {
        let mut f = [0u8; 20];
        f[0..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        f[14..16].copy_from_slice(&0x2405u16.to_be_bytes());
        let e = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(e.src(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(e.vlan(), 0x005);
        assert!(EthernetFrame::new_checked(&f[..13]).is_err());
    }

    #[test]
    fn ip_sources() {
        let mut v4 = [0u8; 34];
        v4[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        v4[14] = 0x45;
        v4[26..30].copy_from_slice(&[198, 18, 0, 1]);
        let e = EthernetFrame::new_checked(&v4[..]).unwrap();
        assert_eq!(e.ip_source(), Some(("198.18.0.1".parse().unwrap(), 0)));
        let mut tagged = [0u8; 58];
        tagged[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        tagged[14..16].copy_from_slice(&7u16.to_be_bytes());
        tagged[16..18].copy_from_slice(&0x86ddu16.to_be_bytes());
        tagged[18] = 0x60;
        tagged[26..42].copy_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        let e = EthernetFrame::new_checked(&tagged[..]).unwrap();
        assert_eq!(e.ip_source(), Some(("2001:db8::1".parse().unwrap(), 7)));
        assert_eq!(
            EthernetFrame::new_checked(&v4[..30]).unwrap().ip_source(),
            None
        );
    }
}
