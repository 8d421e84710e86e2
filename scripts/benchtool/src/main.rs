//! vde_bench: a tiny, implementation-neutral traffic tool for vde:// nodes.
//!
//! It talks the vde:// control protocol itself (see `vde.rs`), so the same
//! binary measures any node implementation (C `vde_plug` or `vde_plug_rs`).
//!
//! Subcommands (DIR is the node's control directory, i.e. where `ctl` lives):
//!   send DIR --size N (--count C | --seconds S) [--batch B] [--rate FPS]
//!        [--linger-ms L]
//!   recv DIR --seconds S [--idle-ms I] [--batch B]
//!   ping DIR --size N --count C [--interval-us U]
//!   echo DIR --seconds S [--batch B]
//! Common options: --ready-file PATH (created once the port is connected),
//!                 --descr TEXT (port description sent to the node).
//! `recv` also counts distinct sequence numbers and duplicates (the same
//! frame received again, e.g. over a second path); on SIGUSR1 it prints an
//! `interim frames=.. distinct=.. dup=..` line of its counts so far and
//! goes on.
//! Every subcommand ends by itself and prints one `key=value ...` line on
//! stdout. SIGINT/SIGTERM end the run early; the result line is still printed.

mod vde;

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// Largest Ethernet frame carried by VDE (9216-byte payload + headers).
const MAX_FRAME: usize = 9234;
/// Receive buffer stride: MAX_FRAME rounded up to 16 bytes.
const RX_STRIDE: usize = (MAX_FRAME + 15) & !15;
/// Smallest frame `send`/`ping` build: 14 header bytes + 8 sequence bytes,
/// rounded up so that the payload is never empty.
const MIN_TX_FRAME: usize = 24;
const ETHERTYPE: u16 = 0x88b5;
const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const ECHO_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const BCAST_MAC: [u8; 6] = [0xff; 6];
const SEQ_OFF: usize = 14;
const SEQ_END: usize = SEQ_OFF + 8;
const NS_PER_SEC: u64 = 1_000_000_000;
const NS_PER_MS: u64 = 1_000_000;
/// How often blocking calls wake up to look at deadlines and signals.
const POLL_NS: u64 = 50 * NS_PER_MS;
/// A sender that makes no progress for this long gives up.
const STALL_NS: u64 = 10 * NS_PER_SEC;
/// How long `ping` waits for each echo.
const PING_TIMEOUT_NS: u64 = NS_PER_SEC;
/// `recv` tells first copies from duplicates for sequence numbers below
/// this (a bitmap of at most 16 MiB); higher ones count as `untracked`.
const SEQ_TRACK_MAX: u64 = 1 << 27;

static STOP: AtomicBool = AtomicBool::new(false);
static REPORT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

extern "C" fn on_report(_sig: libc::c_int) {
    REPORT.store(true, Ordering::Relaxed);
}

fn stopping() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// SIGINT/SIGTERM set STOP, SIGUSR1 sets REPORT; no SA_RESTART, so
/// blocking calls return EINTR.
fn install_signal_handlers() {
    // SAFETY: the handler only touches an atomic; sigaction is initialised.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = 0;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
        sa.sa_sigaction = on_report as *const () as usize;
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * NS_PER_SEC + ts.tv_nsec as u64
}

fn sleep_until_ns(t: u64) {
    let ts = libc::timespec {
        tv_sec: (t / NS_PER_SEC) as libc::time_t,
        tv_nsec: (t % NS_PER_SEC) as libc::c_long,
    };
    // SAFETY: ts is valid; an early EINTR return is harmless here.
    unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &ts,
            std::ptr::null_mut(),
        )
    };
}

fn set_sock_timeout(fd: i32, opt: libc::c_int, ns: u64) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: (ns / NS_PER_SEC) as libc::time_t,
        tv_usec: ((ns % NS_PER_SEC) / 1000) as libc::suseconds_t,
    };
    // SAFETY: tv is a valid timeval of the advertised size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn is_retry(errno: i32) -> bool {
    errno == libc::EAGAIN || errno == libc::EWOULDBLOCK || errno == libc::EINTR
}

/// A fixed set of frame buffers with their iovecs and mmsghdrs, for
/// sendmmsg/recvmmsg. Everything is allocated once; the raw pointers inside
/// `iov`/`hdr` point into the heap storage of `buf`/`iov`, which never moves
/// because none of the vectors is ever resized.
struct Batch {
    buf: Vec<u8>,
    iov: Vec<libc::iovec>,
    hdr: Vec<libc::mmsghdr>,
    stride: usize,
}

