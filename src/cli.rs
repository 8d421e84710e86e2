//! The command line of `vde_plug_rs`: every form and option of vde_plug(1),
//! read with getopt's rules ([`crate::getopt`]).
//!
//! Everything after the first `=` operand is the command and its
//! arguments, never our options (so `= ssh -p 2222 host ...` works); before
//! it, options and URLs may come in any order, as with getopt.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::endpoint::vde::OpenArgs;
use crate::getopt::{Getopt, Item, Opt};
use crate::number::{self, BadNumber};
use crate::status::StatusRequest;
use crate::wire::request::MAX_PORT;

/// The second side of a plug or a node program: stdin/stdout, a second
/// locator (a cable between two networks), or a command's stdin/stdout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum OtherSide {
    #[default]
    Stdio,
    Url(String),
    Command(Vec<String>),
}

/// What a command line joins: the first locator (for the node programs, the
/// node's path; empty: the default) and the other side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

#[derive(Debug, Clone, Default)]
pub struct PlugOptions {
    pub common: Common,
    pub args1: OpenArgs,
    pub args2: OpenArgs,
    pub description: Option<String>,
    pub iplog: bool,
    pub form: Form,
    /// `--version`: print [`VERSION`], nothing else.
    pub version: bool,
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
URLs (each module's options: vde_plug_rs(1)):
  vde://PATH[PORT] or a bare PATH     a port of a vde_switch or of a node
  hub://PATH  switch://PATH  multi://PATH  bonding://PATH   a new node
  tap://IFNAME  cmd://COMMAND  null://
  udp://[SRC:]PORT->HOST:PORT  ptp://PATH  seqpacket://FD
  vxlan://[GROUP][/OPTIONS]  vxvde://[GROUP][/OPTIONS]
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
  -c vde_plug            as a login shell: the only command it runs
  -h, --help             show this summary
      --version          show the version
Long options may be shortened to a unique prefix (--daem); options and
URLs mix, the last of a repeated option wins; every word after = is the
command's.
";

/// What `--version` prints.
pub const VERSION: &str = concat!("vde_plug_rs ", env!("CARGO_PKG_VERSION"), "\n");

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

/// The options of `vde_plug_rs`, for [`PLUG_OPTIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlugOpt {
    Pidfile,
    Daemon,
    Port,
    Port2,
    Mod,
    Mod2,
    Group,
    Group2,
    Descr,
    Log,
    Iplog,
    Help,
    Shell,
    Verbose,
    Stats,
    Status,
    Json,
    Watch,
    Version,
    Stderr,
    Syslog,
}

/// vde_plug's options in its own order (getopt lists an ambiguous
/// prefix's candidates in table order), then ours.
pub const PLUG_OPTIONS: [Opt<PlugOpt>; 21] = [
    Opt::value(PlugOpt::Pidfile, "pidfile", Some(b'p')),
    Opt::flag(PlugOpt::Daemon, "daemon", Some(b'd')),
    Opt::value(PlugOpt::Port, "port", None),
    Opt::value(PlugOpt::Port2, "port2", None),
    Opt::value(PlugOpt::Mod, "mod", Some(b'm')),
    Opt::value(PlugOpt::Mod2, "mod2", Some(b'M')),
    Opt::value(PlugOpt::Group, "group", Some(b'g')),
    Opt::value(PlugOpt::Group2, "group2", Some(b'G')),
    Opt::value(PlugOpt::Descr, "descr", Some(b'D')),
    Opt::flag(PlugOpt::Log, "log", Some(b'l')),
    Opt::flag(PlugOpt::Iplog, "iplog", Some(b'L')),
    Opt::flag(PlugOpt::Help, "help", Some(b'h')),
    Opt::short_value(PlugOpt::Shell, b'c'),
    Opt::flag(PlugOpt::Verbose, "verbose", Some(b'v')),
    Opt::value(PlugOpt::Stats, "stats", None),
    Opt::value(PlugOpt::Status, "status", None),
    Opt::flag(PlugOpt::Json, "json", None),
    Opt::value(PlugOpt::Watch, "watch", None),
    Opt::flag(PlugOpt::Version, "version", None),
    Opt::value(PlugOpt::Stderr, "stderr", None),
    Opt::flag(PlugOpt::Syslog, "syslog", None),
];

/// The rows of [`PLUG_OPTIONS`] every binary of the family takes (the
/// node programs too: src/node_cli.rs).
pub const COMMON_OPTIONS: [PlugOpt; 10] = [
    PlugOpt::Pidfile,
    PlugOpt::Daemon,
    PlugOpt::Help,
    PlugOpt::Verbose,
    PlugOpt::Stats,
    PlugOpt::Status,
    PlugOpt::Json,
    PlugOpt::Watch,
    PlugOpt::Stderr,
    PlugOpt::Syslog,
];

/// The common options as they come, checked together at the end
/// (`--json` needs `--status`, wherever each is).
#[derive(Debug, Default)]
pub struct CommonParts {
    pub common: Common,
    status: Option<String>,
    json: bool,
    watch: Option<String>,
}

impl CommonParts {
    /// Applies one of [`COMMON_OPTIONS`] with its value (a flag's: none).
    /// `-h` is [`CliError::Usage`]`(None)`. False: `opt` is not common.
    pub fn take(&mut self, opt: PlugOpt, value: Option<OsString>) -> Result<bool, CliError> {
        let raw = value.unwrap_or_default();
        let c = &mut self.common;
        match opt {
            // A file name is bytes, as given.
            PlugOpt::Pidfile => c.pidfile = Some(PathBuf::from(raw)),
            PlugOpt::Daemon => c.daemon = true,
            PlugOpt::Help => return Err(CliError::Usage(None)),
            PlugOpt::Verbose => c.verbose = c.verbose.saturating_add(1),
            PlugOpt::Stats => c.stats_every = Some(stats_interval(&raw.to_string_lossy())?),
            PlugOpt::Status => self.status = Some(raw.to_string_lossy().into_owned()),
            PlugOpt::Json => self.json = true,
            PlugOpt::Watch => self.watch = Some(raw.to_string_lossy().into_owned()),
            PlugOpt::Stderr => c.stderr_file = Some(PathBuf::from(raw)),
            PlugOpt::Syslog => c.log_to_syslog = true,
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub fn finish(mut self) -> Result<Common, CliError> {
        self.common.status = status_request(self.status, self.json, self.watch)?;
        Ok(self.common)
    }
}

/// `--stats SECONDS`.
fn stats_interval(s: &str) -> Result<u64, CliError> {
    Ok(number::decimal("--stats interval (s)", s, 1..=86_400)?)
}

/// `--status NODE [--json] [--watch S]`; `--json` and `--watch` alone are
/// an error.
fn status_request(
    node: Option<String>,
    json: bool,
    watch: Option<String>,
) -> Result<Option<StatusRequest>, CliError> {
    let Some(node) = node else {
        if json || watch.is_some() {
            return Err(CliError::Usage(Some(
                "--json and --watch go with --status PATH".into(),
            )));
        }
        return Ok(None);
    };
    let watch = match watch {
        Some(s) => Some(number::decimal("--watch interval (s)", &s, 1..=86_400)?),
        None => None,
    };
    Ok(Some(StatusRequest { node, json, watch }))
}

/// A switch port given with `--port`/`--port2`.
fn port(s: &str) -> Result<i32, CliError> {
    Ok(number::decimal("port", s, 1..=MAX_PORT)? as i32)
}

/// Splits the operands at the first `=`: the words before it, and the
/// command after it.
pub fn operands_and_command(mut operands: Vec<OsString>) -> (Vec<OsString>, Option<Vec<String>>) {
    match operands.iter().position(|a| a == "=") {
        Some(at) => {
            let cmd = operands
                .split_off(at)
                .into_iter()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            (operands, Some(cmd))
        }
        None => (operands, None),
    }
}

/// Parses vde_plug's command line with getopt's rules (src/getopt.rs),
/// taking each option as it comes, as vde_plug does: the last of a
/// repeated one wins, `-h` and `--version` answer at once. `argv0` is the
/// name we were run by.
pub fn parse(argv0: &str, argv: Vec<OsString>) -> Result<PlugOptions, CliError> {
    if argv0.starts_with('-') {
        return Err(CliError::NotAShell);
    }
    let getopt = family_getopt(&PLUG_OPTIONS);
    let mut o = PlugOptions::default();
    let mut common = CommonParts::default();
    let mut operands = Vec::new();
    for item in getopt.items(&argv) {
        let (opt, value) = match item.map_err(|e| CliError::Usage(Some(e.to_string())))? {
            Item::Opt(opt, value) => (opt, value),
            Item::Operand(word) => {
                operands.push(word);
                continue;
            }
        };
        if common.take(opt, value.clone())? {
            continue;
        }
        // Flags have none: the empty text.
        let text = value.unwrap_or_default().to_string_lossy().into_owned();
        match opt {
            PlugOpt::Port => o.args1.port = port(&text)?,
            PlugOpt::Port2 => o.args2.port = port(&text)?,
            PlugOpt::Mod => o.args1.mode = number::octal("mode", &text, number::MAX_MODE)?,
            PlugOpt::Mod2 => o.args2.mode = number::octal("mode", &text, number::MAX_MODE)?,
            PlugOpt::Group => o.args1.group = Some(text),
            PlugOpt::Group2 => o.args2.group = Some(text),
            // An empty description keeps the one before (vde_plug's rule).
            PlugOpt::Descr if text.is_empty() => {}
            PlugOpt::Descr => o.description = Some(text),
            PlugOpt::Iplog => {
                o.iplog = true;
                common.common.syslog = true;
            }
            PlugOpt::Log => common.common.syslog = true,
            PlugOpt::Shell => {
                if text != "vde_plug" && text != "vde_plug_rs" {
                    return Err(CliError::NotAShell);
                }
                // As a forced ssh command: log, and log IPs for members of
                // the group vde_plug reserves for that.
                common.common.syslog = true;
                o.iplog |= crate::accounts::user_in_group(crate::sys::uid(), IPLOG_GROUP);
            }
            PlugOpt::Version => {
                return Ok(PlugOptions {
                    version: true,
                    ..PlugOptions::default()
                })
            }
            // The common ones, taken above.
            _ => {}
        }
    }
    o.common = common.finish()?;
    let (words, command) = operands_and_command(operands);
    o.form = form_of(&words, command)?;
    Ok(o)
}

/// getopt over `table` as every binary of the family reads its command
/// line: `POSIXLY_CORRECT` from the environment, nothing but operands
/// after `=`.
pub fn family_getopt<K: Copy + PartialEq>(table: &[Opt<K>]) -> Getopt<'_, K> {
    let posixly_correct = std::env::var_os("POSIXLY_CORRECT").is_some();
    Getopt::new(table)
        .posixly_correct(posixly_correct)
        .stop_words(&["="])
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
            CliError::Usage(Some("invalid option -- 'x'".into()))
        );
        assert_eq!(p(&["-h"]).unwrap_err(), CliError::Usage(None));
        assert!(p(&["--port", "0"]).is_err());
        assert_eq!(parse("-vde_plug", vec![]).unwrap_err(), CliError::NotAShell);
        assert_eq!(p(&["-c", "bash"]).unwrap_err(), CliError::NotAShell);
        assert!(p(&["-c", "vde_plug"]).is_ok());
    }

