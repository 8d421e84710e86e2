//! `struct sockaddr_un` as it travels on the vde control stream: a 2-byte
//! family in host order and a 108-byte NUL-padded path, 110 bytes in all.

use super::WireError;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub const SOCKADDR_UN_LEN: usize = 110;
pub const SUN_PATH_LEN: usize = 108;

/// A view of a 110-byte `sockaddr_un`.
#[derive(Debug, Clone, Copy)]
pub struct SockaddrUn<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SockaddrUn<T> {
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < SOCKADDR_UN_LEN {
            return Err(WireError::Truncated);
        }
        Ok(SockaddrUn { buffer })
    }

    pub fn family(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_ne_bytes([b[0], b[1]])
    }

    /// The path up to its first NUL; `Malformed` when the 108 bytes hold no
    /// NUL at all (the kernel would read past them) or the path is empty.
    pub fn path(&self) -> Result<&Path, WireError> {
        let raw = &self.buffer.as_ref()[2..SOCKADDR_UN_LEN];
        let end = raw
            .iter()
            .position(|&c| c == 0)
            .ok_or(WireError::Malformed)?;
        if end == 0 || self.family() != libc::AF_UNIX as u16 {
            return Err(WireError::Malformed);
        }
        Ok(Path::new(OsStr::from_bytes(&raw[..end])))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> SockaddrUn<T> {
    /// Writes an `AF_UNIX` address for `path`; the path must leave room for
    /// its terminating NUL.
    pub fn emit(buffer: T, path: &Path) -> Result<Self, WireError> {
        let mut view = Self::new_checked(buffer)?;
        let p = path.as_os_str().as_bytes();
        if p.len() >= SUN_PATH_LEN {
            return Err(WireError::Malformed);
        }
        let b = &mut view.buffer.as_mut()[..SOCKADDR_UN_LEN];
        b.fill(0);
        b[0..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
        b[2..2 + p.len()].copy_from_slice(p);
        Ok(view)
    }
}

/// Builds a `libc::sockaddr_un` for system calls.
pub fn to_libc(path: &Path) -> std::io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let p = path.as_os_str().as_bytes();
    if p.len() >= addr.sun_path.len() || p.contains(&0) {
        return Err(std::io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(p) {
        *d = *s as libc::c_char;
    }
    Ok((
        addr,
        std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_then_parse() {
        let mut b = [0xaau8; SOCKADDR_UN_LEN];
        SockaddrUn::emit(&mut b[..], Path::new("/tmp/x/fd7")).unwrap();
        let v = SockaddrUn::new_checked(&b[..]).unwrap();
        assert_eq!(v.family(), libc::AF_UNIX as u16);
        assert_eq!(v.path().unwrap(), Path::new("/tmp/x/fd7"));
        assert_eq!(b[12], 0);
    }

    #[test]
    fn rejects_unterminated_and_long() {
        let mut b = [b'a'; SOCKADDR_UN_LEN];
        b[0..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
        assert_eq!(
            SockaddrUn::new_checked(&b[..]).unwrap().path(),
            Err(WireError::Malformed)
        );
        let long = "/".repeat(108);
        assert!(SockaddrUn::emit(&mut b[..], Path::new(&long)).is_err());
        assert!(SockaddrUn::new_checked(&b[..100]).is_err());
    }
}
