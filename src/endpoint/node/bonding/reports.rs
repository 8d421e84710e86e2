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
use super::path::{self as path_state, StampClock};
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
    }
}

/// Sends the path reports that are due (on cables whose far end
/// answers), one datagram each, never waiting: one that finds the socket
/// full is skipped (the next follows soon).
pub(super) fn send_due(ports: &PortTable, cables: &mut Cables, clock: &StampClock, now: Instant) {
    for &id in ports.active() {
        let (Some(port), Some(cable)) = (ports.get(id), cables.get_mut(id)) else {
            continue;
        };
        if cable.path.report_due().is_none_or(|t| t > now) {
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
    }
}
