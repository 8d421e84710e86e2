//! The byte stream: stdin/stdout, or the pipes of a `= CMD` child. Frames
//! travel as a 2-byte big-endian length and the frame (see
//! [`crate::wire::stream`]).
//!
//! Input is read in large chunks and decoded into the lane; when the lane
//! is full, decoding pauses and the rest of the chunk waits. Output frames
//! are framed into one buffer and written with few large writes; when that
//! buffer is full the frames stay queued, so whatever feeds this stream
//! stops being read (backpressure instead of loss).
//!
//! Between two plugs of ours, frames cross with their headers compressed
//! ([`crate::wire::stream_delta`]). Each end first writes a signal (three
//! zero lengths, which the C reader skips): "I read coded frames". An end
//! that reads the far end's signal writes a second signal, and another
//! before every eighth key, then codes what it writes; the far end reads
//! coded frames from the second signal on. A C plug never signals, so it
//! is only ever written plain frames. A filter that drops frames between two of
//! ours (vde2's wirefilter in a dpipe) also takes the deltas of a key it
//! dropped; as long as it leaves an end's first signal or its second one
//! whole, it makes no wrong frame.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use log::warn;
use mio::{Interest, Registry};

use super::{register_fd, token, Endpoint, Ready, Stop};
use crate::iplog::IpLog;
use crate::lane::Lane;
use crate::stats::{LinkStats, LogThrottle, StatsTable};
use crate::sys;
use crate::wire::path_report::is_path_report;
use crate::wire::stream::{header, StreamDecoder, StreamEvent, SIGNAL};
use crate::wire::stream_delta::{self, Coding, DeltaDecoder, DeltaEncoder};
use crate::wire::{ETH_HEADER_LEN, MAX_FRAME};

const READ_BUF: usize = 32 * 1024;
const WRITE_BUF: usize = 32 * 1024;

/// A signal again before every this many keys, so that a far end that
/// missed our switch (a filter dropping frames) reads coded frames again.
const KEYS_PER_SIGNAL: u32 = 8;

const INPUT: usize = 0;
const OUTPUT: usize = 1;

/// A descriptor with the flags it had before we made it non-blocking,
/// put back when we are done (stdin and stdout are shared with others).
pub struct StreamFd {
    fd: OwnedFd,
    saved_flags: Option<libc::c_int>,
}

impl StreamFd {
    pub fn new(fd: OwnedFd) -> io::Result<StreamFd> {
        let saved = sys::set_nonblocking(fd.as_raw_fd(), true)?;
        Ok(StreamFd {
            fd,
            saved_flags: Some(saved),
        })
    }

