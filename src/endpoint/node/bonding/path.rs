//! What a bonding node knows of each cable's path (`policy=path`): its
//! rate and round trip, learnt from the path reports the bonding node at
//! its far end sends back on it ([`crate::wire::path_report`]); the
//! virtual queue of what was dealt to it; when a frame dealt now would
//! arrive; whether it has gone dark. How and why: docs/multipath.md, "What
//! a node learns of each path".

use std::time::{Duration, Instant};

use crate::figures::Figures;
use crate::wire::path_report::{PathReport, ReportFields};

/// How often a report goes out on a cable whose far end answers (one that
/// has not gets one hello, when it joins: see `reports.rs`).
pub(crate) const REPORT_EVERY: Duration = Duration::from_millis(20);
/// How much may stand queued ahead of a frame on a cable (on the path and
/// in the virtual queue): past it, frames wait in the node (and the host is
/// not read).
pub(crate) const MAX_BACKLOG: Duration = Duration::from_millis(50);
/// What a dense flow's frame (a bulk transfer's) may find queued on one
/// of the nearest paths, those sparse flows take (on the path and in the
/// virtual queue): past it on every cable, it waits in the node, where a
/// sparse flow's frame goes before it. CoDel's target (RFC 8289, section
/// 4.4): a standing queue that keeps a path busy and adds little to what
/// crosses it.
pub(crate) const QUEUE_TARGET: Duration = Duration::from_millis(5);
/// The same on a farther path (least round trip more than [`ALIKE_RTT_US`]
/// over the nearest one's): no sparse flow waits in its queue, and a longer
/// one keeps it busy through the pauses of a busy machine.
const FAR_QUEUE_TARGET: Duration = Duration::from_millis(20);
/// Silence after which an answering cable counts as dark: about two round
/// trips and four reports, within these bounds.
const SILENT_MIN: Duration = Duration::from_millis(300);
const SILENT_MAX: Duration = Duration::from_millis(800);
/// Queueing delay on a path (its round trip above its smallest) over which
/// its rate drains, and over which a path that was offered enough is full.
const QUEUE_HIGH_US: u64 = 20_000;
const QUEUE_SEEN_US: u64 = 5_000;
/// Reports sent that are remembered with what had been dealt by then
/// (1.28 s of them): a report that comes back later says nothing of now.
const MARKS: usize = 64;
/// Shortest span (ms of the far node's clock) of one delivery sample:
/// long enough to smooth the bursts in which an ssh connection delivers.
const SAMPLE_MIN_MS: u16 = 100;
/// The same while a cable starts: a report's interval. A starting cable is
/// dealt more than its bandwidth (see `adjust`), so the sooner samples
/// come the sooner it finds its bandwidth: paced by 100-ms samples, a
/// start took 300 ms to find a 40 Mbit/s path (the kernel's TCP, at a
/// 10 ms round trip, 60 ms).
const START_SAMPLE_MIN_MS: u16 = 20;
/// Longest span: older anchors are from before a pause and say nothing.
const SAMPLE_MAX_MS: u16 = 5_000;
/// Round trips over this are a wrapped stamp, not a measurement.
const RTT_MAX_MS: u16 = 30_000;
/// Delivery samples the bandwidth is taken from (see `bandwidth`).
const SAMPLES: usize = 6;
/// How long a cable's bandwidth may go without growing by a quarter,
/// while it is dealt enough to show more, before its start is over.
const START_PLATEAU: Duration = Duration::from_millis(300);
/// Delivery below this (bytes/s) is an idle cable's, not a measure.
const IDLE_BELOW: u64 = 50_000;
/// Rate of a cable before it is measured (10 Mbit/s), and the floor.
const START_RATE: u64 = 1_250_000;
const MIN_RATE: u64 = 32_000;
/// A path whose least round trip is no longer than this is near: dealt
/// twice what it carries while it starts, it hears of the queue that
/// builds within that round trip.
const NEAR_RTT_US: u64 = 20_000;
/// Round trips that differ by no more than this are alike.
const ALIKE_RTT_US: u64 = 4_000;
/// A report of ours that reached the far end at least this much later than
/// the one before it would have (ms, by the one before, what the far end
/// says it waited since, and when we sent it): our way to it has stopped,
/// an ssh cable's TCP waiting to send a lost segment again or holding back
/// for a while (BBR's ProbeRTT: docs/multipath.md). The round trips of the
/// reports that did arrive do not show it yet.
const STALL_MS: i16 = 30;
/// Added to a sparse flow's arrival on such a path: it goes last.
const STALLED_LAST: Duration = Duration::from_secs(10);
/// `hold` of a report that echoes nothing (its sender heard no stamp yet).
pub(crate) const NO_ECHO: u8 = 0xff;

/// Whether stamp `a` is later than `b` (ms that wrap).
pub(crate) fn after16(a: u16, b: u16) -> bool {
    (a.wrapping_sub(b) as i16) > 0
}

