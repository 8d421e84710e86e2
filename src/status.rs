//! Live status of a running node: `vde_plug_rs --status PATH`.
//!
//! Every node of ours listens on `PATH/status` (same owner, group and mode
//! as `ctl`: whoever cannot join cannot look either). A client connects and
//! reads one answer, then the node closes the connection:
//!
//! ```text
//! vde_plug_rs status 2
//! node<TAB>bonding:///tmp/vm1
//! kind<TAB>bonding
//! policy<TAB>adaptive
//! host<TAB>stdin/stdout
//! link<TAB>LABEL<TAB>FULL_NOW<TAB>10 counters (stats::COLUMNS)<TAB>AGE_S<TAB>DESCRIPTION
//! fig<TAB>SECTION<TAB>NAME<TAB>UNIT<TAB>VALUE<TAB>LOSS   (the link's figures, 0 or more)
//! end
//! ```
//!
//! The first `link` row is the node's host side, the others its cables.
//! The client prints it as a table ([`Status::table`]) or as JSON
//! ([`Status::json`], its schema in vde_plug_rs(1), COUNTERS).

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::figures::Figures;
pub use crate::stats::Row as StatusRow;
use crate::stats::{self, StatsTable, AGE_S, COLUMNS, NUMBERS};
use crate::sys;

/// The name of the status socket in a node directory.
pub const STATUS_SOCKET: &str = "status";
const MAGIC_LINE: &str = "vde_plug_rs status 2";

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
    let mut table = StatsTable::new();
    fill(&mut table);
    let _ = sys::write(conn.as_raw_fd(), answer_text(header, &table).as_bytes());
}

/// The text of an answer: the header, then the table's rows.
fn answer_text(header: &StatusHeader, table: &StatsTable) -> String {
    let mut text = String::with_capacity(256 + 160 * table.rows().len());
    let _ = write!(
        text,
        "{MAGIC_LINE}\nnode\t{}\nkind\t{}\npolicy\t{}\nhost\t{}\n",
        header.node, header.kind, header.policy, header.host,
    );
    let clean = |t: &str| t.trim().replace(['\t', '\n', '\r'], " ");
    for row in table.rows() {
        let full = u8::from(row.full_now == Some(true));
        let _ = write!(text, "link\t{}\t{full}", clean(&row.link));
        for v in row.counters {
            let _ = write!(text, "\t{v}");
        }
        let _ = writeln!(text, "\t{}", clean(&row.description));
        row.figures.to_wire(&mut text);
    }
    text.push_str("end\n");
    text
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
                "fig" if st.rows.last_mut()?.figures.push_wire(rest) => {}
                "fig" => return None,
                "end" => return Some(st),
                _ => {}
            }
        }
        None
    }

    /// Frames the node lost, all links together.
    pub fn lost(&self) -> u64 {
        self.rows.iter().map(StatusRow::lost).sum()
    }

    /// The answer as a table for people, and a line that says what was
    /// lost; with `rates`, per-second figures from the previous answer
    /// `dt` ago replace the totals of frames and bytes.
    pub fn table(&self, rates: Option<(&Status, Duration)>) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}  kind {}  policy {}  host {}",
            self.node, self.kind, self.policy, self.host
        );
        let mut heads: [&str; NUMBERS] =
            std::array::from_fn(|i| COLUMNS.get(i).map_or(AGE_S, |c| c.name));
        let mut rows = self.rows.clone();
        if let Some((before, dt)) = rates {
            heads[..4].copy_from_slice(&["fps_in", "Bps_in", "fps_out", "Bps_out"]);
            let secs = dt.as_secs_f64().max(1e-3);
            for row in &mut rows {
                let old = before.rows.iter().find(|r| r.link == row.link);
                for (i, v) in row.counters.iter_mut().enumerate().take(4) {
                    let was = old.map_or(0, |o| o.counters[i]);
                    *v = (v.saturating_sub(was) as f64 / secs).round() as u64;
                }
            }
        }
        out.push_str(&stats::render(&rows, &heads, true));
        out.push_str(&stats::loss_line(&self.rows));
        out
    }

    /// The answer as one JSON object, for scripts: every counter and figure
    /// a field of its own (schema: vde_plug_rs(1), COUNTERS).
    pub fn json(&self) -> String {
        let mut out = format!(
            "{{\"node\":{},\"kind\":{},\"policy\":{},\"host\":{},\"lost\":{},\"links\":[",
            json_str(&self.node),
            json_str(&self.kind),
            json_str(&self.policy),
            json_str(&self.host),
            self.lost()
        );
        for (i, row) in self.rows.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let port = row
                .link
                .strip_prefix("port ")
                .and_then(|n| n.parse::<u64>().ok())
                .map_or("null".to_string(), |n| n.to_string());
            let _ = write!(
                out,
                "{{\"link\":{},\"port\":{port},\"full_now\":{}",
                json_str(&row.link),
                row.full_now == Some(true)
            );
            let names = COLUMNS.iter().map(|c| c.name).chain([AGE_S]);
            for (name, v) in names.zip(row.counters) {
                let _ = write!(out, ",\"{name}\":{v}");
            }
            let _ = write!(
                out,
                ",\"lost\":{},\"description\":{}",
                row.lost(),
                json_str(&row.description)
            );
            json_figures(&row.figures, &mut out);
            out.push('}');
        }
        out.push_str("]}");
        out
    }
}

