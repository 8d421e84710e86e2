//! The byte-stream framing used on stdin/stdout, `= CMD` pipes and ssh:
//! each frame is a 2-byte big-endian length followed by the frame.
//!
//! The decoder takes reads of any size: frames split across reads, several
//! frames in one read and a length prefix split between two reads all decode
//! the same. A length of 0 is skipped; a length over [`MAX_FRAME`] is an
//! error, after which the rest of that read is dropped and decoding starts
//! afresh with the next one (the C reader's recovery).

use super::MAX_FRAME;

/// What the decoder hands to its caller.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamEvent<'a> {
    Frame(&'a [u8]),
    /// A length prefix over `MAX_FRAME`; the rest of the read was dropped.
    Oversize(usize),
}

/// Incremental decoder with a single frame-sized buffer, made once.
pub struct StreamDecoder {
    partial: Box<[u8]>,
    /// Length of the frame being assembled in `partial`; 0 when none.
    want: usize,
    have: usize,
    /// First byte of a length prefix split across reads.
    half_header: Option<u8>,
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
                continue;
            }
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
}