/// The node's clock for stamps: milliseconds since it started, mod 2¹⁶.
#[derive(Clone, Copy)]
pub(crate) struct StampClock {
    epoch: Instant,
}

impl StampClock {
    pub(crate) fn new() -> StampClock {
        StampClock {
            epoch: Instant::now(),
        }
    }

    pub(crate) fn ms(&self, now: Instant) -> u16 {
        now.duration_since(self.epoch).as_millis() as u16
    }
}

/// The report of a cable nothing was heard on yet (a hello): a stamp,
/// no echo.
pub(crate) fn hello(now: Instant, clock: &StampClock) -> ReportFields {
    ReportFields {
        rx_at_echo: 0,
        stamp: clock.ms(now),
        echo: 0,
        hold: NO_ECHO,
    }
}

/// The last stamp heard from the far end, to echo.
#[derive(Clone, Copy)]
struct Heard {
    stamp: u16,
    at: Instant,
    /// Data bytes received on the cable by then.
    rx: u64,
}

/// What a bonding node knows about one cable's path.
pub(crate) struct PathState {
    next_report: Option<Instant>,
    heard: Option<Heard>,
    last_heard: Option<Instant>,
    base_rtt_us: u64,
    srtt_us: u64,
    /// The smallest round trip since the last delivery sample: what stands
    /// queued on the path shows in it, passing jitter does not.
    span_rtt_us: Option<u64>,
    /// Bytes dealt to the cable so far, and for each of the last reports
    /// sent, its stamp and the bytes dealt by then.
    dealt: u64,
    marks: [(u16, u64); MARKS],
    next_mark: usize,
    /// Bytes per second dealt: the bandwidth times the gain.
    rate: u64,
    /// The last delivery samples (bytes per second), and the next to replace.
    delivered: [u64; SAMPLES],
    next_sample: usize,
    /// Still finding the bandwidth.
    starting: bool,
    /// The best bandwidth of the start so far, and when it was reached.
    start_best: u64,
    start_best_at: Option<Instant>,
    /// Start of the delivery sample under way: the far clock (ms) when one
    /// of our stamps arrived there, and the bytes it had received then.
    anchor: Option<(u16, u32)>,
    /// Bytes dealt since the last sample, and when that was: whether the
    /// cable was offered about its rate (so that what it delivered is what
    /// it can).
    offered: u64,
    offered_since: Option<Instant>,
    /// End of the virtual queue.
    busy_until: Option<Instant>,
    /// Heard again after it went dark, at this stamp of ours: it is dealt
    /// nothing until the far end echoes a stamp of ours from then on.
    revived: Option<u16>,
    /// The far end's last report said it had heard nothing of us since our
    /// report it echoed (that report's stamp), [`STALL_MS`] or more past
    /// when our next would have come.
    stalled: Option<u16>,
}

impl Default for PathState {
    fn default() -> Self {
        PathState {
            next_report: None,
            heard: None,
            last_heard: None,
            base_rtt_us: 0,
            srtt_us: 0,
            span_rtt_us: None,
            dealt: 0,
            marks: [(0, 0); MARKS],
            next_mark: 0,
            rate: START_RATE,
            delivered: [0; SAMPLES],
            next_sample: 0,
            starting: true,
            start_best: 0,
            start_best_at: None,
            anchor: None,
            offered: 0,
            offered_since: None,
            busy_until: None,
            revived: None,
            stalled: None,
        }
    }
}

impl PathState {
    /// When the next report is due: none until the far end has answered
    /// (the cable's hello went when it joined), at once when it first does.
    pub(crate) fn report_due(&self) -> Option<Instant> {
        self.next_report
    }

    /// The report to send now, and when the next is due.
    pub(crate) fn report(&mut self, now: Instant, clock: &StampClock) -> ReportFields {
        self.next_report = self.answered().then(|| now + REPORT_EVERY);
        self.marks[self.next_mark % MARKS] = (clock.ms(now), self.dealt);
        self.next_mark += 1;
        match self.heard {
            Some(h) => ReportFields {
                rx_at_echo: h.rx as u32,
                stamp: clock.ms(now),
                echo: h.stamp,
                hold: now.duration_since(h.at).as_millis().min(254) as u8,
            },
            None => hello(now, clock),
        }
    }

    /// The report due now cannot go: try again a report's interval later.
    pub(crate) fn skip_report(&mut self, now: Instant) {
        self.next_report = Some(now + REPORT_EVERY);
    }