    /// A duplicate of one of our standard descriptors.
    pub fn dup_std(fd: RawFd) -> io::Result<StreamFd> {
        // SAFETY: dup of a descriptor this process has open.
        let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if d < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: d is a fresh descriptor we own.
        Self::new(unsafe { std::os::fd::FromRawFd::from_raw_fd(d) })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for StreamFd {
    fn drop(&mut self) {
        if let Some(flags) = self.saved_flags {
            sys::restore_flags(self.fd.as_raw_fd(), flags);
        }
    }
}

pub struct StreamEndpoint {
    label: String,
    input: StreamFd,
    output: StreamFd,
    decoder: StreamDecoder,
    rbuf: Box<[u8]>,
    rstart: usize,
    rend: usize,
    wbuf: Box<[u8]>,
    wstart: usize,
    wend: usize,
    readable: bool,
    writable: bool,
    eof: bool,
    stats: LinkStats,
    oversize_seen: u64,
    /// Errors are logged once per burst, not once per frame.
    bad_input_log: LogThrottle,
    /// `-L`: IP addresses seen in incoming frames go to syslog.
    ip_log: Option<IpLog>,
    delta: DeltaLink,
}

/// Where header compression with the far end stands.
struct DeltaLink {
    /// Signals read from the far end (saturating): 1 means it reads coded
    /// frames, 2 that what it writes is coded.
    signals_read: u8,
    /// Our second signal is written: what we write is coded.
    coding_out: bool,
    /// Keys written since our last signal.
    keys_unsignalled: u32,
    encoder: DeltaEncoder,
    decoder: DeltaDecoder,
}

impl StreamEndpoint {
    pub fn new(label: String, input: StreamFd, output: StreamFd) -> StreamEndpoint {
        // The first signal, at once, so that the far end codes from its
        // first frames on; a plug of ours opens its stdin/stdout after its
        // URL, so this also tells a near plug waiting for its far end
        // (`run::wait_far_end`) that the far end's network is open. Six
        // bytes into a pipe nothing was written to yet fit; if they do not
        // go, the far end never codes: no harm. Not through `wbuf`: a
        // closed output ends the plug at its first frame, as C's, not at
        // its start. Not on a terminal.
        if !sys::is_tty(output.raw()) {
            let _ = sys::write(output.raw(), &SIGNAL);
        }
        StreamEndpoint {
            label,
            input,
            output,
            decoder: StreamDecoder::new(),
            rbuf: vec![0u8; READ_BUF].into_boxed_slice(),
            rstart: 0,
            rend: 0,
            wbuf: vec![0u8; WRITE_BUF + SIGNAL.len() + 2 + MAX_FRAME].into_boxed_slice(),
            wstart: 0,
            wend: 0,
            readable: true,
            writable: true,
            eof: false,
            stats: LinkStats::default(),
            oversize_seen: 0,
            bad_input_log: LogThrottle::default(),
            ip_log: None,
            delta: DeltaLink {
                signals_read: 0,
                coding_out: false,
                keys_unsignalled: 0,
                encoder: DeltaEncoder::default(),
                decoder: DeltaDecoder::default(),
            },
        }
    }

    /// stdin and stdout.
    pub fn stdio() -> io::Result<StreamEndpoint> {
        Ok(Self::new(
            "stream stdin/stdout".into(),
            StreamFd::dup_std(libc::STDIN_FILENO)?,
            StreamFd::dup_std(libc::STDOUT_FILENO)?,
        ))
    }

    /// The descriptor frames are read from.
    pub(crate) fn input_fd(&self) -> RawFd {
        self.input.raw()
    }

    /// Logs the IP addresses the frames read from this stream carry (`-L`).
    pub fn with_ip_log(mut self) -> Self {
        self.ip_log = Some(IpLog::new());
        self
    }

    /// Decodes buffered input into the lane; false when the lane filled up.
    fn decode_buffered(&mut self, lane: &mut Lane, queued: &mut usize) -> bool {
        let stats = &mut self.stats;
        let ring = &mut lane.ring;
        let ip_log = &mut self.ip_log;
        let delta = &mut self.delta;
        let mut full = false;
        let used = self.decoder.feed(&self.rbuf[self.rstart..self.rend], |ev| {
            let f = match ev {
                StreamEvent::Frame(f) => f,
                StreamEvent::Oversize(_) => {
                    stats.drop_oversize += 1;
                    return true;
                }
                StreamEvent::Signal => {
                    delta.signals_read = delta.signals_read.saturating_add(1);
                    return true;
                }
            };
            let coded = match delta.signals_read {
                _ if !stream_delta::is_coded(f) => false,
                // Not a plug of ours (or its signals were lost): as C reads it.
                0 => false,
                // A plug of ours whose switch to coding was not read: the
                // frame may be coded or not (it switches once it has read
                // our first signal, within a round trip of the start; a
                // filter that drops frames may have taken the switch).
                1 => {
                    stats.drop_oversize += 1;
                    return true;
                }
                _ => true,
            };
            // A frame the ring has no room for is fed again whole, later.
            let Some(slot) = ring.reserve() else {
                full = true;
                return false;
            };
            let buf = ring.slot_buf(slot);
            let len = if coded {
                // Rebuilt straight into its slot.
                delta.decoder.decode(f, buf)
            } else {
                buf[..f.len()].copy_from_slice(f);
                Ok(f.len())
            };
            let kept = match len {
                Err(_) => {
                    stats.drop_oversize += 1;
                    None
                }
                Ok(len) if len < ETH_HEADER_LEN && !is_path_report(&buf[..len]) => {
                    stats.drop_runt += 1;
                    None
                }
                Ok(len) => {
                    if let Some(log) = ip_log.as_mut() {
                        log.check(&buf[..len]);
                    }
                    Some(len)
                }
            };
            match kept {
                Some(len) => {
                    ring.push(slot, len);
                    stats.count_in(len);
                    *queued += 1;
                }
                None => ring.unreserve(slot),
            }
            true
        });
        self.rstart += used;
        if self.stats.drop_oversize > self.oversize_seen && self.bad_input_log.ready() {
            warn!(
                "{}: bad frame length in the stream, skipping ahead, or a coded frame that \
                 cannot be rebuilt ({} so far)",
                self.label, self.stats.drop_oversize
            );
        }
        self.oversize_seen = self.stats.drop_oversize;
        !full
    }

    /// Writes out buffered output; false when the descriptor is full.
    fn flush(&mut self) -> Result<bool, Stop> {
        while self.wstart < self.wend {
            if !self.writable {
                return Ok(false);
            }
            match sys::write(self.output.raw(), &self.wbuf[self.wstart..self.wend]) {
                Ok(n) => self.wstart += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable = false;
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
                    return Err(Stop::Ended(format!(
                        "{}: the output was closed",
                        self.label
                    )));
                }
                Err(e) => {
                    return Err(Stop::Failed(format!(
                        "{}: write: {}",
                        self.label,
                        crate::sys::describe(&e)
                    )))
                }
            }
        }
        self.wstart = 0;
        self.wend = 0;
        Ok(true)
    }
}

impl Endpoint for StreamEndpoint {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn register(&mut self, registry: &Registry, side: usize) -> io::Result<()> {
        // Not every input can be polled (a regular file): it is read anyway.
        register_fd(
            registry,
            self.input.raw(),
            token(side, INPUT),
            Interest::READABLE,
        )?;
        register_fd(
            registry,
            self.output.raw(),
            token(side, OUTPUT),
            Interest::WRITABLE,
        )?;
        Ok(())
    }

