//! vde_plug_rs: a drop-in for vde_plug(1); run as `bonding_node` or
//! `multi_node` (links to it), those node programs.

use std::ffi::OsString;

use vde_plug_rs::cli::{self, CliError, Form};
use vde_plug_rs::open::description;
use vde_plug_rs::run::{early_setup, run, Opener};

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
            eprint!("{}", cli::NOT_A_SHELL);
            std::process::exit(255);
        }
        Err(CliError::Usage(why)) => {
            if let Some(why) = why {
                eprintln!("vde_plug_rs: {why}");
            }
            eprint!("{}", cli::USAGE);
            std::process::exit(255);
        }
    };
    if let Some(req) = &opts.common.status {
        std::process::exit(vde_plug_rs::status::run(req));
    }
    let descr = description(opts.description.as_deref());
    let Form { first, other } = opts.form.clone();
    let a = Opener::locator(first, descr.clone(), &opts.args1);
    let b = Opener::other_side(other, descr, &opts.args2, opts.iplog);
    std::process::exit(run(&opts.common, a, b));
}
