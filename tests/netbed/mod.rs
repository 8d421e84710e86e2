//! The network test bed shared by tests/e2e.rs and tests/multipath.rs:
//! network namespaces, background processes and a real sshd, each removed
//! by its Drop guard (also on a panic), and the checks that skip these
//! tests without root.
#![allow(dead_code)]

use std::fs::File;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::common::*;

pub const ADDR_A: &str = "198.18.0.1";
pub const ADDR_B: &str = "198.18.0.2";
pub const SSHD: &str = "/usr/sbin/sshd";
/// linux/capability.h
pub const CAP_NET_ADMIN: libc::c_ulong = 12;

/// One scenario at a time: they share the two cores, and timing matters
/// to the ping every 10 ms.
pub static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the lock if the scenario can run here: `None` (and a printed
/// reason) without root; a panic naming the package when a tool is missing.
pub fn ready(test: &str) -> Option<MutexGuard<'static, ()>> {
    // SAFETY: geteuid has no failure mode.
    if unsafe { libc::geteuid() } != 0 {
        // Straight to stderr, past the harness's capture, to be seen.
        let _ = writeln!(
            std::io::stderr(),
            "{test}: skipped: needs root (network namespaces, taps, sshd)"
        );
        return None;
    }
    // Root in a container may lack the capabilities (CAP_NET_ADMIN for
    // taps and addresses, CAP_SYS_ADMIN for `ip netns`).
    let caps = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
            u64::from_str_radix(hex, 16).ok()
        })
        .unwrap_or(0);
    if caps & (1 << CAP_NET_ADMIN) == 0 || caps & (1 << 21) == 0 {
        let _ = writeln!(
            std::io::stderr(),
            "{test}: skipped: needs CAP_NET_ADMIN and CAP_SYS_ADMIN (root in a container?)"
        );
        return None;
    }
    for (tool, package) in [
        ("ip", "iproute2"),
        ("ping", "iputils-ping"),
        ("ssh", "openssh-client"),
        ("ssh-keygen", "openssh-client"),
        ("sysctl", "procps"),
    ] {
        assert!(
            which(tool),
            "{tool} is missing: install {package} (scripts/test installs it)"
        );
    }
    assert!(
        Path::new(SSHD).exists(),
        "{SSHD} is missing: install openssh-server (scripts/test installs it)"
    );
    require_c_reference();
    assert!(
        Path::new("/dev/net/tun").exists(),
        "/dev/net/tun is missing: the kernel has no tun/tap driver"
    );
    Some(SERIAL.lock().unwrap_or_else(|e| e.into_inner()))
}

pub fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(tool).is_file())
}

pub fn succeeds(prog: &str, args: &[&str]) -> bool {
    Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not after {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn signal(pid: i32, sig: i32) {
    // SAFETY: signalling a process this test started.
    unsafe { libc::kill(pid, sig) };
}

/// The processes whose parent is `pid`.
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut kids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so cut after ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let ppid = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        if ppid == Some(pid) {
            if let Some(p) = stat.split_whitespace().next().and_then(|s| s.parse().ok()) {
                kids.push(p);
            }
        }
    }
    kids
}

// ---------------------------------------------------------------- guards

