//! `udp://[SRC_ADDR:]SRC_PORT->DST_ADDR:DST_PORT`: a point-to-point cable
//! over UDP, as vdeplug4's udp module: one unconnected socket bound to the
//! source, every frame sent to the destination, frames taken from anyone.
//!
//! The address is taken as written (no `[...]` options, no quoting): the
//! part before `->` is the source, the last `:` of each side splits host
//! and port, and IPv6 addresses are written bare (`::1:5000`).

use std::net::SocketAddr;

use super::dgram::{plain_frame, DatagramLink, Policy, Verdict};
use super::inet::{resolve, resolve_host, Family};
use super::OpenError;
use crate::batch::{AddrBatch, Datagram};
use crate::sys::{self, SockAddr};

/// The receive buffer asked for, in bytes.
const RCVBUF: libc::c_int = 4 << 20;

pub(crate) struct Udp {
    label: String,
    dest: SockAddr,
}

/// The source and the destination, or the errno the C module gives.
pub(crate) fn parse(spec: &str) -> Result<(SocketAddr, SocketAddr), OpenError> {
    // No `->`: the C module fails without setting errno (`Success`);
    // ours says what is wrong.
    let (src, dst) = spec.split_once("->").ok_or_else(|| {
        OpenError::invalid(format!(
            "udp://{spec}: no `->`: write udp://[LOCAL_ADDRESS:]LOCAL_PORT->REMOTE_ADDRESS:REMOTE_PORT"
        ))
    })?;
    let (dhost, dport) = dst.rsplit_once(':').ok_or(OpenError::errno(libc::EINVAL))?;
    let abort = OpenError::errno(libc::ECONNABORTED);
    let dest = resolve(dhost, dport, Family::Any).ok_or(OpenError::errno(libc::ECONNABORTED))?;
    let family = Family::of(&dest.ip());
    let (shost, sport) = match src.rsplit_once(':') {
        None => ("", src),
        Some((h, p)) => (h, p),
    };
    let host = if shost.is_empty() {
        family.unspecified()
    } else {
        resolve_host(shost, family).ok_or(OpenError::errno(libc::ECONNABORTED))?
    };
    let port = super::inet::parse_port(sport).ok_or(abort)?;
    Ok((SocketAddr::new(host, port), dest))
}

pub(crate) fn open(spec: &str) -> Result<DatagramLink<Udp>, OpenError> {
    let (src, dest) = parse(spec)?;
    let family = if src.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let fd = sys::socket(family, libc::SOCK_DGRAM, 0)?;
    sys::bind_addr(&fd, &SockAddr::from_inet(src))
        .map_err(|_| OpenError::errno(libc::ECONNABORTED))?;
    // UDP has no backpressure: what arrives while the loop is not
    // scheduled waits in this buffer or is lost. Ask for room for a few
    // milliseconds at full speed; with UDP_GRO (`with_gro`) a coalesced
    // datagram of many frames takes the room of one, so it holds many
    // more of a GSO sender's frames. SO_RCVBUF is capped at
    // net.core.rmem_max (208 KiB unless raised); root may pass the cap
    // with SO_RCVBUFFORCE, anyone else gets what the cap allows.
    if sys::setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &RCVBUF).is_err() {
        let _ = sys::setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &RCVBUF);
    }
    let policy = Udp {
        label: format!("udp://{spec}"),
        dest: SockAddr::from_inet(dest),
    };
    Ok(DatagramLink::new(policy, vec![fd], &[]).with_gro())
}

impl Policy for Udp {
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
        Some(self.dest)
    }

    fn udp(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<(String, String), i32> {
        parse(s)
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .map_err(|e| e.code())
    }

    #[test]
    fn forms_and_errors() {
        assert_eq!(
            p("5000->198.18.0.2:5001"),
            Ok(("0.0.0.0:5000".into(), "198.18.0.2:5001".into()))
        );
        assert_eq!(
            p("198.18.0.1:5000->198.18.0.2:5001"),
            Ok(("198.18.0.1:5000".into(), "198.18.0.2:5001".into()))
        );
        assert_eq!(
            p(":5000->::1:5001"),
            Ok(("[::]:5000".into(), "[::1]:5001".into()))
        );
        assert_eq!(p("5000"), Err(libc::EINVAL));
        assert_eq!(p("5000->198.18.0.2"), Err(libc::EINVAL));
        assert_eq!(p("5000->[::1]:5001"), Err(libc::ECONNABORTED));
        assert_eq!(p("abc->198.18.0.2:5001"), Err(libc::ECONNABORTED));
        assert_eq!(p("::1:5000->198.18.0.2:5001"), Err(libc::ECONNABORTED));
        assert_eq!(p("5000->198.18.0.2:5001[x=1]"), Err(libc::ECONNABORTED));
    }
}
