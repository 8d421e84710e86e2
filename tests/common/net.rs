//! Network namespaces a test made (`ip netns add`): running code inside
//! one, and a TCP stream from one to another.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use super::*;

/// A bound on a TCP read or write that makes no progress: a hang, not a
/// timing assertion.
const TCP_STALL: Duration = Duration::from_secs(60);

/// Runs `f` on a thread that has entered the network namespace `name`:
/// sockets it makes belong to the namespace, and work from any thread
/// afterwards.
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{name}");
    std::thread::scope(|s| {
        s.spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on this thread only, with a namespace fd.
            let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    })
}

/// Sends `data` over one TCP connection from namespace `from` to a server
/// at `addr` in namespace `to`, closes it, and returns every byte the
/// server read until the end of the stream.
pub fn tcp_transfer(from: &str, to: &str, addr: &str, data: &[u8]) -> Vec<u8> {
    let listener = in_netns(to, || TcpListener::bind((addr, 0)).unwrap());
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(TCP_STALL)).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got)
            .unwrap_or_else(|e| panic!("server: {e} after {} bytes", got.len()));
        got
    });
    let to: SocketAddr = (addr.parse::<IpAddr>().unwrap(), port).into();
    let stream = in_netns(from, || TcpStream::connect_timeout(&to, PATIENCE))
        .unwrap_or_else(|e| panic!("connect {to}: {e}"));
    stream.set_write_timeout(Some(TCP_STALL)).unwrap();
    (&stream).write_all(data).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    server.join().unwrap()
}