    /// A report arrived on this cable; `rx` is the data bytes received on
    /// it so far.
    pub(crate) fn on_report(
        &mut self,
        r: &PathReport<&[u8]>,
        now: Instant,
        clock: &StampClock,
        rx: u64,
    ) {
        let first = self.last_heard.is_none();
        if self.silent(now) {
            self.revived = Some(clock.ms(now));
        }
        self.last_heard = Some(now);
        self.heard = Some(Heard {
            stamp: r.stamp(),
            at: now,
            rx,
        });
        if first {
            // Answer at once: the far end learns we are here within a trip.
            self.next_report = Some(now);
        }
        if r.hold() == NO_ECHO {
            return;
        }
        self.stalled = self.sent_after(r.echo()).and_then(|next| {
            let late = r.echo().wrapping_add(r.hold().into()).wrapping_sub(next) as i16;
            (late >= STALL_MS).then_some(r.echo())
        });
        // An echo of what we sent since it came back: our way works too.
        if self
            .revived
            .is_some_and(|at| (r.echo().wrapping_sub(at) as i16) >= 0)
        {
            self.revived = None;
        }
        let hold = u16::from(r.hold());
        let elapsed = clock.ms(now).wrapping_sub(r.echo());
        if elapsed >= hold && elapsed - hold < RTT_MAX_MS {
            let rtt_us = u64::from(elapsed - hold) * 1000;
            self.rtt_sample(rtt_us);
            self.reckon_queue(r.echo(), rtt_us, elapsed, now);
        }
        // When our stamp reached the far end, by its clock, and what it
        // had received by then.
        let far_at = r.stamp().wrapping_sub(hold);
        let far_rx = r.rx_at_echo();
        match self.anchor {
            Some((t, rx0)) => {
                let span = far_at.wrapping_sub(t);
                if span >= SAMPLE_MAX_MS {
                    self.anchor = Some((far_at, far_rx));
                } else if span >= self.sample_min_ms() {
                    let delivered = u64::from(far_rx.wrapping_sub(rx0)) * 1000 / u64::from(span);
                    self.adjust(delivered, now);
                    self.anchor = Some((far_at, far_rx));
                }
            }
            None => self.anchor = Some((far_at, far_rx)),
        }
    }

    /// The stamp of the report we sent after the one stamped `stamp`, if
    /// we remember both.
    fn sent_after(&self, stamp: u16) -> Option<u16> {
        let sent = self.next_mark.min(MARKS);
        let newest = |k: usize| self.marks[(self.next_mark - 1 - k) % MARKS].0;
        (1..sent)
            .find(|&k| newest(k) == stamp)
            .map(|k| newest(k - 1))
    }

    fn rtt_sample(&mut self, us: u64) {
        self.srtt_us = if self.srtt_us == 0 {
            us
        } else {
            (7 * self.srtt_us + us) / 8
        };
        if self.base_rtt_us == 0 || us < self.base_rtt_us {
            self.base_rtt_us = us;
        }
        self.span_rtt_us = Some(self.span_rtt_us.map_or(us, |m| m.min(us)));
    }

    /// Our report stamped `echo` came back `elapsed_ms` after it went, with
    /// a round trip of `rtt_us` (less the far end's hold): the queue it
    /// found on the path (that round trip over the least ever), plus what
    /// was dealt after it, less what the path carried since, stands queued
    /// now, and the virtual queue is set to it. A queue read from round
    /// trips alone is a round trip old: a node that waits for it to shrink
    /// leaves the path empty that long, and one that deals until it grows
    /// overfills it (a Smith predictor for the dead time).
    fn reckon_queue(&mut self, echo: u16, rtt_us: u64, elapsed_ms: u16, now: Instant) {
        let Some(dealt_then) = (0..MARKS.min(self.next_mark))
            .map(|k| self.marks[(self.next_mark - 1 - k) % MARKS])
            .find_map(|(stamp, dealt)| (stamp == echo).then_some(dealt))
        else {
            return;
        };
        let found = Duration::from_micros(rtt_us.saturating_sub(self.base_rtt_us));
        let since = self.time_for(self.dealt - dealt_then);
        let left = (found + since).saturating_sub(Duration::from_millis(elapsed_ms.into()));
        self.busy_until = Some(now + left);
    }

