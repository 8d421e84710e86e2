//! Live status of a running node: `vde_plug_rs --status PATH`.
//!
//! Every node of ours listens on `PATH/status` (same owner, group and mode
//! as `ctl`: whoever cannot join cannot look either). A client connects and
//! reads one answer, then the node closes the connection:
//!
//! ```text
//! vde_plug_rs status 1
//! node<TAB>bonding:///tmp/vm1
//! kind<TAB>bonding
//! policy<TAB>adaptive
//! host<TAB>stdin/stdout
//! link<TAB>LABEL<TAB>FULL_NOW<TAB>11 counters (as the SIGUSR1 table)<TAB>AGE_S<TAB>DESCRIPTION
//! ```
//!
//! The first `link` row is the node's host side, the others its cables.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::stats::StatsTable;
use crate::sys;

/// The name of the status socket in a node directory.
pub const STATUS_SOCKET: &str = "status";
const MAGIC_LINE: &str = "vde_plug_rs status 1";
/// The counters of a row, in the order of the wire and of the tables.
const COUNTERS: [&str; 11] = [
    "frames_in",
    "bytes_in",
    "frames_out",
    "bytes_out",
    "full",
    "runt",
    "oversize",
    "nocable",
    "skipped",
    "dup",
    "age_s",
];

/// What a node says of itself, before its rows.
pub struct StatusHeader<'a> {
    pub node: &'a str,
    pub kind: &'a str,
    pub policy: &'a str,
    pub host: &'a str,
}

/// Answers one status connection (accepted non-blocking): the header and
/// the rows `fill` writes. The answer goes out in one write, which a fresh
/// socket's buffer holds for thousands of cables; if it does not fit, the
/// client gets a cut answer and says so, and the loop never waits.
pub fn answer(
    conn: &std::os::fd::OwnedFd,
    header: &StatusHeader,
    fill: impl FnOnce(&mut StatsTable),
) {
    let mut table = StatsTable::for_status();
    fill(&mut table);
    let mut text = String::with_capacity(256 + table.text().len());
    let _ = write!(
        text,
        "{MAGIC_LINE}\nnode\t{}\nkind\t{}\npolicy\t{}\nhost\t{}\n{}end\n",
        header.node,
        header.kind,
        header.policy,
        header.host,
        table.text()
    );
    let _ = sys::write(conn.as_raw_fd(), text.as_bytes());
}

/// One row of a status answer.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRow {
    pub link: String,
    pub full_now: bool,
    pub counters: [u64; 11],
    pub description: String,
}

/// A parsed status answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub node: String,
    pub kind: String,
    pub policy: String,
    pub host: String,
    pub rows: Vec<StatusRow>,
}

impl Status {
    /// Parses an answer; `None` if it is not one (or was cut short).
    pub fn parse(text: &str) -> Option<Status> {
        let mut lines = text.lines();
        if lines.next()? != MAGIC_LINE {
            return None;
        }
        let mut st = Status {
            node: String::new(),
            kind: String::new(),
            policy: String::new(),
            host: String::new(),
            rows: Vec::new(),
        };
        for line in lines {
            let (key, rest) = line.split_once('\t').unwrap_or((line, ""));
            match key {
                "node" => st.node = rest.to_string(),
                "kind" => st.kind = rest.to_string(),
                "policy" => st.policy = rest.to_string(),
                "host" => st.host = rest.to_string(),
                "link" => st.rows.push(parse_row(rest)?),
                "end" => return Some(st),
                _ => {}
            }
        }
        None
    }

