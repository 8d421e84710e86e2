//! What every binary does after parsing: set up logging and the process,
//! open both endpoints, run the loop, clean up, and pick the exit status.

use std::path::Path;
use std::time::Duration;

use log::{debug, error, info, Level, LevelFilter};

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

/// How a plug ends when it does not come back from the loop by itself.
enum Exit {
    Code(i32),
    /// SIGINT, SIGTERM or SIGHUP: die by it after cleanup.
    Signal(i32),
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
/// What a plug of ours does as one end of a cable (vde_plug_rs, not the
/// node programs), so that a new cable carries no frame before its far end
/// can take it (issue 25: frames that waited in ssh's pipe during a login
/// came late, past `--dedup`).
#[derive(Debug, Default, Clone, Copy)]
pub struct CableEnds {
    /// `URL = COMMAND`: start the command first and open URL once its far
    /// end has answered (its first byte, or its end), or after
    /// [`FAR_END_BOUND`] (a C far end says nothing until it has a frame).
    pub wait_far_end: bool,
}

/// How long a plug waits for its cable's far end before it joins anyway:
/// longer than most ssh logins on a loaded machine (2 to 6 s were seen
/// here, where a bound of 2 s let frames wait in ssh's pipe), for a far
/// end of ours; a C far end with no frame to send joins this late.
pub const FAR_END_BOUND: Duration = Duration::from_secs(5);

pub fn run(common: &Common, a: Opener<'_>, b: Opener<'_>) -> i32 {
    run_cable(common, a, b, CableEnds::default())
}

/// [`run`], for a plug that is one end of a cable.
pub fn run_cable(common: &Common, a: Opener<'_>, b: Opener<'_>, ends: CableEnds) -> i32 {
    init_logging(common.verbose);
    let stderr_file = match common.stderr_file.as_deref().map(daemon::open_stderr_file) {
        None => None,
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => {
            let path = common.stderr_file.as_deref().unwrap_or(Path::new(""));
            eprintln!(
                "vde_plug_rs: {}: {}",
                path.display(),
                crate::sys::describe(&e)
            );
            return 1;
        }
    };
    let detached = if common.daemon {
        match daemon::detach(stderr_file.as_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("daemonize: {}", crate::sys::describe(&e));
                return 1;
            }
        }
    } else {
        if let Some(f) = &stderr_file {
            daemon::stderr_to(f);
        }
        if common.log_to_syslog {
            crate::logger::to_syslog();
        }
        None
    };
    // Detached, the log goes to syslog once stderr is gone, unless a
    // file takes it.
    let on_ready = move || {
        if let Some(d) = detached {
            d.ready();
            if common.log_to_syslog || stderr_file.is_none() {
                crate::logger::to_syslog();
            }
        }
    };
    match run_inner(common, a, b, ends, on_ready) {
        Err(Exit::Signal(sig)) => signals::die_by(sig),
        Err(Exit::Code(code)) => code,
        Ok(code) => code,
    }
}

/// Opens, runs the loop, and gives the exit status of a plug that ended
/// by itself: 0, 1 when a side failed, or the status of a child command
/// that ended it by failing (`ssh` that could not log in: 255).
fn run_inner(
    common: &Common,
    a: Opener<'_>,
    b: Opener<'_>,
    ends: CableEnds,
    on_ready: impl FnOnce(),
) -> Result<i32, Exit> {
    let _pidfile = match &common.pidfile {
        Some(p) => Some(PidFile::create(p).map_err(|e| {
            eprintln!("pidfile {}: {}", p.display(), crate::sys::describe(&e));
            Exit::Code(1)
        })?),
        None => None,
    };
    let _syslog = common.syslog.then(|| SysLog::open("START"));
    let (first, second) = if ends.wait_far_end {
        let second = open_one(b)?;
        wait_far_end(&*second)?;
        (open_one(a)?, second)
    } else {
        (open_one(a)?, open_one(b)?)
    };
    // `URL` with stdin/stdout: stdin/stdout is opened after URL, and its
    // first signal (endpoint/stream.rs) tells the far end that URL is open.
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
        Exit::Code(1)
    })?;
    on_ready();
    let outcome = engine.run().map_err(|e| {
        error!("poll: {e}");
        Exit::Code(1)
    })?;
    if log::log_enabled!(target: crate::logger::STATS, Level::Debug) {
        engine.log_stats(Level::Debug);
    }
    let code = match outcome {
        Outcome::Signal(sig) => return Err(Exit::Signal(sig)),
        Outcome::Stopped(Stop::Ended(why)) => {
            debug!("{why}");
            0
        }
        Outcome::Stopped(Stop::Failed(why)) => {
            error!("{why}");
            1
        }
    };
    match engine.reap() {
        Some(child) => {
            error!("{}", child.why);
            Ok(child.code)
        }
        None => Ok(code),
    }
}

/// Waits until the far end of `cable` answers, ends, or is given up on
/// after [`FAR_END_BOUND`]; SIGINT, SIGTERM or SIGHUP end the wait (and
/// the plug: dropping `cable` ends its command).
fn wait_far_end(cable: &dyn Endpoint) -> Result<(), Exit> {
    let Some(fd) = cable.answer_fd() else {
        return Ok(());
    };
    match signals::wait_fd(fd, libc::POLLIN, FAR_END_BOUND) {
        Ok(true) => debug!("the far end answered"),
        Ok(false) => info!(
            "no word from the far end in {} s (a C plug there?): joining",
            FAR_END_BOUND.as_secs()
        ),
        Err(e) => {
            return Err(match signals::ending_pending() {
                Some(sig) => Exit::Signal(sig),
                None => {
                    error!("poll: {e}");
                    Exit::Code(1)
                }
            })
        }
    }
    Ok(())
}

/// Opens one side; `Err` is the plug's exit: 1 after the `vde_open NAME:
/// REASON` line and the error's detail, or, when SIGINT, SIGTERM or SIGHUP cut the open short,
/// death by that signal once what was opened is closed.
fn open_one(o: Opener<'_>) -> Result<Box<dyn Endpoint>, Exit> {
    (o.open)().map_err(|e| match signals::ending_pending() {
        Some(sig) => Exit::Signal(sig),
        None => {
            // vdeplug4's line first (scripts match it), then what it
            // leaves unsaid.
            eprintln!("vde_open {}: {e}", o.name);
            if let Some(why) = e.detail() {
                eprintln!("{why}");
            }
            Exit::Code(1)
        }
    })
}
