//! The views of what arrives on a cable or a datagram socket: path
//! reports, sequence tags, VXLAN headers, Ethernet headers. The first byte
//! picks the view; the rest, copied to a buffer of its exact length (a read
//! past it is a panic), is the datagram. Asserts: no panic; an accepted
//! view re-emitted gives the same bytes; emitted fields read back equal;
//! taking a tag out leaves the frame as it was before the tag.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vde_plug_rs::fuzzing::{
    emit_path_report, emit_seq_tag, emit_vxlan_header, path_report, seq_tag, strip_seq_tag,
    vxlan_header, PATH_REPORT_LEN, SEQ_TAG_AT, SEQ_TAG_LEN,
};
use vde_plug_rs::wire::path_report::is_path_report;
use vde_plug_rs::wire::{EthernetFrame, ETH_HEADER_LEN};

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    for (i, x) in v.iter_mut().enumerate() {
        *x = b.get(at + i).copied().unwrap_or(0);
    }
    u32::from_be_bytes(v)
}

fn path_reports(data: &[u8]) {
    match path_report(data) {
        Ok(f) => {
            assert!(is_path_report(data));
            assert_eq!(&emit_path_report(f)[..], data);
        }
        Err(_) => assert!(!is_path_report(data)),
    }
    let f = (
        u32_at(data, 0),
        u32_at(data, 4) as u16,
        u32_at(data, 6) as u16,
        data.first().copied().unwrap_or(0),
    );
    let emitted = emit_path_report(f);
    assert_eq!(emitted.len(), PATH_REPORT_LEN);
    assert_eq!(path_report(&emitted), Ok(f));
}

fn seq_tags(data: &[u8]) {
    if let Ok(f) = seq_tag(data) {
        assert_eq!(
            &emit_seq_tag(f)[..],
            &data[SEQ_TAG_AT..SEQ_TAG_AT + SEQ_TAG_LEN]
        );
        let mut frame = data.to_vec();
        let n = strip_seq_tag(&mut frame);
        assert_eq!(n, data.len() - SEQ_TAG_LEN);
        assert_eq!(&frame[..SEQ_TAG_AT], &data[..SEQ_TAG_AT]);
        assert_eq!(&frame[SEQ_TAG_AT..n], &data[SEQ_TAG_AT + SEQ_TAG_LEN..]);
    }
    // A frame tagged with fields taken from the input.
    if data.len() >= ETH_HEADER_LEN {
        let f = (
            data[0],
            u32_at(data, 1),
            u32_at(data, 5) as u16,
            u32_at(data, 7) as u16,
        );
        let mut tagged = data[..SEQ_TAG_AT].to_vec();
        tagged.extend_from_slice(&emit_seq_tag(f));
        tagged.extend_from_slice(&data[SEQ_TAG_AT..]);
        assert_eq!(seq_tag(&tagged), Ok(f));
        let n = strip_seq_tag(&mut tagged);
        assert_eq!(&tagged[..n], data);
    }
}

fn vxlan_headers(data: &[u8]) {
    // A node's own VNI is at most 24 bits (checked when it opens).
    let vni = u32_at(data, 8) & 0x00ff_ffff;
    if let Ok((flags, v, loosely, exactly)) = vxlan_header(data, vni) {
        assert_eq!(flags, data[0]);
        assert_eq!(v, u32_at(data, 3) & 0x00ff_ffff);
        assert_eq!(exactly, data[..8] == emit_vxlan_header(vni));
        assert!(!exactly || loosely);
        assert_eq!(loosely, flags == 0x08 && v == vni);
    }
    let emitted = emit_vxlan_header(vni);
    let (flags, v, loosely, exactly) = vxlan_header(&emitted, vni).unwrap();
    assert_eq!((flags, v, loosely, exactly), (0x08, vni, true, true));
}

fn ethernet(data: &[u8]) {
    let Ok(f) = EthernetFrame::new_checked(data) else {
        assert!(data.len() < ETH_HEADER_LEN);
        return;
    };
    assert_eq!(f.dst()[..], data[..6]);
    assert_eq!(f.src()[..], data[6..12]);
    assert_eq!(f.ethertype(), u16::from_be_bytes([data[12], data[13]]));
    assert!(f.vlan() < 1 << 12);
    let (_, payload) = f.payload();
    assert!(payload.len() <= data.len() - ETH_HEADER_LEN);
    let _ = f.ip_source();
}

fuzz_target!(|input: &[u8]| {
    let Some((&pick, data)) = input.split_first() else {
        return;
    };
    let data = data.to_vec();
    match pick % 4 {
        0 => path_reports(&data),
        1 => seq_tags(&data),
        2 => vxlan_headers(&data),
        _ => ethernet(&data),
    }
});
