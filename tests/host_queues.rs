//! A bonding node's host-side flow queues: frames from the host that wait
//! for a full cable are handed out flow by flow, sparse flows first, and
//! nothing is lost.

mod common;

use common::*;
use std::io::Write;
use std::time::Instant;

/// Waits until the host plug has read `n` frames from its stdin (they are
/// then in the node's store or past it).
fn wait_read(host: &mut LivePlug, n: usize) {
    let deadline = Instant::now() + PATIENCE;
    while host.counter("stream stdin/stdout").frames_in < n as u64 {
        assert!(Instant::now() < deadline, "the host read fewer than {n}");
    }
}

/// The frames the node has sent to its one cable.
fn sent_to_cable(host: &mut LivePlug) -> u64 {
    let rows = host.counters();
    rows.iter()
        .find(|r| r.link.starts_with("port "))
        .map_or(0, |r| r.frames_out)
}

/// A bulk flow fills the only cable (a client that does not read) and
/// 1 000 frames more wait in the node's store (1 024 under `vde_plug_rs`:
/// a TCP start's overshoot, which in a store of 256 waited in the tap's
/// ring, behind which a ping waits); then a sparse flow sends three
/// frames. Once the cable reads again it gets exactly: the bulk frames its
/// socket already held, the sparse flow's three, then the rest of the
/// bulk flow, in order.
#[test]
fn a_sparse_flow_overtakes_a_bulk_backlog() {
    let t = Scratch::new("fq");
    let node = t.path("b");
    let socks = t.dir.join("s");
    std::fs::create_dir(&socks).unwrap();
    let mut host = LivePlug::start_node(rs_plug(), &[&format!("bonding://{node}")]);
    let cable = RawClient::join(&node, &socks).unwrap();
    wait_ports(&node, 1);

    // Bulk frames in steps until the cable's socket is full and the node
    // keeps some back (fewer than 20); then 1 000 more, within its store.
    let bulk = |s: u32| frame(1, s, 1000);
    let mut sent = 0u32;
    loop {
        for s in sent..sent + 20 {
            host.send(&bulk(s));
        }
        sent += 20;
        wait_read(&mut host, sent as usize);
        if sent_to_cable(&mut host) < u64::from(sent) {
            break;
        }
        assert!(sent < 20_000, "the cable's socket never filled");
    }
    // From a thread: in a smaller store the plug would stop reading, and
    // the wait below fails where a write here would block.
    let mut stdin = host.take_stdin();
    let first = sent;
    let writer = std::thread::spawn(move || {
        for s in first..first + 1000 {
            stdin.write_all(&encode(&bulk(s))).ok()?;
        }
        Some(stdin)
    });
    sent += 1000;
    wait_read(&mut host, sent as usize);
    host.give_stdin(writer.join().unwrap().expect("the host's stdin"));
    let k = sent_to_cable(&mut host) as u32;
    assert!(sent - k >= 1000, "the node holds {} bulk frames", sent - k);

    let sparse: Vec<Vec<u8>> = (0..3).map(|s| frame(2, s, 98)).collect();
    for f in &sparse {
        host.send(f);
    }
    wait_read(&mut host, sent as usize + sparse.len());
    assert_eq!(sent_to_cable(&mut host), u64::from(k), "the cable is full");

    let mut want: Vec<Vec<u8>> = (0..k).map(bulk).collect();
    want.extend(sparse.iter().cloned());
    want.extend((k..sent).map(bulk));
    let got: Vec<Vec<u8>> = (0..want.len())
        .map(|i| {
            cable
                .recv()
                .unwrap_or_else(|| panic!("frame {i} of {} never came", want.len()))
        })
        .collect();
    let summary =
        |fs: &[Vec<u8>]| -> Vec<(u8, u32)> { fs.iter().map(|f| (f[11], seq_of(f))).collect() };
    assert_eq!(summary(&got), summary(&want));
    assert_eq!(got, want);
    println!(
        "{k} bulk frames in the cable's socket, {} held; the sparse flow's 3 went first",
        sent - k
    );
}

/// The same in the libvdeplug module's shell, driven in this process as a
/// program would drive it (`vde_send`, `vde_recv`): the one cable is a
/// client that does not read until the sparse flow's frames are in.
#[test]
fn in_the_module_a_sparse_flow_overtakes_a_bulk_backlog() {
    use vde_plug_rs::hosted::HostedNode;
    let t = Scratch::new("fq-pl");
    let dir = t.path("b");
    let mut node = HostedNode::open("bonding", &dir).unwrap();
    let joining = {
        let (dir, socks) = (dir.clone(), t.dir.clone());
        std::thread::spawn(move || RawClient::join(&dir, &socks).unwrap())
    };
    let mut buf = [0u8; 2048];
    while !joining.is_finished() {
        node.recv(&mut buf);
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
    let cable = joining.join().unwrap();
    let row = |node: &HostedNode, link: &str| {
        node.report()
            .lines()
            .filter_map(parse_counter_row)
            .find(|r| r.link.starts_with(link))
            .unwrap_or_else(|| panic!("no {link} row in {}", node.report()))
    };

    // Bulk frames until the cable's socket refused one (its `skipped`),
    // then 100 more: all taken, none dropped, held in the node.
    let bulk = |s: u32| frame(1, s, 1000);
    let mut sent = 0u32;
    while row(&node, "port").skipped == 0 {
        node.send(&bulk(sent));
        sent += 1;
        assert!(sent < 20_000, "the cable's socket never filled");
    }
    for _ in 0..100 {
        node.send(&bulk(sent));
        sent += 1;
    }
    let sparse: Vec<Vec<u8>> = (0..3).map(|s| frame(2, s, 98)).collect();
    for f in &sparse {
        node.send(f);
    }
    let program = row(&node, "program");
    assert_eq!((program.frames_in, program.full), (u64::from(sent) + 3, 0));
    let k = row(&node, "port").frames_out as u32;
    assert!(sent - k >= 100, "the node holds {} bulk frames", sent - k);

    let mut want: Vec<Vec<u8>> = (0..k).map(bulk).collect();
    want.extend(sparse.iter().cloned());
    want.extend((k..sent).map(bulk));
    cable.data.set_nonblocking(true).unwrap();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while got.len() < want.len() {
        assert!(Instant::now() < deadline, "{} of {}", got.len(), want.len());
        while let Ok(len) = cable.data.recv(&mut buf) {
            if !vde_plug_rs::wire::path_report::is_path_report(&buf[..len]) {
                got.push(buf[..len].to_vec());
            }
        }
        node.recv(&mut buf);
    }
    let summary =
        |fs: &[Vec<u8>]| -> Vec<(u8, u32)> { fs.iter().map(|f| (f[11], seq_of(f))).collect() };
    assert_eq!(summary(&got), summary(&want));
    assert_eq!(got, want);
    drop(node);
    assert!(!std::path::Path::new(&dir).exists());
}
