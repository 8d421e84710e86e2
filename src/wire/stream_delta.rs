//! Header compression between two plugs of ours on one byte stream (an ssh
//! pipe, most often). Consecutive frames of a flow differ in a few bytes of
//! their first [`HEAD`]: addresses, EtherType, most of the IP and TCP
//! headers (and a bonding node's tag) repeat. A sender keeps the first
//! `HEAD` bytes of a few recent frames as keys, the receiver the same keys,
//! and a frame close to a key crosses as the bytes that differ.
//!
//! Only frames a coding sender writes are coded, and only after both ends
//! said they speak it (see [`crate::endpoint::stream`]): a coded frame is an
//! ordinary frame of the stream's framing whose first byte is a mark:
//!
//! | first byte | second byte | then |
//! | --- | --- | --- |
//! | `0x07` key | slot (2 bits), generation (6 bits) | the frame; its first `HEAD` bytes become the slot's key |
//! | `0x03` delta | slot, generation | a bitmap of `HEAD` bits (bit i: byte i differs from the key), the differing bytes in order, then the frame from byte `HEAD` on |
//! | `0x0b` literal | the frame's first byte | the rest of the frame |
//!
//! The marks are locally administered group addresses, which no host uses
//! as a destination in practice; a coding sender sends a frame that starts
//! with one as a literal, so that nothing it sends is taken for what it is
//! not. A delta names its key's generation: a receiver that missed the key
//! (a frame-dropping filter between the plugs) drops the delta rather than
//! rebuild a frame from the wrong key.

use super::{WireError, MAX_FRAME};

/// How many leading bytes of a frame a key holds: an Ethernet header with a
/// bonding tag (26), IPv4 (20) and TCP with timestamps (32) fit.
pub(crate) const HEAD: usize = 80;
const BITMAP: usize = HEAD / 8;
/// Keys each way: one per flow of a few interleaved bulk flows.
const SLOTS: usize = 4;
const KEY: u8 = 0x07;
const DELTA: u8 = 0x03;
const LITERAL: u8 = 0x0b;
/// What a key or a delta puts before the frame's own bytes.
const CODE_LEN: usize = 2;
/// A frame further than this from every key gets a key of its own.
const MAX_CHANGED: usize = 32;
/// Deltas on one key before it is sent again, so that a receiver that
/// missed it (a filter dropping frames) is not without it for long.
const REFRESH: u32 = 256;
const GENERATIONS: u8 = 64;
/// After this many keys in a row replaced unused (more flows than slots,
/// or frames alike in nothing), a frame that finds no key goes plain, and
/// only one in [`KEY_EVERY_MISSES`] becomes a key: a key that no delta
/// uses costs bytes and saves none.
const UNUSED_KEYS: u32 = 4;
const KEY_EVERY_MISSES: u32 = 16;

/// Whether `frame`, read from a coding sender, is coded.
pub(crate) fn is_coded(frame: &[u8]) -> bool {
    matches!(frame.first(), Some(&(KEY | DELTA | LITERAL)))
}

fn slot_byte(slot: usize, generation: u8) -> u8 {
    (slot as u8) << 6 | generation
}

fn differing(a: &[u8; HEAD], b: &[u8]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

/// How a frame will cross.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    /// As it is: short, alike in nothing to recent ones, or coding is off.
    Plain,
    /// As it is, after the literal mark.
    Literal,
    /// As the new key of `slot`.
    Key { slot: usize },
    /// As the bytes differing from the key of `slot`.
    Delta { slot: usize, changed: usize },
    /// It cannot cross coded: a frame of `MAX_FRAME` bytes starting with a mark.
    Unsendable,
}

impl Coding {
    /// The coded frame's length.
    pub(crate) fn len(self, frame_len: usize) -> usize {
        match self {
            Coding::Plain | Coding::Unsendable => frame_len,
            Coding::Literal => frame_len + 1,
            Coding::Key { .. } => frame_len + CODE_LEN,
            Coding::Delta { changed, .. } => frame_len - HEAD + CODE_LEN + BITMAP + changed,
        }
    }
}

