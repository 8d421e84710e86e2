//! Our libvdeplug modules inside Debian's C `vde_plug` (vdeplug 4.0.1):
//! `VDEPLUGIN_PATH=target/plugins:/usr/lib/x86_64-linux-gnu/vdeplug` makes
//! it load libvdeplug_{bonding,multi,hub,switch}.so from us, and C cables
//! and ours join the node it hosts.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::time::Duration;
use vde_plug_rs::hosted::{HostedNode, HOLD_AFTER, HOLD_GAP};
use vde_plug_rs::wire::path_report::is_path_report;

const SIZE: usize = 120;

/// The modules under test: this build's, or another architecture's
/// (`VDE_PLUG_RS_MODULES`, with `VDE_PLUG_RS_C_HOST` and
/// `VDE_PLUG_RS_C_MODULES` naming that architecture's C vde_plug, run by an
/// emulator, and its Debian modules: scripts/cross).
fn plugins_dir() -> PathBuf {
    std::env::var_os("VDE_PLUG_RS_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/plugins"))
}

/// The C vde_plug that loads the modules (cables stay the host's C_PLUG).
fn module_host() -> String {
    std::env::var("VDE_PLUG_RS_C_HOST").unwrap_or_else(|_| C_PLUG.to_string())
}

/// Debian's own modules for that vde_plug, listed after ours.
fn debian_modules() -> String {
    std::env::var("VDE_PLUG_RS_C_MODULES")
        .unwrap_or_else(|_| "/usr/lib/x86_64-linux-gnu/vdeplug".to_string())
}

