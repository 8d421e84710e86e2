//! The reorder buffer (`policy=path`, from far nodes of ours): frames
//! numbered by the far node ([`crate::wire::seq_tag`]) are given to the
//! host in the order they were sent, whichever cable they took, flow by
//! flow: a frame whose flow's previous frame has gone to the host goes at
//! once, even if frames of other flows numbered before it have not come;
//! the rest wait for every number before them. A number that no cable can
//! still bring is given up on; no frame that waits for the floor goes
//! sooner than the slowest live path would have brought it ([`Moment`]);
//! what waited behind a late frame goes at a pace ([`Pace`]). How and why:
//! docs/multipath.md, "In order" and "As late as the slowest path".

use std::time::{Duration, Instant};

use super::pace::{self, Pace};
use super::path::after16;
use super::sequencer::SeqNo;
use crate::endpoint::node::flow::waits_for_floor;
use crate::figures::Figures;
use crate::lane::Lane;
use crate::ring::{FrameRing, Slot};
use crate::wire::seq_tag::{self, SeqTagged};

/// How far ahead of the awaited frame one may be and still be held, and
/// how many are held at most: 200 ms of full-size frames at 100 Mbit/s.
/// A sender lets no cable run more than half of it behind the others:
/// enough for an ssh connection to recover a lost segment on a 50 ms path
/// without holding up the other cables (1024, half of it 100 ms at 55
/// Mbit/s, was not). The store is mapped whole, but its free slots are
/// reused last-in first-out: only as many pages are resident as frames
/// were ever held at once.
pub(crate) const WINDOW: usize = 2048;
const EMPTY: Slot = Slot::MAX;
const _: () = assert!(WINDOW == seq_tag::FLOW_SPAN as usize);

/// Whether `a` comes after `b`, in numbers that wrap.
fn after32(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// How long lag minima are kept: a path's own delay shows in its least
/// lag over a period or two, what queues on it for a while does not.
const LAG_PERIOD: Duration = Duration::from_secs(5);

/// What the receiving node knows of one cable: the highest number it
/// brought (a frame numbered lower can no longer come on it), and the
/// least lag of what it brought (our clock minus the far end's stamp: the
/// path's delay plus the offset of the two clocks, the same for every
/// cable between the same two nodes).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CableSeen {
    /// The numbering (the far node's run) of what it brought.
    epoch: Option<u8>,
    pub(crate) highest: Option<u32>,
    lag_now: Option<u16>,
    lag_before: Option<u16>,
    lag_since: Option<Instant>,
}

/// The smaller of two lags (ms that wrap).
fn least(a: Option<u16>, b: Option<u16>) -> Option<u16> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if after16(x, y) { y } else { x }),
        (x, y) => x.or(y),
    }
}

impl CableSeen {
    /// Something the far end stamped `stamp` came on this cable at `ms` of
    /// our clock.
    pub(crate) fn note_lag(&mut self, stamp: u16, ms: u16, now: Instant) {
        if self
            .lag_since
            .is_none_or(|t| now.saturating_duration_since(t) >= LAG_PERIOD)
        {
            self.lag_before = self.lag_now.or(self.lag_before);
            self.lag_now = None;
            self.lag_since = Some(now);
        }
        self.lag_now = least(self.lag_now, Some(ms.wrapping_sub(stamp)));
    }

    /// The cable's least lag of late: its path's own delay (plus the
    /// clocks' offset).
    pub(crate) fn base_lag(&self) -> Option<u16> {
        least(self.lag_now, self.lag_before)
    }

    /// Whether the cable can no longer bring number `n` of numbering
    /// `epoch`, sent no later than stamp `sent`: it brought a higher number
    /// of that numbering, or a report stamped after (`report`: the stamp of
    /// the last report it brought).
    pub(crate) fn past(&self, epoch: Option<u8>, n: u32, sent: u16, report: Option<u16>) -> bool {
        let highest = self.highest.filter(|_| self.epoch == epoch);
        highest.is_some_and(|h| after32(h, n)) || report.is_some_and(|r| after16(r, sent))
    }
}

/// The moment frames are looked at: `now`, `ms` on the clock of the
/// lags, and the lag a frame must have before the host gets it (`floor`:
/// the slowest live path's own, see `kind.rs`), if any.
#[derive(Clone, Copy)]
pub(crate) struct Moment {
    pub(crate) now: Instant,
    pub(crate) ms: u16,
    pub(crate) floor: Option<u16>,
}

/// A frame is never held for the floor longer than this (a clock that
/// jumped, a far node that restarted with a new one).
const FLOOR_MAX_MS: u16 = 200;

/// The floor for cables whose own lags are `lags`: the largest, so that
/// what came the quick way waits as long as what came the slow way; but
/// no more than [`FLOOR_MAX_MS`] above the least (a path that much slower
/// is not waited for in full; its frames are still put in order).
pub(crate) fn lag_floor(mut lags: impl Iterator<Item = u16>) -> Option<u16> {
    let first = lags.next()?;
    let (least, most) = lags.fold((first, first), |(lo, hi), lag| {
        (
            if after16(lo, lag) { lag } else { lo },
            if after16(lag, hi) { lag } else { hi },
        )
    });
    Some(if most.wrapping_sub(least) > FLOOR_MAX_MS {
        least.wrapping_add(FLOOR_MAX_MS)
    } else {
        most
    })
}

impl Moment {
    /// How many ms a frame stamped `stamp` waits yet for the floor.
    fn floor_wait_ms(&self, stamp: u16) -> u16 {
        let Some(floor) = self.floor else {
            return 0;
        };
        let lag = self.ms.wrapping_sub(stamp);
        (floor.wrapping_sub(lag) as i16).clamp(0, FLOOR_MAX_MS as i16) as u16
    }
}

