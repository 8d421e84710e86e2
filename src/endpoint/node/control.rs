//! The server side of the vde control protocol: the node directory with its
//! listening `ctl` socket, and turning one request into a port socket.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use log::info;

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
    ctl_path: PathBuf,
}

impl NodeDir {
    /// Creates the directory and listens on `PATH/ctl`. An existing `PATH`
    /// fails with `EEXIST` unless it is a stale node (see [`is_stale`]),
    /// which is removed first.
    pub fn create(path: &Path, access: Access) -> io::Result<NodeDir> {
        // Private until it has its group and final mode.
        match sys::mkdir(path, 0o700) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) && is_stale(path) => {
                info!(
                    "{}: removing a stale node left by a dead process",
                    path.display()
                );
                remove_stale(path)?;
                sys::mkdir(path, 0o700)?;
            }
            r => r?,
        }
        let ctl_path = path.join("ctl");
        let dir = NodeDir {
            path: path.to_path_buf(),
            listener: sys::unix_socket(libc::SOCK_STREAM)?,
            access,
            ctl_path,
        };
        if let Some(gid) = access.gid {
            sys::chgrp(path, gid)?;
        }
        sys::chmod(path, access.dirmode)?;
        // `ctl` appears only once it listens, with its final owner and
        // mode: a client that sees it can connect, and a second opener
        // never takes a node that is starting for a stale one.
        let new_path = path.join("ctl.new");
        sys::bind(&dir.listener, &new_path)?;
        let ready = (|| {
            if let Some(gid) = access.gid {
                sys::chgrp(&new_path, gid)?;
            }
            sys::chmod(&new_path, access.mode)?;
            sys::listen(&dir.listener, BACKLOG)?;
            std::fs::rename(&new_path, &dir.ctl_path)
        })();
        if let Err(e) = ready {
            let _ = std::fs::remove_file(&new_path);
            return Err(e);
        }
        Ok(dir)
    }
}

impl Drop for NodeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ctl_path);
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// A node directory is stale when nothing listens on its `ctl` (connect is
/// refused) and it holds nothing but sockets: what a node killed with
/// SIGKILL leaves. A live node, or a directory with anything else in it,
/// is never touched.
pub fn is_stale(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.is_dir() {
        return false;
    }
    let Ok(probe) = sys::unix_socket(libc::SOCK_STREAM) else {
        return false;
    };
    match sys::connect(&probe, &path.join("ctl")) {
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {}
        _ => return false,
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return false;
    };
    entries
        .map(|e| e.and_then(|e| e.file_type()))
        .all(|t| matches!(t, Ok(t) if t.is_socket()))
}

fn remove_stale(path: &Path) -> io::Result<()> {
    for e in std::fs::read_dir(path)? {
        std::fs::remove_file(e?.path())?;
    }
    std::fs::remove_dir(path)
}

/// Why a request was turned down.
#[derive(Debug)]
pub enum Refused {
    Malformed,
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
/// written back.
pub fn answer_request(dir: &NodeDir, ctl: &OwnedFd, request: &[u8]) -> Result<NewPort, Refused> {
    let req = RequestV3::new_checked(request).map_err(|_| Refused::Malformed)?;
    let client = req
        .sock()
        .path()
        .map_err(|_| Refused::Malformed)?
        .to_path_buf();
    let data = sys::unix_socket(libc::SOCK_DGRAM).map_err(Refused::Io)?;
    sys::connect(&data, &client).map_err(Refused::Unreachable)?;
    let path = dir.path.join(format!("fd{}", ctl.as_raw_fd()));
    let _ = std::fs::remove_file(&path);
    sys::bind(&data, &path).map_err(Refused::Io)?;
    let port = NewPort {
        data,
        path,
        description: String::from_utf8_lossy(req.description()).into_owned(),
    };
    let _ = sys::chmod(&port.path, dir.access.mode);
    let mut reply = [0u8; SOCKADDR_UN_LEN];
    SockaddrUn::emit(&mut reply[..], &port.path).map_err(|_| Refused::Malformed)?;
    // A fresh stream socket always has room for 110 bytes.
    match sys::write(ctl.as_raw_fd(), &reply) {
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