/// Builds the modules once per run (quick when scripts/test built them).
fn build_plugins() {
    static BUILT: Once = Once::new();
    BUILT.call_once(|| {
        if std::env::var_os("VDE_PLUG_RS_MODULES").is_some() {
            return;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-plugins");
        let st = Command::new(script)
            .arg("-q")
            .status()
            .expect("run scripts/build-plugins");
        assert!(st.success(), "scripts/build-plugins failed");
    });
}

/// The C vde_plug with the modules in `ours` first on its module path.
fn c_plug_with_path(ours: &Path, args: &[&str]) -> Plug {
    require_c_reference();
    build_plugins();
    let path = format!("VDEPLUGIN_PATH={}:{}", ours.display(), debian_modules());
    let host = module_host();
    let mut all = vec![path.as_str(), host.as_str()];
    all.extend_from_slice(args);
    Plug::spawn("env", &all)
}

/// [`c_plug_with_path`] hosting nodes: returns once they accept cables.
fn c_node_with_path(ours: &Path, args: &[&str]) -> Plug {
    let host = c_plug_with_path(ours, args);
    wait_nodes(&module_host(), args);
    host
}

/// Whether process `pid` has our module `name` mapped.
fn maps_our_module(pid: i32, name: &str) -> bool {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let ours = plugins_dir().join(format!("libvdeplug_{name}.so"));
    maps.contains(ours.to_str().unwrap())
}

/// A C vde_plug hosting our `scheme` node at `dir`, then `cables` joined
/// to it one after the other (each a program: the C plug or ours).
#[track_caller]
fn node_with_cables(scheme: &str, dir: &str, params: &str, cables: &[&str]) -> (Plug, Vec<Plug>) {
    let host = c_node_with_path(&plugins_dir(), &[&format!("{scheme}://{dir}{params}")]);
    assert!(
        maps_our_module(host.pid(), scheme),
        "vde_plug did not load our libvdeplug_{scheme}.so"
    );
    // Each cable is waited for by its process (not by the count of port
    // sockets, which a killed node's or a vanished client's can pass for).
    let mut pids = Vec::new();
    let cables = cables
        .iter()
        .map(|prog| {
            let c = Plug::spawn(prog, &[dir]);
            pids.push(c.pid());
            wait_cables_of(dir, &pids);
            c
        })
        .collect();
    // Each cable removes its own socket from the directory once joined.
    let deadline = std::time::Instant::now() + PATIENCE;
    while dir_listing(dir).iter().any(|n| n.starts_with('.')) {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            dir_listing(dir)
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    (host, cables)
}

fn received(ps: &[&mut Plug]) -> usize {
    ps.iter().map(|p| p.received.len()).sum()
}

/// Sends frames `0..n` from `src` through `from`, a window at a time, each
/// window only once the `to` plugs together have `copies` of every frame
/// sent so far: a program's `vde_send` cannot wait, so nothing may pile up.
fn send_windowed(from: &mut Plug, src: u8, n: u32, to: &mut [&mut Plug], copies: usize) {
    const WINDOW: u32 = 16;
    let base = received(to);
    let mut s = 0;
    while s < n {
        let end = (s + WINDOW).min(n);
        let burst: Vec<u8> = (s..end)
            .flat_map(|q| encode(&frame(src, q, SIZE)))
            .collect();
        from.send_raw(&burst);
        let want = base + end as usize * copies;
        let deadline = std::time::Instant::now() + PATIENCE;
        while received(to) < want {
            assert!(
                std::time::Instant::now() < deadline,
                "frames from {src}: {} of {want} arrived",
                received(to)
            );
            for p in to.iter_mut() {
                p.collect(Duration::from_millis(1));
            }
        }
        s = end;
    }
}

/// The frames from `src` that `p` got, checked byte for byte; their
/// sequence numbers in arrival order.
fn seqs_from(p: &Plug, src: u8) -> Vec<u32> {
    p.received
        .iter()
        .filter(|f| f[11] == src)
        .map(|f| {
            assert_eq!(f, &frame(src, seq_of(f), SIZE), "byte-exact");
            seq_of(f)
        })
        .collect()
}

#[test]
fn bonding_in_c_vde_plug_deals_host_frames_and_gathers_cable_frames() {
    let t = Scratch::new("pl-bond");
    let dir = t.path("b");
    let (mut host, mut cables) = node_with_cables("bonding", &dir, "", &[C_PLUG, rs_plug()]);
    let n = 600;
    {
        let (a, b) = cables.split_at_mut(1);
        send_windowed(&mut host, 1, n, &mut [&mut a[0], &mut b[0]], 1);
    }
    let mut all: Vec<u32> = cables.iter().flat_map(|c| seqs_from(c, 1)).collect();
    assert!(
        cables.iter().all(|c| !c.received.is_empty()),
        "both cables carry frames"
    );
    all.sort_unstable();
    assert_eq!(all, (0..n).collect::<Vec<_>>(), "each host frame once");
    for (i, c) in cables.iter_mut().enumerate() {
        send_windowed(c, 10 + i as u8, n, &mut [&mut host], 1);
    }
    for i in 0..2u8 {
        assert_eq!(seqs_from(&host, 10 + i), (0..n).collect::<Vec<_>>());
    }
}

/// Host frames held for a batch while frames for the host wait to be
/// handed out (`vde_recv` then does not ask the poll, where the batch's
/// timer event waits): bursts both ways at once, every frame arrives.
#[test]
fn bonding_in_c_vde_plug_carries_bursts_both_ways_at_once() {
    let t = Scratch::new("pl-both");
    let dir = t.path("b");
    let (mut host, mut cables) = node_with_cables("bonding", &dir, "", &[C_PLUG, rs_plug()]);
    const WINDOW: u32 = 16;
    let n = 20 * WINDOW;
    let burst = |src: u8, from: u32| -> Vec<u8> {
        (from..from + WINDOW)
            .flat_map(|q| encode(&frame(src, q, SIZE)))
            .collect()
    };
    for s in (0..n).step_by(WINDOW as usize) {
        host.send_raw(&burst(1, s));
        for (i, c) in cables.iter_mut().enumerate() {
            c.send_raw(&burst(10 + i as u8, s));
        }
        let deadline = std::time::Instant::now() + PATIENCE;
        let want = (s + WINDOW) as usize;
        while cables.iter().map(|c| c.received.len()).sum::<usize>() < want
            || host.received.len() < 2 * want
        {
            assert!(
                std::time::Instant::now() < deadline,
                "window {s}: cables got {}, host {}",
                cables.iter().map(|c| c.received.len()).sum::<usize>(),
                host.received.len()
            );
            host.collect(Duration::from_millis(1));
            for c in cables.iter_mut() {
                c.collect(Duration::from_millis(1));
            }
        }
    }
    let mut dealt: Vec<u32> = cables.iter().flat_map(|c| seqs_from(c, 1)).collect();
    dealt.sort_unstable();
    assert_eq!(dealt, (0..n).collect::<Vec<_>>(), "each host frame once");
    for i in 0..2u8 {
        assert_eq!(seqs_from(&host, 10 + i), (0..n).collect::<Vec<_>>());
    }
}

#[test]
fn multi_in_c_vde_plug_copies_host_frames_to_every_cable() {
    let t = Scratch::new("pl-multi");
    let dir = t.path("m");
    let (mut host, mut cables) = node_with_cables("multi", &dir, "", &[C_PLUG, rs_plug()]);
    let n = 600;
    {
        let (a, b) = cables.split_at_mut(1);
        send_windowed(&mut host, 1, n, &mut [&mut a[0], &mut b[0]], 2);
    }
    for c in &cables {
        assert_eq!(seqs_from(c, 1), (0..n).collect::<Vec<_>>());
    }
    for (i, c) in cables.iter_mut().enumerate() {
        send_windowed(c, 10 + i as u8, n, &mut [&mut host], 1);
    }
    for (i, c) in cables.iter().enumerate() {
        assert_eq!(seqs_from(&host, 10 + i as u8), (0..n).collect::<Vec<_>>());
        assert!(
            seqs_from(c, 10 + (1 - i) as u8).is_empty(),
            "multi: cable to host only"
        );
    }
}

#[test]
fn hub_in_c_vde_plug_repeats_to_everyone_but_the_sender() {
    let t = Scratch::new("pl-hub");
    let dir = t.path("h");
    let (mut host, mut cables) = node_with_cables("hub", &dir, "", &[C_PLUG, rs_plug()]);
    let n = 400;
    {
        let (a, b) = cables.split_at_mut(1);
        send_windowed(&mut host, 1, n, &mut [&mut a[0], &mut b[0]], 2);
    }
    {
        let (a, b) = cables.split_at_mut(1);
        send_windowed(&mut a[0], 2, n, &mut [&mut host, &mut b[0]], 2);
    }
    let seqs: Vec<u32> = (0..n).collect();
    assert_eq!(seqs_from(&cables[0], 1), seqs);
    assert_eq!(seqs_from(&cables[1], 1), seqs);
    assert_eq!(seqs_from(&host, 2), seqs);
    assert_eq!(seqs_from(&cables[1], 2), seqs);
    assert!(
        seqs_from(&cables[0], 2).is_empty(),
        "never back to the sender"
    );
}

/// `frame` from `src` to the station `dst` (02:00:00:00:00:dst).
fn unicast(src: u8, dst: u8, seq: u32) -> Vec<u8> {
    let mut f = frame(src, seq, SIZE);
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, dst]);
    f
}

