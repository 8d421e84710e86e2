//! Header compression between two plugs of ours (wire::stream_delta).
//! Input: frames cut from the bytes (a length seed byte, then the frame),
//! each a variation of an earlier one now and then, as flows are. Asserts:
//! - every frame the coder sends comes back byte for byte, and a coded
//!   frame is at most two bytes longer than the frame;
//! - any bytes read as a coded frame, by a decoder with keys or without:
//!   no panic, and what it rebuilds is no longer than a frame may be.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vde_plug_rs::fuzzing::DeltaPair;
use vde_plug_rs::wire::MAX_FRAME;

fuzz_target!(|data: &[u8]| {
    let mut pair = DeltaPair::default();
    let mut stray = DeltaPair::default();
    let mut earlier: Vec<Vec<u8>> = Vec::new();
    let mut rest = data;
    while let Some((&seed, tail)) = rest.split_first() {
        let len = (usize::from(seed) * 53 % (MAX_FRAME + 1)).min(tail.len());
        let (bytes, tail) = tail.split_at(len);
        rest = tail;
        // Odd seeds vary an earlier frame: its bytes, these over them.
        let frame = match earlier.last() {
            Some(e) if seed % 2 == 1 && !e.is_empty() => {
                let mut f = e.clone();
                for (i, &b) in bytes.iter().enumerate() {
                    let at = usize::from(b) * (i + 1) % f.len();
                    f[at] = b;
                }
                f
            }
            _ => bytes.to_vec(),
        };
        if frame.is_empty() {
            continue;
        }
        let (n, back) = pair.cross(&frame);
        if let Some(back) = back {
            assert_eq!(back, frame, "a frame did not come back whole");
            assert!(n <= frame.len() + 2 && n <= MAX_FRAME, "{n} for {}", frame.len());
        }
        // The same bytes as a coded frame, to a decoder of their own.
        if let Ok(f) = stray.decode(bytes) {
            assert!(f.len() <= MAX_FRAME);
        }
        earlier.push(frame);
    }
});
