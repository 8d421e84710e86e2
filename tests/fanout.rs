//! Fan-out without needless loss (issue 12): hub, switch and multi nodes
//! give every frame to every cable that keeps up, whether it came from the
//! host or from another cable; a cable that cannot keep up (its plug's
//! output drained slowly through `pv -L 20k`, a hundred frames a second) loses only its own frames,
//! counted in its `full` column.

mod common;

use common::*;
use std::time::Instant;

const FRAMES: u32 = 20_000;
const SIZE: usize = 200;

#[derive(Clone, Copy, Debug)]
enum Entry {
    /// Frames come from the host (the node plug's stdin).
    Host,
    /// Frames come from a cable joined to the node.
    Port,
}

/// What one run gave: the fast cable's frames, and the slow cable's sent
/// and `full` counters.
struct Figures {
    fast: usize,
    slow_out: u64,
    slow_full: u64,
}

fn run(scheme: &str, entry: Entry) -> Figures {
    let t = Scratch::new(&format!("fan-{scheme}"));
    let dir = t.path("n");
    let mut host = LivePlug::start_node(rs_plug(), &[&format!("{scheme}://{dir}")]);
    let mut joined = 0;
    let mut join = |args: &[&str], prog: &str| {
        let p = Plug::spawn(prog, args);
        joined += 1;
        wait_ports(&dir, joined);
        p
    };
    let mut sender = matches!(entry, Entry::Port).then(|| join(&[&dir], rs_plug()));
    let mut fast = join(&["-D", "fast", &dir], rs_plug());
    let slow_cmd = format!("{} -D slow {dir} | pv -q -L 20k > /dev/null", rs_plug());
    let _slow = join(&["-c", &slow_cmd], "sh");

    let mut stream = Vec::with_capacity(FRAMES as usize * (SIZE + 2));
    for s in 0..FRAMES {
        stream.extend_from_slice(&encode(&frame(1, s, SIZE)));
    }
    match sender.as_mut() {
        Some(s) => s.send_raw(&stream),
        None => host.send_raw(&stream),
    }

    let got = fast.wait_frames(FRAMES as usize).len();
    assert_eq!(
        got, FRAMES as usize,
        "{scheme} from {entry:?}: the fast cable"
    );
    for (i, f) in fast.received.iter().enumerate() {
        assert_eq!(f, &frame(1, i as u32, SIZE), "{scheme}: frame {i} in order");
    }
    if let Entry::Port = entry {
        if scheme == "hub" || scheme == "switch" {
            assert_eq!(host.wait_frames(FRAMES as usize).len(), FRAMES as usize);
        }
    }
    // Every frame for the slow cable is either sent to it or counted lost.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let rows = host.counters();
        let slow = rows
            .iter()
            .find(|r| r.description.starts_with("slow"))
            .expect("a row for the slow cable")
            .clone();
        let fast_row = rows
            .iter()
            .find(|r| r.description.starts_with("fast"))
            .expect("a row for the fast cable");
        assert_eq!(fast_row.full, 0, "the fast cable lost nothing");
        if slow.frames_out + slow.full == u64::from(FRAMES) {
            let figures = Figures {
                fast: got,
                slow_out: slow.frames_out,
                slow_full: slow.full,
            };
            println!(
                "{scheme} from {entry:?}: fast cable {}/{FRAMES}, slow cable sent {} full {}",
                figures.fast, figures.slow_out, figures.slow_full
            );
            return figures;
        }
        assert!(
            Instant::now() < deadline,
            "{scheme}: slow cable sent {} + full {} != {FRAMES}",
            slow.frames_out,
            slow.full
        );
    }
}

#[test]
fn hub_from_a_port_loses_nothing_for_the_fast_cable() {
    run("hub", Entry::Port);
}

#[test]
fn hub_from_the_host_loses_nothing_for_the_fast_cable() {
    run("hub", Entry::Host);
}

#[test]
fn switch_from_a_port_loses_nothing_for_the_fast_cable() {
    run("switch", Entry::Port);
}

#[test]
fn switch_from_the_host_loses_nothing_for_the_fast_cable() {
    run("switch", Entry::Host);
}

#[test]
fn multi_from_the_host_loses_nothing_for_the_fast_cable() {
    run("multi", Entry::Host);
}