#[test]
fn switch_in_c_vde_plug_learns_addresses() {
    let t = Scratch::new("pl-sw");
    let dir = t.path("s");
    let (mut host, mut cables) = node_with_cables("switch", &dir, "", &[C_PLUG, rs_plug()]);
    // Everyone announces itself with a broadcast.
    host.send(&frame(1, 0, SIZE));
    for c in cables.iter_mut() {
        c.wait_frames(1);
    }
    for (i, c) in cables.iter_mut().enumerate() {
        c.send(&frame(2 + i as u8, 0, SIZE));
        host.wait_frames(i + 1);
    }
    cables[1].wait_frames(2);
    cables[0].wait_frames(2);
    // Now unicasts go only where the addresses live: host -> cable 0,
    // cable 1 -> host, cable 0 -> cable 1.
    host.send(&unicast(1, 2, 1));
    cables[1].send(&unicast(3, 1, 1));
    cables[0].send(&unicast(2, 3, 1));
    assert_eq!(cables[0].wait_frames(3)[2], unicast(1, 2, 1));
    assert_eq!(host.wait_frames(3)[2], unicast(3, 1, 1));
    assert_eq!(cables[1].wait_frames(3)[2], unicast(2, 3, 1));
    // A closing broadcast from the host: whatever a wrong flood had sent
    // would have come before it.
    host.send(&frame(1, 9, SIZE));
    for c in cables.iter_mut() {
        assert_eq!(c.wait_frames(4).len(), 4);
        assert_eq!(c.received[3], frame(1, 9, SIZE));
    }
    assert_eq!(host.received.len(), 3);
}

