//! Interoperation with the installed C reference: Debian's vde_plug 4.0.1
//! (and its libvdeplug modules) and vde2's vde_switch.

mod common;

use common::*;

/// Sends `n` host frames through `host` in small bursts, waiting each time
/// until every cable together has received them, so no cable is ever full
/// and the round robin is undisturbed.
fn send_paced(host: &mut Plug, cables: &mut [Plug], n: u32, size: usize) {
    let mut sent = 0u32;
    while sent < n {
        let burst = (n - sent).min(8);
        for s in sent..sent + burst {
            host.send(&frame(1, s, size));
        }
        sent += burst;
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let wait = std::time::Duration::from_millis(1);
            let got: usize = cables.iter_mut().map(|c| c.collect(wait)).sum();
            if got >= sent as usize {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "cables have {got} of {sent} frames"
            );
        }
    }
}

/// Checks a bonding split: every frame once, N/K (±1) per cable.
fn assert_bonded(cables: &[Plug], n: u32) {
    let k = cables.len() as u32;
    let mut seen = vec![0u32; n as usize];
    for (i, c) in cables.iter().enumerate() {
        let got = c.received.len() as u32;
        assert!(
            got.abs_diff(n / k) <= 1,
            "cable {i} got {got} of {n} frames (K={k})"
        );
        for f in &c.received {
            assert_eq!(f, &frame(1, seq_of(f), f.len()), "frame corrupted");
            seen[seq_of(f) as usize] += 1;
        }
    }
    assert!(
        seen.iter().all(|&c| c == 1),
        "some frame lost or duplicated"
    );
}

/// One frame from each cable: the host gets them all, no cable gets one.
fn cable_frames_reach_host_only(host: &mut Plug, cables: &mut [Plug], already: &[usize]) {
    for (i, c) in cables.iter_mut().enumerate() {
        c.send(&frame(10 + i as u8, 1000 + i as u32, 60));
    }
    let got = host.wait_frames(cables.len()).len();
    assert_eq!(got, cables.len());
    let mut srcs: Vec<u8> = host.received.iter().map(|f| f[11]).collect();
    srcs.sort();
    assert_eq!(
        srcs,
        (0..cables.len()).map(|i| 10 + i as u8).collect::<Vec<_>>()
    );
    host.close_stdin();
    for (c, &had) in cables.iter_mut().zip(already) {
        assert_eq!(
            c.drain_to_end().len(),
            had,
            "a cable frame leaked to another cable"
        );
    }
}

fn bonding_case(node_plug: &str, cable_plug: &str, k: usize, url_params: &str) {
    require_c_reference();
    let t = Scratch::new("bond");
    let node = t.path("b");
    let mut host = Plug::start_node(node_plug, &[&format!("bonding://{node}{url_params}")]);
    let mut cables: Vec<Plug> = (0..k)
        .map(|i| {
            let p = Plug::spawn(cable_plug, &[&node]);
            wait_ports(&node, i + 1);
            p
        })
        .collect();
    let n = 60 * k as u32;
    send_paced(&mut host, &mut cables, n, 60);
    assert_bonded(&cables, n);
    let had: Vec<usize> = cables.iter().map(|c| c.received.len()).collect();
    cable_frames_reach_host_only(&mut host, &mut cables, &had);
    let (st, _) = host.wait();
    assert!(st.success());
    assert!(
        !std::path::Path::new(&node).exists(),
        "node directory left behind"
    );
}

#[test]
fn c_vde_plug_joins_our_bonding_node_k2() {
    bonding_case(rs_plug(), C_PLUG, 2, "");
}

#[test]
fn c_vde_plug_joins_our_bonding_node_k3_rr() {
    bonding_case(rs_plug(), C_PLUG, 3, "[policy=rr]");
}

#[test]
fn our_plug_joins_c_bonding_node_k2() {
    bonding_case(C_PLUG, rs_plug(), 2, "");
}

#[test]
fn our_plug_joins_c_bonding_node_k3() {
    bonding_case(C_PLUG, rs_plug(), 3, "");
}

