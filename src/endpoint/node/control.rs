//! The server side of the vde control protocol: the node directory with its
//! listening `ctl` socket, and turning one request into a port socket.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use log::info;

use crate::status::STATUS_SOCKET;
use crate::sys;
use crate::wire::{RequestV3, SockaddrUn, SOCKADDR_UN_LEN};

/// The listen backlog vdeplug4 uses.
const BACKLOG: i32 = 15;

/// Permissions of a node (see `mode=`, `dirmode=`, `grp=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub mode: u32,
    pub dirmode: u32,
    pub gid: Option<u32>,
}

impl Access {
    /// vdeplug4's defaults: 0600 for sockets and the directory mode derived
    /// from it.
    pub fn with_mode(mode: u32) -> Access {
        let mode = mode & !0o111;
        Access {
            mode,
            dirmode: derived_dirmode(mode),
            gid: None,
        }
    }
}

impl Default for Access {
    fn default() -> Self {
        Access::with_mode(0o600)
    }
}

/// The directory mode vdeplug4 derives from a socket mode: set-gid, plus
/// search permission for every class that may read or write.
pub fn derived_dirmode(mode: u32) -> u32 {
    0o2000 | mode | (mode & 0o444) >> 2 | (mode & 0o222) >> 1
}

/// `/tmp/vdenode_USER` (or `/tmp/vdenode_uEUID` for a user with no name).
pub fn default_node_path() -> PathBuf {
    let euid = sys::euid();
    match crate::accounts::user_name(euid) {
        Some(name) => PathBuf::from(format!("/tmp/vdenode_{name}")),
        None => PathBuf::from(format!("/tmp/vdenode_u{euid}")),
    }
}

/// Makes `path` absolute the way the C node does: the parent directory must
/// exist and is resolved; the last component is kept as given.
pub fn absolute_node_path(path: &str) -> io::Result<PathBuf> {
    if path.is_empty() {
        return Ok(default_node_path());
    }
    let p = Path::new(path);
    let name = p
        .file_name()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok(std::fs::canonicalize(parent)?.join(name))
}

/// The node directory and its listening control socket. Dropping it
/// removes `ctl` and the directory (ports remove their own sockets).
pub struct NodeDir {
    pub path: PathBuf,
    pub listener: OwnedFd,
    pub access: Access,
    /// `PATH/status`, where `vde_plug_rs --status` asks for the counters.
    pub status: OwnedFd,
    ctl_path: PathBuf,
    /// A descriptor kept in hand to turn clients away when the process
    /// has no other left (see [`NodeDir::accept`]).
    reserve: Option<OwnedFd>,
    /// The directory, open and `flock`ed for the node's whole life: a node
    /// that holds it is alive, even before its `ctl` listens. The kernel
    /// lets go of it when the process dies, however it dies.
    _lock: OwnedFd,
}

impl NodeDir {
    /// Creates the directory and listens on `PATH/ctl`. An existing `PATH`
    /// fails with `EEXIST` unless it is a stale node (see [`is_stale`]),
    /// which is removed first.
    pub fn create(path: &Path, access: Access) -> io::Result<NodeDir> {
        // As deep as C's: `ctl` must fit in a sockaddr_un (103 bytes).
        if !sys::fits_sockaddr(&path.join("ctl")) {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        // Private until it has its group and final mode.
        let lock = match sys::mkdir(path, 0o700) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let Some(stale) = lock_if_stale(path) else {
                    return Err(e);
                };
                info!(
                    "{}: removing a stale node left by a dead process",
                    path.display()
                );
                remove_sockets(path)?;
                std::fs::remove_dir(path)?;
                drop(stale);
                sys::mkdir(path, 0o700)?;
                lock_dir(path, libc::LOCK_EX)?
            }
            r => {
                r?;
                lock_dir(path, libc::LOCK_EX)?
            }
        };
        let ctl_path = path.join("ctl");
        let dir = NodeDir {
            path: path.to_path_buf(),
            listener: sys::unix_socket(libc::SOCK_STREAM)?,
            access,
            status: sys::unix_socket(libc::SOCK_STREAM)?,
            ctl_path,
            reserve: sys::open_dev_null().ok(),
            _lock: lock,
        };
        if let Some(gid) = access.gid {
            sys::chgrp(path, gid)?;
        }
        sys::chmod(path, access.dirmode)?;
        // `ctl` appears only once it listens, with its final owner and
        // mode: a client that sees it can connect. `status` has the same
        // owner and mode: whoever cannot join cannot look either.
        let new_path = path.join(CTL_BEING_MADE);
        let status_path = path.join(STATUS_SOCKET);
        let listen_on = |fd: &OwnedFd, at: &Path| -> io::Result<()> {
            sys::bind_any_length(fd, at)?;
            if let Some(gid) = access.gid {
                sys::chgrp(at, gid)?;
            }
            sys::chmod(at, access.mode)?;
            sys::listen(fd, BACKLOG)
        };
        let ready = listen_on(&dir.status, &status_path)
            .and_then(|()| listen_on(&dir.listener, &new_path))
            .and_then(|()| std::fs::rename(&new_path, &dir.ctl_path));
        if let Err(e) = ready {
            let _ = std::fs::remove_file(&new_path);
            let _ = std::fs::remove_file(&status_path);
            return Err(e);
        }
        Ok(dir)
    }
}

