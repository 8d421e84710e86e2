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

use vde_plug_rs::wire::stream::{self, StreamDecoder, StreamEvent};

pub const C_PLUG: &str = "/usr/bin/vde_plug";
pub const C_SWITCH: &str = "/usr/bin/vde_switch";
/// How long a test waits for something that should happen at once. Not a
/// timing assertion: only a bound on a hang.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub fn rs_plug() -> &'static str {
    env!("CARGO_BIN_EXE_vde_plug_rs")
}

/// `bonding_node` and `multi_node` are links to vde_plug_rs (as installed),
/// made beside it on first use.
fn node_program(name: &str) -> String {
    let plug = Path::new(rs_plug());
    let link = plug.with_file_name(name);
    if std::fs::read_link(&link).ok().as_deref() != Some(Path::new("vde_plug_rs")) {
        let tmp = plug.with_file_name(format!("{name}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink("vde_plug_rs", &tmp).unwrap();
        std::fs::rename(&tmp, &link).unwrap();
    }
    link.to_string_lossy().into_owned()
}

pub fn bonding_node() -> &'static str {
    static P: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    P.get_or_init(|| node_program("bonding_node"))
}

pub fn multi_node() -> &'static str {
    static P: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    P.get_or_init(|| node_program("multi_node"))
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
    let mut v = stream::header(f.len()).to_vec();
    v.extend_from_slice(f);
    v
}

/// Runs `prog` with stdin, stdout and stderr on pipes.
fn spawn_piped(prog: &str, args: &[&str]) -> Child {
    Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"))
}

/// Decodes the stream a process writes on `out`, on a thread, into frames
/// (with the product's own decoder, which its unit tests check for every
/// way a stream can be cut).
fn frame_reader(mut out: std::process::ChildStdout) -> Receiver<Vec<u8>> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut decoder = StreamDecoder::new();
        let mut chunk = [0u8; 65536];
        loop {
            let n = match out.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut receiver_gone = false;
            decoder.feed(&chunk[..n], |event| {
                if let StreamEvent::Frame(f) = event {
                    receiver_gone |= tx.send(f.to_vec()).is_err();
                }
                true
            });
            if receiver_gone {
                return;
            }
        }
    });
    rx
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
    /// A handle on `child`, whose stderr is collected until it exits.
    fn wrap(mut child: Child, frames: Receiver<Vec<u8>>) -> Plug {
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Plug {
            stdin: child.stdin.take(),
            child,
            frames,
            received: Vec::new(),
            stderr: Some(stderr),
        }
    }

    pub fn spawn(prog: &str, args: &[&str]) -> Plug {
        let mut child = spawn_piped(prog, args);
        let rx = frame_reader(child.stdout.take().unwrap());
        Plug::wrap(child, rx)
    }

    pub fn send(&mut self, f: &[u8]) {
        self.send_raw(&encode(f));
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let w = self.stdin.as_mut().expect("stdin open");
        w.write_all(bytes).unwrap();
        w.flush().unwrap();
    }

    /// Hands the process's stdin to the caller (to write from a thread).
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("stdin open")
    }

    /// Gives back a stdin taken with [`Plug::take_stdin`].
    pub fn give_stdin(&mut self, stdin: ChildStdin) {
        self.stdin = Some(stdin);
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

/// Waits until a process has exited (it may not be our child).
pub fn wait_gone(pid: i32) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        // SAFETY: signal 0 only checks for existence.
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true);
        if zombie || unsafe { libc::kill(pid, 0) } != 0 {
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

// ---------------------------------------------------------------------
// Helpers for the reliability, permissions and long-run tests.
// ---------------------------------------------------------------------

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::ChildStdout;

#[path = "../../src/wire/test_rng.rs"]
mod test_rng;
#[allow(unused_imports)]
pub use test_rng::XorShift;

/// One row of the counters table a plug logs on SIGUSR1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterRow {
    /// The link label, trimmed (`stream stdin/stdout`, `port 3`, ...).
    pub link: String,
    pub frames_in: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub bytes_out: u64,
    pub full: u64,
    pub runt: u64,
    pub oversize: u64,
    pub nocable: u64,
    pub skipped: u64,
    pub dup: u64,
    pub description: String,
}