#[derive(Clone, Copy)]
struct SentKey {
    head: [u8; HEAD],
    generation: u8,
    valid: bool,
    deltas: u32,
    last_used: u64,
}

/// The sending half: the keys the far end holds.
pub(crate) struct DeltaEncoder {
    keys: [SentKey; SLOTS],
    clock: u64,
    /// Keys replaced in a row before any delta used them.
    unused_keys: u32,
    /// Frames that went plain since the last key or delta.
    misses: u32,
}

impl Default for DeltaEncoder {
    fn default() -> Self {
        DeltaEncoder {
            keys: [SentKey {
                head: [0; HEAD],
                generation: 0,
                valid: false,
                deltas: 0,
                last_used: 0,
            }; SLOTS],
            clock: 0,
            unused_keys: 0,
            misses: 0,
        }
    }
}

impl DeltaEncoder {
    /// How `frame` should cross (nothing changes until [`Self::emit`]).
    pub(crate) fn plan(&self, frame: &[u8]) -> Coding {
        let marked = is_coded(frame);
        if frame.len() < HEAD || frame.len() + CODE_LEN > MAX_FRAME {
            return match (marked, frame.len() < MAX_FRAME) {
                (false, _) => Coding::Plain,
                (true, true) => Coding::Literal,
                (true, false) => Coding::Unsendable,
            };
        }
        let best = (0..SLOTS)
            .filter(|&s| self.keys[s].valid)
            .map(|s| (differing(&self.keys[s].head, &frame[..HEAD]), s))
            .min();
        match best {
            Some((changed, slot)) if changed <= MAX_CHANGED && self.keys[slot].deltas < REFRESH => {
                Coding::Delta { slot, changed }
            }
            // Close to a key that is due again: renew that one.
            Some((changed, slot)) if changed <= MAX_CHANGED => Coding::Key { slot },
            _ if self.unused_keys >= UNUSED_KEYS
                && !(self.misses + 1).is_multiple_of(KEY_EVERY_MISSES) =>
            {
                if marked {
                    Coding::Literal
                } else {
                    Coding::Plain
                }
            }
            _ => {
                let slot = (0..SLOTS)
                    .min_by_key(|&s| (self.keys[s].valid, self.keys[s].last_used))
                    .unwrap_or(0);
                Coding::Key { slot }
            }
        }
    }

    /// Writes `frame` coded as `plan` says into `out` (at least
    /// `plan.len(frame.len())` bytes) and notes the key it sets or uses.
    pub(crate) fn emit(&mut self, plan: Coding, frame: &[u8], out: &mut [u8]) -> usize {
        self.clock += 1;
        let len = plan.len(frame.len());
        if frame.len() >= HEAD {
            self.misses += 1;
        }
        match plan {
            Coding::Plain | Coding::Unsendable => out[..len].copy_from_slice(frame),
            Coding::Literal => {
                out[0] = LITERAL;
                out[1..len].copy_from_slice(frame);
            }
            Coding::Key { slot } => {
                let key = &mut self.keys[slot];
                if key.valid && key.deltas == 0 {
                    self.unused_keys += 1;
                } else {
                    self.unused_keys = 0;
                }
                self.misses = 0;
                key.generation = (key.generation + 1) % GENERATIONS;
                key.head.copy_from_slice(&frame[..HEAD]);
                key.valid = true;
                key.deltas = 0;
                key.last_used = self.clock;
                out[0] = KEY;
                out[1] = slot_byte(slot, key.generation);
                out[CODE_LEN..len].copy_from_slice(frame);
            }
            Coding::Delta { slot, .. } => {
                let key = &mut self.keys[slot];
                self.misses = 0;
                if key.deltas == 0 {
                    self.unused_keys = 0;
                }
                key.deltas += 1;
                key.last_used = self.clock;
                out[0] = DELTA;
                out[1] = slot_byte(slot, key.generation);
                let (bitmap, rest) = out[CODE_LEN..len].split_at_mut(BITMAP);
                bitmap.fill(0);
                let mut at = 0;
                for (i, (&k, &b)) in key.head.iter().zip(&frame[..HEAD]).enumerate() {
                    if k != b {
                        bitmap[i / 8] |= 0x80 >> (i % 8);
                        rest[at] = b;
                        at += 1;
                    }
                }
                rest[at..].copy_from_slice(&frame[HEAD..]);
            }
        }
        len
    }
}