/// A network namespace `NAME` (unique to this process and scenario), with
/// lo up and IPv6 off (no router solicitations on the taps). On drop,
/// whatever still runs in it is killed and it is deleted.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "vde{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        run("ip", &["-n", &ns.name, "link", "set", "lo", "up"]);
        run(
            "ip",
            &[
                "netns",
                "exec",
                &ns.name,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        );
        ns
    }

    /// Runs `f` on a thread that has entered this namespace: sockets it
    /// makes belong to the namespace, and work from any thread afterwards.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.name, f)
    }

    /// Waits for `tap0` (made by the node just started in here), then gives
    /// it `addr`/24 and brings it up.
    pub fn configure_tap(&self, addr: &str) {
        wait_until(&format!("{}: tap0 appears", self.name), || {
            succeeds("ip", &["-n", &self.name, "link", "show", "tap0"])
        });
        run(
            "ip",
            &[
                "-n",
                &self.name,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "tap0",
            ],
        );
        run("ip", &["-n", &self.name, "link", "set", "tap0", "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse() {
                    signal(pid, libc::SIGKILL);
                }
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A node run inside `ns` (`ip netns exec NS ARGS`, logged as `name`)
/// with its host side on `tap://tap0`: the tap gets `addr`, and this
/// returns once the node accepts cables.
pub fn node_in(t: &Scratch, name: &str, ns: &Netns, addr: &str, args: &[&str]) -> Proc {
    let mut all = vec!["netns", "exec", ns.name.as_str()];
    all.extend_from_slice(args);
    let p = Proc::spawn(t, name, "ip", &all);
    ns.configure_tap(addr);
    wait_nodes("ip", &all);
    p
}

/// A background process: SIGTERM on drop, SIGKILL if it lingers.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: String,
}

impl Proc {
    pub fn spawn(t: &Scratch, name: &str, prog: &str, args: &[&str]) -> Proc {
        let log = t.path(&format!("{name}.log"));
        let child = Command::new(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"));
        Proc {
            name: name.into(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn assert_running(&mut self) {
        if let Ok(Some(st)) = self.child.try_wait() {
            panic!("{} ended ({st}): {}", self.name, self.log());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal(self.pid(), libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A host key, a client key and the file authorizing the client, made
/// for the run in the scratch directory.
fn make_keys(t: &Scratch) -> (String, String, String) {
    let (host, client, keys) = (t.path("host_key"), t.path("client_key"), t.path("keys"));
    for k in [&host, &client] {
        run("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-f", k]);
    }
    std::fs::copy(format!("{client}.pub"), &keys).unwrap();
    (host, client, keys)
}

/// An sshd configuration of the test's own: key login as root only.
fn write_config(t: &Scratch, port: u16, listen: &str, host: &str, keys: &str) -> String {
    let config = t.path("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress {listen}\nHostKey {host}\nPidFile none\n\
             AuthorizedKeysFile {keys}\nPermitRootLogin yes\nPubkeyAuthentication yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nPrintMotd no\nMaxStartups 100\nMaxSessions 100\n\
             LogLevel ERROR\n"
        ),
    )
    .unwrap();
    config
}

/// `sh -c` script, config path as `$1`: sshd on a tmpfs /run of its own
/// (run it in a mount namespace of its own), so the host's /run/sshd is
/// neither needed nor touched, and another test run cannot take it away.
fn sshd_in_private_run() -> String {
    format!(
        "mount -t tmpfs -o mode=755 sshd-run /run && mkdir -m 755 /run/sshd && \
         exec {SSHD} -f \"$1\" -D -e"
    )
}

/// A real sshd on a free loopback port, with a host key, a client key and
/// a configuration of its own in the scratch directory.
pub struct Sshd {
    pub port: u16,
    pub key: String,
    pub proc: Option<Proc>,
}

impl Sshd {
    pub fn start(t: &Scratch) -> Sshd {
        let (host, client, keys) = make_keys(t);
        let mut sshd = Sshd {
            port: 0,
            key: client,
            proc: None,
        };
        for attempt in 0..5 {
            // A port that was free a moment ago.
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let config = write_config(t, port, "127.0.0.1", &host, &keys);
            let script = sshd_in_private_run();
            let mut p = Proc::spawn(
                t,
                &format!("sshd{attempt}"),
                "unshare",
                &[
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    &script,
                    "sh",
                    &config,
                ],
            );
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let deadline = Instant::now() + PATIENCE;
            while Instant::now() < deadline && p.child.try_wait().ok() == Some(None) {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if p.child.try_wait().ok() == Some(None) {
                sshd.port = port;
                sshd.proc = Some(p);
                break;
            }
            eprintln!("sshd on port {port} did not start: {}", p.log());
        }
        assert!(sshd.proc.is_some(), "sshd does not start");
        let mut login = Command::new("ssh");
        login.args(sshd.ssh_args()).args(["root@127.0.0.1", "true"]);
        sshd.assert_login(login);
        sshd
    }

    /// Runs `login` (an ssh to this sshd running `true`) and fails the test,
    /// with both sides' words, if it cannot log in.
    fn assert_login(&self, mut login: Command) {
        let out = login.stdin(Stdio::null()).output().unwrap();
        assert!(
            out.status.success(),
            "cannot log in to the test sshd: {}{}",
            String::from_utf8_lossy(&out.stderr),
            self.proc.as_ref().unwrap().log()
        );
    }

    /// An sshd inside namespace `ns`, on `port` of every address there,
    /// logged into once from namespace `from` at `login_addr`. It runs on a
    /// tmpfs /run of its own (in the mount namespace `ip netns exec` makes),
    /// so the host's /run/sshd is neither needed nor touched.
    pub fn start_in(t: &Scratch, ns: &Netns, port: u16, from: &Netns, login_addr: &str) -> Sshd {
        let (host, client, keys) = make_keys(t);
        let config = write_config(t, port, "0.0.0.0", &host, &keys);
        let script = sshd_in_private_run();
        let mut p = Proc::spawn(
            t,
            "sshd",
            "ip",
            &[
                "netns", "exec", &ns.name, "sh", "-c", &script, "sh", &config,
            ],
        );
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + PATIENCE;
        while !ns.enter(|| TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()) {
            p.assert_running();
            assert!(
                Instant::now() < deadline,
                "sshd does not listen: {}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let sshd = Sshd {
            port,
            key: client,
            proc: Some(p),
        };
        let mut login = Command::new("ip");
        login
            .args(["netns", "exec", &from.name, "ssh"])
            .args(sshd.ssh_args())
            .args([&format!("root@{login_addr}"), "true"]);
        sshd.assert_login(login);
        sshd
    }

    pub fn ssh_args(&self) -> Vec<String> {
        let port = self.port.to_string();
        [
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "IdentitiesOnly=yes",
            "-i",
            &self.key,
            "-p",
            &port,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(p) = &self.proc {
            // The sessions of cables still up (normally none by now).
            for kid in children_of(p.pid()) {
                signal(kid, libc::SIGTERM);
            }
        }
        self.proc = None;
    }
}

#[derive(Debug, Default)]
pub struct Ping {
    pub transmitted: u32,
    pub received: u32,
    /// Sequence numbers answered (each once), and `DUP!` lines.
    pub answered: std::collections::BTreeSet<u32>,
    pub dups: u32,
    pub text: String,
}

impl Ping {
    pub fn parse(text: &str) -> Ping {
        let mut p = Ping {
            text: text.to_string(),
            ..Ping::default()
        };
        for line in text.lines() {
            if let Some(seq) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("icmp_seq="))
                .and_then(|s| s.parse().ok())
            {
                if line.contains("DUP!") {
                    p.dups += 1;
                } else {
                    p.answered.insert(seq);
                }
            }
            if line.contains("packets transmitted") {
                let nums: Vec<u32> = line
                    .split(", ")
                    .filter_map(|f| f.split_whitespace().next()?.parse().ok())
                    .collect();
                p.transmitted = nums.first().copied().unwrap_or(0);
                p.received = nums.get(1).copied().unwrap_or(0);
            }
        }
        p
    }

    pub fn lost(&self) -> u32 {
        self.transmitted.saturating_sub(self.received)
    }

    /// Pings with no answer among those sent before the last answered one
    /// (the ones still in flight when ping was stopped do not count).
    pub fn holes(&self) -> Vec<u32> {
        let last = self.answered.iter().next_back().copied().unwrap_or(0);
        (1..=last).filter(|s| !self.answered.contains(s)).collect()
    }
}

/// A ping running in the background whose replies the test follows as
/// they come, to move on once enough have been answered (not after a time).
pub struct LivePing {
    child: Child,
    lines: Receiver<String>,
    text: String,
    answered: usize,
}

impl LivePing {
    /// `ping -i 0.01 ADDR` run inside `ns`.
    pub fn start(ns: &Netns, addr: &str) -> LivePing {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "ping", "-i", "0.01", addr])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        LivePing {
            lines: lines_of(child.stdout.take().unwrap()),
            child,
            text: String::new(),
            answered: 0,
        }
    }

    /// Waits (bounded by PATIENCE) until `more` further replies came.
    pub fn wait_replies(&mut self, more: usize) {
        let want = self.answered + more;
        let deadline = Instant::now() + PATIENCE;
        while self.answered < want {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!("{} of {want} ping replies:\n{}", self.answered, self.text)
            });
            if line.contains("icmp_seq=") && !line.contains("DUP!") {
                self.answered += 1;
            }
            self.text.push_str(&line);
            self.text.push('\n');
        }
    }

    /// Stops the ping (SIGINT: it prints its summary) and parses all it said.
    pub fn stop(mut self) -> Ping {
        signal(self.child.id() as i32, libc::SIGINT);
        let _ = self.child.wait();
        while let Ok(line) = self.lines.recv_timeout(PATIENCE) {
            self.text.push_str(&line);
            self.text.push('\n');
        }
        Ping::parse(&self.text)
    }
}

impl Drop for LivePing {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