/// What a connection on `ctl` came to.
pub enum Accepted {
    /// A control connection to serve.
    Connection(OwnedFd),
    /// Out of descriptors: a client was turned away (its connection
    /// closed at once, so it fails now rather than wait in the backlog).
    TurnedAway,
}

impl NodeDir {
    /// Accepts the next connection on `ctl`; `Ok(None)` when none waits.
    pub fn accept(&mut self) -> io::Result<Option<Accepted>> {
        match sys::accept(&self.listener) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                if self.reserve.take().is_none() {
                    return Err(e);
                }
                // Closed before the reserve is opened again: it holds the
                // one free descriptor (else the reserve is lost, the next
                // knock is an error, and the backlog is never read again).
                let turned_away = sys::accept(&self.listener).map(|c| c.is_some());
                self.reserve = sys::open_dev_null().ok();
                match turned_away? {
                    true => Ok(Some(Accepted::TurnedAway)),
                    false => Ok(None),
                }
            }
            r => Ok(r?.map(Accepted::Connection)),
        }
    }
}

impl NodeDir {
    /// Removes the sockets that vde clients killed in their handshake left
    /// in the directory (they name them `.PID-N`): nothing is bound to
    /// them any more, so a connect is refused. A live client's is kept.
    pub fn sweep_dead_clients(&self) {
        use std::os::unix::fs::FileTypeExt;
        let Ok(entries) = std::fs::read_dir(&self.path) else {
            return;
        };
        for e in entries.flatten() {
            let dead = e.file_name().as_encoded_bytes().starts_with(b".")
                && e.file_type().is_ok_and(|t| t.is_socket())
                && sys::unix_socket(libc::SOCK_DGRAM).is_ok_and(|probe| {
                    matches!(sys::connect(&probe, &e.path()),
                        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED))
                });
            if dead {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

impl Drop for NodeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ctl_path);
        let _ = std::fs::remove_file(self.path.join(STATUS_SOCKET));
        // A vde client binds its own socket in here and removes it once it
        // has connected to its port: one caught in between would keep the
        // directory. Its handshake cannot finish now, so its socket goes.
        for _ in 0..3 {
            match std::fs::remove_dir(&self.path) {
                Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {
                    let _ = remove_sockets(&self.path);
                }
                _ => return,
            }
        }
    }
}

/// The name `ctl` has while it is being set up.
const CTL_BEING_MADE: &str = "ctl.new";

/// Opens the directory `path` and takes an `flock` on it (`LOCK_NB` in
/// `how` to fail at once when another process holds it).
fn lock_dir(path: &Path, how: libc::c_int) -> io::Result<OwnedFd> {
    let dir = sys::open_dir(path)?;
    sys::flock(&dir, how)?;
    Ok(dir)
}

/// A node directory is stale when it is what a node killed with SIGKILL
/// leaves: nothing listens on its `ctl` (connect is refused, or only
/// `ctl.new` is there: killed while starting), no process holds its lock
/// (every node of ours holds it while alive), and it holds nothing but
/// sockets. A live node, an empty directory, or one with anything else in
/// it is never taken. Returns the lock, held while the caller removes it.
pub fn lock_if_stale(path: &Path) -> Option<OwnedFd> {
    use std::os::unix::fs::FileTypeExt;
    if !std::fs::symlink_metadata(path).ok()?.is_dir() {
        return None;
    }
    let probe = sys::unix_socket(libc::SOCK_STREAM).ok()?;
    match sys::connect(&probe, &path.join("ctl")) {
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            if !path.join(CTL_BEING_MADE).exists() {
                return None;
            }
        }
        _ => return None,
    }
    let lock = lock_dir(path, libc::LOCK_EX | libc::LOCK_NB).ok()?;
    let only_sockets = std::fs::read_dir(path)
        .ok()?
        .map(|e| e.and_then(|e| e.file_type()))
        .all(|t| matches!(t, Ok(t) if t.is_socket()));
    only_sockets.then_some(lock)
}

