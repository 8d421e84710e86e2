//! libvdeplug_{bonding,multi,hub,switch}.so: vdeplug4's module ABI over
//! vde_plug_rs's node core ([`HostedNode`]).
//!
//! libvdeplug `dlopen`s `libvdeplug_NAME.so`, reads the data symbol
//! `vdeplug_ops` and calls through it. One shared object serves the four
//! names: each installed copy learns which node kind it is from its own
//! file name (`dladdr`), so the four behave exactly like four builds.
//!
//! Inside someone else's process (qemu, vde_plug): no threads, no signal
//! handlers, nothing on stdout, no exit; logging to stderr only when
//! `VDE_PLUG_RS_LOG` names a level. No input reaches a panic.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;

use vde_plug_rs::endpoint::node::config::KindName;
use vde_plug_rs::hosted::HostedNode;

/// `struct vde_open_args` of libvdeplug.h.
#[repr(C)]
pub struct VdeOpenArgs {
    pub port: c_int,
    pub group: *const c_char,
    pub mode: libc::mode_t,
}

/// `struct vdeplug_module` of libvdeplug_mod.h.
#[repr(C)]
pub struct VdeplugModule {
    pub flags: c_int,
    pub vde_open_real:
        unsafe extern "C" fn(*mut c_char, *mut c_char, c_int, *mut VdeOpenArgs) -> *mut Conn,
    pub vde_recv: unsafe extern "C" fn(*mut Conn, *mut c_void, usize, c_int) -> isize,
    pub vde_send: unsafe extern "C" fn(*mut Conn, *const c_void, usize, c_int) -> isize,
    pub vde_datafd: unsafe extern "C" fn(*mut Conn) -> c_int,
    pub vde_ctlfd: unsafe extern "C" fn(*mut Conn) -> c_int,
    pub vde_close: unsafe extern "C" fn(*mut Conn) -> c_int,
}

/// The connection libvdeplug gets back: its two fields first (it fills
/// them in), then ours.
#[repr(C)]
pub struct Conn {
    handle: *mut c_void,
    module: *mut c_void,
    node: HostedNode,
}

#[no_mangle]
#[used]
pub static vdeplug_ops: VdeplugModule = VdeplugModule {
    flags: 0,
    vde_open_real: open,
    vde_recv: recv,
    vde_send: send,
    vde_datafd: datafd,
    vde_ctlfd: ctlfd,
    vde_close: close,
};

fn set_errno(e: c_int) {
    // SAFETY: errno is thread-local storage of the calling thread.
    unsafe { *libc::__errno_location() = e };
}

/// Logging is off unless `VDE_PLUG_RS_LOG` names a level (error, warn,
/// info, debug, trace); it goes to stderr.
fn init_logging() {
    let Some(level) = std::env::var("VDE_PLUG_RS_LOG")
        .ok()
        .and_then(|v| v.parse::<log::LevelFilter>().ok())
    else {
        return;
    };
    vde_plug_rs::logger::init("vdeplug_rs", level);
}

/// The module name from this object's file name: `libvdeplug_NAME.so`.
fn module_name() -> Option<String> {
    // SAFETY: dladdr only reads the loader's tables; info is written by it.
    let file = unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        let me = &vdeplug_ops as *const VdeplugModule as *const c_void;
        if libc::dladdr(me, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        CStr::from_ptr(info.dli_fname)
            .to_string_lossy()
            .into_owned()
    };
    let base = file.rsplit('/').next()?;
    let name = base.strip_prefix("libvdeplug_")?.split('.').next()?;
    Some(name.to_string())
}

/// # Safety
/// `args` is a C string or null, as libvdeplug passes it; so is `descr`;
/// the open arguments are not read.
unsafe extern "C" fn open(
    args: *mut c_char,
    _descr: *mut c_char,
    _interface_version: c_int,
    // Ignored, as the installed 4.0.1 node modules do (see HostedNode::open).
    _open_args: *mut VdeOpenArgs,
) -> *mut Conn {
    init_logging();
    let Some(scheme) = module_name().filter(|m| KindName::from_scheme(m).is_some()) else {
        set_errno(libc::EPROTONOSUPPORT);
        return ptr::null_mut();
    };
    let args = if args.is_null() {
        String::new()
    } else {
        // SAFETY: a C string from libvdeplug.
        unsafe { CStr::from_ptr(args) }
            .to_string_lossy()
            .into_owned()
    };
    match HostedNode::open(&scheme, &args) {
        Ok(node) => Box::into_raw(Box::new(Conn {
            handle: ptr::null_mut(),
            module: ptr::null_mut(),
            node,
        })),
        Err(e) => {
            // Never printed here: the program prints `vde_open URL: REASON`.
            if let Some(why) = e.detail() {
                log::warn!("{scheme}://{args}: {why}");
            }
            set_errno(e.code());
            ptr::null_mut()
        }
    }
}

/// # Safety
/// `conn` came from `open` and is not closed; `buf` holds `len` bytes.
unsafe extern "C" fn recv(conn: *mut Conn, buf: *mut c_void, len: usize, _flags: c_int) -> isize {
    // SAFETY: as the caller promises.
    let Some(conn) = (unsafe { conn.as_mut() }) else {
        set_errno(libc::EBADF);
        return -1;
    };
    let buf: &mut [u8] = if buf.is_null() {
        &mut []
    } else {
        // SAFETY: as the caller promises.
        unsafe { std::slice::from_raw_parts_mut(buf.cast(), len) }
    };
    conn.node.recv(buf) as isize
}

/// # Safety
/// `conn` came from `open` and is not closed; `buf` holds `len` bytes.
unsafe extern "C" fn send(conn: *mut Conn, buf: *const c_void, len: usize, _flags: c_int) -> isize {
    // SAFETY: as the caller promises.
    let Some(conn) = (unsafe { conn.as_mut() }) else {
        set_errno(libc::EBADF);
        return -1;
    };
    if !buf.is_null() {
        // SAFETY: as the caller promises.
        conn.node
            .send(unsafe { std::slice::from_raw_parts(buf.cast(), len) });
    }
    len as isize
}

/// # Safety
/// `conn` came from `open` and is not closed.
unsafe extern "C" fn datafd(conn: *mut Conn) -> c_int {
    // SAFETY: as the caller promises.
    unsafe { conn.as_ref() }.map_or(-1, |c| c.node.datafd())
}

unsafe extern "C" fn ctlfd(_conn: *mut Conn) -> c_int {
    -1
}

/// # Safety
/// `conn` came from `open`; it is freed here (the node directory goes).
unsafe extern "C" fn close(conn: *mut Conn) -> c_int {
    if !conn.is_null() {
        // SAFETY: made by Box::into_raw in `open`, closed once.
        drop(unsafe { Box::from_raw(conn) });
    }
    0
}
