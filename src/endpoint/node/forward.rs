//! Where frames go inside a node. Host frames arrive queued in a lane and
//! leave in batches, one `sendmmsg` per port; a port that cannot take more
//! is marked unwritable until the poll says otherwise.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use super::mac_table::{Dest, MacTable};
use super::ports::{Port, PortId, PortTable};
use crate::batch::BATCH;
use crate::lane::Lane;
use crate::sys;
use crate::wire::EthernetFrame;

/// How long a hub or multi port may hold up the others by being full
/// before it starts losing frames.
pub const LAGGARD_GRACE: Duration = Duration::from_millis(20);

/// A send error that means the peer is gone, not that it is busy.
fn peer_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNREFUSED)
            | Some(libc::ENOTCONN)
            | Some(libc::EPIPE)
            | Some(libc::ECONNRESET)
    )
}

fn data_fd(ports: &PortTable, id: PortId) -> Option<RawFd> {
    ports.get(id)?.data.as_ref().map(|d| d.as_raw_fd())
}

/// Sends one frame to one port, best effort (dropped when full).
pub fn send_one(ports: &mut PortTable, id: PortId, frame: &[u8], dead: &mut Vec<PortId>) {
    let Some(fd) = data_fd(ports, id) else { return };
    let port = ports.get_mut(id).expect("port with a socket");
    match sys::send(fd, frame) {
        Ok(_) => port.stats.count_out(frame.len()),
        Err(e) if peer_gone(&e) => dead.push(id),
        Err(_) => port.stats.drop_full += 1,
    }
}

/// Sends one frame to every connected port but `except`.
pub fn flood_one(
    ports: &mut PortTable,
    except: Option<PortId>,
    frame: &[u8],
    dead: &mut Vec<PortId>,
) {
    for i in 0..ports.active().len() {
        let id = ports.active()[i];
        if Some(id) != except {
            send_one(ports, id, frame, dead);
        }
    }
}

/// Hub: the `count` frames just read from port `from` (the newest queued)
/// also go to every other port, best effort.
pub fn hub_ports(
    ports: &mut PortTable,
    lane: &mut Lane,
    from: PortId,
    count: usize,
    dead: &mut Vec<PortId>,
) {
    let Lane { ring, io } = lane;
    let queued = ring.queued();
    let batch = &queued[queued.len() - count..];
    for i in 0..ports.active().len() {
        let id = ports.active()[i];
        if id == from {
            continue;
        }
        let Some(fd) = data_fd(ports, id) else {
            continue;
        };
        let port = ports.get_mut(id).expect("active port");
        match io.send(fd, ring, batch, &mut port.stats) {
            Ok(sent) => port.stats.drop_full += (batch.len() - sent) as u64,
            Err(e) if peer_gone(&e) => dead.push(id),
            Err(_) => port.stats.drop_full += batch.len() as u64,
        }
    }
}