/// The receiving half: the keys the near end sent.
pub(crate) struct DeltaDecoder {
    heads: [[u8; HEAD]; SLOTS],
    generations: [Option<u8>; SLOTS],
}

impl Default for DeltaDecoder {
    fn default() -> Self {
        DeltaDecoder {
            heads: [[0; HEAD]; SLOTS],
            generations: [None; SLOTS],
        }
    }
}

impl DeltaDecoder {
    /// Writes the frame `coded` (which [`is_coded`]) stands for at the
    /// start of `out` (`MAX_FRAME` bytes hold any) and gives its length. An
    /// error for a delta whose key this end does not hold, for a coded
    /// frame that breaks the layout, and for a frame `out` cannot hold.
    pub(crate) fn decode(&mut self, coded: &[u8], out: &mut [u8]) -> Result<usize, WireError> {
        let (&mark, body) = coded.split_first().ok_or(WireError::Truncated)?;
        if mark == LITERAL {
            return if body.is_empty() {
                Err(WireError::Truncated)
            } else {
                copy_whole(body, out)
            };
        }
        let (&slot_gen, body) = body.split_first().ok_or(WireError::Truncated)?;
        let (slot, generation) = (usize::from(slot_gen >> 6), slot_gen & (GENERATIONS - 1));
        match mark {
            KEY => {
                if body.len() < HEAD {
                    return Err(WireError::Truncated);
                }
                let len = copy_whole(body, out)?;
                self.heads[slot].copy_from_slice(&body[..HEAD]);
                self.generations[slot] = Some(generation);
                Ok(len)
            }
            DELTA => {
                if self.generations[slot] != Some(generation) {
                    return Err(WireError::Malformed);
                }
                if body.len() < BITMAP {
                    return Err(WireError::Truncated);
                }
                let (bitmap, changed) = body.split_at(BITMAP);
                let n: usize = bitmap.iter().map(|b| b.count_ones() as usize).sum();
                if changed.len() < n {
                    return Err(WireError::Truncated);
                }
                let (changed, rest) = changed.split_at(n);
                let len = HEAD + rest.len();
                if len > out.len() {
                    return Err(WireError::Malformed);
                }
                out[..HEAD].copy_from_slice(&self.heads[slot]);
                let mut next = changed.iter();
                for (i, byte) in out[..HEAD].iter_mut().enumerate() {
                    if bitmap[i / 8] & (0x80 >> (i % 8)) != 0 {
                        *byte = *next.next().expect("one byte per bit counted above");
                    }
                }
                out[HEAD..len].copy_from_slice(rest);
                Ok(len)
            }
            _ => Err(WireError::Malformed),
        }
    }
}