#[test]
fn our_bonding_with_our_cables_k3() {
    bonding_case(rs_plug(), rs_plug(), 3, "");
}

fn multi_case(node_plug: &str, cable_plug: &str) {
    require_c_reference();
    let t = Scratch::new("multi");
    let node = t.path("m");
    let mut host = Plug::start_node(node_plug, &[&format!("multi://{node}")]);
    let mut cables: Vec<Plug> = (0..2)
        .map(|i| {
            let p = Plug::spawn(cable_plug, &[&node]);
            wait_ports(&node, i + 1);
            p
        })
        .collect();
    let n = 100u32;
    for s in 0..n {
        host.send(&frame(1, s, 60 + (s as usize % 40)));
        if s % 8 == 7 {
            for c in cables.iter_mut() {
                c.wait_frames(s as usize + 1);
            }
        }
    }
    for c in cables.iter_mut() {
        let got = c.wait_frames(n as usize);
        assert_eq!(got.len(), n as usize, "every host frame on every cable");
        for (i, f) in got.iter().enumerate() {
            assert_eq!(f, &frame(1, i as u32, 60 + i % 40));
        }
    }
    let had = vec![n as usize; 2];
    cable_frames_reach_host_only(&mut host, &mut cables, &had);
}

#[test]
fn c_vde_plug_joins_our_multi_node() {
    multi_case(rs_plug(), C_PLUG);
}

#[test]
fn our_plug_joins_c_multi_node() {
    multi_case(C_PLUG, rs_plug());
}

/// Two of our plugs exchange frames through a real vde_switch.
#[test]
fn our_plugs_through_vde_switch() {
    require_c_reference();
    let t = Scratch::new("sw");
    let sw = t.path("sw");
    let _switch = Switch::start(&sw);
    let mut a = Plug::spawn(rs_plug(), &[&sw]);
    let mut b = Plug::spawn(rs_plug(), &[&format!("vde://{sw}")]);
    // The switch's data sockets are not fdN: wait for both handshakes by
    // retrying a broadcast until it arrives.
    let mut seq = 0;
    while b.collect(std::time::Duration::from_millis(50)) == 0 {
        a.send(&frame(1, seq, 60));
        seq += 1;
        assert!(seq < 200, "no frame crossed the switch");
    }
    // Late probes may still come; only frames 5000.. count. The switch
    // drops what a full port cannot take (10 datagrams here), so the
    // frames go in bursts of 8, each once the last one is through.
    let ours = |b: &Plug| -> Vec<u32> {
        b.received
            .iter()
            .map(|f| seq_of(f))
            .filter(|&s| s >= 5000)
            .collect()
    };
    for burst in 0..10u32 {
        for s in burst * 8..(burst * 8 + 8).min(50) {
            a.send(&frame(1, 5000 + s, 100));
        }
        let want = ((burst + 1) * 8).min(50) as usize;
        let deadline = std::time::Instant::now() + PATIENCE;
        while ours(&b).len() < want {
            assert!(std::time::Instant::now() < deadline, "{:?}", ours(&b));
            b.collect(std::time::Duration::from_millis(5));
        }
    }
    assert_eq!(ours(&b), (5000..5050).collect::<Vec<_>>());
    // And back: b's MAC is learned as unknown, so the switch floods to a.
    b.send(&frame(2, 9, 1514));
    let back = a.wait_frames(1);
    assert_eq!(back[0], frame(2, 9, 1514));
}

