//! Signals as events of the loop: they are blocked at start-up and read
//! from a signalfd, so a signal never interrupts the loop halfway through a
//! frame and cleanup always runs in the ordinary way.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Signals that end the plug cleanly.
pub const ENDING: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];
const WATCHED: [i32; 5] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGCHLD,
    libc::SIGUSR1,
];
/// Signals that would kill the process and mean nothing to a plug.
const IGNORED: [i32; 4] = [libc::SIGPIPE, libc::SIGUSR2, libc::SIGALRM, libc::SIGPROF];

pub struct SignalFd {
    fd: OwnedFd,
}

fn set_of(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

fn watched_set() -> libc::sigset_t {
    set_of(&WATCHED)
}

/// A non-blocking signalfd for `set`.
fn signalfd(set: &libc::sigset_t) -> io::Result<OwnedFd> {
    // SAFETY: creating a new signalfd for a valid set.
    let fd = unsafe { libc::signalfd(-1, set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is fresh and ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Blocks the watched signals and ignores the pointless ones. Call first
/// thing in `main`, before any thread or child exists; signals that come
/// before the loop runs wait, blocked, and are read by it.
pub fn block() {
    let set = watched_set();
    // SAFETY: changing this (only) thread's mask and dispositions.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        for s in IGNORED {
            libc::signal(s, libc::SIG_IGN);
        }
    }
}

impl SignalFd {
    pub fn new() -> io::Result<SignalFd> {
        Ok(SignalFd {
            fd: signalfd(&watched_set())?,
        })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The next pending signal, if any.
    pub fn next(&self) -> Option<i32> {
        // SAFETY: signalfd_siginfo is plain old data.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reading one record into a buffer of its size.
        let r = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        (r == size as isize).then_some(info.ssi_signo as i32)
    }
}

/// The ending signal waiting (blocked, unread) to be taken, if any: the
/// waits outside the loop look, and leave it for [`die_by`] or the loop.
pub fn ending_pending() -> Option<i32> {
    // SAFETY: sigpending fills a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut set);
        ENDING
            .into_iter()
            .find(|&s| libc::sigismember(&set, s) == 1)
    }
}

/// Takes a pending ending signal (it will not be delivered again).
pub fn take_ending() -> Option<i32> {
    let set = set_of(&ENDING);
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: sigtimedwait on a valid set, no info wanted, no waiting.
    let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) };
    (sig > 0).then_some(sig)
}

/// Waits until `fd` is ready for `events` (`poll` flags; `fd` -1 waits for
/// nothing but a signal) or `timeout` passes: `Ok(true)` when ready. An
/// ending signal cuts the wait short with `EINTR`, and stays pending. This
/// is how the waits before and outside the loop (a handshake, `--watch`)
/// hear SIGINT, SIGTERM and SIGHUP, which are blocked from start-up.
pub fn wait_fd(fd: RawFd, events: libc::c_short, timeout: std::time::Duration) -> io::Result<bool> {
    let sigfd = signalfd(&set_of(&ENDING))?;
    let mut fds = [
        libc::pollfd {
            fd: sigfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd,
            events,
            revents: 0,
        },
    ];
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: two valid pollfds (a negative fd is ignored by poll).
    let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    if fds[0].revents != 0 {
        return Err(io::Error::from_raw_os_error(libc::EINTR));
    }
    Ok(fds[1].revents != 0)
}

/// After cleanup, ends the process by `sig` the way it would have died
/// without a handler (SIGTERM excepted: vde_plug exits 0 on it).
pub fn die_by(sig: i32) -> ! {
    if sig == libc::SIGTERM {
        std::process::exit(0);
    }
    // SAFETY: restoring the default action and unblocking `sig` so that
    // raising it ends the process.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
    std::process::exit(128 + sig);
}
