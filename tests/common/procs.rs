//! Processes a test starts: stream plugs ([`Plug`], [`LivePlug`],
//! [`ManualHost`]), a vde_switch, and what a test reads of a process
//! (its log, counters table, descriptors, memory). Every one is killed and
//! reaped when its handle drops.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use vde_plug_rs::wire::path_report::is_path_report;
use vde_plug_rs::wire::stream::{StreamDecoder, StreamEvent};

use super::*;

/// Runs `prog ARGS` to its end (stdin empty) and returns its stdout; a
/// failure fails the test with its output.
pub fn run(prog: &str, args: &[&str]) -> String {
    run_ok(Command::new(prog).args(args).stdin(Stdio::null()))
}

/// Runs `cmd` to its end and returns its stdout; a failure fails the test
/// with its output.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `prog ARGS` to its end, stdin and stdout on /dev/null: its exit
/// code and its stderr.
pub fn outcome(prog: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits for `child` to exit (bounded by PATIENCE: then it is killed).
pub fn wait_bounded(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `prog` with stdin, stdout and stderr on pipes.
pub fn spawn_piped(prog: &str, args: &[&str]) -> Child {
    Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"))
}

/// Children killed and reaped when this drops; a stopped one is let go
/// on first, so that it can die.
pub struct Reaped(pub Vec<Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        for c in &mut self.0 {
            // SAFETY: a plain signal to our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
            let _ = c.kill();
            let _ = c.wait();
        }
    }
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

/// Waits until a process has exited (it may not be our child), every
/// thread of it: a killed process's leader shows as a zombie while its
/// other threads (qemu-user has some) still hold its descriptors, so a
/// node's listening `ctl` can outlive the zombie by a little.
pub fn wait_gone(pid: i32) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true);
        let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| d.count())
            .unwrap_or(0);
        // SAFETY: signal 0 only checks for existence.
        if (zombie && threads <= 1) || unsafe { libc::kill(pid, 0) } != 0 {
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
        // vde_switch binds `ctl` before it listens: a plug started when
        // the name appears can be refused.
        wait_node(dir);
        Switch { child }
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    wait_fds(pid, |have| have == n)
}

/// The same for at most `n` open descriptors.
pub fn wait_fd_count_at_most(pid: i32, n: usize) -> usize {
    wait_fds(pid, |have| have <= n)
}

fn wait_fds(pid: i32, done: impl Fn(usize) -> bool) -> usize {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let have = fd_count(pid);
        if done(have) || Instant::now() > deadline {
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
                        match event {
                            // See frame_reader.
                            StreamEvent::Frame(f) if is_path_report(f) => {}
                            StreamEvent::Frame(f) => frames.push_back(f.to_vec()),
                            _ => {}
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