    /// One delivery sample (bytes/s over the last span): the rate follows.
    fn adjust(&mut self, delivered: u64, now: Instant) {
        let offered = std::mem::take(&mut self.offered);
        let span = self
            .offered_since
            .replace(now)
            .map_or(0, |t| now.duration_since(t).as_micros() as u64);
        let known = self.bandwidth();
        // Bytes/s offered over the span (none without a span).
        let offered_rate = (span > 0).then(|| offered * 1_000_000 / span);
        // Offered much of what it is known to carry (at least what it is
        // dealt while it drains a queue).
        let fed = offered_rate.is_some_and(|r| r >= known * 5 / 8);
        let queue_us = self
            .span_rtt_us
            .take()
            .unwrap_or(self.srtt_us)
            .saturating_sub(self.base_rtt_us);
        // Offered enough, and a queue shows on the path: it was full.
        let full = fed && queue_us > QUEUE_SEEN_US;
        // More than it was known to carry: it can at least that, unless it
        // is more than it was offered (after the start): then it is a
        // burst of what waited, and says nothing of its path (an ssh
        // connection that recovers a lost segment hands over at once what
        // it held back behind it). Less: only if it was offered enough and
        // a queue shows on the path was it full; otherwise it was merely
        // given less (or the queue is the other direction's), which says
        // nothing of what it can. Nor does a cable that carried next to
        // nothing (pings, reports).
        let idle = delivered < IDLE_BELOW;
        let more = delivered > known;
        let burst = !self.starting && span > 0 && delivered * span > offered * 1_000_000 * 5 / 4;
        if !idle && ((more && !burst) || (!more && full)) {
            self.record(delivered);
        }
        let bw = self.bandwidth();
        if bw == 0 {
            return;
        }
        let bw = bw.max(MIN_RATE);
        // A queue that we built (a queue we did not build, the other
        // direction's or others' traffic, is not ours to drain).
        let queueing = fed && queue_us > QUEUE_HIGH_US;
        if self.starting {
            // A cable offered less than a quarter more than it carries,
            // with no queue on its path, cannot show that it carries more:
            // that span is no plateau (as BBR looks for one only in
            // samples not limited by the sending application).
            let pushed = full || offered_rate.is_some_and(|r| r >= known * 5 / 4);
            if bw >= self.start_best * 5 / 4 || !pushed {
                self.start_best = bw;
                self.start_best_at = Some(now);
            }
            let flat = self
                .start_best_at
                .map_or(Duration::ZERO, |t| now.duration_since(t));
            self.starting = !queueing && flat < START_PLATEAU;
        }
        // While starting, twice its bandwidth, as slow start does, on a
        // near path; half again on a far one. A path's queue shows a round
        // trip late: a path of 50 ms dealt twice what it carried overfilled
        // its 50-ms queue meanwhile, and one of 10 ms dealt half again
        // spilled a bulk flow's first frames onto a farther path.
        let eighths = match self.starting {
            _ if queueing => 7,
            true if self.base_rtt_us <= NEAR_RTT_US => 16,
            true => 12,
            false => 9,
        };
        self.rate = (bw * eighths / 8).max(MIN_RATE);
    }

    /// The shortest span of a delivery sample now.
    fn sample_min_ms(&self) -> u16 {
        if self.starting {
            START_SAMPLE_MIN_MS
        } else {
            SAMPLE_MIN_MS
        }
    }

    fn record(&mut self, delivered: u64) {
        self.delivered[self.next_sample % SAMPLES] = delivered;
        self.next_sample += 1;
    }

    /// The path's bandwidth from the recent samples: the most of them but
    /// one while a cable starts, then their median (not the most, nor the
    /// mean: an ssh connection that recovers a lost segment hands over
    /// what it held back in one burst, well above what its path carries;
    /// taken as the path's at a start, 20-ms samples of such bursts
    /// overfilled a 15 Mbit/s path in 2 of 10 runs).
    fn bandwidth(&self) -> u64 {
        let mut seen = [0u64; SAMPLES];
        let mut n = 0;
        for &x in self.delivered.iter().filter(|&&x| x > 0) {
            seen[n] = x;
            n += 1;
        }
        let seen = &mut seen[..n];
        seen.sort_unstable();
        let at = if self.starting {
            n.saturating_sub(2)
        } else {
            n / 2
        };
        seen.get(at).copied().unwrap_or(0)
    }

    /// Whether two paths are alike enough to be dealt to in turn: round
    /// trips within [`ALIKE_RTT_US`] and rates within a factor of two. On
    /// such paths taking turns keeps a flow in order best.
    pub(crate) fn alike(&self, other: &PathState) -> bool {
        let (r1, r2) = (self.rate.min(other.rate), self.rate.max(other.rate));
        self.base_rtt_us.abs_diff(other.base_rtt_us) <= ALIKE_RTT_US && r2 <= 2 * r1
    }

    /// The stamp of the last report from the far end.
    pub(crate) fn last_stamp(&self) -> Option<u16> {
        self.heard.map(|h| h.stamp)
    }

    /// The far end has answered at least once (it is a bonding node of ours).
    pub(crate) fn answered(&self) -> bool {
        self.last_heard.is_some()
    }

    /// How long a cable that answers may stay quiet before it counts as dark.
    pub(crate) fn silent_after(&self) -> Duration {
        let rtt = Duration::from_micros(self.srtt_us);
        (2 * rtt + 4 * REPORT_EVERY).clamp(SILENT_MIN, SILENT_MAX)
    }

    /// The path's least round trip.
    pub(crate) fn base_rtt(&self) -> Duration {
        Duration::from_micros(self.base_rtt_us)
    }

    /// It answered before, and has been quiet too long since.
    pub(crate) fn silent(&self, now: Instant) -> bool {
        self.last_heard
            .is_some_and(|t| now.duration_since(t) > self.silent_after())
    }

