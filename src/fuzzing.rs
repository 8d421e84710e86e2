//! The parsers of outside input that are not public, reached by the fuzz
//! targets (`fuzz/`) through this one door: built only with the `fuzzing`
//! feature, so nothing here is part of the library's interface. A parser
//! that moves changes one line here, not the targets.
//!
//! Views come back as plain tuples of their fields; `emit_*` write what a
//! view reads, for the round trips.

use crate::wire::stream_delta::{self, DeltaDecoder, DeltaEncoder};
use crate::wire::{path_report, seq_tag, vxlan, WireError, MAX_FRAME};

/// A path report's fields: `(rx_at_echo, stamp, echo, hold)`.
pub type ReportFields = (u32, u16, u16, u8);

pub const PATH_REPORT_LEN: usize = path_report::PATH_REPORT_LEN;

pub fn path_report(buf: &[u8]) -> Result<ReportFields, WireError> {
    let r = path_report::PathReport::new_checked(buf)?;
    Ok((r.rx_at_echo(), r.stamp(), r.echo(), r.hold()))
}

pub fn emit_path_report(f: ReportFields) -> [u8; PATH_REPORT_LEN] {
    let mut buf = [0u8; PATH_REPORT_LEN];
    let fields = path_report::ReportFields {
        rx_at_echo: f.0,
        stamp: f.1,
        echo: f.2,
        hold: f.3,
    };
    path_report::emit(&mut buf, &fields);
    buf
}

/// A sequence tag's fields: `(epoch, seq, stamp, back)`.
pub type TagFields = (u8, u32, u16, u16);

pub const SEQ_TAG_LEN: usize = seq_tag::SEQ_TAG_LEN;
/// Where a tag sits in a frame.
pub const SEQ_TAG_AT: usize = seq_tag::TAG_AT;

pub fn seq_tag(frame: &[u8]) -> Result<TagFields, WireError> {
    let t = seq_tag::SeqTagged::new_checked(frame)?;
    Ok((t.epoch(), t.seq(), t.stamp(), t.back()))
}

pub fn emit_seq_tag(f: TagFields) -> [u8; SEQ_TAG_LEN] {
    let mut buf = [0u8; SEQ_TAG_LEN];
    let fields = seq_tag::TagFields {
        epoch: f.0,
        seq: f.1,
        stamp: f.2,
        back: f.3,
    };
    seq_tag::emit(&mut buf, &fields);
    buf
}

/// Takes the tag out of a tagged frame in place: the new length.
pub fn strip_seq_tag(frame: &mut [u8]) -> usize {
    seq_tag::strip(frame)
}

/// Both ends of header compression (wire::stream_delta), with their
/// buffers, for round trips.
pub struct DeltaPair {
    encoder: DeltaEncoder,
    decoder: DeltaDecoder,
    coded: Box<[u8]>,
    rebuilt: Box<[u8]>,
}

impl Default for DeltaPair {
    fn default() -> Self {
        DeltaPair {
            encoder: DeltaEncoder::default(),
            decoder: DeltaDecoder::default(),
            coded: vec![0; MAX_FRAME].into_boxed_slice(),
            rebuilt: vec![0; MAX_FRAME].into_boxed_slice(),
        }
    }
}

impl DeltaPair {
    /// Codes `frame` as a coding sender would and decodes it as the far
    /// end would: the coded length and what the far end has (`None` when
    /// the frame cannot cross coded).
    pub fn cross(&mut self, frame: &[u8]) -> (usize, Option<Vec<u8>>) {
        let plan = self.encoder.plan(frame);
        if plan == stream_delta::Coding::Unsendable {
            return (0, None);
        }
        let n = self.encoder.emit(plan, frame, &mut self.coded);
        let coded = &self.coded[..n];
        if !stream_delta::is_coded(coded) {
            return (n, Some(coded.to_vec()));
        }
        let len = self.decoder.decode(coded, &mut self.rebuilt);
        let len = len.expect("a coded frame decodes");
        (n, Some(self.rebuilt[..len].to_vec()))
    }

