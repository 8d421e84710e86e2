//! `-L`: the first time an IP source address shows up in the frames a user
//! sends into the stream, say so in syslog ("user U Real-IP R has got
//! VDE-IP4 A on vlan V"), as vde_plug does. The table of addresses already
//! logged is fixed in size (vde_plug's grows with every new address).

use std::ffi::CString;
use std::net::IpAddr;

use crate::wire::EthernetFrame;

const SLOTS: usize = 512;

pub struct IpLog {
    user: String,
    real_ip: String,
    seen: Box<[Option<(IpAddr, u16)>]>,
}

impl IpLog {
    pub fn new() -> IpLog {
        IpLog {
            user: crate::accounts::user_name(crate::sys::uid()).unwrap_or_else(|| "?".into()),
            real_ip: std::env::var("SSH_CLIENT")
                .ok()
                .and_then(|s| s.split_whitespace().next().map(String::from))
                .unwrap_or_else(|| "UNKNOWN_IP_ADDRESS".into()),
            seen: vec![None; SLOTS].into_boxed_slice(),
        }
    }

    /// Looks at one frame; true when it carried an address not seen before
    /// (and logged it).
    pub fn check(&mut self, frame: &[u8]) -> bool {
        let Some(found) = EthernetFrame::new_checked(frame)
            .ok()
            .and_then(|e| e.ip_source())
        else {
            return false;
        };
        let slot = &mut self.seen[bucket(&found.0)];
        if *slot == Some(found) {
            return false;
        }
        *slot = Some(found);
        let (addr, vlan) = found;
        let family = if addr.is_ipv4() { "IP4" } else { "IP6" };
        let line = format!(
            "user {} Real-IP {} has got VDE-{family} {addr} on vlan {vlan}",
            self.user, self.real_ip
        );
        if let Ok(msg) = CString::new(line) {
            // SAFETY: a "%s" format with one valid C string.
            unsafe { libc::syslog(libc::LOG_INFO, c"%s".as_ptr(), msg.as_ptr()) };
        }
        true
    }
}

impl Default for IpLog {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket(addr: &IpAddr) -> usize {
    let mut h: u64 = 5381;
    let octets = match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    };
    for b in octets {
        h = h.wrapping_mul(33).wrapping_add(u64::from(b));
    }
    (h % SLOTS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_each_address_once() {
        let mut log = IpLog::new();
        let mut f = [0u8; 34];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[26..30].copy_from_slice(&[198, 18, 0, 9]);
        assert!(log.check(&f));
        assert!(!log.check(&f));
        f[29] = 10;
        assert!(log.check(&f));
        assert!(!log.check(&[0u8; 20]));
    }
}