    /// Frames may be dealt to it: it is not dark, and if it was, the far
    /// end has since heard us. A path that comes back after a blackhole
    /// may carry the far end's reports long before ours: our side's TCP (an
    /// ssh cable's) waits out a retransmission timer backed off for
    /// seconds, and frames dealt to it meanwhile would hold up every flow.
    pub(crate) fn dealable(&self, now: Instant) -> bool {
        !self.silent(now) && self.revived.is_none()
    }

    /// What a dense flow's frame may find queued on this path, when the
    /// least round trip of the paths is `nearest`.
    pub(crate) fn queue_cap(&self, nearest: Duration) -> Duration {
        if self.base_rtt_us <= nearest.as_micros() as u64 + ALIKE_RTT_US {
            QUEUE_TARGET
        } else {
            FAR_QUEUE_TARGET
        }
    }

    /// When what is queued ([`PathState::queued`]) will be back within
    /// `cap`; none if it is within (a report may set it back sooner).
    pub(crate) fn backlog_ends(&self, now: Instant, cap: Duration) -> Option<Instant> {
        self.busy_until
            .and_then(|t| t.checked_sub(cap))
            .filter(|&t| t > now)
    }

    fn time_for(&self, len: u64) -> Duration {
        Duration::from_nanos(len * 1_000_000_000 / self.rate)
    }

    /// The path's own one-way delay, as half its least round trip (what
    /// queues on it is in the virtual queue).
    fn one_way(&self) -> Duration {
        Duration::from_micros(self.base_rtt_us / 2)
    }

