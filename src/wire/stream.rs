//! The byte-stream framing used on stdin/stdout, `= CMD` pipes and ssh:
//! each frame is a 2-byte big-endian length followed by the frame.
//!
//! The decoder takes reads of any size: frames split across reads, several
//! frames in one read and a length prefix split between two reads all decode
//! the same. A length of 0 is skipped; a length over [`MAX_FRAME`] is an
//! error, after which the rest of that read is dropped and decoding starts
//! afresh with the next one (the C reader's recovery).
//!
//! Three zero lengths in a row are a signal between two plugs of ours (the C
//! reader skips them as it skips one): see [`crate::endpoint::stream`].

use super::MAX_FRAME;

/// What the decoder hands to its caller.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamEvent<'a> {
    Frame(&'a [u8]),
    /// A length prefix over `MAX_FRAME`; the rest of the read was dropped.
    Oversize(usize),
    /// [`SIGNAL_RUN`] zero lengths in a row.
    Signal,
}

/// Zero lengths in a row that make a signal.
pub const SIGNAL_RUN: usize = 3;
/// A signal as it is written.
pub const SIGNAL: [u8; 2 * SIGNAL_RUN] = [0; 2 * SIGNAL_RUN];

/// Incremental decoder with a single frame-sized buffer, made once.
pub struct StreamDecoder {
    partial: Box<[u8]>,
    /// Length of the frame being assembled in `partial`; 0 when none.
    want: usize,
    have: usize,
    /// First byte of a length prefix split across reads.
    half_header: Option<u8>,
    /// Zero lengths read in a row, short of a signal.
    zeros: usize,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamDecoder {
    pub fn new() -> Self {
        StreamDecoder {
            partial: vec![0u8; MAX_FRAME].into_boxed_slice(),
            want: 0,
            have: 0,
            half_header: None,
            zeros: 0,
        }
    }

    /// Bytes held back for a frame not yet complete (non-zero at EOF means
    /// the stream ended inside a frame).
    pub fn pending_bytes(&self) -> usize {
        self.have + usize::from(self.half_header.is_some())
    }

    /// Decodes `input`, calling `sink` for each event. `sink` returns false
    /// when it cannot take a frame now; decoding then stops and the return
    /// value tells how many bytes of `input` were consumed: the caller feeds
    /// the rest again later. A frame assembled in the decoder's own buffer
    /// is kept until `sink` takes it.
    pub fn feed<F>(&mut self, input: &[u8], mut sink: F) -> usize
    where
        F: FnMut(StreamEvent<'_>) -> bool,
    {
        let mut pos = 0;
        loop {
            if self.want > 0 {
                let take = (self.want - self.have).min(input.len() - pos);
                self.partial[self.have..self.have + take].copy_from_slice(&input[pos..pos + take]);
                self.have += take;
                pos += take;
                if self.have < self.want {
                    return pos;
                }
                if !sink(StreamEvent::Frame(&self.partial[..self.want])) {
                    return pos;
                }
                self.want = 0;
                self.have = 0;
            }
            let rest = &input[pos..];
            let (len, body_at) = match (self.half_header, rest.len()) {
                (Some(hi), n) if n >= 1 => {
                    self.half_header = None;
                    (usize::from(hi) << 8 | usize::from(rest[0]), 1)
                }
                (None, n) if n >= 2 => (usize::from(rest[0]) << 8 | usize::from(rest[1]), 2),
                (None, 1) => {
                    self.half_header = Some(rest[0]);
                    return input.len();
                }
                _ => return pos,
            };
            if len == 0 {
                pos += body_at;
                self.zeros += 1;
                if self.zeros == SIGNAL_RUN {
                    self.zeros = 0;
                    sink(StreamEvent::Signal);
                }
                continue;
            }
            self.zeros = 0;
            if len > MAX_FRAME {
                sink(StreamEvent::Oversize(len));
                return input.len();
            }
            let body = &rest[body_at..];
            // A whole frame in this read, with a header from this read too:
            // hand it over in place; otherwise assemble it in `partial`.
            if body_at == 2 && body.len() >= len {
                if !sink(StreamEvent::Frame(&body[..len])) {
                    return pos;
                }
                pos += 2 + len;
            } else {
                self.want = len;
                self.have = 0;
                pos += body_at;
            }
        }
    }
}

/// The 2-byte length prefix for a frame of `len` bytes.
pub fn header(len: usize) -> [u8; 2] {
    debug_assert!(len <= MAX_FRAME);
    (len as u16).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(frames: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for f in frames {
            v.extend_from_slice(&header(f.len()));
            v.extend_from_slice(f);
        }
        v
    }

    fn decode_in_chunks(bytes: &[u8], chunk: usize) -> (Vec<Vec<u8>>, usize) {
        let mut d = StreamDecoder::new();
        let mut out = Vec::new();
        let mut errors = 0;
        for c in bytes.chunks(chunk) {
            let used = d.feed(c, |e| {
                match e {
                    StreamEvent::Frame(f) => out.push(f.to_vec()),
                    StreamEvent::Oversize(_) => errors += 1,
                    StreamEvent::Signal => {}
                }
                true
            });
            assert_eq!(used, c.len());
        }
        (out, errors)
    }

    #[test]
    fn any_split_decodes_the_same() {
        let a = [1u8; 14];
        let b = [2u8; 60];
        let c = [3u8; MAX_FRAME];
        let bytes = encode(&[&a, &b, &c, &a]);
        for chunk in [1, 2, 3, 7, 61, 1000, bytes.len()] {
            let (out, errors) = decode_in_chunks(&bytes, chunk);
            assert_eq!(errors, 0);
            assert_eq!(out, vec![a.to_vec(), b.to_vec(), c.to_vec(), a.to_vec()]);
        }
    }

    #[test]
    fn zero_length_skipped_and_oversize_resyncs() {
        let mut bytes = vec![0, 0];
        bytes.extend(encode(&[&[7u8; 20]]));
        let (out, errors) = decode_in_chunks(&bytes, bytes.len());
        assert_eq!((out.len(), errors), (1, 0));
        let mut d = StreamDecoder::new();
        let mut seen = Vec::new();
        d.feed(&[0xff, 0xff, 1, 2, 3], |e| {
            seen.push(format!("{e:?}"));
            true
        });
        d.feed(&encode(&[&[9u8; 14]]), |e| {
            seen.push(format!("{e:?}"));
            true
        });
        assert_eq!(seen.len(), 2);
        assert!(seen[0].starts_with("Oversize(65535)"));
        assert!(seen[1].starts_with("Frame"));
    }

    #[test]
    fn three_zero_lengths_in_a_row_are_a_signal() {
        let frame = encode(&[&[7u8; 20]]);
        // Runs of 3, 6, 5 and 2 zero lengths, each ended by a frame.
        let mut bytes = Vec::new();
        for run in [3, 6, 5, 2] {
            bytes.extend(std::iter::repeat_n(0, 2 * run));
            bytes.extend(&frame);
        }
        for chunk in [1, 2, 3, 5, bytes.len()] {
            let mut d = StreamDecoder::new();
            let mut seen = String::new();
            for c in bytes.chunks(chunk) {
                d.feed(c, |e| {
                    seen.push(if e == StreamEvent::Signal { 's' } else { 'f' });
                    true
                });
            }
            assert_eq!(seen, "sfssfsff", "chunks of {chunk}");
        }
    }

    #[test]
    fn refusal_keeps_the_rest() {
        let bytes = encode(&[&[1u8; 20], &[2u8; 20]]);
        let mut d = StreamDecoder::new();
        let mut taken = 0;
        let used = d.feed(&bytes, |_| {
            taken += 1;
            taken < 2
        });
        assert_eq!(used, 22);
        let used2 = d.feed(&bytes[used..], |_| true);
        assert_eq!(used2, 22);
        // A frame assembled across reads is held until it is taken.
        let mut d = StreamDecoder::new();
        assert_eq!(d.feed(&bytes[..10], |_| true), 10);
        assert_eq!(d.feed(&bytes[10..22], |_| false), 12);
        assert_eq!(d.pending_bytes(), 20);
        let mut got = 0;
        assert_eq!(
            d.feed(&[], |_| {
                got += 1;
                true
            }),
            0
        );
        assert_eq!((got, d.pending_bytes()), (1, 0));
    }

    /// Feeds `bytes` in random chunks to a decoder whose sink refuses a
    /// frame now and then (`refuse` percent), feeding the rest again as a
    /// caller does; checks the decoder never holds more than one frame.
    fn decode_randomly(
        bytes: &[u8],
        rng: &mut crate::wire::test_rng::XorShift,
        max_chunk: usize,
        refuse: usize,
    ) -> (Vec<Vec<u8>>, Vec<usize>) {
        let mut d = StreamDecoder::new();
        let (mut frames, mut oversize) = (Vec::new(), Vec::new());
        let mut at = 0;
        while at < bytes.len() {
            let n = (1 + rng.below(max_chunk)).min(bytes.len() - at);
            let mut chunk = &bytes[at..at + n];
            at += n;
            loop {
                let mut refused = false;
                let used = d.feed(chunk, |e| {
                    if e == StreamEvent::Signal {
                        return true;
                    }
                    if refuse > 0 && rng.chance(refuse) {
                        refused = true;
                        return false;
                    }
                    match e {
                        StreamEvent::Frame(f) => {
                            assert!(!f.is_empty() && f.len() <= MAX_FRAME);
                            frames.push(f.to_vec());
                        }
                        StreamEvent::Oversize(len) => {
                            assert!(len > MAX_FRAME);
                            oversize.push(len);
                        }
                        StreamEvent::Signal => {}
                    }
                    true
                });
                assert!(used <= chunk.len());
                assert!(d.pending_bytes() <= MAX_FRAME, "buffers beyond one frame");
                chunk = &chunk[used..];
                if !refused {
                    assert!(chunk.is_empty(), "a willing sink leaves input unread");
                    break;
                }
            }
        }
        (frames, oversize)
    }

    /// 20,000 random valid streams (zero lengths included), cut at random
    /// places and with random refusals: the same frames come out, in order.
    #[test]
    fn random_chunking_gives_the_same_frames() {
        let mut rng = crate::wire::test_rng::XorShift::new(0x5eed_0004);
        for case in 0..20_000 {
            let count = rng.below(8);
            let big = case % 100 == 0;
            let frames: Vec<Vec<u8>> = (0..count)
                .map(|_| {
                    let len = match rng.below(10) {
                        0 => 0,
                        1 if big => MAX_FRAME,
                        2 if big => 1 + rng.below(MAX_FRAME),
                        _ => 1 + rng.below(200),
                    };
                    rng.bytes(len)
                })
                .collect();
            let mut bytes = Vec::new();
            for f in &frames {
                bytes.extend_from_slice(&header(f.len()));
                bytes.extend_from_slice(f);
            }
            let want: Vec<Vec<u8>> = frames.into_iter().filter(|f| !f.is_empty()).collect();
            let max_chunk = if rng.chance(30) {
                3
            } else {
                1 + rng.below(3000)
            };
            let refuse = if rng.chance(50) { 0 } else { 30 };
            let (got, oversize) = decode_randomly(&bytes, &mut rng, max_chunk, refuse);
            assert!(oversize.is_empty(), "case {case}");
            assert_eq!(got, want, "case {case}");
        }
    }

    /// 20,000 random byte strings: decoding never panics, never holds more
    /// than one frame, and reports only plausible events.
    #[test]
    fn random_garbage_never_panics() {
        let mut rng = crate::wire::test_rng::XorShift::new(0x5eed_0005);
        for _ in 0..20_000 {
            let len = rng.below(600);
            let bytes = rng.bytes(len);
            let max_chunk = 1 + rng.below(64);
            let refuse = if rng.chance(50) { 0 } else { 20 };
            let (frames, _) = decode_randomly(&bytes, &mut rng, max_chunk, refuse);
            assert!(frames.iter().map(|f| f.len() + 2).sum::<usize>() <= len);
        }
    }
}
