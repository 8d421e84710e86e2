//! The command line of `vde_plug_rs`: every form and option of vde_plug(1).
//!
//! Everything after the first lone `=` is the command and its arguments,
//! never our options (so `= ssh -p 2222 host ...` works); before it,
//! options and URLs may come in any order, as with getopt.

use std::ffi::OsString;
use std::path::PathBuf;

use pico_args::Arguments;

use crate::endpoint::vde::OpenArgs;
use crate::number::{self, BadNumber};
use crate::status::StatusRequest;
use crate::wire::request::MAX_PORT;

/// The second side of a plug or a node program: stdin/stdout, a second
/// locator (a cable between two networks), or a command's stdin/stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtherSide {
    Stdio,
    Url(String),
    Command(Vec<String>),
}

/// What a command line joins: the first locator (for the node programs, the
/// node's path; empty: the default) and the other side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub first: String,
    pub other: OtherSide,
}

/// Reads the form from the words left after the options: `[FIRST]`,
/// `FIRST SECOND`, or `[FIRST] = COMMAND ARGS`, as every binary takes them.
pub fn form_of(words: &[OsString], command: Option<Vec<String>>) -> Result<Form, CliError> {
    let words: Vec<String> = words
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let (first, other) = match (words.as_slice(), command) {
        (_, Some(cmd)) if cmd.is_empty() => {
            return Err(CliError::Usage(Some("no command after '='".into())))
        }
        ([], Some(cmd)) => (String::new(), OtherSide::Command(cmd)),
        ([first], Some(cmd)) => (first.clone(), OtherSide::Command(cmd)),
        ([], None) => (String::new(), OtherSide::Stdio),
        ([first], None) => (first.clone(), OtherSide::Stdio),
        ([first, second], None) => (first.clone(), OtherSide::Url(second.clone())),
        _ => return Err(CliError::Usage(Some("too many arguments".into()))),
    };
    Ok(Form { first, other })
}

/// Options shared by every binary of the family.
#[derive(Debug, Clone, Default)]
pub struct Common {
    pub daemon: bool,
    pub pidfile: Option<PathBuf>,
    pub syslog: bool,
    pub verbose: u8,
    pub stats_every: Option<u64>,
    /// `--syslog`: log messages go to syslog (under `-d` they do anyway,
    /// unless `--stderr` names a file).
    pub log_to_syslog: bool,
    /// `--stderr FILE`: stderr appended to FILE (under `-d`, once detached).
    pub stderr_file: Option<PathBuf>,
    /// `--status PATH` (with `--json`, `--watch S`): ask a running node.
    pub status: Option<StatusRequest>,
}

#[derive(Debug, Clone)]
pub struct PlugOptions {
    pub common: Common,
    pub args1: OpenArgs,
    pub args2: OpenArgs,
    pub description: Option<String>,
    pub iplog: bool,
    pub form: Form,
}

#[derive(Debug, PartialEq, Eq)]
pub enum CliError {
    /// Print the usage and exit 255 (vde_plug's -h does the same).
    Usage(Option<String>),
    /// Started as a login shell, or `-c` with anything but vde_plug.
    NotAShell,
}

pub const USAGE: &str = "\
Usage:
  vde_plug_rs [OPTIONS]                       the default switch <-> stdin/stdout
  vde_plug_rs [OPTIONS] URL                   URL <-> stdin/stdout
  vde_plug_rs [OPTIONS] URL URL               a cable between two networks
  vde_plug_rs [OPTIONS] = COMMAND [ARGS]      the default switch <-> COMMAND's stdin/stdout
  vde_plug_rs [OPTIONS] URL = COMMAND [ARGS]  URL <-> COMMAND's stdin/stdout
An omitted or empty URL is the default switch: ~/.vdeplug/default,
~/.vde2/default.switch, or the vde_switch at /var/run/vde.ctl or /tmp/vde.ctl.
URLs: vde://PATH[PORT], hub://PATH, switch://PATH, multi://PATH,
      bonding://PATH, tap://IFNAME, cmd://COMMAND, null://, or a bare PATH.
