//! vde_plug_rs: a drop-in for vde_plug(1); run as `bonding_node` or
//! `multi_node` (links to it), those node programs.

use std::ffi::OsString;
use std::io::Write;

use vde_plug_rs::cli::{self, CliError, Form, OtherSide};
use vde_plug_rs::open::description;
use vde_plug_rs::run::{early_setup, run_cable, CableEnds, Opener};

fn main() {
    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_else(|| OsString::from("vde_plug_rs"));
    // Installed as bonding_node and multi_node too (links to this binary).
    if let Some(status) = vde_plug_rs::node_cli::main_by_name(&argv0) {
        std::process::exit(status);
    }
    early_setup();
    let opts = match cli::parse(&argv0.to_string_lossy(), argv.collect()) {
        Ok(o) => o,
        Err(CliError::NotAShell) => {
            let _ = std::io::stderr().write_all(cli::NOT_A_SHELL.as_bytes());
            std::process::exit(255);
        }
        Err(CliError::Usage(why)) => {
            // Written whatever becomes of stderr (a reader that left must
            // not turn a usage error into a panic).
            let why = why
                .map(|w| format!("vde_plug_rs: {w}\n"))
                .unwrap_or_default();
            let _ = std::io::stderr().write_all(format!("{why}{}", cli::USAGE).as_bytes());
            std::process::exit(255);
        }
    };
    if opts.version {
        let _ = std::io::stdout().write_all(cli::VERSION.as_bytes());
        std::process::exit(0);
    }
    if let Some(req) = &opts.common.status {
        std::process::exit(vde_plug_rs::status::run(req));
    }
    let descr = description(opts.description.as_deref());
    let Form { first, other } = opts.form.clone();
    let ends = CableEnds {
        wait_far_end: matches!(other, OtherSide::Command(_)),
    };
    let a = Opener::locator(first, descr.clone(), &opts.args1);
    let b = Opener::other_side(other, descr, &opts.args2, opts.iplog);
    std::process::exit(run_cable(&opts.common, a, b, ends));
}
