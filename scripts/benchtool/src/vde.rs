//! Minimal client side of the vde:// (VDE switch / netnode control directory)
//! protocol, written directly on top of unix sockets.
//!
//! Handshake:
//! 1. a datagram socket is bound to `DIR/.PPPPP-NNNNN` (fallback
//!    `/tmp/vde.PPPPP-NNNNN`) and chmod'ed 0700;
//! 2. a stream socket is connected to `DIR/ctl` and a request is written:
//!    `u32 magic, u32 version, u32 type, sockaddr_un(110 bytes), description`
//!    (packed, host byte order, description without NUL);
//! 3. the node answers with a 110-byte `sockaddr_un`: the path of its data
//!    socket for the new port. The datagram socket is connected to it and the
//!    bound path is unlinked.
//!
//! The stream socket must stay open for the lifetime of the port.

use std::ffi::CString;
use std::io;
use std::mem;
use std::sync::atomic::{AtomicU32, Ordering};

const REQ_MAGIC: u32 = 0xfeed_face;
const REQ_VERSION: u32 = 3;
const REQ_NEW_CONTROL: u32 = 0;
/// Size of `struct sockaddr_un` on Linux: u16 family + 108 bytes of path.
const SUN_LEN: usize = 110;
const SUN_PATH_LEN: usize = 108;

static PORT_COUNTER: AtomicU32 = AtomicU32::new(0);

/// One connected port of a vde node. Both descriptors are closed on drop.
pub struct Port {
    /// Connected datagram socket: one datagram == one Ethernet frame.
    pub data: i32,
    /// Control stream; closing it tears the port down.
    ctl: i32,
}

impl Drop for Port {
    fn drop(&mut self) {
        // SAFETY: both descriptors are owned exclusively by this struct.
        unsafe {
            libc::close(self.data);
            libc::close(self.ctl);
        }
    }
}

fn errno_ctx(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Build a `sockaddr_un` for `path` (fails when the path does not fit).
fn sockaddr_for(path: &str) -> io::Result<libc::sockaddr_un> {
    let bytes = path.as_bytes();
    if bytes.len() >= SUN_PATH_LEN || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unix socket path unusable (too long?): {path}"),
        ));
    }
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut sun: libc::sockaddr_un = unsafe { mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in sun.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok(sun)
}

/// Raw bytes of a sockaddr_un as it travels inside the request.
fn sockaddr_bytes(sun: &libc::sockaddr_un) -> [u8; SUN_LEN] {
    let mut out = [0u8; SUN_LEN];
    out[..2].copy_from_slice(&sun.sun_family.to_ne_bytes());
    for (dst, src) in out[2..].iter_mut().zip(sun.sun_path.iter()) {
        *dst = *src as u8;
    }
    out
}

fn sun_len() -> libc::socklen_t {
    mem::size_of::<libc::sockaddr_un>() as libc::socklen_t
}

fn unlink(path: &str) {
    if let Ok(c) = CString::new(path) {
        // SAFETY: c is a valid NUL-terminated string.
        unsafe {
            libc::unlink(c.as_ptr());
        }
    }
}

/// Bind `fd` to `path`; returns false (and leaves nothing behind) on failure.
fn try_bind(fd: i32, path: &str) -> bool {
    let Ok(sun) = sockaddr_for(path) else {
        return false;
    };
    // SAFETY: sun is a fully initialised sockaddr_un of the advertised size.
    let rc = unsafe { libc::bind(fd, &sun as *const _ as *const libc::sockaddr, sun_len()) };
    rc == 0
}