/// Runs the rr-order scenario of tests/policies.rs with the C vde_plug as
/// the host, loading `modules` first, and returns each cable's sequence.
fn rr_order(modules: &Path, params: &str) -> Vec<Vec<u32>> {
    let t = Scratch::new("pl-rr");
    let dir = t.path("b");
    let mut host = c_node_with_path(modules, &[&format!("bonding://{dir}{params}")]);
    let mut cables: Vec<Plug> = (0..3)
        .map(|i| {
            let c = Plug::spawn(C_PLUG, &[&dir]);
            wait_ports(&dir, i + 1);
            c
        })
        .collect();
    let one_at_a_time = |host: &mut Plug, cables: &mut [Plug], seqs: std::ops::Range<u32>| {
        for s in seqs {
            let before: usize = cables.iter().map(|c| c.received.len()).sum();
            host.send(&frame(1, s, 60));
            let deadline = std::time::Instant::now() + PATIENCE;
            while cables.iter().map(|c| c.received.len()).sum::<usize>() == before {
                assert!(std::time::Instant::now() < deadline, "frame {s} lost");
                cables.iter_mut().for_each(|c| {
                    c.collect(Duration::from_millis(1));
                });
            }
        }
    };
    one_at_a_time(&mut host, &mut cables, 0..30);
    drop(cables.remove(0));
    wait_ports(&dir, 2);
    one_at_a_time(&mut host, &mut cables, 30..50);
    cables
        .iter()
        .map(|c| c.received.iter().map(|f| seq_of(f)).collect())
        .collect()
}

#[test]
fn rr_order_equals_the_c_module() {
    let ours = rr_order(&plugins_dir(), "[policy=rr]");
    let empty = Scratch::new("pl-none");
    let theirs = rr_order(&empty.dir, "");
    assert_eq!(ours, theirs);
    assert!(ours.iter().all(|c| !c.is_empty()));
}

/// Exit status and stderr of the C vde_plug opening `url`, with our
/// modules first (`ours`) or Debian's alone.
fn open_outcome(ours: bool, url: &str) -> (Option<i32>, String) {
    let empty = Scratch::new("pl-none");
    let dir = if ours {
        plugins_dir()
    } else {
        empty.dir.clone()
    };
    let mut p = c_plug_with_path(&dir, &[url]);
    p.close_stdin();
    let (st, err) = p.wait();
    (st.code(), err)
}

#[test]
fn bad_urls_fail_as_with_the_c_module() {
    let t = Scratch::new("pl-bad");
    let live = t.path("live");
    let _node = Plug::start_node(rs_plug(), &[&format!("hub://{live}")]);
    for url in [
        format!("bonding://{}[foo=1]", t.path("x")),
        format!("multi://{live}"),
        format!("switch://{}/no/such/dir/n", t.dir.display()),
    ] {
        // The last line: Debian's 4.0.1 spells the line before it
        // "unknwown key"; we print "unknown key".
        let last = |(code, err): (Option<i32>, String)| {
            (code, err.lines().last().unwrap_or("").to_string())
        };
        let ours = last(open_outcome(true, &url));
        let theirs = last(open_outcome(false, &url));
        assert_eq!(ours, theirs, "{url}");
        assert_eq!(ours.0, Some(1), "{url}");
        assert!(
            ours.1.starts_with(&format!("vde_open {url}: ")),
            "{url}: {}",
            ours.1
        );
    }
}

/// Someone without write permission on the parent directory.
#[test]
fn no_permission_fails_as_with_the_c_module() {
    // SAFETY: getuid cannot fail.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("skipped: needs root to run vde_plug as nobody");
        return;
    }
    build_plugins();
    let t = Scratch::new("pl-perm");
    // A copy of our modules that nobody can read, in a directory it can.
    let mods = t.dir.join("mods");
    std::fs::create_dir(&mods).unwrap();
    for m in ["bonding", "multi"] {
        let name = format!("libvdeplug_{m}.so");
        std::fs::copy(plugins_dir().join(&name), mods.join(&name)).unwrap();
    }
    let locked = t.dir.join("locked");
    std::fs::create_dir(&locked).unwrap();
    let url = format!("bonding://{}/n", locked.display());
    let run = |path: &str| {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "env"])
            .arg(format!("VDEPLUGIN_PATH={path}"))
            .args([module_host().as_str(), &url])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ours = run(&format!("{}:{}", mods.display(), debian_modules()));
    let theirs = run(&debian_modules());
    assert_eq!(ours, theirs);
    assert_eq!(ours.0, Some(1));
    assert!(ours.1.contains("Permission denied"), "{}", ours.1);
}

