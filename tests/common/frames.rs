//! Test frames and the 2-byte-length stream, with the product's own
//! `wire::stream` decoder.

use std::io::Read;
use std::sync::mpsc::{channel, Receiver};

use vde_plug_rs::wire::path_report::is_path_report;
use vde_plug_rs::wire::stream::{self, StreamDecoder, StreamEvent};

/// An Ethernet frame carrying a sequence number: broadcast destination,
/// locally administered source `02:00:00:00:00:src`, ethertype 0x88b5.
pub fn frame(src: u8, seq: u32, size: usize) -> Vec<u8> {
    assert!(size >= 18);
    let mut f = vec![0u8; size];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, src]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[18..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(seq as u8);
    }
    f
}

pub fn seq_of(f: &[u8]) -> u32 {
    u32::from_be_bytes([f[14], f[15], f[16], f[17]])
}

pub fn encode(f: &[u8]) -> Vec<u8> {
    let mut v = stream::header(f.len()).to_vec();
    v.extend_from_slice(f);
    v
}

/// Decodes the stream a process writes on `out`, on a thread, into frames
/// (with the product's own decoder, which its unit tests check for every
/// way a stream can be cut).
pub fn frame_reader(mut out: std::process::ChildStdout) -> Receiver<Vec<u8>> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut decoder = StreamDecoder::new();
        let mut chunk = [0u8; 65536];
        loop {
            let n = match out.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut receiver_gone = false;
            decoder.feed(&chunk[..n], |event| {
                match event {
                    // A bonding node's report to the far one, which a
                    // plug carries like a frame: no host would see it.
                    StreamEvent::Frame(f) if is_path_report(f) => {}
                    StreamEvent::Frame(f) => receiver_gone |= tx.send(f.to_vec()).is_err(),
                    _ => {}
                }
                true
            });
            if receiver_gone {
                return;
            }
        }
    });
    rx
}