    /// What the far end makes of any bytes read as a coded frame.
    pub fn decode(&mut self, coded: &[u8]) -> Result<Vec<u8>, WireError> {
        let len = self.decoder.decode(coded, &mut self.rebuilt)?;
        Ok(self.rebuilt[..len].to_vec())
    }
}

pub const VXLAN_HEADER_LEN: usize = vxlan::VXLAN_HEADER_LEN;

/// A VXLAN header: `(flags, vni, vxlan accepts it for vni, vxvde does)`.
pub fn vxlan_header(buf: &[u8], vni: u32) -> Result<(u8, u32, bool, bool), WireError> {
    let h = vxlan::VxlanHeader::new_checked(buf)?;
    Ok((
        h.flags(),
        h.vni(),
        h.matches_loosely(vni),
        h.matches_exactly(vni),
    ))
}

pub fn emit_vxlan_header(vni: u32) -> [u8; VXLAN_HEADER_LEN] {
    let mut buf = [0u8; VXLAN_HEADER_LEN];
    vxlan::emit(&mut buf, vni);
    buf
}

/// A locator's parts: module, address, and `(key, value)` parameters.
pub type LocatorParts = (String, String, Vec<(String, Option<String>)>);

fn parts(l: crate::url::Locator) -> LocatorParts {
    let params = l.params.into_iter().map(|p| (p.key, p.value)).collect();
    (l.module, l.address, params)
}

pub fn locator(url: &str) -> LocatorParts {
    parts(crate::url::Locator::parse(url))
}

/// `ADDRESS/key=value/...` as vxlan:// and vxvde:// read it.
pub fn slashed_locator(rest: &str) -> LocatorParts {
    parts(crate::url::Locator::parse_slashed("vxlan", rest))
}

/// A locator's parameters resolved against `known` keys (prefixes allowed,
/// the last value wins), a bare word going to `bare_to`; `Err` names the
/// unknown key.
pub fn resolve_params(
    url: &str,
    known: &[&'static str],
    bare_to: Option<&'static str>,
) -> Result<Vec<(&'static str, String)>, String> {
    crate::url::Locator::parse(url)
        .resolve(known, bare_to)
        .map_err(|e| e.0)
}

/// The words of a `cmd://` locator.
pub fn cmd_words(text: &str) -> Vec<String> {
    crate::endpoint::cmd_words::words(text)
}

/// `udp://` text: `(source, destination)`, or the errno of the failure.
pub fn udp_spec(spec: &str) -> Result<(std::net::SocketAddr, std::net::SocketAddr), i32> {
    crate::endpoint::udp::parse(spec).map_err(|e| e.code())
}

/// A strict decimal in `lo..=hi`.
pub fn decimal(s: &str, lo: u64, hi: u64) -> Option<u64> {
    crate::number::decimal("n", s, lo..=hi).ok()
}

/// A strict octal mode up to `max`.
pub fn octal(s: &str, max: u32) -> Option<u32> {
    crate::number::octal("mode", s, max).ok()
}

/// A port as getaddrinfo reads digits.
pub fn inet_port(s: &str) -> Option<u16> {
    crate::endpoint::inet::parse_port(s)
}

/// The node kinds' own values: `dedup=`, `weights=`, `policy=`, each set
/// through the one table of node options.
pub fn node_values(s: &str) -> (bool, bool, bool) {
    use crate::endpoint::node::config::{options_for, KindName, NodeConfig};
    let takes = |kind, key| {
        let option = options_for(kind)
            .find(|o| o.key == key)
            .expect("a node key");
        NodeConfig::new(kind).set(option, s).is_ok()
    };
    (
        takes(KindName::Multi, "dedup"),
        takes(KindName::Bonding, "weights"),
        takes(KindName::Bonding, "policy"),
    )
}
