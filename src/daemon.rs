//! Process-level chores of a plug: daemon mode, the pid file, syslog's
//! START/STOP lines, where stderr goes.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use crate::{signals, sys};

/// `-d` in two halves. [`detach`] forks: the parent waits, and the child
/// goes on in a session of its own with stdin and stdout on /dev/null,
/// but with stderr and the working directory still where they were, so
/// that whatever fails while the plug opens is said where it was started
/// and relative paths mean what they meant there. [`Detached::ready`],
/// once both sides are open, moves to `/` and sends stderr away, as
/// `daemon(0, 0)` leaves a process, and lets the parent exit 0; a child that fails before
/// that makes the parent exit with its status, after its message. (The
/// C vde_plug detaches first and exits 0 whatever happens next.)
pub struct Detached {
    ready: OwnedFd,
}

/// The descriptor a command started before the plug is ready gets as its
/// stderr (-1: ours): a detached plug's log, not the terminal it leaves.
static CHILD_STDERR: AtomicI32 = AtomicI32::new(-1);

/// The stderr to give a child process, when it is not ours.
pub fn child_stderr() -> Option<RawFd> {
    Some(CHILD_STDERR.load(Ordering::Relaxed)).filter(|&fd| fd >= 0)
}

/// Detaches (see [`Detached`]); `stderr_to` is where stderr goes once
/// ready (/dev/null when `None`). Returns in the child only.
pub fn detach(stderr_to: Option<&File>) -> io::Result<Detached> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors, which we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are fresh descriptors owned by nobody else.
    let (wait_end, ready) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let later: OwnedFd = match stderr_to {
        Some(f) => f.try_clone()?.into(),
        None => sys::open_dev_null()?,
    };
    // SAFETY: called before any thread exists: the child is a copy of a
    // single-threaded process.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            drop(wait_end);
            // SAFETY: a plain call on the child's own process state.
            unsafe { libc::setsid() };
            let null = sys::open_dev_null()?;
            for fd in [0, 1] {
                // SAFETY: dup2 onto the standard descriptors.
                unsafe { libc::dup2(null.as_raw_fd(), fd) };
            }
            CHILD_STDERR.store(later.as_raw_fd(), Ordering::Relaxed);
            std::mem::forget(later);
            Ok(Detached { ready })
        }
        child => {
            drop(ready);
            parent_waits(wait_end, child)
        }
    }
}

/// The parent of a detaching plug: exits 0 once the child says it is
/// ready, or as the child ended; an ending signal is passed on to the
/// child (in a session of its own, it no longer gets the terminal's).
fn parent_waits(wait_end: OwnedFd, child: libc::pid_t) -> ! {
    let fd = wait_end.as_raw_fd();
    loop {
        match signals::wait_fd(fd, libc::POLLIN, Duration::from_secs(3600)) {
            Ok(true) => break,
            Ok(false) => {}
            Err(_) => {
                if let Some(sig) = signals::take_ending() {
                    // SAFETY: signalling our own child.
                    unsafe { libc::kill(child, sig) };
                }
            }
        }
    }
    let mut byte = [0u8; 1];
    if matches!(sys::read(fd, &mut byte), Ok(1)) {
        std::process::exit(0);
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    if libc::WIFSIGNALED(status) {
        signals::die_by(libc::WTERMSIG(status));
    }
    std::process::exit(libc::WEXITSTATUS(status));
}

impl Detached {
    /// Both sides are open: the plug leaves the directory it was started
    /// in (relative paths, the pid file's too, were taken from there; C
    /// takes them from `/`), stderr goes where it was asked to (a file,
    /// or /dev/null), and the parent exits 0.
    pub fn ready(self) {
        // SAFETY: chdir to a static path; dup2 of a descriptor we keep
        // onto stderr.
        unsafe {
            libc::chdir(c"/".as_ptr());
            if let Some(fd) = child_stderr() {
                libc::dup2(fd, 2);
            }
        }
        let _ = sys::write(self.ready.as_raw_fd(), b"1");
    }
}

/// Opens `--stderr FILE` (appended to, created if need be).
pub fn open_stderr_file(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
}

/// Points our stderr (and so our children's) at `file`.
pub fn stderr_to(file: &File) {
    // SAFETY: dup2 of an open file onto stderr.
    unsafe { libc::dup2(file.as_raw_fd(), 2) };
}

/// Writes our pid to a file and removes it when dropped.
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    pub fn create(path: &Path) -> io::Result<PidFile> {
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()?.join(path)
        };
        std::fs::write(&abs, format!("{}\n", std::process::id()))?;
        Ok(PidFile { path: abs })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// START/STOP lines in syslog (`-l`), as vde_plug writes them.
pub struct SysLog {
    who: String,
}

impl SysLog {
    pub fn open(event: &str) -> SysLog {
        // SAFETY: openlog keeps the pointer: the ident is a static string.
        unsafe { libc::openlog(c"vde_plug".as_ptr(), 0, libc::LOG_USER) };
        let user = crate::accounts::user_name(crate::sys::uid()).unwrap_or_else(|| "?".into());
        let ip = std::env::var("SSH_CLIENT")
            .ok()
            .and_then(|s| s.split_whitespace().next().map(String::from))
            .unwrap_or_else(|| "UNKNOWN_IP_ADDRESS".into());
        let log = SysLog {
            who: format!("user {user} IP {ip}"),
        };
        log.line(event);
        log
    }

    pub fn line(&self, event: &str) {
        if let Ok(msg) = CString::new(format!("{event}: {}", self.who)) {
            // SAFETY: a "%s" format with one valid C string.
            unsafe { libc::syslog(libc::LOG_INFO, c"%s".as_ptr(), msg.as_ptr()) };
        }
    }
}

impl Drop for SysLog {
    fn drop(&mut self) {
        self.line("STOP");
        // SAFETY: closing the log opened in `open`.
        unsafe { libc::closelog() };
    }
}

/// Lets a plug open as many cables as the hard limit allows.
pub fn raise_fd_limit() {
    // SAFETY: get/setrlimit on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max.min(65536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
