//! End to end, as in the seed manual pages: two network namespaces, each
//! with a tap interface attached to a node (`bonding_node PATH tap://tap0`
//! run inside it), joined by cables that go through a real sshd on
//! loopback: `vde_plug_rs /tmp/vm1 = ssh root@127.0.0.1 vde_plug_rs /tmp/vm2`.
//! The kernels' own ping and TCP run across.
//!
//! These tests need root (namespaces, taps, sshd) and skip, saying so,
//! without it. They need ip, ping, ssh, ssh-keygen, /usr/sbin/sshd and the
//! C vde_plug: scripts/test installs them. They run one at a time (a lock),
//! and everything they start is stopped by Drop guards, also on a panic.
//! scripts/e2e runs the same scenarios with measurements (iperf3).

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

mod netbed;

use netbed::*;

// ---------------------------------------------------------------- the set-up

#[derive(Clone, Copy, PartialEq)]
enum Impl {
    Ours,
    C,
}

/// Two namespaces with their nodes, an sshd, and the cables between them.
/// Fields drop in order: cables, then nodes, then sshd and namespaces.
struct Net {
    cables: Vec<Proc>,
    nodes: Vec<Proc>,
    sshd: Sshd,
    a: Netns,
    b: Netns,
    t: Scratch,
}

impl Net {
    fn new(name: &str) -> Net {
        let t = Scratch::new(name);
        let a = Netns::new("A");
        let b = Netns::new("B");
        let sshd = Sshd::start(&t);
        Net {
            cables: Vec::new(),
            nodes: Vec::new(),
            sshd,
            a,
            b,
            t,
        }
    }

    fn vm(&self, side: usize) -> String {
        self.t.path(&format!("vm{side}"))
    }

