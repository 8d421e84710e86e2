//! multi_node: a multi node whose host side is a URL, a command or stdio.

use vde_plug_rs::endpoint::node::kind::{parse_dedup, NodeKind};

const USAGE: &str = "\
Usage: multi_node [OPTIONS] [PATH] [URL | = COMMAND [ARGS]]
Creates multi://PATH (default /tmp/vdenode_USER): frames from the host side
go out on every cable; frames from any cable go to the host. Add a new cable,
then drop the old one, for a handoff without a hiccup.
The host side is URL, COMMAND's stdin/stdout, or this process's stdin/stdout.
Cables join with: vde_plug_rs PATH ...   (or the C vde_plug)
Options:
      --mode MODE        socket permissions, octal (default 0600)
      --dirmode MODE     directory permissions (default derived from --mode)
  -g, --group GROUP      group owning the node
      --dedup MS         give the host each frame once within MS milliseconds
      --stats SECONDS    log the per-cable counters every SECONDS
  -p, --pidfile FILE     write the process id to FILE
  -d, --daemon           run in the background
  -v, --verbose          log more (twice: debug)
  -h, --help             show this summary
";

fn main() {
    std::process::exit(vde_plug_rs::node_cli::main_for(
        "multi_node",
        USAGE,
        "--dedup",
        |d| {
            let dedup = match d {
                Some(ms) => parse_dedup(ms).map_err(|e| e.to_string())?,
                None => None,
            };
            Ok(NodeKind::Multi { dedup })
        },
    ));
}
