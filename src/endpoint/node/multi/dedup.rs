//! Duplicate suppression for the multi node (`dedup=MILLISECONDS`): during
//! a handoff both cables carry every frame, and the host should see each
//! once. A fixed table of frame fingerprints with the time each was last
//! handed to the host; no allocation per frame.

use std::time::{Duration, Instant};

const SLOTS: usize = 4096;
const WAYS: usize = 4;

#[derive(Clone, Copy)]
struct Seen {
    fingerprint: u64,
    at: Instant,
}

pub struct Dedup {
    window: Duration,
    table: Box<[Option<Seen>]>,
}

impl Dedup {
    pub fn new(window: Duration) -> Self {
        Dedup {
            window,
            table: vec![None; SLOTS].into_boxed_slice(),
        }
    }

    /// FNV-1a over the frame and its length: cheap, and two different
    /// frames of one flow differ in their sequence fields anyway.
    fn fingerprint(frame: &[u8]) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ frame.len() as u64;
        for &b in frame {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    /// True when an identical frame went to the host within the window;
    /// otherwise records this one and returns false.
    pub fn is_duplicate(&mut self, frame: &[u8], now: Instant) -> bool {
        let fp = Self::fingerprint(frame);
        let base = (fp as usize) & (SLOTS - 1) & !(WAYS - 1);
        let mut victim = base;
        let mut oldest: Option<Instant> = None;
        for at in base..base + WAYS {
            match self.table[at] {
                Some(s) if s.fingerprint == fp && now.duration_since(s.at) <= self.window => {
                    return true;
                }
                Some(s) if s.fingerprint == fp => {
                    victim = at;
                    break;
                }
                Some(s) => {
                    if oldest.is_none_or(|o| s.at < o) {
                        oldest = Some(s.at);
                        victim = at;
                    }
                }
                None => {
                    victim = at;
                    break;
                }
            }
        }
        self.table[victim] = Some(Seen {
            fingerprint: fp,
            at: now,
        });
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_window_only() {
        let mut d = Dedup::new(Duration::from_millis(50));
        let t = Instant::now();
        assert!(!d.is_duplicate(b"frame-one-xxxxxx", t));
        assert!(d.is_duplicate(b"frame-one-xxxxxx", t + Duration::from_millis(10)));
        assert!(!d.is_duplicate(b"frame-two-xxxxxx", t));
        assert!(!d.is_duplicate(b"frame-one-xxxxxx", t + Duration::from_millis(100)));
    }
}
