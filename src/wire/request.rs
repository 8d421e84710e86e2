//! The version-3 request a vde client writes on the control stream.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `0xfeedface`, host order |
//! | 4 | 4 | version `3` |
//! | 8 | 4 | type: low byte 0 = new port, `port << 8` asks for a port |
//! | 12 | 110 | `sockaddr_un` of the client's datagram socket |
//! | 122 | 0..128 | description, no terminating NUL |

use super::sockaddr::{SockaddrUn, SOCKADDR_UN_LEN};
use super::WireError;
use std::path::Path;

pub const SWITCH_MAGIC: u32 = 0xfeed_face;
pub const REQUEST_VERSION: u32 = 3;
pub const REQUEST_HEADER_LEN: usize = 12 + SOCKADDR_UN_LEN;
/// vdeplug4's `MAXDESCR`: the description is cut to this, NUL included.
pub const MAX_DESCRIPTION: usize = 128;
pub const MAX_REQUEST_LEN: usize = REQUEST_HEADER_LEN + MAX_DESCRIPTION;

/// Request type for a new port of the switch's choosing.
pub const REQ_NEW_CONTROL: u32 = 0;
/// Request type for port 0 (vde_switch's "any port 0" compatibility value).
pub const REQ_NEW_PORT0: u32 = 1;
/// The largest port a request can ask for: the port rides in the top 24
/// bits of the type.
pub const MAX_PORT: u64 = (1 << 24) - 1;

#[derive(Debug, Clone, Copy)]
pub struct RequestV3<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RequestV3<T> {
    /// Checks length, magic, version and that the type asks for a new
    /// connection (`type & 0xff == 0`), as a node accepts it.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let len = buffer.as_ref().len();
        if len < REQUEST_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if len > MAX_REQUEST_LEN {
            return Err(WireError::Malformed);
        }
        let r = RequestV3 { buffer };
        if r.magic() != SWITCH_MAGIC
            || r.version() != REQUEST_VERSION
            || r.req_type() & 0xff != REQ_NEW_CONTROL
        {
            return Err(WireError::Malformed);
        }
        Ok(r)
    }

    fn u32_at(&self, at: usize) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    pub fn magic(&self) -> u32 {
        self.u32_at(0)
    }

    pub fn version(&self) -> u32 {
        self.u32_at(4)
    }

    pub fn req_type(&self) -> u32 {
        self.u32_at(8)
    }

    /// The client's datagram socket.
    pub fn sock(&self) -> SockaddrUn<&[u8]> {
        SockaddrUn::new_checked(&self.buffer.as_ref()[12..REQUEST_HEADER_LEN])
            .expect("length checked in new_checked")
    }

    /// The description bytes, up to a NUL if the client sent one.
    pub fn description(&self) -> &[u8] {
        let d = &self.buffer.as_ref()[REQUEST_HEADER_LEN..];
        let end = d.iter().position(|&c| c == 0).unwrap_or(d.len());
        &d[..end]
    }
}

