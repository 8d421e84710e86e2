//! The multipath testbed of scripts/e2e-multipath, small: two bonding nodes
//! (ours, the default policy=path) in namespaces A and B, two ssh cables from A to
//! an sshd in B, each over its own path through a middle namespace that
//! delays it (scripts/delayline, built here if needed) and shapes it (tbf):
//! path 1 8 Mbit/s 5 ms, path 2 3 Mbit/s 25 ms, one way.
//!
//! The assertions are about shapes, not speeds: the fast cable carries at
//! least twice the slow one's frames; while path 1 is blackholed its cable
//! is left out and the bond answers over path 2; after it comes back it is
//! used again. Every wait is bounded and ends on a condition.
//!
//! Needs root, like tests/e2e.rs (whose set-up helpers it shares through
//! tests/netbed), and skips, saying so, without it.

mod common;
mod netbed;

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use netbed::*;

/// (rate in kbit/s, one-way delay in ms) of paths 1 and 2.
const PATHS: [(u32, u32); 2] = [(8000, 5), (3000, 25)];
const SSH_PORT: u16 = 2222;
/// Bound on waiting for a path to carry traffic again after a blackhole:
/// the ssh connection's TCP may be in retransmission back-off.
const REVIVAL: Duration = Duration::from_secs(60);

/// Builds scripts/delayline (its own crate) into TARGET/delayline and
/// returns the binary.
fn delayline() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| format!("{root}/target"));
    let target = if target.starts_with('/') {
        target
    } else {
        format!("{root}/{target}")
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(&cargo)
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(format!("{root}/scripts/delayline/Cargo.toml"))
        .env("CARGO_TARGET_DIR", format!("{target}/delayline"))
        .stdin(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cargo}: {e}"));
    assert!(st.success(), "building scripts/delayline failed");
    format!("{target}/delayline/release/delayline")
}

/// The testbed. Fields drop in order: cables, nodes, delay lines, sshd,
/// namespaces, scratch directory.
struct Bed {
    cables: Vec<Proc>,
    nodes: Vec<Proc>,
    relays: Vec<Proc>,
    sshd: Sshd,
    a: Netns,
    b: Netns,
    /// The middle namespaces, held for their Drop.
    _m: Vec<Netns>,
    t: Scratch,
}

impl Bed {
    /// The testbed with both bonding nodes and both cables up.
    fn bonded(name: &str) -> Bed {
        assert!(
            which("tc"),
            "tc is missing: install iproute2 (scripts/test installs it)"
        );
        let mut bed = Bed::new(name);
        bed.node(1, &[]);
        bed.node(2, &[]);
        bed.cable(1);
        bed.cable(2);
        bed
    }

    /// The bonded testbed once both cables' far ends answer (their rows
    /// show what each path carries).
    fn answering(name: &str) -> Bed {
        let bed = Bed::bonded(name);
        wait_until("both cables' far ends answering", || {
            (1..=2).all(|n| bed.cable_row(n).contains("path: "))
        });
        bed
    }

    fn new(name: &str) -> Bed {
        let delayline = delayline();
        let t = Scratch::new(name);
        let a = Netns::new("A");
        let b = Netns::new("B");
        let m = vec![Netns::new("M"), Netns::new("M")];
        let mut relays = Vec::new();
        for (i, &(kbit, ms)) in PATHS.iter().enumerate() {
            let n = i + 1;
            let mid = &m[i].name;
            let (p, ea, eb) = (format!("p{n}"), format!("a{n}"), format!("b{n}"));
            run(
                "ip",
                &[
                    "link", "add", &p, "netns", &a.name, "type", "veth", "peer", "name", &ea,
                    "netns", mid,
                ],
            );
            run(
                "ip",
                &[
                    "link", "add", &p, "netns", &b.name, "type", "veth", "peer", "name", &eb,
                    "netns", mid,
                ],
            );
            run(
                "ip",
                &[
                    "-n",
                    &a.name,
                    "addr",
                    "add",
                    &format!("198.18.{n}.1/24"),
                    "dev",
                    &p,
                ],
            );
            run(
                "ip",
                &[
                    "-n",
                    &b.name,
                    "addr",
                    "add",
                    &format!("198.18.{n}.2/24"),
                    "dev",
                    &p,
                ],
            );
            for e in [&ea, &eb] {
                run("ip", &["-n", mid, "link", "set", "dev", e, "promisc", "on"]);
                run("ip", &["-n", mid, "link", "set", "dev", e, "up"]);
                let rate = format!("{kbit}kbit");
                run(
                    "ip",
                    &[
                        "netns", "exec", mid, "tc", "qdisc", "replace", "dev", e, "root", "tbf",
                        "rate", &rate, "burst", "15140", "latency", "50ms",
                    ],
                );
            }
            run("ip", &["-n", &a.name, "link", "set", "dev", &p, "up"]);
            run("ip", &["-n", &b.name, "link", "set", "dev", &p, "up"]);
            let ready = t.path(&format!("relay{n}.ready"));
            let relay = Proc::spawn(
                &t,
                &format!("relay{n}"),
                "ip",
                &[
                    "netns",
                    "exec",
                    mid,
                    &delayline,
                    &ea,
                    &eb,
                    &ms.to_string(),
                    "--ready-file",
                    &ready,
                ],
            );
            wait_until(&format!("delay line {n} ready"), || {
                std::path::Path::new(&ready).exists()
            });
            relays.push(relay);
        }
        let sshd = Sshd::start_in(&t, &b, SSH_PORT, &a, "198.18.1.2");
        Bed {
            cables: Vec::new(),
            nodes: Vec::new(),
            relays,
            sshd,
            a,
            b,
            _m: m,
            t,
        }
    }

