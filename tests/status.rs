//! `--status PATH`: a running node's counters, asked from another process.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vde_plug_rs::figures::Value;

/// Runs `prog --status ARGS...` to its end: exit code, stdout, stderr.
fn status_of(prog: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(prog)
        .arg("--status")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The table's rows: link label, whether it is full now, the numbers,
/// then the description; up to the line that says what was lost.
fn rows(table: &str) -> Vec<(String, bool, Vec<u64>, String)> {
    table
        .lines()
        .skip(2)
        .take_while(|l| !l.starts_with("lost: "))
        .map(|l| {
            let label_end = if l.starts_with("port ") { 2 } else { 1 };
            let toks: Vec<&str> = l.split_whitespace().collect();
            let mut at = label_end;
            let full_now = toks[at] == "yes";
            at += usize::from(full_now);
            let nums: Vec<u64> = toks[at..at + 11]
                .iter()
                .map(|t| t.parse().unwrap())
                .collect();
            (
                toks[..label_end].join(" "),
                full_now,
                nums,
                toks[at + 11..].join(" "),
            )
        })
        .collect()
}

/// A bonding node with a C and a Rust cable: the status names the node,
/// its kind, policy and host side, and counts exactly what went where;
/// the JSON form says the same; the node binaries ask the same way.
#[test]
fn status_shows_every_cable_and_counts_exactly() {
    require_c_reference();
    let t = Scratch::new("status");
    let node = t.path("b");
    let mut host = Plug::start_node(rs_plug(), &[&format!("bonding://{node}")]);
    let mut cables = vec![Plug::spawn(C_PLUG, &[&node])];
    wait_ports(&node, 1);
    cables.push(Plug::spawn(rs_plug(), &[&node]));
    wait_ports(&node, 2);
    let n = 100u32;
    for s in 0..n {
        host.send(&frame(1, s, 64));
    }
    let deadline = Instant::now() + PATIENCE;
    while cables
        .iter_mut()
        .map(|c| c.collect(Duration::from_millis(2)))
        .sum::<usize>()
        < n as usize
    {
        assert!(
            Instant::now() < deadline,
            "host frames never reached the cables"
        );
    }
    cables[0].send(&frame(2, 0, 70));
    host.wait_frames(1);

    let (code, table, err) = status_of(rs_plug(), &[&node]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        table.starts_with(&format!(
            "bonding://{node}  kind bonding  policy path  host stream stdin/stdout"
        )),
        "{table}"
    );
    let r = rows(&table);
    assert_eq!(r.len(), 3, "{table}");
    assert_eq!(r[0].0, "host");
    assert_eq!(
        (r[0].2[0], r[0].2[2]),
        (n as u64, 1),
        "host in/out: {table}"
    );
    let ports = &r[1..];
    assert!(ports.iter().all(|p| p.0.starts_with("port ")));
    assert_eq!(
        ports.iter().map(|p| p.2[2]).sum::<u64>(),
        n as u64,
        "{table}"
    );
    assert_eq!(ports.iter().map(|p| p.2[0]).sum::<u64>(), 1, "{table}");
    for c in &cables {
        assert!(
            ports
                .iter()
                .any(|p| p.3.contains(&format!("pid={}", c.pid()))),
            "cable {} not described: {table}",
            c.pid()
        );
    }

    let (code, json, err) = status_of(bonding_node(), &[&format!("bonding://{node}"), "--json"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(json.starts_with(&format!(
        "{{\"node\":\"bonding://{node}\",\"kind\":\"bonding\",\"policy\":\"path\""
    )));
    assert_eq!(json.matches("\"link\":").count(), 3, "{json}");
    assert!(json.contains(&format!(
        "\"link\":\"host\",\"port\":null,\"full_now\":false,\"frames_in\":{n},"
    )));
    assert!(table.trim_end().ends_with("lost: none"), "{table}");
}

/// A stopped cable is shown full, with what it skipped; the other carries on.
#[test]
fn status_shows_a_full_cable() {
    require_c_reference();
    let t = Scratch::new("statusfull");
    let node = t.path("b");
    let mut host = Plug::start_node(multi_node(), &[&node]);
    let cable = Plug::spawn(rs_plug(), &[&node]);
    wait_ports(&node, 1);
    cable.signal(libc::SIGSTOP);
    let deadline = Instant::now() + PATIENCE;
    let mut seq = 0;
    loop {
        for _ in 0..50 {
            host.send(&frame(1, seq, 300));
            seq += 1;
        }
        let (code, table, err) = status_of(rs_plug(), &[&node]);
        assert_eq!(code, Some(0), "{err}");
        assert!(table.contains("kind multi  policy -"), "{table}");
        if rows(&table)[1].1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stopped cable never showed full: {table}"
        );
    }
    cable.signal(libc::SIGCONT);
}

/// `--watch S` redraws every S seconds with rates; a C node or no node at
/// all is a clear error, exit 1.
#[test]
fn status_watch_and_errors() {
    require_c_reference();
    let t = Scratch::new("statuswatch");
    let node = t.path("h");
    let _host = Plug::start_node(rs_plug(), &[&format!("hub://{node}")]);
    let mut watch = Command::new(rs_plug())
        .args(["--status", &node, "--watch", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(watch.stdout.take().unwrap());
    let mut headers = 0;
    let deadline = Instant::now() + PATIENCE;
    while headers < 2 {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("two tables");
        if line.starts_with("link ") {
            headers += 1;
            let rates = line.contains("fps_in");
            assert_eq!(rates, headers == 2, "totals first, then rates: {line}");
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();

    let c_node = t.path("c");
    let _c = Plug::start_node(C_PLUG, &[&format!("hub://{c_node}")]);
    let (code, _, err) = status_of(rs_plug(), &[&c_node]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not a vde_plug_rs node"), "{err}");
    let (code, _, err) = status_of(rs_plug(), &[&t.path("none")]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no node there"), "{err}");
    let (code, _, err) = status_of(rs_plug(), &[&node, "--watch", "0"]);
    assert_eq!(code, Some(255), "{err}");
}

/// `--status --json` as its schema in vde_plug_rs(1) (COUNTERS) has it,
/// read by a JSON parser: two bonding nodes of ours joined by two cables
/// carry numbered frames from A's host to B's; every counter and figure is
/// a field of its own, numbers are numbers (rates in bit/s, round trips in
/// ms), `silent` a boolean, the in-order counters named; the counts are
/// exact, and the JSON says what the table says.
#[test]
fn status_json_has_every_figure_in_its_own_field() {
    let t = Scratch::new("statusjson");
    let (a, b) = (t.path("a"), t.path("b"));
    let mut host_a = Plug::start_node(rs_plug(), &[&format!("bonding://{a}")]);
    let mut host_b = Plug::start_node(rs_plug(), &[&format!("bonding://{b}")]);
    let _cables: Vec<Plug> = ["c1", "c2"]
        .iter()
        .map(|d| Plug::spawn(rs_plug(), &["-D", d, &a, "=", rs_plug(), "-D", d, &b]))
        .collect();
    wait_ports(&a, 2);
    wait_ports(&b, 2);
    // The far ends answer (path figures at A) and numbered frames come (in
    // order figures at B); then a last batch, counted exactly.
    let answered = |dir: &str, section: &str, links: usize| {
        node_status(dir)
            .rows
            .iter()
            .filter(|r| r.figures.iter().any(|f| f.section == section))
            .count()
            == links
    };
    let deadline = Instant::now() + PATIENCE;
    let mut sent = 0u32;
    while !(answered(&a, "path", 2) && answered(&b, "in_order", 1)) {
        assert!(Instant::now() < deadline, "{:?}", node_status(&a));
        host_a.send(&frame(1, sent, 200));
        sent += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..200 {
        host_a.send(&frame(1, sent, 200));
        sent += 1;
    }
    host_b.wait_frames(sent as usize);

    for (dir, section) in [(&a, "path"), (&b, "in_order")] {
        let (code, out, err) = status_of(rs_plug(), &[dir, "--json"]);
        assert_eq!(code, Some(0), "{err}");
        let doc = Json::parse(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(
            doc.keys(),
            ["node", "kind", "policy", "host", "lost", "links"],
            "{out}"
        );
        assert_eq!(
            doc.get("node").unwrap().as_str(),
            Some(&*format!("bonding://{dir}"))
        );
        assert_eq!(doc.get("kind").unwrap().as_str(), Some("bonding"));
        assert_eq!(doc.get("policy").unwrap().as_str(), Some("path"));
        assert_eq!(doc.get("lost").unwrap().as_u64(), Some(0), "{out}");
        let links = doc.get("links").unwrap().as_array().unwrap();
        assert_eq!(links.len(), 3, "{out}");
        let st = node_status(dir);
        for (link, row) in links.iter().zip(&st.rows) {
            let keys = link.keys();
            let counters = [
                "frames_in",
                "bytes_in",
                "frames_out",
                "bytes_out",
                "drop_full",
                "runt",
                "oversize",
                "nocable",
                "skipped",
                "dup",
                "age_s",
            ];
            let fixed: Vec<&str> = ["link", "port", "full_now"]
                .into_iter()
                .chain(counters)
                .chain(["lost", "description"])
                .collect();
            assert_eq!(&keys[..fixed.len()], &fixed[..], "{out}");
            assert_eq!(link.get("link").unwrap().as_str(), Some(row.link.as_str()));
            assert!(link.get("full_now").unwrap().as_bool().is_some());
            for name in counters.iter().chain(&["lost"]) {
                assert!(link.get(name).unwrap().as_u64().is_some(), "{name}: {out}");
            }
            assert_eq!(link.get("lost").unwrap().as_u64(), Some(0), "{out}");
            // Each figure of the node's answer is there with its type; the
            // counts after the last frame (in order) with their value too
            // (a path's figures move with every report).
            for f in row.figures.iter() {
                let sec = link
                    .get(&f.section)
                    .unwrap_or_else(|| panic!("{f:?}: {out}"));
                let v = sec.get(&f.key()).unwrap_or_else(|| panic!("{f:?}: {out}"));
                match f.value {
                    Value::Flag(_) => assert!(v.as_bool().is_some(), "{f:?}: {out}"),
                    Value::Micros(_) => assert!(v.as_f64().is_some(), "{f:?}: {out}"),
                    Value::Count(n) if f.section == "in_order" => {
                        assert_eq!(v.as_u64(), Some(n), "{f:?}: {out}")
                    }
                    _ => assert!(v.as_u64().is_some(), "{f:?}: {out}"),
                }
            }
            // Only the sections of its figures follow.
            assert_eq!(
                keys.len(),
                fixed.len() + row.figures.sections().len(),
                "{out}"
            );
        }
        let host = &links[0];
        assert_eq!(host.get("link").unwrap().as_str(), Some("host"));
        assert_eq!(host.get("port"), Some(&Json::Null));
        let ports = &links[1..];
        for p in ports {
            let id = p
                .get("link")
                .unwrap()
                .as_str()
                .unwrap()
                .strip_prefix("port ")
                .unwrap();
            assert_eq!(p.get("port").unwrap().as_u64(), Some(id.parse().unwrap()));
        }
        let sum = |name: &str| {
            ports
                .iter()
                .map(|p| p.get(name).unwrap().as_u64().unwrap())
                .sum::<u64>()
        };
        if section == "path" {
            assert_eq!(
                host.get("frames_in").unwrap().as_u64(),
                Some(u64::from(sent))
            );
            assert_eq!(sum("frames_out"), u64::from(sent), "{out}");
            for p in ports {
                let path = p.get("path").unwrap_or_else(|| panic!("{out}"));
                assert_eq!(
                    path.keys(),
                    ["rate_bps", "rtt_min_ms", "rtt_ms", "queue_ms", "silent"]
                );
                assert!(path.get("rate_bps").unwrap().as_u64().unwrap() > 0);
                assert!(path.get("rtt_ms").unwrap().as_f64().unwrap() >= 0.0);
                assert_eq!(path.get("silent").unwrap().as_bool(), Some(false), "{out}");
            }
        } else {
            assert_eq!(
                host.get("frames_out").unwrap().as_u64(),
                Some(u64::from(sent))
            );
            assert_eq!(sum("frames_in"), u64::from(sent), "{out}");
            let in_order = host.get("in_order").unwrap_or_else(|| panic!("{out}"));
            assert_eq!(
                in_order.keys(),
                [
                    "held",
                    "given_up",
                    "late",
                    "late_max_ms",
                    "dropped",
                    "out_of_turn",
                    "copies",
                    "ahead"
                ]
            );
            for name in [
                "held",
                "given_up",
                "late",
                "dropped",
                "out_of_turn",
                "copies",
                "ahead",
            ] {
                assert!(
                    in_order.get(name).unwrap().as_u64().is_some(),
                    "{name}: {out}"
                );
            }
            assert_eq!(in_order.get("dropped").unwrap().as_u64(), Some(0));
        }
        // The table says the same: nothing lost.
        let (_, table, _) = status_of(rs_plug(), &[dir]);
        assert!(table.trim_end().ends_with("lost: none"), "{table}");
    }
}
