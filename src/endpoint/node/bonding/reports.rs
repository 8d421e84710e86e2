//! The path reports a bonding node that learns paths exchanges on each
//! cable ([`crate::wire::path_report`]): what one that came tells the
//! cable's [`PathState`](super::path::PathState) and what it brought, and
//! sending those that are due.

use std::os::fd::AsRawFd;
use std::time::Instant;

use super::cable::{Cable, Cables};
use super::path::{StampClock, NO_ECHO};
use crate::endpoint::node::ports::{Port, PortTable};
use crate::wire::path_report::{self, PathReport, PATH_REPORT_LEN};

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

/// Sends the path reports that are due, one datagram each, never waiting:
/// one that finds the socket full is skipped (the next follows soon).
pub(super) fn send_due(ports: &PortTable, cables: &mut Cables, clock: &StampClock, now: Instant) {
    for &id in ports.active() {
        let (Some(port), Some(cable)) = (ports.get(id), cables.get_mut(id)) else {
            continue;
        };
        let moved = port.stats.frames_in + port.stats.frames_out;
        let since = moved.wrapping_sub(cable.moved_at_report);
        let busy = cable.path.answered()
            && (since >= REPORT_AFTER_FRAMES
                || (cable.heard_since_report && since >= ANSWER_AFTER_FRAMES));
        // A report behind frames pinned to the cable would tell the far
        // node that the cable has nothing older to bring.
        if (cable.path.report_due().is_some_and(|t| t > now) && !busy) || !cable.pinned().is_empty()
        {
            continue;
        }
        let Some(fd) = port.data.as_ref().map(|d| d.as_raw_fd()) else {
            continue;
        };
        // Sending to a peer that has gone makes the kernel drop what the
        // port's socket holds, the frames the peer sent before it left:
        // those are read first, the report waits for the next pass.
        if crate::sys::has_input(fd) {
            cable.path.skip_report(now);
            continue;
        }
        let mut buf = [0u8; PATH_REPORT_LEN];
        path_report::emit(&mut buf, &cable.path.report(now, clock));
        let _ = crate::sys::send(fd, &buf);
        cable.moved_at_report = moved;
        cable.heard_since_report = false;
    }
}