    /// The answer as a table for people; with `rates`, per-second figures
    /// from the previous answer `dt` ago replace the totals of frames and
    /// bytes.
    pub fn table(&self, rates: Option<(&Status, Duration)>) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}  kind {}  policy {}  host {}",
            self.node, self.kind, self.policy, self.host
        );
        let (fin, bin, fout, bout) = if rates.is_some() {
            ("fps_in", "Bps_in", "fps_out", "Bps_out")
        } else {
            ("frames_in", "bytes_in", "frames_out", "bytes_out")
        };
        let _ = writeln!(
            out,
            "{:<10} {:>4} {:>10} {:>12} {:>10} {:>12} {:>8} {:>6} {:>8} {:>7} {:>8} {:>6} {:>7}  description",
            "link", "full", fin, bin, fout, bout, "full", "runt", "oversize", "nocable", "skipped", "dup", "age_s"
        );
        for row in &self.rows {
            let mut c = row.counters;
            if let Some((before, dt)) = rates {
                let secs = dt.as_secs_f64().max(1e-3);
                let old = before.rows.iter().find(|r| r.link == row.link);
                for (i, v) in c.iter_mut().enumerate().take(4) {
                    let was = old.map_or(0, |o| o.counters[i]);
                    *v = (v.saturating_sub(was) as f64 / secs).round() as u64;
                }
            }
            let _ = writeln!(
                out,
                "{:<10} {:>4} {:>10} {:>12} {:>10} {:>12} {:>8} {:>6} {:>8} {:>7} {:>8} {:>6} {:>7}  {}",
                row.link,
                if row.full_now { "yes" } else { "" },
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10],
                row.description
            );
        }
        out
    }

    /// The answer as one JSON object, for scripts.
    pub fn json(&self) -> String {
        let mut out = format!(
            "{{\"node\":{},\"kind\":{},\"policy\":{},\"host\":{},\"links\":[",
            json_str(&self.node),
            json_str(&self.kind),
            json_str(&self.policy),
            json_str(&self.host)
        );
        for (i, row) in self.rows.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"link\":{},\"full_now\":{}",
                json_str(&row.link),
                row.full_now
            );
            for (name, v) in COUNTERS.iter().zip(row.counters) {
                let _ = write!(out, ",\"{name}\":{v}");
            }
            let _ = write!(out, ",\"description\":{}}}", json_str(&row.description));
        }
        out.push_str("]}");
        out
    }
}

fn parse_row(rest: &str) -> Option<StatusRow> {
    let mut f = rest.splitn(14, '\t');
    let link = f.next()?.to_string();
    let full_now = f.next()? == "1";
    let mut counters = [0u64; 11];
    for c in counters.iter_mut() {
        *c = f.next()?.parse().ok()?;
    }
    Some(StatusRow {
        link,
        full_now,
        counters,
        description: f.next().unwrap_or("").to_string(),
    })
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The node directory a `--status` argument names: a path, or a node
/// locator (`bonding:///tmp/vm1[mode=0666]`).
pub fn node_dir(arg: &str) -> PathBuf {
    let path = arg.split_once("://").map_or(arg, |(_, rest)| rest);
    let path = path.split_once('[').map_or(path, |(p, _)| p);
    PathBuf::from(path)
}

/// How long `--status` waits for a node's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the node at `dir` for its status. SIGINT, SIGTERM or SIGHUP cut
/// the wait short (an error; the signal stays pending for the caller).
pub fn fetch(dir: &Path) -> Result<Status, String> {
    let sock = dir.join(STATUS_SOCKET);
    let conn = sys::unix_socket(libc::SOCK_STREAM).map_err(|e| e.to_string())?;
    match sys::connect_any_length(&conn, &sock) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound && dir.join("ctl").exists() => {
            return Err(format!(
                "{}: not a vde_plug_rs node (it has no status socket: a C vde_plug node or a vde_switch?)",
                dir.display()
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!("{}: no node there", dir.display()))
        }
        Err(e) => return Err(format!("{}: {}", sock.display(), sys::describe(&e))),
    }
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match sys::read(conn.as_raw_fd(), &mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                match crate::signals::wait_fd(conn.as_raw_fd(), libc::POLLIN, left) {
                    Ok(true) => {}
                    Ok(false) => return Err(format!("{}: no answer", sock.display())),
                    Err(e) => return Err(format!("{}: {}", sock.display(), sys::describe(&e))),
                }
            }
            Err(e) => return Err(format!("{}: {}", sock.display(), sys::describe(&e))),
        }
    }
    Status::parse(&String::from_utf8_lossy(&text))
        .ok_or_else(|| format!("{}: an answer cut short or not understood", sock.display()))
}

