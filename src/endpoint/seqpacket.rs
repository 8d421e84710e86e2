//! `seqpacket://FD`: frames as records on an inherited `SOCK_SEQPACKET`
//! descriptor (one end of a socketpair a parent made), as vdeplug4's
//! seqpacket module takes it. The number is read as `strtol(.., 0)` does
//! (decimal, `0x` hex, `0` octal; no digits is descriptor 0); a negative
//! one is `Invalid argument`, one out of range `Numerical result out of
//! range`, one that is not open `Bad file descriptor`, and one that is
//! not a socket (a file, a terminal: the C module would spin on its
//! errors) `Socket operation on non-socket`. The end of the records (the
//! peer closed) ends the link.

use std::os::fd::{FromRawFd, OwnedFd};

use super::dgram::{plain_frame, DatagramLink, Policy, Verdict};
use super::OpenError;
use crate::batch::{AddrBatch, Datagram};
use crate::sys::SockAddr;

pub(crate) struct Seqpacket {
    label: String,
}

/// `strtol(s, NULL, 0)` with its errno: `Err(ERANGE)` past `long`.
pub(crate) fn strtol(s: &str) -> Result<i64, i32> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, body) = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) if h.starts_with(|c: char| c.is_ascii_hexdigit()) => (16, h),
        _ if t.starts_with('0') => (8, t),
        _ => (10, t),
    };
    let end = body
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(body.len());
    let mut v: i128 = 0;
    for c in body[..end].chars() {
        v = v * i128::from(radix) + i128::from(c.to_digit(radix).unwrap_or(0));
        if v > i128::from(i64::MAX) + 1 {
            return Err(libc::ERANGE);
        }
    }
    let v = if neg { -v } else { v };
    i64::try_from(v).map_err(|_| libc::ERANGE)
}

pub(crate) fn open(spec: &str) -> Result<DatagramLink<Seqpacket>, OpenError> {
    let fd = strtol(spec).map_err(OpenError::errno)?;
    if fd < 0 {
        return Err(OpenError::errno(libc::EINVAL));
    }
    let fd = i32::try_from(fd).map_err(|_| OpenError::errno(libc::EBADF))?;
    // SAFETY: an all-zero stat is valid; fstat fills it (EBADF when the
    // number is not open).
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(OpenError::errno(libc::EBADF));
    }
    // A file or a terminal would never bring a record (nor an end).
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(OpenError::errno(libc::ENOTSOCK));
    }
    crate::sys::set_nonblocking(fd, true)?;
    // SAFETY: the descriptor was handed to us by number; from now on it is
    // ours, closed with the link.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: as above: an open descriptor the locator gives us.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let policy = Seqpacket {
        label: format!("seqpacket://{spec}"),
    };
    Ok(DatagramLink::new(policy, vec![owned], &[]))
}

impl Policy for Seqpacket {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn accept(
        &mut self,
        _: usize,
        _: &AddrBatch,
        _: usize,
        d: &Datagram,
        f: &[u8],
        _: u64,
    ) -> Verdict {
        // A record of no bytes is the end (the C module never sends one).
        if d.len == 0 {
            return Verdict::End;
        }
        plain_frame(f)
    }

    fn route(&mut self, _frame: &[u8], _now: u64) -> Option<SockAddr> {
        None
    }

    fn ends_on_hangup(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::strtol;

    #[test]
    fn numbers_as_strtol_reads_them() {
        assert_eq!(strtol("3"), Ok(3));
        assert_eq!(strtol(" 0x1f"), Ok(31));
        assert_eq!(strtol("010"), Ok(8));
        assert_eq!(strtol("abc"), Ok(0));
        assert_eq!(strtol(""), Ok(0));
        assert_eq!(strtol("-1"), Ok(-1));
        assert_eq!(strtol("7x"), Ok(7));
        assert_eq!(strtol("0x"), Ok(0));
        assert_eq!(strtol("99999999999999999999"), Err(libc::ERANGE));
    }
}
