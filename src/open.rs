//! From a locator string to an endpoint: the module table, the default
//! switch, and a URL kept in a file.

use std::path::PathBuf;

use crate::endpoint::cmd::CommandEndpoint;
use crate::endpoint::node::config::KindName;
use crate::endpoint::node::NetNode;
use crate::endpoint::null::NullEndpoint;
use crate::endpoint::tap::TapEndpoint;
use crate::endpoint::vde::{OpenArgs, VdeClient};
use crate::endpoint::{cmd_words, ptp, seqpacket, udp, vxlan, vxvde};
use crate::endpoint::{Endpoint, OpenError};
use crate::lane::LANE_SLOTS;
use crate::url::Locator;

/// Where a user's default switch is named, relative to `$HOME`, in order.
const DEFAULT_SWITCH_FILES: [&str; 2] = [".vdeplug/default", ".vde2/default.switch"];

/// Resolves a URL without `://` the way vdeplug4 does: an empty one means
/// the user's default switch; a regular file holds a URL on its first line.
pub fn resolve_url(url: &str) -> String {
    if url.contains("://") {
        return url.to_string();
    }
    let mut url = url.to_string();
    if url.is_empty() {
        if let Some(home) = std::env::var_os("HOME") {
            let found = DEFAULT_SWITCH_FILES
                .iter()
                .map(|f| PathBuf::from(&home).join(f))
                .find(|p| std::fs::symlink_metadata(p).is_ok());
            if let Some(p) = found {
                url = p.to_string_lossy().into_owned();
            }
        }
    }
    if std::fs::metadata(&url).is_ok_and(|m| m.is_file()) {
        if let Ok(text) = std::fs::read_to_string(&url) {
            if let Some(line) = text.lines().next() {
                return line.trim_end_matches('\r').to_string();
            }
        }
    }
    url
}

/// Every module a locator may name (`MODULE://`), as `open` knows them.
pub const MODULES: [&str; 13] = [
    "vde",
    "hub",
    "switch",
    "multi",
    "bonding",
    "tap",
    "cmd",
    "null",
    "udp",
    "ptp",
    "seqpacket",
    "vxlan",
    "vxvde",
];

/// Opens any supported locator.
pub fn open(url: &str, description: &str, args: &OpenArgs) -> Result<Box<dyn Endpoint>, OpenError> {
    let url = resolve_url(url);
    open_resolved(&url, description, args).map_err(|e| with_hint(e, &url))
}

/// Adds a line to an error whose reason alone does not help: the modules
/// there are, for one that is not; the missing `//` of `bonding:/tmp/x`,
/// which is read as a switch's path.
fn with_hint(e: OpenError, url: &str) -> OpenError {
    if e.detail().is_some() {
        return e;
    }
    if e.code() == libc::EPROTONOSUPPORT {
        let module = url.split_once("://").map_or("", |(m, _)| m);
        return OpenError::with_detail(
            e.code(),
            format!("no module '{module}'; there are: {}", MODULES.join(", ")),
        );
    }
    match url.split_once(':') {
        Some((m, rest)) if !url.contains("://") && MODULES.contains(&m) => {
            let path = rest.trim_start_matches('/');
            let root = if rest.starts_with('/') { "/" } else { "" };
            let fixed = format!("{m}://{root}{path}");
            OpenError::with_detail(
                e.code(),
                format!("{url} was read as a switch's path; for the {m} module write {fixed}"),
            )
        }
        _ => e,
    }
}

fn open_resolved(
    url: &str,
    description: &str,
    args: &OpenArgs,
) -> Result<Box<dyn Endpoint>, OpenError> {
    let url = url.to_string();
    // Modules that read the text after `://` as it stands.
    let raw = url.split_once("://").map_or("", |(_, rest)| rest);
    let loc = Locator::parse(&url);
    Ok(match loc.module.as_str() {
        "udp" => Box::new(udp::open(raw)?),
        "ptp" => Box::new(ptp::open(raw, args)?),
        "seqpacket" => Box::new(seqpacket::open(raw)?),
        "vxlan" => Box::new(vxlan::open(raw)?),
        "vxvde" => Box::new(vxvde::open(raw)?),
        "vde" => Box::new(VdeClient::open(&loc, description, args)?),
        m if KindName::from_scheme(m).is_some() => Box::new(NetNode::open(&loc, LANE_SLOTS)?),
        "tap" => Box::new(TapEndpoint::open(&loc.address)?),
        "null" => Box::new(NullEndpoint::default()),
        "cmd" => Box::new(CommandEndpoint::spawn(&cmd_words::words(raw))?),
        _ => return Err(OpenError::errno(libc::EPROTONOSUPPORT)),
    })
}

/// The description a plug sends to a switch: the user's text (or
/// `vdeplug:`), then ` user=EUID pid=PID` and, under ssh, ` SSH=IP`.
pub fn description(user_text: Option<&str>) -> String {
    let mut d = format!(
        "{} user={} pid={}",
        user_text.filter(|t| !t.is_empty()).unwrap_or("vdeplug:"),
        crate::sys::euid(),
        crate::sys::pid()
    );
    if let Ok(ssh) = std::env::var("SSH_CLIENT") {
        if let Some(ip) = ssh.split(' ').next() {
            d.push_str(" SSH=");
            d.push_str(ip);
        }
    }
    d
}
