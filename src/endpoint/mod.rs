//! Endpoints: the two things a plug joins. Each owns its file descriptors,
//! reads frames headed for the other side into a [`Lane`], and delivers the
//! frames the other side queued for it. The engine knows nothing else.

pub mod cmd;
pub(crate) mod cmd_words;
pub(crate) mod dgram;
pub(crate) mod inet;
pub(crate) mod mcast;
pub mod node;
pub mod null;
pub(crate) mod ptp;
pub(crate) mod seqpacket;
pub mod stream;
pub mod tap;
pub(crate) mod udp;
pub mod vde;
pub(crate) mod vxlan;
pub(crate) mod vxvde;

use std::io;
use std::os::fd::RawFd;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::lane::{Lane, LANE_SLOTS};
use crate::stats::StatsTable;

/// Why an endpoint ends the plug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// A normal end: EOF of a stream, a switch closing the port, a child exit.
    Ended(String),
    /// An I/O error that leaves the endpoint unusable.
    Failed(String),
}

/// A child process (`= CMD`, `cmd://`) that failed by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildFailure {
    pub why: String,
    /// Its exit status, or 128 + the signal that killed it, as a shell
    /// gives it.
    pub code: i32,
}

/// Readiness reported by the poll for one token.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ready {
    pub readable: bool,
    pub writable: bool,
    /// Hang-up or error on the descriptor.
    pub closed: bool,
}

impl From<&mio::event::Event> for Ready {
    fn from(e: &mio::event::Event) -> Self {
        Ready {
            readable: e.is_readable(),
            writable: e.is_writable(),
            closed: e.is_read_closed() || e.is_error(),
        }
    }
}

pub trait Endpoint {
    /// A short name for logs and the counters table.
    fn label(&self) -> String;

    /// Learns the label of the other side of the loop (a node names its
    /// host in `--status`).
    fn joined_to(&mut self, _other: &str) {}

    /// Registers every descriptor, with tokens made by [`token`] for `side`.
    fn register(&mut self, registry: &Registry, side: usize) -> io::Result<()>;

    /// Readiness of one of this endpoint's tokens (`local` as given to
    /// [`token`]). Control work (accepting ports, handshakes, hang-ups)
    /// happens here; data moves in `fill` and `deliver`.
    fn on_event(&mut self, registry: &Registry, local: usize, ready: Ready) -> Result<(), Stop>;

    /// Reads frames headed for the other side into `lane`, as far as its
    /// free slots allow. Returns the number of frames queued.
    fn fill(&mut self, lane: &mut Lane) -> Result<usize, Stop>;

    /// How many frames the lane toward this endpoint holds.
    fn inbound_slots(&self) -> usize {
        LANE_SLOTS
    }

    /// Takes frames from the other side out of `lane`. Frames it cannot
    /// take now stay queued. Returns the number of frames finished with.
    fn deliver(&mut self, lane: &mut Lane) -> Result<usize, Stop>;

    /// Bytes taken from a lane but not yet written out (a stream's output
    /// buffer): the engine keeps calling `deliver` until they are.
    fn pending_output(&self) -> bool {
        false
    }

    /// Set once the endpoint has ended by itself (input EOF, child exit):
    /// the engine flushes what it read, then stops.
    fn finished(&self) -> Option<Stop> {
        None
    }

    /// A child process may have exited (SIGCHLD).
    fn on_child_exit(&mut self) {}

    /// Where the far end of a cable speaks first (a command's stdout):
    /// readable once it has answered or gone.
    fn answer_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }

    /// After the loop: ends a child process the endpoint started and waits
    /// for it; how it ended when it ended the plug by failing (a status
    /// other than 0, or a signal not of our sending), which becomes the
    /// plug's exit status.
    fn reap(&mut self) -> Option<ChildFailure> {
        None
    }

    /// When the endpoint needs the loop to come back without an event.
    fn wake_in(&self) -> Option<std::time::Duration> {
        None
    }

    /// Brings the poll's interest in line with the endpoint's state (see
    /// [`sync_write_interest`]); called before each wait.
    fn sync_interest(&mut self, _registry: &Registry) {}

    /// Called about once a second, for timeouts.
    fn tick(&mut self) {}

    /// Appends this endpoint's rows to the counters table.
    fn report(&self, table: &mut StatsTable);
}

/// Tokens: the side in the high bits, the endpoint's own index below.
pub const SIDE_SHIFT: usize = 24;

pub fn token(side: usize, local: usize) -> Token {
    Token(side << SIDE_SHIFT | local)
}

pub fn split_token(t: Token) -> (usize, usize) {
    (t.0 >> SIDE_SHIFT, t.0 & ((1 << SIDE_SHIFT) - 1))
}

/// Registers `fd` edge-triggered. Descriptors epoll cannot watch (regular
/// files, /dev/null) are reported as `Ok(false)`: they are always ready.
pub fn register_fd(
    registry: &Registry,
    fd: RawFd,
    tok: Token,
    interest: Interest,
) -> io::Result<bool> {
    match registry.register(&mut SourceFd(&fd), tok, interest) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Asks for writable events only while a datagram socket is full. Such a
/// socket reports room after every datagram its peer reads; listening for
/// that all the time would wake the loop once per frame for nothing.
/// `armed` tracks whether WRITABLE is registered now.
pub fn sync_write_interest(
    registry: &Registry,
    fd: RawFd,
    tok: Token,
    writable: bool,
    armed: &mut bool,
) {
    if writable != *armed {
        return;
    }
    let interest = if writable {
        Interest::READABLE
    } else {
        Interest::READABLE | Interest::WRITABLE
    };
    if registry
        .reregister(&mut SourceFd(&fd), tok, interest)
        .is_ok()
    {
        *armed = !writable;
    }
}

/// Why a locator could not be opened: the errno vdeplug4 would leave (the
/// REASON of `vde_open URL: REASON`, which is what `Display` shows) and,
/// when there is more to say, a message naming what was wrong. Opening
/// never prints: the shell that asked decides who sees the message.
#[derive(Debug)]
pub struct OpenError {
    errno: i32,
    detail: Option<String>,
}

impl OpenError {
    /// An error the errno says all of.
    pub fn errno(errno: i32) -> OpenError {
        OpenError {
            errno,
            detail: None,
        }
    }

    /// A bad value or key: `EINVAL`, with what was wrong.
    pub fn invalid(detail: impl std::fmt::Display) -> OpenError {
        OpenError::with_detail(libc::EINVAL, detail)
    }

    /// An error with its errno and a line that says more.
    pub fn with_detail(errno: i32, detail: impl std::fmt::Display) -> OpenError {
        OpenError {
            errno,
            detail: Some(detail.to_string()),
        }
    }

    /// The errno, for `errno` and `strerror`.
    pub fn code(&self) -> i32 {
        self.errno
    }

    /// What was wrong, beyond the errno, if anything.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        OpenError::errno(crate::sys::errno_of(&e))
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::sys::strerror(self.errno))
    }
}
