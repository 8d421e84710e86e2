//! The command line of the node binaries (`bonding_node`, `multi_node`):
//! `NAME [OPTIONS] [PATH] [URL | = CMD ARGS]`.

use std::ffi::OsString;

use crate::cli::{begin, form_of, no_stray_options, Begun, CliError, Common, Form};
use crate::endpoint::node::control::{absolute_node_path, derived_dirmode, Access};
use crate::endpoint::node::kind::{parse_dedup, BondingPolicy, NodeKind};
use crate::endpoint::node::NetNode;
use crate::endpoint::vde::OpenArgs;
use crate::endpoint::Endpoint;
use crate::number;
use crate::open::description;
use crate::run::{run, Opener};

#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub common: Common,
    /// The node's path (`form.first`) and its host side (`form.other`).
    pub form: Form,
    pub access: Access,
    /// The value of the kind's own flag (`--policy` or `--dedup`).
    pub extra: Option<String>,
}

/// Parses the node command line; `extra_flag` is `--policy` or `--dedup`.
pub fn parse(argv: Vec<OsString>, extra_flag: &'static str) -> Result<NodeOptions, CliError> {
    let Begun {
        mut args,
        common,
        operands,
        command,
    } = begin(argv)?;
    let bad = |e: pico_args::Error| CliError::Usage(Some(e.to_string()));
    let mut access = Access::default();
    if let Some(m) = args
        .opt_value_from_str::<_, String>("--mode")
        .map_err(bad)?
    {
        access = Access::with_mode(number::octal("mode", &m, number::MAX_MODE)?);
    }
    if let Some(m) = args
        .opt_value_from_str::<_, String>("--dirmode")
        .map_err(bad)?
    {
        access.dirmode = number::octal("dirmode", &m, number::MAX_DIRMODE)?;
    } else {
        access.dirmode = derived_dirmode(access.mode);
    }
    if let Some(g) = args
        .opt_value_from_str::<_, String>(["-g", "--group"])
        .map_err(bad)?
    {
        access.gid = Some(
            crate::accounts::group_id(&g)
                .ok_or_else(|| CliError::Usage(Some(format!("unknown group '{g}'"))))?,
        );
    }
    let extra = args.opt_value_from_str(extra_flag).map_err(bad)?;
    let free = args.finish();
    no_stray_options(&free)?;
    let words: Vec<OsString> = free.into_iter().chain(operands).collect();
    let form = form_of(&words, command)?;
    Ok(NodeOptions {
        common,
        form,
        access,
        extra,
    })
}

/// One node binary: its name, what it does, and its own flag.
struct NodeProgram {
    name: &'static str,
    scheme: &'static str,
    /// How frames go, in a sentence or two.
    semantics: &'static str,
    /// The kind's own flag and its line in the usage.
    flag: &'static str,
    flag_help: &'static str,
    kind_of: fn(Option<&str>) -> Result<NodeKind, String>,
}

const NODE_PROGRAMS: [NodeProgram; 2] = [
    NodeProgram {
        name: "bonding_node",
        scheme: "bonding",
        semantics: "frames from the host side\n\
                    go out on one cable at a time, in turn; frames from any cable go to the host.",
        flag: "--policy",
        flag_help:
            "      --policy POLICY    path (default), adaptive, hash or rr (see bonding_node(1))",
        kind_of: |p| {
            let policy = match p {
                Some(p) => p.parse::<BondingPolicy>()?,
                None => BondingPolicy::default(),
            };
            Ok(NodeKind::Bonding(policy))
        },
    },
    NodeProgram {
        name: "multi_node",
        scheme: "multi",
        semantics: "frames from the host side\n\
                    go out on every cable; frames from any cable go to the host. Add a new cable,\n\
                    then drop the old one, for a handoff without a hiccup.",
        flag: "--dedup",
        flag_help: "      --dedup MS         give the host each frame once within MS milliseconds",
        kind_of: |d| {
            let dedup = match d {
                Some(ms) => parse_dedup(ms).map_err(|e| e.to_string())?,
                None => None,
            };
            Ok(NodeKind::Multi { dedup })
        },
    },
];

impl NodeProgram {
    fn usage(&self) -> String {
        format!(
            "\
Usage: {name} [OPTIONS] [PATH] [URL | = COMMAND [ARGS]]
Creates {scheme}://PATH (default /tmp/vdenode_USER): {semantics}
The host side is URL, COMMAND's stdin/stdout, or this process's stdin/stdout.
Cables join with: vde_plug_rs PATH ...   (or the C vde_plug)
Options:
      --mode MODE        socket permissions, octal (default 0600)
      --dirmode MODE     directory permissions (default derived from --mode)
  -g, --group GROUP      group owning the node
{flag_help}
      --stats SECONDS    log the per-cable counters every SECONDS
      --status PATH      show the counters of the running node at PATH
                         (--json for scripts, --watch S to redraw with rates)
  -p, --pidfile FILE     write the process id to FILE
  -d, --daemon           run in the background (log messages then go to syslog)
      --stderr FILE      append stderr (log messages, the command's) to FILE
      --syslog           send log messages to syslog
  -v, --verbose          log more (twice: debug)
  -h, --help             show this summary
See bonding_node(1), multi_node(1).
",
            name = self.name,
            scheme = self.scheme,
            semantics = self.semantics,
            flag_help = self.flag_help,
        )
    }
}

/// `bonding_node` and `multi_node` are names of the one binary: run as one
/// of them, it is that node program. `None` for any other name.
pub fn main_by_name(argv0: &std::ffi::OsStr) -> Option<i32> {
    let name = std::path::Path::new(argv0).file_name()?.to_str()?;
    let program = NODE_PROGRAMS.iter().find(|p| p.name == name)?;
    Some(main_for(
        program.name,
        &program.usage(),
        program.flag,
        program.kind_of,
    ))
}

/// Runs a node program: parses, opens the node and its host side, loops.
/// `kind_of` turns the kind's own flag into the node kind.
fn main_for(
    name: &str,
    usage: &str,
    extra_flag: &'static str,
    kind_of: impl Fn(Option<&str>) -> Result<NodeKind, String>,
) -> i32 {
    crate::run::early_setup();
    let opts = match parse(std::env::args_os().skip(1).collect(), extra_flag) {
        Ok(o) => o,
        Err(CliError::Usage(None)) => {
            print!("{usage}");
            return 0;
        }
        Err(CliError::Usage(Some(why))) => {
            eprintln!("{name}: {why}");
            eprint!("{usage}");
            return 255;
        }
        Err(CliError::NotAShell) => return 255,
    };
    if let Some(req) = &opts.common.status {
        return crate::status::run(req);
    }
    let kind = match kind_of(opts.extra.as_deref()) {
        Ok(k) => k,
        Err(why) => {
            eprintln!("{name}: {why}");
            return 255;
        }
    };
    let descr = description(None);
    let shown = format!("{}://{}", kind.scheme(), opts.form.first);
    let (path, access) = (opts.form.first.clone(), opts.access);
    let node = Opener {
        name: shown,
        open: Box::new(move || {
            let path = absolute_node_path(&path)?;
            Ok(Box::new(NetNode::create(kind, &path, access)?) as Box<dyn Endpoint>)
        }),
    };
    let no_args = OpenArgs::default();
    let host = Opener::other_side(opts.form.other.clone(), descr, &no_args, false);
    run(&opts.common, node, host)
}