    /// The cases of issue 27 where the C plug's getopt and ours differed.
    #[test]
    fn getopt_rules() {
        let o = p(&[
            "-d", "-d", "-m", "0600", "-m", "0660", "-p", "A", "-p", "B", "-D", "x", "-D", "y",
            "--group", "a", "--group", "b", "--port", "3", "--port=4", "/s",
        ])
        .unwrap();
        assert!(o.common.daemon);
        assert_eq!(o.args1.mode, 0o660);
        assert_eq!(o.common.pidfile, Some(PathBuf::from("B")));
        assert_eq!(o.description.as_deref(), Some("y"));
        assert_eq!(o.args1.group.as_deref(), Some("b"));
        assert_eq!(o.args1.port, 4);
        assert_eq!(o.form.first, "/s");
        let o = p(&["-D", "-vm1"]).unwrap();
        assert_eq!(o.description.as_deref(), Some("-vm1"));
        assert_eq!((o.common.verbose, o.args1.mode), (0, 0o700));
        let o = p(&["-g", "-d"]).unwrap();
        assert_eq!(
            (o.args1.group.as_deref(), o.common.daemon),
            (Some("-d"), false)
        );
        let o = p(&["-p", "-dummy"]).unwrap();
        assert_eq!(o.common.pidfile, Some(PathBuf::from("-dummy")));
        assert!(!o.common.daemon);
        assert_eq!(
            p(&["-D", "x", "-D", ""]).unwrap().description.as_deref(),
            Some("x")
        );
        assert!(p(&["--daem"]).unwrap().common.daemon);
        let o = p(&["-dlm660", "-vv"]).unwrap();
        assert!(o.common.daemon && o.common.syslog && !o.iplog);
        assert_eq!((o.args1.mode, o.common.verbose), (0o660, 2));
        assert!(p(&["-L"]).unwrap().common.syslog);
        assert!(p(&["--version", "-x"]).unwrap().version);
        assert_eq!(
            p(&["-x", "--version"]).unwrap_err(),
            CliError::Usage(Some("invalid option -- 'x'".into()))
        );
        assert_eq!(
            p(&["--s", "x"]).unwrap_err(),
            CliError::Usage(Some(
                "option '--s' is ambiguous; possibilities: '--stats' '--status' '--stderr' '--syslog'"
                    .into()
            ))
        );
        assert_eq!(
            p(&["--statu", "/n"]).unwrap().common.status.unwrap().node,
            "/n"
        );
        assert!(p(&["--json"]).is_err());
    }

