//! bonding_node: a bonding node whose host side is a URL, a command or stdio.

use vde_plug_rs::endpoint::node::kind::{BondingPolicy, NodeKind};

const USAGE: &str = "\
Usage: bonding_node [OPTIONS] [PATH] [URL | = COMMAND [ARGS]]
Creates bonding://PATH (default /tmp/vdenode_USER): frames from the host side
go out on one cable at a time, in turn; frames from any cable go to the host.
The host side is URL, COMMAND's stdin/stdout, or this process's stdin/stdout.
Cables join with: vde_plug_rs PATH ...   (or the C vde_plug)
Options:
      --mode MODE        socket permissions, octal (default 0600)
      --dirmode MODE     directory permissions (default derived from --mode)
  -g, --group GROUP      group owning the node
      --policy POLICY    adaptive (default: skip full cables, never drop) or rr
      --stats SECONDS    log the per-cable counters every SECONDS
  -p, --pidfile FILE     write the process id to FILE
  -d, --daemon           run in the background
  -v, --verbose          log more (twice: debug)
  -h, --help             show this summary
";

fn main() {
    std::process::exit(vde_plug_rs::node_cli::main_for(
        "bonding_node",
        USAGE,
        "--policy",
        |p| {
            let policy = match p {
                Some(p) => p.parse::<BondingPolicy>()?,
                None => BondingPolicy::Adaptive,
            };
            Ok(NodeKind::Bonding(policy))
        },
    ));
}
