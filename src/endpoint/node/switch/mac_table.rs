//! The learning table of the switch node: (MAC, VLAN) to a destination,
//! with expiry. Fixed size, made at start-up; open addressing with linear
//! probing, and stale entries are simply overwritten.

use std::time::{Duration, Instant};

/// Where a learned address lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    Host,
    Port(usize),
}

#[derive(Clone, Copy)]
struct Entry {
    key: u64,
    dest: Dest,
    seen: Instant,
}

pub struct MacTable {
    entries: Box<[Option<Entry>]>,
    seed: u64,
    expire: Duration,
}

const PROBES: usize = 8;

impl MacTable {
    /// `size` buckets (rounded up to a power of two, at least 16).
    pub fn new(size: usize, seed: u64, expire: Duration) -> Self {
        let n = size.max(16).next_power_of_two();
        MacTable {
            entries: vec![None; n].into_boxed_slice(),
            seed,
            expire,
        }
    }

    fn key(mac: [u8; 6], vlan: u16) -> u64 {
        let mut k = [0u8; 8];
        k[..6].copy_from_slice(&mac);
        k[6..].copy_from_slice(&vlan.to_be_bytes());
        u64::from_le_bytes(k)
    }

    fn bucket(&self, key: u64) -> usize {
        let h = (key ^ self.seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> 32) as usize & (self.entries.len() - 1)
    }

    fn fresh(&self, e: &Entry, now: Instant) -> bool {
        now.duration_since(e.seen) < self.expire
    }

    pub fn learn(&mut self, mac: [u8; 6], vlan: u16, dest: Dest, now: Instant) {
        if mac[0] & 1 != 0 {
            return; // a group address is never a source
        }
        let key = Self::key(mac, vlan);
        let mask = self.entries.len() - 1;
        let start = self.bucket(key);
        let mut victim = start;
        for i in 0..PROBES {
            let at = (start + i) & mask;
            match &self.entries[at] {
                Some(e) if e.key == key => {
                    victim = at;
                    break;
                }
                Some(e) if self.fresh(e, now) => {}
                _ => {
                    victim = at;
                    break;
                }
            }
        }
        self.entries[victim] = Some(Entry {
            key,
            dest,
            seen: now,
        });
    }

    pub fn lookup(&self, mac: [u8; 6], vlan: u16, now: Instant) -> Option<Dest> {
        let key = Self::key(mac, vlan);
        let mask = self.entries.len() - 1;
        let start = self.bucket(key);
        (0..PROBES)
            .filter_map(|i| self.entries[(start + i) & mask].as_ref())
            .find(|e| e.key == key && self.fresh(e, now))
            .map(|e| e.dest)
    }

    /// Forgets every address learned on a port that went away.
    pub fn forget_port(&mut self, port: usize) {
        for e in self.entries.iter_mut() {
            if matches!(e, Some(x) if x.dest == Dest::Port(port)) {
                *e = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learn_lookup_forget_expire() {
        let mut t = MacTable::new(4, 1, Duration::from_secs(10));
        let now = Instant::now();
        let a = [2, 0, 0, 0, 0, 1];
        t.learn(a, 0, Dest::Port(3), now);
        t.learn([1, 0, 0, 0, 0, 1], 0, Dest::Port(4), now);
        assert_eq!(t.lookup(a, 0, now), Some(Dest::Port(3)));
        assert_eq!(t.lookup(a, 1, now), None);
        assert_eq!(t.lookup([1, 0, 0, 0, 0, 1], 0, now), None);
        assert_eq!(t.lookup(a, 0, now + Duration::from_secs(11)), None);
        t.forget_port(3);
        assert_eq!(t.lookup(a, 0, now), None);
    }
}
