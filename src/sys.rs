//! Thin, safe wrappers over the system calls the loop uses. Every socket is
//! made non-blocking and close-on-exec.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::wire::sockaddr::to_libc;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// A file that is removed when this value is dropped (a socket's name).
#[derive(Debug)]
pub struct UnlinkOnDrop(pub PathBuf);

impl Drop for UnlinkOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

pub fn unix_socket(kind: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned at once.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_UNIX,
            kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn bind(fd: &OwnedFd, path: &Path) -> io::Result<()> {
    let (addr, len) = to_libc(path)?;
    // SAFETY: addr is a valid sockaddr_un of `len` bytes.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &addr as *const _ as *const libc::sockaddr,
            len,
        )
    })
    .map(drop)
}

/// connect(2); on a non-blocking unix socket it completes at once or fails.
pub fn connect(fd: &OwnedFd, path: &Path) -> io::Result<()> {
    let (addr, len) = to_libc(path)?;
    // SAFETY: addr is a valid sockaddr_un of `len` bytes.
    cvt(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            &addr as *const _ as *const libc::sockaddr,
            len,
        )
    })
    .map(drop)
}

pub fn listen(fd: &OwnedFd, backlog: i32) -> io::Result<()> {
    // SAFETY: plain listen(2) on an owned fd.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) }).map(drop)
}

/// accept4(2), non-blocking and close-on-exec; `Ok(None)` when none waits.
pub fn accept(fd: &OwnedFd) -> io::Result<Option<OwnedFd>> {
    // SAFETY: null address pointers are allowed by accept4(2).
    let r = unsafe {
        libc::accept4(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    match cvt(r) {
        // SAFETY: r is a fresh descriptor.
        Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) })),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes.
    cvt_size(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes.
    cvt_size(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })
}

/// send(2) of one datagram without blocking.
pub fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes.
    cvt_size(unsafe {
        libc::send(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    })
}

pub fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<libc::c_int> {
    // SAFETY: fcntl on a descriptor we were handed; flags only.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if new != flags {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, new) })?;
    }
    Ok(flags)
}

pub fn restore_flags(fd: RawFd, flags: libc::c_int) {
    // SAFETY: restoring flags read earlier from the same descriptor.
    unsafe { libc::fcntl(fd, libc::F_SETFL, flags) };
}

pub fn chmod(path: &Path, mode: u32) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: c is a valid C string.
    cvt(unsafe { libc::chmod(c.as_ptr(), mode as libc::mode_t) }).map(drop)
}

pub fn chgrp(path: &Path, gid: u32) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: c is a valid C string; uid -1 leaves the owner alone.
    cvt(unsafe { libc::chown(c.as_ptr(), u32::MAX, gid) }).map(drop)
}

/// The user id of the process at the other end of a unix stream socket
/// (`SO_PEERCRED`, taken when it connected).
pub fn peer_uid(fd: &OwnedFd) -> io::Result<u32> {
    // SAFETY: an all-zero ucred is valid; getsockopt fills at most `len`.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and len are valid for writing.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut _ as *mut libc::c_void,
            &mut len,
        )
    })?;
    Ok(cred.uid)
}

/// Opens /dev/null, close-on-exec: a descriptor held in reserve.
pub fn open_dev_null() -> io::Result<OwnedFd> {
    // SAFETY: a static C string; the fd is owned at once.
    let fd = cvt(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })?;
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens a directory (read-only, close-on-exec) to hold a lock on it.
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = cpath(path)?;
    // SAFETY: a valid C string; the fd is owned at once.
    let fd = cvt(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    })?;
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// flock(2), retried when a signal interrupts it.
pub fn flock(fd: &OwnedFd, how: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor we own.
        match cvt(unsafe { libc::flock(fd.as_raw_fd(), how) }) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r.map(drop),
        }
    }
}

pub fn mkdir(path: &Path, mode: u32) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: c is a valid C string.
    cvt(unsafe { libc::mkdir(c.as_ptr(), mode as libc::mode_t) }).map(drop)
}

pub fn uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

pub fn pid() -> u32 {
    std::process::id()
}

pub fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// strerror(3) text, the way the C tools print errors.
pub fn strerror(errno: i32) -> String {
    // SAFETY: strerror returns a valid C string for any errno.
    let s = unsafe { std::ffi::CStr::from_ptr(libc::strerror(errno)) };
    s.to_string_lossy().into_owned()
}
