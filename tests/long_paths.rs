//! Node paths as long as the C vde_plug takes them: up to 103 bytes, so
//! that `PATH/ctl` fills a `sockaddr_un` (107 bytes and its NUL). Our
//! longer names beside `ctl` (`ctl.new`, `status`) are bound through the
//! directory's descriptor, a port is `N` where `fdN` has no room, and a
//! client binds its own socket in /var/run (or /var/tmp, /tmp) when the
//! node directory has no room for `.PPPPP-NNNNN`. A path one byte longer
//! is refused (the C node binds a truncated `ct` there).

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};

/// A path of exactly `len` bytes inside the scratch directory.
fn path_of_len(t: &Scratch, len: usize) -> String {
    let base = format!("{}/", t.dir.display());
    assert!(base.len() < len);
    format!("{base}{}", "n".repeat(len - base.len()))
}

/// The port sockets of a node: neither `ctl`, `status` nor a client's.
fn ports(dir: &str) -> usize {
    dir_listing(dir)
        .iter()
        .filter(|n| !["ctl", "status"].contains(&n.as_str()) && !n.starts_with('.'))
        .count()
}

fn wait_two_ports(dir: &str) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while ports(dir) != 2 || joining_count(dir) != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{dir}: {:?}",
            dir_listing(dir)
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// A hub of ours at 100 and 103 bytes: a C and a Rust cable join, frames
/// cross every way, `--status` answers; SIGTERM removes it all.
#[test]
fn our_node_at_the_longest_c_path() {
    require_c_reference();
    for len in [100, 103] {
        let t = Scratch::new("long");
        let p = path_of_len(&t, len);
        let mut host = Plug::start_node(rs_plug(), &[&format!("hub://{p}")]);
        let mut c = Plug::spawn(C_PLUG, &[&p]);
        let mut rs = Plug::spawn(rs_plug(), &[&p]);
        wait_two_ports(&p);
        host.send(&frame(1, 1, 60));
        c.send(&frame(2, 2, 60));
        rs.send(&frame(3, 3, 60));
        let seqs = |plug: &mut Plug| {
            let mut s: Vec<u32> = plug.wait_frames(2).iter().map(|f| seq_of(f)).collect();
            s.sort();
            s
        };
        assert_eq!(seqs(&mut host), [2, 3], "{len}: the host");
        assert_eq!(seqs(&mut c), [1, 3], "{len}: the C cable");
        assert_eq!(seqs(&mut rs), [1, 2], "{len}: our cable");
        let out = Command::new(rs_plug())
            .args(["--status", &p, "--json"])
            .output()
            .unwrap();
        let json = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{len}: --status: {out:?}");
        assert_eq!(json.matches("\"link\":\"port ").count(), 2, "{json}");
        let (st, err) = host.terminate();
        assert_eq!(st.code(), Some(0), "{len}: {err}");
        assert!(!Path::new(&p).exists(), "{len}: {:?}", dir_listing(&p));
        assert!(c.wait().0.success() && rs.wait().0.success());
    }
}

/// The same path for a detached node binary (`bonding_node -d`), and for a
/// C node that our plug joins.
#[test]
fn a_detached_node_and_a_c_node_at_103_bytes() {
    require_c_reference();
    let t = Scratch::new("longd");
    let p = path_of_len(&t, 103);
    let pidfile = t.path("pid");
    let out = Command::new(bonding_node())
        .args(["-d", "-p", &pidfile, &p, "null://"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    wait_node(&p);
    wait_for_path(&pidfile);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut cable = Plug::spawn(rs_plug(), &[&p]);
    let deadline = std::time::Instant::now() + PATIENCE;
    while ports(&p) != 1 || joining_count(&p) != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            dir_listing(&p)
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SAFETY: signalling the daemon we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(wait_gone(pid));
    assert!(cable.wait().0.success());
    assert!(!Path::new(&p).exists() && !Path::new(&pidfile).exists());

    let mut c_host = Plug::start_node(C_PLUG, &[&format!("hub://{p}")]);
    let mut ours = Plug::spawn(rs_plug(), &[&p]);
    let mut c = Plug::spawn(C_PLUG, &[&p]);
    wait_two_ports(&p);
    ours.send(&frame(4, 4, 60));
    assert_eq!(seq_of(&c_host.wait_frames(1)[0]), 4);
    assert_eq!(seq_of(&c.wait_frames(1)[0]), 4);
    c_host.terminate();
}

/// One byte more: `ctl` would not fit; refused, nothing made.
#[test]
fn a_path_too_long_for_ctl_is_refused() {
    let t = Scratch::new("toolong");
    let p = path_of_len(&t, 104);
    let out = Command::new(rs_plug())
        .arg(format!("hub://{p}"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        format!("vde_open hub://{p}: File name too long")
    );
    assert!(!Path::new(&p).exists());
}
