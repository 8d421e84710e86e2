//! What a cable carried that the far node has not said it has yet: the
//! first number of what went in each ms (by the stamp of its deal), until
//! a path report echoes a later stamp of ours (our reports go on the cable
//! behind the frames sent before them, so the far node that heard one has
//! had, or lost, every frame sent earlier). The oldest such number of any
//! cable bounds how far ahead the numbering may go: no cable runs more
//! than the far node's reorder window behind the others (as BLEST keeps a
//! slow subflow from blocking MPTCP's receive window: Ferlin et al.,
//! "BLEST: Blocking estimation-based MPTCP scheduler for heterogeneous
//! networks", IFIP Networking 2016).

use super::path::after16;

/// Marks kept per cable; past that, the newest stands for more ms (its
/// number the oldest of them: the bound only gets stricter).
const MARKS: usize = 64;

#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    /// (stamp of the deal, first number it sent on the cable), oldest
    /// first, from `head`, `len` of them.
    marks: [(u16, u32); MARKS],
    head: usize,
    len: usize,
}

impl Default for InFlight {
    fn default() -> Self {
        InFlight {
            marks: [(0, 0); MARKS],
            head: 0,
            len: 0,
        }
    }
}

impl InFlight {
    /// Frames numbered from `first` on went on the cable in a deal
    /// stamped `stamp`.
    pub(crate) fn sent(&mut self, stamp: u16, first: u32) {
        if self.len > 0 {
            let last = (self.head + self.len - 1) % MARKS;
            if self.len == MARKS || self.marks[last].0 == stamp {
                self.marks[last].0 = stamp;
                return;
            }
        }
        self.marks[(self.head + self.len) % MARKS] = (stamp, first);
        self.len += 1;
    }

    /// A path report echoed our stamp `echo`: what went before it has
    /// arrived or is lost.
    pub(crate) fn heard(&mut self, echo: u16) {
        while self.len > 0 && after16(echo, self.marks[self.head].0) {
            self.head = (self.head + 1) % MARKS;
            self.len -= 1;
        }
    }

    /// The oldest number sent on the cable that may not have arrived.
    pub(crate) fn oldest(&self) -> Option<u32> {
        (self.len > 0).then(|| self.marks[self.head].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_clears_what_went_before_it() {
        let mut f = InFlight::default();
        assert_eq!(f.oldest(), None);
        f.sent(10, 100);
        f.sent(10, 140);
        f.sent(12, 200);
        assert_eq!(f.oldest(), Some(100));
        // Our report stamped 10 may have gone before frames dealt at 10.
        f.heard(10);
        assert_eq!(f.oldest(), Some(100));
        f.heard(11);
        assert_eq!(f.oldest(), Some(200));
        f.heard(13);
        assert_eq!(f.oldest(), None);
    }

    #[test]
    fn full_it_only_gets_stricter() {
        let mut f = InFlight::default();
        for ms in 0..MARKS as u16 + 10 {
            f.sent(ms, u32::from(ms) * 10);
        }
        f.heard(MARKS as u16 - 1);
        // The last mark stands for the ms after it too, with its number.
        assert_eq!(f.oldest(), Some((MARKS as u32 - 1) * 10));
        f.heard(MARKS as u16 + 10);
        assert_eq!(f.oldest(), None);
    }
}
