//! Vde clients made by hand: raw requests and a client over std sockets.

use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use vde_plug_rs::wire::path_report::is_path_report;

use super::*;

pub const REQ_MAGIC: u32 = 0xfeed_face;

/// A version-3 request as raw bytes: header fields in host order, the
/// 110-byte sockaddr_un (family, then `path` NUL-padded to 108 bytes, or
/// cut to 108 with no NUL when it is that long), then `descr`.
pub fn raw_request(
    magic: u32,
    version: u32,
    typ: u32,
    family: u16,
    path: &[u8],
    descr: &[u8],
) -> Vec<u8> {
    let mut v = Vec::with_capacity(122 + descr.len());
    v.extend_from_slice(&magic.to_ne_bytes());
    v.extend_from_slice(&version.to_ne_bytes());
    v.extend_from_slice(&typ.to_ne_bytes());
    v.extend_from_slice(&family.to_ne_bytes());
    let mut sun = [0u8; 108];
    let n = path.len().min(108);
    sun[..n].copy_from_slice(&path[..n]);
    v.extend_from_slice(&sun);
    v.extend_from_slice(descr);
    v
}

/// A well-formed request for the datagram socket bound at `sock`.
pub fn valid_request(sock: &Path, descr: &[u8]) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    raw_request(
        REQ_MAGIC,
        3,
        0,
        libc::AF_UNIX as u16,
        sock.as_os_str().as_bytes(),
        descr,
    )
}

/// A unique socket path in `dir` for a raw client.
pub fn client_sock_path(dir: &Path) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    dir.join(format!("c{}", N.fetch_add(1, Ordering::SeqCst)))
}

/// Reads a control stream until the node closes it (bounded by `wait`);
/// returns what it sent. A reset counts as a close.
pub fn read_until_closed(s: &mut UnixStream, wait: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "still open after {wait:?} ({} bytes read)",
                got.len()
            ));
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => return Ok(got),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// A vde client made by hand over std sockets: the datagram socket bound
/// in `sock_dir`, the request on `NODE/ctl`, the reply read, the datagram
/// socket connected to the port. Its bound path is removed on drop.
pub struct RawClient {
    pub ctl: UnixStream,
    pub data: UnixDatagram,
    pub own: PathBuf,
    pub port_path: PathBuf,
}

impl RawClient {
    pub fn join(node: &str, sock_dir: &Path) -> std::io::Result<RawClient> {
        Self::join_with(node, sock_dir, b"raw test client")
    }

    pub fn join_with(node: &str, sock_dir: &Path, descr: &[u8]) -> std::io::Result<RawClient> {
        use std::os::unix::ffi::OsStrExt;
        let own = client_sock_path(sock_dir);
        let _ = std::fs::remove_file(&own);
        let data = UnixDatagram::bind(&own)?;
        let guard = RemoveOnDrop(own.clone());
        let mut ctl = UnixStream::connect(format!("{node}/ctl"))?;
        ctl.set_read_timeout(Some(PATIENCE))?;
        ctl.write_all(&valid_request(&own, descr))?;
        let mut reply = [0u8; 110];
        ctl.read_exact(&mut reply)?;
        let fam = u16::from_ne_bytes([reply[0], reply[1]]);
        assert_eq!(fam, libc::AF_UNIX as u16, "reply family");
        let end = reply[2..]
            .iter()
            .position(|&c| c == 0)
            .expect("reply path NUL-terminated");
        let port_path = PathBuf::from(std::ffi::OsStr::from_bytes(&reply[2..2 + end]));
        data.connect(&port_path)?;
        data.set_read_timeout(Some(PATIENCE))?;
        std::mem::forget(guard);
        Ok(RawClient {
            ctl,
            data,
            own,
            port_path,
        })
    }

    pub fn send(&self, f: &[u8]) {
        self.data.send(f).expect("send on the port");
    }

    /// The next frame from the node, waiting at most PATIENCE for each
    /// datagram; a bonding node's path reports (it takes this client for
    /// a cable) are passed over.
    pub fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65536];
        loop {
            let n = self.data.recv(&mut buf).ok()?;
            if !is_path_report(&buf[..n]) {
                buf.truncate(n);
                return Some(buf);
            }
        }
    }
}

impl Drop for RawClient {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.own);
    }
}