/// Parses one row: a label of one or more words, eleven numbers, then the
/// description (words that are not all numbers).
pub fn parse_counter_row(line: &str) -> Option<CounterRow> {
    let toks: Vec<&str> = line.split_whitespace().collect();
    let num = |t: &str| t.parse::<u64>().ok();
    for i in 1..toks.len() {
        if toks.len() < i + 11 {
            return None;
        }
        let v: Vec<u64> = toks[i..i + 11].iter().filter_map(|t| num(t)).collect();
        let ends_here = toks.len() == i + 11 || num(toks[i + 11]).is_none();
        if v.len() == 11 && ends_here {
            return Some(CounterRow {
                link: toks[..i].join(" "),
                frames_in: v[0],
                bytes_in: v[1],
                frames_out: v[2],
                bytes_out: v[3],
                full: v[4],
                runt: v[5],
                oversize: v[6],
                nocable: v[7],
                skipped: v[8],
                dup: v[9],
                description: toks[i + 11..].join(" "),
            });
        }
    }
    None
}

/// A [`Plug`] whose stderr is read line by line while it runs, so that a
/// test can wait for a log line or ask for the counters table (SIGUSR1).
pub struct LivePlug {
    pub plug: Plug,
    lines: Receiver<String>,
    /// Every stderr line seen so far.
    pub log: Vec<String>,
}

impl std::ops::Deref for LivePlug {
    type Target = Plug;
    fn deref(&self) -> &Plug {
        &self.plug
    }
}

impl std::ops::DerefMut for LivePlug {
    fn deref_mut(&mut self) -> &mut Plug {
        &mut self.plug
    }
}

impl LivePlug {
    pub fn spawn(prog: &str, args: &[&str]) -> LivePlug {
        let mut child = spawn_piped(prog, args);
        let rx = frame_reader(child.stdout.take().unwrap());
        let lrx = lines_of(child.stderr.take().unwrap());
        LivePlug {
            plug: Plug {
                stdin: child.stdin.take(),
                child,
                frames: rx,
                received: Vec::new(),
                stderr: None,
            },
            lines: lrx,
            log: Vec::new(),
        }
    }

    fn next_line(&mut self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = self.lines.recv_timeout(left).ok()?;
        self.log.push(line.clone());
        Some(line)
    }

    /// Takes the stderr lines that are already there.
    pub fn poll_log(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
    }