impl Batch {
    fn new(count: usize, stride: usize) -> Batch {
        let mut buf = vec![0u8; count * stride];
        let base = buf.as_mut_ptr();
        let mut iov: Vec<libc::iovec> = (0..count)
            .map(|i| libc::iovec {
                // SAFETY: i * stride is inside buf.
                iov_base: unsafe { base.add(i * stride) } as *mut libc::c_void,
                iov_len: stride,
            })
            .collect();
        let iov_base = iov.as_mut_ptr();
        let hdr = (0..count)
            .map(|i| {
                // SAFETY: mmsghdr is plain old data; zero is a valid value.
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                // SAFETY: i is inside iov.
                h.msg_hdr.msg_iov = unsafe { iov_base.add(i) };
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        Batch {
            buf,
            iov,
            hdr,
            stride,
        }
    }

    fn len(&self) -> usize {
        self.hdr.len()
    }

    fn frame(&self, i: usize) -> &[u8] {
        &self.buf[i * self.stride..(i + 1) * self.stride]
    }

    fn frame_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.buf[i * self.stride..(i + 1) * self.stride]
    }

    fn set_iov_len(&mut self, i: usize, len: usize) {
        self.iov[i].iov_len = len;
    }

    /// Bytes received into slot `i` by the last recvmmsg.
    fn received(&self, i: usize) -> usize {
        self.hdr[i].msg_len as usize
    }

    /// sendmmsg of slots `from..to`; returns how many went out, or errno.
    fn send(&mut self, fd: i32, from: usize, to: usize) -> Result<usize, i32> {
        // SAFETY: hdr[from..to] are valid mmsghdrs pointing at live buffers.
        let r = unsafe {
            libc::sendmmsg(
                fd,
                self.hdr.as_mut_ptr().add(from),
                (to - from) as libc::c_uint,
                libc::MSG_NOSIGNAL,
            )
        };
        if r < 0 {
            Err(last_errno())
        } else {
            Ok(r as usize)
        }
    }

    /// recvmmsg into all slots: blocks (up to SO_RCVTIMEO) for the first
    /// frame only, then takes whatever is already queued.
    fn recv(&mut self, fd: i32) -> Result<usize, i32> {
        // SAFETY: every hdr points at a live buffer of iov_len bytes.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.hdr.as_mut_ptr(),
                self.hdr.len() as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            Err(last_errno())
        } else {
            Ok(r as usize)
        }
    }
}

/// Fill in the fixed part of a test frame (addresses, ethertype, zero pad).
fn init_frame(frame: &mut [u8]) {
    frame.fill(0);
    frame[0..6].copy_from_slice(&BCAST_MAC);
    frame[6..12].copy_from_slice(&SRC_MAC);
    frame[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
}

fn frame_seq(frame: &[u8]) -> Option<u64> {
    if frame.len() >= SEQ_END && frame[12..14] == ETHERTYPE.to_be_bytes() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&frame[SEQ_OFF..SEQ_END]);
        Some(u64::from_be_bytes(b))
    } else {
        None
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / NS_PER_SEC as f64
}

fn rate(n: u64, ns: u64) -> f64 {
    if ns == 0 {
        0.0
    } else {
        n as f64 / secs(ns)
    }
}

