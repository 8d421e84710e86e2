//! The command line of the node binaries (`bonding_node`, `multi_node`):
//! `NAME [OPTIONS] [PATH] [URL | = CMD ARGS]`. The node's own options are
//! the rows of the one table of node options
//! ([`OPTIONS`](crate::endpoint::node::config::OPTIONS)), so that every
//! locator key is a flag here and every flag here a locator key, checked
//! alike.

use std::ffi::OsString;

use pico_args::Keys;

use crate::cli::{begin, form_of, no_stray_options, Begun, CliError, Common, Form};
use crate::endpoint::node::config::{options_for, KindName, NodeConfig, NodeOption};
use crate::endpoint::node::control::absolute_node_path;
use crate::endpoint::node::NetNode;
use crate::endpoint::vde::OpenArgs;
use crate::endpoint::Endpoint;
use crate::lane::LANE_SLOTS;
use crate::open::description;
use crate::run::{run, Opener};

#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub common: Common,
    /// The node's path (`form.first`) and its host side (`form.other`).
    pub form: Form,
    pub config: NodeConfig,
}

/// The names an option answers to on the command line.
fn keys(option: &NodeOption) -> Keys {
    match option.short {
        Some(short) => Keys::from([short, option.flag]),
        None => Keys::from(option.flag),
    }
}

/// Parses the command line of the node program for `kind`. An option
/// given twice takes its last value, as getopt has it.
pub fn parse(argv: Vec<OsString>, kind: KindName) -> Result<NodeOptions, CliError> {
    let Begun {
        mut args,
        common,
        operands,
        command,
    } = begin(argv)?;
    let bad = |e: pico_args::Error| CliError::Usage(Some(e.to_string()));
    let mut config = NodeConfig::new(kind);
    for option in options_for(kind) {
        while let Some(value) = args
            .opt_value_from_str::<_, String>(keys(option))
            .map_err(bad)?
        {
            config
                .set(option, &value)
                .map_err(|why| CliError::Usage(Some(why)))?;
        }
    }
    let free = args.finish();
    no_stray_options(&free)?;
    let words: Vec<OsString> = free.into_iter().chain(operands).collect();
    let form = form_of(&words, command)?;
    Ok(NodeOptions {
        common,
        form,
        config,
    })
}

/// One node binary: its name, its kind, what it does.
struct NodeProgram {
    name: &'static str,
    kind: KindName,
    /// How frames go, in a sentence or two.
    semantics: &'static str,
}

const NODE_PROGRAMS: [NodeProgram; 2] = [
    NodeProgram {
        name: "bonding_node",
        kind: KindName::Bonding,
        semantics: "each frame from the host side\n\
                    goes out on one cable: by default (--policy path) the one that brings it\n\
                    soonest, and a far node of ours restores the order; frames from any cable\n\
                    go to the host.",
    },
    NodeProgram {
        name: "multi_node",
        kind: KindName::Multi,
        semantics: "frames from the host side\n\
                    go out on every cable; frames from any cable go to the host. Add a new cable,\n\
                    then drop the old one, for a handoff without a hiccup.",
    },
];

impl NodeProgram {
    fn usage(&self) -> String {
        let options: String = options_for(self.kind)
            .map(|o| {
                let names = match o.short {
                    Some(short) => format!("  {short}, {}", o.flag),
                    None => format!("      {}", o.flag),
                };
                let left = match o.value {
                    Some(value) => format!("{names} {value}"),
                    None => names,
                };
                format!("{left:<24} {}\n", o.help)
            })
            .collect();
        format!(
            "\
Usage: {name} [OPTIONS] [PATH] [URL | = COMMAND [ARGS]]
Creates {scheme}://PATH (default /tmp/vdenode_USER): {semantics}
The host side is URL, COMMAND's stdin/stdout, or this process's stdin/stdout.
Cables join with: vde_plug_rs PATH ...   (or the C vde_plug)
Options (each also a key of the locator {scheme}://PATH[KEY=VALUE/...]):
{options}      --stats SECONDS    log the per-cable counters every SECONDS
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
            scheme = self.kind.scheme(),
            semantics = self.semantics,
        )
    }
}

/// `bonding_node` and `multi_node` are names of the one binary: run as one
/// of them, it is that node program. `None` for any other name.
pub fn main_by_name(argv0: &std::ffi::OsStr) -> Option<i32> {
    let name = std::path::Path::new(argv0).file_name()?.to_str()?;
    let program = NODE_PROGRAMS.iter().find(|p| p.name == name)?;
    Some(main_for(program))
}

/// Runs a node program: parses, opens the node and its host side, loops.
fn main_for(program: &NodeProgram) -> i32 {
    crate::run::early_setup();
    let opts = match parse(std::env::args_os().skip(1).collect(), program.kind) {
        Ok(o) => o,
        Err(CliError::Usage(None)) => {
            print!("{}", program.usage());
            return 0;
        }
        Err(CliError::Usage(Some(why))) => {
            eprintln!("{}: {why}", program.name);
            eprint!("{}", program.usage());
            return 255;
        }
        Err(CliError::NotAShell) => return 255,
    };
    if let Some(req) = &opts.common.status {
        return crate::status::run(req);
    }
    let descr = description(None);
    let shown = format!("{}://{}", program.kind.scheme(), opts.form.first);
    let (path, config) = (opts.form.first.clone(), opts.config);
    let node = Opener {
        name: shown,
        open: Box::new(move || {
            let path = absolute_node_path(&path)?;
            let node = NetNode::create(&config, &path, LANE_SLOTS)?;
            Ok(Box::new(node) as Box<dyn Endpoint>)
        }),
    };
    let no_args = OpenArgs::default();
    let host = Opener::other_side(opts.form.other.clone(), descr, &no_args, false);
    run(&opts.common, node, host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kind: KindName, args: &[&str]) -> Result<NodeOptions, CliError> {
        parse(args.iter().map(OsString::from).collect(), kind)
    }

    /// The flags set what the locator keys set, the last of a flag wins,
    /// and a bad value is refused with the message a bad key value gets.
    #[test]
    fn flags_are_the_locator_keys() {
        let o = p(
            KindName::Bonding,
            &["--weights", "3:1", "--policy", "rr", "--mode=0666", "/n"],
        )
        .unwrap();
        let loc = crate::url::Locator::parse("bonding:///n[weights=3:1/policy=rr/mode=0666]");
        let from_keys = NodeConfig::from_locator(&loc).unwrap();
        assert_eq!(o.config.settings(), from_keys.settings());
        assert_eq!(o.config.settings(), "rr weights=3:1");
        assert_eq!(o.config.access(), from_keys.access());
        let o = p(KindName::Multi, &["--dedup", "5", "--dedup", "50"]).unwrap();
        assert_eq!(o.config.settings(), "dedup=50");
        let flag = p(KindName::Bonding, &["--weights", "3:0"]).unwrap_err();
        let key =
            NodeConfig::from_locator(&crate::url::Locator::parse("bonding:///n[weights=3:0]"))
                .unwrap_err();
        assert_eq!(flag, CliError::Usage(key.detail().map(String::from)));
        // Each kind its own: no --dedup on a bonding node.
        assert!(p(KindName::Bonding, &["--dedup", "5"]).is_err());
    }

    /// Every option the table gives a kind is in its program's usage.
    #[test]
    fn usage_lists_every_option() {
        for program in &NODE_PROGRAMS {
            let usage = program.usage();
            for o in options_for(program.kind) {
                assert!(usage.contains(o.flag), "{}: {}", program.name, o.flag);
            }
        }
    }
}