    /// What stands queued ahead of a frame dealt now: the virtual queue,
    /// as the last report set it ([`PathState::reckon_queue`]) and dealing
    /// and time moved it since.
    pub(crate) fn queued(&self, now: Instant) -> Duration {
        self.busy_until
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now))
    }

    /// How long the path stays busy with what is queued, less `len` bytes
    /// of it (frames dealt to it that wait in the node).
    pub(crate) fn busy_without(&self, now: Instant, len: u64) -> Duration {
        self.queued(now).saturating_sub(self.time_for(len))
    }

    /// When a frame of `len` bytes dealt now would arrive (from now): the
    /// path's own delay, the queue ahead of it and the frame itself.
    pub(crate) fn arrival(&self, now: Instant, len: usize) -> Duration {
        self.one_way() + self.queued(now) + self.time_for(len as u64)
    }

    /// When a sparse flow's frame (a ping beside a transfer) of `len` bytes
    /// dealt now would arrive, to choose its cable: [`PathState::arrival`],
    /// but after every path the far end still hears us on.
    pub(crate) fn sparse_arrival(&self, now: Instant, len: usize) -> Duration {
        let last = self.stalled.map_or(Duration::ZERO, |_| STALLED_LAST);
        self.arrival(now, len) + last
    }

    /// The far end has heard nothing of us since our stamp it echoes, for
    /// long: that stamp.
    pub(crate) fn stalled(&self) -> Option<u16> {
        self.stalled
    }

    /// A frame of `len` bytes was dealt to this cable.
    pub(crate) fn take(&mut self, now: Instant, len: usize) {
        let len = len as u64;
        let start = self.busy_until.filter(|&t| t > now).unwrap_or(now);
        self.busy_until = Some(start + self.time_for(len));
        self.offered += len;
        self.dealt += len;
    }

    /// What `--status` shows of the path, once the far end answered: rate,
    /// smallest and smoothed round trip, the queue reckoned on it now,
    /// whether it fell silent.
    pub(crate) fn figures(&self, now: Instant, out: &mut Figures) {
        if !self.answered() {
            return;
        }
        out.section("path")
            .bit_rate("rate", self.rate * 8)
            .micros("rtt_min", self.base_rtt_us)
            .micros("rtt", self.srtt_us)
            .time("queue", self.queued(now))
            .flag("silent", self.silent(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::path_report::{emit, PATH_REPORT_LEN};

    /// A report as the far end would send it.
    fn report(stamp: u16, echo: u16, hold: u8, rx: u32) -> [u8; PATH_REPORT_LEN] {
        let mut b = [0u8; PATH_REPORT_LEN];
        emit(
            &mut b,
            &ReportFields {
                rx_at_echo: rx,
                stamp,
                echo,
                hold,
            },
        );
        b
    }

    fn hear(p: &mut PathState, b: &[u8; PATH_REPORT_LEN], now: Instant, clock: &StampClock) {
        let r = PathReport::new_checked(&b[..]).unwrap();
        p.on_report(&r, now, clock, 0);
    }

    #[test]
    fn reports_once_answered_and_echo() {
        let clock = StampClock::new();
        let t0 = clock.epoch;
        let mut p = PathState::default();
        // Nothing due before the far end answers (the hello went at join).
        assert_eq!(p.report_due(), None);
        let f = p.report(t0, &clock);
        assert_eq!(f, hello(t0, &clock));
        assert_eq!((f.hold, f.rx_at_echo), (NO_ECHO, 0));
        assert_eq!(p.report_due(), None);
        let t1 = t0 + Duration::from_millis(3);
        hear(&mut p, &report(500, 0, NO_ECHO, 0), t1, &clock);
        assert!(p.answered());
        // Answered at once, then every REPORT_EVERY.
        assert_eq!(p.report_due(), Some(t1));
        let t2 = t1 + Duration::from_millis(7);
        let f = p.report(t2, &clock);
        assert_eq!((f.echo, f.hold, f.stamp), (500, 7, 10));
        assert_eq!(p.report_due(), Some(t2 + REPORT_EVERY));
    }

    #[test]
    fn alike_paths() {
        let p = |rtt_ms: u64, mbit: u64| PathState {
            base_rtt_us: rtt_ms * 1000,
            rate: mbit * 125_000,
            ..PathState::default()
        };
        assert!(p(10, 40).alike(&p(12, 30)));
        assert!(!p(10, 40).alike(&p(50, 15)));
        assert!(!p(10, 40).alike(&p(10, 15)));
        assert!(!p(10, 40).alike(&p(20, 40)));
    }

    #[test]
    fn a_path_back_from_dark_is_dealt_to_once_the_far_end_hears_us() {
        let clock = StampClock::new();
        let t0 = clock.epoch;
        let ms = Duration::from_millis;
        let mut p = PathState::default();
        hear(&mut p, &report(1000, 0, 4, 0), t0 + ms(30), &clock);
        assert!(p.dealable(t0 + ms(30)));
        // Dark for 5 s, then the far end's report comes again, echoing
        // what it heard of us before: our way is not known to work.
        let back = t0 + ms(5_030);
        assert!(!p.dealable(back));
        hear(&mut p, &report(6000, 20, 4, 0), back, &clock);
        assert!(!p.silent(back) && !p.dealable(back));
        // An echo of a stamp of ours from before it came back: still not.
        hear(&mut p, &report(6020, 5_000, 4, 0), back + ms(20), &clock);
        assert!(!p.dealable(back + ms(20)));
        // An echo of one sent since: it is.
        hear(&mut p, &report(6040, 5_040, 4, 0), back + ms(60), &clock);
        assert!(p.dealable(back + ms(60)));
    }

    #[test]
    fn a_sparse_frame_goes_last_to_a_path_the_far_end_stopped_hearing_us_on() {
        let clock = StampClock::new();
        let t0 = clock.epoch;
        let ms = Duration::from_millis;
        let mut p = PathState::default();
        hear(&mut p, &report(1000, 0, 4, 0), t0 + ms(10), &clock);
        // Ours went at 20 and 40 ms.
        p.report(t0 + ms(20), &clock);
        p.report(t0 + ms(40), &clock);
        // The far end heard our 20 and, 45 ms after, not yet our 40: that
        // one is 5 ms later than the 20 was (ours can wait in the node).
        hear(&mut p, &report(1060, 20, 45, 0), t0 + ms(70), &clock);
        let now = t0 + ms(70);
        assert_eq!(p.stalled(), None);
        assert_eq!(p.sparse_arrival(now, 100), p.arrival(now, 100));
        // 80 ms after: our 40 is 60 ms late.
        hear(&mut p, &report(1100, 20, 80, 0), t0 + ms(110), &clock);
        let now = t0 + ms(110);
        assert_eq!(p.stalled(), Some(20));
        assert!(p.sparse_arrival(now, 100) >= p.arrival(now, 100) + STALLED_LAST);
        // It heard our 40, and has had nothing later to wait for.
        hear(&mut p, &report(1120, 40, 70, 0), t0 + ms(130), &clock);
        assert_eq!(p.stalled(), None);
        let now = t0 + ms(130);
        assert_eq!(p.sparse_arrival(now, 100), p.arrival(now, 100));
    }

    #[test]
    fn round_trip_and_silence() {
        let clock = StampClock::new();
        let t0 = clock.epoch;
        let mut p = PathState::default();
        // Our stamp 0 came back 30 ms later, held 4 ms at the far end.
        let t = t0 + Duration::from_millis(30);
        hear(&mut p, &report(1000, 0, 4, 0), t, &clock);
        assert_eq!(p.srtt_us, 26_000);
        assert_eq!(p.base_rtt_us, 26_000);
        assert!(!p.silent(t + p.silent_after()));
        assert!(p.silent(t + p.silent_after() + Duration::from_millis(1)));
        assert!(p.silent_after() >= SILENT_MIN && p.silent_after() <= SILENT_MAX);
    }

    #[test]
    fn arrival_orders_near_before_far_and_queues_push_back() {
        let clock = StampClock::new();
        let now = clock.epoch;
        let mut near = PathState {
            srtt_us: 10_000,
            rate: 5_000_000,
            ..PathState::default()
        };
        let far = PathState {
            srtt_us: 50_000,
            rate: 2_000_000,
            ..PathState::default()
        };
        assert!(near.arrival(now, 1500) < far.arrival(now, 1500));
        // 20 ms of frames on the near cable: the far one arrives first now.
        while near.queued(now) < Duration::from_millis(21) {
            near.take(now, 1500);
        }
        assert!(near.arrival(now, 1500) > far.arrival(now, 1500));
    }

    #[test]
    fn a_report_sets_the_queue_that_stands_now() {
        let clock = StampClock::new();
        let t0 = clock.epoch;
        let ms = Duration::from_millis;
        // 1 MB/s; the least round trip 10 ms.
        let mut p = PathState {
            rate: 1_000_000,
            base_rtt_us: 10_000,
            last_heard: Some(t0),
            ..PathState::default()
        };
        // A report goes at 0 ms, then 20 kB (20 ms at the rate) is dealt.
        let f = p.report(t0, &clock);
        for _ in 0..20 {
            p.take(t0, 1000);
        }
        assert_eq!(p.queued(t0), ms(20));
        // It comes back at 30 ms, held 2 ms by the far end: a round trip of
        // 28 ms, so it found 18 ms queued; 20 ms more came behind it, and
        // 30 ms went by: 8 ms stand now (the virtual queue said none).
        let t = t0 + ms(30);
        assert_eq!(p.queued(t), ms(0));
        hear(&mut p, &report(500, f.stamp, 2, 0), t, &clock);
        assert_eq!(p.queued(t), ms(8));
        // One that found no queue, with nothing dealt since: none stands.
        let f = p.report(t, &clock);
        let t = t + ms(12);
        hear(&mut p, &report(520, f.stamp, 1, 0), t, &clock);
        assert_eq!(p.queued(t), ms(0));
        // A report the node has no mark for (too old) changes nothing.
        p.take(t, 5000);
        hear(
            &mut p,
            &report(540, f.stamp.wrapping_sub(7), 1, 0),
            t,
            &clock,
        );
        assert_eq!(p.queued(t), ms(5));
    }

    #[test]
    fn dense_flows_find_a_short_queue_on_the_nearest_paths() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let p = |rtt_ms: u64| PathState {
            base_rtt_us: rtt_ms * 1000,
            rate: 5_000_000,
            ..PathState::default()
        };
        let (near, alike, far) = (p(10), p(13), p(50));
        assert_eq!(near.queue_cap(ms(10)), QUEUE_TARGET);
        assert_eq!(alike.queue_cap(ms(10)), QUEUE_TARGET);
        assert_eq!(far.queue_cap(ms(10)), FAR_QUEUE_TARGET);
        // 12 ms of frames: back within 5 ms in 7 ms, within 20 ms now.
        let mut near = near;
        while near.queued(now) < ms(12) {
            near.take(now, 1500);
        }
        let over = near.queued(now) - ms(12);
        assert_eq!(
            near.backlog_ends(now, QUEUE_TARGET),
            Some(now + ms(7) + over)
        );
        assert_eq!(near.backlog_ends(now, FAR_QUEUE_TARGET), None);
    }

    /// A new cable's path of least round trip `base_rtt_us`, with no
    /// queue on it.
    fn path_of(base_rtt_us: u64) -> PathState {
        PathState {
            base_rtt_us,
            srtt_us: base_rtt_us + 1_000,
            ..PathState::default()
        }
    }

    /// One delivery sample of `delivered` bytes/s, 100 ms after the last,
    /// of a cable that was offered its rate over them (`busy`) or nothing.
    fn sample(p: &mut PathState, t: &mut Instant, delivered: u64, busy: bool) {
        p.offered_since = Some(*t);
        *t += Duration::from_millis(100);
        p.offered = if busy { p.rate / 10 } else { 0 };
        p.adjust(delivered, *t);
    }

    #[test]
    fn start_grows_by_half_then_probes_an_eighth_and_a_full_path_drains() {
        let mut t = Instant::now();
        let mut p = path_of(50_000);
        // Next to nothing (an idle cable): says nothing.
        sample(&mut p, &mut t, 20_000, true);
        assert_eq!((p.rate, p.bandwidth()), (START_RATE, 0));
        // Starting: half again the best sample, while samples grow by a
        // quarter; the best but one (a single burst is not the path's).
        sample(&mut p, &mut t, 2_000_000, true);
        assert_eq!(p.rate, 3_000_000);
        sample(&mut p, &mut t, 3_800_000, true);
        assert_eq!(p.rate, 3_000_000);
        sample(&mut p, &mut t, 3_800_000, true);
        assert_eq!(p.rate, 5_700_000);
        // 300 ms (three samples) without growth: the start is over. Then an
        // eighth more than the bandwidth, the median of the samples (2,
        // 3.8, 3.8, 4, 4: the same again is no news).
        for _ in 0..3 {
            sample(&mut p, &mut t, 4_000_000, true);
        }
        assert!(!p.starting);
        sample(&mut p, &mut t, 3_700_000, true);
        assert_eq!(p.rate, 4_275_000);
        // Less delivered with no queue on the path, or by a cable given
        // little: it was given less than it can carry. Nothing changes.
        sample(&mut p, &mut t, 2_000_000, true);
        p.span_rtt_us = Some(80_000);
        sample(&mut p, &mut t, 10_000, false);
        assert_eq!(p.rate, 4_275_000);
        // Offered enough, and a queue on the path: it is full, what it
        // delivered counts, and the virtual queue drains an eighth below it.
        for _ in 0..SAMPLES {
            p.span_rtt_us = Some(80_000);
            sample(&mut p, &mut t, 3_200_000, true);
        }
        assert_eq!(p.rate, 2_800_000);
    }

    #[test]
    fn a_start_ends_only_on_a_plateau_of_a_cable_pushed_for_more() {
        let mut t = Instant::now();
        let mut p = path_of(50_000);
        sample(&mut p, &mut t, 2_000_000, true);
        sample(&mut p, &mut t, 2_000_000, true);
        assert_eq!(p.rate, 3_000_000);
        // Given only what it delivers (a nearer path takes the rest), with
        // no queue on it: a second without growth is no plateau.
        for _ in 0..10 {
            p.offered_since = Some(t);
            t += Duration::from_millis(100);
            p.offered = 200_000;
            p.adjust(2_000_000, t);
        }
        assert!(p.starting);
        // Dealt half again, and no more delivered: 300 ms of that is.
        for _ in 0..3 {
            sample(&mut p, &mut t, 2_000_000, true);
        }
        assert!(!p.starting);
        assert_eq!(p.rate, 2_250_000);
    }

    #[test]
    fn a_near_path_starts_at_twice_its_bandwidth() {
        let mut t = Instant::now();
        let mut p = path_of(NEAR_RTT_US);
        sample(&mut p, &mut t, 2_000_000, true);
        sample(&mut p, &mut t, 2_000_000, true);
        assert_eq!(p.rate, 4_000_000);
    }

    #[test]
    fn a_burst_of_what_waited_is_not_the_paths_bandwidth() {
        let mut t = Instant::now();
        let mut p = PathState {
            base_rtt_us: 50_000,
            srtt_us: 60_000,
            starting: false,
            ..PathState::default()
        };
        p.record(1_600_000);
        p.rate = 1_800_000;
        // An ssh connection that held frames behind a lost segment hands
        // them over at once: twice what it was offered. Not its path's.
        sample(&mut p, &mut t, 3_600_000, true);
        assert_eq!(p.bandwidth(), 1_600_000);
        // More than known, and no more than it was offered: it can that.
        sample(&mut p, &mut t, 1_750_000, true);
        sample(&mut p, &mut t, 1_750_000, true);
        assert_eq!(p.bandwidth(), 1_750_000);
    }

    #[test]
    fn delivery_samples_use_the_far_clock() {
        let clock = StampClock::new();
        let t0 = clock.epoch;
        let mut p = PathState::default();
        // Far clock 1000 then 1200 (200 ms), 500 kB received between:
        // 2.5 MB/s delivered by a cable offered nothing (from our side):
        // it can do at least that (and while starting on a near path, 8 ms
        // here, twice as much).
        hear(
            &mut p,
            &report(1002, 0, 2, 0),
            t0 + Duration::from_millis(10),
            &clock,
        );
        hear(
            &mut p,
            &report(1203, 20, 3, 500_000),
            t0 + Duration::from_millis(30),
            &clock,
        );
        assert_eq!((p.bandwidth(), p.rate), (2_500_000, 5_000_000));
    }

    #[test]
    fn a_starting_cable_is_sampled_at_every_report() {
        let clock = StampClock::new();
        let t0 = clock.epoch;
        let ms = Duration::from_millis;
        let mut p = PathState::default();
        // Our stamps reached the far end at 1000 and 1020 by its clock, and
        // it received 25 kB between: 1.25 MB/s, a sample at once.
        hear(&mut p, &report(1002, 0, 2, 0), t0 + ms(10), &clock);
        hear(&mut p, &report(1022, 20, 2, 25_000), t0 + ms(30), &clock);
        assert_eq!(p.bandwidth(), 1_250_000);
        // Once started, 20 ms is too short a span to say anything: the
        // next sample spans 100 ms (of a cable dealt as much as it delivers).
        p.starting = false;
        hear(&mut p, &report(1042, 40, 2, 75_000), t0 + ms(50), &clock);
        assert_eq!(p.next_sample, 1);
        p.take(t0 + ms(60), 200_000);
        hear(&mut p, &report(1122, 120, 2, 225_000), t0 + ms(130), &clock);
        assert_eq!((p.next_sample, p.bandwidth()), (2, 2_000_000));
    }
}