    /// Found by fuzz/command_line: 256 `-v` overflowed the node programs'
    /// count of them.
    #[test]
    fn verbosity_saturates() {
        let many = std::iter::repeat_n(OsString::from("-v"), 300).collect::<Vec<_>>();
        let node = crate::node_cli::parse(many, crate::endpoint::node::config::KindName::Multi);
        assert_eq!(node.unwrap().common.verbose, u8::MAX);
        assert_eq!(p(&["-v"; 300]).unwrap().common.verbose, u8::MAX);
    }

    #[test]
    fn operands_and_the_command() {
        let o = p(&["-D", "=", "/a", "-l", "=", "cat", "-d"]).unwrap();
        assert_eq!(o.description.as_deref(), Some("="));
        assert!(o.common.syslog && !o.common.daemon);
        assert_eq!(o.form.first, "/a");
        assert_eq!(
            o.form.other,
            OtherSide::Command(vec!["cat".into(), "-d".into()])
        );
        let o = p(&["/a", "--", "=", "-x"]).unwrap();
        assert_eq!(o.form.other, OtherSide::Command(vec!["-x".into()]));
        let o = p(&["/a", "-d", "/b"]).unwrap();
        assert_eq!(o.form.other, OtherSide::Url("/b".into()));
        assert!(o.common.daemon);
        assert_eq!(p(&["-", "-d"]).unwrap().form.first, "-");
    }
}