fn emit(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

// ---------------------------------------------------------------------------
// Options

#[derive(Default)]
struct Opts {
    size: Option<usize>,
    count: Option<u64>,
    seconds: Option<f64>,
    batch: Option<usize>,
    idle_ms: Option<u64>,
    interval_us: Option<u64>,
    rate: Option<f64>,
    linger_ms: Option<u64>,
    ready_file: Option<String>,
    descr: Option<String>,
}

const USAGE: &str = "usage:
  vde_bench send DIR --size N (--count C | --seconds S) [--batch B] [--rate FPS]
                 [--linger-ms L]
  vde_bench recv DIR --seconds S [--idle-ms I] [--batch B]
  vde_bench ping DIR --size N --count C [--interval-us U]
  vde_bench echo DIR --seconds S [--batch B]
common options: --ready-file PATH  --descr TEXT
DIR is the node's control directory (the one holding `ctl`); a vde:// prefix is accepted.";

fn parse_num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, String> {
    v.parse::<T>()
        .map_err(|_| format!("bad value for --{key}: {v:?}"))
}

fn parse_args(args: &[String]) -> Result<(String, String, Opts), String> {
    if args.len() < 2 {
        return Err("missing subcommand or DIR".into());
    }
    let cmd = args[0].clone();
    let dir = args[1].clone();
    let mut o = Opts::default();
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        let Some(flag) = a.strip_prefix("--") else {
            return Err(format!("unexpected argument {a:?}"));
        };
        let (key, val) = match flag.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => {
                i += 1;
                let v = args
                    .get(i)
                    .ok_or_else(|| format!("--{flag} needs a value"))?;
                (flag.to_string(), v.clone())
            }
        };
        match key.as_str() {
            "size" => o.size = Some(parse_num(&key, &val)?),
            "count" => o.count = Some(parse_num(&key, &val)?),
            "seconds" => o.seconds = Some(parse_num(&key, &val)?),
            "batch" => o.batch = Some(parse_num(&key, &val)?),
            "idle-ms" => o.idle_ms = Some(parse_num(&key, &val)?),
            "interval-us" => o.interval_us = Some(parse_num(&key, &val)?),
            "rate" => o.rate = Some(parse_num(&key, &val)?),
            "linger-ms" => o.linger_ms = Some(parse_num(&key, &val)?),
            "ready-file" => o.ready_file = Some(val),
            "descr" => o.descr = Some(val),
            _ => return Err(format!("unknown option --{key}")),
        }
        i += 1;
    }
    if let Some(s) = o.seconds {
        if !(s.is_finite() && s > 0.0) {
            return Err("--seconds must be > 0".into());
        }
    }
    if let Some(r) = o.rate {
        if !(r.is_finite() && r >= 0.0) {
            return Err("--rate must be >= 0 (0: as fast as possible)".into());
        }
    }
    if let Some(b) = o.batch {
        if !(1..=1024).contains(&b) {
            return Err("--batch must be in 1..=1024".into());
        }
    }
    if let Some(n) = o.size {
        if !(MIN_TX_FRAME..=MAX_FRAME).contains(&n) {
            return Err(format!("--size must be in {MIN_TX_FRAME}..={MAX_FRAME}"));
        }
    }
    Ok((cmd, dir, o))
}

fn seconds_ns(s: f64) -> u64 {
    (s * NS_PER_SEC as f64) as u64
}

fn need<T: Copy>(v: Option<T>, what: &str, cmd: &str) -> Result<T, String> {
    v.ok_or_else(|| format!("{cmd}: {what} is required"))
}

// ---------------------------------------------------------------------------
// Subcommands

enum Limit {
    Count(u64),
    Until(u64),
}

/// send: blast numbered frames as fast as the node accepts them, or at most
/// `max_fps` frames per second (0: no limit; frame k is not sent before
/// start + k / max_fps). The socket is blocking (flow control comes from the
/// node's receive queue); a send timeout only lets us look at the clock
/// while blocked.
fn cmd_send(
    fd: i32,
    size: usize,
    limit: Limit,
    batch: usize,
    max_fps: f64,
) -> Result<String, String> {
    set_sock_timeout(fd, libc::SO_SNDTIMEO, POLL_NS).map_err(|e| format!("SO_SNDTIMEO: {e}"))?;
    let mut b = Batch::new(batch, size);
    for i in 0..b.len() {
        init_frame(b.frame_mut(i));
    }
    let mut seq: u64 = 0;
    let mut error = None;
    let start = now_ns();
    let mut end = start;
    let mut last_progress = start;
    'outer: loop {
        let n = match limit {
            Limit::Count(c) => {
                if seq >= c {
                    break;
                }
                (c - seq).min(batch as u64) as usize
            }
            Limit::Until(deadline) => {
                if now_ns() >= deadline {
                    break;
                }
                batch
            }
        };
        if stopping() {
            break;
        }
        let n = if max_fps > 0.0 {
            // Frames due by now; wait for the next one if none is.
            let mut due = (secs(now_ns() - start) * max_fps) as u64 + 1;
            if due <= seq {
                let at = start + ((seq as f64 / max_fps) * NS_PER_SEC as f64) as u64;
                let wake = at.min(match limit {
                    Limit::Until(d) => d,
                    Limit::Count(_) => u64::MAX,
                });
                sleep_until_ns(wake.min(now_ns() + POLL_NS));
                due = (secs(now_ns() - start) * max_fps) as u64 + 1;
                if due <= seq {
                    continue;
                }
            }
            n.min((due - seq) as usize)
        } else {
            n
        };
        for i in 0..n {
            b.frame_mut(i)[SEQ_OFF..SEQ_END].copy_from_slice(&(seq + i as u64).to_be_bytes());
        }
        let mut done = 0;
        while done < n {
            match b.send(fd, done, n) {
                Ok(k) => {
                    done += k;
                    end = now_ns();
                    last_progress = end;
                }
                Err(e) if is_retry(e) => {
                    let t = now_ns();
                    let late = matches!(limit, Limit::Until(d) if t >= d);
                    if late || stopping() {
                        seq += done as u64;
                        break 'outer;
                    }
                    if t - last_progress > STALL_NS {
                        error = Some("node accepted nothing for 10 s".to_string());
                        seq += done as u64;
                        break 'outer;
                    }
                }
                Err(e) => {
                    error = Some(format!("sendmmsg: {}", io::Error::from_raw_os_error(e)));
                    seq += done as u64;
                    break 'outer;
                }
            }
        }
        seq += n as u64;
    }
    let elapsed = end - start;
    let line = format!(
        "sent={} seconds={:.6} fps={:.1} size={}",
        seq,
        secs(elapsed),
        rate(seq, elapsed),
        size
    );
    match error {
        None => Ok(line),
        Some(e) => {
            emit(&line);
            Err(e)
        }
    }
}

