//! A pace for what a bonding node held back: frames that waited behind a
//! late one go to the host no faster than twice the rate frames came in
//! lately (and at least [`MIN_PER_SEC`] a second). A cable that stalled
//! for a while (its ssh connection retransmitting) would otherwise hand
//! the host hundreds of frames at once, more than the receiving program's
//! socket holds.

use std::time::{Duration, Instant};

/// The span over which the rate frames come in is measured.
const SPAN: Duration = Duration::from_millis(20);
/// The least pace, frames a second.
const MIN_PER_SEC: u64 = 10_000;
/// Frames that may go at once, at least (more at a higher pace: 4 ms).
pub(crate) const BURST: u64 = 32;
/// Credit is counted in millionths of a frame (frames a second × µs).
const FRAME: u64 = 1_000_000;
/// How soon frames that waited for credit are looked at again.
pub(crate) const RETRY: Duration = Duration::from_millis(1);

pub(crate) struct Pace {
    /// Frames in per second (smoothed), and those counted since `since`.
    per_sec: u64,
    count: u64,
    since: Option<Instant>,
    /// What may go now, and when it was topped up.
    credit: u64,
    topped_up: Option<Instant>,
    /// A frame was ready but had to wait for credit.
    waiting: bool,
}

impl Pace {
    /// A pace with a burst's credit.
    pub(crate) fn new() -> Pace {
        Pace {
            per_sec: 0,
            count: 0,
            since: None,
            credit: BURST * FRAME,
            topped_up: None,
            waiting: false,
        }
    }

    /// A frame came in.
    pub(crate) fn came(&mut self, now: Instant) {
        self.count += 1;
        let since = *self.since.get_or_insert(now);
        let span = now.saturating_duration_since(since);
        if span >= SPAN {
            let rate = self.count * 1_000_000 / span.as_micros().max(1) as u64;
            self.per_sec = (self.per_sec + rate) / 2;
            self.count = 0;
            self.since = Some(now);
        }
    }

    /// Adds the credit earned since the last top-up, up to a burst.
    pub(crate) fn top_up(&mut self, now: Instant) {
        let rate = (2 * self.per_sec).max(MIN_PER_SEC);
        let us = self
            .topped_up
            .map_or(0, |t| now.saturating_duration_since(t).as_micros() as u64);
        let burst = BURST.max(rate / 250) * FRAME;
        self.credit = (self.credit + us * rate).min(burst);
        self.topped_up = Some(now);
        self.waiting = false;
    }

    /// Takes one frame's credit, if there is that much.
    pub(crate) fn take(&mut self) -> bool {
        if self.credit < FRAME {
            self.waiting = true;
            return false;
        }
        self.credit -= FRAME;
        true
    }

    /// A frame had to wait for credit since the last top-up.
    pub(crate) fn waiting(&self) -> bool {
        self.waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn takes(p: &mut Pace) -> u64 {
        let mut n = 0;
        while p.take() {
            n += 1;
        }
        n
    }

    #[test]
    fn a_burst_then_the_least_pace() {
        let (mut p, t0) = (Pace::new(), Instant::now());
        p.top_up(t0);
        assert_eq!(takes(&mut p), BURST);
        assert!(p.waiting());
        // 10 000 a second: 1 ms earns 10 frames, and the wait is over.
        p.top_up(t0 + Duration::from_millis(1));
        assert!(!p.waiting());
        assert_eq!(takes(&mut p), 10);
        // A long pause earns no more than a burst: 4 ms at that pace.
        p.top_up(t0 + Duration::from_secs(1));
        assert_eq!(takes(&mut p), 40);
    }

    #[test]
    fn twice_the_rate_frames_come_in() {
        let (mut p, t0) = (Pace::new(), Instant::now());
        // 40 000 frames a second for 100 ms: the smoothed rate gets there.
        for i in 0..=4000 {
            p.came(t0 + Duration::from_micros(25 * i));
        }
        let t = t0 + Duration::from_millis(100);
        p.top_up(t);
        takes(&mut p);
        // Twice 40 000 (less the smoothing's last step): about 80 frames a ms.
        p.top_up(t + Duration::from_millis(1));
        let n = takes(&mut p);
        assert!((75..=80).contains(&n), "{n}");
        // The burst at that pace is 4 ms of it.
        p.top_up(t + Duration::from_secs(1));
        assert!((300..=320).contains(&takes(&mut p)));
    }
}
