//! Long runs (issue 4): thousands of cables coming and going on one node,
//! and hundreds of cables on one node at once. Raw clients over std
//! sockets keep each cycle fast.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Cycles per run; `VDE_LONGRUN_CYCLES` asks for a longer soak.
fn cycles_wanted() -> u32 {
    std::env::var("VDE_LONGRUN_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}
const FRAMES_PER_CYCLE: u32 = 3;
/// Resident memory may wobble by an allocator page or two, not grow.
const RSS_SLACK_KB: u64 = 64;

fn size(seq: u32) -> usize {
    60 + (seq as usize * 131) % 1200
}

/// Frames the node holds for its host when the host does not read.
const LANE_SLOTS: u64 = vde_plug_rs::engine::LANE_SLOTS as u64;

/// The node's descriptors once its loop runs (a first cable has come and
/// gone), with no cable joined.
fn idle_fds(node: &str, socks: &Path, pid: i32) -> usize {
    drop(RawClient::join(node, socks).expect("join"));
    wait_ports(node, 0);
    let deadline = Instant::now() + PATIENCE;
    let mut last = fd_count(pid);
    // Settled when two reads 20 ms apart agree (not an assertion).
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = fd_count(pid);
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// Fills the node's port-to-host lane to the brim with the largest frames
/// (the test stops reading the host's output until the counters show every
/// slot taken), then reads them all: afterwards every page the frames of
/// this direction can touch is resident, and RSS measures leaks only.
fn warm_up(host: &mut ManualHost, node: &str, socks: &Path) -> u64 {
    let client = RawClient::join(node, socks).expect("join");
    let n = LANE_SLOTS as u32 + 64;
    let sender = client.data.try_clone().unwrap();
    let feeder = std::thread::spawn(move || {
        for s in 0..n {
            if sender.send(&frame(4, s, 9236)).is_err() {
                return s;
            }
        }
        n
    });
    let deadline = Instant::now() + PATIENCE;
    loop {
        let rows = host.counters();
        let read_in = rows
            .iter()
            .find(|r| r.link.starts_with("port "))
            .map_or(0, |r| r.frames_in);
        let passed_on = rows
            .iter()
            .find(|r| r.link == "stream stdin/stdout")
            .map_or(0, |r| r.frames_out);
        if read_in - passed_on == LANE_SLOTS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the lane never filled: {read_in} read, {passed_on} passed on"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Read them all. When the output stalls with frames left in the
    // plug's stream buffer (see reliability::slow_host_reader_*), a small
    // chaser frame from the cable pushes them out: this test is about
    // leaks, that one about the stall.
    let mut got = Vec::new();
    let mut chasers = 0u32;
    while got.len() < (n + chasers) as usize {
        let more = host.read_some(
            (n + chasers) as usize - got.len(),
            Duration::from_millis(300),
        );
        if more.is_empty() {
            assert!(
                chasers < 10,
                "the warm-up frames never came: {} of {n}",
                got.len()
            );
            client.send(&frame(5, chasers, 60));
            chasers += 1;
        }
        got.extend(more);
    }
    assert_eq!(feeder.join().unwrap(), n);
    let (warm, chased): (Vec<_>, Vec<_>) = got.iter().partition(|f| f[11] == 4);
    assert_eq!(warm.len(), n as usize);
    for (s, f) in warm.iter().enumerate() {
        assert_eq!(**f, frame(4, s as u32, 9236), "warm-up frame {s}");
    }
    for (s, f) in chased.iter().enumerate() {
        assert_eq!(**f, frame(5, s as u32, 60), "chaser {s}");
    }
    if chasers > 0 {
        println!("warm-up: {chasers} chaser frame(s) needed to release the output");
    }
    drop(client);
    wait_ports(node, 0);
    got.len() as u64
}

/// 2,000 cycles of a cable joining, sending a few frames and leaving:
/// every frame reaches the host intact, and afterwards the node holds the
/// same descriptors and sockets as after the first 100 cycles, and the
/// same memory within 64 kB.
fn cycles(kind: &str) {
    let t = Scratch::new(&format!("long-{kind}"));
    let node = t.path("n");
    let socks = t.dir.join("s");
    std::fs::create_dir(&socks).unwrap();
    let mut host = ManualHost::start_node(rs_plug(), &[&format!("{kind}://{node}")]);
    let pid = host.pid();
    let idle_fds = idle_fds(&node, &socks, pid);
    let warmed_up = warm_up(&mut host, &node, &socks);
    let mut after_100 = (0usize, 0u64);
    let n = cycles_wanted();
    for cycle in 0..n {
        let client = RawClient::join(&node, &socks).expect("join");
        let seqs = cycle * FRAMES_PER_CYCLE..(cycle + 1) * FRAMES_PER_CYCLE;
        for seq in seqs.clone() {
            client.send(&frame(3, seq, size(seq)));
        }
        // The frames are in before the cable leaves.
        let got = host.read_frames(FRAMES_PER_CYCLE as usize);
        for (f, seq) in got.iter().zip(seqs) {
            assert_eq!(*f, frame(3, seq, size(seq)), "cycle {cycle}");
        }
        drop(client);
        if cycle == 99 {
            wait_ports(&node, 0);
            after_100 = (wait_fd_count(pid, idle_fds), vm_rss_kb(pid));
            assert_eq!(after_100.0, idle_fds, "descriptors after 100 cycles");
        }
        if std::env::var_os("VDE_LONGRUN_TRACE").is_some() && cycle % 1000 == 999 {
            println!("{kind}: cycle {}: VmRSS {} kB", cycle + 1, vm_rss_kb(pid));
        }
    }
    wait_ports(&node, 0);
    let fds = wait_fd_count(pid, idle_fds);
    let rss = vm_rss_kb(pid);
    println!(
        "{kind}: after 100 cycles: {} fds, VmRSS {} kB; after {n}: {fds} fds, VmRSS {rss} kB",
        after_100.0, after_100.1
    );
    assert_eq!(fds, after_100.0, "descriptors leaked");
    assert_eq!(dir_listing(&node), bare_node(), "sockets left");
    assert!(
        rss <= after_100.1 + RSS_SLACK_KB,
        "VmRSS grew from {} kB to {rss} kB",
        after_100.1
    );
    let rows = host.counters();
    let stream = rows
        .iter()
        .find(|r| r.link == "stream stdin/stdout")
        .unwrap();
    let total = u64::from(n * FRAMES_PER_CYCLE) + warmed_up;
    assert_eq!((stream.frames_out, stream.full, stream.runt), (total, 0, 0));
    assert_eq!(host.finish(), Some(0));
    assert!(!Path::new(&node).exists());
}

#[test]
fn bonding_2000_cable_cycles() {
    cycles("bonding");
}

#[test]
fn multi_2000_cable_cycles() {
    cycles("multi");
}

/// 256 cables on one node at once: each gets every host frame, once, in
/// order, and the host gets one frame from each.
fn many_cables(kind: &str) {
    raise_fd_limit();
    const CABLES: usize = 256;
    const HOST: u32 = 4;
    let t = Scratch::new(&format!("many-{kind}"));
    let node = t.path("n");
    let socks = t.dir.join("s");
    std::fs::create_dir(&socks).unwrap();
    let mut host = Plug::start_node(rs_plug(), &[&format!("{kind}://{node}")]);
    let pid = host.pid();
    let idle_fds = idle_fds(&node, &socks, pid);
    let clients: Vec<RawClient> = (0..CABLES)
        .map(|i| RawClient::join(&node, &socks).unwrap_or_else(|e| panic!("cable {i}: {e}")))
        .collect();
    wait_ports(&node, CABLES);
    assert_eq!(fd_count(pid), idle_fds + 2 * CABLES);
    // Host frames, then an end marker: each cable counts what came before it.
    for s in 0..HOST {
        host.send(&frame(1, s, size(s)));
    }
    let marker = frame(1, 999, 64);
    host.send(&marker);
    for (i, c) in clients.iter().enumerate() {
        let mut got = Vec::new();
        loop {
            let f = c
                .recv()
                .unwrap_or_else(|| panic!("cable {i}: got {} frames, no marker", got.len()));
            if f == marker {
                break;
            }
            got.push(f);
        }
        let want: Vec<Vec<u8>> = (0..HOST).map(|s| frame(1, s, size(s))).collect();
        assert_eq!(got, want, "cable {i}");
    }
    // One frame from each cable reaches the host.
    for (i, c) in clients.iter().enumerate() {
        c.send(&frame(2, 10_000 + i as u32, 90));
    }
    let got = host.wait_frames(CABLES);
    assert_eq!(got.len(), CABLES);
    let mut seqs: Vec<u32> = got
        .iter()
        .map(|f| {
            assert_eq!(*f, frame(2, seq_of(f), 90));
            seq_of(f)
        })
        .collect();
    seqs.sort();
    assert_eq!(seqs, (10_000..10_000 + CABLES as u32).collect::<Vec<_>>());
    drop(clients);
    wait_ports(&node, 0);
    assert_eq!(
        wait_fd_count(pid, idle_fds),
        idle_fds,
        "descriptors after all left"
    );
    host.close_stdin();
    assert_eq!(host.wait().0.code(), Some(0));
}

#[test]
fn multi_256_cables_at_once() {
    many_cables("multi");
}

#[test]
fn hub_256_cables_at_once() {
    many_cables("hub");
}

/// Cables that leave right after sending (no wait for the frames to pass):
/// every frame they sent still reaches the host, once. The node reads what
/// a leaving cable's socket holds before dropping the port.
fn leave_right_after_sending(kind: &str) {
    let t = Scratch::new(&format!("leave-{kind}"));
    let node = t.path("n");
    let socks = t.dir.join("s");
    std::fs::create_dir(&socks).unwrap();
    let mut host = Plug::start_node(rs_plug(), &[&format!("{kind}://{node}")]);
    let n = 300u32;
    for cycle in 0..n {
        let client = RawClient::join(&node, &socks).expect("join");
        for k in 0..FRAMES_PER_CYCLE {
            let seq = cycle * FRAMES_PER_CYCLE + k;
            client.send(&frame(3, seq, size(seq)));
        }
    }
    wait_ports(&node, 0);
    let total = (n * FRAMES_PER_CYCLE) as usize;
    let got = host.wait_frames(total);
    let mut seqs: Vec<u32> = got
        .iter()
        .map(|f| {
            assert_eq!(*f, frame(3, seq_of(f), size(seq_of(f))));
            seq_of(f)
        })
        .collect();
    seqs.sort();
    if seqs != (0..total as u32).collect::<Vec<_>>() {
        let missing: Vec<u32> = (0..total as u32).filter(|s| !seqs.contains(s)).collect();
        let status = std::process::Command::new(rs_plug())
            .args(["--status", &node])
            .output();
        panic!("{kind}: missing {missing:?}; the node says {status:?}");
    }
    host.close_stdin();
    assert_eq!(host.drain_to_end().len(), total, "{kind}: extra frames");
}

#[test]
fn leaving_cables_lose_nothing_bonding() {
    leave_right_after_sending("bonding");
}

#[test]
fn leaving_cables_lose_nothing_multi() {
    leave_right_after_sending("multi");
}

#[test]
fn leaving_cables_lose_nothing_hub() {
    leave_right_after_sending("hub");
}

#[test]
fn leaving_cables_lose_nothing_switch() {
    leave_right_after_sending("switch");
}

/// For comparison only: the C node drops most of what a leaving cable
/// sent last. Prints the counts.
#[test]
#[ignore]
fn leaving_cables_c_node_for_comparison() {
    let t = Scratch::new("leave-c");
    let node = t.path("n");
    let socks = t.dir.join("s");
    std::fs::create_dir(&socks).unwrap();
    let mut host = Plug::start_node(C_PLUG, &[&format!("bonding://{node}")]);
    let n = 300u32;
    for cycle in 0..n {
        let client = RawClient::join(&node, &socks).expect("join");
        for k in 0..FRAMES_PER_CYCLE {
            client.send(&frame(3, cycle * FRAMES_PER_CYCLE + k, 60));
        }
    }
    wait_ports(&node, 0);
    host.collect(Duration::from_millis(500));
    println!(
        "C node: sent {} frames, host got {}",
        n * FRAMES_PER_CYCLE,
        host.received.len()
    );
}