    fn vm(&self, side: usize) -> String {
        self.t.path(&format!("vm{side}"))
    }

    /// Our bonding node on tap://tap0 in A (side 1) or B (side 2).
    fn node(&mut self, side: usize, extra: &[&str]) {
        let (ns, addr) = if side == 1 {
            (&self.a, ADDR_A)
        } else {
            (&self.b, ADDR_B)
        };
        let path = self.vm(side);
        let mut args = vec![bonding_node()];
        args.extend(extra);
        args.extend([path.as_str(), "tap://tap0"]);
        let p = node_in(&self.t, &format!("node{side}"), ns, addr, &args);
        self.nodes.push(p);
    }

    /// Cable over path `n`, from A:
    /// `vde_plug_rs vm1 = ssh -b 198.18.n.1 root@198.18.n.2 vde_plug_rs vm2`.
    fn cable(&mut self, n: usize) {
        let (src, dst) = (format!("198.18.{n}.1"), format!("root@198.18.{n}.2"));
        let (vm1, vm2) = (self.vm(1), self.vm(2));
        let ssh = self.sshd.ssh_args();
        let mut args: Vec<&str> = vec!["netns", "exec", &self.a.name, rs_plug(), &vm1, "=", "ssh"];
        args.extend(ssh.iter().map(String::as_str));
        args.extend(["-b", &src, &dst, rs_plug(), &vm2]);
        let p = Proc::spawn(&self.t, &format!("cable{n}"), "ip", &args);
        self.cables.push(p);
        let want = self.cables.len();
        let deadline = Instant::now() + PATIENCE;
        while port_count(&vm1) != want || port_count(&vm2) != want {
            for c in &mut self.cables {
                c.assert_running();
            }
            assert!(
                Instant::now() < deadline,
                "cable {n} never joined both nodes"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Bytes A has sent into path `n` and received from it.
    fn path_bytes(&self, n: usize) -> (u64, u64) {
        let read = |what: &str| -> u64 {
            run(
                "ip",
                &[
                    "netns",
                    "exec",
                    &self.a.name,
                    "cat",
                    &format!("/sys/class/net/p{n}/statistics/{what}"),
                ],
            )
            .trim()
            .parse()
            .unwrap()
        };
        (read("tx_bytes"), read("rx_bytes"))
    }

    /// Frames node A has sent into the cable over path `n` (its counters
    /// table, SIGUSR1; the port is told by the plug's pid).
    fn cable_frames_out(&mut self, n: usize) -> u64 {
        let node = &self.nodes[0];
        let before = node.log().matches("link counters").count();
        signal(node.pid(), libc::SIGUSR1);
        let mut table = Vec::new();
        wait_until("the counters table", || {
            let log = node.log();
            let Some((_, last)) = log.rsplit_once("link counters") else {
                return false;
            };
            if log.matches("link counters").count() <= before {
                return false;
            }
            let Some(end) = last.find("\n\n") else {
                return false;
            };
            table = last[..end]
                .lines()
                .skip(2)
                .filter_map(parse_counter_row)
                .collect();
            true
        });
        let pid = self.cables[n - 1].pid();
        table
            .iter()
            .find(|r| r.link.starts_with("port ") && r.description.contains(&format!("pid={pid}")))
            .unwrap_or_else(|| panic!("no port of cable {n} (pid {pid}) in {table:#?}"))
            .frames_out
    }

    /// The `--status` row of cable `n` at node A (its description says
    /// what the path carries once the far end answers, and `silent`).
    fn cable_row(&self, n: usize) -> String {
        let pid = self.cables[n - 1].pid();
        node_status(&self.vm(1))
            .rows
            .into_iter()
            .find(|r| r.link.starts_with("port ") && r.description.contains(&format!("pid={pid}")))
            .map(|r| format!("{}  {}", r.description, r.figures.shown()))
            .unwrap_or_default()
    }

    /// Sends `len` bytes over TCP from A to a sink in B, to the end.
    fn tcp_send(&self, len: usize) {
        let got = tcp_transfer(&self.a.name, &self.b.name, ADDR_B, &vec![0x5a; len]);
        assert_eq!(got.len(), len, "bytes received by the sink");
    }

    fn blackhole(&self, n: usize, on: bool) {
        signal(
            self.relays[n - 1].pid(),
            if on { libc::SIGUSR1 } else { libc::SIGUSR2 },
        );
    }
}

/// Both cables' far ends answer (their rows show what each path carries);
/// with path 1 blackholed, cable 1 is marked silent and frames go to
/// cable 2 only, and the bond still answers pings; once path 1 is back,
/// cable 1 answers and carries frames again.
#[test]
fn a_blackholed_path_is_left_out_and_taken_back() {
    let Some(_lock) = ready("a_blackholed_path_is_left_out_and_taken_back") else {
        return;
    };
    let mut bed = Bed::answering("mp-blackhole");
    let (p1, p2) = (bed.path_bytes(1), bed.path_bytes(2));
    bed.tcp_send(1 << 20);
    let (q1, q2) = (bed.path_bytes(1), bed.path_bytes(2));
    assert!(
        q1.0 > p1.0 && q2.0 > p2.0,
        "path bytes sent {p1:?}->{q1:?}, {p2:?}->{q2:?}"
    );

    // Path 1 goes dark: cable 1 falls silent, and a transfer goes into
    // cable 2 alone.
    bed.blackhole(1, true);
    wait_until("cable 1 silent", || bed.cable_row(1).contains("silent"));
    let (f1, f2) = (bed.cable_frames_out(1), bed.cable_frames_out(2));
    bed.tcp_send(256 << 10);
    let (d1, d2) = (bed.cable_frames_out(1) - f1, bed.cable_frames_out(2) - f2);
    assert!(
        d1 == 0 && d2 > 0,
        "frames into the dark cable 1: {d1}, cable 2: {d2}"
    );
    let mut ping = LivePing::start(&bed.a, ADDR_B);
    ping.wait_replies(20);
    drop(ping);

    // Path 1 comes back: its ssh connection resumes (it may be in
    // retransmission back-off), cable 1 answers again, and new transfers
    // use it again, bounded by REVIVAL.
    bed.blackhole(1, false);
    let back = bed.path_bytes(1);
    let f1 = bed.cable_frames_out(1);
    let deadline = Instant::now() + REVIVAL;
    loop {
        bed.tcp_send(64 << 10);
        let d1 = bed.cable_frames_out(1) - f1;
        let now = bed.path_bytes(1);
        if d1 > 0 && now.0 > back.0 && now.1 > back.1 && !bed.cable_row(1).contains("silent") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{REVIVAL:?} after the blackhole: frames into cable 1 {d1}; \
             path 1 bytes {back:?} -> {now:?}; cable 1: {}",
            bed.cable_row(1)
        );
    }
    assert_eq!(port_count(&bed.vm(1)), 2, "a cable was lost");
}

/// Issue 10: on unequal paths (8 Mbit/s 5 ms + 3 Mbit/s 25 ms) the fast
/// cable carries at least twice the slow one's frames (the C module and
/// `policy=adaptive` deal them about evenly). Measured 2.4-2.7 times in
/// 4 MiB (their rates are 2.7 times); 2 MiB, much of it the flow's start,
/// gave 2.2-2.7 times here but under twice in two CI runs (879 against
/// 573, 962 against 490).
#[test]
fn fast_path_carries_at_least_twice_the_slow_ones_frames() {
    let Some(_lock) = ready("fast_path_carries_at_least_twice_the_slow_ones_frames") else {
        return;
    };
    let mut bed = Bed::answering("mp-unequal");
    let (f1, f2) = (bed.cable_frames_out(1), bed.cable_frames_out(2));
    bed.tcp_send(4 << 20);
    let (d1, d2) = (bed.cable_frames_out(1) - f1, bed.cable_frames_out(2) - f2);
    eprintln!("frames into the fast cable {d1}, the slow one {d2}");
    assert!(
        d1 >= 2 * d2,
        "frames into the fast cable {d1}, the slow one {d2}"
    );
}

/// Issue 10, part 2: datagrams sent faster than the fast path carries take
/// both cables, 20 ms apart, and still reach B's host in the order they
/// were sent: node B holds what overtook until its turn (`in_order` in its
/// `--status`), and a datagram arrives out of order only if node B counted
/// it late (never, on a machine that is not starved).
#[test]
fn frames_over_both_paths_arrive_in_the_order_sent() {
    let Some(_lock) = ready("frames_over_both_paths_arrive_in_the_order_sent") else {
        return;
    };
    const COUNT: u32 = 3000;
    const LEN: usize = 1000;
    let mut bed = Bed::answering("mp-order");
    let (f1, f2) = (bed.cable_frames_out(1), bed.cable_frames_out(2));
    let sink = in_netns(&bed.b.name, || UdpSocket::bind((ADDR_B, 0)).unwrap());
    let to = sink.local_addr().unwrap();
    let s = in_netns(&bed.a.name, || UdpSocket::bind((ADDR_A, 0)).unwrap());
    // A's kernel holds the first datagrams while it resolves B's address,
    // and may send one that came later before the rest of them (seen at
    // A's tap: 0, 1, 2, 70, 3): the order under test is the bond's, so one
    // datagram crosses before the count starts.
    const ACROSS: u32 = u32::MAX;
    sink.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    wait_until("a first datagram across the bond", || {
        s.send_to(&ACROSS.to_be_bytes(), to).unwrap();
        let mut b = [0u8; 4];
        sink.recv(&mut b)
            .is_ok_and(|n| n == 4 && u32::from_be_bytes(b) == ACROSS)
    });
    sink.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    // About 10 Mbit/s, more than path 1's 8: the overflow takes path 2.
    let sender = std::thread::spawn(move || {
        let start = Instant::now();
        for i in 0..COUNT {
            let mut d = [0u8; LEN];
            d[..4].copy_from_slice(&i.to_be_bytes());
            s.send_to(&d, to).unwrap();
            let due = start + Duration::from_micros(800) * (i + 1);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
    });
    let mut got = Vec::new();
    let mut buf = [0u8; LEN];
    // Until the last one, or the bond has been quiet for the read timeout.
    while let Ok(n) = sink.recv(&mut buf) {
        if n == 4 {
            continue; // a second datagram of the crossing above
        }
        assert_eq!(n, LEN);
        let i = u32::from_be_bytes(buf[..4].try_into().unwrap());
        got.push(i);
        if i == COUNT - 1 {
            break;
        }
    }
    sender.join().unwrap();
    let (d1, d2) = (bed.cable_frames_out(1) - f1, bed.cable_frames_out(2) - f2);
    let host = node_status(&bed.vm(2)).rows.remove(0).figures;
    let rows = |side| {
        node_status(&bed.vm(side))
            .rows
            .iter()
            .map(|r| format!("\n  {} {}  {}", r.link, r.description, r.figures.shown()))
            .collect::<String>()
    };
    eprintln!("A:{}\nB:{}", rows(1), rows(2));
    let out_of_order = got.windows(2).filter(|w| w[1] <= w[0]).count() as u64;
    // The in-order figures of B's host side (vde_plug_rs(1), COUNTERS).
    let count_of = |what: &str| -> u64 {
        host.get("in_order", what)
            .and_then(|v| v.number())
            .unwrap_or_else(|| panic!("no in_order {what} in {host:?}"))
    };
    let (held, late_or_out_of_turn) =
        (count_of("held"), count_of("late") + count_of("out_of_turn"));
    // Frames that overtook were held (so the cables did reorder them), and
    // the host saw a frame out of order only where node B had given up on
    // one that then came late, or counted one as sent out of its turn:
    // none on a machine that is not starved (a machine so busy that the
    // cables' processes wait their turn for seconds can make the node give
    // up).
    assert!(
        d1 > 0
            && d2 > 0
            && held > 0
            && out_of_order <= late_or_out_of_turn
            && got.len() as u32 > COUNT / 2,
        "received {} of {COUNT}, {out_of_order} out of order; frames into cable 1 {d1}, \
         cable 2 {d2}; node B: {host}",
        got.len()
    );
}

/// Round trips (ms) of `count` pings from `ns` to `addr`, 50 ms apart,
/// sorted (lost ones are left out).
fn ping_rtts(ns: &Netns, addr: &str, count: u32) -> Vec<f64> {
    let out = Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "ping", "-n", "-i", "0.05", "-W", "2",
        ])
        .args(["-c", &count.to_string(), addr])
        .stdin(Stdio::null())
        .output()
        .expect("ping runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rtts: Vec<f64> = text
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("time=")?.parse().ok())
        .collect();
    rtts.sort_by(f64::total_cmp);
    rtts
}

fn median(sorted: &[f64]) -> f64 {
    assert!(!sorted.is_empty(), "no ping was answered");
    sorted[sorted.len() / 2]
}

/// Issue 23, goal 1: an idle ping through the bond takes the fast path's
/// time, not the slow one's (each path's own round trip is measured in the
/// same run, by pinging its far end directly). The bound, a quarter of the
/// way from the fast path's round trip to the slow one's (10 and 50 ms
/// here), leaves room for a machine busy elsewhere and none for a frame
/// held until the slow path would have brought it.
#[test]
fn an_idle_ping_takes_the_fast_paths_time() {
    let Some(_lock) = ready("an_idle_ping_takes_the_fast_paths_time") else {
        return;
    };
    let bed = Bed::answering("mp-idle-ping");
    let fast = median(&ping_rtts(&bed.a, "198.18.1.2", 20));
    let slow = median(&ping_rtts(&bed.a, "198.18.2.2", 20));
    let bond = median(&ping_rtts(&bed.a, ADDR_B, 40));
    assert!(
        bond <= fast + (slow - fast) / 4.0,
        "median round trips: through the bond {bond} ms, path 1 alone {fast} ms, \
         path 2 alone {slow} ms"
    );
}

/// Issue 23, goal 2: while one TCP stream fills the bond, a ping beside it
/// stays near the fast path: its median under the slow path's idle round
/// trip (the queues the bond builds on top of the fast path stay shorter
/// than the two paths' difference, 40 ms here) and its worst under twice
/// that. MPTCP over the same paths stays well inside both (scripts/
/// e2e-multipath measures it beside us); the margin is for a loaded
/// 2-core machine.
#[test]
#[ignore = "issue 23 goal 2 at 8 + 3 Mbit/s over ssh: the median is met (19-20 ms), the \
            worst ping is not (123 and 278 ms in 2 of 5 runs): ssh's outer TCP on such slow paths \
            (docs/multipath.md, issue 23; met at 40 + 15 Mbit/s in scripts/e2e-multipath)"]
fn a_ping_beside_a_tcp_stream_stays_near_the_fast_path() {
    let Some(_lock) = ready("a_ping_beside_a_tcp_stream_stays_near_the_fast_path") else {
        return;
    };
    let bed = Bed::answering("mp-loaded-ping");
    let slow = median(&ping_rtts(&bed.a, "198.18.2.2", 20));
    // About 5 s of the bond's 11 Mbit/s, the pings during its middle.
    let (a, b) = (bed.a.name.clone(), bed.b.name.clone());
    let load = std::thread::spawn(move || {
        let got = tcp_transfer(&a, &b, ADDR_B, &vec![0x5a; 7 << 20]);
        got.len()
    });
    // The pings start once the stream fills the fast path and spills into
    // the slow one.
    let spilt = bed.path_bytes(2).0 + 100_000;
    wait_until("the stream using path 2", || bed.path_bytes(2).0 > spilt);
    let under_load = ping_rtts(&bed.a, ADDR_B, 60);
    let still_loaded = !load.is_finished();
    assert_eq!(load.join().unwrap(), 7 << 20, "bytes received by the sink");
    assert!(still_loaded, "the transfer ended before the pings did");
    let (mid, worst) = (median(&under_load), under_load[under_load.len() - 1]);
    assert!(
        mid <= slow && worst <= 2.0 * slow,
        "pings through the bond under a TCP load: median {mid} ms, worst {worst} ms \
         ({} answered of 60); path 2 alone, idle: {slow} ms",
        under_load.len()
    );
}