/// Removes every socket in `dir` (and nothing else).
fn remove_sockets(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_socket() {
            std::fs::remove_file(e.path())?;
        }
    }
    Ok(())
}

/// The owner and identity (uid, device, inode) of the socket at `path`,
/// which must be a socket.
fn socket_owner(path: &Path) -> io::Result<(u32, u64, u64)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_socket() {
        return Err(io::Error::from_raw_os_error(libc::ENOTSOCK));
    }
    Ok((meta.uid(), meta.dev(), meta.ino()))
}

/// Why a request was turned down.
#[derive(Debug)]
pub enum Refused {
    Malformed,
    /// The request names a socket of another user than the client's.
    NotTheirs {
        peer: u32,
        owner: u32,
    },
    /// The client's socket could not be reached: no port is made.
    Unreachable(io::Error),
    Io(io::Error),
}

/// A port socket made for an accepted request.
pub struct NewPort {
    pub data: OwnedFd,
    pub path: PathBuf,
    pub description: String,
}

/// Honours one request read from the control stream `ctl`: a datagram
/// socket connected to the client, bound to `DIR/fdN`, and its address
/// written back. `greet` may send the port its first messages before that
/// reply: until the client reads it, it does not know the socket's name,
/// so the socket holds nothing a send could make the kernel drop (see
/// docs/guarantees.md, "A cable that leaves"). Its error (the client's
/// socket is gone) refuses the port.
pub fn answer_request(
    dir: &NodeDir,
    ctl: &OwnedFd,
    request: &[u8],
    greet: impl FnOnce(BorrowedFd<'_>) -> io::Result<()>,
) -> Result<NewPort, Refused> {
    let req = RequestV3::new_checked(request).map_err(|_| Refused::Malformed)?;
    let client = req
        .sock()
        .path()
        .map_err(|_| Refused::Malformed)?
        .to_path_buf();
    // Frames go wherever the request points: only to a socket of the
    // client's own (root may name any), checked again once connected so
    // that the name cannot be swapped in between.
    let peer = sys::peer_uid(ctl).map_err(Refused::Io)?;
    let owner = socket_owner(&client).map_err(Refused::Unreachable)?;
    if peer != 0 && owner.0 != peer {
        return Err(Refused::NotTheirs {
            peer,
            owner: owner.0,
        });
    }
    let data = sys::unix_socket(libc::SOCK_DGRAM).map_err(Refused::Io)?;
    sys::connect(&data, &client).map_err(Refused::Unreachable)?;
    if socket_owner(&client).ok() != Some(owner) {
        return Err(Refused::Unreachable(io::Error::from_raw_os_error(
            libc::ESTALE,
        )));
    }
    // `fdN` as C names it, or `N` where a node that deep has no room.
    let mut path = dir.path.join(format!("fd{}", ctl.as_raw_fd()));
    if !sys::fits_sockaddr(&path) {
        path = dir.path.join(ctl.as_raw_fd().to_string());
    }
    let _ = std::fs::remove_file(&path);
    sys::bind(&data, &path).map_err(Refused::Io)?;
    let port = NewPort {
        data,
        path,
        description: String::from_utf8_lossy(req.description()).into_owned(),
    };
    let _ = sys::chmod(&port.path, dir.access.mode);
    if let Err(e) = greet(port.data.as_fd()) {
        let _ = std::fs::remove_file(&port.path);
        return Err(Refused::Unreachable(e));
    }
    let mut reply = [0u8; SOCKADDR_UN_LEN];
    SockaddrUn::emit(&mut reply[..], &port.path).map_err(|_| Refused::Malformed)?;
    // A fresh stream socket always has room for 110 bytes.
    // send, not write: a client gone by now must not raise SIGPIPE, which
    // would kill the program hosting a plugin (it ignores nothing for us).
    match sys::send(ctl.as_raw_fd(), &reply) {
        Ok(n) if n == reply.len() => Ok(port),
        Ok(_) => {
            let _ = std::fs::remove_file(&port.path);
            Err(Refused::Io(io::Error::from_raw_os_error(libc::EAGAIN)))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&port.path);
            Err(Refused::Unreachable(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirmode_from_mode() {
        assert_eq!(derived_dirmode(0o600), 0o2700);
        assert_eq!(derived_dirmode(0o666), 0o2777);
        assert_eq!(derived_dirmode(0o660), 0o2770);
        assert_eq!(Access::with_mode(0o777).mode, 0o666);
    }
}
