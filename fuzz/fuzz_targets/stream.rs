//! The stream framing (stdin/stdout, `= COMMAND`, ssh): a 2-byte length
//! then the frame. Input: a byte of cut sizes' seed and a byte of refusal
//! rhythm, then the stream. Asserts:
//! - any stream, read in any cuts, with a sink that now and then cannot
//!   take a frame: no panic, `feed` never claims more than it was given,
//!   takes everything unless the sink refused, and makes progress;
//! - with no oversized length, the frames do not depend on the cuts;
//! - frames encoded (with empty ones between) decode back to themselves,
//!   whole, whatever the cuts, with one signal per three empty ones in a row.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vde_plug_rs::wire::stream::{header, StreamDecoder, StreamEvent, SIGNAL_RUN};
use vde_plug_rs::wire::MAX_FRAME;

#[derive(Debug, PartialEq, Eq)]
enum Event {
    Frame(Vec<u8>),
    Oversize(usize),
    Signal,
}

/// Read sizes from a seed: 1 to 64 bytes, or now and then thousands.
struct Cuts(u32);

impl Cuts {
    fn next(&mut self) -> usize {
        // xorshift32
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        match self.0 % 8 {
            0 => 1,
            1 => 2,
            7 => (self.0 >> 8) as usize % 12_000 + 1,
            _ => (self.0 >> 8) as usize % 64 + 1,
        }
    }
}

/// Decodes `input` in reads of `cuts` sizes; the sink refuses every
/// `refuse`-th frame offered (0: never), and what it refused is offered
/// again by the next call, as the stream endpoint does. Returns the
/// events and the bytes left pending at the end.
fn decode(input: &[u8], mut cuts: Cuts, refuse: u32) -> (Vec<Event>, usize) {
    let mut d = StreamDecoder::new();
    let mut events = Vec::new();
    let mut offered = 0u32;
    let mut pos = 0;
    while pos < input.len() {
        let n = cuts.next().min(input.len() - pos);
        let mut read = &input[pos..pos + n];
        pos += n;
        let mut stalled = false;
        loop {
            let mut refused = false;
            let delivered = events.len();
            let used = d.feed(read, |e| {
                if let StreamEvent::Frame(_) = e {
                    offered += 1;
                    if refuse > 1 && offered % refuse == 0 {
                        refused = true;
                        return false;
                    }
                }
                events.push(match e {
                    StreamEvent::Frame(f) => Event::Frame(f.to_vec()),
                    StreamEvent::Oversize(n) => Event::Oversize(n),
                    StreamEvent::Signal => Event::Signal,
                });
                true
            });
            assert!(used <= read.len(), "feed claims {used} of {}", read.len());
            read = &read[used..];
            if !refused {
                assert!(read.is_empty(), "{} bytes left unread", read.len());
                break;
            }
            // A frame refused is offered again by the next call, which
            // the sink takes: two calls in a row never both stall.
            let progress = used > 0 || events.len() > delivered;
            assert!(progress || !stalled, "no progress");
            stalled = !progress;
        }
    }
    (events, d.pending_bytes())
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let seed = u32::from(data[0]) | 1 << 16;
    let refuse = u32::from(data[1] % 5);
    let stream = &data[2..];

    // Any bytes.
    let (cut, _) = decode(stream, Cuts(seed), refuse);
    let (whole, _) = decode(stream, Cuts(seed ^ 0x5555), 0);
    let oversize = |v: &[Event]| v.iter().any(|e| matches!(e, Event::Oversize(_)));
    if !oversize(&cut) && !oversize(&whole) {
        assert_eq!(cut, whole, "frames depend on how the stream was cut");
    }

    // Frames made from the input, encoded, with empty frames between.
    let mut frames = Vec::new();
    let mut encoded = Vec::new();
    let mut rest = stream;
    let mut empties = 0;
    while let Some((&len_seed, tail)) = rest.split_first() {
        let len = (usize::from(len_seed) * 37 % (MAX_FRAME + 1)).min(tail.len());
        let (frame, tail) = tail.split_at(len);
        rest = tail;
        encoded.extend_from_slice(&header(frame.len()));
        encoded.extend_from_slice(frame);
        if frame.is_empty() {
            empties += 1;
            if empties == SIGNAL_RUN {
                empties = 0;
                frames.push(Event::Signal);
            }
        } else {
            empties = 0;
            frames.push(Event::Frame(frame.to_vec()));
        }
    }
    let (back, pending) = decode(&encoded, Cuts(seed), refuse);
    assert_eq!(back, frames, "frames did not come back whole");
    assert_eq!(pending, 0);
});