/// What `--status` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRequest {
    pub node: String,
    pub json: bool,
    /// Redraw every this many seconds, with rates.
    pub watch: Option<u64>,
}

/// Runs `--status`: prints the node's table (or JSON) once, or every
/// `watch` seconds until SIGINT, SIGTERM or SIGHUP (which end it as they
/// end a plug) or until stdout is closed. Returns the exit status.
pub fn run(req: &StatusRequest) -> i32 {
    let dir = node_dir(&req.node);
    let tty = sys::is_tty(1);
    let mut before: Option<(Status, Instant)> = None;
    loop {
        let st = match fetch(&dir) {
            Ok(st) => st,
            Err(e) => {
                if let Some(sig) = crate::signals::ending_pending() {
                    crate::signals::die_by(sig);
                }
                eprintln!("vde_plug_rs: {e}");
                return 1;
            }
        };
        let now = Instant::now();
        let mut out = if req.json {
            st.json()
        } else {
            st.table(before.as_ref().map(|(b, t)| (b, now - *t)))
        };
        if tty && !req.json && req.watch.is_some() {
            out.insert_str(0, "\x1b[H\x1b[2J");
        }
        let mut stdout = io::stdout().lock();
        if writeln!(stdout, "{}", out.trim_end())
            .and_then(|()| stdout.flush())
            .is_err()
        {
            // The reader left (`| head`): nothing more to say.
            return 0;
        }
        let Some(every) = req.watch else {
            return 0;
        };
        before = Some((st, now));
        if crate::signals::wait_fd(-1, 0, Duration::from_secs(every)).is_err() {
            match crate::signals::ending_pending() {
                Some(sig) => crate::signals::die_by(sig),
                None => return 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::LinkStats;

    fn sample() -> String {
        let mut t = StatsTable::for_status();
        let mut s = LinkStats::default();
        s.count_in(100);
        s.count_out(60);
        s.drop_full = 3;
        t.row("host", &s, "");
        t.link_row("port 2", &s, "vdeplug: user=0\tpid=7", true);
        format!(
            "{MAGIC_LINE}\nnode\tbonding:///tmp/x\nkind\tbonding\npolicy\tadaptive\nhost\tstdin/stdout\n{}end\n",
            t.text()
        )
    }

    #[test]
    fn answers_parse_back() {
        let st = Status::parse(&sample()).expect("parses");
        assert_eq!(st.kind, "bonding");
        assert_eq!(st.rows.len(), 2);
        assert_eq!(st.rows[1].link, "port 2");
        assert!(st.rows[1].full_now);
        assert_eq!(&st.rows[1].counters[..5], &[1, 100, 1, 60, 3]);
        assert_eq!(st.rows[1].description, "vdeplug: user=0 pid=7");
        let json = st.json();
        assert!(json.starts_with("{\"node\":\"bonding:///tmp/x\",\"kind\":\"bonding\""));
        assert!(json.contains("\"link\":\"port 2\",\"full_now\":true,\"frames_in\":1,"));
        assert!(st.table(None).contains("port 2"));
    }

    #[test]
    fn cut_or_foreign_answers_are_refused() {
        let full = sample();
        for cut in [0, 5, full.len() / 2, full.len() - 4] {
            assert!(Status::parse(&full[..cut]).is_none(), "cut at {cut}");
        }
        assert!(Status::parse("hello\n").is_none());
    }

    #[test]
    fn node_dir_from_path_or_locator() {
        assert_eq!(node_dir("/tmp/vm1"), PathBuf::from("/tmp/vm1"));
        assert_eq!(
            node_dir("bonding:///tmp/vm1[mode=0666]"),
            PathBuf::from("/tmp/vm1")
        );
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
