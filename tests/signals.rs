//! SIGINT, SIGTERM and SIGHUP end every wait, not only the loop's: a
//! handshake a switch never answers, `--status --watch`, a plug joining
//! its own node. Each ends as the loop ends (SIGTERM: exit 0; SIGINT and
//! SIGHUP: death by the signal), leaving nothing it made behind. Peers
//! are real: a socket that accepts and never answers, the C hub, vde_switch.

mod common;

use common::*;
use std::io::Read;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const ENDING: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// The end a plug comes to by `sig`, as the C vde_plug ends.
fn assert_ended_by(sig: i32, status: ExitStatus, what: &str, err: &str) {
    match sig {
        libc::SIGTERM => assert_eq!(status.code(), Some(0), "{what}: {status:?}\n{err}"),
        s => assert_eq!(status.signal(), Some(s), "{what}: {status:?}\n{err}"),
    }
    assert!(
        !err.contains("vde_open"),
        "{what}: a signal is not an open error: {err}"
    );
}

/// Waits until `cond` holds (bounded by PATIENCE).
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A switch that takes every connection and never answers: `DIR/ctl`.
struct MuteSwitch {
    listener: UnixListener,
    held: Vec<UnixStream>,
}

impl MuteSwitch {
    fn new(dir: &str) -> MuteSwitch {
        std::fs::create_dir(dir).unwrap();
        let listener = UnixListener::bind(format!("{dir}/ctl")).unwrap();
        listener.set_nonblocking(true).unwrap();
        MuteSwitch {
            listener,
            held: Vec::new(),
        }
    }

