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
mod json;
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
pub use json::*;
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

/// The vde_plug_rs under test: this build's, or the one `$VDE_PLUG_RS`
/// names (another architecture's, from scripts/cross), run by
/// `$VDE_PLUG_RS_RUNNER` (an emulator such as qemu-arm-static) when set.
pub fn rs_plug() -> &'static str {
    static P: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let bin = std::env::var("VDE_PLUG_RS")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_vde_plug_rs").to_string());
        match emulator() {
            Some(runner) => emulated_program(&bin, runner),
            None => bin,
        }
    })
}

/// The emulator that runs the program under test, if any.
pub fn emulator() -> Option<&'static str> {
    static R: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        std::env::var("VDE_PLUG_RS_RUNNER")
            .ok()
            .filter(|r| !r.is_empty())
    })
    .as_deref()
}

/// True, and says why on stderr, when the program under test is emulated
/// and `why` keeps (part of) this test from meaning anything there.
pub fn skipped_under_emulation(why: &str) -> bool {
    let Some(runner) = emulator() else {
        return false;
    };
    // Past libtest's capture (which takes the print macros only): a skip
    // is seen in every run's output, passing or not.
    use std::io::Write;
    let name = std::thread::current().name().unwrap_or("?").to_string();
    let _ = writeln!(std::io::stderr(), "skipped under {runner}: {name}: {why}");
    true
}

/// A script that runs `bin` under `runner` with its own argv[0] (so links
/// to it named bonding_node or multi_node work), made in a directory beside
/// `bin`: every command line a test builds (`ip netns exec`, `ssh`, `= CMD`)
/// can name it as it names a native binary, and it keeps the process id
/// (exec).
fn emulated_program(bin: &str, runner: &str) -> String {
    let bin = std::fs::canonicalize(bin).unwrap_or_else(|e| panic!("VDE_PLUG_RS={bin}: {e}"));
    let name = Path::new(runner).file_name().unwrap().to_string_lossy();
    let dir = bin.with_file_name(format!("under-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("vde_plug_rs");
    let body = format!(
        "#!/bin/sh\nexec '{runner}' -0 \"$0\" '{}' \"$@\"\n",
        bin.display()
    );
    if std::fs::read_to_string(&script).ok().as_deref() != Some(body.as_str()) {
        let tmp = dir.join(format!("vde_plug_rs.{}", std::process::id()));
        std::fs::write(&tmp, &body).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, &script).unwrap();
    }
    script.to_string_lossy().into_owned()
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