/// The receiving side: frames held until their turn.
pub(crate) struct Reorder {
    store: FrameRing,
    /// By number (mod [`WINDOW`]): the store slot holding that frame.
    at: Box<[Slot]>,
    /// When each held frame arrived, its stamp, and whether it waits for
    /// the floor ([`waits_for_floor`]), by number as `at`; also for a
    /// frame that went ahead of its turn (its flow's previous frame had
    /// gone), until `next` passes its number: then `at` is [`EMPTY`].
    arrived: Box<[Option<(Instant, u16, bool)>]>,
    epoch: Option<u8>,
    /// The number whose turn it is.
    next: u32,
    held: usize,
    /// Frames that went ahead of their turn whose numbers `next` has not
    /// passed yet.
    went_ahead: usize,
    /// Numbers before this one are given up on at once (a frame came a
    /// window ahead of `next`).
    skip_to: Option<u32>,
    /// Frames held for their turn so far; numbers given up on; frames
    /// that came after their number was given up on, and how late at most;
    /// frames held when the far node restarted for which the host had no
    /// room; frames that went before frames held for their turn (no
    /// slot for them, a number more than a window ahead, or untagged);
    /// copies of a frame already held, dropped; frames that went before
    /// frames of other flows numbered before them.
    ever_held: u64,
    given_up: u64,
    late: u64,
    latest: Duration,
    gave_up_at: Option<Instant>,
    dropped: u64,
    out_of_turn: u64,
    copies: u64,
    ahead: u64,
    pace: Pace,
    /// By number (mod [`WINDOW`]), one bit each: of the numbers `next` has
    /// passed, those whose frame went to the host (not given up on). A
    /// copy of one that comes later is dropped.
    passed: Box<[u64]>,
}

impl Reorder {
    pub(crate) fn new() -> Reorder {
        Reorder {
            store: FrameRing::new(WINDOW),
            at: vec![EMPTY; WINDOW].into_boxed_slice(),
            arrived: vec![None; WINDOW].into_boxed_slice(),
            epoch: None,
            next: 0,
            held: 0,
            went_ahead: 0,
            skip_to: None,
            ever_held: 0,
            given_up: 0,
            late: 0,
            latest: Duration::ZERO,
            gave_up_at: None,
            dropped: 0,
            out_of_turn: 0,
            copies: 0,
            ahead: 0,
            pace: Pace::new(),
            passed: vec![0; WINDOW / 64].into_boxed_slice(),
        }
    }

    /// `next` passes number `seq`: its frame went to the host, or not.
    fn pass(&mut self, seq: u32, went: bool) {
        let at = Self::index(seq);
        let bit = 1u64 << (at % 64);
        if went {
            self.passed[at / 64] |= bit;
        } else {
            self.passed[at / 64] &= !bit;
        }
    }

    /// Whether number `seq`, which `next` passed less than a window ago,
    /// went to the host.
    fn went(&self, seq: u32) -> bool {
        let at = Self::index(seq);
        self.passed[at / 64] & (1 << (at % 64)) != 0
    }

    fn index(seq: u32) -> usize {
        seq as usize % WINDOW
    }