#[test]
fn close_removes_the_node_and_logs_counters_when_asked() {
    let t = Scratch::new("pl-close");
    for scheme in ["bonding", "multi", "hub", "switch"] {
        let dir = t.path(scheme);
        let (mut host, cables) = node_with_cables(scheme, &dir, "", &[C_PLUG, rs_plug()]);
        host.close_stdin();
        let (st, err) = host.wait();
        assert_eq!(st.code(), Some(0), "{scheme}: {err}");
        assert!(!Path::new(&dir).exists(), "{scheme}: {dir} left behind");
        drop(cables);
    }
    // With VDE_PLUG_RS_LOG=debug the counters come out on stderr at close.
    let dir = t.path("logged");
    let mut host = Plug::start_node(
        "env",
        &[
            &format!(
                "VDEPLUGIN_PATH={}:{}",
                plugins_dir().display(),
                debian_modules()
            ),
            "VDE_PLUG_RS_LOG=debug",
            &module_host(),
            &format!("bonding://{dir}"),
        ],
    );
    host.send(&frame(1, 0, SIZE));
    host.close_stdin();
    let (_, err) = host.wait();
    assert!(err.contains("link counters"), "{err}");
    assert!(!Path::new(&dir).exists());
}

#[test]
fn sigkill_leaves_a_stale_node_that_the_next_open_recovers() {
    let t = Scratch::new("pl-kill");
    let dir = t.path("b");
    let (host, cables) = node_with_cables("bonding", &dir, "", &[C_PLUG]);
    host.signal(libc::SIGKILL);
    assert!(wait_gone(host.pid()));
    drop(cables);
    assert!(
        Path::new(&format!("{dir}/ctl")).exists(),
        "a stale node is left"
    );
    // Our module, in the C vde_plug, takes it over, and so does our binary.
    let (mut again, mut cables) = node_with_cables("bonding", &dir, "", &[rs_plug()]);
    send_windowed(&mut again, 1, 50, &mut [&mut cables[0]], 1);
    again.signal(libc::SIGKILL);
    assert!(wait_gone(again.pid()));
    drop(cables);
    let mut ours = Plug::start_node(rs_plug(), &[&format!("bonding://{dir}")]);
    let mut cable = Plug::spawn(C_PLUG, &[&dir]);
    wait_cables_of(&dir, &[cable.pid()]);
    send_windowed(&mut ours, 1, 50, &mut [&mut cable], 1);
}

/// Modes and group as the installed C module makes them: `mode=` in the
/// URL counts, vde_plug's `-m`/`-g` do not (4.0.1's nodes ignore them).
#[test]
fn permissions_match_the_c_module() {
    use std::os::unix::fs::MetadataExt;
    let t = Scratch::new("pl-mode");
    let stat = |p: &str| {
        let m = std::fs::metadata(p).unwrap();
        (m.mode() & 0o7777, m.gid())
    };
    for (opts, params) in [
        (&["-m", "0666", "-g", "daemon"][..], ""),
        (&[][..], "[mode=0660/grp=daemon]"),
        (&[][..], "[mode=0640/dirmode=0750]"),
    ] {
        let mut seen = Vec::new();
        for (i, ours) in [true, false].into_iter().enumerate() {
            let empty = Scratch::new("pl-none");
            let modules = if ours {
                plugins_dir()
            } else {
                empty.dir.clone()
            };
            let dir = t.path(&format!("n{i}"));
            let url = format!("bonding://{dir}{params}");
            let mut args: Vec<&str> = opts.to_vec();
            args.push(&url);
            let mut host = c_node_with_path(&modules, &args);
            seen.push((stat(&dir), stat(&format!("{dir}/ctl"))));
            host.close_stdin();
            host.wait();
        }
        assert_eq!(seen[0], seen[1], "{opts:?} {params}");
    }
}

