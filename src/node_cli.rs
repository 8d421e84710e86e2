//! The command line of the node binaries (`bonding_node`, `multi_node`):
//! `NAME [OPTIONS] [PATH] [URL | = CMD ARGS]`. The node's own options are
//! the rows of the one table of node options
//! ([`OPTIONS`](crate::endpoint::node::config::OPTIONS)), so that every
//! locator key is a flag here and every flag here a locator key, checked
//! alike.

use std::ffi::OsString;

use crate::cli::{
    family_getopt, form_of, operands_and_command, CliError, Common, CommonParts, Form, PlugOpt,
    COMMON_OPTIONS, PLUG_OPTIONS,
};
use crate::endpoint::node::config::{options_for, KindName, NodeConfig, OPTIONS};
use crate::endpoint::node::control::absolute_node_path;
use crate::endpoint::node::NetNode;
use crate::endpoint::vde::OpenArgs;
use crate::endpoint::Endpoint;
use crate::getopt::{Item, Opt};
use crate::lane::LANE_SLOTS;
use crate::open::description;
use crate::run::{run, Opener};

#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub common: Common,
    /// The node's path (`form.first`) and its host side (`form.other`).
    pub form: Form,
    pub config: NodeConfig,
    /// `--version`: print [`VERSION`](crate::cli::VERSION), nothing else.
    pub version: bool,
}

/// An option of a node program: a row of the node option table (by its
/// index in [`OPTIONS`]) or one of the family's common options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeOpt {
    Node(usize),
    Common(PlugOpt),
}

/// The getopt table of the node program for `kind`: the node's own
/// options, in the node table's order, then the common ones.
pub fn getopt_table(kind: KindName) -> Vec<Opt<NodeOpt>> {
    let own = OPTIONS
        .iter()
        .enumerate()
        .filter(|(_, o)| o.kinds.contains(&kind))
        .map(|(i, o)| Opt {
            key: NodeOpt::Node(i),
            long: o.flag.strip_prefix("--"),
            short: o
                .short
                .and_then(|s| s.strip_prefix('-'))
                .map(|s| s.as_bytes()[0]),
            takes_value: o.value.is_some(),
        });
    let common = PLUG_OPTIONS
        .iter()
        .filter(|o| COMMON_OPTIONS.contains(&o.key) || o.key == PlugOpt::Version)
        .map(|o| Opt {
            key: NodeOpt::Common(o.key),
            long: o.long,
            short: o.short,
            takes_value: o.takes_value,
        });
    own.chain(common).collect()
}

