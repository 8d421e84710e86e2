//! Shared harness for the integration tests: real processes, real sockets.
//!
//! A [`Plug`] is a process whose stdin/stdout carry the 2-byte-length
//! stream (vde_plug_rs or the C vde_plug): the test writes frames into it
//! and a reader thread decodes what comes out. Everything a test starts is
//! killed and reaped when its handle drops, and every node directory lives
//! in a [`Scratch`] directory that is removed at the end.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub const C_PLUG: &str = "/usr/bin/vde_plug";
pub const C_SWITCH: &str = "/usr/bin/vde_switch";
/// How long a test waits for something that should happen at once. Not a
/// timing assertion: only a bound on a hang.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub fn rs_plug() -> &'static str {
    env!("CARGO_BIN_EXE_vde_plug_rs")
}

pub fn bonding_node() -> &'static str {
    env!("CARGO_BIN_EXE_bonding_node")
}

pub fn multi_node() -> &'static str {
    env!("CARGO_BIN_EXE_multi_node")
}

/// The C reference must be installed: `scripts/test` installs it.
pub fn require_c_reference() {
    for p in [C_PLUG, C_SWITCH] {
        assert!(
            Path::new(p).exists(),
            "{p} is missing: run scripts/test, which installs Debian's vdeplug and vde-switch"
        );
    }
}

/// A fresh directory under /tmp (short, for 108-byte socket paths),
/// removed with everything in it on drop.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = PathBuf::from(format!(
            "/tmp/vpt-{}-{}-{}",
            name,
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch { dir }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An Ethernet frame carrying a sequence number: broadcast destination,
/// locally administered source `02:00:00:00:00:src`, ethertype 0x88b5.
pub fn frame(src: u8, seq: u32, size: usize) -> Vec<u8> {
    assert!(size >= 18);
    let mut f = vec![0u8; size];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, src]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[18..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(seq as u8);
    }
    f
}

pub fn seq_of(f: &[u8]) -> u32 {
    u32::from_be_bytes([f[14], f[15], f[16], f[17]])
}

pub fn encode(f: &[u8]) -> Vec<u8> {
    let mut v = (f.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(f);
    v
}

/// A process speaking the stream on stdin/stdout.
pub struct Plug {
    pub child: Child,
    stdin: Option<ChildStdin>,
    frames: Receiver<Vec<u8>>,
    pub received: Vec<Vec<u8>>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Plug {
    pub fn spawn(prog: &str, args: &[&str]) -> Plug {
        let mut child = Command::new(prog)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"));
        let mut out = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            loop {
                match out.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                let mut at = 0;
                while buf.len() - at >= 2 {
                    let len = u16::from_be_bytes([buf[at], buf[at + 1]]) as usize;
                    if buf.len() - at - 2 < len {
                        break;
                    }
                    if tx.send(buf[at + 2..at + 2 + len].to_vec()).is_err() {
                        return;
                    }
                    at += 2 + len;
                }
                buf.drain(..at);
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Plug {
            stdin: child.stdin.take(),
            child,
            frames: rx,
            received: Vec::new(),
            stderr: Some(stderr),
        }
    }

    pub fn send(&mut self, f: &[u8]) {
        self.send_raw(&encode(f));
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let w = self.stdin.as_mut().expect("stdin open");
        w.write_all(bytes).unwrap();
        w.flush().unwrap();
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits until `n` frames in all have come out (bounded by PATIENCE).
    pub fn wait_frames(&mut self, n: usize) -> &[Vec<u8>] {
        let deadline = Instant::now() + PATIENCE;
        while self.received.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.frames.recv_timeout(left) {
                Ok(f) => self.received.push(f),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        &self.received
    }

    /// Takes what has come out, waiting at most `wait` for the first frame.
    pub fn collect(&mut self, wait: Duration) -> usize {
        if let Ok(f) = self.frames.recv_timeout(wait) {
            self.received.push(f);
            while let Ok(f) = self.frames.try_recv() {
                self.received.push(f);
            }
        }
        self.received.len()
    }

    /// Collects whatever is left until the process's stdout closes.
    pub fn drain_to_end(&mut self) -> &[Vec<u8>] {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.frames.recv_timeout(left) {
                Ok(f) => self.received.push(f),
                Err(_) => break,
            }
        }
        &self.received
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits for the exit (bounded), returning the status and stderr.
    pub fn wait(&mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let err = self
                    .stderr
                    .take()
                    .map(|h| h.join().unwrap())
                    .unwrap_or_default();
                return (st, err);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn terminate(&mut self) -> (std::process::ExitStatus, String) {
        self.signal(libc::SIGTERM);
        self.wait()
    }
}

impl Drop for Plug {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until `path` exists (a node's ctl socket, say).
pub fn wait_for_path(path: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !Path::new(path).exists() {
        assert!(Instant::now() < deadline, "{path} never appeared");
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

/// Waits until a node directory holds exactly `n` port sockets.
pub fn wait_ports(dir: &str, n: usize) {
    let deadline = Instant::now() + PATIENCE;
    while port_count(dir) != n {
        assert!(
            Instant::now() < deadline,
            "{dir}: expected {n} ports, have {}",
            port_count(dir)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until a process has exited (it may not be our child).
pub fn wait_gone(pid: i32) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        // SAFETY: signal 0 only checks for existence.
        if unsafe { libc::kill(pid, 0) } != 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// A vde_switch (vde2) on `dir`, run in the foreground with its console on
/// a pipe that stays open; killed on drop.
pub struct Switch {
    child: Child,
}

impl Switch {
    pub fn start(dir: &str) -> Switch {
        let child = Command::new(C_SWITCH)
            .args(["-s", dir])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("vde_switch");
        wait_for_path(&format!("{dir}/ctl"));
        Switch { child }
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