/// Which sequence numbers `recv` has seen, to count distinct frames and
/// duplicates (e.g. the same frame delivered over two paths).
#[derive(Default)]
struct SeqSet {
    bits: Vec<u64>,
    distinct: u64,
    dup: u64,
    untracked: u64,
}

impl SeqSet {
    fn add(&mut self, seq: u64) {
        if seq >= SEQ_TRACK_MAX {
            self.untracked += 1;
            return;
        }
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if word >= self.bits.len() {
            // Grow geometrically: sequence numbers arrive roughly in order.
            let want = (word + 1).max(self.bits.len() * 2).max(1024);
            self.bits.resize(want.min((SEQ_TRACK_MAX / 64) as usize), 0);
        }
        if self.bits[word] & bit == 0 {
            self.bits[word] |= bit;
            self.distinct += 1;
        } else {
            self.dup += 1;
        }
    }
}

/// recv: count frames until the time limit, or until `idle` of silence once
/// traffic has started.
fn cmd_recv(fd: i32, deadline: u64, idle_ns: u64, batch: usize) -> Result<String, String> {
    set_sock_timeout(fd, libc::SO_RCVTIMEO, POLL_NS).map_err(|e| format!("SO_RCVTIMEO: {e}"))?;
    let mut b = Batch::new(batch, RX_STRIDE);
    let (mut frames, mut bytes, mut reordered, mut foreign) = (0u64, 0u64, 0u64, 0u64);
    let mut runts = 0u64;
    let mut max_seq: Option<u64> = None;
    let mut seen = SeqSet::default();
    let (mut first, mut last) = (0u64, 0u64);
    let mut error = None;
    loop {
        if stopping() {
            break;
        }
        if REPORT.swap(false, Ordering::Relaxed) {
            emit(&format!(
                "interim frames={frames} distinct={} dup={}",
                seen.distinct, seen.dup
            ));
        }
        let t = now_ns();
        if t >= deadline || (frames > 0 && t - last >= idle_ns) {
            break;
        }
        let n = match b.recv(fd) {
            Ok(n) => n,
            Err(e) if is_retry(e) => continue,
            Err(e) => {
                error = Some(format!("recvmmsg: {}", io::Error::from_raw_os_error(e)));
                break;
            }
        };
        let t = now_ns();
        let before = frames;
        for i in 0..n {
            let len = b.received(i).min(RX_STRIDE);
            if len < 14 {
                // Not a frame: a bonding node's path report to what it
                // takes for a cable (no host would see it).
                runts += 1;
                continue;
            }
            bytes += len as u64;
            frames += 1;
            match frame_seq(&b.frame(i)[..len]) {
                Some(s) => {
                    seen.add(s);
                    match max_seq {
                        Some(m) if s <= m => reordered += 1,
                        _ => max_seq = Some(s),
                    }
                }
                None => foreign += 1,
            }
        }
        if frames > before {
            if before == 0 {
                first = t;
            }
            last = t;
        }
    }
    let span = last - first;
    let max_seq = max_seq.map_or_else(|| "none".to_string(), |m| m.to_string());
    let line = format!(
        "frames={frames} bytes={bytes} first_to_last_s={:.6} fps={:.1} max_seq={max_seq} reordered={reordered} foreign={foreign} runts={runts} distinct={} dup={} untracked={}",
        secs(span),
        rate(frames, span),
        seen.distinct,
        seen.dup,
        seen.untracked,
    );
    match error {
        None => Ok(line),
        Some(e) => {
            emit(&line);
            Err(e)
        }
    }
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest-rank percentile.
    let rank = (q * sorted.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted.len()) - 1;
    sorted[idx] as f64 / 1000.0
}