/// Our bonding module driven in this process (as a program would, but
/// with nobody reading the cables unless the test does), and two raw
/// cables joined to it.
fn hosted_with_two_cables(t: &Scratch, dir: &str, params: &str) -> (HostedNode, [RawClient; 2]) {
    let mut node = HostedNode::open("bonding", &format!("{dir}{params}")).unwrap();
    let joining = {
        let (dir, socks) = (dir.to_string(), t.dir.clone());
        std::thread::spawn(move || {
            [
                RawClient::join(&dir, &socks).unwrap(),
                RawClient::join(&dir, &socks).unwrap(),
            ]
        })
    };
    let mut buf = [0u8; 2048];
    while !joining.is_finished() {
        node.recv(&mut buf);
        std::thread::sleep(Duration::from_micros(100));
    }
    (node, joining.join().unwrap())
}

/// The sequence numbers of the host's frames (source 1) waiting in the
/// cables' sockets now, each checked byte for byte; path reports skipped.
fn drain_cables(cables: &[RawClient]) -> Vec<u32> {
    let mut buf = [0u8; 2048];
    let mut got = Vec::new();
    for c in cables {
        c.data.set_nonblocking(true).unwrap();
        while let Ok(len) = c.data.recv(&mut buf) {
            let f = &buf[..len];
            if !is_path_report(f) {
                assert_eq!(f, &frame(1, seq_of(f), SIZE)[..]);
                got.push(seq_of(f));
            }
        }
    }
    got
}

/// A short burst after a quiet spell is not held for a batch: every frame
/// is in a cable's socket when its `vde_send` returns.
#[test]
fn hosted_short_burst_is_not_held() {
    let t = Scratch::new("pl-burst");
    let dir = t.path("b");
    let (mut node, cables) = hosted_with_two_cables(&t, &dir, "");
    let quiet = std::time::Instant::now();
    while quiet.elapsed() < HOLD_GAP {
        std::hint::spin_loop();
    }
    let n = u32::from(HOLD_AFTER);
    for s in 0..n {
        node.send(&frame(1, s, SIZE));
    }
    let mut got = drain_cables(&cables);
    got.sort_unstable();
    assert_eq!(got, (0..n).collect::<Vec<_>>());
}

/// Frames held for a batch go without the program doing anything but
/// what programs do: wait for the data fd to turn readable, then call
/// `vde_recv` (the batch's timer makes it readable).
#[test]
fn hosted_held_frames_go_when_the_data_fd_turns_readable() {
    let t = Scratch::new("pl-held");
    let dir = t.path("b");
    // adaptive: no path reports, whose timer would wake the program too.
    let (mut node, cables) = hosted_with_two_cables(&t, &dir, "[policy=adaptive]");
    let n = 40u32;
    for s in 0..n {
        node.send(&frame(1, s, SIZE));
    }
    let mut buf = [0u8; 2048];
    let mut got = Vec::new();
    loop {
        got.extend(drain_cables(&cables));
        if got.len() == n as usize {
            break;
        }
        let mut pfd = libc::pollfd {
            fd: node.datafd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, PATIENCE.as_millis() as i32) };
        assert_eq!(
            ready,
            1,
            "{} of {n} frames out, and the data fd stays quiet",
            got.len()
        );
        node.recv(&mut buf);
    }
    got.sort_unstable();
    assert_eq!(got, (0..n).collect::<Vec<_>>());
}

/// The shell the modules run, in this process: `send` never waits. Two
/// cables nobody reads fill up; the node queues what it can and drops the
/// rest, counted; once the cables are read, every frame it took arrives,
/// each once.
#[test]
fn hosted_bonding_never_blocks_and_counts_what_it_drops() {
    let t = Scratch::new("pl-drop");
    let dir = t.path("b");
    let (mut node, cables) = hosted_with_two_cables(&t, &dir, "");
    let mut buf = [0u8; 2048];
    let n = 3000u32;
    for s in 0..n {
        node.send(&frame(1, s, SIZE));
    }
    let program = |node: &HostedNode| {
        node.report()
            .lines()
            .find(|l| l.starts_with("program"))
            .and_then(parse_counter_row)
            .expect("a program row")
    };
    let row = program(&node);
    assert_eq!(row.frames_in + row.full, u64::from(n), "{row:?}");
    assert!(
        row.full > 0,
        "nobody read the cables, yet nothing was dropped"
    );
    let mut seen = vec![0u8; n as usize];
    let mut got = 0u64;
    let deadline = std::time::Instant::now() + PATIENCE;
    while got < row.frames_in {
        assert!(
            std::time::Instant::now() < deadline,
            "{got} of {}",
            row.frames_in
        );
        node.recv(&mut buf);
        for s in drain_cables(&cables) {
            seen[s as usize] += 1;
            got += 1;
        }
    }
    assert!(seen.iter().all(|&k| k <= 1), "a frame twice");
    assert_eq!(program(&node).frames_in, got);
    drop(node);
    assert!(!Path::new(&dir).exists());
}

