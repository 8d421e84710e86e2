//! A handoff duplicates nothing that `dedup=` promises to catch (issue
//! 25): a new cable whose command starts late (an ssh login) joins its
//! node only once its far end has answered, so no frame waits in the
//! command's pipe and comes late, past the dedup window.

mod common;

use common::*;
use std::time::{Duration, Instant};

mod netbed;

use netbed::{ready, Sshd};

/// The far end of the new cable starts this late (seconds), as behind an
/// ssh login (the issue saw 0.3 s; longer here, for the margin below).
const LOGIN: &str = "1";
/// Multi's dedup window at the receiving node: shorter than the login, so
/// that a frame that waited through it would be given to the host twice,
/// and long enough that a loaded machine does not delay one copy past it.
const DEDUP_MS: u32 = 500;
/// Through ssh: a fresh ssh connection on a loaded machine was seen to
/// bring a few hundred frames up to ~1 s late just after its login (46 to
/// 197 of ~4000 given twice past 500 ms, in 2 of 14 runs, with the far end
/// answering in time): ssh's, not a frame that waited for the login.
const SSH_DEDUP_MS: u32 = 2000;

/// Numbered frames flow from vm1's host to vm2's over cable 1; cable 2 is
/// laid with a command that starts a second late, while frames keep flowing;
/// once it is up cable 1 is killed; more frames follow. vm2's host gets
/// every number exactly once. `near` is the plug at vm1's end of cable 2,
/// `far` the one at vm2's.
fn slow_cable_handoff(name: &str, near: &str, far: &str) -> (Vec<u32>, usize) {
    let t = Scratch::new(name);
    // A script, not `sh -c` (the C plug's getopt would take `-c`).
    let late = t.path("late");
    let script = format!("#!/bin/sh\nsleep {LOGIN}\nexec {far} {}\n", t.path("vm2"));
    std::fs::write(&late, script).unwrap();
    std::fs::set_permissions(&late, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    handoff(&t, &[near, &t.path("vm1"), "=", &late], DEDUP_MS)
}

/// The handoff of [`slow_cable_handoff`] with `cable2` (a command line)
/// as the new cable from `t`'s vm1 to its vm2: how often each number
/// reached vm2's host, and how many came more than once.
fn handoff(t: &Scratch, cable2: &[&str], dedup_ms: u32) -> (Vec<u32>, usize) {
    let (m1, m2) = (t.path("vm1"), t.path("vm2"));
    let mut vm1 = Plug::start_node(rs_plug(), &[&format!("multi://{m1}")]);
    let mut vm2 = Plug::start_node(rs_plug(), &[&format!("multi://{m2}[dedup={dedup_ms}]")]);
    let cable1 = Plug::spawn(rs_plug(), &[&m1, "=", rs_plug(), &m2]);
    wait_ports(&m1, 1);
    wait_ports(&m2, 1);
    let mut sent = 0u32;
    let mut send = |vm1: &mut Plug, count: u32| {
        for _ in 0..count {
            vm1.send(&frame(1, sent, 120));
            sent += 1;
            std::thread::sleep(Duration::from_micros(500));
        }
    };
    send(&mut vm1, 500);
    let cable2 = Plug::spawn(cable2[0], &cable2[1..]);
    // Frames keep coming while cable 2's far end starts (a far end that
    // says nothing is joined after the bound).
    let deadline = Instant::now() + vde_plug_rs::run::FAR_END_BOUND + PATIENCE;
    while port_count(&m1) < 2 || port_count(&m2) < 2 {
        assert!(Instant::now() < deadline, "cable 2 never joined both nodes");
        send(&mut vm1, 20);
    }
    send(&mut vm1, 500);
    cable1.signal(libc::SIGKILL);
    wait_ports(&m1, 1);
    send(&mut vm1, 500);
    let n = sent;
    // The last frames came on cable 2 alone, after everything it carried
    // before them: once they are in, every copy is.
    let mut seen = vec![0u32; n as usize];
    let deadline = Instant::now() + PATIENCE;
    while seen.contains(&0) {
        assert!(Instant::now() < deadline, "frames missing");
        vm2.collect(Duration::from_millis(20));
        seen.iter_mut().for_each(|c| *c = 0);
        for f in &vm2.received {
            seen[seq_of(f) as usize] += 1;
        }
    }
    let dups = seen.iter().filter(|&&c| c > 1).count();
    drop(cable2);
    (seen, dups)
}

#[test]
fn a_late_cable_between_our_plugs_duplicates_nothing() {
    let (seen, dups) = slow_cable_handoff("handoff-late", rs_plug(), rs_plug());
    assert_eq!(dups, 0, "{dups} of {} frames given twice", seen.len());
    assert!(seen.iter().all(|&c| c == 1));
}

/// The same with the C plug at the near end, which joins at once: what
/// waited in the pipe comes late (printed, not asserted: how many depends
/// on the machine).
#[test]
#[ignore = "a measure of the C plug, not a check"]
fn a_late_cable_from_the_c_plug_duplicates() {
    require_c_reference();
    let (seen, dups) = slow_cable_handoff("handoff-late-c", C_PLUG, rs_plug());
    println!("C near plug: {dups} of {} frames given twice", seen.len());
}

/// With the C plug at the far end, which says nothing until it has a frame
/// to send (here never: vm2's host is silent), our near plug joins after
/// its bound (5 s), by which time the far end is up: nothing waited.
#[test]
fn a_late_cable_to_the_c_plug_joins_after_the_bound() {
    require_c_reference();
    let (seen, dups) = slow_cable_handoff("handoff-late-cfar", rs_plug(), C_PLUG);
    assert_eq!(dups, 0, "{dups} of {} frames given twice", seen.len());
    assert!(seen.iter().all(|&c| c == 1));
}

/// Through a real sshd (loopback): the new cable's far end answers once
/// ssh has logged in and started it; no frame waited in ssh's pipe.
#[test]
fn a_cable_through_ssh_duplicates_nothing() {
    let Some(_lock) = ready("a_cable_through_ssh_duplicates_nothing") else {
        return;
    };
    let t = Scratch::new("handoff-ssh");
    let sshd = Sshd::start(&t);
    let mut cable2: Vec<String> = vec![rs_plug().into(), t.path("vm1"), "=".into(), "ssh".into()];
    cable2.extend(sshd.ssh_args());
    cable2.extend(["root@127.0.0.1".into(), rs_plug().into(), t.path("vm2")]);
    let cable2: Vec<&str> = cable2.iter().map(String::as_str).collect();
    let (seen, dups) = handoff(&t, &cable2, SSH_DEDUP_MS);
    assert_eq!(dups, 0, "{dups} of {} frames given twice", seen.len());
    assert!(seen.iter().all(|&c| c == 1));
}
