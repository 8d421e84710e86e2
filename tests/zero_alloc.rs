//! The loop allocates nothing per frame: a counting global allocator counts
//! the allocations made on the engine's thread while 100,000 host frames
//! go through an in-process bonding node to two cables.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vde_plug_rs::endpoint::node::config::{KindName, NodeConfig};
use vde_plug_rs::endpoint::node::{NetNode, PolicyName};
use vde_plug_rs::endpoint::stream::{StreamEndpoint, StreamFd};
use vde_plug_rs::engine::Engine;

struct Counting;

static ENGINE_ALLOCS: AtomicU64 = AtomicU64::new(0);
/// Allocations inside the hosted node's calls (counted apart: the two tests
/// run at the same time).
static HOSTED_ALLOCS: AtomicU64 = AtomicU64::new(0);
thread_local! {
    static ON_ENGINE: Cell<bool> = const { Cell::new(false) };
    static IN_HOSTED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's layout, as GlobalAlloc::alloc asks.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: a block this allocator gave, as GlobalAlloc::dealloc asks.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: a block this allocator gave, as GlobalAlloc::realloc asks.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn count() {
    if ON_ENGINE.try_with(|f| f.get()).unwrap_or(false) {
        ENGINE_ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
    if IN_HOSTED.try_with(|f| f.get()).unwrap_or(false) {
        HOSTED_ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A raw vde client: binds a datagram socket, sends the request, connects
/// to the port socket the node answers with.
fn join(node: &Path, me: &Path) -> (UnixStream, UnixDatagram) {
    let data = UnixDatagram::bind(me).unwrap();
    let mut ctl = UnixStream::connect(node.join("ctl")).unwrap();
    let mut req = Vec::new();
    req.extend_from_slice(&0xfeed_faceu32.to_ne_bytes());
    req.extend_from_slice(&3u32.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    let mut sun = [0u8; 110];
    sun[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
    let p = me.as_os_str().as_encoded_bytes();
    sun[2..2 + p.len()].copy_from_slice(p);
    req.extend_from_slice(&sun);
    req.extend_from_slice(b"zero-alloc test");
    ctl.write_all(&req).unwrap();
    let mut reply = [0u8; 110];
    ctl.read_exact(&mut reply).unwrap();
    let end = reply[2..].iter().position(|&c| c == 0).unwrap();
    let peer = std::str::from_utf8(&reply[2..2 + end]).unwrap().to_string();
    data.connect(peer).unwrap();
    data.set_nonblocking(true).unwrap();
    (ctl, data)
}

#[test]
fn forwarding_allocates_nothing_per_frame() {
    let dir = std::env::temp_dir().join(format!("vpt-alloc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let node_path = dir.join("bond");

    let (mut host, engine_side) = UnixStream::pair().unwrap();
    let engine_in: OwnedFd = engine_side.try_clone().unwrap().into();
    let engine_out: OwnedFd = engine_side.into();
    let node_for_engine = node_path.clone();
    let engine = std::thread::spawn(move || {
        ON_ENGINE.with(|f| f.set(true));
        let mut config = NodeConfig::new(KindName::Bonding);
        config.policy = PolicyName::Adaptive;
        let node = NetNode::create(&config, &node_for_engine, vde_plug_rs::engine::LANE_SLOTS)
            .map_err(|e| e.to_string())
            .unwrap();
        let host = StreamEndpoint::new(
            "test host".into(),
            StreamFd::new(engine_in).unwrap(),
            StreamFd::new(engine_out).unwrap(),
        );
        let mut engine = Engine::new(Box::new(node), Box::new(host), None).unwrap();
        let outcome = engine.run().unwrap();
        drop(engine);
        format!("{outcome:?}")
    });

    let deadline = Instant::now() + Duration::from_secs(10);
    while !node_path.join("ctl").exists() {
        assert!(Instant::now() < deadline, "node never appeared");
        std::thread::sleep(Duration::from_millis(2));
    }
    let cables = [
        join(&node_path, &dir.join("c0")),
        join(&node_path, &dir.join("c1")),
    ];

    let mut frame = [0u8; 64];
    frame[..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    let mut received = [0u64; 2];
    let mut buf = [0u8; 2048];
    let mut chunk = Vec::with_capacity(66 * 256);
    let mut run = |count: u64, received: &mut [u64; 2]| {
        let target = received.iter().sum::<u64>() + count;
        let mut sent = 0u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        while received.iter().sum::<u64>() < target {
            assert!(Instant::now() < deadline, "frames stopped flowing");
            // Keep a bounded number in flight, so nothing is ever dropped.
            let mut progress = false;
            if sent - (received.iter().sum::<u64>() + count - target) < 256 && sent < count {
                progress = true;
                chunk.clear();
                for _ in 0..64.min(count - sent) {
                    frame[14..22].copy_from_slice(&sent.to_be_bytes());
                    chunk.extend_from_slice(&(frame.len() as u16).to_be_bytes());
                    chunk.extend_from_slice(&frame);
                    sent += 1;
                }
                host.write_all(&chunk).unwrap();
            }
            for (i, (_, data)) in cables.iter().enumerate() {
                while let Ok(n) = data.recv(&mut buf) {
                    assert_eq!(n, 64);
                    received[i] += 1;
                    progress = true;
                }
            }
            if !progress {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    };
    run(10_000, &mut received);
    let warm = ENGINE_ALLOCS.load(Ordering::Relaxed);
    run(100_000, &mut received);
    let after = ENGINE_ALLOCS.load(Ordering::Relaxed);
    println!("engine allocations: {warm} after warm-up, {after} after 100,000 more frames; per cable {received:?}");
    assert_eq!(received.iter().sum::<u64>(), 110_000);
    assert!(received.iter().all(|&r| r > 0));
    assert_eq!(after, warm, "the loop allocated while forwarding");

    drop(host);
    let outcome = engine.join().unwrap();
    assert!(outcome.contains("Stopped"), "{outcome}");
    assert!(!node_path.exists(), "node directory left behind");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The plugin shell too: a hub hosted in this thread ([`HostedNode`], what
/// the libvdeplug modules run) forwards host frames to two cables and one
/// cable's frames to the host and the other cable without allocating.
#[test]
fn hosted_node_allocates_nothing_per_frame() {
    use vde_plug_rs::hosted::HostedNode;
    let dir = std::env::temp_dir().join(format!("vpt-halloc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let node_path = dir.join("hub");
    let mut node = HostedNode::open("hub", node_path.to_str().unwrap()).unwrap();
    let counted = |f: &mut dyn FnMut()| {
        IN_HOSTED.with(|c| c.set(true));
        f();
        IN_HOSTED.with(|c| c.set(false));
    };
    // The node answers only when called: join from another thread.
    let joining = {
        let (node_path, dir) = (node_path.clone(), dir.clone());
        std::thread::spawn(move || {
            [
                join(&node_path, &dir.join("c0")),
                join(&node_path, &dir.join("c1")),
            ]
        })
    };
    let mut scratch = [0u8; 2048];
    while !joining.is_finished() {
        node.recv(&mut scratch);
        std::thread::sleep(Duration::from_micros(100));
    }
    let cables = joining.join().unwrap();
    let mut frame = [0u8; 64];
    frame[..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    let mut buf = [0u8; 2048];
    // Frames received: by the host, by cable 0, by cable 1.
    let mut got = [0u64; 3];
    let mut run = |windows: u64, got: &mut [u64; 3]| {
        const WINDOW: u64 = 32;
        for _ in 0..windows {
            let want = [got[0] + WINDOW, got[1] + WINDOW, got[2] + 2 * WINDOW];
            for i in 0..WINDOW {
                frame[14..22].copy_from_slice(&i.to_be_bytes());
                counted(&mut || node.send(&frame));
            }
            let mut from_cable = WINDOW;
            let deadline = Instant::now() + Duration::from_secs(10);
            while *got != want {
                assert!(Instant::now() < deadline, "stuck at {got:?}, want {want:?}");
                while from_cable > 0 && cables[0].1.send(&frame).is_ok() {
                    from_cable -= 1;
                }
                let mut n = 0;
                counted(&mut || n = node.recv(&mut buf));
                if n == 64 {
                    got[0] += 1;
                }
                for (i, (_, data)) in cables.iter().enumerate() {
                    while let Ok(n) = data.recv(&mut buf) {
                        assert_eq!(n, 64);
                        got[1 + i] += 1;
                    }
                }
            }
        }
    };
    run(100, &mut got);
    let warm = HOSTED_ALLOCS.load(Ordering::Relaxed);
    run(1000, &mut got);
    let after = HOSTED_ALLOCS.load(Ordering::Relaxed);
    println!("hosted allocations: {warm} after warm-up, {after} after 1,000 more windows of 32 frames each way; {got:?}");
    assert_eq!(got, [35_200, 35_200, 70_400]);
    assert_eq!(after, warm, "the hosted node allocated while forwarding");
    drop(node);
    assert!(!node_path.exists(), "node directory left behind");
    let _ = std::fs::remove_dir_all(&dir);
}