/// ping: one frame at a time, wait for the echo with the same sequence number.
fn cmd_ping(fd: i32, size: usize, count: u64, interval_ns: u64) -> Result<String, String> {
    set_sock_timeout(fd, libc::SO_RCVTIMEO, PING_TIMEOUT_NS / 10)
        .map_err(|e| format!("SO_RCVTIMEO: {e}"))?;
    let mut tx = vec![0u8; size];
    init_frame(&mut tx);
    let mut rx = vec![0u8; RX_STRIDE];
    let mut rtts: Vec<u64> = Vec::with_capacity(count as usize);
    let mut sent = 0u64;
    let mut error = None;
    let mut next = now_ns();
    'outer: for seq in 0..count {
        if stopping() {
            break;
        }
        if interval_ns > 0 {
            sleep_until_ns(next);
            next += interval_ns;
        }
        tx[SEQ_OFF..SEQ_END].copy_from_slice(&seq.to_be_bytes());
        let t0 = now_ns();
        loop {
            // SAFETY: tx is a live buffer of tx.len() bytes.
            let r = unsafe {
                libc::send(
                    fd,
                    tx.as_ptr() as *const libc::c_void,
                    tx.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if r >= 0 {
                break;
            }
            let e = last_errno();
            if !is_retry(e) {
                error = Some(format!("send: {}", io::Error::from_raw_os_error(e)));
                break 'outer;
            }
            if stopping() || now_ns() - t0 > PING_TIMEOUT_NS {
                // Could not even hand the frame over: count it as lost.
                sent += 1;
                continue 'outer;
            }
        }
        sent += 1;
        let deadline = t0 + PING_TIMEOUT_NS;
        loop {
            // SAFETY: rx is a live buffer of rx.len() bytes.
            let r = unsafe { libc::recv(fd, rx.as_mut_ptr() as *mut libc::c_void, rx.len(), 0) };
            let t1 = now_ns();
            if r >= 0 {
                if frame_seq(&rx[..r as usize]) == Some(seq) {
                    rtts.push(t1 - t0);
                    break;
                }
            } else {
                let e = last_errno();
                if !is_retry(e) {
                    error = Some(format!("recv: {}", io::Error::from_raw_os_error(e)));
                    break 'outer;
                }
            }
            if t1 >= deadline || stopping() {
                break;
            }
        }
    }
    let received = rtts.len() as u64;
    rtts.sort_unstable();
    let min = rtts.first().map_or(f64::NAN, |&v| v as f64 / 1000.0);
    let max = rtts.last().map_or(f64::NAN, |&v| v as f64 / 1000.0);
    let mean = if rtts.is_empty() {
        f64::NAN
    } else {
        rtts.iter().sum::<u64>() as f64 / rtts.len() as f64 / 1000.0
    };
    let line = format!(
        "sent={sent} received={received} lost={} p50_us={:.1} p99_us={:.1} min_us={min:.1} max_us={max:.1} mean_us={mean:.1} size={size}",
        sent - received,
        percentile(&rtts, 0.50),
        percentile(&rtts, 0.99),
    );
    match error {
        None => Ok(line),
        Some(e) => {
            emit(&line);
            Err(e)
        }
    }
}

/// echo: bounce every frame back with the MAC addresses swapped.
fn cmd_echo(fd: i32, deadline: u64, batch: usize) -> Result<String, String> {
    set_sock_timeout(fd, libc::SO_RCVTIMEO, POLL_NS).map_err(|e| format!("SO_RCVTIMEO: {e}"))?;
    set_sock_timeout(fd, libc::SO_SNDTIMEO, POLL_NS).map_err(|e| format!("SO_SNDTIMEO: {e}"))?;
    let mut b = Batch::new(batch, RX_STRIDE);
    let (mut received, mut echoed) = (0u64, 0u64);
    let start = now_ns();
    let mut error = None;
    'outer: while !stopping() && now_ns() < deadline {
        let n = match b.recv(fd) {
            Ok(n) => n,
            Err(e) if is_retry(e) => continue,
            Err(e) => {
                error = Some(format!("recvmmsg: {}", io::Error::from_raw_os_error(e)));
                break;
            }
        };
        received += n as u64;
        for i in 0..n {
            let len = b.received(i).min(RX_STRIDE);
            let f = b.frame_mut(i);
            if len >= 12 {
                let mut dst = [0u8; 6];
                dst.copy_from_slice(&f[0..6]);
                f.copy_within(6..12, 0);
                // A group address cannot be a source: answer from our own MAC.
                let src = if dst[0] & 1 != 0 { ECHO_MAC } else { dst };
                f[6..12].copy_from_slice(&src);
            }
            b.set_iov_len(i, len);
        }
        let mut done = 0;
        while done < n {
            match b.send(fd, done, n) {
                Ok(k) => done += k,
                Err(e) if is_retry(e) => {
                    if stopping() || now_ns() >= deadline {
                        break;
                    }
                }
                Err(e) => {
                    error = Some(format!("sendmmsg: {}", io::Error::from_raw_os_error(e)));
                    echoed += done as u64;
                    break 'outer;
                }
            }
        }
        echoed += done as u64;
        for i in 0..n {
            b.set_iov_len(i, RX_STRIDE);
        }
    }
    let line = format!(
        "received={received} echoed={echoed} seconds={:.6}",
        secs(now_ns() - start)
    );
    match error {
        None => Ok(line),
        Some(e) => {
            emit(&line);
            Err(e)
        }
    }
}