    /// Waits (bounded by PATIENCE) for a stderr line containing `needle`.
    pub fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.next_line(deadline) {
                Some(l) if l.contains(needle) => return l,
                Some(_) => {}
                None => panic!(
                    "no log line with {needle:?}; log so far:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Lines of the log so far that contain `needle`.
    pub fn count_lines(&mut self, needle: &str) -> usize {
        self.poll_log();
        self.log.iter().filter(|l| l.contains(needle)).count()
    }

    /// Sends SIGUSR1 and returns the counters table the plug logs.
    pub fn counters(&mut self) -> Vec<CounterRow> {
        read_counters(self.plug.pid(), &self.lines, &mut self.log)
    }

    /// The counters row whose link is `link` exactly.
    pub fn counter(&mut self, link: &str) -> CounterRow {
        let rows = self.counters();
        rows.iter()
            .find(|r| r.link == link)
            .cloned()
            .unwrap_or_else(|| panic!("no counters row {link:?} in {rows:?}"))
    }

    /// Waits for the exit (bounded) and returns the status and all of stderr.
    pub fn finish(&mut self) -> (std::process::ExitStatus, String) {
        let (st, _) = self.plug.wait();
        let deadline = Instant::now() + PATIENCE;
        while self.next_line(deadline).is_some() {}
        (st, self.log.join("\n"))
    }
}

/// A thread that hands over what a process writes (its stderr, stdout...)
/// line by line.
pub fn lines_of(from: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Sends SIGUSR1 to `pid` and reads the counters table it logs from its
/// stderr `lines` (every line read is kept in `log`).
pub fn read_counters(pid: i32, lines: &Receiver<String>, log: &mut Vec<String>) -> Vec<CounterRow> {
    while let Ok(l) = lines.try_recv() {
        log.push(l);
    }
    // SAFETY: signalling a process this test started.
    unsafe { libc::kill(pid, libc::SIGUSR1) };
    let deadline = Instant::now() + PATIENCE;
    let mut next = || {
        let left = deadline.saturating_duration_since(Instant::now());
        let l = lines.recv_timeout(left).ok()?;
        log.push(l.clone());
        Some(l)
    };
    loop {
        match next() {
            Some(l) if l.contains("link counters") => break,
            Some(_) => {}
            None => panic!("no counters table after SIGUSR1"),
        }
    }
    let mut rows = Vec::new();
    let _header = next();
    while let Some(l) = next() {
        if l.trim().is_empty() {
            break;
        }
        rows.push(parse_counter_row(&l).unwrap_or_else(|| panic!("bad counters row {l:?}")));
    }
    rows
}

/// Open descriptors of a process.
pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Waits (bounded) until a process has exactly `n` open descriptors;
/// returns the count it has then, for the caller to assert on.
pub fn wait_fd_count(pid: i32, n: usize) -> usize {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let have = fd_count(pid);
        if have == n || Instant::now() > deadline {
            return have;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Resident memory of a process in kB (VmRSS).
pub fn vm_rss_kb(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The names in a directory, sorted.
pub fn dir_listing(dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Raises this process's descriptor limit to its hard limit.
pub fn raise_fd_limit() {
    // SAFETY: get/setrlimit on a local struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

pub const REQ_MAGIC: u32 = 0xfeed_face;

/// A version-3 request as raw bytes: header fields in host order, the
/// 110-byte sockaddr_un (family, then `path` NUL-padded to 108 bytes, or
/// cut to 108 with no NUL when it is that long), then `descr`.
pub fn raw_request(
    magic: u32,
    version: u32,
    typ: u32,
    family: u16,
    path: &[u8],
    descr: &[u8],
) -> Vec<u8> {
    let mut v = Vec::with_capacity(122 + descr.len());
    v.extend_from_slice(&magic.to_ne_bytes());
    v.extend_from_slice(&version.to_ne_bytes());
    v.extend_from_slice(&typ.to_ne_bytes());
    v.extend_from_slice(&family.to_ne_bytes());
    let mut sun = [0u8; 108];
    let n = path.len().min(108);
    sun[..n].copy_from_slice(&path[..n]);
    v.extend_from_slice(&sun);
    v.extend_from_slice(descr);
    v
}

/// A well-formed request for the datagram socket bound at `sock`.
pub fn valid_request(sock: &Path, descr: &[u8]) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    raw_request(
        REQ_MAGIC,
        3,
        0,
        libc::AF_UNIX as u16,
        sock.as_os_str().as_bytes(),
        descr,
    )
}

/// A unique socket path in `dir` for a raw client.
pub fn client_sock_path(dir: &Path) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    dir.join(format!("c{}", N.fetch_add(1, Ordering::SeqCst)))
}

/// Reads a control stream until the node closes it (bounded by `wait`);
/// returns what it sent. A reset counts as a close.
pub fn read_until_closed(s: &mut UnixStream, wait: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "still open after {wait:?} ({} bytes read)",
                got.len()
            ));
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => return Ok(got),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// A vde client made by hand over std sockets: the datagram socket bound
/// in `sock_dir`, the request on `NODE/ctl`, the reply read, the datagram
/// socket connected to the port. Its bound path is removed on drop.
pub struct RawClient {
    pub ctl: UnixStream,
    pub data: UnixDatagram,
    pub own: PathBuf,
    pub port_path: PathBuf,
}

impl RawClient {
    pub fn join(node: &str, sock_dir: &Path) -> std::io::Result<RawClient> {
        Self::join_with(node, sock_dir, b"raw test client")
    }

    pub fn join_with(node: &str, sock_dir: &Path, descr: &[u8]) -> std::io::Result<RawClient> {
        use std::os::unix::ffi::OsStrExt;
        let own = client_sock_path(sock_dir);
        let _ = std::fs::remove_file(&own);
        let data = UnixDatagram::bind(&own)?;
        let guard = RemoveOnDrop(own.clone());
        let mut ctl = UnixStream::connect(format!("{node}/ctl"))?;
        ctl.set_read_timeout(Some(PATIENCE))?;
        ctl.write_all(&valid_request(&own, descr))?;
        let mut reply = [0u8; 110];
        ctl.read_exact(&mut reply)?;
        let fam = u16::from_ne_bytes([reply[0], reply[1]]);
        assert_eq!(fam, libc::AF_UNIX as u16, "reply family");
        let end = reply[2..]
            .iter()
            .position(|&c| c == 0)
            .expect("reply path NUL-terminated");
        let port_path = PathBuf::from(std::ffi::OsStr::from_bytes(&reply[2..2 + end]));
        data.connect(&port_path)?;
        data.set_read_timeout(Some(PATIENCE))?;
        std::mem::forget(guard);
        Ok(RawClient {
            ctl,
            data,
            own,
            port_path,
        })
    }

    pub fn send(&self, f: &[u8]) {
        self.data.send(f).expect("send on the port");
    }

    /// The next datagram from the node, waiting at most PATIENCE.
    pub fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65536];
        match self.data.recv(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                Some(buf)
            }
            Err(_) => None,
        }
    }
}

impl Drop for RawClient {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.own);
    }
}

