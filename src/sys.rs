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

/// Whether `path` fits in a `sockaddr_un` (with its terminating NUL): a
/// name that travels in a request or a reply, or that a C peer connects to.
pub fn fits_sockaddr(path: &Path) -> bool {
    path.as_os_str().len() < crate::wire::sockaddr::SUN_PATH_LEN
}

/// Runs `f` on `path`, or, when `path` is too long for a `sockaddr_un`, on
/// `/proc/self/fd/D/NAME` with D its directory, open for the call: a node
/// as deep as C's allows gets its longer names (`ctl.new`, `status`) too.
fn via_short_path(path: &Path, f: impl FnOnce(&Path) -> io::Result<()>) -> io::Result<()> {
    if fits_sockaddr(path) {
        return f(path);
    }
    let enametoolong = || io::Error::from_raw_os_error(libc::ENAMETOOLONG);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(enametoolong());
    };
    let c = cpath(dir)?;
    // SAFETY: a valid C string; the fd is owned at once.
    let dir = cvt(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: a fresh descriptor nobody else owns.
    let dir = unsafe { OwnedFd::from_raw_fd(dir) };
    let short = Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name);
    f(&short)
}

/// [`bind`] for a path of any length (see [`via_short_path`]).
pub fn bind_any_length(fd: &OwnedFd, path: &Path) -> io::Result<()> {
    via_short_path(path, |p| bind(fd, p))
}

/// [`connect`] for a path of any length (see [`via_short_path`]).
pub fn connect_any_length(fd: &OwnedFd, path: &Path) -> io::Result<()> {
    via_short_path(path, |p| connect(fd, p))
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

/// Whether a datagram waits to be read on `fd` (a peek, nothing taken).
pub fn has_input(fd: RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: one byte of `byte` is writable.
    let r = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    r >= 0
}

/// send(2) without blocking and without SIGPIPE (one datagram, or bytes
/// on a stream).
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

/// Whether descriptor `fd` is a terminal.
pub fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
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

/// An I/O error as the C tools print it: strerror(3) text for a system
/// call's error (no Rust `(os error N)`), the error's own words otherwise.
pub fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(errno) => strerror(errno),
        None => e.to_string(),
    }
}

/// A socket address of any family, as the kernel reads and writes it.
#[derive(Clone, Copy)]
pub(crate) struct SockAddr {
    pub(crate) storage: libc::sockaddr_storage,
    pub(crate) len: libc::socklen_t,
}

impl SockAddr {
    pub(crate) fn empty() -> SockAddr {
        SockAddr {
            // SAFETY: sockaddr_storage is plain old data; zero is valid.
            storage: unsafe { std::mem::zeroed() },
            len: 0,
        }
    }

    pub(crate) fn family(&self) -> i32 {
        i32::from(self.storage.ss_family)
    }

    pub(crate) fn as_ptr(&self) -> *const libc::sockaddr {
        &self.storage as *const _ as *const libc::sockaddr
    }

    /// An IPv4 or IPv6 address (IPv6 scope id and flow info kept).
    pub(crate) fn from_inet(addr: std::net::SocketAddr) -> SockAddr {
        let mut s = SockAddr::empty();
        match addr {
            std::net::SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than sockaddr_in and
                // suitably aligned.
                unsafe { std::ptr::write(&mut s.storage as *mut _ as *mut libc::sockaddr_in, sin) };
                s.len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            std::net::SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: as above, for sockaddr_in6.
                unsafe {
                    std::ptr::write(&mut s.storage as *mut _ as *mut libc::sockaddr_in6, sin6)
                };
                s.len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        s
    }

    /// The IPv4 or IPv6 address held, if it is one.
    pub(crate) fn inet(&self) -> Option<std::net::SocketAddr> {
        use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
        let p = &self.storage as *const libc::sockaddr_storage;
        match self.family() {
            libc::AF_INET if self.len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the storage holds a sockaddr_in.
                let a = unsafe { &*(p as *const libc::sockaddr_in) };
                let ip = Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes());
                Some(SocketAddrV4::new(ip, u16::from_be(a.sin_port)).into())
            }
            libc::AF_INET6 if self.len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: the family says the storage holds a sockaddr_in6.
                let a = unsafe { &*(p as *const libc::sockaddr_in6) };
                let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                Some(
                    SocketAddrV6::new(
                        ip,
                        u16::from_be(a.sin6_port),
                        a.sin6_flowinfo,
                        a.sin6_scope_id,
                    )
                    .into(),
                )
            }
            _ => None,
        }
    }

    /// A unix-domain address with the whole `sockaddr_un` as its length, as
    /// vdeplug4's ptp module passes it.
    pub(crate) fn from_unix_path(path: &[u8]) -> io::Result<SockAddr> {
        let mut s = SockAddr::empty();
        // SAFETY: sockaddr_storage is larger than sockaddr_un.
        let un = unsafe { &mut *(&mut s.storage as *mut _ as *mut libc::sockaddr_un) };
        if path.len() >= un.sun_path.len() || path.contains(&0) {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        un.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, &c) in un.sun_path.iter_mut().zip(path) {
            *d = c as libc::c_char;
        }
        s.len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        Ok(s)
    }
}

