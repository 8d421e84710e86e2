//! Nodes: starting one and waiting until it listens, its cables (port
//! sockets) and its counters.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

/// Waits until `path` exists (a node's ctl socket, say).
pub fn wait_for_path(path: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !Path::new(path).exists() {
        assert!(Instant::now() < deadline, "{path} never appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the node at `dir` accepts connections on its `ctl`. The C
/// node binds `ctl` before it listens (and sets its mode after): a client
/// that connects as soon as the name appears can be refused.
pub fn wait_node(dir: &str) {
    let ctl = format!("{dir}/ctl");
    let deadline = Instant::now() + PATIENCE;
    loop {
        match UnixStream::connect(&ctl) {
            Ok(_) => return,
            Err(e) => assert!(
                Instant::now() < deadline,
                "{dir}: no node listening on ctl: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What a node of ours holds with no cable: its two sockets.
pub fn bare_node() -> Vec<String> {
    vec!["ctl".to_string(), "status".to_string()]
}

/// The counters of the node of ours at `dir`, as `--status` gets them.
pub fn node_status(dir: &str) -> vde_plug_rs::status::Status {
    vde_plug_rs::status::fetch(Path::new(dir)).unwrap_or_else(|e| panic!("{e}"))
}

/// Whether every cable of the node at `dir` has carried frames both ways.
pub fn cables_carried_both_ways(dir: &str) -> bool {
    node_status(dir)
        .rows
        .iter()
        .filter(|r| r.link.starts_with("port "))
        .all(|r| r.counters[0] > 0 && r.counters[2] > 0)
}

/// Waits until the node of ours at `dir` has exactly the ports of the
/// cable processes `pids`, one each, and no other: where clients that
/// came and went could be counted as cables by their sockets alone.
#[track_caller]
pub fn wait_cables_of(dir: &str, pids: &[i32]) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        // A node taking over a killed one's directory answers once it has.
        let (rows, error) = match vde_plug_rs::status::fetch(Path::new(dir)) {
            Ok(st) => (st.rows, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let ports: Vec<&str> = rows
            .iter()
            .filter(|r| r.link.starts_with("port "))
            .map(|r| r.description.as_str())
            .collect();
        let each_once = pids.iter().all(|pid| {
            let tag = format!("pid={pid}");
            // The whole word: pid=12 is not pid=123's.
            let is_its = |d: &&&str| d.split_whitespace().any(|w| w == tag);
            ports.iter().filter(is_its).count() == 1
        });
        if each_once && ports.len() == pids.len() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{dir}: expected the ports of {pids:?} only, have {ports:?} ({error:?}; {:?})",
            dir_listing(dir)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Number of port sockets (`fdN`) in a node directory.
pub fn port_count(dir: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("fd"))
                .count()
        })
        .unwrap_or(0)
}

/// Sockets of vde clients still in their handshake: a client binds
/// `NODE/.PID-N`, sends its request, connects to its port, and only then
/// removes that name.
pub fn joining_count(dir: &str) -> usize {
    dir_listing(dir)
        .iter()
        .filter(|n| n.starts_with('.'))
        .count()
}

/// Waits until a node directory holds exactly `n` port sockets and no
/// client is still joining: `n` cables are up at both ends.
pub fn wait_ports(dir: &str, n: usize) {
    let deadline = Instant::now() + PATIENCE;
    while port_count(dir) != n || joining_count(dir) != 0 {
        assert!(
            Instant::now() < deadline,
            "{dir}: expected {n} ports and no client joining, have {:?}",
            dir_listing(dir)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A process a test starts with its standard streams on pipes: [`Plug`],
/// [`LivePlug`], [`ManualHost`].
pub trait Host: Sized {
    fn spawn_host(prog: &str, args: &[&str]) -> Self;

    /// The one way a test starts a node: runs `prog ARGS` and returns once
    /// every node its locators name (`hub://`, `switch://`, `multi://`,
    /// `bonding://DIR[...]`) accepts cables on its `ctl`.
    fn start_node(prog: &str, args: &[&str]) -> Self {
        let host = Self::spawn_host(prog, args);
        wait_nodes(prog, args);
        host
    }
}

/// Waits until every node that `prog ARGS` starts accepts cables: those
/// its locators name, and for `bonding_node`/`multi_node` (run as `prog`
/// or by it, as in `ip netns exec NS bonding_node DIR ...`) its directory,
/// the first absolute path after the program's name.
pub fn wait_nodes(prog: &str, args: &[&str]) {
    let argv: Vec<&str> = std::iter::once(prog).chain(args.iter().copied()).collect();
    let program_dir = argv
        .iter()
        .position(|a| a.ends_with("_node"))
        .and_then(|i| argv[i + 1..].iter().copied().find(|a| a.starts_with('/')));
    let dirs: Vec<&str> = args
        .iter()
        .filter_map(|a| node_dir(a))
        .chain(program_dir)
        .collect();
    assert!(!dirs.is_empty(), "{prog} {args:?} starts no node");
    for dir in dirs {
        wait_node(dir);
    }
}

impl Host for Plug {
    fn spawn_host(prog: &str, args: &[&str]) -> Self {
        Plug::spawn(prog, args)
    }
}

impl Host for LivePlug {
    fn spawn_host(prog: &str, args: &[&str]) -> Self {
        LivePlug::spawn(prog, args)
    }
}

impl Host for ManualHost {
    fn spawn_host(prog: &str, args: &[&str]) -> Self {
        ManualHost::spawn(prog, args)
    }
}

/// The directory a node locator names (`bonding:///tmp/n[mode=0600]` is
/// `/tmp/n`); `None` for any other argument.
pub fn node_dir(arg: &str) -> Option<&str> {
    let (scheme, rest) = arg.split_once("://")?;
    let is_node = matches!(scheme, "hub" | "switch" | "multi" | "bonding");
    is_node.then(|| rest.split('[').next().unwrap_or(rest))
}