    /// The `count` newest frames of `lane`, just read from a cable (what
    /// it brought is noted in `cable`): takes their tags out, and takes
    /// out of the queue (into the store) those whose turn has not come.
    /// Untagged frames, and late ones (their number was given up on), go
    /// at once.
    pub(crate) fn take(
        &mut self,
        lane: &mut Lane,
        count: usize,
        at: Moment,
        cable: &mut CableSeen,
    ) {
        let now = at.now;
        let moment = self.floor_if_room(at);
        let ring = &mut lane.ring;
        let queued = ring.queued().len();
        let mut moved = false;
        for i in queued - count..queued {
            let slot = ring.queued()[i];
            let Ok(tagged) = SeqTagged::new_checked(ring.frame(slot)) else {
                self.passed_untagged(1);
                continue;
            };
            let (epoch, seq, stamp) = (tagged.epoch(), tagged.seq(), tagged.stamp());
            let flow_back = tagged.flow_back();
            self.pace.came(now);
            let len = seq_tag::strip(ring.frame_mut(slot));
            ring.set_len(slot, len);
            let floored = waits_for_floor(ring.frame(slot));
            if self.epoch != Some(epoch) {
                // A new numbering: what is held of the old one goes too.
                self.flush(ring);
                self.passed.fill(0);
                self.epoch = Some(epoch);
                // A numbering starts at 0: a first frame that came within
                // a window of it waits for those before it. (One heard
                // later, after this node restarted, starts where it is.)
                self.next = if (seq as usize) < WINDOW { 0 } else { seq };
            }
            if cable.epoch != Some(epoch) {
                // What this cable brought of the old numbering (and by the
                // old clock) says nothing of the new.
                *cable = CableSeen {
                    epoch: Some(epoch),
                    ..CableSeen::default()
                };
            }
            if cable.highest.is_none_or(|h| after32(seq, h)) {
                cable.highest = Some(seq);
            }
            cable.note_lag(stamp, moment.ms, now);
            let ahead = seq.wrapping_sub(self.next) as i32;
            if ahead < 0 {
                if -(ahead as i64) <= WINDOW as i64 && self.went(seq) {
                    // A copy of a frame the host had: one its sender sent
                    // again on another cable came first (`rescue.rs`), or
                    // a duplicating hop.
                    self.copies += 1;
                    ring.mark_done(slot);
                    moved = true;
                    continue;
                }
                self.late += 1;
                if let Some(t) = self.gave_up_at {
                    self.latest = self.latest.max(now.saturating_duration_since(t));
                }
                continue;
            }
            let unfloored = !floored || moment.floor_wait_ms(stamp) == 0;
            if ahead == 0 && self.held == 0 && unfloored {
                self.pass(seq, true);
                self.next = seq.wrapping_add(1);
                self.pass_gone_ahead();
                continue;
            }
            let at = Self::index(seq);
            if (ahead as usize) < WINDOW && self.is_gone_ahead(at) {
                // A copy of a frame that went ahead of its turn.
                self.copies += 1;
                ring.mark_done(slot);
                moved = true;
                continue;
            }
            if ahead > 0
                && self.at[at] == EMPTY
                && unfloored
                && self.flow_went_before(seq, flow_back)
            {
                // Its flow's frames before it are with the host: it goes
                // now, ahead of numbers of other flows not come yet.
                self.arrived[at] = Some((now, stamp, floored));
                self.went_ahead += 1;
                self.ahead += 1;
                continue;
            }
            if ahead as usize >= WINDOW {
                // Too far ahead to wait for all before it: it goes now, and
                // what is missing up to a window behind it counts as lost.
                self.skip_to = Some(seq.wrapping_sub(WINDOW as u32 - 1));
                self.out_of_turn += 1;
                continue;
            }
            let kept = match self.at[at] {
                EMPTY => self.store.reserve(),
                held if self.store.tag::<SeqNo>(held) == SeqNo(seq) => {
                    // A copy (a loop or a duplicating hop between the
                    // nodes): the host gets the frame once.
                    self.copies += 1;
                    ring.mark_done(slot);
                    moved = true;
                    continue;
                }
                _ => None,
            };
            // Held numbers lie within a window of `next`, one store slot
            // each, so neither a slot taken by another number nor a full
            // store is expected; should one happen, the frame goes now,
            // counted.
            let Some(kept) = kept else {
                self.out_of_turn += 1;
                continue;
            };
            let frame = ring.frame(slot);
            self.store.slot_buf(kept)[..frame.len()].copy_from_slice(frame);
            self.store.push(kept, frame.len());
            self.store.set_tag(kept, SeqNo(seq));
            self.at[at] = kept;
            self.arrived[at] = Some((now, stamp, floored));
            self.held += 1;
            self.ever_held += 1;
            ring.mark_done(slot);
            moved = true;
        }
        if moved {
            ring.sweep();
        }
    }

    /// Whether the frame numbered `at` (an index) went to the host ahead
    /// of its turn and `next` has not passed it yet.
    fn is_gone_ahead(&self, at: usize) -> bool {
        self.at[at] == EMPTY && self.arrived[at].is_some()
    }

    /// Whether the frames of the flow of frame `seq` (within a window of
    /// `next`), whose previous one is `back` numbers before it, have all
    /// gone to the host (or been given up on): that previous frame is
    /// before `next`, or went ahead of its turn.
    fn flow_went_before(&self, seq: u32, back: Option<u16>) -> bool {
        let Some(back) = back else {
            return false; // not known: it waits for every number before it
        };
        // 0: none within a window of it, so none at or after `next`.
        let ahead = seq.wrapping_sub(self.next);
        back == 0 || u32::from(back) > ahead || {
            self.is_gone_ahead(Self::index(seq.wrapping_sub(u32::from(back))))
        }
    }

    /// `next` moves past the numbers whose frames went ahead of their turn.
    fn pass_gone_ahead(&mut self) {
        while self.went_ahead > 0 {
            let at = Self::index(self.next);
            if !self.is_gone_ahead(at) {
                break;
            }
            self.arrived[at] = None;
            self.went_ahead -= 1;
            self.pass(self.next, true);
            self.next = self.next.wrapping_add(1);
        }
    }

    /// Gives the host (`ring`) the held frames whose turn has come, as far
    /// as it has room: those next in order, and past an awaited number that
    /// no cable can bring any more (`gone(n, stamp)`: the frame after it
    /// went at `stamp`) or that has not come `wait` after a later one did,
    /// the rest. Returns how many.
    pub(crate) fn release(
        &mut self,
        ring: &mut FrameRing,
        at: Moment,
        wait: Duration,
        gone: &dyn Fn(u32, u16) -> bool,
    ) -> usize {
        let now = at.now;
        let moment = self.floor_if_room(at);
        let paced = !self.crowded();
        self.pace.top_up(now);
        let mut given = 0;
        // The first held frame behind the run of missing numbers being
        // looked at (the same for every number of the run).
        let mut behind = None;
        while ring.free_slots() > 0 {
            self.pass_gone_ahead();
            let skip_to = self.skip_to.filter(|&to| after32(to, self.next));
            self.skip_to = skip_to;
            if !self.waiting() {
                if let Some(to) = skip_to {
                    let skipped = to.wrapping_sub(self.next);
                    self.given_up += u64::from(skipped);
                    for n in 0..skipped.min(WINDOW as u32) {
                        self.pass(to.wrapping_sub(1 + n), false);
                    }
                    self.next = to;
                    self.skip_to = None;
                }
                break;
            }
            let at = Self::index(self.next);
            if self.at[at] == EMPTY {
                let (since, stamp) = *behind.get_or_insert_with(|| {
                    self.first_behind()
                        .expect("something is held or went ahead")
                });
                if skip_to.is_none() && since + wait > now && !gone(self.next, stamp) {
                    break;
                }
                self.pass(self.next, false);
                self.next = self.next.wrapping_add(1);
                self.given_up += 1;
                self.gave_up_at = Some(now);
                continue;
            }
            if self.arrived[at].is_some_and(|(_, stamp, f)| f && moment.floor_wait_ms(stamp) > 0) {
                break;
            }
            if paced && !self.pace.take() {
                break;
            }
            let kept = std::mem::replace(&mut self.at[at], EMPTY);
            self.arrived[at] = None;
            ring.push_copy(self.store.frame(kept));
            self.store.mark_done(kept);
            self.held -= 1;
            self.pass(self.next, true);
            self.next = self.next.wrapping_add(1);
            given += 1;
            behind = None;
        }
        if given > 0 {
            self.store.sweep();
        }
        given
    }