/// Removes a path when dropped.
pub struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Switch {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Kills the switch with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Plug {
    /// Like [`Plug::spawn`], but the read end of the process's stdout is
    /// closed at once: its first write there finds no reader.
    pub fn spawn_stdout_closed(prog: &str, args: &[&str]) -> Plug {
        let mut child = spawn_piped(prog, args);
        drop(child.stdout.take());
        Plug::wrap(child, channel().1)
    }
}

/// A node's host whose stdout the test reads only when it asks: while it
/// does not, the output backs up into the node (backpressure).
pub struct ManualHost {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    decoder: StreamDecoder,
    /// Frames read and decoded, not yet asked for.
    frames: std::collections::VecDeque<Vec<u8>>,
    lines: Receiver<String>,
    log: Vec<String>,
}

impl ManualHost {
    pub fn spawn(prog: &str, args: &[&str]) -> ManualHost {
        let mut child = Command::new(prog)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("vde_plug_rs");
        ManualHost {
            stdin: child.stdin.take(),
            stdout: child.stdout.take().unwrap(),
            lines: lines_of(child.stderr.take().unwrap()),
            child,
            decoder: StreamDecoder::new(),
            frames: std::collections::VecDeque::new(),
            log: Vec::new(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Writes frames to the process's stdin.
    pub fn send(&mut self, f: &[u8]) {
        let w = self.stdin.as_mut().expect("stdin open");
        w.write_all(&encode(f)).unwrap();
        w.flush().unwrap();
    }

    /// Reads exactly `n` frames (bounded by PATIENCE).
    pub fn read_frames(&mut self, n: usize) -> Vec<Vec<u8>> {
        let out = self.read_some(n, PATIENCE);
        if out.len() < n {
            let rows = self.counters();
            let passed = rows
                .iter()
                .find(|r| r.link.starts_with("stream "))
                .map_or(0, |r| r.frames_out);
            panic!(
                "the host gave {} of {n} frames; its stream row counts {passed} frames \
                 passed to its output in all (frames counted there but never read here \
                 are stuck in the plug's output buffer); counters: {rows:#?}",
                out.len()
            );
        }
        out
    }

    /// Reads up to `max` frames, giving up when nothing more comes for
    /// `wait` (not an assertion: the caller checks what it got).
    pub fn read_some(&mut self, max: usize, wait: Duration) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 65536];
        loop {
            while out.len() < max {
                match self.frames.pop_front() {
                    Some(f) => out.push(f),
                    None => break,
                }
            }
            if out.len() == max {
                return out;
            }
            let mut p = libc::pollfd {
                fd: self.stdout.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut p, 1, wait.as_millis() as libc::c_int) };
            if r <= 0 {
                return out;
            }
            match self.stdout.read(&mut chunk) {
                Ok(0) => return out,
                Ok(k) => {
                    let frames = &mut self.frames;
                    self.decoder.feed(&chunk[..k], |event| {
                        if let StreamEvent::Frame(f) = event {
                            frames.push_back(f.to_vec());
                        }
                        true
                    });
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    pub fn counters(&mut self) -> Vec<CounterRow> {
        read_counters(self.pid(), &self.lines, &mut self.log)
    }

    /// Ends the host by closing its stdin; its exit status.
    pub fn finish(&mut self) -> Option<i32> {
        self.stdin = None;
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            assert!(Instant::now() < deadline, "the host did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ManualHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Plug {
    /// Like [`Plug::spawn`], for a command the caller has prepared (an
    /// inherited descriptor, another environment); its standard streams
    /// are set to pipes here.
    pub fn spawn_command(cmd: &mut Command) -> Plug {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let rx = frame_reader(child.stdout.take().unwrap());
        Plug::wrap(child, rx)
    }
}