/// Hub and multi: every host frame to every port. Each port keeps its own
/// place in the lane (`cursor`), so a port that is briefly full catches up
/// later instead of losing frames; a frame is finished once every port has
/// it. When the lane is full and some port has everything while another
/// has been unable to take anything for [`LAGGARD_GRACE`], that laggard
/// gives up the oldest batch (counted as dropped): a stalled cable costs a
/// lane of buffering and a moment, never the others' traffic. Until then,
/// and whenever no port can take anything, frames wait (backpressure).
/// Returns the frames finished and whether it is waiting out a laggard's
/// grace (the caller should look again soon).
pub fn to_every_port(
    ports: &mut PortTable,
    lane: &mut Lane,
    dead: &mut Vec<PortId>,
) -> (usize, bool) {
    let mut done = 0;
    let now = Instant::now();
    loop {
        let Lane { ring, io } = &mut *lane;
        let queued = ring.queued();
        let mut progress = false;
        for i in 0..ports.active().len() {
            let id = ports.active()[i];
            let Some(fd) = data_fd(ports, id) else {
                continue;
            };
            let port = ports.get_mut(id).expect("active port");
            if port.cursor >= queued.len() || !port.writable {
                continue;
            }
            let batch = &queued[port.cursor..queued.len().min(port.cursor + BATCH)];
            match io.send(fd, ring, batch, &mut port.stats) {
                Ok(sent) => {
                    port.cursor += sent;
                    progress |= sent > 0;
                    if sent < batch.len() {
                        port.mark_full(now);
                    }
                }
                Err(e) if peer_gone(&e) => {
                    dead.push(id);
                    port.cursor = queued.len();
                }
                Err(_) => port.mark_full(now),
            }
        }
        let cursors = || {
            ports
                .active()
                .iter()
                .filter_map(|&id| ports.get(id))
                .map(|p| p.cursor)
        };
        let mut front = cursors().min().unwrap_or(queued.len());
        let someone_waits = cursors().any(|c| c == queued.len());
        if front == 0 && !progress && ring.free_slots() == 0 && someone_waits {
            let laggards_stalled = ports
                .active()
                .iter()
                .filter_map(|&id| ports.get(id))
                .filter(|p| p.cursor == 0)
                .all(|p| {
                    p.full_since
                        .is_some_and(|t| now.duration_since(t) >= LAGGARD_GRACE)
                });
            if !laggards_stalled {
                return (done, true);
            }
            front = queued.len().min(BATCH);
            for i in 0..ports.active().len() {
                let port = ports.nth_active_mut(i);
                if port.cursor < front {
                    port.stats.drop_full += (front - port.cursor) as u64;
                    port.cursor = front;
                }
            }
        }
        if front > 0 {
            ring.consume_front(front);
            for i in 0..ports.active().len() {
                ports.nth_active_mut(i).cursor -= front;
            }
            done += front;
            progress = true;
        }
        if !progress {
            break;
        }
    }
    (done, false)
}

fn clear_outboxes(ports: &mut PortTable) {
    for i in 0..ports.active().len() {
        ports.nth_active_mut(i).outbox.clear();
    }
}

/// Picks the port (an index into the active list) for the next frame among
/// those `eligible` accepts. Unweighted: the next one after `rr`, which is
/// vdeplug4's order. Weighted (`weights=`): smooth weighted round robin,
/// where every eligible port gains its weight in credit and the richest
/// one is picked and pays the sum, so 3:1 gives A A B A, A A B A, ...
fn next_port(
    ports: &mut PortTable,
    rr: &mut usize,
    weighted: bool,
    eligible: impl Fn(&Port) -> bool,
) -> Option<usize> {
    let n = ports.active().len();
    if !weighted {
        let at = (1..=n)
            .map(|step| (*rr + step) % n)
            .find(|&at| ports.get(ports.active()[at]).is_some_and(&eligible))?;
        *rr = at;
        return Some(at);
    }
    let mut best: Option<(usize, i64)> = None;
    let mut total = 0i64;
    for at in 0..n {
        let port = ports.nth_active_mut(at);
        if !eligible(port) {
            continue;
        }
        port.credit += i64::from(port.weight);
        total += i64::from(port.weight);
        if best.is_none_or(|(_, c)| port.credit > c) {
            best = Some((at, port.credit));
        }
    }
    let (at, _) = best?;
    ports.nth_active_mut(at).credit -= total;
    Some(at)
}