    /// The first frame after the awaited number (held, or gone ahead of
    /// its turn): when it arrived, and its stamp.
    fn first_behind(&self) -> Option<(Instant, u16)> {
        (0..WINDOW)
            .map(|k| Self::index(self.next.wrapping_add(k as u32)))
            .find_map(|at| self.arrived[at].map(|(t, stamp, _)| (t, stamp)))
    }

    /// When held frames are to be looked at again: when the next in turn
    /// has waited out the floor; else when the awaited number counts as
    /// lost for want of news, `wait` after the first held frame behind it
    /// arrived. None while nothing is held.
    pub(crate) fn due(&self, wait: Duration, at: Moment) -> Option<Instant> {
        if !self.waiting() {
            return None;
        }
        let floor_ms = self.arrived[Self::index(self.next)]
            .filter(|&(_, _, floored)| floored)
            .map(|(_, stamp, _)| self.floor_if_room(at).floor_wait_ms(stamp))
            .filter(|&ms| ms > 0);
        match floor_ms {
            Some(ms) => Some(at.now + Duration::from_millis(ms.into())),
            None if self.pace.waiting() => Some(at.now + pace::RETRY),
            None => self.first_behind().map(|(t, _)| t + wait),
        }
    }

    /// The store is half full: the frames that overtook others must still
    /// find room, so nothing waits for the floor or for pace. (Far nodes of
    /// ours keep what they number within half a window of what they know
    /// has come: what comes is then never a window ahead of `next`.)
    fn crowded(&self) -> bool {
        self.store.free_slots() < WINDOW / 2
    }

    /// `at`, without its floor when the store is crowded.
    fn floor_if_room(&self, at: Moment) -> Moment {
        if self.crowded() {
            Moment { floor: None, ..at }
        } else {
            at
        }
    }

    /// Gives the host everything held, in order, as far as it has room
    /// (the rest is dropped), after what it has queued: for a far node that
    /// restarted (order across that break is not kept).
    fn flush(&mut self, ring: &mut FrameRing) {
        for k in 0..WINDOW {
            let at = Self::index(self.next.wrapping_add(k as u32));
            let kept = std::mem::replace(&mut self.at[at], EMPTY);
            self.arrived[at] = None;
            if kept == EMPTY {
                continue;
            }
            if !ring.push_copy(self.store.frame(kept)) {
                self.dropped += 1;
            }
            self.store.mark_done(kept);
        }
        self.store.sweep();
        self.held = 0;
        self.went_ahead = 0;
        self.skip_to = None;
    }

    /// Frames held now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// Whether anything waits to be looked at again: frames held, or
    /// numbers before frames that went ahead of their turn.
    pub(crate) fn waiting(&self) -> bool {
        self.held > 0 || self.went_ahead > 0
    }

    /// `n` untagged frames went to the host at once (they pass the reorder
    /// buffer): ahead of their turn if frames are held.
    pub(crate) fn passed_untagged(&mut self, n: usize) {
        if self.held > 0 {
            self.out_of_turn += n as u64;
        }
    }

    /// The far node's numbering being put in order.
    pub(crate) fn epoch(&self) -> Option<u8> {
        self.epoch
    }

