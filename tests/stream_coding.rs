//! Header compression on a stream between two plugs of ours
//! (wire::stream_delta): frames come out byte for byte, the stream carries
//! fewer bytes, and a filter that drops frames between the plugs makes no
//! wrong frame. (A C plug at either end: tests/interop.rs, stream_cable_*.)

mod common;

use std::io::{Read, Write};
use std::process::{ChildStdin, ChildStdout};

use common::*;
use vde_plug_rs::wire::stream::{StreamDecoder, StreamEvent};

/// A TCP-like frame of flow `flow`: headers that repeat but for a
/// sequence number, then a payload that changes with it.
fn tcp_like(flow: u8, seq: u32, size: usize) -> Vec<u8> {
    let mut f = frame(flow, seq, size);
    f[..6].copy_from_slice(&[2, 0, 0, 0, 9, flow]);
    f[18..80].fill(flow);
    f
}

/// Frames of every kind the coder meets: a bulk flow, two interleaved
/// flows, short frames, frames starting with the coder's marks, a jumbo.
fn mixed_frames(n: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| match i % 10 {
            0 => frame(1, i, 60),
            1 => {
                let mut f = tcp_like(3, i, 600);
                f[0] = [0x03, 0x07, 0x0b][(i / 10 % 3) as usize];
                f
            }
            2 if i % 100 == 2 => tcp_like(4, i, 9234),
            3 | 4 => tcp_like(5, i, 1514),
            _ => tcp_like(6, i, 1514),
        })
        .collect()
}

/// Signals, frames and bytes of a stream as written.
fn stream_summary(bytes: &[u8]) -> (usize, Vec<Vec<u8>>) {
    let mut d = StreamDecoder::new();
    let (mut signals, mut frames) = (0, Vec::new());
    d.feed(bytes, |e| {
        match e {
            StreamEvent::Signal => signals += 1,
            StreamEvent::Frame(f) => frames.push(f.to_vec()),
            StreamEvent::Oversize(n) => panic!("oversize {n}"),
        }
        true
    });
    (signals, frames)
}

#[test]
fn our_plugs_code_headers_between_them() {
    let t = Scratch::new("coding");
    let (ha, hb, a2b) = (t.path("A"), t.path("B"), t.path("a2b"));
    // The stream from A's plug to B's goes through tee, into a file.
    let inner = format!("tee {a2b} | exec {} hub://{hb}", rs_plug());
    let _cable = Plug::start_node(
        rs_plug(),
        &[&format!("hub://{ha}"), "=", "sh", "-c", &inner],
    );
    wait_for_path(&hb);
    let mut a = Plug::spawn(rs_plug(), &[&ha]);
    let mut b = Plug::spawn(rs_plug(), &[&hb]);
    wait_ports(&ha, 1);
    wait_ports(&hb, 1);
    let frames = mixed_frames(1000);
    for chunk in frames.chunks(50) {
        for f in chunk {
            a.send(f);
        }
        let want = b.received.len() + chunk.len();
        assert_eq!(b.wait_frames(want).len(), want, "frames stopped");
    }
    assert_eq!(b.received, frames);
    // And back, plain or coded as B's plug likes.
    let back = mixed_frames(100);
    for f in &back {
        b.send(f);
    }
    assert_eq!(a.wait_frames(back.len()), &back[..]);

    let mut written = Vec::new();
    std::fs::File::open(&a2b)
        .unwrap()
        .read_to_end(&mut written)
        .unwrap();
    let (signals, coded) = stream_summary(&written);
    assert_eq!(coded.len(), frames.len());
    // The first signal, the switch, and one before every eighth key.
    let keys = coded.iter().filter(|f| f[0] == 0x07).count();
    assert!(keys >= 3, "{keys} keys");
    assert!(signals >= 2 + keys / 8, "{signals} signals, {keys} keys");
    let plain: usize = frames.iter().map(|f| 2 + f.len()).sum();
    // Nearly every frame is over a kilobyte and saves about 60 bytes.
    assert!(
        written.len() * 100 < plain * 97,
        "{} bytes written for {plain} plain",
        written.len()
    );
}