fn run(args: &[String]) -> Result<String, String> {
    let (cmd, dir, o) = parse_args(args)?;
    if !matches!(cmd.as_str(), "send" | "recv" | "ping" | "echo") {
        return Err(format!("unknown subcommand {cmd:?}"));
    }
    // Validate before connecting, so that usage errors leave no port behind.
    let batch = o.batch.unwrap_or(if cmd == "recv" { 64 } else { 32 });
    match cmd.as_str() {
        "send" => {
            need(o.size, "--size", &cmd)?;
            if o.count.is_some() == o.seconds.is_some() {
                return Err("send: give exactly one of --count and --seconds".into());
            }
        }
        "ping" => {
            need(o.size, "--size", &cmd)?;
            need(o.count, "--count", &cmd)?;
        }
        _ => {
            need(o.seconds, "--seconds", &cmd)?;
        }
    }

    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let descr = o
        .descr
        .clone()
        .unwrap_or_else(|| format!("vde_bench: pid={pid}"));
    let port = vde::connect(&dir, &descr).map_err(|e| format!("{dir}: {e}"))?;
    if let Some(path) = &o.ready_file {
        std::fs::write(path, b"ready\n").map_err(|e| format!("--ready-file {path}: {e}"))?;
    }
    let start = now_ns();
    let deadline = o.seconds.map(|s| start + seconds_ns(s));
    let fd = port.data;
    match cmd.as_str() {
        "send" => {
            let limit = match (o.count, deadline) {
                (Some(c), _) => Limit::Count(c),
                (None, Some(d)) => Limit::Until(d),
                (None, None) => unreachable!("checked above"),
            };
            let result = cmd_send(
                fd,
                o.size.unwrap_or(MIN_TX_FRAME),
                limit,
                batch,
                o.rate.unwrap_or(0.0),
            );
            // Keep the port open a while after the last frame: a node may
            // discard what is still queued on a port's data socket when it
            // sees the port go away (both vde_plug implementations do).
            if let Some(ms) = o.linger_ms {
                let until = now_ns() + ms * NS_PER_MS;
                while !stopping() && now_ns() < until {
                    sleep_until_ns(until.min(now_ns() + POLL_NS));
                }
            }
            result
        }
        "recv" => {
            let idle = o.idle_ms.unwrap_or(1000) * NS_PER_MS;
            cmd_recv(fd, deadline.unwrap_or(u64::MAX), idle, batch)
        }
        "ping" => cmd_ping(
            fd,
            o.size.unwrap_or(MIN_TX_FRAME),
            o.count.unwrap_or(0),
            o.interval_us.unwrap_or(0) * 1000,
        ),
        _ => cmd_echo(fd, deadline.unwrap_or(u64::MAX), batch),
    }
}

fn main() -> ExitCode {
    install_signal_handlers();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(line) => {
            emit(&line);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vde_bench: {e}");
            if e.contains("required") || e.contains("unknown") || e.contains("missing") {
                eprintln!("{USAGE}");
            }
            ExitCode::from(2)
        }
    }
}