    /// Waits for the next client and its whole request (the 122-byte
    /// header and a description): from then on the client waits for an
    /// answer that never comes.
    fn take_request(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        let mut conn = loop {
            match self.listener.accept() {
                Ok((c, _)) => break c,
                Err(_) => {
                    assert!(Instant::now() < deadline, "no client came");
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        };
        conn.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut header = [0u8; 122];
        conn.read_exact(&mut header).unwrap();
        self.held.push(conn);
    }
}

/// A plug of ours waiting for a switch's answer that never comes: each
/// ending signal ends it within the wait, its own socket removed from the
/// switch directory; with a node on its first side, the node goes too.
#[test]
fn a_mute_switch_does_not_hold_the_plug() {
    for sig in ENDING {
        let t = Scratch::new("mute");
        let sw = t.path("sw");
        let mut mute = MuteSwitch::new(&sw);
        let mut plug = Plug::spawn(rs_plug(), &[&sw]);
        mute.take_request();
        plug.signal(sig);
        let (st, err) = plug.wait();
        assert_ended_by(sig, st, "plug", &err);
        assert_eq!(dir_listing(&sw), ["ctl"], "the plug's socket is left");

        let node = t.path("n");
        let mut plug = Plug::spawn(rs_plug(), &[&format!("hub://{node}"), &sw]);
        mute.take_request();
        plug.signal(sig);
        let (st, err) = plug.wait();
        assert_ended_by(sig, st, "node and plug", &err);
        assert!(!Path::new(&node).exists(), "{node} left behind");
        assert_eq!(dir_listing(&sw), ["ctl"]);
    }
}

/// Requests no C switch answers: port 0 of a C hub (`[0]`, `[port=0]`:
/// it neither answers nor hangs up), port 99999 of a vde_switch (it has
/// 32). The plug has sent its request once its socket is in the
/// directory; a signal ends the wait, and the socket goes.
#[test]
fn unanswered_requests_to_c_switches_end_on_signals() {
    require_c_reference();
    let t = Scratch::new("unanswered");
    let hub = t.path("hub");
    let _hub = Plug::start_node(C_PLUG, &[&format!("hub://{hub}")]);
    let sw = t.path("sw");
    let _sw = Switch::start(&sw);
    let cases = [
        (vec![format!("vde://{hub}[0]")], hub.as_str()),
        (vec![format!("vde://{hub}[port=0]")], hub.as_str()),
        (
            vec!["--port".into(), "99999".into(), sw.clone()],
            sw.as_str(),
        ),
    ];
    for (i, (args, dir)) in cases.iter().enumerate() {
        let sig = ENDING[i % ENDING.len()];
        let before = dir_listing(dir);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut plug = Plug::spawn(rs_plug(), &args);
        wait_until(&format!("{args:?} sends its request"), || {
            joining_count(dir) == 1
        });
        plug.signal(sig);
        let (st, err) = plug.wait();
        assert_ended_by(sig, st, &format!("{args:?}"), &err);
        assert_eq!(dir_listing(dir), before, "{args:?} left its socket");
    }
}

/// `hub://N N`: the plug's second side joins its own node, which cannot
/// answer before the loop runs. A signal ends the wait and the node
/// directory goes (the C plug leaves it, with its client socket in it).
#[test]
fn joining_its_own_node_ends_on_signals() {
    for sig in ENDING {
        let t = Scratch::new("ownnode");
        let n = t.path("n");
        let mut plug = Plug::spawn(rs_plug(), &[&format!("hub://{n}"), &n]);
        wait_until("the plug's own request", || joining_count(&n) == 1);
        plug.signal(sig);
        let (st, err) = plug.wait();
        assert_ended_by(sig, st, "hub://N N", &err);
        assert!(
            !Path::new(&n).exists(),
            "{n} left behind: {:?}",
            dir_listing(&n)
        );
    }
}

/// `vde_plug_rs --status NODE --watch 1`, its stdout and stderr on pipes.
fn watch(node: &str) -> std::process::Child {
    Command::new(rs_plug())
        .args(["--status", node, "--watch", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `--status NODE --watch 1` ends on each signal between two tables, and
/// when its reader goes (`| head`); the node is untouched.
#[test]
fn status_watch_ends_on_signals() {
    let t = Scratch::new("watchsig");
    let node = t.path("h");
    let _host = Plug::start_node(rs_plug(), &[&format!("hub://{node}")]);
    for sig in ENDING {
        let mut w = watch(&node);
        let lines = lines_of(w.stdout.take().unwrap());
        let first = lines.recv_timeout(PATIENCE).expect("a first table");
        assert!(first.contains(&node), "{first}");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(w.id() as i32, sig) };
        let st = wait_bounded(&mut w);
        let mut err = String::new();
        w.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert_ended_by(sig, st, "--watch", &err);
    }
    // A reader that leaves after one line ends the watch, exit 0.
    let mut w = watch(&node);
    let mut out = w.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    out.read_exact(&mut byte).unwrap();
    drop(out);
    let st = wait_bounded(&mut w);
    assert_eq!(st.code(), Some(0), "{st:?}");
    assert_eq!(dir_listing(&node), bare_node());
}

/// A seqpacket locator whose descriptor is not a socket is an open error,
/// at once: a regular file, a pipe (stdin here). `://abc` names no module.
#[test]
fn seqpacket_on_a_non_socket_and_an_empty_module_are_errors() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let t = Scratch::new("seqnotsock");
    let file = t.path("plain");
    std::fs::write(&file, b"not frames\n").unwrap();
    let cases = [
        ("seqpacket://0", "Socket operation on non-socket"),
        ("seqpacket://3", "Socket operation on non-socket"),
        ("://abc", "Protocol not supported"),
    ];
    for (url, reason) in cases {
        let plain = std::fs::File::open(&file).unwrap();
        let fd = plain.as_raw_fd();
        let mut cmd = Command::new(rs_plug());
        cmd.arg(url);
        // SAFETY: only dup2 and fcntl between fork and exec: the file
        // becomes the plug's descriptor 3 (stdin stays an open pipe); if
        // it was 3 already, dup2 does nothing and close-on-exec stays set.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(fd, 3) == -1 || libc::fcntl(3, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut plug = Plug::spawn_command(&mut cmd);
        let (st, err) = plug.wait();
        assert_eq!(st.code(), Some(1), "{url}: {st:?} {err}");
        // vdeplug4's line, then ours for a module that is not there.
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines[0], format!("vde_open {url}: {reason}"), "{err}");
        let hint = usize::from(reason == "Protocol not supported");
        assert_eq!(lines.len(), 1 + hint, "{err}");
        assert!(
            hint == 0 || lines[1].starts_with("no module ''; there are: vde,"),
            "{err}"
        );
    }
}