/// Copies the stream from `from` to `to`, dropping every `every`-th unit
/// (a frame, or a zero length) among the first `window`, as vde2's
/// wirefilter does with loss. Returns the units seen that start with a
/// key's mark.
fn lossy_filter(mut from: ChildStdout, mut to: ChildStdin, every: usize, window: usize) -> usize {
    let (mut buf, mut units, mut keys) = (Vec::new(), 0, 0);
    let mut chunk = [0u8; 65536];
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => return keys,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut out = Vec::new();
        let mut at = 0;
        while buf.len() - at >= 2 {
            let len = usize::from(buf[at]) << 8 | usize::from(buf[at + 1]);
            if buf.len() - at < 2 + len {
                break;
            }
            units += 1;
            keys += usize::from(len > 0 && buf[at + 2] == 0x07);
            if units > window || units % every != 0 {
                out.extend_from_slice(&buf[at..at + 2 + len]);
            }
            at += 2 + len;
        }
        buf.drain(..at);
        if to.write_all(&out).is_err() {
            return keys;
        }
    }
}

/// Two plugs of ours whose stream loses records between them (as a
/// broken filter would): a frame comes whole or not at all, never rebuilt
/// from a key the far plug missed.
#[test]
fn a_filter_dropping_frames_between_our_plugs_makes_no_wrong_frame() {
    let t = Scratch::new("lossy");
    let (ha, hb) = (t.path("A"), t.path("B"));
    let mut near = spawn_piped(rs_plug(), &[&format!("hub://{ha}")]);
    let mut far = spawn_piped(rs_plug(), &[&format!("hub://{hb}")]);
    let near_out = near.stdout.take().unwrap();
    let near_in = near.stdin.take().unwrap();
    let far_out = far.stdout.take().unwrap();
    let far_in = far.stdin.take().unwrap();
    let plugs = Reaped(vec![near, far]);
    // Near to far loses a unit in 7 of the first 1000; far to near nothing.
    let filter = std::thread::spawn(move || lossy_filter(near_out, far_in, 7, 1000));
    std::thread::spawn(move || lossy_filter(far_out, near_in, usize::MAX, 0));
    wait_for_path(&ha);
    wait_for_path(&hb);
    let mut a = Plug::spawn(rs_plug(), &[&ha]);
    let mut b = Plug::spawn(rs_plug(), &[&hb]);
    wait_ports(&ha, 1);
    wait_ports(&hb, 1);
    // Far's plug has signalled to near's once B's plug is in (it wrote its
    // first signal at start): send something back so near has read it.
    b.send(&frame(9, 0, 60));
    assert_eq!(a.wait_frames(1).len(), 1);
    let frames = mixed_frames(2000);
    for chunk in frames.chunks(20) {
        for f in chunk {
            a.send(f);
        }
        // Paced by what comes out: a chunk may lose frames, not stall.
        b.collect(std::time::Duration::from_millis(20));
    }
    // Past the filter's window nothing is lost: the last frame comes out,
    // and with it every frame before it that was not dropped.
    let last = tcp_like(6, 99_999, 1514);
    a.send(&last);
    let deadline = std::time::Instant::now() + PATIENCE;
    while b.received.last() != Some(&last) {
        assert!(
            std::time::Instant::now() < deadline,
            "the last frame never came"
        );
        b.collect(std::time::Duration::from_millis(20));
    }
    let got = &b.received[..b.received.len() - 1];
    // Every frame that came out is one that went in, in order.
    let mut next = 0;
    for f in got {
        let at = frames[next..]
            .iter()
            .position(|s| s == f)
            .unwrap_or_else(|| panic!("a frame that was never sent: {:02x?}", &f[..20]));
        next += at + 1;
    }
    assert!(
        got.len() > frames.len() / 2,
        "only {} of {}",
        got.len(),
        frames.len()
    );
    drop(plugs);
    assert!(filter.join().unwrap() > 0, "nothing was coded");
}
