//! Log lines for the people who read them: `PROGRAM: warning: WHAT` on
//! stderr, the way a command-line tool speaks (no module paths, no
//! padding), written whatever became of stderr; or to syslog
//! ([`to_syslog`]: `--syslog`, and under `-d` once detached without
//! `--stderr FILE`, when syslog is the only way out for warnings, a failed
//! command's status and the counters tables).

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::syslog::SysLogSink;

/// The target of the counters tables (`--stats`, SIGUSR1): shown from
/// `Info` up at every verbosity.
pub const STATS: &str = "stats";

struct Logger {
    program: String,
    level: LevelFilter,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();
/// Set once records go to syslog.
static SYSLOG: Mutex<Option<SysLogSink>> = Mutex::new(None);

/// Sends the `log` macros to stderr under `program`'s name, from `level`
/// up. The first call wins.
pub fn init(program: &str, level: LevelFilter) {
    let logger = LOGGER.get_or_init(|| Logger {
        program: program.to_string(),
        level,
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(logger.level.max(LevelFilter::Info));
    }
}

/// From now on, records go to syslog under the name this program was run
/// by.
pub fn to_syslog() {
    *SYSLOG.lock().unwrap_or_else(|e| e.into_inner()) = Some(SysLogSink::new(program_name()));
}

/// The name this process was run by (its file name), for messages.
pub fn program_name() -> String {
    std::env::args_os()
        .next()
        .as_deref()
        .map(std::path::Path::new)
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "vde_plug_rs".into())
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= self.level || (m.target() == STATS && m.level() <= Level::Info)
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if let Some(sink) = SYSLOG.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            sink.send(record.level(), &record.args().to_string());
            return;
        }
        let label = match record.level() {
            Level::Error => "error: ",
            Level::Warn => "warning: ",
            Level::Info => "",
            Level::Debug => "debug: ",
            Level::Trace => "trace: ",
        };
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}: {label}{}",
            self.program,
            record.args()
        );
    }

    fn flush(&self) {}
}