/// A link's figures as one object per section: `,"path":{"rate_bps":...}`.
fn json_figures(figures: &Figures, out: &mut String) {
    for (section, figs) in figures.sections() {
        let _ = write!(out, ",{}:{{", json_str(section));
        for (i, f) in figs.iter().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            let _ = write!(out, "{comma}{}:{}", json_str(&f.key()), f.json_value());
        }
        out.push('}');
    }
}

fn parse_row(rest: &str) -> Option<StatusRow> {
    let mut f = rest.splitn(NUMBERS + 3, '\t');
    let link = f.next()?.to_string();
    let full_now = f.next()? == "1";
    let mut counters = [0u64; NUMBERS];
    for c in counters.iter_mut() {
        *c = f.next()?.parse().ok()?;
    }
    Some(StatusRow {
        link,
        full_now: Some(full_now),
        counters,
        description: f.next().unwrap_or("").to_string(),
        figures: Figures::default(),
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
        let mut t = StatsTable::new();
        let mut s = LinkStats::default();
        s.count_in(100);
        s.count_out(60);
        s.drop_full = 3;
        t.row("host", &s, "")
            .figures
            .section("in_order")
            .count("held", 5)
            .loss("dropped", 1);
        let port = t.row("  port 2", &s, "vdeplug: user=0\tpid=7");
        port.full_now = Some(true);
        port.figures
            .section("path")
            .bit_rate("rate", 8_000_000)
            .micros("rtt", 1_500)
            .flag("silent", true);
        let header = StatusHeader {
            node: "bonding:///tmp/x",
            kind: "bonding",
            policy: "adaptive",
            host: "stdin/stdout",
        };
        answer_text(&header, &t)
    }

    #[test]
    fn answers_parse_back() {
        let st = Status::parse(&sample()).expect("parses");
        assert_eq!(st.kind, "bonding");
        assert_eq!(st.rows.len(), 2);
        assert_eq!(st.rows[1].link, "port 2");
        assert_eq!(st.rows[1].full_now, Some(true));
        assert_eq!(&st.rows[1].counters[..5], &[1, 100, 1, 60, 3]);
        assert_eq!(st.rows[1].description, "vdeplug: user=0 pid=7");
        assert_eq!(
            st.rows[0].figures.get("in_order", "held"),
            Some(crate::figures::Value::Count(5))
        );
        assert_eq!(st.lost(), 3 + 1 + 3);
        let json = st.json();
        assert!(json.starts_with(
            "{\"node\":\"bonding:///tmp/x\",\"kind\":\"bonding\",\"policy\":\"adaptive\",\"host\":\"stdin/stdout\",\"lost\":7,"
        ));
        assert!(
            json.contains("\"link\":\"port 2\",\"port\":2,\"full_now\":true,\"frames_in\":1,"),
            "{json}"
        );
        assert!(
            json.contains("\"path\":{\"rate_bps\":8000000,\"rtt_ms\":1.500,\"silent\":true}"),
            "{json}"
        );
        assert!(
            json.contains("\"in_order\":{\"held\":5,\"dropped\":1}"),
            "{json}"
        );
        let table = st.table(None);
        assert!(table.contains("port 2"), "{table}");
        assert!(
            table.contains("path: rate 8000 kbit/s, rtt 1.5 ms, silent"),
            "{table}"
        );
        assert!(
            table.ends_with("lost: 7 frames (drop_full 3 on host, in_order dropped 1 on host, drop_full 3 on port 2)"),
            "{table}"
        );
    }

    /// Every row's numbers end where the header's names do, however long
    /// a label is.
    #[test]
    fn long_labels_keep_the_columns_in_line() {
        let mut t = StatsTable::new();
        let mut s = LinkStats::default();
        s.count_in(1234);
        t.row("bonding:///a/very/long/path/of/a/node/indeed host", &s, "");
        t.row("  port 0", &LinkStats::default(), "d");
        let text = t.text();
        let lines: Vec<&str> = text.lines().collect();
        for head in ["frames_in", "bytes_in", "age_s"] {
            let end = lines[0].find(head).unwrap() + head.len();
            for l in &lines[1..] {
                let b = l.as_bytes();
                assert!(
                    b[end - 1].is_ascii_digit() && b[end] == b' ',
                    "{head}:\n{text}"
                );
            }
        }
    }

    #[test]
    fn cut_or_foreign_answers_are_refused() {
        let full = sample();
        for cut in [0, 5, full.len() / 2, full.len() - 4] {
            assert!(Status::parse(&full[..cut]).is_none(), "cut at {cut}");
        }
        assert!(Status::parse("hello\n").is_none());
        let bad_fig = full.replace("\tus\t", "\tfurlongs\t");
        assert!(Status::parse(&bad_fig).is_none());
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