/// Parses the command line of the node program for `kind` with getopt's
/// rules, as `vde_plug_rs` reads its own (src/cli.rs): options as they
/// come, the last of a repeated one wins, `-h` answers at once.
pub fn parse(argv: Vec<OsString>, kind: KindName) -> Result<NodeOptions, CliError> {
    let table = getopt_table(kind);
    let mut config = NodeConfig::new(kind);
    let mut common = CommonParts::default();
    let mut operands = Vec::new();
    for item in family_getopt(&table).items(&argv) {
        match item.map_err(|e| CliError::Usage(Some(e.to_string())))? {
            Item::Operand(word) => operands.push(word),
            // As vde_plug_rs: it answers at once, whatever follows.
            Item::Opt(NodeOpt::Common(PlugOpt::Version), _) => {
                return Ok(NodeOptions {
                    common: Common::default(),
                    form: Form::default(),
                    config,
                    version: true,
                })
            }
            Item::Opt(NodeOpt::Common(opt), value) => {
                common.take(opt, value)?;
            }
            Item::Opt(NodeOpt::Node(i), value) => {
                let text = value.unwrap_or_default().to_string_lossy().into_owned();
                config
                    .set(&OPTIONS[i], &text)
                    .map_err(|why| CliError::Usage(Some(why)))?;
            }
        }
    }
    let (words, command) = operands_and_command(operands);
    Ok(NodeOptions {
        common: common.finish()?,
        form: form_of(&words, command)?,
        config,
        version: false,
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
      --version          show the version
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
    if opts.version {
        print!("{}", crate::cli::VERSION);
        return 0;
    }
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

    fn usage_error(kind: KindName, args: &[&str]) -> String {
        match p(kind, args).unwrap_err() {
            CliError::Usage(Some(why)) => why,
            e => panic!("{args:?}: {e:?}"),
        }
    }

    /// getopt's rules, as `vde_plug_rs` has them (cli::tests::getopt_rules):
    /// the last of a repeat wins, unique long prefixes, a value is the next
    /// word whatever it is, `--opt=v`, clusters, `--` and `=`.
    #[test]
    fn getopt_rules() {
        use std::path::PathBuf;
        use KindName::{Bonding, Multi};
        let o = p(
            Bonding,
            &[
                "-d",
                "-d",
                "--policy",
                "rr",
                "--pol=path",
                "-p",
                "A",
                "-p",
                "B",
                "--mode",
                "0600",
                "--mode",
                "0660",
                "--weig",
                "3:1",
                "/n",
            ],
        )
        .unwrap();
        assert!(o.common.daemon);
        assert_eq!(o.common.pidfile, Some(PathBuf::from("B")));
        assert_eq!(o.config.settings(), "path weights=3:1");
        assert_eq!(o.config.mode, Some(0o660));
        assert_eq!(o.form.first, "/n");
        let o = p(Multi, &["--ded", "5", "--dedup=50", "-vv", "--stats", "2"]);
        let o = o.unwrap();
        assert_eq!(o.config.settings(), "dedup=50");
        assert_eq!((o.common.verbose, o.common.stats_every), (2, Some(2)));
        // A value is the next word, whatever it starts with.
        let o = p(Multi, &["-p", "-d", "/n"]).unwrap();
        assert_eq!(o.common.pidfile, Some(PathBuf::from("-d")));
        assert!(!o.common.daemon);
        assert_eq!(
            usage_error(Bonding, &["--policy", "-d"]),
            usage_error(Bonding, &["--policy", "x-d"]).replace("x-d", "-d"),
        );
        // Clusters; options and operands mix; `--` and `=` end the options.
        let o = p(Bonding, &["/n", "-dvpF", "--", "-x"]).unwrap();
        assert!(o.common.daemon && o.common.verbose == 1);
        assert_eq!(o.common.pidfile, Some(PathBuf::from("F")));
        assert_eq!(
            o.form,
            Form {
                first: "/n".into(),
                other: crate::cli::OtherSide::Url("-x".into())
            }
        );
        let o = p(Multi, &["/n", "=", "cat", "-d", "--dedup", "5"]).unwrap();
        assert!(!o.common.daemon && o.config.dedup.is_none());
        assert_eq!(
            o.form.other,
            crate::cli::OtherSide::Command(["cat", "-d", "--dedup", "5"].map(String::from).into())
        );
        assert_eq!(
            p(Bonding, &["-v", "-h", "-x"]).unwrap_err(),
            CliError::Usage(None)
        );
        assert_eq!(p(Multi, &["--he"]).unwrap_err(), CliError::Usage(None));
        // getopt's own messages; candidates in the table's order.
        assert_eq!(usage_error(Bonding, &["-x"]), "invalid option -- 'x'");
        assert_eq!(
            usage_error(Bonding, &["--dedup", "5"]),
            "unrecognized option '--dedup'"
        );
        assert_eq!(
            usage_error(Multi, &["--d", "5"]),
            "option '--d' is ambiguous; possibilities: '--dirmode' '--dedup' '--daemon'"
        );
        assert_eq!(
            usage_error(Bonding, &["--weights"]),
            "option '--weights' requires an argument"
        );
        assert_eq!(
            usage_error(Bonding, &["--daemon=1"]),
            "option '--daemon' doesn't allow an argument"
        );
        assert_eq!(
            usage_error(Multi, &["--json"]),
            "--json and --watch go with --status PATH"
        );
        assert_eq!(
            p(Multi, &["--status", "/n", "--js"])
                .unwrap()
                .common
                .status
                .map(|s| s.json),
            Some(true)
        );
        assert_eq!(
            usage_error(Multi, &["/a", "/b", "/c"]),
            "too many arguments"
        );
    }

    /// The getopt table is the node option table's rows for the kind, by
    /// their flags, and the common options: no other list.
    #[test]
    fn one_table() {
        for kind in [KindName::Bonding, KindName::Multi] {
            let table = getopt_table(kind);
            let own: Vec<_> = table
                .iter()
                .filter_map(|o| match o.key {
                    NodeOpt::Node(i) => Some((OPTIONS[i].flag, o.long, o.takes_value)),
                    NodeOpt::Common(_) => None,
                })
                .collect();
            let expected: Vec<_> = options_for(kind)
                .map(|o| (o.flag, o.flag.strip_prefix("--"), o.value.is_some()))
                .collect();
            assert_eq!(own, expected);
            // The common options, and --version.
            assert_eq!(table.len(), own.len() + COMMON_OPTIONS.len() + 1);
            let group = table.iter().find(|o| o.long == Some("group")).unwrap();
            assert_eq!(group.short, Some(b'g'));
        }
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
