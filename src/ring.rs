//! The frame ring: frame storage made once at start-up, with a FIFO of
//! queued frames over it. One ring carries each direction of a cable.
//!
//! Storage is a fixed array of page-aligned slots, each big enough for the
//! largest frame; per-slot metadata (length, a tag for whoever holds the
//! frame: see [`SlotTag`]) lives in parallel arrays. The storage is a fresh anonymous mapping, so a page becomes
//! resident only when a frame lands on it: a frame of up to 4 KiB costs one
//! page whatever the capacity, and freed slots are reused last-in first-out
//! so the same few pages stay hot. Batched receives fill free slots in place
//! (no copy), batched sends read them in place, and a frame that cannot be
//! delivered yet simply stays queued: that is the backpressure.

use crate::wire::MAX_FRAME;

pub type Slot = u16;

const PAGE: usize = 4096;
/// Distance between slots: `MAX_FRAME` rounded up to whole pages.
const STRIDE: usize = MAX_FRAME.div_ceil(PAGE) * PAGE;

/// Zeroed, page-aligned memory straight from `mmap`: nothing is touched
/// (nor resident) until written.
pub(crate) struct PageBuf {
    ptr: *mut u8,
    len: usize,
}

impl PageBuf {
    pub(crate) fn new(len: usize) -> PageBuf {
        // SAFETY: a private anonymous mapping, owned by the PageBuf.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(ptr != libc::MAP_FAILED, "cannot map {len} bytes for frames");
        PageBuf {
            ptr: ptr.cast(),
            len,
        }
    }

    pub(crate) fn slice(&self, at: usize, len: usize) -> &[u8] {
        assert!(at + len <= self.len);
        // SAFETY: in bounds of the live mapping; borrowed from self.
        unsafe { std::slice::from_raw_parts(self.ptr.add(at), len) }
    }

    pub(crate) fn slice_mut(&mut self, at: usize, len: usize) -> &mut [u8] {
        assert!(at + len <= self.len);
        // SAFETY: in bounds of the live mapping; borrowed mutably from self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(at), len) }
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping made in `new`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// What the holder of a queued frame keeps beside it, in one word: a hub's
/// route for it, a bonding node's number for it. Each holder reads and
/// writes the word through a type of its own, so the word means one thing
/// wherever it is used; a frame queued anew has the word 0.
pub trait SlotTag: Copy {
    fn from_word(word: u32) -> Self;
    fn word(self) -> u32;
}

pub struct FrameRing {
    storage: PageBuf,
    lens: Box<[u16]>,
    tags: Box<[u32]>,
    done: Box<[bool]>,
    /// Slots holding queued frames, oldest first.
    queue: Box<[Slot]>,
    queued: usize,
    /// Stack of free slots.
    free: Box<[Slot]>,
    nfree: usize,
}

impl FrameRing {
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0 && capacity <= usize::from(Slot::MAX));
        FrameRing {
            storage: PageBuf::new(capacity * STRIDE),
            lens: vec![0; capacity].into_boxed_slice(),
            tags: vec![0; capacity].into_boxed_slice(),
            done: vec![false; capacity].into_boxed_slice(),
            queue: vec![0; capacity].into_boxed_slice(),
            queued: 0,
            free: (0..capacity as Slot).rev().collect(),
            nfree: capacity,
        }
    }

    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    pub fn free_slots(&self) -> usize {
        self.nfree
    }

    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Takes a free slot to receive into; give it back with [`push`] or
    /// [`unreserve`].
    ///
    /// [`push`]: FrameRing::push
    /// [`unreserve`]: FrameRing::unreserve
    pub fn reserve(&mut self) -> Option<Slot> {
        if self.nfree == 0 {
            return None;
        }
        self.nfree -= 1;
        Some(self.free[self.nfree])
    }

    pub fn unreserve(&mut self, slot: Slot) {
        self.free[self.nfree] = slot;
        self.nfree += 1;
    }

    /// The whole buffer of a reserved slot.
    pub fn slot_buf(&mut self, slot: Slot) -> &mut [u8] {
        self.storage
            .slice_mut(usize::from(slot) * STRIDE, MAX_FRAME)
    }

    /// Raw pointer to a slot's buffer, for building iovecs of a batch.
    pub fn slot_ptr(&mut self, slot: Slot) -> *mut u8 {
        self.slot_buf(slot).as_mut_ptr()
    }

    /// Queues a reserved slot holding a frame of `len` bytes.
    pub fn push(&mut self, slot: Slot, len: usize) {
        debug_assert!(len <= MAX_FRAME);
        let s = usize::from(slot);
        self.lens[s] = len as u16;
        self.tags[s] = 0;
        self.done[s] = false;
        self.queue[self.queued] = slot;
        self.queued += 1;
    }

