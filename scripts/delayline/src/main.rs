//! delayline: a one-way delay line between two network interfaces, for the
//! middle namespaces of scripts/e2e-multipath (this kernel has no netem).
//!
//!   delayline IF_A IF_B DELAY_MS [--jitter MS] [--loss PCT] [--seed N]
//!             [--ring-mb N] [--ready-file PATH]
//!
//! Every frame that arrives on IF_A leaves on IF_B DELAY_MS later, and the
//! other way round: one thread per direction, reading with an AF_PACKET raw
//! socket bound to the arrival interface and writing with the one bound to
//! the departure interface. Frames wait in a byte ring of fixed size per
//! direction (allocated once: no allocation per frame); a frame that finds
//! the ring full is dropped and counted. The sockets carry a virtio-net
//! header (PACKET_VNET_HDR), so checksum-offload and GSO frames cross
//! unchanged, with no ethtool needed on the veths. Rate limits are not this
//! program's job: a tbf qdisc on each departure interface shapes what it
//! sends (sends are non-blocking; a full qdisc drops, as a router would).
//!
//! `--loss PCT` drops each frame with that probability (in percent, both
//! directions); `--jitter MS` adds to each frame's delay a draw between
//! -MS and +MS (uniform, to the microsecond), without reordering: a frame
//! never leaves before the one ahead of it, as on a path whose queue
//! varies. The draws come from a generator seeded by `--seed` (default 1),
//! one stream per direction, so a run is the same frame for frame given
//! the same frames in the same order. A lossy path's veths should have
//! TSO/GSO/GRO off: otherwise a frame is a 64 KiB super-packet, lost whole.
//!
//! Signals: SIGUSR1 starts a blackhole (every arriving frame is dropped, in
//! both directions), SIGUSR2 ends it; SIGINT/SIGTERM stop the program, which
//! then prints one line of counters per direction on stdout.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// Largest frame read: a 64 KiB GSO frame, its Ethernet header and the
/// virtio-net header, with room to spare.
const MAX_FRAME: usize = 65536 + 256;
/// Record header in the ring: due time (ns) and length.
const HDR: usize = 16;
/// Length value that marks "the next record is at offset 0".
const WRAP: u32 = u32::MAX;
const NS_PER_MS: u64 = 1_000_000;
/// Longest sleep, so that SIGTERM is seen promptly.
const MAX_WAIT_NS: u64 = 100 * NS_PER_MS;

/// Loss is drawn in millionths.
const PPM: u64 = 1_000_000;

static STOP: AtomicBool = AtomicBool::new(false);
static BLACKHOLE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}
extern "C" fn on_blackhole(_: libc::c_int) {
    BLACKHOLE.store(true, Ordering::Relaxed);
}
extern "C" fn on_restore(_: libc::c_int) {
    BLACKHOLE.store(false, Ordering::Relaxed);
}

