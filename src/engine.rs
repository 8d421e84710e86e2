//! The one loop: one `mio::Poll`, two endpoints joined by two lanes.
//!
//! Events only set readiness flags or do control work; then `pump` moves
//! frames until nothing moves: each endpoint reads what the other side's
//! lane has room for, and delivers what its own lane holds. A lane that is
//! full stops reading, which is how backpressure travels.

use std::io;
use std::time::{Duration, Instant};

use log::{debug, info, log, Level};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::endpoint::{split_token, ChildFailure, Endpoint, Ready, Stop};
use crate::lane::Lane;
use crate::signals::{SignalFd, ENDING};
use crate::stats::StatsTable;

pub use crate::lane::LANE_SLOTS;
const SIGNAL_TOKEN: Token = Token(usize::MAX);
const PUMP_ROUNDS: usize = 32;
const TICK: Duration = Duration::from_secs(1);
/// After an endpoint ends by itself, how long the loop keeps delivering
/// what it had already read.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// How the loop ended.
#[derive(Debug)]
pub enum Outcome {
    Stopped(Stop),
    Signal(i32),
}

pub struct Engine {
    poll: Poll,
    sides: [Box<dyn Endpoint>; 2],
    /// `lanes[i]` carries frames read by side `i` to side `1 - i`.
    lanes: [Lane; 2],
    signals: SignalFd,
    stats_every: Option<Duration>,
}

impl Engine {
    pub fn new(
        a: Box<dyn Endpoint>,
        b: Box<dyn Endpoint>,
        stats_every: Option<Duration>,
    ) -> io::Result<Engine> {
        let poll = Poll::new()?;
        let signals = SignalFd::new()?;
        poll.registry().register(
            &mut SourceFd(&signals.raw()),
            SIGNAL_TOKEN,
            Interest::READABLE,
        )?;
        let mut sides = [a, b];
        let labels = [sides[0].label(), sides[1].label()];
        sides[0].joined_to(&labels[1]);
        sides[1].joined_to(&labels[0]);
        for (i, s) in sides.iter_mut().enumerate() {
            s.register(poll.registry(), i)?;
        }
        // `lanes[i]` is as big as side `1 - i` asks.
        let lanes = [
            Lane::new(sides[1].inbound_slots()),
            Lane::new(sides[0].inbound_slots()),
        ];
        Ok(Engine {
            poll,
            sides,
            lanes,
            signals,
            stats_every,
        })
    }

    /// Runs until an endpoint ends or an ending signal arrives.
    pub fn run(&mut self) -> io::Result<Outcome> {
        let mut events = Events::with_capacity(256);
        let mut next_tick = Instant::now() + TICK;
        let mut next_stats = self.stats_every.map(|d| Instant::now() + d);
        let mut draining: Option<(Stop, Instant)> = None;
        loop {
            let more = match self.pump() {
                Ok(more) => more,
                Err(stop) => return Ok(Outcome::Stopped(stop)),
            };
            if let Some((stop, since)) = &draining {
                let idle = self.lanes.iter().all(|l| l.ring.is_empty())
                    && !self.sides.iter().any(|s| s.pending_output());
                if idle || since.elapsed() > DRAIN_GRACE {
                    return Ok(Outcome::Stopped(stop.clone()));
                }
            } else if let Some(stop) = self.sides.iter().find_map(|s| s.finished()) {
                let (Stop::Ended(why) | Stop::Failed(why)) = &stop;
                debug!("ending ({why}); delivering what was read");
                draining = Some((stop, Instant::now()));
                continue;
            }
            for side in self.sides.iter_mut() {
                side.sync_interest(self.poll.registry());
            }
            let now = Instant::now();
            let mut timeout = next_tick.saturating_duration_since(now);
            if let Some(t) = next_stats {
                timeout = timeout.min(t.saturating_duration_since(now));
            }
            if draining.is_some() {
                timeout = timeout.min(Duration::from_millis(20));
            }
            if let Some(soon) = self.sides.iter().filter_map(|s| s.wake_in()).min() {
                timeout = timeout.min(soon);
            }
            if more {
                timeout = Duration::ZERO;
            }
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                if ev.token() == SIGNAL_TOKEN {
                    if let Some(sig) = self.take_signals() {
                        return Ok(Outcome::Signal(sig));
                    }
                    continue;
                }
                let (side, local) = split_token(ev.token());
                let registry = self.poll.registry();
                if let Err(stop) = self.sides[side].on_event(registry, local, Ready::from(ev)) {
                    return Ok(Outcome::Stopped(stop));
                }
            }
            let now = Instant::now();
            if now >= next_tick {
                next_tick = now + TICK;
                self.sides.iter_mut().for_each(|s| s.tick());
            }
            if let (Some(at), Some(every)) = (next_stats, self.stats_every) {
                if now >= at {
                    next_stats = Some(now + every);
                    self.log_stats(Level::Info);
                }
            }
        }
    }

    /// Moves frames both ways until nothing moves, or for at most
    /// `PUMP_ROUNDS` rounds so that events (new ports, signals) are not
    /// starved under load; true when work is left.
    fn pump(&mut self) -> Result<bool, Stop> {
        for _ in 0..PUMP_ROUNDS {
            let mut moved = 0;
            for from in 0..2 {
                let (first, second) = self.sides.split_at_mut(1);
                let (src, dst) = if from == 0 {
                    (&mut first[0], &mut second[0])
                } else {
                    (&mut second[0], &mut first[0])
                };
                let lane = &mut self.lanes[from];
                if !lane.ring.is_empty() || dst.pending_output() {
                    moved += dst.deliver(lane)?;
                }
                if lane.ring.free_slots() > 0 {
                    moved += src.fill(lane)?;
                }
                if !lane.ring.is_empty() {
                    moved += dst.deliver(lane)?;
                }
            }
            if moved == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Handles pending signals; returns an ending one.
    fn take_signals(&mut self) -> Option<i32> {
        while let Some(sig) = self.signals.next() {
            match sig {
                libc::SIGCHLD => self.sides.iter_mut().for_each(|s| s.on_child_exit()),
                libc::SIGUSR1 => self.log_stats(Level::Info),
                s if ENDING.contains(&s) => {
                    info!("signal {s}: stopping");
                    return Some(s);
                }
                _ => {}
            }
        }
        None
    }

    /// After the loop: every side's child ended and waited for; the first
    /// failure of one (see [`Endpoint::reap`]).
    pub fn reap(&mut self) -> Option<ChildFailure> {
        let mut first = None;
        for side in self.sides.iter_mut() {
            if let Some(f) = side.reap() {
                first.get_or_insert(f);
            }
        }
        first
    }

    pub fn log_stats(&self, level: Level) {
        let mut table = StatsTable::new();
        for s in &self.sides {
            s.report(&mut table);
        }
        let lost = crate::stats::loss_line(table.rows());
        log!(target: crate::logger::STATS, level, "link counters ({lost})\n{}", table.text());
    }
}
