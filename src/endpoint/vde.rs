//! `vde://PATH[port|group]`: a client port on a vde_switch or on a node.
//!
//! The handshake (a version-3 request on `PATH/ctl`, a `sockaddr_un` back)
//! happens once, before the loop starts; afterwards the port is a connected
//! datagram socket, and EOF on the control stream ends it.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::{debug, warn};
use mio::{Interest, Registry};

use super::{register_fd, sync_write_interest, token, Endpoint, OpenError, Ready, Stop};
use crate::lane::Lane;
use crate::number::{self, BadNumber};
use crate::stats::{LinkStats, StatsTable};
use crate::sys;
use crate::url::Locator;
use crate::wire::path_report::is_path_report;
use crate::wire::request::{self, MAX_PORT, MAX_REQUEST_LEN, REQ_NEW_CONTROL, REQ_NEW_PORT0};
use crate::wire::{SockaddrUn, SOCKADDR_UN_LEN};

/// vde_switch's usual control directories, tried for an empty path.
const FALLBACK_SWITCHES: [&str; 2] = ["/var/run/vde.ctl", "/tmp/vde.ctl"];
/// Where the data socket goes when the switch directory is not writable.
const FALLBACK_DATA_DIRS: [&str; 3] = ["/var/run", "/var/tmp", "/tmp"];
/// How long the open waits for the switch's answer.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

const CTL: usize = 0;
const DATA: usize = 1;

/// Options a plug passes to every vde:// open (vde_plug's -g, -m, --port).
#[derive(Debug, Clone)]
pub struct OpenArgs {
    pub port: i32,
    pub group: Option<String>,
    pub mode: u32,
}

impl Default for OpenArgs {
    fn default() -> Self {
        OpenArgs {
            port: 0,
            group: None,
            mode: 0o700,
        }
    }
}

pub struct VdeClient {
    label: String,
    ctl: OwnedFd,
    data: OwnedFd,
    readable: bool,
    writable: bool,
    /// WRITABLE is registered (only while the socket is full).
    write_armed: bool,
    side: usize,
    stats: LinkStats,
}

impl VdeClient {
    pub fn open(loc: &Locator, description: &str, args: &OpenArgs) -> Result<VdeClient, OpenError> {
        let params = loc
            .resolve(&["port", "portgroup", "group", "mode"], Some("portgroup"))
            .map_err(OpenError::invalid)?;
        let mut port = args.port;
        let mut group = args.group.clone();
        let mut mode = args.mode;
        let mut portgroup: Option<String> = None;
        let invalid = |e: BadNumber| OpenError::invalid(e);
        for (k, v) in params {
            match k {
                "port" | "portgroup" => portgroup = Some(v),
                "group" => group = Some(v),
                _ => mode = number::octal("mode", &v, number::MAX_MODE).map_err(invalid)?,
            }
        }
        // vde_plug would fall back to group 0 (atoi); an unknown group is an
        // error here, found before the switch sees a connection.
        let gid = match group.as_deref() {
            Some(g) => Some(crate::accounts::known_group(g).map_err(OpenError::invalid)?),
            None => None,
        };
        // A group that starts with a digit is a port number (0 means "port
        // 0"); a port given as an option becomes the group when none is named.
        match portgroup.as_deref() {
            None | Some("") if port != 0 => portgroup = Some(port.max(0).to_string()),
            Some(pg) if pg.starts_with(|c: char| c.is_ascii_digit()) => {
                let n = number::decimal("port", pg, 0..=MAX_PORT).map_err(invalid)? as i32;
                port = if n == 0 { -1 } else { n };
            }
            _ => {}
        }

        let candidates: Vec<PathBuf> = if loc.address.is_empty() {
            FALLBACK_SWITCHES.iter().map(PathBuf::from).collect()
        } else {
            vec![std::fs::canonicalize(&loc.address)?]
        };
        let mut last_err = io::Error::from_raw_os_error(libc::ENOENT);
        let mut connected = None;
        for dir in &candidates {
            match connect_control(dir, portgroup.as_deref(), port) {
                Ok((fd, via_ctl)) => {
                    connected = Some((dir.clone(), fd, via_ctl));
                    break;
                }
                Err(e) => last_err = e,
            }
        }
        let (dir, ctl, via_ctl) = connected.ok_or(last_err)?;
        let req_type = match (via_ctl, port) {
            (true, p) if p < 0 => REQ_NEW_PORT0,
            (true, p) if p > 0 => (p as u32) << 8,
            _ => REQ_NEW_CONTROL,
        };

        let (data, own_path) = bind_data_socket(&dir)?;
        let result = finish_handshake(
            &ctl,
            &data,
            &own_path,
            &dir,
            req_type,
            description,
            gid,
            mode,
        );
        let _ = std::fs::remove_file(&own_path);
        result?;
        Ok(VdeClient {
            label: format!("vde://{}", dir.display()),
            ctl,
            data,
            readable: true,
            writable: true,
            write_armed: false,
            side: 0,
            stats: LinkStats::default(),
        })
    }
}

