//! The log's way out when stderr is gone (`-d`) or not wanted
//! (`--syslog`): syslog spoken here rather than through syslog(3), which
//! may block the loop on a slow daemon. One non-blocking datagram per line
//! to `/dev/log` (facility daemon, the program's name and pid); a line the
//! daemon has no room for is dropped, and a daemon that restarted is
//! reconnected at the next line.

use std::fmt::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use log::Level;

use crate::sys;

const DEV_LOG: &str = "/dev/log";
/// `LOG_DAEMON`, as the priority's facility bits.
const FACILITY_DAEMON: u8 = 3 << 3;

pub(crate) struct SysLogSink {
    sock: Option<(OwnedFd, bool)>,
    ident: String,
    pid: u32,
}

impl SysLogSink {
    pub(crate) fn new(ident: String) -> SysLogSink {
        SysLogSink {
            sock: None,
            ident,
            pid: sys::pid(),
        }
    }

    /// One message per line (a counters table is many).
    pub(crate) fn send(&mut self, level: Level, text: &str) {
        let severity = match level {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
            Level::Debug | Level::Trace => 7,
        };
        let stamp = timestamp();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut msg = String::with_capacity(line.len() + 48);
            let _ = write!(
                msg,
                "<{}>{stamp} {}[{}]: {line}",
                FACILITY_DAEMON | severity,
                self.ident,
                self.pid
            );
            self.deliver(msg.as_bytes());
        }
    }

    /// Sends one message, never waiting: a full log drops it; a daemon
    /// that went away (restarted) is reconnected once.
    fn deliver(&mut self, msg: &[u8]) {
        for _ in 0..2 {
            if self.sock.is_none() {
                self.sock = connect();
            }
            let Some((fd, stream)) = &self.sock else {
                return;
            };
            let sent = if *stream {
                // On a stream, a NUL ends each message.
                sys::send(fd.as_raw_fd(), msg).and_then(|_| sys::send(fd.as_raw_fd(), b"\0"))
            } else {
                sys::send(fd.as_raw_fd(), msg)
            };
            match sent {
                Ok(_) => return,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => self.sock = None,
            }
        }
    }
}

/// A socket connected to `/dev/log`: datagrams, or a stream where the
/// daemon listens on one; the flag says which.
fn connect() -> Option<(OwnedFd, bool)> {
    [(libc::SOCK_DGRAM, false), (libc::SOCK_STREAM, true)]
        .into_iter()
        .find_map(|(kind, stream)| {
            let fd = sys::unix_socket(kind).ok()?;
            sys::connect(&fd, Path::new(DEV_LOG)).ok()?;
            Some((fd, stream))
        })
}

/// Local time as syslog lines carry it: `Dec  4 12:45:01`.
fn timestamp() -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // SAFETY: time and localtime_r write only into the locals given.
    let tm = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        tm
    };
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}