    /// Starts the node of `side` (1 = namespace A, 2 = B) inside its
    /// namespace with its host side on tap://tap0, and configures the tap.
    /// `kind` is "bonding" or "multi"; `extra` goes to our node binaries.
    fn node(&mut self, side: usize, imp: Impl, kind: &str, extra: &[&str]) {
        let (ns, addr) = match side {
            1 => (&self.a, ADDR_A),
            _ => (&self.b, ADDR_B),
        };
        let path = self.vm(side);
        let mut args: Vec<String> = Vec::new();
        match (imp, kind) {
            (Impl::Ours, "bonding") => args.push(bonding_node().into()),
            (Impl::Ours, _) => args.push(multi_node().into()),
            (Impl::C, _) => args.push(C_PLUG.into()),
        }
        if imp == Impl::Ours {
            args.extend(extra.iter().map(|s| s.to_string()));
            args.push(path.clone());
        } else {
            args.push(format!("{kind}://{path}"));
        }
        args.push("tap://tap0".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let p = node_in(&self.t, &format!("node{side}"), ns, addr, &args);
        self.nodes.push(p);
    }

    /// `NEAR vm1 = ssh root@127.0.0.1 FAR vm2`, then waits until both
    /// nodes have `self.cables.len()` ports.
    fn cable(&mut self, near: Impl, far: Impl) {
        let plug = |i| match i {
            Impl::Ours => rs_plug().to_string(),
            Impl::C => C_PLUG.to_string(),
        };
        let mut args = Vec::new();
        if near == Impl::C {
            // The C vde_plug's getopt would take ssh's options for its own.
            args.push("--".to_string());
        }
        args.extend([self.vm(1), "=".into(), "ssh".into()]);
        args.extend(self.sshd.ssh_args());
        args.extend(["root@127.0.0.1".into(), plug(far), self.vm(2)]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let n = self.cables.len();
        let p = Proc::spawn(&self.t, &format!("cable{n}"), &plug(near), &args);
        self.cables.push(p);
        self.wait_cables(n + 1);
    }

    fn wait_cables(&mut self, n: usize) {
        let (vm1, vm2) = (self.vm(1), self.vm(2));
        // A C far end says nothing: our near plug joins after the bound.
        let deadline = Instant::now() + vde_plug_rs::run::FAR_END_BOUND + PATIENCE;
        let joined = |dir: &str| port_count(dir) == n && joining_count(dir) == 0;
        while !joined(&vm1) || !joined(&vm2) {
            for c in &mut self.cables {
                if port_count(&vm1) < n {
                    c.assert_running();
                }
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} cables: vm1 has {} ports, vm2 has {}; {}",
                port_count(&vm1),
                port_count(&vm2),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .chain(&self.cables)
            .map(|p| format!("\n{}: {}", p.name, p.log().trim_end()))
            .collect()
    }

    /// Kills the ssh client of cable `i` (the cable breaks as it would on
    /// a network failure) and waits until its plug has gone.
    fn cut(&mut self, i: usize) {
        let mut plug = self.cables.remove(i);
        let ssh = children_of(plug.pid());
        assert!(!ssh.is_empty(), "cable {i} has no ssh child");
        for pid in ssh {
            signal(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + PATIENCE;
        while plug.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "cable {i} outlived its ssh: {}",
                plug.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `ping -c COUNT -i INTERVAL` from A to B, to the end.
    fn ping(&self, count: u32, interval: &str) -> Ping {
        let count = count.to_string();
        let out = Command::new("ip")
            .args(["netns", "exec", &self.a.name, "ping", "-c", &count])
            // A late reply is not a lost one: -W bounds a hang only.
            .args(["-i", interval, "-W", "10", ADDR_B])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Ping::parse(&String::from_utf8_lossy(&out.stdout))
    }

    /// `ping -i 0.01` from A to B in the background, until `LivePing::stop`.
    fn ping_start(&self) -> LivePing {
        LivePing::start(&self.a, ADDR_B)
    }

    /// Sends `len` pseudo-random bytes over TCP from A to an echo server in
    /// B and checks that the same bytes come back.
    fn tcp_echo(&self, len: usize) {
        let listener = self.b.enter(|| TcpListener::bind((ADDR_B, 0)).unwrap());
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut buf = vec![0u8; 65536];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => s.write_all(&buf[..n]).unwrap(),
                    Err(e) => panic!("echo server: {e}"),
                }
            }
        });
        let data = pseudo_random(len);
        let to: SocketAddr = (ADDR_B.parse::<std::net::IpAddr>().unwrap(), port).into();
        let stream = self
            .a
            .enter(|| TcpStream::connect_timeout(&to, PATIENCE))
            .unwrap_or_else(|e| panic!("connect {to}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut reader = stream.try_clone().unwrap();
        let back = std::thread::spawn(move || {
            let mut got = Vec::new();
            reader.read_to_end(&mut got).map(|_| got)
        });
        let mut w = &stream;
        w.write_all(&data).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let got = back.join().unwrap().expect("reading the echo");
        server.join().unwrap();
        assert_eq!(got.len(), data.len(), "echo length");
        assert!(got == data, "the echoed bytes differ from those sent");
    }
}

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

// ---------------------------------------------------------------- scenarios

/// libvdeplug_bonding(1): two ssh cables between bonding nodes. The tap of
/// A exists beforehand (the node attaches to it), B's is made by the node.
#[test]
fn bonding_over_two_ssh_cables() {
    let Some(_lock) = ready("bonding_over_two_ssh_cables") else {
        return;
    };
    let mut net = Net::new("e2e-bond");
    run(
        "ip",
        &[
            "-n",
            &net.a.name,
            "tuntap",
            "add",
            "dev",
            "tap0",
            "mode",
            "tap",
        ],
    );
    net.node(1, Impl::Ours, "bonding", &[]);
    net.node(2, Impl::Ours, "bonding", &[]);
    net.cable(Impl::Ours, Impl::Ours);
    let p = net.ping(10, "0.05");
    assert_eq!(p.lost(), 0, "one cable: ping lost packets:\n{}", p.text);

    net.cable(Impl::Ours, Impl::Ours);
    let p = net.ping(50, "0.02");
    assert_eq!(p.transmitted, 50, "{}", p.text);
    assert_eq!(p.lost(), 0, "two cables: ping lost packets:\n{}", p.text);
    assert_eq!(p.dups, 0, "bonding duplicated frames:\n{}", p.text);
    net.tcp_echo(1 << 20);

    // A cable breaks: the bond goes on over the other one.
    net.cut(0);
    net.wait_cables(1);
    let p = net.ping(20, "0.02");
    assert_eq!(p.lost(), 0, "after a cable broke:\n{}", p.text);
    net.tcp_echo(256 << 10);
}

/// libvdeplug_multi(1): the handoff. A ping every 10 ms runs while the new
/// cable is laid and the old one's ssh is killed: not one ping is lost.
fn multi_handoff(name: &str, extra: &[&str]) {
    let Some(_lock) = ready(name) else {
        return;
    };
    let mut net = Net::new("e2e-multi");
    net.node(1, Impl::Ours, "multi", extra);
    net.node(2, Impl::Ours, "multi", extra);
    net.cable(Impl::Ours, Impl::Ours);
    let p = net.ping(3, "0.1");
    assert_eq!(p.lost(), 0, "one cable:\n{}", p.text);

    // Each step waits for replies, so pings flow before, across and after
    // the handoff however slow the machine is.
    let mut ping = net.ping_start();
    ping.wait_replies(20);
    net.cable(Impl::Ours, Impl::Ours);
    ping.wait_replies(20);
    net.cut(0);
    net.wait_cables(1);
    ping.wait_replies(20);
    let p = ping.stop();
    assert!(p.answered.len() >= 60, "too few pings:\n{}", p.text);
    assert!(
        p.holes().is_empty(),
        "pings lost in the handoff: {:?}\n{}",
        p.holes(),
        p.text
    );
    eprintln!(
        "{name}: {} pings, none lost, {} DUP! lines",
        p.answered.len(),
        p.dups
    );

    // Only the new cable is left, and it works.
    net.tcp_echo(256 << 10);
}

#[test]
fn multi_handoff_loses_no_ping() {
    multi_handoff("multi_handoff_loses_no_ping", &[]);
}

#[test]
fn multi_handoff_with_dedup_loses_no_ping() {
    multi_handoff("multi_handoff_with_dedup_loses_no_ping", &["--dedup", "50"]);
}

/// Bonding with the C vde_plug: its bonding:// node on one side, and the
/// C plug as the far or the near end of the cables.
fn mixed(name: &str, node_a: Impl, node_b: Impl, near: Impl, far: Impl) {
    let Some(_lock) = ready(name) else {
        return;
    };
    let mut net = Net::new("e2e-mix");
    net.node(1, node_a, "bonding", &[]);
    net.node(2, node_b, "bonding", &[]);
    net.cable(near, far);
    net.cable(near, far);
    let p = net.ping(50, "0.02");
    assert_eq!(p.transmitted, 50, "{}", p.text);
    assert_eq!(p.lost(), 0, "ping lost packets:\n{}", p.text);
    net.tcp_echo(1 << 20);
}

#[test]
fn mixed_c_bonding_node_and_far_plug() {
    mixed(
        "mixed_c_bonding_node_and_far_plug",
        Impl::Ours,
        Impl::C,
        Impl::Ours,
        Impl::C,
    );
}

#[test]
fn mixed_c_bonding_node_and_near_plug() {
    mixed(
        "mixed_c_bonding_node_and_near_plug",
        Impl::C,
        Impl::Ours,
        Impl::C,
        Impl::Ours,
    );
}

/// Without CAP_NET_ADMIN a missing tap cannot be made: the same message
/// and exit status as the C vde_plug.
#[test]
fn tap_without_cap_net_admin() {
    let Some(_lock) = ready("tap_without_cap_net_admin") else {
        return;
    };
    let ns = Netns::new("T");
    let ns_file = File::open(format!("/run/netns/{}", ns.name)).unwrap();
    let ns_fd = ns_file.as_raw_fd();
    let attempt = |prog: &str| {
        let mut cmd = Command::new(prog);
        cmd.args(["tap://vdenocap", "null://"]);
        // SAFETY: setns and prctl are plain system calls, safe after fork.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0
                    || libc::prctl(libc::PR_CAPBSET_DROP, CAP_NET_ADMIN, 0, 0, 0) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{prog} tap://vdenocap did not fail without CAP_NET_ADMIN");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status.code(), err)
    };
    let (code, err) = attempt(rs_plug());
    assert_eq!(code, Some(1), "exit status; stderr: {err}");
    assert_eq!(
        err.trim_end(),
        "vde_open tap://vdenocap: Operation not permitted"
    );
    let (c_code, c_err) = attempt(C_PLUG);
    assert_eq!((code, err.trim_end()), (c_code, c_err.trim_end()));
    assert!(!succeeds(
        "ip",
        &["-n", &ns.name, "link", "show", "vdenocap"]
    ));
}
