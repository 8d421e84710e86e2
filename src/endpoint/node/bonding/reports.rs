//! The path reports a bonding node that learns paths exchanges on each
//! cable ([`crate::wire::path_report`]): what one that came tells the
//! cable's [`PathState`](super::path::PathState) and what it brought, and
//! sending them: a hello when a cable joins, then reports while its far
//! end answers.
//!
//! Why only then: a send to a cable whose client has closed its socket
//! makes the kernel drop whatever that cable sent and the node has not
//! read yet (docs/guarantees.md, "A cable that leaves"). A hello goes
//! before the client knows its socket's name, when nothing can be waiting
//! in it; a cable that never answers (a C peer, any other client) is sent
//! nothing more of the node's own accord.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Instant;

use super::cable::{Cable, Cables};
use super::path::{self as path_state, StampClock, NO_ECHO};
use crate::endpoint::node::ports::{peer_gone, Port, PortTable};
use crate::wire::path_report::{self, PathReport, ReportFields, PATH_REPORT_LEN};

/// The hello of a cable that is joining, on its socket `data`: the far
/// end, if a bonding node of ours, answers it. An error only when the
/// client is gone (a full socket loses the hello, as it would a frame).
pub(super) fn hello(data: BorrowedFd<'_>, clock: &StampClock, now: Instant) -> io::Result<()> {
    match send(data.as_raw_fd(), &path_state::hello(now, clock)) {
        Err(e) if peer_gone(&e) => Err(e),
        _ => Ok(()),
    }
}

fn send(fd: RawFd, fields: &ReportFields) -> io::Result<usize> {
    let mut buf = [0u8; PATH_REPORT_LEN];
    path_report::emit(&mut buf, fields);
    crate::sys::send(fd, &buf)
}

/// A message came on `port`, whose cable is `cable`: if it is a path
/// report, the cable's path and lag learn from it.
pub(super) fn take(msg: &[u8], port: &Port, cable: &mut Cable, clock: &StampClock, now: Instant) {
    if let Ok(report) = PathReport::new_checked(msg) {
        cable
            .path
            .on_report(&report, now, clock, port.stats.bytes_in);
        cable.seen.note_lag(report.stamp(), clock.ms(now), now);
        if report.hold() != NO_ECHO {
            cable.in_flight.heard(report.echo());
        }
        cable.heard_since_report = true;
    }
}

/// Frames in or out on a cable after which a report goes before its
/// interval is up, and after which one that came is answered at once: the
/// far node learns soon how far its cables have come, and its numbering is
/// held back no longer than it must be (`InFlight`).
const REPORT_AFTER_FRAMES: u64 = 128;
const ANSWER_AFTER_FRAMES: u64 = 16;

/// Sends the path reports that are due (on cables whose far end
/// answers), one datagram each, never waiting: one that finds the socket
/// full is skipped (the next follows soon).
pub(super) fn send_due(ports: &PortTable, cables: &mut Cables, clock: &StampClock, now: Instant) {
    for &id in ports.active() {
        let (Some(port), Some(cable)) = (ports.get(id), cables.get_mut(id)) else {
            continue;
        };
        let moved = port.stats.frames_in + port.stats.frames_out;
        let since = moved.wrapping_sub(cable.moved_at_report);
        let busy = since >= REPORT_AFTER_FRAMES
            || (cable.heard_since_report && since >= ANSWER_AFTER_FRAMES);
        // None due: the far end never answered (a cable that is not ours
        // gets nothing but its hello). A report behind frames pinned to the
        // cable would tell the far node that it has nothing older to bring.
        let due = cable.path.report_due().is_some_and(|t| t <= now || busy);
        if !due || !cable.pinned().is_empty() {
            continue;
        }
        let Some(fd) = port.data.as_ref().map(|d| d.as_raw_fd()) else {
            continue;
        };
        // Unread frames first (what a far end that has just left sent
        // would be dropped by this send): the report waits for the next
        // pass. This narrows the window, it does not close it.
        if crate::sys::has_input(fd) {
            cable.path.skip_report(now);
            continue;
        }
        let _ = send(fd, &cable.path.report(now, clock));
        cable.moved_at_report = moved;
        cable.heard_since_report = false;
    }
}