    fn on_event(&mut self, _registry: &Registry, local: usize, ready: Ready) -> Result<(), Stop> {
        match local {
            INPUT => self.readable |= ready.readable || ready.closed,
            _ => {
                self.writable |= ready.writable;
                if ready.closed && !ready.writable {
                    return Err(Stop::Ended(format!(
                        "{}: the output was closed",
                        self.label
                    )));
                }
            }
        }
        Ok(())
    }

    fn fill(&mut self, lane: &mut Lane) -> Result<usize, Stop> {
        let mut queued = 0;
        loop {
            if !self.decode_buffered(lane, &mut queued) {
                return Ok(queued);
            }
            if !self.readable || self.eof {
                return Ok(queued);
            }
            match sys::read(self.input.raw(), &mut self.rbuf) {
                Ok(0) => {
                    self.eof = true;
                    if self.decoder.pending_bytes() > 0 {
                        warn!(
                            "{}: the stream ended inside a frame ({} bytes dropped)",
                            self.label,
                            self.decoder.pending_bytes()
                        );
                        self.stats.drop_runt += 1;
                    }
                    return Ok(queued);
                }
                Ok(n) => {
                    self.rstart = 0;
                    self.rend = n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Ok(queued);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(Stop::Failed(format!(
                        "{}: read: {}",
                        self.label,
                        crate::sys::describe(&e)
                    )))
                }
            }
        }
    }

    fn deliver(&mut self, lane: &mut Lane) -> Result<usize, Stop> {
        let mut done = 0;
        loop {
            let ring = &mut lane.ring;
            let mut took = 0;
            for i in 0..ring.queued().len() {
                let slot = ring.queued()[i];
                let frame = ring.frame(slot);
                let d = &mut self.delta;
                let plan = match d.signals_read {
                    0 => Coding::Plain,
                    _ => d.encoder.plan(frame),
                };
                let key = matches!(plan, Coding::Key { .. });
                let switch = d.signals_read > 0
                    && (!d.coding_out || key && d.keys_unsignalled + 1 >= KEYS_PER_SIGNAL);
                let at = self.wend + if switch { SIGNAL.len() } else { 0 };
                let len = plan.len(frame.len());
                if at + 2 + len > self.wbuf.len() {
                    break;
                }
                took += 1;
                if plan == Coding::Unsendable {
                    self.stats.drop_oversize += 1;
                    continue;
                }
                self.wbuf[self.wend..at].fill(0);
                d.coding_out |= switch;
                if switch {
                    d.keys_unsignalled = 0;
                } else if key {
                    d.keys_unsignalled += 1;
                }
                self.wbuf[at..at + 2].copy_from_slice(&header(len));
                d.encoder
                    .emit(plan, frame, &mut self.wbuf[at + 2..at + 2 + len]);
                self.wend = at + 2 + len;
                self.stats.count_out(frame.len());
            }
            ring.consume_front(took);
            done += took;
            let drained = self.flush()?;
            if lane.ring.is_empty() || !drained {
                return Ok(done);
            }
        }
    }

    fn pending_output(&self) -> bool {
        self.wstart < self.wend
    }

    fn finished(&self) -> Option<Stop> {
        self.eof
            .then(|| Stop::Ended(format!("{}: end of input", self.label)))
    }

    fn report(&self, table: &mut StatsTable) {
        table.row(&self.label, &self.stats, "");
    }
}