/// Writes a request into `buf` and returns its length (the description is
/// cut to 127 bytes, as the C client's `strncpy` into `MAXDESCR` does).
pub fn emit(
    buf: &mut [u8; MAX_REQUEST_LEN],
    req_type: u32,
    sock: &Path,
    description: &[u8],
) -> Result<usize, WireError> {
    buf.fill(0);
    buf[0..4].copy_from_slice(&SWITCH_MAGIC.to_ne_bytes());
    buf[4..8].copy_from_slice(&REQUEST_VERSION.to_ne_bytes());
    buf[8..12].copy_from_slice(&req_type.to_ne_bytes());
    SockaddrUn::emit(&mut buf[12..REQUEST_HEADER_LEN], sock)?;
    let d = &description[..description.len().min(MAX_DESCRIPTION - 1)];
    buf[REQUEST_HEADER_LEN..REQUEST_HEADER_LEN + d.len()].copy_from_slice(d);
    Ok(REQUEST_HEADER_LEN + d.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let mut b = [0u8; MAX_REQUEST_LEN];
        let n = emit(
            &mut b,
            0,
            Path::new("/tmp/a/.00001-00000"),
            b"vdeplug: user=0",
        )
        .unwrap();
        assert_eq!(n, 122 + 15);
        let r = RequestV3::new_checked(&b[..n]).unwrap();
        assert_eq!(r.magic(), 0xfeedface);
        assert_eq!(r.sock().path().unwrap(), Path::new("/tmp/a/.00001-00000"));
        assert_eq!(r.description(), b"vdeplug: user=0");
    }

    #[test]
    fn rejects_bad_headers() {
        let mut b = [0u8; MAX_REQUEST_LEN];
        let n = emit(&mut b, 3 << 8, Path::new("/x"), b"").unwrap();
        assert!(RequestV3::new_checked(&b[..n]).is_ok());
        assert_eq!(
            RequestV3::new_checked(&b[..100]).unwrap_err(),
            WireError::Truncated
        );
        let mut bad = b;
        bad[0] = 0;
        assert!(RequestV3::new_checked(&bad[..n]).is_err());
        let mut v2 = b;
        v2[4..8].copy_from_slice(&2u32.to_ne_bytes());
        assert!(RequestV3::new_checked(&v2[..n]).is_err());
        let mut p0 = b;
        p0[8..12].copy_from_slice(&REQ_NEW_PORT0.to_ne_bytes());
        assert!(RequestV3::new_checked(&p0[..n]).is_err());
        let long = emit(&mut b, 0, Path::new("/x"), &[b'd'; 300]).unwrap();
        assert_eq!(long, MAX_REQUEST_LEN - 1);
    }

    /// 20,000 random byte strings, and 20,000 valid requests with random
    /// bytes changed: `new_checked` never panics, and whatever it accepts
    /// has a good header and accessors that do not panic either.
    #[test]
    fn random_requests_never_panic() {
        use crate::wire::test_rng::XorShift;
        let mut rng = XorShift::new(0x5eed_0003);
        let mut valid = [0u8; MAX_REQUEST_LEN];
        let vlen = emit(
            &mut valid,
            0,
            Path::new("/tmp/n/.01234-00000"),
            b"vdeplug: x",
        )
        .unwrap();
        let check = |buf: &[u8]| {
            if let Ok(r) = RequestV3::new_checked(buf) {
                assert!((REQUEST_HEADER_LEN..=MAX_REQUEST_LEN).contains(&buf.len()));
                assert_eq!((r.magic(), r.version()), (SWITCH_MAGIC, REQUEST_VERSION));
                assert_eq!(r.req_type() & 0xff, REQ_NEW_CONTROL);
                assert!(r.description().len() <= MAX_DESCRIPTION);
                assert!(!r.description().contains(&0));
                if let Ok(p) = r.sock().path() {
                    use std::os::unix::ffi::OsStrExt;
                    let b = p.as_os_str().as_bytes();
                    assert!(!b.is_empty() && b.len() < 108 && !b.contains(&0));
                }
            }
        };
        for _ in 0..20_000 {
            let len = rng.below(MAX_REQUEST_LEN + 40);
            let mut buf = rng.bytes(len);
            if rng.chance(50) && len >= 12 {
                buf[..4].copy_from_slice(&SWITCH_MAGIC.to_ne_bytes());
                buf[4..8].copy_from_slice(&REQUEST_VERSION.to_ne_bytes());
                buf[8] = 0;
            }
            check(&buf);
        }
        for _ in 0..20_000 {
            let len = vlen.min(MAX_REQUEST_LEN) + rng.below(8);
            let mut buf = valid.to_vec();
            buf.resize(len.min(MAX_REQUEST_LEN + 4), 0);
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(buf.len());
                buf[at] = rng.next_u64() as u8;
            }
            check(&buf);
        }
    }
}