fn install_signals() {
    let set = |sig: libc::c_int, f: extern "C" fn(libc::c_int)| {
        // SAFETY: the handlers only store to atomics; sa is initialised.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = f as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    };
    set(libc::SIGINT, on_stop);
    set(libc::SIGTERM, on_stop);
    set(libc::SIGHUP, on_stop);
    set(libc::SIGUSR1, on_blackhole);
    set(libc::SIGUSR2, on_restore);
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// A small deterministic generator (SplitMix64): no allocation, one
/// stream per direction from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0); the bias of the modulo is below 2^-40
    /// for the ranges used here.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What happens to the frames of one direction besides the blackhole.
#[derive(Clone, Copy)]
struct Shape {
    delay_ns: u64,
    /// Half-width of the jitter, in microseconds (0: none).
    jitter_us: u64,
    /// Loss, in millionths (0: none).
    loss_ppm: u64,
    seed: u64,
}

/// An AF_PACKET socket bound to one interface, with virtio-net headers,
/// not seeing its own sends, with large buffers.
fn packet_socket(ifname: &str) -> Result<libc::c_int, String> {
    let cname = std::ffi::CString::new(ifname).map_err(|_| format!("bad name {ifname:?}"))?;
    // SAFETY: plain system calls on a descriptor this function owns.
    unsafe {
        let ifindex = libc::if_nametoindex(cname.as_ptr());
        if ifindex == 0 {
            return Err(os_err(&format!("interface {ifname}")));
        }
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(os_err("socket(AF_PACKET)"));
        }
        let one: libc::c_int = 1;
        let big: libc::c_int = 8 << 20;
        let opts = [
            (libc::SOL_PACKET, PACKET_VNET_HDR, one, "PACKET_VNET_HDR"),
            (
                libc::SOL_PACKET,
                PACKET_IGNORE_OUTGOING,
                one,
                "PACKET_IGNORE_OUTGOING",
            ),
            (
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                big,
                "SO_RCVBUFFORCE",
            ),
            (
                libc::SOL_SOCKET,
                libc::SO_SNDBUFFORCE,
                big,
                "SO_SNDBUFFORCE",
            ),
        ];
        for (level, name, val, label) in opts {
            let r = libc::setsockopt(
                fd,
                level,
                name,
                &val as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
            if r < 0 {
                let e = os_err(label);
                libc::close(fd);
                return Err(e);
            }
        }
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        let r = libc::bind(
            fd,
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        );
        if r < 0 {
            let e = os_err(&format!("bind to {ifname}"));
            libc::close(fd);
            return Err(e);
        }
        Ok(fd)
    }
}

/// Frames waiting for their departure time, in one buffer allocated at the
/// start. Each record is HDR bytes (due time, length) then the frame,
/// padded to 8 bytes; a record that does not fit before the end starts at
/// offset 0, after a WRAP mark (or after fewer than HDR bytes left over).
struct Ring {
    buf: Vec<u8>,
    head: usize,
    tail: usize,
    used: usize,
}

fn rec_size(len: usize) -> usize {
    HDR + ((len + 7) & !7)
}

impl Ring {
    fn new(bytes: usize) -> Ring {
        Ring {
            buf: vec![0; bytes & !7],
            head: 0,
            tail: 0,
            used: 0,
        }
    }

    /// Copies a frame in, due at `due`; false when there is no room.
    fn push(&mut self, due: u64, frame: &[u8]) -> bool {
        let cap = self.buf.len();
        let need = rec_size(frame.len());
        if self.used == 0 {
            self.head = 0;
            self.tail = 0;
        }
        let full = self.used > 0 && self.tail == self.head;
        let at = if self.tail >= self.head && !full {
            if cap - self.tail >= need {
                self.tail
            } else if self.head >= need {
                if cap - self.tail >= HDR {
                    self.buf[self.tail + 8..self.tail + 12].copy_from_slice(&WRAP.to_ne_bytes());
                }
                self.used += cap - self.tail;
                0
            } else {
                return false;
            }
        } else if self.head - self.tail >= need {
            self.tail
        } else {
            return false;
        };
        self.buf[at..at + 8].copy_from_slice(&due.to_ne_bytes());
        self.buf[at + 8..at + 12].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
        self.buf[at + HDR..at + HDR + frame.len()].copy_from_slice(frame);
        self.tail = at + need;
        if self.tail == cap {
            self.tail = 0;
        }
        self.used += need;
        true
    }

    /// Skips a WRAP mark or a too-short end at `head`.
    fn settle(&mut self) {
        let cap = self.buf.len();
        if self.used == 0 {
            return;
        }
        let wraps = cap - self.head < HDR || {
            let l = u32::from_ne_bytes(self.buf[self.head + 8..self.head + 12].try_into().unwrap());
            l == WRAP
        };
        if wraps {
            self.used -= cap - self.head;
            self.head = 0;
        }
    }

    /// The due time of the oldest frame.
    fn front_due(&mut self) -> Option<u64> {
        self.settle();
        if self.used == 0 {
            return None;
        }
        Some(u64::from_ne_bytes(
            self.buf[self.head..self.head + 8].try_into().unwrap(),
        ))
    }

    /// The oldest frame (after front_due returned Some).
    fn front(&self) -> &[u8] {
        let len = u32::from_ne_bytes(self.buf[self.head + 8..self.head + 12].try_into().unwrap())
            as usize;
        &self.buf[self.head + HDR..self.head + HDR + len]
    }

    fn pop(&mut self) {
        let len = u32::from_ne_bytes(self.buf[self.head + 8..self.head + 12].try_into().unwrap())
            as usize;
        let need = rec_size(len);
        self.head += need;
        if self.head == self.buf.len() {
            self.head = 0;
        }
        self.used -= need;
    }
}

#[derive(Default)]
struct Counters {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_out: AtomicU64,
    drop_blackhole: AtomicU64,
    drop_ring_full: AtomicU64,
    drop_tx: AtomicU64,
    truncated: AtomicU64,
    drop_loss: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Moves frames from `rx` to `tx`, each its delay after its arrival (the
/// shape's delay and jitter, never before the frame ahead), or drops it
/// (the shape's loss, a blackhole).
fn run_direction(rx: libc::c_int, tx: libc::c_int, shape: Shape, ring_bytes: usize, c: &Counters) {
    let mut ring = Ring::new(ring_bytes);
    let mut scratch = vec![0u8; MAX_FRAME];
    let mut rng = Rng(shape.seed);
    let mut last_due = 0u64;
    while !STOP.load(Ordering::Relaxed) {
        let now = now_ns();
        let mut wait = MAX_WAIT_NS;
        while let Some(due) = ring.front_due() {
            if due > now {
                wait = wait.min(due - now);
                break;
            }
            let f = ring.front();
            // SAFETY: f is a valid slice; tx is an open socket.
            let r = unsafe {
                libc::send(
                    tx,
                    f.as_ptr() as *const libc::c_void,
                    f.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if r < 0 {
                bump(&c.drop_tx, 1);
            } else {
                bump(&c.frames_out, 1);
                bump(&c.bytes_out, f.len() as u64);
            }
            ring.pop();
        }
        let mut pfd = libc::pollfd {
            fd: rx,
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = libc::timespec {
            tv_sec: (wait / 1_000_000_000) as libc::time_t,
            tv_nsec: (wait % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: pfd and ts are valid for the call.
        let n = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        if n <= 0 || pfd.revents & libc::POLLIN == 0 {
            continue;
        }
        loop {
            // SAFETY: scratch is a valid buffer of its length.
            let r = unsafe {
                libc::recv(
                    rx,
                    scratch.as_mut_ptr() as *mut libc::c_void,
                    scratch.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            if r < 0 {
                break;
            }
            let len = r as usize;
            bump(&c.frames_in, 1);
            if len > scratch.len() {
                bump(&c.truncated, 1);
                continue;
            }
            // One draw each per frame, whatever becomes of it: the n-th
            // frame's fate depends on the seed alone.
            let lost = shape.loss_ppm > 0 && rng.below(PPM) < shape.loss_ppm;
            let jitter_ns = if shape.jitter_us > 0 {
                rng.below(2 * shape.jitter_us + 1) * 1000
            } else {
                0
            };
            if BLACKHOLE.load(Ordering::Relaxed) {
                bump(&c.drop_blackhole, 1);
                continue;
            }
            if lost {
                bump(&c.drop_loss, 1);
                continue;
            }
            let due = (now_ns() + shape.delay_ns + jitter_ns)
                .saturating_sub(shape.jitter_us * 1000)
                .max(last_due);
            if ring.push(due, &scratch[..len]) {
                last_due = due;
            } else {
                bump(&c.drop_ring_full, 1);
            }
        }
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: delayline IF_A IF_B DELAY_MS [--jitter MS] [--loss PCT] [--seed N] \
         [--ring-mb N] [--ready-file PATH]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut pos = Vec::new();
    let mut ring_mb: usize = 8;
    let mut ready: Option<String> = None;
    let mut jitter_ms: u64 = 0;
    let mut loss_ppm: u64 = 0;
    let mut seed: u64 = 1;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--ring-mb" => match it.next().and_then(|v| v.parse().ok()) {
                Some(v) if v > 0 && v <= 1024 => ring_mb = v,
                _ => return usage(),
            },
            "--jitter" => match it.next().and_then(|v| v.parse().ok()) {
                Some(v) if v <= 10_000 => jitter_ms = v,
                _ => return usage(),
            },
            "--loss" => match it.next().and_then(|v| parse_percent(v)) {
                Some(v) => loss_ppm = v,
                None => {
                    eprintln!(
                        "delayline: --loss takes a percentage from 0 to 100 (such as 1 or 0.5)"
                    );
                    return ExitCode::from(2);
                }
            },
            "--seed" => match it.next().and_then(|v| v.parse().ok()) {
                Some(v) => seed = v,
                None => return usage(),
            },
            "--ready-file" => match it.next() {
                Some(v) => ready = Some(v.clone()),
                None => return usage(),
            },
            "-h" | "--help" => return usage(),
            _ => pos.push(a.clone()),
        }
    }
    if pos.len() != 3 {
        return usage();
    }
    let Ok(delay_ms) = pos[2].parse::<u64>() else {
        eprintln!("delayline: DELAY_MS must be a whole number of milliseconds");
        return ExitCode::from(2);
    };
    install_signals();
    // SAFETY: prctl with integer arguments; a 1 us timer slack for ppoll.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
    let (fa, fb) = match (packet_socket(&pos[0]), packet_socket(&pos[1])) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("delayline: {e}");
            return ExitCode::from(1);
        }
    };
    let shape = Shape {
        delay_ns: delay_ms * NS_PER_MS,
        jitter_us: jitter_ms * 1000,
        loss_ppm,
        seed,
    };
    // The other direction draws from another stream of the same seed.
    let back = Shape {
        seed: seed ^ 0x5bd1_e995_5bd1_e995,
        ..shape
    };
    let ring_bytes = ring_mb << 20;
    let ab = Arc::new(Counters::default());
    let ba = Arc::new(Counters::default());
    let t1 = {
        let c = ab.clone();
        std::thread::spawn(move || run_direction(fa, fb, shape, ring_bytes, &c))
    };
    let t2 = {
        let c = ba.clone();
        std::thread::spawn(move || run_direction(fb, fa, back, ring_bytes, &c))
    };
    if let Some(p) = ready {
        if let Err(e) = std::fs::write(&p, b"ready\n") {
            eprintln!("delayline: {p}: {e}");
        }
    }
    let _ = t1.join();
    let _ = t2.join();
    for (name, c) in [
        (format!("{}>{}", pos[0], pos[1]), &ab),
        (format!("{}>{}", pos[1], pos[0]), &ba),
    ] {
        let g = |x: &AtomicU64| x.load(Ordering::Relaxed);
        println!(
            "delayline {name} delay_ms={delay_ms} jitter_ms={jitter_ms} loss_ppm={loss_ppm} \
             seed={seed} frames_in={} frames_out={} bytes_out={} drop_loss={} \
             drop_blackhole={} drop_ring_full={} drop_tx={} truncated={}",
            g(&c.frames_in),
            g(&c.frames_out),
            g(&c.bytes_out),
            g(&c.drop_loss),
            g(&c.drop_blackhole),
            g(&c.drop_ring_full),
            g(&c.drop_tx),
            g(&c.truncated)
        );
    }
    ExitCode::SUCCESS
}

/// "1", "0.5", "12.25": a percentage as millionths (at most 100 %).
fn parse_percent(s: &str) -> Option<u64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || frac.len() > 4
        || !(whole.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let frac: u64 = format!("{frac:0<4}").parse().ok()?;
    let ppm = whole.checked_mul(10_000)?.checked_add(frac)?;
    (ppm <= PPM).then_some(ppm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("1"), Some(10_000));
        assert_eq!(parse_percent("0.5"), Some(5_000));
        assert_eq!(parse_percent("100"), Some(PPM));
        assert_eq!(parse_percent("12.3456"), Some(123_456));
        for bad in ["", ".5", "101", "1.23456", "-1", "1e2", "x"] {
            assert_eq!(parse_percent(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_draws_follow_the_seed() {
        let draws = |seed| {
            let mut r = Rng(seed);
            (0..100).map(|_| r.below(PPM)).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
        // About 1 % of a million draws fall under 10 000 ppm.
        let mut r = Rng(1);
        let lost = (0..1_000_000).filter(|_| r.below(PPM) < 10_000).count();
        assert!((9_000..11_000).contains(&lost), "{lost}");
    }
}