/// `frame` copied to the start of `out`: its length, or an error when it
/// does not fit.
fn copy_whole(frame: &[u8], out: &mut [u8]) -> Result<usize, WireError> {
    out.get_mut(..frame.len())
        .ok_or(WireError::Malformed)?
        .copy_from_slice(frame);
    Ok(frame.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_rng::XorShift;

    /// Codes `frame`, decodes it, and checks the round trip; the coding used.
    fn cross(enc: &mut DeltaEncoder, dec: &mut DeltaDecoder, frame: &[u8]) -> Coding {
        let plan = enc.plan(frame);
        let mut wire = vec![0u8; MAX_FRAME];
        let n = enc.emit(plan, frame, &mut wire);
        assert_eq!(n, plan.len(frame.len()));
        assert!(n <= MAX_FRAME);
        let mut out = vec![0u8; MAX_FRAME];
        let got = match plan {
            Coding::Plain => &wire[..n],
            _ => {
                assert!(is_coded(&wire[..n]));
                let len = dec.decode(&wire[..n], &mut out).unwrap();
                &out[..len]
            }
        };
        assert_eq!(got, frame);
        plan
    }

    fn tcp_like(flow: u8, seq: u32, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[..12].copy_from_slice(&[2, 0, 0, 0, 0, flow, 2, 0, 0, 0, 1, flow]);
        f[12..14].copy_from_slice(&[8, 0]);
        // Headers of different flows differ in many bytes.
        for (i, b) in f[14..HEAD].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(flow);
        }
        f[38..42].copy_from_slice(&seq.to_be_bytes());
        for (i, b) in f[HEAD..].iter_mut().enumerate() {
            *b = (i as u32).wrapping_mul(seq | 1) as u8;
        }
        f
    }

    #[test]
    fn a_flow_crosses_as_one_key_then_small_deltas() {
        let (mut enc, mut dec) = (DeltaEncoder::default(), DeltaDecoder::default());
        assert_eq!(
            cross(&mut enc, &mut dec, &tcp_like(1, 0, 1514)),
            Coding::Key { slot: 0 }
        );
        for seq in 1..100 {
            let f = tcp_like(1, seq * 1448, 1514);
            match cross(&mut enc, &mut dec, &f) {
                Coding::Delta { slot: 0, changed } => assert!(changed <= 4, "{changed}"),
                other => panic!("{other:?}"),
            }
            assert!(
                Coding::Delta {
                    slot: 0,
                    changed: 4
                }
                .len(1514)
                    < 1514 - 60
            );
        }
    }

    #[test]
    fn interleaved_flows_keep_a_key_each() {
        let (mut enc, mut dec) = (DeltaEncoder::default(), DeltaDecoder::default());
        let mut keys = 0;
        for seq in 0..200u32 {
            let flow = (seq % 4) as u8 * 40;
            if let Coding::Key { .. } = cross(&mut enc, &mut dec, &tcp_like(flow, seq, 600)) {
                keys += 1;
            }
        }
        assert_eq!(keys, 4);
    }

    #[test]
    fn a_key_is_sent_again_after_refresh_deltas() {
        let (mut enc, mut dec) = (DeltaEncoder::default(), DeltaDecoder::default());
        let plans: Vec<Coding> = (0..2 * REFRESH + 3)
            .map(|seq| cross(&mut enc, &mut dec, &tcp_like(1, seq, 200)))
            .collect();
        let keys: Vec<usize> = (0..plans.len())
            .filter(|&i| matches!(plans[i], Coding::Key { .. }))
            .collect();
        let r = REFRESH as usize;
        assert_eq!(keys, vec![0, r + 1, 2 * r + 2]);
    }

    #[test]
    fn frames_alike_in_nothing_mostly_go_plain() {
        let (mut enc, mut dec) = (DeltaEncoder::default(), DeltaDecoder::default());
        let mut rng = XorShift::new(7);
        let plans: Vec<Coding> = (0..400)
            .map(|_| {
                let mut f = rng.bytes(1000);
                f[0] &= 0xf0;
                cross(&mut enc, &mut dec, &f)
            })
            .collect();
        let keys = plans
            .iter()
            .filter(|p| matches!(p, Coding::Key { .. }))
            .count();
        // The first few, then one in 16.
        assert!((24..=40).contains(&keys), "{keys} keys");
        assert!(!plans.iter().any(|p| matches!(p, Coding::Delta { .. })));
        // A flow again: keyed and coded at once.
        let plans: Vec<Coding> = (0..40)
            .map(|seq| cross(&mut enc, &mut dec, &tcp_like(1, seq, 1000)))
            .collect();
        let deltas = plans
            .iter()
            .filter(|p| matches!(p, Coding::Delta { .. }))
            .count();
        assert!(deltas >= 20, "{plans:?}");
    }

    #[test]
    fn marked_and_short_frames() {
        let (mut enc, mut dec) = (DeltaEncoder::default(), DeltaDecoder::default());
        assert_eq!(cross(&mut enc, &mut dec, &[1u8; 60]), Coding::Plain);
        assert_eq!(cross(&mut enc, &mut dec, &[KEY; 60]), Coding::Literal);
        assert_eq!(cross(&mut enc, &mut dec, &[DELTA; 1]), Coding::Literal);
        let mut long = tcp_like(1, 0, MAX_FRAME);
        assert_eq!(cross(&mut enc, &mut dec, &long), Coding::Plain);
        long[0] = LITERAL;
        assert_eq!(enc.plan(&long), Coding::Unsendable);
        long.pop();
        assert_eq!(cross(&mut enc, &mut dec, &long), Coding::Literal);
    }

    #[test]
    fn a_delta_whose_key_was_missed_is_refused() {
        let (mut enc, mut dec) = (DeltaEncoder::default(), DeltaDecoder::default());
        let mut wire = vec![0u8; MAX_FRAME];
        let mut out = vec![0u8; MAX_FRAME];
        cross(&mut enc, &mut dec, &tcp_like(1, 0, 300));
        // A renewed key the decoder never sees: the next deltas name its generation.
        let f = tcp_like(1, 1, 300);
        enc.emit(Coding::Key { slot: 0 }, &f, &mut wire);
        let f = tcp_like(1, 2, 300);
        let plan = enc.plan(&f);
        assert!(matches!(plan, Coding::Delta { slot: 0, .. }));
        let n = enc.emit(plan, &f, &mut wire);
        assert_eq!(dec.decode(&wire[..n], &mut out), Err(WireError::Malformed));
        // A delta before any key at all.
        let mut fresh = DeltaDecoder::default();
        assert_eq!(
            fresh.decode(&wire[..n], &mut out),
            Err(WireError::Malformed)
        );
    }

    #[test]
    fn broken_coded_frames_are_errors_not_panics() {
        let mut dec = DeltaDecoder::default();
        let mut out = vec![0u8; MAX_FRAME];
        for bad in [
            &[KEY][..],
            &[KEY, 0, 1, 2],
            &[LITERAL],
            &[DELTA],
            &[DELTA, 0],
        ] {
            assert!(dec.decode(bad, &mut out).is_err(), "{bad:?}");
        }
        let mut key = vec![KEY, 0];
        key.extend_from_slice(&[5u8; HEAD]);
        dec.decode(&key, &mut out).unwrap();
        let mut delta = vec![DELTA, 0];
        delta.extend_from_slice(&[0xff; BITMAP]);
        delta.extend_from_slice(&[1u8; HEAD - 1]);
        assert_eq!(dec.decode(&delta, &mut out), Err(WireError::Truncated));
        delta.push(1);
        assert_eq!(dec.decode(&delta, &mut out), Ok(HEAD));
        assert_eq!(&out[..HEAD], &[1u8; HEAD][..]);
        // A frame longer than the place it goes to.
        key.resize(HEAD + 10, 5);
        assert_eq!(
            dec.decode(&key, &mut out[..HEAD]),
            Err(WireError::Malformed)
        );
    }

    #[test]
    fn random_frames_round_trip() {
        let mut rng = XorShift::new(23);
        let (mut enc, mut dec) = (DeltaEncoder::default(), DeltaDecoder::default());
        let mut bases: Vec<Vec<u8>> = (0..6)
            .map(|i| tcp_like(i * 9, 0, 100 + usize::from(i) * 200))
            .collect();
        for _ in 0..5000 {
            let b = rng.below(bases.len());
            let f = &mut bases[b];
            for _ in 0..rng.below(40) {
                let at = rng.below(f.len());
                f[at] = rng.below(256) as u8;
            }
            let mut frame = f.clone();
            frame.truncate(1 + rng.below(f.len()));
            cross(&mut enc, &mut dec, &frame);
        }
    }
}
