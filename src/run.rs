//! What every binary does after parsing: set up logging and the process,
//! open both endpoints, run the loop, clean up, and pick the exit status.

use std::time::Duration;

use log::{debug, error, Level, LevelFilter};

use crate::cli::{Common, OtherSide};
use crate::daemon::{self, PidFile, SysLog};
use crate::endpoint::cmd::CommandEndpoint;
use crate::endpoint::stream::StreamEndpoint;
use crate::endpoint::vde::OpenArgs;
use crate::endpoint::{Endpoint, OpenError, Stop};
use crate::engine::{Engine, Outcome};
use crate::open::open;
use crate::signals;

/// Something to open, with the name its errors are reported under
/// (`vde_open NAME: REASON`).
pub struct Opener<'a> {
    pub name: String,
    pub open: Box<dyn FnOnce() -> Result<Box<dyn Endpoint>, OpenError> + 'a>,
}

impl<'a> Opener<'a> {
    /// A locator, opened with `descr` and `args`; an empty one is the
    /// default switch.
    pub fn locator(url: String, descr: String, args: &'a OpenArgs) -> Opener<'a> {
        Opener {
            name: if url.is_empty() {
                "default switch".into()
            } else {
                url.clone()
            },
            open: Box::new(move || open(&url, &descr, args)),
        }
    }

    /// The second side of a plug or node program: stdin/stdout, a second
    /// locator (opened with `descr` and `args`), or a command; `iplog`
    /// logs the IP addresses in the frames a stream or command sends (-L).
    pub fn other_side(
        other: OtherSide,
        descr: String,
        args: &'a OpenArgs,
        iplog: bool,
    ) -> Opener<'a> {
        match other {
            OtherSide::Stdio => Opener {
                name: "stdin/stdout".into(),
                open: Box::new(move || {
                    let stream = StreamEndpoint::stdio()?;
                    let stream = if iplog { stream.with_ip_log() } else { stream };
                    Ok(Box::new(stream) as Box<dyn Endpoint>)
                }),
            },
            OtherSide::Url(url) => Opener::locator(url, descr, args),
            OtherSide::Command(cmd) => Opener {
                name: cmd.join(" "),
                open: Box::new(move || {
                    let child = CommandEndpoint::spawn(&cmd)?;
                    let child = if iplog { child.with_ip_log() } else { child };
                    Ok(Box::new(child) as Box<dyn Endpoint>)
                }),
            },
        }
    }
}

/// First thing in `main`: signals blocked (they wait for the loop), and
/// room for many cables.
pub fn early_setup() {
    signals::block();
    daemon::raise_fd_limit();
}

pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => LevelFilter::Warn,
        1 => LevelFilter::Info,
        _ => LevelFilter::Debug,
    };
    crate::logger::init(&crate::logger::program_name(), level);
}

/// Runs a plug between `a` and `b` and returns the exit status; ending
/// signals other than SIGTERM are re-raised after cleanup.
pub fn run(common: &Common, a: Opener<'_>, b: Opener<'_>) -> i32 {
    init_logging(common.verbose);
    if common.daemon {
        if let Err(e) = daemon::daemonize() {
            eprintln!("vde_plug_rs daemonize: {}", crate::sys::describe(&e));
            return 1;
        }
    }
    let outcome = run_inner(common, a, b);
    match outcome {
        Ok(Outcome::Signal(sig)) => signals::die_by(sig),
        Ok(Outcome::Stopped(Stop::Ended(why))) => {
            debug!("{why}");
            0
        }
        Ok(Outcome::Stopped(Stop::Failed(why))) => {
            error!("{why}");
            1
        }
        Err(code) => code,
    }
}

fn run_inner(common: &Common, a: Opener<'_>, b: Opener<'_>) -> Result<Outcome, i32> {
    let _pidfile = match &common.pidfile {
        Some(p) => Some(PidFile::create(p).map_err(|e| {
            eprintln!("pidfile {}: {}", p.display(), crate::sys::describe(&e));
            1
        })?),
        None => None,
    };
    let _syslog = common.syslog.then(|| SysLog::open("START"));
    let first = open_one(a)?;
    let second = open_one(b)?;
    let mut engine = Engine::new(
        first,
        second,
        common
            .stats_every
            .filter(|&s| s > 0)
            .map(Duration::from_secs),
    )
    .map_err(|e| {
        eprintln!("vde_plug_rs: {}", crate::sys::describe(&e));
        1
    })?;
    let outcome = engine.run().map_err(|e| {
        eprintln!("vde_plug_rs: poll: {}", crate::sys::describe(&e));
        1
    })?;
    if log::log_enabled!(target: crate::logger::STATS, Level::Debug) {
        engine.log_stats(Level::Debug);
    }
    Ok(outcome)
}

fn open_one(o: Opener<'_>) -> Result<Box<dyn Endpoint>, i32> {
    (o.open)().map_err(|e| {
        eprintln!("vde_open {}: {e}", o.name);
        1
    })
}