/// Connects the control stream: to `DIR/GROUP` when a port group is named,
/// else (or when that fails, or a port number is asked for) to `DIR/ctl`.
/// The flag tells whether the generic `ctl` socket answered.
fn connect_control(dir: &Path, portgroup: Option<&str>, port: i32) -> io::Result<(OwnedFd, bool)> {
    if let Some(pg) = portgroup.filter(|pg| !pg.is_empty() && port == 0) {
        let fd = sys::unix_socket(libc::SOCK_STREAM)?;
        if sys::connect(&fd, &dir.join(pg)).is_ok() {
            return Ok((fd, false));
        }
    }
    let fd = sys::unix_socket(libc::SOCK_STREAM)?;
    sys::connect(&fd, &dir.join("ctl"))?;
    Ok((fd, true))
}

/// Binds the datagram socket to `DIR/.PPPPP-NNNNN`, or to
/// `FALLBACK/vde.PPPPP-NNNNN` when the switch directory refuses.
fn bind_data_socket(dir: &Path) -> io::Result<(OwnedFd, PathBuf)> {
    let fd = sys::unix_socket(libc::SOCK_DGRAM)?;
    let pid = sys::pid();
    let mut last = io::Error::from_raw_os_error(libc::EACCES);
    let places = std::iter::once((dir.to_path_buf(), ".")).chain(
        FALLBACK_DATA_DIRS
            .iter()
            .map(|d| (PathBuf::from(d), "vde.")),
    );
    for (place, prefix) in places {
        for n in 0..100_000u32 {
            let path = place.join(format!("{prefix}{pid:05}-{n:05}"));
            match sys::bind(&fd, &path) {
                Ok(()) => return Ok((fd, path)),
                Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => continue,
                Err(e) => {
                    last = e;
                    break;
                }
            }
        }
    }
    Err(last)
}

#[allow(clippy::too_many_arguments)]
fn finish_handshake(
    ctl: &OwnedFd,
    data: &OwnedFd,
    own_path: &Path,
    dir: &Path,
    req_type: u32,
    description: &str,
    gid: Option<u32>,
    mut mode: u32,
) -> Result<(), OpenError> {
    if let Some(gid) = gid {
        sys::chgrp(own_path, gid)?;
    } else if mode & 0o077 == 0 {
        // Nobody else was granted access: if the switch belongs to another
        // user, open the socket to the switch's group (or to all) so that
        // the switch can send to it.
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::metadata(dir.join("ctl")) {
            if m.uid() != 0 && m.uid() != sys::euid() {
                mode |= if sys::chgrp(own_path, m.gid()).is_ok() {
                    0o070
                } else {
                    0o077
                };
            }
        }
    }
    let _ = sys::chmod(own_path, mode);

    let mut req = [0u8; MAX_REQUEST_LEN];
    let len = request::emit(&mut req, req_type, own_path, description.as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::ENAMETOOLONG))?;
    write_fully(ctl, &req[..len])?;
    let mut reply = [0u8; SOCKADDR_UN_LEN];
    read_fully(ctl, &mut reply)?;
    let peer = SockaddrUn::new_checked(&reply[..])
        .and_then(|s| s.path().map(Path::to_path_buf))
        .map_err(|_| io::Error::from_raw_os_error(libc::EPROTO))?;
    sys::connect(data, &peer)?;
    let _ = sys::chmod(&peer, mode);
    debug!("joined {} through {}", dir.display(), peer.display());
    Ok(())
}