Options:
  -d, --daemon           run in the background (log messages then go to syslog)
  -p, --pidfile FILE     write the process id to FILE
      --stderr FILE      append stderr (log messages, the command's) to FILE
      --syslog           send log messages to syslog
  -l, --log              log START and STOP to syslog
  -L, --iplog            as -l, and log the IP addresses the stream's frames carry
  -g, --group GROUP      group of the vde:// data socket of the first URL
  -G, --group2 GROUP     the same for the second URL
  -m, --mod MODE         permissions (octal) of that socket, default 0700
  -M, --mod2 MODE        the same for the second URL
      --port N           switch port of the first URL (obsolete: use URL[N])
      --port2 N          switch port of the second URL
  -D, --descr TEXT       description sent to the switch (default \"vdeplug:\")
      --stats SECONDS    log the per-link counters every SECONDS
      --status PATH      show the counters of the running node at PATH
                         (--json for scripts, --watch S to redraw with rates)
  -v, --verbose          log more (twice: debug)
  -h, --help             show this summary
";

/// Users in this group get `-L` when the plug is their forced command.
pub const IPLOG_GROUP: &str = "vdeplug_iplog";

pub const NOT_A_SHELL: &str = "\
This is a Virtual Distributed Ethernet (vde) tunnel broker.
This is not a login shell: only vde_plug can be run through it.
";

impl From<BadNumber> for CliError {
    fn from(e: BadNumber) -> Self {
        CliError::Usage(Some(e.to_string()))
    }
}

/// A command line cut into its parts: what may hold options, the words
/// after a `--` (never options), and the command after the first lone `=`.
pub struct Split {
    pub options: Vec<OsString>,
    pub operands: Vec<OsString>,
    pub command: Option<Vec<String>>,
}

/// Splits `argv` (without the program name) at the first lone `=`, and
/// what precedes it at a lone `--`, as getopt ends its options there.
pub fn split_command(argv: Vec<OsString>) -> Split {
    let (before, command) = match argv.iter().position(|a| a == "=") {
        Some(at) => {
            let cmd = argv[at + 1..]
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            (argv[..at].to_vec(), Some(cmd))
        }
        None => (argv, None),
    };
    let (options, operands) = match before.iter().position(|a| a == "--") {
        Some(at) => (before[..at].to_vec(), before[at + 1..].to_vec()),
        None => (before, Vec::new()),
    };
    Split {
        options,
        operands,
        command,
    }
}

/// A command line after the part every binary shares: `-h`, the common
/// options, and the cuts at `--` and `=`.
pub struct Begun {
    /// What is left to parse for the binary's own options.
    pub args: Arguments,
    pub common: Common,
    pub operands: Vec<OsString>,
    pub command: Option<Vec<String>>,
}

pub fn begin(argv: Vec<OsString>) -> Result<Begun, CliError> {
    let Split {
        options,
        operands,
        command,
    } = split_command(argv);
    let mut args = Arguments::from_vec(options);
    if args.contains(["-h", "--help"]) {
        return Err(CliError::Usage(None));
    }
    let common = common_options(&mut args)?;
    Ok(Begun {
        args,
        common,
        operands,
        command,
    })
}

/// Pulls the options every binary shares.
pub fn common_options(args: &mut Arguments) -> Result<Common, CliError> {
    let bad = |e: pico_args::Error| CliError::Usage(Some(e.to_string()));
    let mut c = Common {
        daemon: args.contains(["-d", "--daemon"]),
        pidfile: args.opt_value_from_str(["-p", "--pidfile"]).map_err(bad)?,
        log_to_syslog: args.contains("--syslog"),
        stderr_file: args.opt_value_from_str("--stderr").map_err(bad)?,
        ..Common::default()
    };
    if let Some(s) = args
        .opt_value_from_str::<_, String>("--stats")
        .map_err(bad)?
    {
        c.stats_every = Some(number::decimal("--stats interval (s)", &s, 1..=86_400)?);
    }
    while args.contains(["-v", "--verbose"]) {
        c.verbose += 1;
    }
    let json = args.contains("--json");
    let watch: Option<String> = args.opt_value_from_str("--watch").map_err(bad)?;
    if let Some(node) = args.opt_value_from_str("--status").map_err(bad)? {
        let watch = match watch {
            Some(s) => Some(number::decimal("--watch interval (s)", &s, 1..=86_400)?),
            None => None,
        };
        c.status = Some(StatusRequest { node, json, watch });
    } else if json || watch.is_some() {
        return Err(CliError::Usage(Some(
            "--json and --watch go with --status PATH".into(),
        )));
    }
    Ok(c)
}

/// Rejects anything left that looks like an option.
pub fn no_stray_options(free: &[OsString]) -> Result<(), CliError> {
    match free
        .iter()
        .find(|a| a.to_string_lossy().starts_with('-') && a.len() > 1)
    {
        Some(a) => Err(CliError::Usage(Some(format!(
            "unknown option '{}'",
            a.to_string_lossy()
        )))),
        None => Ok(()),
    }
}

/// Parses vde_plug's command line. `argv0` is the name we were run by.
pub fn parse(argv0: &str, argv: Vec<OsString>) -> Result<PlugOptions, CliError> {
    if argv0.starts_with('-') {
        return Err(CliError::NotAShell);
    }
    let Begun {
        mut args,
        mut common,
        operands,
        command,
    } = begin(argv)?;
    let bad = |e: pico_args::Error| CliError::Usage(Some(e.to_string()));
    let mut iplog = false;
    if let Some(shell_cmd) = args.opt_value_from_str::<_, String>("-c").map_err(bad)? {
        if shell_cmd != "vde_plug" && shell_cmd != "vde_plug_rs" {
            return Err(CliError::NotAShell);
        }
        // As a forced ssh command: log, and log IPs for members of the
        // group vde_plug reserves for that.
        common.syslog = true;
        iplog = crate::accounts::user_in_group(crate::sys::uid(), IPLOG_GROUP);
    }
    iplog |= args.contains(["-L", "--iplog"]);
    common.syslog |= args.contains(["-l", "--log"]) || iplog;
    let mut args1 = OpenArgs::default();
    let mut args2 = OpenArgs::default();
    if let Some(m) = args
        .opt_value_from_str::<_, String>(["-m", "--mod"])
        .map_err(bad)?
    {
        args1.mode = number::octal("mode", &m, number::MAX_MODE)?;
    }
    if let Some(m) = args
        .opt_value_from_str::<_, String>(["-M", "--mod2"])
        .map_err(bad)?
    {
        args2.mode = number::octal("mode", &m, number::MAX_MODE)?;
    }
    args1.group = args.opt_value_from_str(["-g", "--group"]).map_err(bad)?;
    args2.group = args.opt_value_from_str(["-G", "--group2"]).map_err(bad)?;
    if let Some(p) = args
        .opt_value_from_str::<_, String>("--port")
        .map_err(bad)?
    {
        args1.port = number::decimal("port", &p, 1..=MAX_PORT)? as i32;
    }
    if let Some(p) = args
        .opt_value_from_str::<_, String>("--port2")
        .map_err(bad)?
    {
        args2.port = number::decimal("port", &p, 1..=MAX_PORT)? as i32;
    }
    let description = args.opt_value_from_str(["-D", "--descr"]).map_err(bad)?;
    let free = args.finish();
    no_stray_options(&free)?;
    let words: Vec<OsString> = free.into_iter().chain(operands).collect();
    let form = form_of(&words, command)?;
    Ok(PlugOptions {
        common,
        args1,
        args2,
        description,
        iplog,
        form,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<PlugOptions, CliError> {
        parse("vde_plug_rs", args.iter().map(OsString::from).collect())
    }

    #[test]
    fn forms() {
        let form = |first: &str, other| Form {
            first: first.into(),
            other,
        };
        assert_eq!(p(&[]).unwrap().form, form("", OtherSide::Stdio));
        assert_eq!(
            p(&["/tmp/a"]).unwrap().form,
            form("/tmp/a", OtherSide::Stdio)
        );
        assert_eq!(
            p(&["/a", "/b"]).unwrap().form,
            form("/a", OtherSide::Url("/b".into()))
        );
        assert_eq!(
            p(&["-d", "/a", "=", "ssh", "-p", "22", "h"]).unwrap().form,
            form(
                "/a",
                OtherSide::Command(vec!["ssh".into(), "-p".into(), "22".into(), "h".into()])
            )
        );
        assert_eq!(
            p(&["=", "cat"]).unwrap().form,
            form("", OtherSide::Command(vec!["cat".into()]))
        );
        assert_eq!(
            p(&["-v", "--", "/a", "=", "cat"]).unwrap().form,
            form("/a", OtherSide::Command(vec!["cat".into()]))
        );
        assert!(p(&["/a", "/b", "/c"]).is_err());
        assert!(p(&["/a", "="]).is_err());
    }

    #[test]
    fn options() {
        let o = p(&[
            "-m", "0660", "--group2", "users", "-D", "me", "--port", "3", "/a", "-l",
        ])
        .unwrap();
        assert_eq!(o.args1.mode, 0o660);
        assert_eq!(o.args2.group.as_deref(), Some("users"));
        assert_eq!(o.description.as_deref(), Some("me"));
        assert_eq!(o.args1.port, 3);
        assert!(o.common.syslog);
        assert_eq!(
            p(&["-x"]).unwrap_err(),
            CliError::Usage(Some("unknown option '-x'".into()))
        );
        assert_eq!(p(&["-h"]).unwrap_err(), CliError::Usage(None));
        assert!(p(&["--port", "0"]).is_err());
        assert_eq!(parse("-vde_plug", vec![]).unwrap_err(), CliError::NotAShell);
        assert_eq!(p(&["-c", "bash"]).unwrap_err(), CliError::NotAShell);
        assert!(p(&["-c", "vde_plug"]).is_ok());
    }
}