/// Two of our modules in one vde_plug (`vde_plug bonding://A multi://B`):
/// each copy is its own kind, and frames cross from a cable of A to the
/// cables of B.
#[test]
fn two_of_our_modules_in_one_vde_plug() {
    let t = Scratch::new("pl-two");
    let (a, b) = (t.path("a"), t.path("b"));
    let mut plug = c_node_with_path(
        &plugins_dir(),
        &[&format!("bonding://{a}"), &format!("multi://{b}")],
    );
    assert!(maps_our_module(plug.pid(), "bonding") && maps_our_module(plug.pid(), "multi"));
    let mut from = Plug::spawn(rs_plug(), &[&a]);
    wait_ports(&a, 1);
    let mut to: Vec<Plug> = (0..2)
        .map(|i| {
            let c = Plug::spawn(if i == 0 { C_PLUG } else { rs_plug() }, &[&b]);
            wait_ports(&b, i + 1);
            c
        })
        .collect();
    {
        let (x, y) = to.split_at_mut(1);
        send_windowed(&mut from, 5, 200, &mut [&mut x[0], &mut y[0]], 2);
    }
    for c in &to {
        assert_eq!(seqs_from(c, 5), (0..200).collect::<Vec<_>>());
    }
    plug.signal(libc::SIGTERM);
    plug.wait();
    assert!(!Path::new(&a).exists() && !Path::new(&b).exists());
}

/// Clients whose control stream is gone right after their request (their
/// datagram socket still there): the program hosting the module lives on
/// and the node still takes cables.
#[test]
fn clients_vanishing_mid_handshake_do_not_kill_the_program() {
    use std::io::Write;
    let t = Scratch::new("pl-vanish");
    let dir = t.path("b");
    let (mut host, _) = node_with_cables("bonding", &dir, "", &[]);
    // Their datagram sockets stay, so the node gets as far as replying.
    let mut kept = Vec::new();
    for i in 0..40 {
        let own = client_sock_path(&t.dir);
        let sock = std::os::unix::net::UnixDatagram::bind(&own).unwrap();
        let mut ctl = std::os::unix::net::UnixStream::connect(format!("{dir}/ctl")).unwrap();
        ctl.write_all(&valid_request(&own, format!("vanish {i}").as_bytes()))
            .unwrap();
        drop(ctl);
        kept.push((sock, RemoveOnDrop(own)));
    }
    let mut cable = Plug::spawn(C_PLUG, &[&dir]);
    wait_cables_of(&dir, &[cable.pid()]);
    send_windowed(&mut host, 1, 50, &mut [&mut cable], 1);
    assert!(host.child.try_wait().unwrap().is_none(), "vde_plug died");
}

/// `--status` works on a node hosted inside a program: the C vde_plug
/// running our bonding module answers with its cables and names itself.
#[test]
fn status_of_a_node_inside_the_c_vde_plug() {
    let t = Scratch::new("plugstatus");
    let dir = t.path("b");
    let (host, cables) = node_with_cables("bonding", &dir, "", &[C_PLUG, rs_plug()]);
    let json = run(rs_plug(), &["--status", &dir, "--json"]);
    // The program's name is /proc/self/comm (15 bytes at most), which
    // qemu-user leaves as its own.
    let name = match emulator() {
        Some(runner) if skipped_under_emulation("the program is named as the emulator") => {
            let file = Path::new(runner).file_name().unwrap().to_string_lossy();
            file.chars().take(15).collect()
        }
        _ => "vde_plug".to_string(),
    };
    assert!(
        json.contains(&format!("\"host\":\"program {name} (pid {})\"", host.pid())),
        "{json}"
    );
    assert_eq!(
        json.matches("\"link\":\"port ").count(),
        cables.len(),
        "{json}"
    );
}