    /// What `--status` shows, once numbered frames came (their meaning:
    /// the fields' comments, vde_plug_rs(1) COUNTERS); only `dropped` is
    /// a loss.
    pub(crate) fn figures(&self, out: &mut Figures) {
        if self.epoch.is_none() {
            return;
        }
        out.section("in_order")
            .count("held", self.ever_held)
            .count("given_up", self.given_up)
            .count("late", self.late)
            .time("late_max", self.latest)
            .loss("dropped", self.dropped)
            .count("out_of_turn", self.out_of_turn)
            .count("copies", self.copies)
            .count("ahead", self.ahead);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::seq_tag::{TagFields, BACK_UNKNOWN, SEQ_TAG_LEN, TAG_AT};

    const WAIT: Duration = Duration::from_millis(300);
    /// A number well into a numbering (one heard first starts it there).
    const MID: u32 = 4 * WINDOW as u32;

    /// A 60-byte frame whose payload starts with `id`, tagged `seq` and
    /// stamped `seq` ms, that waits for every number before it (its flow's
    /// previous frame is not known).
    fn tagged(epoch: u8, seq: u32, id: u8) -> Vec<u8> {
        tagged_in_flow(epoch, seq, BACK_UNKNOWN, id)
    }

    /// As [`tagged`], with its flow's previous frame `back` numbers before.
    fn tagged_in_flow(epoch: u8, seq: u32, back: u16, id: u8) -> Vec<u8> {
        let mut tag = [0u8; SEQ_TAG_LEN];
        let stamp = seq as u16;
        let fields = TagFields {
            epoch,
            seq,
            stamp,
            back,
        };
        seq_tag::emit(&mut tag, &fields);
        let mut frame = [0u8; 60];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = id;
        [&frame[..TAG_AT], &tag[..], &frame[TAG_AT..]].concat()
    }

    /// `now`, at 0 ms, with no floor.
    fn at(now: Instant) -> Moment {
        Moment {
            now,
            ms: 0,
            floor: None,
        }
    }

    /// No cable accounts for anything: only the wait gives up.
    fn nobody_knows(_: u32, _: u16) -> bool {
        false
    }

    /// Reads `frames` from a cable into the lane, as a port would.
    fn arrive(r: &mut Reorder, lane: &mut Lane, frames: &[Vec<u8>], now: Instant) -> CableSeen {
        let mut cable = CableSeen::default();
        for f in frames {
            assert!(lane.ring.push_copy(f));
        }
        r.take(lane, frames.len(), at(now), &mut cable);
        r.release(&mut lane.ring, at(now), WAIT, &nobody_knows);
        cable
    }

    /// What the host gets: the ids of the queued frames (all untagged and
    /// 60 bytes long), which it then consumes.
    fn host_gets(lane: &mut Lane) -> Vec<u8> {
        let ring = &mut lane.ring;
        let ids = ring
            .queued()
            .iter()
            .map(|&s| {
                let f = ring.frame(s);
                assert_eq!(f.len(), 60);
                f[14]
            })
            .collect();
        ring.consume_front(ring.queued().len());
        ids
    }

    #[test]
    fn frames_in_order_go_at_once() {
        let (mut r, mut lane, now) = (Reorder::new(), Lane::new(64), Instant::now());
        let frames: Vec<_> = (0..5).map(|i| tagged(1, MID + i, i as u8)).collect();
        let cable = arrive(&mut r, &mut lane, &frames, now);
        assert_eq!(host_gets(&mut lane), [0, 1, 2, 3, 4]);
        assert_eq!((r.held(), r.ever_held), (0, 0));
        assert_eq!(cable.highest, Some(MID + 4));
    }

    #[test]
    fn frames_that_overtook_wait_for_the_one_before() {
        let (mut r, mut lane, now) = (Reorder::new(), Lane::new(64), Instant::now());
        arrive(&mut r, &mut lane, &[tagged(1, MID + 7, 0)], now);
        // 9 and 10 came by a quicker cable than 8.
        let (n9, n10) = (tagged(1, MID + 9, 2), tagged(1, MID + 10, 3));
        arrive(&mut r, &mut lane, &[n9, n10], now);
        assert_eq!(host_gets(&mut lane), [0]);
        assert_eq!(r.held(), 2);
        assert_eq!(r.due(WAIT, at(now)), Some(now + WAIT));
        let (n8, n11) = (tagged(1, MID + 8, 1), tagged(1, MID + 11, 4));
        arrive(&mut r, &mut lane, &[n8, n11], now);
        assert_eq!(host_gets(&mut lane), [1, 2, 3, 4]);
        assert_eq!((r.held(), r.due(WAIT, at(now))), (0, None));
    }

    #[test]
    fn a_flow_goes_ahead_of_another_flows_missing_frame() {
        let (mut r, mut lane, now) = (Reorder::new(), Lane::new(64), Instant::now());
        arrive(&mut r, &mut lane, &[tagged_in_flow(1, MID + 7, 0, 0)], now);
        // 8 (flow A) is on a slow cable; 9 and 11 are flow B (9 its first
        // frame in a window, 11 two after it), 10 is flow A after 8.
        let frames = [
            tagged_in_flow(1, MID + 9, 0, 9),
            tagged_in_flow(1, MID + 10, 2, 10),
            tagged_in_flow(1, MID + 11, 2, 11),
        ];
        arrive(&mut r, &mut lane, &frames, now);
        assert_eq!(host_gets(&mut lane), [0, 9, 11]);
        assert_eq!((r.held(), r.ahead), (1, 2));
        // 12, flow B again: its flow is with the host.
        arrive(
            &mut r,
            &mut lane,
            &[tagged_in_flow(1, MID + 12, 1, 12)],
            now,
        );
        assert_eq!(host_gets(&mut lane), [12]);
        // A copy of 11 is dropped.
        arrive(
            &mut r,
            &mut lane,
            &[tagged_in_flow(1, MID + 11, 2, 11)],
            now,
        );
        assert_eq!((host_gets(&mut lane), r.copies), (vec![], 1));
        // 8 comes: flow A's two go, and the turn passes 9, 11 and 12.
        let n13 = tagged_in_flow(1, MID + 13, 3, 13);
        arrive(
            &mut r,
            &mut lane,
            &[tagged_in_flow(1, MID + 8, 0, 8), n13],
            now,
        );
        assert_eq!(host_gets(&mut lane), [8, 10, 13]);
        assert_eq!((r.held(), r.waiting(), r.next), (0, false, MID + 14));
        assert_eq!((r.given_up, r.late, r.out_of_turn), (0, 0, 0));
    }

    #[test]
    fn a_copy_of_a_held_frame_does_not_go_ahead() {
        let (mut r, mut lane, now) = (Reorder::new(), Lane::new(64), Instant::now());
        arrive(&mut r, &mut lane, &[tagged_in_flow(1, MID + 7, 0, 0)], now);
        // 10 came before 9, its flow's previous frame: held.
        let n10 = tagged_in_flow(1, MID + 10, 1, 10);
        arrive(&mut r, &mut lane, std::slice::from_ref(&n10), now);
        assert_eq!((host_gets(&mut lane), r.held()), (vec![0], 1));
        // 9 (nothing of its flow before it) goes ahead of 8; 10 stays held
        // for its turn, and a copy of it now is a copy, not a frame ahead.
        arrive(
            &mut r,
            &mut lane,
            &[tagged_in_flow(1, MID + 9, 0, 9), n10],
            now,
        );
        assert_eq!((host_gets(&mut lane), r.copies), (vec![9], 1));
        arrive(&mut r, &mut lane, &[tagged_in_flow(1, MID + 8, 0, 8)], now);
        assert_eq!(host_gets(&mut lane), [8, 10]);
        assert_eq!((r.waiting(), r.next), (false, MID + 11));
    }

    #[test]
    fn a_number_missing_before_frames_gone_ahead_is_given_up() {
        let (mut r, mut lane, now) = (Reorder::new(), Lane::new(64), Instant::now());
        arrive(&mut r, &mut lane, &[tagged_in_flow(1, MID + 7, 0, 0)], now);
        // 8 is lost; 9 and 10 are of flows with nothing before them.
        let frames = [
            tagged_in_flow(1, MID + 9, 0, 9),
            tagged_in_flow(1, MID + 10, 0, 10),
        ];
        arrive(&mut r, &mut lane, &frames, now);
        assert_eq!(host_gets(&mut lane), [0, 9, 10]);
        assert!(r.waiting());
        assert_eq!(r.due(WAIT, at(now)), Some(now + WAIT));
        // Nothing came for 8 in the wait: given up on, and the turn moves
        // past what went ahead.
        r.release(&mut lane.ring, at(now + WAIT), WAIT, &nobody_knows);
        assert_eq!((r.waiting(), r.next, r.given_up), (false, MID + 11, 1));
        assert_eq!(r.due(WAIT, at(now + WAIT)), None);
        // 8 after all: late.
        arrive(
            &mut r,
            &mut lane,
            &[tagged_in_flow(1, MID + 8, 0, 8)],
            now + WAIT,
        );
        assert_eq!((host_gets(&mut lane), r.late), (vec![8], 1));
    }

    #[test]
    fn a_frame_whose_flow_is_not_known_waits_for_every_number() {
        let (mut r, mut lane, now) = (Reorder::new(), Lane::new(64), Instant::now());
        arrive(&mut r, &mut lane, &[tagged_in_flow(1, MID + 7, 0, 0)], now);
        arrive(&mut r, &mut lane, &[tagged(1, MID + 9, 9)], now);
        // Nor does one go whose flow's previous frame waits.
        arrive(
            &mut r,
            &mut lane,
            &[tagged_in_flow(1, MID + 10, 1, 10)],
            now,
        );
        assert_eq!((host_gets(&mut lane), r.held()), (vec![0], 2));
        arrive(&mut r, &mut lane, &[tagged_in_flow(1, MID + 8, 0, 8)], now);
        assert_eq!(host_gets(&mut lane), [8, 9, 10]);
        assert_eq!(r.ahead, 0);
    }

    #[test]
    fn a_copy_of_a_held_frame_reaches_the_host_once() {
        let (mut r, mut lane, now) = (Reorder::new(), Lane::new(64), Instant::now());
        let (n7, n8, n9) = (
            tagged(1, MID + 7, 0),
            tagged(1, MID + 8, 1),
            tagged(1, MID + 9, 2),
        );
        arrive(&mut r, &mut lane, &[n7], now);
        arrive(&mut r, &mut lane, &[n9.clone(), n9.clone()], now);
        assert_eq!(host_gets(&mut lane), [0]);
        assert_eq!((r.held(), r.copies), (1, 1));
        arrive(&mut r, &mut lane, &[n8, n9.clone()], now);
        assert_eq!(host_gets(&mut lane), [1, 2]);
        assert_eq!((r.held(), r.copies), (0, 2));
        // Once it went, a copy that comes later is dropped too (the frame
        // sent again on another cable, and then the one held up).
        arrive(&mut r, &mut lane, &[n9], now);
        assert_eq!(host_gets(&mut lane), [] as [u8; 0]);
        assert_eq!((r.copies, r.late), (3, 0));
    }

    #[test]
    fn a_number_no_cable_can_bring_is_given_up_at_once() {
        let (mut r, mut lane, t0) = (Reorder::new(), Lane::new(64), Instant::now());
        arrive(&mut r, &mut lane, &[tagged(1, 0, 0)], t0);
        arrive(&mut r, &mut lane, &[tagged(1, 2, 2), tagged(1, 3, 3)], t0);
        assert_eq!(host_gets(&mut lane), [0]);
        // The other cable brought 1's successor, or a report after it: 1
        // is not coming (the frame after it, 2, was stamped 2 ms).
        let other = CableSeen {
            highest: Some(1),
            ..CableSeen::default()
        };
        assert!(!other.past(None, 1, 2, Some(2)));
        assert!(other.past(None, 1, 2, Some(3)));
        assert!(CableSeen {
            highest: Some(4),
            ..CableSeen::default()
        }
        .past(None, 1, 2, None));
        r.release(&mut lane.ring, at(t0), WAIT, &|n, stamp| {
            other.past(None, n, stamp, Some(3))
        });
        assert_eq!(host_gets(&mut lane), [2, 3]);
        assert_eq!(r.given_up, 1);
    }

    #[test]
    fn a_frame_awaited_too_long_is_given_up_and_comes_late() {
        let (mut r, mut lane, t0) = (Reorder::new(), Lane::new(64), Instant::now());
        arrive(&mut r, &mut lane, &[tagged(1, 0, 0)], t0);
        arrive(&mut r, &mut lane, &[tagged(1, 2, 2), tagged(1, 3, 3)], t0);
        assert_eq!(host_gets(&mut lane), [0]);
        // Not yet...
        r.release(&mut lane.ring, at(t0 + WAIT / 2), WAIT, &nobody_knows);
        assert!(host_gets(&mut lane).is_empty());
        // ... now 1 counts as lost, and what came after it goes.
        r.release(&mut lane.ring, at(t0 + WAIT), WAIT, &nobody_knows);
        assert_eq!(host_gets(&mut lane), [2, 3]);
        assert_eq!(r.given_up, 1);
        // 1 turns up after all: it goes at once.
        arrive(&mut r, &mut lane, &[tagged(1, 1, 1)], t0 + WAIT);
        assert_eq!(host_gets(&mut lane), [1]);
        assert_eq!(r.late, 1);
    }

    #[test]
    fn untagged_frames_pass_and_a_new_epoch_starts_afresh() {
        let (mut r, mut lane, now) = (Reorder::new(), Lane::new(64), Instant::now());
        let mut plain = vec![0u8; 60];
        plain[14] = 9;
        let (n5, n7) = (tagged(1, MID + 5, 0), tagged(1, MID + 7, 2));
        arrive(&mut r, &mut lane, &[n5, n7], now);
        arrive(&mut r, &mut lane, &[plain], now);
        assert_eq!(host_gets(&mut lane), [0, 9]);
        // It went before the held frame: out of its turn.
        assert_eq!(r.out_of_turn, 1);
        // The far node restarted: the new numbering goes at once, and what
        // was held of the old one goes too.
        arrive(&mut r, &mut lane, &[tagged(2, 0, 3), tagged(2, 1, 4)], now);
        assert_eq!(host_gets(&mut lane), [3, 4, 2]);
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn a_numbering_starts_at_0_even_if_its_first_frame_is_overtaken() {
        let (mut r, mut lane, now) = (Reorder::new(), Lane::new(64), Instant::now());
        arrive(&mut r, &mut lane, &[tagged(1, 1, 1), tagged(1, 2, 2)], now);
        assert!(host_gets(&mut lane).is_empty());
        arrive(&mut r, &mut lane, &[tagged(1, 0, 0)], now);
        assert_eq!(host_gets(&mut lane), [0, 1, 2]);
        assert_eq!((r.given_up, r.late), (0, 0));
    }

    #[test]
    fn frames_far_ahead_are_not_held() {
        let (mut r, mut lane, now) = (Reorder::new(), Lane::new(64), Instant::now());
        arrive(&mut r, &mut lane, &[tagged(1, 0, 0), tagged(1, 2, 2)], now);
        // Too far ahead to wait for what is missing: it goes at once, what
        // was held goes in order, and what is missing up to a window behind
        // it is given up on.
        let far = WINDOW as u32 + 5;
        arrive(&mut r, &mut lane, &[tagged(1, far, 3)], now);
        assert_eq!(host_gets(&mut lane), [0, 3, 2]);
        // 1, then 3 to 5 (2 was held); the far one went before 2.
        assert_eq!((r.given_up, r.out_of_turn), (4, 1));
        arrive(&mut r, &mut lane, &[tagged(1, far + 1, 4)], now);
        assert_eq!(host_gets(&mut lane), [4]);
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn stamps_and_numbers_wrap() {
        assert!(after16(2, 65_535) && !after16(65_535, 2));
        assert!(after32(1, u32::MAX) && !after32(u32::MAX, 1));
    }

    #[test]
    fn frames_that_came_the_quick_way_wait_out_the_floor() {
        let (mut r, mut lane, t0) = (Reorder::new(), Lane::new(64), Instant::now());
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // The slow path's own lag is 20 ms: TCP segments stamped 0 and 1
        // came the quick way at 5 ms (lags 5 and 4): they wait until 20
        // and 21 ms.
        let floor = |now, ms| Moment {
            now,
            ms,
            floor: Some(20),
        };
        let mut cable = CableSeen::default();
        for f in [tcp_data(0, 0), tcp_data(1, 1)] {
            assert!(lane.ring.push_copy(&f));
        }
        r.take(&mut lane, 2, floor(ms(5), 5), &mut cable);
        assert_eq!(cable.base_lag(), Some(4));
        assert!(tcp_host_gets(&mut lane).is_empty());
        assert_eq!(r.due(WAIT, floor(ms(5), 5)), Some(ms(20)));
        r.release(&mut lane.ring, floor(ms(19), 19), WAIT, &nobody_knows);
        assert!(tcp_host_gets(&mut lane).is_empty());
        r.release(&mut lane.ring, floor(ms(20), 20), WAIT, &nobody_knows);
        assert_eq!(tcp_host_gets(&mut lane), [0]);
        assert_eq!(r.due(WAIT, floor(ms(20), 20)), Some(ms(21)));
        // Frame 2 came the slow way (lag 20): behind 1, which it finds
        // due at the same time, it goes at once.
        assert!(lane.ring.push_copy(&tcp_data(2, 2)));
        r.take(&mut lane, 1, floor(ms(22), 22), &mut cable);
        r.release(&mut lane.ring, floor(ms(22), 22), WAIT, &nobody_knows);
        assert_eq!(tcp_host_gets(&mut lane), [1, 2]);
        // Anything but a TCP segment with data, SYN or FIN (here a frame
        // that is not IP) is not held for the floor: it came the quick way
        // (stamped 22 ms, lag 0) and goes.
        assert!(lane.ring.push_copy(&tagged(1, 3, 3)));
        r.take(&mut lane, 1, floor(ms(22), 22), &mut cable);
        assert_eq!(host_gets(&mut lane), [3]);
        // Without a floor, an in-order frame is never held.
        arrive(&mut r, &mut lane, &[tcp_data(4, 4)], ms(22));
        assert_eq!(tcp_host_gets(&mut lane), [4]);
    }

    /// An IPv4 TCP segment of 6 data bytes, the last `id`, tagged `seq` in
    /// numbering 1 and stamped `seq` ms: 60 bytes untagged.
    fn tcp_data(seq: u32, id: u8) -> Vec<u8> {
        let mut frame = [0u8; 60];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        frame[16..18].copy_from_slice(&46u16.to_be_bytes());
        frame[14 + 9] = 6;
        frame[14 + 20 + 12] = 5 << 4;
        frame[14 + 20 + 13] = 0x18;
        frame[59] = id;
        let mut tag = [0u8; SEQ_TAG_LEN];
        let stamp = seq as u16;
        seq_tag::emit(
            &mut tag,
            &TagFields {
                epoch: 1,
                seq,
                stamp,
                back: BACK_UNKNOWN,
            },
        );
        [&frame[..TAG_AT], &tag[..], &frame[TAG_AT..]].concat()
    }

    /// The ids of the TCP segments of [`tcp_data`] the host gets.
    fn tcp_host_gets(lane: &mut Lane) -> Vec<u8> {
        let ring = &mut lane.ring;
        let ids = ring.queued().iter().map(|&s| ring.frame(s)[59]).collect();
        ring.consume_front(ring.queued().len());
        ids
    }

    #[test]
    fn a_cable_lag_is_the_least_of_the_last_periods() {
        let t0 = Instant::now();
        let mut c = CableSeen::default();
        c.note_lag(100, 130, t0);
        c.note_lag(200, 220, t0 + Duration::from_millis(10));
        assert_eq!(c.base_lag(), Some(20));
        // Queued a while: the least of the period before still counts...
        c.note_lag(300, 390, t0 + LAG_PERIOD);
        assert_eq!(c.base_lag(), Some(20));
        // ... until a whole period has gone by without it.
        c.note_lag(400, 480, t0 + LAG_PERIOD * 2);
        assert_eq!(c.base_lag(), Some(80));
        // Clocks that wrap: a lag is a difference mod 2^16.
        c.note_lag(65_530, 10, t0 + LAG_PERIOD * 2);
        assert_eq!(c.base_lag(), Some(16));
    }

    #[test]
    fn the_floor_is_the_slowest_lag_up_to_a_bound() {
        assert_eq!(lag_floor([].into_iter()), None);
        assert_eq!(lag_floor([40, 10].into_iter()), Some(40));
        // Lags carry the clocks' offset and wrap.
        assert_eq!(lag_floor([65_530, 14].into_iter()), Some(14));
        assert_eq!(
            lag_floor([5, 5 + FLOOR_MAX_MS + 50].into_iter()),
            Some(5 + FLOOR_MAX_MS)
        );
    }

    #[test]
    fn what_a_cable_brought_of_an_old_numbering_says_nothing_of_the_new() {
        let (mut r, mut lane, now) = (Reorder::new(), Lane::new(64), Instant::now());
        let mut slow = CableSeen::default();
        assert!(lane.ring.push_copy(&tagged(1, 100, 0)));
        r.take(&mut lane, 1, at(now), &mut slow);
        host_gets(&mut lane);
        assert!(slow.past(Some(1), 50, 0, None));
        // The far node restarted (numbering 2, from 0), its first frames
        // came by another cable: the slow one's 100 was of numbering 1.
        assert!(!slow.past(Some(2), 5, 0, None));
        // Once it brings numbering 2 itself, it starts afresh.
        assert!(lane.ring.push_copy(&tagged(2, 3, 1)));
        r.take(&mut lane, 1, at(now), &mut slow);
        assert_eq!(slow.highest, Some(3));
        assert_eq!(r.epoch(), Some(2));
    }

    #[test]
    fn what_waited_behind_a_late_frame_goes_at_a_pace() {
        let (mut r, mut lane, t0) = (Reorder::new(), Lane::new(256), Instant::now());
        arrive(&mut r, &mut lane, &[tagged(1, 0, 0)], t0);
        let behind: Vec<_> = (2..=101).map(|i| tagged(1, i, i as u8)).collect();
        arrive(&mut r, &mut lane, &behind, t0);
        assert_eq!(host_gets(&mut lane), [0]);
        // 1 comes: it and what waited behind it go, a burst at a time.
        arrive(&mut r, &mut lane, &[tagged(1, 1, 1)], t0);
        assert_eq!(
            host_gets(&mut lane),
            (1..=pace::BURST as u8).collect::<Vec<_>>()
        );
        assert_eq!(r.due(WAIT, at(t0)), Some(t0 + pace::RETRY));
        // Frames came in no faster than the least pace (10 000 a second):
        // 10 ms later, 40 more (the burst at that pace).
        let later = t0 + Duration::from_millis(10);
        r.release(&mut lane.ring, at(later), WAIT, &nobody_knows);
        assert_eq!(host_gets(&mut lane).len(), 40);
        let later = later + Duration::from_millis(10);
        r.release(&mut lane.ring, at(later), WAIT, &nobody_knows);
        assert_eq!(host_gets(&mut lane).len(), 101 - 32 - 40);
        assert_eq!((r.held(), r.due(WAIT, at(later))), (0, None));
    }
}
