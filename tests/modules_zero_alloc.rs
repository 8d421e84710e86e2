//! The datagram modules allocate nothing per frame: a counting global
//! allocator counts the allocations made on the engine's thread while
//! frames go both ways between a host stream and `udp://` (inside a
//! network namespace made for the test) or `ptp://`. (A file of its own:
//! the counting allocator is the whole test binary's.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vde_plug_rs::endpoint::stream::{StreamEndpoint, StreamFd};
use vde_plug_rs::endpoint::vde::OpenArgs;
use vde_plug_rs::engine::Engine;

struct Counting;

static ENGINE_ALLOCS: AtomicU64 = AtomicU64::new(0);
thread_local! {
    static ON_ENGINE: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ON_ENGINE.try_with(|f| f.get()).unwrap_or(false) {
            ENGINE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's layout, as GlobalAlloc::alloc asks.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: a block this allocator gave, as GlobalAlloc::dealloc asks.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ON_ENGINE.try_with(|f| f.get()).unwrap_or(false) {
            ENGINE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: a block this allocator gave, as GlobalAlloc::realloc asks.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PATIENCE: Duration = Duration::from_secs(30);

/// Moves this thread into network namespace `ns`.
fn enter(ns: &str) {
    let f = File::open(format!("/run/netns/{ns}")).unwrap();
    // SAFETY: setns of this thread only, with a namespace descriptor.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
}

/// A namespace with loopback up, deleted on drop.
struct Ns(String);

impl Ns {
    fn new() -> Ns {
        let name = format!("mza{}", std::process::id());
        let ok = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success());
        ok(&["netns", "add", &name]);
        let ns = Ns(name);
        ok(&["-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A datagram socket of the test: the far end of the plug's link.
trait Far {
    /// False when the socket is full now.
    fn send(&self, f: &[u8]) -> bool;
    fn recv(&self, buf: &mut [u8]) -> Option<usize>;
}

impl Far for std::net::UdpSocket {
    fn send(&self, f: &[u8]) -> bool {
        std::net::UdpSocket::send(self, f).is_ok()
    }
    fn recv(&self, buf: &mut [u8]) -> Option<usize> {
        std::net::UdpSocket::recv(self, buf).ok()
    }
}

impl Far for UnixDatagram {
    fn send(&self, f: &[u8]) -> bool {
        UnixDatagram::send(self, f).is_ok()
    }
    fn recv(&self, buf: &mut [u8]) -> Option<usize> {
        UnixDatagram::recv(self, buf).ok()
    }
}

/// Runs `url` in an engine on a thread (in namespace `ns` when given)
/// against a host stream; `far` (made once the link is open) is its
/// peer. Sends frames both ways, with a bounded number in flight, and
/// checks that after a warm-up 50,000 more allocate nothing.
fn no_allocation_per_frame(url: &str, ns: Option<&str>, far: impl FnOnce() -> Box<dyn Far>) {
    // One at a time: the counter is shared by every engine thread.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (mut host, engine_side) = UnixStream::pair().unwrap();
    let engine_in: OwnedFd = engine_side.try_clone().unwrap().into();
    let engine_out: OwnedFd = engine_side.into();
    let (opened_tx, opened_rx) = std::sync::mpsc::channel();
    let url_owned = url.to_string();
    let ns_owned = ns.map(str::to_string);
    let engine = std::thread::spawn(move || {
        if let Some(ns) = ns_owned {
            enter(&ns);
        }
        ON_ENGINE.with(|f| f.set(true));
        let link = vde_plug_rs::open::open(&url_owned, "test", &OpenArgs::default())
            .map_err(|e| e.to_string())
            .unwrap();
        let host = StreamEndpoint::new(
            "test host".into(),
            StreamFd::new(engine_in).unwrap(),
            StreamFd::new(engine_out).unwrap(),
        );
        let mut engine = Engine::new(Box::new(host), link, None).unwrap();
        opened_tx.send(()).unwrap();
        let outcome = engine.run().unwrap();
        format!("{outcome:?}")
    });
    opened_rx.recv_timeout(PATIENCE).unwrap();
    let far = far();
    host.set_nonblocking(true).unwrap();

    let mut frame = [0u8; 64];
    frame[..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    let mut buf = [0u8; 2048];
    let mut stream_buf = Vec::with_capacity(1 << 16);
    let (mut to_far, mut to_host) = (0u64, 0u64);
    let mut run = |count: u64, to_far: &mut u64, to_host: &mut u64| {
        let (goal_far, goal_host) = (*to_far + count, *to_host + count);
        let (mut sent_host, mut sent_far) = (*to_far, *to_host);
        let deadline = Instant::now() + PATIENCE;
        while *to_far < goal_far || *to_host < goal_host {
            assert!(Instant::now() < deadline, "frames stopped flowing");
            let mut progress = false;
            // At most 32 in flight each way: nothing is ever dropped.
            if sent_host < goal_far && sent_host - *to_far < 32 {
                frame[14..22].copy_from_slice(&sent_host.to_be_bytes());
                let mut rec = (frame.len() as u16).to_be_bytes().to_vec();
                rec.extend_from_slice(&frame);
                host.set_nonblocking(false).unwrap();
                host.write_all(&rec).unwrap();
                host.set_nonblocking(true).unwrap();
                sent_host += 1;
                progress = true;
            }
            if sent_far < goal_host && sent_far - *to_host < 32 {
                frame[14..22].copy_from_slice(&sent_far.to_be_bytes());
                if far.send(&frame) {
                    sent_far += 1;
                    progress = true;
                }
            }
            while let Some(n) = far.recv(&mut buf) {
                assert_eq!(n, 64);
                *to_far += 1;
                progress = true;
            }
            let mut chunk = [0u8; 4096];
            while let Ok(n) = host.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                stream_buf.extend_from_slice(&chunk[..n]);
                progress = true;
            }
            // Zero lengths are a plug's signal (wire::stream): no frame.
            while stream_buf.starts_with(&[0, 0]) {
                stream_buf.drain(..2);
            }
            while stream_buf.len() >= 66 {
                assert_eq!(&stream_buf[..2], &[0, 64]);
                stream_buf.drain(..66);
                *to_host += 1;
            }
            if !progress {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    };
    run(5_000, &mut to_far, &mut to_host);
    let warm = ENGINE_ALLOCS.load(Ordering::Relaxed);
    run(50_000, &mut to_far, &mut to_host);
    let after = ENGINE_ALLOCS.load(Ordering::Relaxed);
    println!("{url}: engine allocations: {warm} after warm-up, {after} after 50,000 more frames each way");
    assert_eq!((to_far, to_host), (55_000, 55_000));
    assert_eq!(after, warm, "{url}: the loop allocated while forwarding");
    drop(host);
    let outcome = engine.join().unwrap();
    assert!(outcome.contains("Stopped"), "{outcome}");
}

#[test]
fn udp_allocates_nothing_per_frame() {
    let ns = Ns::new();
    let name = ns.0.clone();
    no_allocation_per_frame("udp://127.0.0.1:7000->127.0.0.1:7001", Some(&name), || {
        let n = name.clone();
        let sock = std::thread::spawn(move || {
            enter(&n);
            let s = std::net::UdpSocket::bind("127.0.0.1:7001").unwrap();
            s.connect("127.0.0.1:7000").unwrap();
            s
        })
        .join()
        .unwrap();
        sock.set_nonblocking(true).unwrap();
        Box::new(sock)
    });
}

#[test]
fn ptp_allocates_nothing_per_frame() {
    let dir = std::env::temp_dir().join(format!("vpt-ptpalloc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p");
    let url = format!("ptp://{}", path.display());
    let p = path.clone();
    no_allocation_per_frame(&url, None, move || {
        let plus = format!("{}+", p.display());
        let s = UnixDatagram::bind(&plus).unwrap();
        s.connect(&p).unwrap();
        s.set_nonblocking(true).unwrap();
        Box::new(s)
    });
    let _ = std::fs::remove_dir_all(&dir);
}