/// Waits for the switch; SIGINT, SIGTERM or SIGHUP end the wait (`EINTR`),
/// and the open fails, its socket removed, before the plug dies by it.
fn wait_for(fd: &OwnedFd, events: libc::c_short) -> io::Result<()> {
    match crate::signals::wait_fd(fd.as_raw_fd(), events, HANDSHAKE_TIMEOUT)? {
        true => Ok(()),
        false => Err(io::Error::from_raw_os_error(libc::ETIMEDOUT)),
    }
}

fn write_fully(fd: &OwnedFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match sys::write(fd.as_raw_fd(), buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_for(fd, libc::POLLOUT)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn read_fully(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match sys::read(fd.as_raw_fd(), &mut buf[got..]) {
            Ok(0) => return Err(io::Error::from_raw_os_error(libc::ECONNRESET)),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_for(fd, libc::POLLIN)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Endpoint for VdeClient {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn register(&mut self, registry: &Registry, side: usize) -> io::Result<()> {
        self.side = side;
        register_fd(
            registry,
            self.ctl.as_raw_fd(),
            token(side, CTL),
            Interest::READABLE,
        )?;
        register_fd(
            registry,
            self.data.as_raw_fd(),
            token(side, DATA),
            Interest::READABLE,
        )?;
        Ok(())
    }

    fn sync_interest(&mut self, registry: &Registry) {
        let tok = token(self.side, DATA);
        sync_write_interest(
            registry,
            self.data.as_raw_fd(),
            tok,
            self.writable,
            &mut self.write_armed,
        );
    }

    fn on_event(&mut self, _registry: &Registry, local: usize, ready: Ready) -> Result<(), Stop> {
        if local == DATA {
            self.readable |= ready.readable;
            self.writable |= ready.writable;
            return Ok(());
        }
        // Nothing is expected on the control stream but its end.
        let mut scratch = [0u8; 256];
        loop {
            match sys::read(self.ctl.as_raw_fd(), &mut scratch) {
                Ok(0) => {
                    return Err(Stop::Ended(format!(
                        "{}: the switch closed the port",
                        self.label
                    )))
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Stop::Failed(format!(
                        "{}: control: {}",
                        self.label,
                        crate::sys::describe(&e)
                    )))
                }
            }
        }
        if ready.closed {
            return Err(Stop::Ended(format!("{}: the switch hung up", self.label)));
        }
        Ok(())
    }

    fn fill(&mut self, lane: &mut Lane) -> Result<usize, Stop> {
        let mut total = 0;
        while self.readable && lane.ring.free_slots() > 0 {
            let r = lane
                .io
                .recv(
                    self.data.as_raw_fd(),
                    &mut lane.ring,
                    usize::MAX,
                    &mut self.stats,
                    // A plug carries path reports as frames (docs/compat.md).
                    is_path_report,
                )
                .map_err(|e| self.fail(e))?;
            total += r.frames;
            if r.drained {
                self.readable = false;
            }
        }
        Ok(total)
    }

    fn deliver(&mut self, lane: &mut Lane) -> Result<usize, Stop> {
        let mut total = 0;
        while self.writable && !lane.ring.is_empty() {
            let Lane { ring, io } = lane;
            let sent = io
                .send(
                    self.data.as_raw_fd(),
                    ring,
                    ring.queued(),
                    &mut self.stats,
                    None,
                )
                .map_err(|e| self.fail(e))?;
            let asked = ring.queued().len().min(crate::batch::BATCH);
            ring.consume_front(sent);
            total += sent;
            if sent < asked {
                self.writable = false;
            }
        }
        Ok(total)
    }

    fn report(&self, table: &mut StatsTable) {
        table.row(&self.label, &self.stats, "");
    }
}

impl VdeClient {
    fn fail(&self, e: io::Error) -> Stop {
        match e.raw_os_error() {
            Some(libc::ECONNREFUSED)
            | Some(libc::ENOTCONN)
            | Some(libc::EPIPE)
            | Some(libc::ECONNRESET) => {
                Stop::Ended(format!("{}: the switch went away", self.label))
            }
            _ => {
                warn!("{}: {}", self.label, crate::sys::describe(&e));
                Stop::Failed(format!("{}: {}", self.label, crate::sys::describe(&e)))
            }
        }
    }
}
