//! `tap://IFNAME`: a Linux tap interface, created if it does not exist
//! (that needs CAP_NET_ADMIN). One frame per read or write, as the tun
//! driver has no batched calls.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use mio::{Interest, Registry};

use super::{register_fd, token, Endpoint, OpenError, Ready, Stop};
use crate::lane::Lane;
use crate::stats::{LinkStats, StatsTable};
use crate::sys;
use crate::wire::{ETH_HEADER_LEN, MAX_FRAME};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

pub struct TapEndpoint {
    name: String,
    fd: OwnedFd,
    readable: bool,
    writable: bool,
    stats: LinkStats,
}

impl TapEndpoint {
    pub fn open(ifname: &str) -> Result<TapEndpoint, OpenError> {
        if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ {
            return Err(OpenError::invalid(format!(
                "tap://{ifname}: an interface name has 1 to {} bytes, this one {}",
                libc::IFNAMSIZ - 1,
                ifname.len()
            )));
        }
        let path = c"/dev/net/tun";
        // SAFETY: open(2) of a constant path.
        let raw = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error().into());
        }
        // SAFETY: raw is a fresh descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TAP | IFF_NO_PI,
            _pad: [0; 22],
        };
        req.name[..ifname.len()].copy_from_slice(ifname.as_bytes());
        // SAFETY: TUNSETIFF reads and writes one struct ifreq.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req) } < 0 {
            return Err(io::Error::last_os_error().into());
        }
        Ok(TapEndpoint {
            name: ifname.to_string(),
            fd,
            readable: true,
            writable: true,
            stats: LinkStats::default(),
        })
    }
}

impl Endpoint for TapEndpoint {
    fn label(&self) -> String {
        format!("tap://{}", self.name)
    }

    fn register(&mut self, registry: &Registry, side: usize) -> io::Result<()> {
        register_fd(
            registry,
            self.fd.as_raw_fd(),
            token(side, 0),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok(())
    }

    fn on_event(&mut self, _registry: &Registry, _local: usize, ready: Ready) -> Result<(), Stop> {
        self.readable |= ready.readable;
        self.writable |= ready.writable;
        Ok(())
    }

    fn fill(&mut self, lane: &mut Lane) -> Result<usize, Stop> {
        let mut queued = 0;
        while self.readable {
            let Some(slot) = lane.ring.reserve() else {
                break;
            };
            let r = sys::read(
                self.fd.as_raw_fd(),
                &mut lane.ring.slot_buf(slot)[..MAX_FRAME],
            );
            match r {
                Ok(n) if n >= ETH_HEADER_LEN => {
                    self.stats.count_in(n);
                    lane.ring.push(slot, n);
                    queued += 1;
                    continue;
                }
                Ok(_) => self.stats.drop_runt += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    lane.ring.unreserve(slot);
                    return Err(Stop::Failed(format!(
                        "{}: read: {}",
                        self.label(),
                        crate::sys::describe(&e)
                    )));
                }
            }
            lane.ring.unreserve(slot);
        }
        Ok(queued)
    }

    fn deliver(&mut self, lane: &mut Lane) -> Result<usize, Stop> {
        let mut done = 0;
        while self.writable && !lane.ring.is_empty() {
            let frame = lane.ring.frame(lane.ring.queued()[0]);
            match sys::write(self.fd.as_raw_fd(), frame) {
                Ok(_) => self.stats.count_out(frame.len()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The interface is down or the frame is refused: drop it.
                Err(_) => self.stats.drop_full += 1,
            }
            done += lane.ring.consume_front(1);
        }
        Ok(done)
    }

    fn report(&self, table: &mut StatsTable) {
        table.row(&self.label(), &self.stats, "");
    }
}
