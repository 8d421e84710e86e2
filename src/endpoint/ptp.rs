//! `ptp://PATH`: a point-to-point cable over two unix datagram sockets, as
//! Debian's vdeplug 4.0.1 makes it (newer vdeplug4 uses a seqpacket
//! socket; that one does not speak to the installed module).
//!
//! The first end binds `PATH` and sends to `PATH+`; the second, finding
//! `PATH` taken, connects to it, binds `PATH+` and sends to `PATH`. A
//! socket file nobody listens on any more is removed and taken over; one
//! with a live end is `Address already in use` for the first role. Each end
//! removes the socket it bound when it closes. The path is used as written
//! (at most 106 bytes; no options), its socket gets vde_plug's `-m` mode
//! and `-g` group.

use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use super::dgram::{plain_frame, DatagramLink, Policy, Verdict};
use super::vde::OpenArgs;
use super::OpenError;
use crate::batch::{AddrBatch, Datagram};
use crate::sys::{self, SockAddr};

/// The C module keeps `sizeof(sun_path) - 2` bytes of the path.
const PATH_MAX_LEN: usize = 106;

pub(crate) struct Ptp {
    label: String,
    peer: SockAddr,
    /// The socket file this end bound, removed at close.
    own: PathBuf,
}

impl Drop for Ptp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.own);
    }
}

pub(crate) fn open(spec: &str, args: &OpenArgs) -> Result<DatagramLink<Ptp>, OpenError> {
    let mut path = spec.as_bytes();
    if path.len() > PATH_MAX_LEN {
        path = &path[..PATH_MAX_LEN];
    }
    let path = String::from_utf8_lossy(path).into_owned();
    let plus = format!("{path}+");
    let label = format!("ptp://{spec}");
    let (fd, own, peer) = match first_end(&path, &plus) {
        Ok(fd) => (fd, path.clone(), plus.clone()),
        Err(_) => (second_end(&path, &plus)?, plus.clone(), path.clone()),
    };
    let own = PathBuf::from(own);
    let owned_path = own.clone();
    let cleanup = |e: OpenError| {
        let _ = std::fs::remove_file(&owned_path);
        e
    };
    if let Some(g) = args.group.as_deref() {
        let gid = crate::accounts::known_group(g).map_err(|e| cleanup(OpenError::invalid(e)))?;
        sys::chgrp(&own, gid).map_err(|e| cleanup(e.into()))?;
    }
    let _ = sys::chmod(&own, args.mode);
    let policy = Ptp {
        label,
        peer: SockAddr::from_unix_path(peer.as_bytes())?,
        own,
    };
    Ok(DatagramLink::new(policy, vec![fd], &[]))
}

/// A socket file at `path` that nobody answers on is removed; one that
/// answers is in use.
fn take_over_stale(fd: &OwnedFd, path: &str) -> Result<(), OpenError> {
    let is_socket = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if is_socket {
        match sys::connect_addr(fd, &SockAddr::from_unix_path(path.as_bytes())?) {
            Ok(()) => return Err(OpenError::errno(libc::EADDRINUSE)),
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                let _ = std::fs::remove_file(path);
            }
            Err(_) => {}
        }
    }
    Ok(())
}

fn first_end(path: &str, _plus: &str) -> Result<OwnedFd, OpenError> {
    let fd = sys::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0)?;
    take_over_stale(&fd, path)?;
    sys::bind_addr(&fd, &SockAddr::from_unix_path(path.as_bytes())?)?;
    Ok(fd)
}

fn second_end(path: &str, plus: &str) -> Result<OwnedFd, OpenError> {
    let fd = sys::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0)?;
    sys::connect_addr(&fd, &SockAddr::from_unix_path(path.as_bytes())?)?;
    take_over_stale(&fd, plus)?;
    sys::bind_addr(&fd, &SockAddr::from_unix_path(plus.as_bytes())?)?;
    Ok(fd)
}

impl Policy for Ptp {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn accept(
        &mut self,
        _: usize,
        _: &AddrBatch,
        _: usize,
        _: &Datagram,
        f: &[u8],
        _: u64,
    ) -> Verdict {
        plain_frame(f)
    }

    fn route(&mut self, _frame: &[u8], _now: u64) -> Option<SockAddr> {
        Some(self.peer)
    }
}
