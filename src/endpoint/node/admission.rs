//! Ports joining and leaving a node: accepting control connections,
//! honouring requests, and retiring or removing ports.

use std::io;
use std::os::fd::AsRawFd;

use log::{debug, info, warn};
use mio::{Interest, Registry};

use super::control::{answer_request, Accepted, Refused};
use super::ports::{Port, PortId};
use super::{ctl_token, data_token, NetNode, MAX_PORTS};
use crate::endpoint::{register_fd, token};
use crate::stats::LinkStats;
use crate::sys::{self, UnlinkOnDrop};
use crate::wire::REQUEST_HEADER_LEN;

impl NetNode {
    pub(super) fn accept_all(&mut self, registry: &Registry) {
        loop {
            let fd = match self.dir.accept() {
                Ok(Some(Accepted::Connection(fd))) => fd,
                Ok(Some(Accepted::TurnedAway)) => {
                    self.turned_away();
                    continue;
                }
                Ok(None) => return,
                Err(e) => {
                    warn!("{}: accept: {e}", self.label);
                    return;
                }
            };
            if self.ports.len() >= MAX_PORTS {
                warn!(
                    "{}: {} ports already, refusing another",
                    self.label, MAX_PORTS
                );
                continue;
            }
            let raw = fd.as_raw_fd();
            let id = self.ports.insert(Port::pending(fd));
            if let Err(e) = register_fd(
                registry,
                raw,
                token(self.side, ctl_token(id)),
                Interest::READABLE,
            ) {
                warn!("{}: {e}", self.label);
                self.ports.remove(id);
            }
        }
    }

    /// Reads the request of a pending port, and honours it once whole.
    pub(super) fn read_request(&mut self, registry: &Registry, id: PortId) {
        let Some(port) = self.ports.get_mut(id) else {
            return;
        };
        loop {
            let at = port.request_len;
            if at == port.request.len() {
                break;
            }
            match sys::read(port.ctl.as_raw_fd(), &mut port.request[at..]) {
                Ok(0) => {
                    debug!("{}: a client left before its request", self.label);
                    self.remove_port(id);
                    return;
                }
                Ok(n) => port.request_len += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.remove_port(id);
                    return;
                }
            }
        }
        if port.request_len < REQUEST_HEADER_LEN {
            return;
        }
        let kind = &mut self.kind;
        let request = &port.request[..port.request_len];
        match answer_request(&self.dir, &port.ctl, request, |data| kind.greet(data)) {
            Ok(new) => {
                let raw = new.data.as_raw_fd();
                port.data = Some(new.data);
                port.data_path = Some(UnlinkOnDrop(new.path));
                port.description = new.description;
                port.readable = true;
                port.writable = true;
                port.stats = LinkStats::default();
                let interest = Interest::READABLE;
                if let Err(e) =
                    register_fd(registry, raw, token(self.side, data_token(id)), interest)
                {
                    warn!("{}: {e}", self.label);
                    self.remove_port(id);
                    return;
                }
                info!("{}: port {} joined ({})", self.label, id, port.description);
                self.ports.activate(id);
                self.kind.port_joined(id);
            }
            Err(Refused::Malformed) => {
                warn!(
                    "{}: dropped a connection with a malformed request",
                    self.label
                );
                self.remove_port(id);
            }
            Err(Refused::Unreachable(e)) => {
                warn!(
                    "{}: the client's socket cannot be reached ({e}); no port made",
                    self.label
                );
                self.remove_port(id);
            }
            Err(Refused::NotTheirs { peer, owner }) => {
                warn!(
                    "{}: refused a client of uid {peer} naming a socket of uid {owner}; no port made",
                    self.label
                );
                self.remove_port(id);
            }
            Err(Refused::Io(e))
                if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) =>
            {
                self.remove_port(id);
                self.turned_away();
            }
            Err(Refused::Io(e)) => {
                warn!("{}: cannot make a port: {e}", self.label);
                self.remove_port(id);
            }
        }
    }

    /// A cable refused for want of descriptors: counted, and logged at
    /// most once a second however many knock.
    fn turned_away(&mut self) {
        self.turned_away += 1;
        if self.out_of_fds_log.ready() {
            warn!(
                "{}: out of descriptors, refusing new cables ({} so far); the others go on",
                self.label, self.turned_away
            );
        }
    }

    /// Drains the control stream of a connected port; EOF ends the port.
    pub(super) fn read_control(&mut self, id: PortId, closed: bool) {
        let Some(port) = self.ports.get_mut(id) else {
            return;
        };
        let mut scratch = [0u8; 256];
        let why = loop {
            match sys::read(port.ctl.as_raw_fd(), &mut scratch) {
                Ok(0) => break "closed its control connection".to_string(),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !closed => return,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    break "its control connection hung up".to_string()
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break format!("control connection: {e}"),
            }
        };
        info!("{}: port {} left ({why})", self.label, id);
        self.retire(id);
    }

    /// Takes a port whose cable left out of the forwarding; what it sent
    /// before leaving is still read (see `leaving`).
    pub(super) fn retire(&mut self, id: PortId) {
        if self.leaving.contains(&id) {
            return;
        }
        match self.ports.get_mut(id) {
            Some(port) if port.is_connected() => {
                port.readable = true;
                self.ports.deactivate(id);
                self.leaving.push(id);
            }
            _ => self.remove_port(id),
        }
    }

    pub(super) fn remove_port(&mut self, id: PortId) {
        self.leaving.retain(|&l| l != id);
        if let Some(port) = self.ports.remove(id) {
            if port.is_connected() {
                debug!("{}: port {id}: {:?}", self.label, port.stats);
            }
        }
        self.kind.port_left(id);
        // A client that went away in its handshake may have left its socket.
        self.dir.sweep_dead_clients();
    }

    pub(super) fn remove_gone(&mut self) {
        while let Some(id) = self.ports.next_gone() {
            info!("{}: port {} is gone", self.label, id);
            self.remove_port(id);
        }
    }
}
