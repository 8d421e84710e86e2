//! vde_plug_rs: a drop-in for vde_plug(1); run as `bonding_node` or
//! `multi_node` (links to it), those node programs.

use std::ffi::OsString;

use vde_plug_rs::cli::{self, CliError, Form};
use vde_plug_rs::endpoint::cmd::CommandEndpoint;
use vde_plug_rs::endpoint::stream::StreamEndpoint;
use vde_plug_rs::endpoint::Endpoint;
use vde_plug_rs::open::{description, open};
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
    let shown = |url: &str| {
        if url.is_empty() {
            "default switch".to_string()
        } else {
            url.to_string()
        }
    };
    let (first, args1, args2) = (opts.form.clone(), &opts.args1, &opts.args2);
    let iplog = opts.iplog;
    let (a, b) = match first {
        Form::Stream(url) => (
            Opener {
                name: shown(&url),
                open: Box::new(move || open(&url, &descr, args1)),
            },
            Opener {
                name: "stdin/stdout".into(),
                open: Box::new(move || {
                    let stream = StreamEndpoint::stdio()?;
                    let stream = if iplog { stream.with_ip_log() } else { stream };
                    Ok(Box::new(stream) as Box<dyn Endpoint>)
                }),
            },
        ),
        Form::Cable(u1, u2) => {
            let d2 = descr.clone();
            (
                Opener {
                    name: shown(&u1),
                    open: Box::new(move || open(&u1, &descr, args1)),
                },
                Opener {
                    name: shown(&u2),
                    open: Box::new(move || open(&u2, &d2, args2)),
                },
            )
        }
        Form::Command(url, cmd) => (
            Opener {
                name: shown(&url),
                open: Box::new(move || open(&url, &descr, args1)),
            },
            Opener {
                name: cmd.join(" "),
                open: Box::new(move || {
                    let child = CommandEndpoint::spawn(&cmd)?;
                    let child = if iplog { child.with_ip_log() } else { child };
                    Ok(Box::new(child) as Box<dyn Endpoint>)
                }),
            },
        ),
    };
    std::process::exit(run(&opts.common, a, b));
}