/// Stream cables with the C plug at one end and ours at the other carry
/// frames of every size both ways, byte for byte.
fn stream_cable_case(outer: &str, inner: &str) {
    require_c_reference();
    let t = Scratch::new("stream");
    let (ha, hb) = (t.path("A"), t.path("B"));
    let _cable = Plug::start_node(
        outer,
        &[&format!("hub://{ha}"), "=", inner, &format!("hub://{hb}")],
    );
    let mut a = Plug::spawn(C_PLUG, &[&ha]);
    let mut b = Plug::spawn(rs_plug(), &[&hb]);
    wait_ports(&ha, 1);
    wait_ports(&hb, 1);
    let sizes = [14usize, 60, 1514, 9234];
    let mk = |src: u8, i: usize, size: usize| {
        if size < 18 {
            let mut f = frame(src, i as u32, 18);
            f.truncate(size);
            f
        } else {
            frame(src, i as u32, size)
        }
    };
    for (i, &size) in sizes.iter().enumerate() {
        a.send(&mk(1, i, size));
        b.send(&mk(2, i, size));
    }
    let got_b = b.wait_frames(sizes.len()).to_vec();
    let got_a = a.wait_frames(sizes.len()).to_vec();
    for (i, &size) in sizes.iter().enumerate() {
        assert_eq!(got_b[i], mk(1, i, size), "A->B frame {i} ({size} bytes)");
        assert_eq!(got_a[i], mk(2, i, size), "B->A frame {i} ({size} bytes)");
    }
}

#[test]
fn stream_cable_ours_outside_c_inside() {
    stream_cable_case(rs_plug(), C_PLUG);
}

#[test]
fn stream_cable_c_outside_ours_inside() {
    stream_cable_case(C_PLUG, rs_plug());
}

/// A stream written one byte at a time decodes the same.
#[test]
fn one_byte_writes_decode_the_same() {
    require_c_reference();
    let t = Scratch::new("bytes");
    let hub = t.path("h");
    let mut host = Plug::start_node(rs_plug(), &[&format!("hub://{hub}")]);
    let mut peer = Plug::spawn(C_PLUG, &[&hub]);
    wait_ports(&hub, 1);
    let frames: Vec<Vec<u8>> = [14usize, 60, 1514, 9234]
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            if s < 18 {
                frame(3, i as u32, 18)[..s].to_vec()
            } else {
                frame(3, i as u32, s)
            }
        })
        .collect();
    for f in &frames {
        for b in encode(f) {
            host.send_raw(&[b]);
        }
    }
    assert_eq!(peer.wait_frames(frames.len()), &frames[..]);
}

/// A frame from `src` to `dst` (MACs 02:00:00:00:00:xx).
fn unicast(src: u8, dst: u8, seq: u32) -> Vec<u8> {
    let mut f = frame(src, seq, 60);
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, dst]);
    f
}

/// The switch node learns: after each station has spoken, unicast goes to
/// its one destination only; broadcast floods. Same for ours and C's.
fn switch_case(node_plug: &str) {
    require_c_reference();
    let t = Scratch::new("switch");
    let dir = t.path("s");
    let mut host = Plug::start_node(node_plug, &[&format!("switch://{dir}")]);
    let mut c1 = Plug::spawn(C_PLUG, &[&dir]);
    wait_ports(&dir, 1);
    let mut c2 = Plug::spawn(rs_plug(), &[&dir]);
    wait_ports(&dir, 2);
    // Everyone announces itself with a broadcast: it floods.
    c1.send(&frame(0x0a, 1, 60));
    host.wait_frames(1);
    c2.wait_frames(1);
    c2.send(&frame(0x0b, 2, 60));
    host.wait_frames(2);
    c1.wait_frames(1);
    host.send(&frame(0x0c, 3, 60));
    c1.wait_frames(2);
    c2.wait_frames(2);
    // Now unicast goes to one place only.
    c2.send(&unicast(0x0b, 0x0a, 10));
    host.send(&unicast(0x0c, 0x0b, 11));
    c1.send(&unicast(0x0a, 0x0c, 12));
    assert_eq!(c1.wait_frames(3)[2], unicast(0x0b, 0x0a, 10));
    assert_eq!(c2.wait_frames(3)[2], unicast(0x0c, 0x0b, 11));
    assert_eq!(host.wait_frames(3)[2], unicast(0x0a, 0x0c, 12));
    host.close_stdin();
    for c in [&mut c1, &mut c2] {
        assert_eq!(c.drain_to_end().len(), 3, "a unicast frame leaked");
    }
    assert_eq!(host.drain_to_end().len(), 3);
}

#[test]
fn our_switch_node_learns() {
    switch_case(rs_plug());
}

#[test]
fn c_switch_node_learns_the_same() {
    switch_case(C_PLUG);
}
