//! `= CMD ARGS` (and `cmd://CMD ARGS`): a child process whose stdin and
//! stdout carry the stream, e.g. `ssh host vde_plug_rs /tmp/vm2`.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::Registry;

use super::stream::{StreamEndpoint, StreamFd};
use super::{Endpoint, Ready, Stop};
use crate::lane::Lane;
use crate::stats::StatsTable;

/// How long a child gets to leave by itself once its stdin is closed,
/// before it is sent SIGTERM (and later SIGKILL).
const GRACE: Duration = Duration::from_millis(500);

pub struct CommandEndpoint {
    stream: Option<StreamEndpoint>,
    child: Child,
    exited: Option<String>,
}

impl CommandEndpoint {
    pub fn spawn(argv: &[String]) -> io::Result<CommandEndpoint> {
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        let mut command = Command::new(prog);
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe { command.pre_exec(default_signals) };
        let mut child = command.spawn()?;
        let to_child: OwnedFd = child.stdin.take().expect("piped").into();
        let from_child: OwnedFd = child.stdout.take().expect("piped").into();
        let stream = StreamEndpoint::new(
            format!("cmd {}", argv.join(" ")),
            StreamFd::new(from_child)?,
            StreamFd::new(to_child)?,
        );
        info!("started {} (pid {})", argv.join(" "), child.id());
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
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(format!("{}: exited ({status})", self.label()));
            }
        }
    }

    fn report(&self, table: &mut StatsTable) {
        if let Some(s) = &self.stream {
            s.report(table);
        }
    }
}

/// Gives the child the signal state a program expects. This process blocks
/// the signals it reads through a signalfd and ignores a few others
/// (`crate::signals`), and the standard library passes both on to a spawned
/// child: an `ssh` that inherits a blocked SIGTERM cannot be stopped by
/// `kill PID`, nor by our own SIGTERM in `drop`. Signals that were ignored
/// before this process started (`nohup`) stay ignored, as with the C plug.
fn default_signals() -> io::Result<()> {
    // SAFETY: sigemptyset, sigprocmask and signal are async-signal-safe.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        for sig in [libc::SIGPIPE, libc::SIGUSR2, libc::SIGALRM, libc::SIGPROF] {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    Ok(())
}

impl Drop for CommandEndpoint {
    fn drop(&mut self) {
        // Closing its pipes is the child's cue to leave.
        self.stream = None;
        let deadline = Instant::now() + GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own, not yet reaped, child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + GRACE * 4;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        warn!("child {pid} ignored SIGTERM; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