    /// Copies `frame` into a free slot and queues it; false when full.
    pub fn push_copy(&mut self, frame: &[u8]) -> bool {
        self.push_copy_slot(frame).is_some()
    }

    /// [`push_copy`](FrameRing::push_copy), with a tag.
    pub fn push_copy_tagged<T: SlotTag>(&mut self, frame: &[u8], tag: T) -> bool {
        match self.push_copy_slot(frame) {
            Some(slot) => {
                self.set_tag(slot, tag);
                true
            }
            None => false,
        }
    }

    fn push_copy_slot(&mut self, frame: &[u8]) -> Option<Slot> {
        let slot = self.reserve()?;
        self.slot_buf(slot)[..frame.len()].copy_from_slice(frame);
        self.push(slot, frame.len());
        Some(slot)
    }

    /// Queued slots, oldest first.
    pub fn queued(&self) -> &[Slot] {
        &self.queue[..self.queued]
    }

    pub fn frame(&self, slot: Slot) -> &[u8] {
        let s = usize::from(slot);
        self.storage.slice(s * STRIDE, usize::from(self.lens[s]))
    }

    /// A queued frame, to change in place (see [`set_len`](FrameRing::set_len)).
    pub fn frame_mut(&mut self, slot: Slot) -> &mut [u8] {
        let s = usize::from(slot);
        self.storage
            .slice_mut(s * STRIDE, usize::from(self.lens[s]))
    }

    /// Shortens a queued frame (after taking bytes out of it in place).
    pub fn set_len(&mut self, slot: Slot, len: usize) {
        let s = usize::from(slot);
        assert!(len <= usize::from(self.lens[s]));
        self.lens[s] = len as u16;
    }

    /// The tag of a queued frame, as its holder reads it.
    pub fn tag<T: SlotTag>(&self, slot: Slot) -> T {
        T::from_word(self.tags[usize::from(slot)])
    }

    /// Gives a queued frame a new tag.
    pub fn set_tag<T: SlotTag>(&mut self, slot: Slot, tag: T) {
        self.tags[usize::from(slot)] = tag.word();
    }

    /// Puts the queued frames in a new order: `order` holds each of
    /// [`queued`](FrameRing::queued) once.
    pub fn set_order(&mut self, order: &[Slot]) {
        assert_eq!(order.len(), self.queued);
        self.queue[..self.queued].copy_from_slice(order);
    }

    /// Marks a queued frame as finished with (delivered or dropped); it is
    /// freed by the next [`sweep`](FrameRing::sweep).
    pub fn mark_done(&mut self, slot: Slot) {
        self.done[usize::from(slot)] = true;
    }

    /// Whether a queued frame is finished with (and not swept yet).
    pub fn is_done(&self, slot: Slot) -> bool {
        self.done[usize::from(slot)]
    }

    /// Frees every finished frame; the rest stay queued in order.
    pub fn sweep(&mut self) -> usize {
        let mut kept = 0;
        let mut freed = 0;
        for i in 0..self.queued {
            let slot = self.queue[i];
            if self.done[usize::from(slot)] {
                self.free[self.nfree] = slot;
                self.nfree += 1;
                freed += 1;
            } else {
                self.queue[kept] = slot;
                kept += 1;
            }
        }
        self.queued = kept;
        freed
    }

    /// Finishes the `n` oldest frames.
    pub fn consume_front(&mut self, n: usize) -> usize {
        for i in 0..n.min(self.queued) {
            let slot = self.queue[i];
            self.done[usize::from(slot)] = true;
        }
        self.sweep()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Id(u32);

    impl SlotTag for Id {
        fn from_word(word: u32) -> Self {
            Id(word)
        }
        fn word(self) -> u32 {
            self.0
        }
    }

    #[test]
    fn fifo_sweep_and_reuse() {
        let mut r = FrameRing::new(3);
        for i in 0..3u8 {
            assert!(r.push_copy_tagged(&[i; 20], Id(u32::from(i))));
        }
        assert!(!r.push_copy_tagged(&[9; 20], Id(9)));
        let q: Vec<Slot> = r.queued().to_vec();
        r.mark_done(q[1]);
        assert_eq!(r.sweep(), 1);
        let tags: Vec<Id> = r.queued().iter().map(|&s| r.tag(s)).collect();
        assert_eq!(tags, vec![Id(0), Id(2)]);
        assert!(r.push_copy(&[5; 30]));
        assert_eq!(r.tag::<Id>(r.queued()[2]), Id(0));
        assert_eq!(r.consume_front(2), 2);
        let s = r.queued()[0];
        assert_eq!(r.frame(s), &[5u8; 30][..]);
        assert_eq!(r.free_slots(), 2);
    }
}