/// Bonding, `policy=rr`: vdeplug4's round robin. Each frame goes to the
/// next port in turn whether or not it can take it; what it cannot take is
/// dropped. Every frame is finished.
pub fn round_robin(
    ports: &mut PortTable,
    rr: &mut usize,
    weighted: bool,
    lane: &mut Lane,
    dead: &mut Vec<PortId>,
) -> usize {
    let mut done = 0;
    let Lane { ring, io } = lane;
    while !ring.is_empty() {
        let n = ports.active().len();
        if n == 0 {
            break;
        }
        clear_outboxes(ports);
        let queued = ring.queued();
        let batch = &queued[..queued.len().min(BATCH)];
        for &slot in batch {
            let at = next_port(ports, rr, weighted, |_| true).expect("ports to choose from");
            let id = ports.active()[at];
            ports.get_mut(id).expect("active port").outbox.push(slot);
        }
        for i in 0..n {
            let id = ports.active()[i];
            let Some(fd) = data_fd(ports, id) else {
                continue;
            };
            let port = ports.get_mut(id).expect("active port");
            if port.outbox.is_empty() {
                continue;
            }
            match io.send(fd, ring, &port.outbox, &mut port.stats) {
                Ok(sent) => port.stats.drop_full += (port.outbox.len() - sent) as u64,
                Err(e) if peer_gone(&e) => dead.push(id),
                Err(_) => port.stats.drop_full += port.outbox.len() as u64,
            }
        }
        let n = batch.len();
        done += ring.consume_front(n);
    }
    done
}

/// Bonding, `policy=adaptive` (the default): round robin over the ports
/// that can take a frame now. A port that fills up mid-batch is skipped and
/// its frames go to the others; when no port can take any, the frames stay
/// queued and the host is not read until a port drains.
pub fn adaptive(
    ports: &mut PortTable,
    rr: &mut usize,
    weighted: bool,
    lane: &mut Lane,
    dead: &mut Vec<PortId>,
) -> usize {
    let mut done = 0;
    let Lane { ring, io } = lane;
    loop {
        let n = ports.active().len();
        if ring.is_empty() || n == 0 {
            break;
        }
        clear_outboxes(ports);
        let queued = ring.queued();
        let batch = &queued[..queued.len().min(BATCH)];
        let mut assigned = 0;
        for &slot in batch {
            let next = next_port(ports, rr, weighted, |p| p.writable && p.data.is_some());
            let Some(at) = next else { break };
            ports.nth_active_mut(at).outbox.push(slot);
            assigned += 1;
        }
        if assigned == 0 {
            break;
        }
        let mut sent_total = 0;
        for i in 0..n {
            let id = ports.active()[i];
            let Some(fd) = data_fd(ports, id) else {
                continue;
            };
            let port = ports.get_mut(id).expect("active port");
            if port.outbox.is_empty() {
                continue;
            }
            let sent = match io.send(fd, ring, &port.outbox, &mut port.stats) {
                Ok(sent) => sent,
                Err(e) => {
                    if peer_gone(&e) {
                        dead.push(id);
                    }
                    0
                }
            };
            if sent < port.outbox.len() {
                port.writable = false;
                port.stats.skipped += (port.outbox.len() - sent) as u64;
            }
            for &slot in &port.outbox[..sent] {
                ring.mark_done(slot);
            }
            sent_total += sent;
        }
        done += ring.sweep();
        if sent_total == 0 {
            // Every port that looked free was full, or went away.
            break;
        }
    }
    done
}

/// Switch, from the host: learn the host's source address, then send to
/// the one port that has the destination, or flood when unknown.
pub fn switch_from_host(
    ports: &mut PortTable,
    mac: &mut MacTable,
    lane: &mut Lane,
    dead: &mut Vec<PortId>,
) -> usize {
    let now = Instant::now();
    let ring = &mut lane.ring;
    let n = ring.queued().len();
    for i in 0..n {
        let slot = ring.queued()[i];
        let frame = ring.frame(slot);
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            continue;
        };
        let vlan = eth.vlan();
        mac.learn(eth.src(), vlan, Dest::Host, now);
        match mac.lookup(eth.dst(), vlan, now) {
            Some(Dest::Port(to)) => send_one(ports, to, frame, dead),
            Some(Dest::Host) => {}
            None => flood_one(ports, None, frame, dead),
        }
    }
    ring.consume_front(n)
}
