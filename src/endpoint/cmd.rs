//! `= CMD ARGS` (and `cmd://CMD ARGS`): a child process whose stdin and
//! stdout carry the stream, e.g. `ssh host vde_plug_rs /tmp/vm2`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::Registry;

use super::stream::{StreamEndpoint, StreamFd};
use super::{ChildFailure, Endpoint, Ready, Stop};
use crate::lane::Lane;
use crate::stats::StatsTable;

/// How long a child gets to leave by itself once its stdin is closed,
/// before it is sent SIGTERM (and later SIGKILL).
const GRACE: Duration = Duration::from_millis(500);
/// The grace left when we are asked to end meanwhile.
const HURRIED: Duration = Duration::from_millis(100);

pub struct CommandEndpoint {
    stream: Option<StreamEndpoint>,
    child: Child,
    exited: Option<String>,
}

/// The child process: its pid, and its exit status once reaped (after
/// which the pid is no longer ours to signal).
struct Child {
    pid: libc::pid_t,
    status: Option<ExitStatus>,
    /// We sent it SIGTERM or SIGKILL: how it died is ours, not its.
    signalled: bool,
}

impl Child {
    /// Reaps the child if it has exited; `wait` blocks until it has.
    fn reap(&mut self, wait: bool) -> Option<ExitStatus> {
        if self.status.is_none() {
            let mut raw = 0;
            let flags = if wait { 0 } else { libc::WNOHANG };
            // SAFETY: waiting for our own child, not yet reaped.
            if unsafe { libc::waitpid(self.pid, &mut raw, flags) } == self.pid {
                self.status = Some(ExitStatus::from_raw(raw));
            }
        }
        self.status
    }

    fn signal(&mut self, sig: libc::c_int) {
        if self.status.is_none() {
            self.signalled = true;
            // SAFETY: signalling our own, not yet reaped, child.
            unsafe { libc::kill(self.pid, sig) };
        }
    }

    /// Waits up to `grace` for the child to exit; an ending signal sent to
    /// us meanwhile (SIGINT, SIGTERM, SIGHUP, pending) shortens the wait to
    /// `HURRIED`.
    fn wait_exit(&mut self, grace: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        let mut deadline = start + grace;
        while Instant::now() < deadline {
            if let Some(st) = self.reap(false) {
                return Some(st);
            }
            if crate::signals::ending_pending().is_some() {
                deadline = deadline.min(start + HURRIED);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.reap(false)
    }
}

/// How a child's status is a failure: a status other than 0, or death by
/// a signal (as 128 + N, as a shell reports it).
fn failure(label: &str, status: ExitStatus) -> Option<ChildFailure> {
    match (status.code(), status.signal()) {
        (Some(0), _) => None,
        (Some(code), _) => Some(ChildFailure {
            why: format!("{label}: exited with status {code}"),
            code,
        }),
        (None, Some(sig)) => Some(ChildFailure {
            why: format!("{label}: killed by signal {sig}"),
            code: 128 + sig,
        }),
        (None, None) => None,
    }
}

impl CommandEndpoint {
    pub fn spawn(argv: &[String]) -> io::Result<CommandEndpoint> {
        let (child_stdin, to_child) = pipe()?;
        let (from_child, child_stdout) = pipe()?;
        let pid = spawn(argv, &child_stdin, &child_stdout)?;
        drop((child_stdin, child_stdout));
        let child = Child {
            pid,
            status: None,
            signalled: false,
        };
        let stream = StreamEndpoint::new(
            format!("cmd {}", argv.join(" ")),
            StreamFd::new(from_child)?,
            StreamFd::new(to_child)?,
        );
        info!("started {} (pid {pid})", argv.join(" "));
        Ok(CommandEndpoint {
            stream: Some(stream),
            child,
            exited: None,
        })
    }

    /// Logs the IP addresses in the frames the command sends (`-L`).
    pub fn with_ip_log(mut self) -> Self {
        self.stream = self.stream.take().map(StreamEndpoint::with_ip_log);
        self
    }

    fn stream(&mut self) -> &mut StreamEndpoint {
        self.stream.as_mut().expect("stream lives until drop")
    }
}

impl Endpoint for CommandEndpoint {
    fn label(&self) -> String {
        self.stream.as_ref().map(|s| s.label()).unwrap_or_default()
    }

    fn answer_fd(&self) -> Option<std::os::fd::RawFd> {
        self.stream.as_ref().map(StreamEndpoint::input_fd)
    }

    fn register(&mut self, registry: &Registry, side: usize) -> io::Result<()> {
        self.stream().register(registry, side)
    }

    fn on_event(&mut self, registry: &Registry, local: usize, ready: Ready) -> Result<(), Stop> {
        self.stream().on_event(registry, local, ready)
    }

    fn fill(&mut self, lane: &mut Lane) -> Result<usize, Stop> {
        self.stream().fill(lane)
    }

    fn deliver(&mut self, lane: &mut Lane) -> Result<usize, Stop> {
        self.stream().deliver(lane)
    }

    fn pending_output(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.pending_output())
    }

    fn finished(&self) -> Option<Stop> {
        if let Some(why) = &self.exited {
            return Some(Stop::Ended(why.clone()));
        }
        self.stream.as_ref().and_then(|s| s.finished())
    }

    fn on_child_exit(&mut self) {
        if self.exited.is_none() {
            if let Some(status) = self.child.reap(false) {
                self.exited = Some(format!("{}: exited ({status})", self.label()));
            }
        }
    }

    /// The child's failure counts when the child ended the plug (it
    /// exited, or closed its output); one still running when the other
    /// side ended is ended by us, and how it goes is not its failure.
    fn reap(&mut self) -> Option<ChildFailure> {
        let ended_itself = self.finished().is_some() || self.child.reap(false).is_some();
        let label = self.label();
        let status = self.end_child();
        if !ended_itself || self.child.signalled {
            return None;
        }
        failure(&label, status)
    }

    fn report(&self, table: &mut StatsTable) {
        if let Some(s) = &self.stream {
            s.report(table);
        }
    }
}

impl CommandEndpoint {
    /// Closes the child's pipes (its cue to leave) and waits for it:
    /// `GRACE`, then SIGTERM, then SIGKILL.
    fn end_child(&mut self) -> ExitStatus {
        self.stream = None;
        if let Some(st) = self.child.wait_exit(GRACE) {
            return st;
        }
        self.child.signal(libc::SIGTERM);
        if let Some(st) = self.child.wait_exit(GRACE * 4) {
            return st;
        }
        warn!("child {} ignored SIGTERM; killing it", self.child.pid);
        self.child.signal(libc::SIGKILL);
        self.child
            .reap(true)
            .unwrap_or_else(|| ExitStatus::from_raw(libc::SIGKILL))
    }
}

/// A pipe, both ends close-on-exec and above the standard descriptors (a
/// `dup2` onto 0 or 1 must not clobber the other end): (read, write).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors, which we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are fresh descriptors owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_stdio(r)?, above_stdio(w)?))
}

fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor, which we then own.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Starts `argv` (looked up in `PATH`) with `stdin`/`stdout` as its
/// standard input and output, and the signal state a program expects. This
/// process blocks the signals it reads through a signalfd and ignores a few
/// others (`crate::signals`), and a child inherits both: an `ssh` that
/// inherits a blocked SIGTERM cannot be stopped by `kill PID`, nor by our
/// own SIGTERM in `drop`. So the child gets an empty mask, and those we
/// ignore back to their defaults; signals that were ignored before this
/// process started (`nohup`) stay ignored, as with the C plug. A program
/// that cannot be run is an error here (posix_spawn reports exec's errno),
/// not a child that exits at once.
fn spawn(argv: &[String], stdin: &OwnedFd, stdout: &OwnedFd) -> io::Result<libc::pid_t> {
    let einval = || io::Error::from_raw_os_error(libc::EINVAL);
    let args: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| einval()))
        .collect::<io::Result<_>>()?;
    let prog = args.first().ok_or_else(einval)?;
    let mut ptrs: Vec<*mut libc::c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    ptrs.push(std::ptr::null_mut());
    extern "C" {
        static environ: *const *mut libc::c_char;
    }
    // SAFETY: the attribute and action objects are initialised before use
    // and destroyed after; every pointer handed over outlives the call.
    unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        libc::posix_spawn_file_actions_init(&mut actions);
        libc::posix_spawnattr_init(&mut attr);
        libc::posix_spawn_file_actions_adddup2(&mut actions, stdin.as_raw_fd(), 0);
        libc::posix_spawn_file_actions_adddup2(&mut actions, stdout.as_raw_fd(), 1);
        if let Some(log) = crate::daemon::child_stderr() {
            // Detaching (-d): where our stderr goes, not the terminal.
            libc::posix_spawn_file_actions_adddup2(&mut actions, log, 2);
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        let mut defaults: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut defaults);
        for sig in [libc::SIGPIPE, libc::SIGUSR2, libc::SIGALRM, libc::SIGPROF] {
            libc::sigaddset(&mut defaults, sig);
        }
        libc::posix_spawnattr_setsigmask(&mut attr, &none);
        libc::posix_spawnattr_setsigdefault(&mut attr, &defaults);
        let flags = libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
        libc::posix_spawnattr_setflags(&mut attr, flags as libc::c_short);
        let mut pid = 0;
        let rc = libc::posix_spawnp(
            &mut pid,
            prog.as_ptr(),
            &actions,
            &attr,
            ptrs.as_ptr(),
            environ,
        );
        libc::posix_spawnattr_destroy(&mut attr);
        libc::posix_spawn_file_actions_destroy(&mut actions);
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(pid)
    }
}

impl Drop for CommandEndpoint {
    fn drop(&mut self) {
        self.end_child();
    }
}