fn write_all(fd: i32, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: buf points to buf.len() readable bytes.
        let n = unsafe {
            libc::send(
                fd,
                buf.as_ptr() as *const libc::c_void,
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

fn read_exact(fd: i32, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: the destination range lies inside buf.
        let n = unsafe {
            libc::read(
                fd,
                buf[got..].as_mut_ptr() as *mut libc::c_void,
                buf.len() - got,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "node closed the control connection before replying",
            ));
        }
        got += n as usize;
    }
    Ok(())
}

/// Connect a new port to the vde node whose control directory is `dir`.
pub fn connect(dir: &str, descr: &str) -> io::Result<Port> {
    let dir = dir.strip_prefix("vde://").unwrap_or(dir);
    let dir = dir.trim_end_matches('/');
    let dir = if dir.is_empty() { "/" } else { dir };
    // SAFETY: plain syscalls; descriptors are checked before use.
    let data = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if data < 0 {
        return Err(errno_ctx("socket(AF_UNIX, SOCK_DGRAM)"));
    }
    // SAFETY: as above.
    let ctl = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if ctl < 0 {
        let e = errno_ctx("socket(AF_UNIX, SOCK_STREAM)");
        // SAFETY: data is a descriptor we own.
        unsafe { libc::close(data) };
        return Err(e);
    }
    // From here on the Port owns (and will close) both descriptors.
    let port = Port { data, ctl };

    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let n = PORT_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut local = format!("{dir}/.{pid:05}-{n:05}");
    if !try_bind(data, &local) {
        local = format!("/tmp/vde.{pid:05}-{n:05}");
        unlink(&local);
        if !try_bind(data, &local) {
            return Err(errno_ctx(&format!("bind({local})")));
        }
    }
    // Whatever happens next, the bound name must not be left behind.
    struct Unlinker<'a>(&'a str);
    impl Drop for Unlinker<'_> {
        fn drop(&mut self) {
            unlink(self.0);
        }
    }
    let _cleanup = Unlinker(&local);

    if let Ok(c) = CString::new(local.as_str()) {
        // SAFETY: c is a valid NUL-terminated path.
        unsafe { libc::chmod(c.as_ptr(), 0o700) };
    }

    let ctl_path = format!("{dir}/ctl");
    let ctl_sun = sockaddr_for(&ctl_path)?;
    loop {
        // SAFETY: ctl_sun is a valid sockaddr_un.
        let rc = unsafe {
            libc::connect(
                ctl,
                &ctl_sun as *const _ as *const libc::sockaddr,
                sun_len(),
            )
        };
        if rc == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(io::Error::new(
                e.kind(),
                format!("connect({ctl_path}): {e}"),
            ));
        }
    }

    let local_sun = sockaddr_for(&local)?;
    let mut req = Vec::with_capacity(12 + SUN_LEN + descr.len());
    req.extend_from_slice(&REQ_MAGIC.to_ne_bytes());
    req.extend_from_slice(&REQ_VERSION.to_ne_bytes());
    req.extend_from_slice(&REQ_NEW_CONTROL.to_ne_bytes());
    req.extend_from_slice(&sockaddr_bytes(&local_sun));
    req.extend_from_slice(descr.as_bytes());
    write_all(ctl, &req).map_err(|e| io::Error::new(e.kind(), format!("send request: {e}")))?;

    let mut reply = [0u8; SUN_LEN];
    read_exact(ctl, &mut reply)
        .map_err(|e| io::Error::new(e.kind(), format!("read reply from {ctl_path}: {e}")))?;
    // SAFETY: sockaddr_un is plain old data.
    let mut remote: libc::sockaddr_un = unsafe { mem::zeroed() };
    remote.sun_family = u16::from_ne_bytes([reply[0], reply[1]]) as libc::sa_family_t;
    for (dst, src) in remote.sun_path.iter_mut().zip(&reply[2..]) {
        *dst = *src as libc::c_char;
    }
    // Make sure the path is terminated even if the node filled all 108 bytes.
    remote.sun_path[SUN_PATH_LEN - 1] = 0;
    // SAFETY: remote is a valid sockaddr_un.
    let rc = unsafe {
        libc::connect(
            data,
            &remote as *const _ as *const libc::sockaddr,
            sun_len(),
        )
    };
    if rc != 0 {
        let end = reply[2..]
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(SUN_PATH_LEN);
        let rpath = String::from_utf8_lossy(&reply[2..2 + end]).into_owned();
        return Err(errno_ctx(&format!("connect(data socket {rpath})")));
    }
    Ok(port)
}