/// A non-blocking, close-on-exec socket of any family.
pub(crate) fn socket(family: i32, kind: i32, proto: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned at once.
    let fd = cvt(unsafe {
        libc::socket(
            family,
            kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            proto,
        )
    })?;
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn bind_addr(fd: &OwnedFd, addr: &SockAddr) -> io::Result<()> {
    // SAFETY: addr holds a valid address of addr.len bytes.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), addr.as_ptr(), addr.len) }).map(drop)
}

pub(crate) fn connect_addr(fd: &OwnedFd, addr: &SockAddr) -> io::Result<()> {
    // SAFETY: addr holds a valid address of addr.len bytes.
    cvt(unsafe { libc::connect(fd.as_raw_fd(), addr.as_ptr(), addr.len) }).map(drop)
}

pub(crate) fn local_addr(fd: &OwnedFd) -> io::Result<SockAddr> {
    let mut s = SockAddr::empty();
    s.len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage has room for len bytes; the kernel writes the length.
    cvt(unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            &mut s.storage as *mut _ as *mut libc::sockaddr,
            &mut s.len,
        )
    })?;
    Ok(s)
}

/// setsockopt(2) of a plain value.
pub(crate) fn setsockopt<T>(fd: &OwnedFd, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: value points at size_of::<T>() readable bytes.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// A non-blocking eventfd: a descriptor a poll sees as readable once
/// written to (see [`kick`]).
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain eventfd(2); the fd is owned at once.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds one to an eventfd: an edge for an edge-triggered poll.
pub fn kick(fd: RawFd) {
    let _ = write(fd, &1u64.to_ne_bytes());
}

/// A non-blocking monotonic timerfd, disarmed.
pub fn timerfd() -> io::Result<OwnedFd> {
    // SAFETY: plain timerfd_create(2); the fd is owned at once.
    let fd = cvt(unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    })?;
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Arms a timerfd to fire once after `after` (at least a microsecond).
pub fn arm_timer(fd: RawFd, after: std::time::Duration) {
    let after = after.max(std::time::Duration::from_micros(1));
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            // time_t is 32 bits on armhf: a far deadline saturates rather
            // than wrapping to a near (or negative, refused) one.
            tv_sec: libc::time_t::try_from(after.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: after.subsec_nanos() as libc::c_long,
        },
    };
    // SAFETY: spec is a valid itimerspec; the old value is not wanted.
    unsafe { libc::timerfd_settime(fd, 0, &spec, std::ptr::null_mut()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    /// Seconds until `fd` fires.
    fn armed_for(fd: &OwnedFd) -> libc::time_t {
        // SAFETY: an all-zero itimerspec is valid; the kernel fills it.
        let mut cur: libc::itimerspec = unsafe { std::mem::zeroed() };
        // SAFETY: fd is a timerfd; cur is a valid itimerspec to write.
        let r = unsafe { libc::timerfd_gettime(fd.as_raw_fd(), &mut cur) };
        assert_eq!(r, 0);
        cur.it_value.tv_sec
    }

    #[test]
    fn a_far_timer_stays_far_with_a_32_bit_time_t() {
        let fd = timerfd().unwrap();
        // 2^32 + 5 s: 5 s once truncated to 32 bits.
        arm_timer(fd.as_raw_fd(), Duration::from_secs((1 << 32) + 5));
        assert!(armed_for(&fd) > 1 << 30, "{}", armed_for(&fd));
        arm_timer(fd.as_raw_fd(), Duration::from_millis(2500));
        assert_eq!(armed_for(&fd), 2);
    }
}
