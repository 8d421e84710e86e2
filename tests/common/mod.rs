//! Shared harness for the integration tests: real processes, real sockets.
//!
//! A [`Plug`] is a process whose stdin/stdout carry the 2-byte-length
//! stream (vde_plug_rs or the C vde_plug): the test writes frames into it
//! and a reader thread decodes what comes out. Everything a test starts is
//! killed and reaped when its handle drops, and every node directory lives
//! in a [`Scratch`] directory that is removed at the end.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

mod files;
mod frames;
mod net;
mod nodes;
mod procs;
mod raw;

// Every test file takes what it needs of these.
#[allow(unused_imports)]
pub use files::*;
#[allow(unused_imports)]
pub use frames::*;
#[allow(unused_imports)]
pub use net::*;
#[allow(unused_imports)]
pub use nodes::*;
#[allow(unused_imports)]
pub use procs::*;
#[allow(unused_imports)]
pub use raw::*;

pub const C_PLUG: &str = "/usr/bin/vde_plug";
pub const C_SWITCH: &str = "/usr/bin/vde_switch";
/// How long a test waits for something that should happen at once. Not a
/// timing assertion: only a bound on a hang.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub fn rs_plug() -> &'static str {
    env!("CARGO_BIN_EXE_vde_plug_rs")
}

/// `bonding_node` and `multi_node` are links to vde_plug_rs (as installed),
/// made beside it on first use.
fn node_program(name: &str) -> String {
    let plug = Path::new(rs_plug());
    let link = plug.with_file_name(name);
    if std::fs::read_link(&link).ok().as_deref() != Some(Path::new("vde_plug_rs")) {
        let tmp = plug.with_file_name(format!("{name}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink("vde_plug_rs", &tmp).unwrap();
        std::fs::rename(&tmp, &link).unwrap();
    }
    link.to_string_lossy().into_owned()
}

pub fn bonding_node() -> &'static str {
    static P: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    P.get_or_init(|| node_program("bonding_node"))
}

pub fn multi_node() -> &'static str {
    static P: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    P.get_or_init(|| node_program("multi_node"))
}

/// The C reference must be installed: `scripts/test` installs it.
pub fn require_c_reference() {
    for p in [C_PLUG, C_SWITCH] {
        assert!(
            Path::new(p).exists(),
            "{p} is missing: run scripts/test, which installs Debian's vdeplug and vde-switch"
        );
    }
}

#[path = "../../src/wire/test_rng.rs"]
mod test_rng;
#[allow(unused_imports)]
pub use test_rng::XorShift;
