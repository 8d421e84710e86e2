//! Per-link counters, cheap enough to bump for every frame.

use std::fmt::Write;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct LinkStats {
    pub frames_in: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub bytes_out: u64,
    /// Frames dropped because the link could not take them.
    pub drop_full: u64,
    /// Frames shorter than an Ethernet header.
    pub drop_runt: u64,
    /// Frames longer than the largest VDE frame, or bad stream lengths.
    pub drop_oversize: u64,
    /// Host frames dropped because the node had no cable at all.
    pub drop_nocable: u64,
    /// Times a bonding cable was passed over because it was full.
    pub skipped: u64,
    /// Duplicates a multi node with `dedup=` kept from the host.
    pub drop_dup: u64,
    pub since: Instant,
}

impl Default for LinkStats {
    fn default() -> Self {
        LinkStats {
            frames_in: 0,
            bytes_in: 0,
            frames_out: 0,
            bytes_out: 0,
            drop_full: 0,
            drop_runt: 0,
            drop_oversize: 0,
            drop_nocable: 0,
            skipped: 0,
            drop_dup: 0,
            since: Instant::now(),
        }
    }
}

impl LinkStats {
    #[inline]
    pub fn count_in(&mut self, len: usize) {
        self.frames_in += 1;
        self.bytes_in += len as u64;
    }

    #[inline]
    pub fn count_out(&mut self, len: usize) {
        self.frames_out += 1;
        self.bytes_out += len as u64;
    }
}

/// Lets a log line about bad input through at most once a second, so a
/// flood of bad frames makes one line per burst, not one per frame.
#[derive(Default)]
pub struct LogThrottle {
    last: Option<Instant>,
}

impl LogThrottle {
    pub fn ready(&mut self) -> bool {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t).as_secs() < 1 => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

/// Collects the rows of the counters table: aligned text for the log
/// (SIGUSR1, `--stats`, exit), or one tab-separated line a row for
/// `--status` (see [`crate::status`]). Endpoints fill both the same way.
#[derive(Default)]
pub struct StatsTable {
    text: String,
    for_status: bool,
}

impl StatsTable {
    pub fn new() -> Self {
        let mut t = StatsTable::default();
        let _ = writeln!(
            t.text,
            "{:<28} {:>10} {:>12} {:>10} {:>12} {:>8} {:>6} {:>8} {:>7} {:>8} {:>6} {:>7}  description",
            "link", "frames_in", "bytes_in", "frames_out", "bytes_out", "full", "runt", "oversize", "nocable", "skipped", "dup", "age_s"
        );
        t
    }

    /// A table for a `--status` answer: no header, machine-readable rows.
    pub fn for_status() -> Self {
        StatsTable {
            text: String::new(),
            for_status: true,
        }
    }

    pub fn row(&mut self, link: &str, s: &LinkStats, description: &str) {
        self.link_row(link, s, description, false);
    }

    /// A row with whether the link is full right now (it cannot take a
    /// frame until the poll says it has room).
    pub fn link_row(&mut self, link: &str, s: &LinkStats, description: &str, full_now: bool) {
        let c = [
            s.frames_in,
            s.bytes_in,
            s.frames_out,
            s.bytes_out,
            s.drop_full,
            s.drop_runt,
            s.drop_oversize,
            s.drop_nocable,
            s.skipped,
            s.drop_dup,
            s.since.elapsed().as_secs(),
        ];
        if self.for_status {
            let clean = |t: &str| t.trim().replace(['\t', '\n', '\r'], " ");
            let _ = write!(self.text, "link\t{}\t{}", clean(link), u8::from(full_now));
            for v in c {
                let _ = write!(self.text, "\t{v}");
            }
            let _ = writeln!(self.text, "\t{}", clean(description));
            return;
        }
        let _ = writeln!(
            self.text,
            "{:<28} {:>10} {:>12} {:>10} {:>12} {:>8} {:>6} {:>8} {:>7} {:>8} {:>6} {:>7}  {}",
            link, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], description
        );
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}
