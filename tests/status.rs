//! `--status PATH`: a running node's counters, asked from another process.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// The table's rows: link label, then the numbers (the `full` column of
/// "now" is left out), then the description.
fn rows(table: &str) -> Vec<(String, bool, Vec<u64>, String)> {
    table
        .lines()
        .skip(2)
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
        "\"link\":\"host\",\"full_now\":false,\"frames_in\":{n},"
    )));
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
