//! Per-link counters, cheap enough to bump for every frame; the counters
//! table made of them, for people (the log: SIGUSR1, `--stats`; and
//! `--status`). What each column means: vde_plug_rs(1), COUNTERS.

use std::fmt::Write;
use std::time::Instant;

use crate::figures::Figures;

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

/// One counter column: its name (the same in the tables and the JSON),
/// whether what it counts is lost, and its value in a [`LinkStats`].
pub struct Column {
    pub name: &'static str,
    pub loss: bool,
    get: fn(&LinkStats) -> u64,
}

/// The counters of a row, in the order of the tables and of the status
/// socket; a row's last number is [`AGE_S`].
pub const COLUMNS: [Column; 10] = [
    col("frames_in", false, |s| s.frames_in),
    col("bytes_in", false, |s| s.bytes_in),
    col("frames_out", false, |s| s.frames_out),
    col("bytes_out", false, |s| s.bytes_out),
    col("drop_full", true, |s| s.drop_full),
    col("runt", true, |s| s.drop_runt),
    col("oversize", true, |s| s.drop_oversize),
    col("nocable", true, |s| s.drop_nocable),
    col("skipped", false, |s| s.skipped),
    col("dup", false, |s| s.drop_dup),
];

const fn col(name: &'static str, loss: bool, get: fn(&LinkStats) -> u64) -> Column {
    Column { name, loss, get }
}

/// The name of a row's last number: seconds since the link joined.
pub const AGE_S: &str = "age_s";
/// How many numbers a row has: the columns, then its age.
pub const NUMBERS: usize = COLUMNS.len() + 1;

/// One row of the counters table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `host`, `port N`, or an endpoint's label.
    pub link: String,
    /// Whether the link cannot take a frame right now, where that is known.
    pub full_now: Option<bool>,
    /// The values of [`COLUMNS`], then the age in seconds.
    pub counters: [u64; NUMBERS],
    pub description: String,
    /// What the node's kind says of the link besides.
    pub figures: Figures,
}

impl Row {
    pub fn new(link: &str, s: &LinkStats, description: &str) -> Row {
        let mut counters = [0; NUMBERS];
        for (c, col) in counters.iter_mut().zip(&COLUMNS) {
            *c = (col.get)(s);
        }
        counters[NUMBERS - 1] = s.since.elapsed().as_secs();
        Row {
            link: link.to_string(),
            full_now: None,
            counters,
            description: description.to_string(),
            figures: Figures::default(),
        }
    }

    /// The value of the column named `name`.
    pub fn counter(&self, name: &str) -> Option<u64> {
        let at = COLUMNS.iter().position(|c| c.name == name)?;
        Some(self.counters[at])
    }

    /// Frames this link lost: its loss columns and its kind's loss figures.
    pub fn lost(&self) -> u64 {
        self.losses().map(|(_, n)| n).sum()
    }

    /// Each loss counter and figure that is not zero, by name.
    fn losses(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        let columns = COLUMNS
            .iter()
            .zip(self.counters)
            .filter(|(c, _)| c.loss)
            .map(|(c, n)| (c.name.to_string(), n));
        let figures = self.figures.iter().filter(|f| f.loss).map(|f| {
            (
                format!("{} {}", f.section, f.name),
                f.value.number().unwrap_or(0),
            )
        });
        columns.chain(figures).filter(|(_, n)| *n > 0)
    }
}

/// The rows of a counters table, as the endpoints give them.
#[derive(Default)]
pub struct StatsTable {
    rows: Vec<Row>,
}

impl StatsTable {
    pub fn new() -> Self {
        StatsTable::default()
    }

    /// Adds a row; what the caller knows besides (whether the link is full
    /// now, its kind's figures) goes into the row it gets back.
    pub fn row(&mut self, link: &str, s: &LinkStats, description: &str) -> &mut Row {
        self.rows.push(Row::new(link, s, description));
        self.rows.last_mut().expect("just pushed")
    }

    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The table for the log: a header, a row per link.
    pub fn text(&self) -> String {
        let heads: [&str; NUMBERS] =
            std::array::from_fn(|i| COLUMNS.get(i).map_or(AGE_S, |c| c.name));
        render(&self.rows, &heads, false)
    }
}

/// The rows as a table for people: the link, whether it is full now (with
/// `full_now`), the numbers under `heads`, then the description and the
/// kind's figures. Each column is as wide as its widest entry, so that a
/// long label (a node's path) pushes no column out of line.
pub fn render(rows: &[Row], heads: &[&str; NUMBERS], full_now: bool) -> String {
    let link_w = rows
        .iter()
        .map(|r| r.link.len())
        .chain([4])
        .max()
        .unwrap_or(4);
    let mut widths = heads.map(str::len);
    for r in rows {
        for (w, n) in widths.iter_mut().zip(r.counters) {
            *w = (*w).max(digits(n));
        }
    }
    let mut out = String::new();
    let _ = write!(out, "{:<link_w$}", "link");
    if full_now {
        out.push_str(" full_now");
    }
    for (h, w) in heads.iter().zip(widths) {
        let _ = write!(out, " {h:>w$}");
    }
    out.push_str("  description\n");
    for r in rows {
        let _ = write!(out, "{:<link_w$}", r.link);
        if full_now {
            let now = if r.full_now == Some(true) { "yes" } else { "" };
            let _ = write!(out, " {now:>8}");
        }
        for (n, w) in r.counters.iter().zip(widths) {
            let _ = write!(out, " {n:>w$}");
        }
        let figures = r.figures.shown();
        let sep = if r.description.is_empty() || figures.is_empty() {
            ""
        } else {
            "  "
        };
        let _ = writeln!(out, "  {}{sep}{figures}", r.description);
    }
    out
}

fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// What the rows lost, in a line: `lost: none`, or `lost: 5 frames
/// (nocable 1 on host, drop_full 4 on port 0)`. Every other figure counts
/// no loss.
pub fn loss_line(rows: &[Row]) -> String {
    let parts: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.losses()
                .map(move |(what, n)| format!("{what} {n} on {}", r.link.trim()))
        })
        .collect();
    let total: u64 = rows.iter().map(Row::lost).sum();
    match total {
        0 => "lost: none".into(),
        1 => format!("lost: 1 frame ({})", parts.join(", ")),
        n => format!("lost: {n} frames ({})", parts.join(", ")),
    }
}
