//! delayline: a one-way delay line between two network interfaces, for the
//! middle namespaces of scripts/e2e-multipath (this kernel has no netem).
//!
//!   delayline IF_A IF_B DELAY_MS [--ring-mb N] [--ready-file PATH]
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
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Moves frames from `rx` to `tx`, each `delay_ns` after its arrival.
fn run_direction(rx: libc::c_int, tx: libc::c_int, delay_ns: u64, ring_bytes: usize, c: &Counters) {
    let mut ring = Ring::new(ring_bytes);
    let mut scratch = vec![0u8; MAX_FRAME];
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
            if BLACKHOLE.load(Ordering::Relaxed) {
                bump(&c.drop_blackhole, 1);
                continue;
            }
            if !ring.push(now_ns() + delay_ns, &scratch[..len]) {
                bump(&c.drop_ring_full, 1);
            }
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: delayline IF_A IF_B DELAY_MS [--ring-mb N] [--ready-file PATH]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut pos = Vec::new();
    let mut ring_mb: usize = 8;
    let mut ready: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--ring-mb" => match it.next().and_then(|v| v.parse().ok()) {
                Some(v) if v > 0 && v <= 1024 => ring_mb = v,
                _ => return usage(),
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
    let delay_ns = delay_ms * NS_PER_MS;
    let ring_bytes = ring_mb << 20;
    let ab = Arc::new(Counters::default());
    let ba = Arc::new(Counters::default());
    let t1 = {
        let c = ab.clone();
        std::thread::spawn(move || run_direction(fa, fb, delay_ns, ring_bytes, &c))
    };
    let t2 = {
        let c = ba.clone();
        std::thread::spawn(move || run_direction(fb, fa, delay_ns, ring_bytes, &c))
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
            "delayline {name} delay_ms={delay_ms} frames_in={} frames_out={} bytes_out={} \
             drop_blackhole={} drop_ring_full={} drop_tx={} truncated={}",
            g(&c.frames_in),
            g(&c.frames_out),
            g(&c.bytes_out),
            g(&c.drop_blackhole),
            g(&c.drop_ring_full),
            g(&c.drop_tx),
            g(&c.truncated)
        );
    }
    ExitCode::SUCCESS
}
