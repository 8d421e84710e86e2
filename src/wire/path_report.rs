//! The path report: a 12-byte datagram that two bonding nodes of ours send
//! each other on every cable, so that each knows what its cables deliver
//! (`policy=path`). It is shorter than an Ethernet header on purpose: a C
//! `vde_plug` drops anything shorter than 14 bytes before it reaches a
//! stream, and a C node drops it before the host, so a C peer never sees
//! one; our plugs carry it between cables like any frame.
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 3 | magic `0xfe 'v' 'g'` |
//! | 3 | 4 | `rx_at_echo`: data bytes the sender had received on this cable (mod 2³²) when the echoed stamp arrived |
//! | 7 | 2 | `stamp`: the sender's clock, in ms (mod 2¹⁶) |
//! | 9 | 2 | `echo`: the last stamp the sender received on this cable |
//! | 11 | 1 | `hold`: ms between that stamp's arrival and this report (at most 255) |
//!
//! All fields big endian. A report carries no address: it belongs to the
//! cable it travels on. The magic names the sequence tag the sender puts
//! on its frames (`'g'`, see [`super::seq_tag`]; reports of earlier tags'
//! nodes, `0xfe 'v' 'r'` and `0xfe 'v' 'f'`, are not reports to ours: such
//! a node is never answered, and gets untagged frames, as a C peer does).

use super::WireError;

pub(crate) const PATH_REPORT_LEN: usize = 12;
const MAGIC: [u8; 3] = [0xfe, b'v', b'g'];
const RX_AT_ECHO: std::ops::Range<usize> = 3..7;
const STAMP: std::ops::Range<usize> = 7..9;
const ECHO: std::ops::Range<usize> = 9..11;
const HOLD: usize = 11;

/// Whether a datagram is a path report (not a frame).
pub fn is_path_report(buf: &[u8]) -> bool {
    buf.len() == PATH_REPORT_LEN && buf[..3] == MAGIC
}

/// A view of a path report.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PathReport<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> PathReport<T> {
    pub(crate) fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < PATH_REPORT_LEN {
            return Err(WireError::Truncated);
        }
        if !is_path_report(b) {
            return Err(WireError::Malformed);
        }
        Ok(PathReport { buffer })
    }

    fn u16_at(&self, r: std::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub(crate) fn rx_at_echo(&self) -> u32 {
        let b = &self.buffer.as_ref()[RX_AT_ECHO];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    pub(crate) fn stamp(&self) -> u16 {
        self.u16_at(STAMP)
    }

    pub(crate) fn echo(&self) -> u16 {
        self.u16_at(ECHO)
    }

    pub(crate) fn hold(&self) -> u8 {
        self.buffer.as_ref()[HOLD]
    }
}

/// The fields of a report to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReportFields {
    pub(crate) rx_at_echo: u32,
    pub(crate) stamp: u16,
    pub(crate) echo: u16,
    pub(crate) hold: u8,
}

/// Writes a report.
pub(crate) fn emit(buf: &mut [u8; PATH_REPORT_LEN], f: &ReportFields) {
    buf[..3].copy_from_slice(&MAGIC);
    buf[RX_AT_ECHO].copy_from_slice(&f.rx_at_echo.to_be_bytes());
    buf[STAMP].copy_from_slice(&f.stamp.to_be_bytes());
    buf[ECHO].copy_from_slice(&f.echo.to_be_bytes());
    buf[HOLD] = f.hold;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_and_read_back() {
        let f = ReportFields {
            rx_at_echo: 0x0102_0304,
            stamp: 0xbeef,
            echo: 0x1234,
            hold: 7,
        };
        let mut b = [0u8; PATH_REPORT_LEN];
        emit(&mut b, &f);
        assert_eq!(b, [0xfe, b'v', b'g', 1, 2, 3, 4, 0xbe, 0xef, 0x12, 0x34, 7]);
        let r = PathReport::new_checked(&b[..]).unwrap();
        assert_eq!(r.rx_at_echo(), 0x0102_0304);
        assert_eq!((r.stamp(), r.echo(), r.hold()), (0xbeef, 0x1234, 7));
    }

    #[test]
    fn frames_and_junk_are_not_reports() {
        let mut b = [0u8; PATH_REPORT_LEN];
        emit(
            &mut b,
            &ReportFields {
                rx_at_echo: 0,
                stamp: 0,
                echo: 0,
                hold: 0,
            },
        );
        assert!(is_path_report(&b));
        // Not its length: an Ethernet frame that happens to start so.
        let mut frame = [0u8; 60];
        frame[..PATH_REPORT_LEN].copy_from_slice(&b);
        assert!(!is_path_report(&frame));
        assert!(!is_path_report(&b[..11]));
        // A report of a node whose frames carry the first sequence tag.
        b[2] = b'r';
        assert!(!is_path_report(&b));
        b[1] = b'x';
        assert!(!is_path_report(&b));
        assert_eq!(
            PathReport::new_checked(&b[..]).unwrap_err(),
            WireError::Malformed
        );
        assert_eq!(
            PathReport::new_checked(&b[..5]).unwrap_err(),
            WireError::Truncated
        );
    }
}
