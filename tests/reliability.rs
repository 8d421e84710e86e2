//! Reliability (issue 4): hostile control connections and hostile frames
//! against our bonding and multi nodes, dying peers, and stale node
//! directories. Every case checks exact outcomes afterwards: the node still
//! forwards between its healthy cables with no frame lost or corrupted, no
//! port socket is left behind, and its open descriptors are back to what
//! they were.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// Frames the host sends in each traffic check.
const HOST_FRAMES: u32 = 24;
/// Frames each cable sends in each traffic check.
const CABLE_FRAMES: u32 = 8;
/// The node closes a control connection that sent no request after 5 s.
const SILENT_BOUND: Duration = Duration::from_secs(15);

/// A node under attack: `vde_plug_rs -v KIND://DIR/n` on a stdio host,
/// with two healthy cables joined: the C vde_plug and ours.
struct Rig {
    host: LivePlug,
    cables: Vec<Plug>,
    kind: &'static str,
    node: String,
    /// Where raw clients bind their datagram sockets.
    socks: PathBuf,
    /// The node's open descriptors with only the healthy cables joined.
    base_fds: usize,
    /// The node directory with only the healthy cables joined.
    listing: Vec<String>,
    seq: u32,
    // Last, so that it is removed after every process above is gone.
    _t: Scratch,
}

impl Rig {
    fn new(kind: &'static str) -> Rig {
        require_c_reference();
        let t = Scratch::new(kind);
        let node = t.path("n");
        let socks = t.dir.join("s");
        std::fs::create_dir(&socks).unwrap();
        let host = LivePlug::start_node(rs_plug(), &["-v", &format!("{kind}://{node}")]);
        let mut cables = Vec::new();
        for (i, prog) in [C_PLUG, rs_plug()].into_iter().enumerate() {
            cables.push(Plug::spawn(prog, &[&node]));
            wait_ports(&node, i + 1);
        }
        let mut rig = Rig {
            host,
            cables,
            kind,
            node,
            socks,
            base_fds: 0,
            listing: Vec::new(),
            seq: 0,
            _t: t,
        };
        rig.traffic();
        rig.base_fds = fd_count(rig.host.pid());
        rig.listing = dir_listing(&rig.node);
        assert_eq!(
            rig.listing.len(),
            4,
            "ctl, status and two ports: {:?}",
            rig.listing
        );
        rig
    }

    fn ctl(&self) -> String {
        format!("{}/ctl", self.node)
    }

    fn connect(&self) -> UnixStream {
        UnixStream::connect(self.ctl()).expect("connect to ctl")
    }

    /// A datagram socket bound to a fresh path, as a real client makes.
    fn bound_sock(&self) -> (UnixDatagram, PathBuf, RemoveOnDrop) {
        let p = client_sock_path(&self.socks);
        let s = UnixDatagram::bind(&p).unwrap();
        (s, p.clone(), RemoveOnDrop(p))
    }

    fn multi(&self) -> bool {
        self.kind == "multi"
    }

    /// Host frames reach the cables (one cable each for bonding, every
    /// cable for multi) and cable frames reach the host: all of them, once,
    /// byte for byte. Frames from before (a flood, say) are told apart by
    /// their sequence numbers and ignored.
    fn traffic(&mut self) {
        let first = self.seq;
        self.seq += HOST_FRAMES + CABLE_FRAMES;
        let size = |s: u32| 60 + (s as usize * 37) % 1400;
        let ours = |f: &Vec<u8>, src: u8, lo: u32, hi: u32| {
            f.len() >= 18 && f[11] == src && (lo..hi).contains(&seq_of(f))
        };
        let starts: Vec<usize> = self.cables.iter().map(|c| c.received.len()).collect();
        let host_range = first..first + HOST_FRAMES;
        let mut sent = 0;
        while sent < HOST_FRAMES {
            let burst = (HOST_FRAMES - sent).min(8);
            for s in sent..sent + burst {
                let seq = first + s;
                self.host.send(&frame(1, seq, size(seq)));
            }
            sent += burst;
            let deadline = Instant::now() + PATIENCE;
            loop {
                let counts: Vec<usize> = self
                    .cables
                    .iter_mut()
                    .zip(&starts)
                    .map(|(c, &st)| {
                        c.collect(Duration::from_millis(1));
                        c.received[st..]
                            .iter()
                            .filter(|f| ours(f, 1, host_range.start, host_range.end))
                            .count()
                    })
                    .collect();
                let done = if self.multi() {
                    counts.iter().all(|&n| n >= sent as usize)
                } else {
                    counts.iter().sum::<usize>() >= sent as usize
                };
                if done {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{}: cables have {counts:?} of {sent} host frames",
                    self.kind
                );
            }
        }
        let mut seen = vec![0u32; HOST_FRAMES as usize];
        for (c, &st) in self.cables.iter().zip(&starts) {
            let got: Vec<&Vec<u8>> = c.received[st..]
                .iter()
                .filter(|f| ours(f, 1, host_range.start, host_range.end))
                .collect();
            for f in &got {
                let seq = seq_of(f);
                assert_eq!(**f, frame(1, seq, size(seq)), "host frame {seq} corrupted");
                seen[(seq - first) as usize] += 1;
            }
            if self.multi() {
                let seqs: Vec<u32> = got.iter().map(|f| seq_of(f)).collect();
                assert_eq!(
                    seqs,
                    host_range.clone().collect::<Vec<_>>(),
                    "multi: every host frame, in order"
                );
            }
            // A cable never hears another cable.
            assert!(
                c.received[st..].iter().all(|f| f.len() < 12 || f[11] == 1),
                "a cable frame reached another cable"
            );
        }
        let want = if self.multi() {
            self.cables.len() as u32
        } else {
            1
        };
        assert!(
            seen.iter().all(|&n| n == want),
            "{}: host frames lost or duplicated: {seen:?}",
            self.kind
        );

        // Cables to host.
        let lo = first + HOST_FRAMES;
        let hi = lo + CABLE_FRAMES;
        let hstart = self.host.received.len();
        for (i, c) in self.cables.iter_mut().enumerate() {
            for s in lo..hi {
                c.send(&frame(10 + i as u8, s, size(s)));
            }
        }
        let k = self.cables.len();
        let deadline = Instant::now() + PATIENCE;
        let count_host = |h: &Plug| {
            h.received[hstart..]
                .iter()
                .filter(|f| (0..k).any(|i| ours(f, 10 + i as u8, lo, hi)))
                .count()
        };
        while count_host(&self.host) < k * CABLE_FRAMES as usize && Instant::now() < deadline {
            self.host.collect(Duration::from_millis(5));
        }
        let mut got: Vec<(u8, u32)> = self.host.received[hstart..]
            .iter()
            .filter(|f| (0..k).any(|i| ours(f, 10 + i as u8, lo, hi)))
            .map(|f| {
                assert_eq!(
                    *f,
                    frame(f[11], seq_of(f), size(seq_of(f))),
                    "cable frame corrupted"
                );
                (f[11], seq_of(f))
            })
            .collect();
        got.sort();
        let want: Vec<(u8, u32)> = (0..k)
            .flat_map(|i| (lo..hi).map(move |s| (10 + i as u8, s)))
            .collect();
        assert_eq!(got, want, "{}: cable frames at the host", self.kind);
    }

    /// No port left but the healthy cables', no stray file, descriptors
    /// back to the baseline.
    fn clean(&self) {
        wait_ports(&self.node, self.cables.len());
        assert_eq!(
            dir_listing(&self.node),
            self.listing,
            "node directory changed"
        );
        let pid = self.host.pid();
        assert_eq!(
            wait_fd_count(pid, self.base_fds),
            self.base_fds,
            "node descriptors not back to the baseline"
        );
        assert!(self.cables.iter().all(is_running), "a healthy cable died");
    }

    /// Back to the two cables (a bonding node deals frames to any port it
    /// still has), then every frame both ways, then nothing left over.
    fn check(&mut self) {
        self.clean();
        self.traffic();
        self.clean();
    }
}

fn is_running(p: &Plug) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(p.pid(), 0) == 0 };
    alive
        && std::fs::read_to_string(format!("/proc/{}/stat", p.pid()))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

/// The node closed the connection without a word.
fn expect_no_reply(s: &mut UnixStream, what: &str) {
    match read_until_closed(s, PATIENCE) {
        Ok(got) => assert!(
            got.is_empty(),
            "{what}: the node replied {} bytes",
            got.len()
        ),
        Err(e) => panic!("{what}: the node did not close the connection: {e}"),
    }
}

macro_rules! on_both_nodes {
    ($($case:ident),* $(,)?) => {
        mod bonding {
            $( #[test] fn $case() { super::$case("bonding") } )*
        }
        mod multi {
            $( #[test] fn $case() { super::$case("multi") } )*
        }
    };
}

on_both_nodes!(
    random_bytes,
    short_request,
    bad_header,
    bad_sockaddr,
    huge_description,
    silent_connections,
    vanish_before_reply,
    unreachable_client_socket,
    hostile_datagrams,
    kill_c_cable_mid_flow,
    kill_rs_cable_mid_flow,
);

// ---------------------------------------------------------------------
// 1. Hostile control connections
// ---------------------------------------------------------------------

fn random_bytes(kind: &'static str) {
    let mut rig = Rig::new(kind);
    let mut rng = XorShift::new(0x5eed_0001);
    for i in 0..24 {
        let len = 1 + rng.below(600);
        let mut bytes = rng.bytes(len);
        // Every fourth behind a good magic and version, so the checks past
        // them are reached too.
        if i % 4 == 3 && len >= 8 {
            bytes[..4].copy_from_slice(&REQ_MAGIC.to_ne_bytes());
            bytes[4..8].copy_from_slice(&3u32.to_ne_bytes());
        }
        let mut s = rig.connect();
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(Shutdown::Write);
        expect_no_reply(&mut s, &format!("random bytes #{i} ({len} bytes)"));
        assert_eq!(port_count(&rig.node), 2);
    }
    rig.check();
}

fn short_request(kind: &'static str) {
    let mut rig = Rig::new(kind);
    for (i, cut) in [1usize, 3, 4, 11, 12, 13, 60, 121].into_iter().enumerate() {
        let (_sock, path, _g) = rig.bound_sock();
        let req = valid_request(&path, b"short");
        let mut s = rig.connect();
        s.write_all(&req[..cut]).unwrap();
        if i % 2 == 0 {
            // Cut short, then gone.
            drop(s);
        } else {
            s.shutdown(Shutdown::Write).unwrap();
            expect_no_reply(&mut s, &format!("request cut at {cut}"));
        }
    }
    rig.check();
    // A slow but honest client (one byte per write) still gets its port.
    let (sock, path, _g) = rig.bound_sock();
    let mut s = rig.connect();
    for b in valid_request(&path, b"slow") {
        s.write_all(&[b]).unwrap();
    }
    let mut reply = [0u8; 110];
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.read_exact(&mut reply).unwrap();
    wait_ports(&rig.node, 3);
    drop(s);
    drop(sock);
    rig.check();
}

fn bad_header(kind: &'static str) {
    let mut rig = Rig::new(kind);
    use std::os::unix::ffi::OsStrExt;
    let cases: [(&str, u32, u32, u32); 7] = [
        ("wrong magic", 0xdead_beef, 3, 0),
        ("byte-swapped magic", REQ_MAGIC.swap_bytes(), 3, 0),
        ("version 2", REQ_MAGIC, 2, 0),
        ("version 4", REQ_MAGIC, 4, 0),
        ("version 0x03000000", REQ_MAGIC, 3u32.swap_bytes(), 0),
        ("type 1 (port 0)", REQ_MAGIC, 3, 1),
        ("type 0x0105", REQ_MAGIC, 3, 0x0105),
    ];
    for (what, magic, version, typ) in cases {
        let (_sock, path, _g) = rig.bound_sock();
        let req = raw_request(
            magic,
            version,
            typ,
            libc::AF_UNIX as u16,
            path.as_os_str().as_bytes(),
            b"bad header",
        );
        let mut s = rig.connect();
        s.write_all(&req).unwrap();
        expect_no_reply(&mut s, what);
        assert_eq!(port_count(&rig.node), 2, "{what}: a port was made");
    }
    rig.check();
}

fn bad_sockaddr(kind: &'static str) {
    let mut rig = Rig::new(kind);
    use std::os::unix::ffi::OsStrExt;
    let (_sock, path, _g) = rig.bound_sock();
    let good = path.as_os_str().as_bytes().to_vec();
    // Not NUL-terminated: 108 path bytes, the real path then padding.
    let mut unterminated = good.clone();
    unterminated.resize(108, b'a');
    let mut abstract_ns = vec![0u8];
    abstract_ns.extend_from_slice(b"vdetest-abstract");
    let cases: Vec<(&str, u16, Vec<u8>)> = vec![
        (
            "path not NUL-terminated",
            libc::AF_UNIX as u16,
            unterminated,
        ),
        ("path of 108 'a'", libc::AF_UNIX as u16, vec![b'a'; 108]),
        ("empty path", libc::AF_UNIX as u16, Vec::new()),
        ("abstract address", libc::AF_UNIX as u16, abstract_ns),
        ("family AF_INET", libc::AF_INET as u16, good.clone()),
        ("family 0", 0, good.clone()),
        (
            "byte-swapped family",
            (libc::AF_UNIX as u16).swap_bytes(),
            good,
        ),
    ];
    for (what, family, p) in cases {
        let req = raw_request(REQ_MAGIC, 3, 0, family, &p, b"bad sockaddr");
        let mut s = rig.connect();
        s.write_all(&req).unwrap();
        expect_no_reply(&mut s, what);
        assert_eq!(port_count(&rig.node), 2, "{what}: a port was made");
    }
    rig.check();
}

/// A description longer than the request has room for is cut: the port
/// is made (as the C node does: it reads one request's worth), what
/// follows is read and ignored, and the port works.
fn huge_description(kind: &'static str) {
    let mut rig = Rig::new(kind);
    for (i, dlen) in [257usize, 400, 70_000].into_iter().enumerate() {
        let (sock, path, _g) = rig.bound_sock();
        let mut s = rig.connect();
        s.write_all(&valid_request(&path, &vec![b'D'; dlen]))
            .unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut reply = [0u8; 110];
        s.read_exact(&mut reply).unwrap();
        let end = reply[2..].iter().position(|&c| c == 0).unwrap();
        let port = String::from_utf8_lossy(&reply[2..2 + end]).into_owned();
        assert!(
            port.starts_with(&format!("{}/fd", rig.node)),
            "reply {port}"
        );
        sock.connect(&port).unwrap();
        let f = frame(20, 90_000 + i as u32, 100);
        let before = rig.host.received.len();
        sock.send(&f).unwrap();
        let got = rig.host.wait_frames(before + 1);
        assert_eq!(got.len(), before + 1);
        assert_eq!(got[before], f);
        let row = rig
            .host
            .counters()
            .into_iter()
            .find(|r| r.link.starts_with("port ") && r.description.starts_with('D'))
            .expect("a counters row for the port");
        assert_eq!(
            row.description,
            "D".repeat(128),
            "description cut to 128 bytes"
        );
        assert_eq!((row.frames_in, row.runt, row.oversize), (1, 0, 0));
        drop(s);
        wait_ports(&rig.node, 2);
    }
    rig.check();
}

/// Connections that never send a request (or half of one) are closed by
/// the node after about 5 s; meanwhile the node forwards as usual.
fn silent_connections(kind: &'static str) {
    let mut rig = Rig::new(kind);
    let mut silent: Vec<UnixStream> = (0..4).map(|_| rig.connect()).collect();
    let (_sock, path, _g) = rig.bound_sock();
    let mut half = rig.connect();
    half.write_all(&valid_request(&path, b"half")[..50])
        .unwrap();
    silent.push(half);
    let since = Instant::now();
    rig.traffic();
    assert_eq!(port_count(&rig.node), 2);
    for (i, s) in silent.iter_mut().enumerate() {
        let left = SILENT_BOUND.saturating_sub(since.elapsed());
        match read_until_closed(s, left) {
            Ok(got) => assert!(got.is_empty(), "silent #{i}: got a reply"),
            Err(e) => panic!("silent connection #{i} not closed by the node: {e}"),
        }
    }
    println!("silent connections closed after {:?}", since.elapsed());
    drop(silent);
    rig.check();
}

/// Valid requests whose client is gone before the reply: no port (or a
/// port that ends at once), never a socket file left behind.
fn vanish_before_reply(kind: &'static str) {
    let mut rig = Rig::new(kind);
    let mut kept = Vec::new();
    for round in 0..8 {
        // a) everything gone at once.
        {
            let (sock, path, _g) = rig.bound_sock();
            let mut s = rig.connect();
            s.write_all(&valid_request(&path, b"vanish a")).unwrap();
            drop(sock);
            drop(s);
        }
        // b) the control stream gone, the datagram socket still there.
        {
            let (sock, path, g) = rig.bound_sock();
            let mut s = rig.connect();
            s.write_all(&valid_request(&path, b"vanish b")).unwrap();
            drop(s);
            kept.push((sock, g));
        }
        // c) the datagram socket gone (closed and unlinked), the stream
        //    still open: the node replies if it was quick, or closes.
        {
            let (sock, path, g) = rig.bound_sock();
            let mut s = rig.connect();
            s.write_all(&valid_request(&path, b"vanish c")).unwrap();
            drop(sock);
            drop(g);
            if round % 2 == 0 {
                s.shutdown(Shutdown::Write).unwrap();
                let got = read_until_closed(&mut s, PATIENCE).expect("closed");
                assert!(
                    got.is_empty() || got.len() == 110,
                    "odd reply of {}",
                    got.len()
                );
            }
        }
    }
    drop(kept);
    rig.check();
}

/// A well-formed request naming something that is not a client's
/// datagram socket: no port is made.
fn unreachable_client_socket(kind: &'static str) {
    let mut rig = Rig::new(kind);
    let missing = rig.socks.join("does-not-exist");
    let file = rig.socks.join("regular-file");
    std::fs::write(&file, b"not a socket").unwrap();
    let dir = rig.socks.join("a-directory");
    std::fs::create_dir(&dir).unwrap();
    let stale = rig.socks.join("closed-socket");
    drop(UnixDatagram::bind(&stale).unwrap());
    let listener_path = rig.socks.join("stream-socket");
    let _listener = UnixListener::bind(&listener_path).unwrap();
    let ctl = PathBuf::from(rig.ctl());
    let cable_port = Path::new(&rig.node).join(
        rig.listing
            .iter()
            .find(|n| n.starts_with("fd"))
            .expect("a cable port"),
    );
    let cases: [(&str, &Path); 7] = [
        ("a path that does not exist", &missing),
        ("a regular file", &file),
        ("a directory", &dir),
        ("a closed socket's path", &stale),
        ("a stream socket", &listener_path),
        ("the node's own ctl", &ctl),
        ("another cable's port socket", &cable_port),
    ];
    for (what, target) in cases {
        let mut s = rig.connect();
        s.write_all(&valid_request(target, b"unreachable")).unwrap();
        expect_no_reply(&mut s, what);
        assert_eq!(port_count(&rig.node), 2, "{what}: a port was made");
        assert_eq!(dir_listing(&rig.node), rig.listing, "{what}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"not a socket");
    rig.check();
}

// ---------------------------------------------------------------------
// 2. Hostile frames
// ---------------------------------------------------------------------

/// The smallest frame a node forwards: a bare 14-byte Ethernet header.
fn header_only(src: u8) -> Vec<u8> {
    let mut f = vec![0xffu8; 6];
    f.extend_from_slice(&[2, 0, 0, 0, 0, src]);
    f.extend_from_slice(&[0x88, 0xb5]);
    f
}

/// Runts, empty and oversize datagrams on a port's data socket are
/// dropped and counted; the good frames after them arrive intact.
fn hostile_datagrams(kind: &'static str) {
    let mut rig = Rig::new(kind);
    let client = RawClient::join(&rig.node, &rig.socks).unwrap();
    wait_ports(&rig.node, 3);
    let mut rng = XorShift::new(0xda7a_0002);
    let (mut runts, mut oversize, mut good) = (0u64, 0u64, Vec::new());
    for burst in 0..3u32 {
        for _ in 0..6 {
            let len = rng.below(14);
            client.send(&rng.bytes(len));
            runts += 1;
        }
        client.send(&[]);
        runts += 1;
        for len in [9237usize, 9300, 20_000] {
            client.send(&rng.bytes(len));
            oversize += 1;
        }
        for f in [
            header_only(30),
            frame(30, 70_000 + burst, 60),
            frame(30, 80_000 + burst, 9236),
        ] {
            client.send(&f);
            good.push(f);
        }
    }
    let before = rig.host.received.len();
    let got = rig.host.wait_frames(before + good.len()).to_vec();
    assert_eq!(&got[before..], &good[..], "good frames after bad ones");
    let row = rig
        .host
        .counters()
        .into_iter()
        .find(|r| r.description == "raw test client")
        .expect("the raw client's port row");
    assert_eq!(
        (row.frames_in, row.runt, row.oversize),
        (good.len() as u64, runts, oversize),
        "port counters"
    );
    // Nothing is logged per dropped datagram (at most a line per burst).
    let complaints = rig.host.count_lines("warning:");
    assert!(
        complaints <= 3,
        "more than one log line per burst: {:?}",
        rig.host.log
    );
    drop(client);
    rig.check();
}

/// Hostile input on the host's byte stream: zero lengths, runts,
/// oversize lengths, a length prefix split across writes, and a frame cut
/// short by the end of the stream.
#[test]
fn hostile_stream_input() {
    let t = Scratch::new("stream");
    let node = t.path("n");
    let socks = t.dir.join("s");
    std::fs::create_dir(&socks).unwrap();
    let mut host = LivePlug::start_node(rs_plug(), &["-v", &format!("bonding://{node}")]);
    let cable = RawClient::join(&node, &socks).unwrap();
    let expect = |cable: &RawClient, f: &[u8], what: &str| {
        let got = cable
            .recv()
            .unwrap_or_else(|| panic!("{what}: nothing came"));
        assert_eq!(got, f, "{what}");
    };
    let stream_row = |host: &mut LivePlug| host.counter("stream stdin/stdout");

    // Zero lengths are skipped.
    let f = frame(1, 1, 60);
    let mut bytes = vec![0, 0, 0, 0];
    bytes.extend(encode(&f));
    host.send_raw(&bytes);
    expect(&cable, &f, "frame after zero lengths");
    let r = stream_row(&mut host);
    assert_eq!((r.frames_in, r.runt, r.oversize), (1, 0, 0));

    // Runts (1 to 13 bytes) are dropped and counted, in one write.
    let mut bytes = Vec::new();
    for len in 1..14 {
        bytes.extend(encode(&vec![0xabu8; len]));
    }
    let f = frame(1, 2, 61);
    bytes.extend(encode(&f));
    host.send_raw(&bytes);
    expect(&cable, &f, "frame after runts");
    let r = stream_row(&mut host);
    assert_eq!((r.frames_in, r.runt, r.oversize), (2, 13, 0));

    // Oversize lengths: the rest of that read is dropped and decoding
    // starts afresh. Each bad length goes in its own write and is seen
    // (counted) before the next good frame is written.
    let started = Instant::now();
    let bad_lengths = [9237u16, 9300, 0xffff, 40_000, 9237];
    for (i, &len) in bad_lengths.iter().enumerate() {
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0x5a; 10]);
        host.send_raw(&bytes);
        let deadline = Instant::now() + PATIENCE;
        while stream_row(&mut host).oversize < i as u64 + 1 {
            assert!(
                Instant::now() < deadline,
                "oversize length {len} not counted"
            );
        }
        let f = frame(1, 10 + i as u32, 62);
        host.send(&f);
        expect(&cable, &f, "frame after an oversize length");
    }
    let elapsed = started.elapsed().as_secs() as usize;
    let r = stream_row(&mut host);
    assert_eq!((r.frames_in, r.runt, r.oversize), (7, 13, 5));
    let warned = host.count_lines("bad frame length");
    assert!(
        warned >= 1 && warned <= 1 + elapsed,
        "{warned} warnings for one burst of bad lengths in {elapsed} s"
    );

    // Length prefixes split across writes.
    for i in 0..20u32 {
        let f = frame(1, 100 + i, 60 + i as usize * 97);
        let e = encode(&f);
        let at = 1 + (i as usize % 3);
        host.send_raw(&e[..at]);
        if i % 2 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        host.send_raw(&e[at..]);
        expect(&cable, &f, "frame with a split length prefix");
    }

    // A frame cut short by the end of the stream.
    let f = frame(1, 200, 90);
    let mut bytes = encode(&f);
    bytes.extend_from_slice(&100u16.to_be_bytes());
    bytes.extend_from_slice(&[0x77; 40]);
    host.send_raw(&bytes);
    expect(&cable, &f, "last whole frame");
    let r = stream_row(&mut host);
    assert_eq!((r.frames_in, r.runt, r.oversize), (28, 13, 5));
    host.close_stdin();
    let (st, log) = host.finish();
    assert_eq!(st.code(), Some(0), "exit status {st:?}\n{log}");
    assert_eq!(
        log.matches("the stream ended inside a frame (40 bytes dropped)")
            .count(),
        1,
        "{log}"
    );
    assert!(!Path::new(&node).exists(), "node directory left behind");
    cable.data.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 16];
    assert!(
        cable.data.recv(&mut buf).is_err(),
        "an extra frame came out"
    );
}

// ---------------------------------------------------------------------
// 3. Dying peers
// ---------------------------------------------------------------------

fn kill_cable_mid_flow(kind: &'static str, victim: usize) {
    let mut rig = Rig::new(kind);
    let before = rig.listing.clone();
    // A flood both ways, with the kill in the middle.
    let base = 1_000_000;
    for s in 0..60u32 {
        rig.host.send(&frame(1, base + s, 200));
        if s % 4 == 0 {
            for (i, c) in rig.cables.iter_mut().enumerate() {
                // Writing to a killed process's stdin would fail.
                if !(s > 30 && i == victim) {
                    c.send(&frame(10 + i as u8, base + s, 200));
                }
            }
        }
        if s == 30 {
            rig.cables[victim].signal(libc::SIGKILL);
        }
    }
    let mut dead = rig.cables.remove(victim);
    let (st, _) = dead.wait();
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    wait_ports(&rig.node, 1);
    let now = dir_listing(&rig.node);
    assert_eq!(now.len(), 3, "ctl, status and the survivor's port: {now:?}");
    assert!(
        now.iter().all(|n| before.contains(n)),
        "{now:?} vs {before:?}"
    );
    rig.listing = now;
    rig.base_fds -= 2;
    rig.clean();
    rig.check();
    rig.check();
}

fn kill_c_cable_mid_flow(kind: &'static str) {
    kill_cable_mid_flow(kind, 0)
}

fn kill_rs_cable_mid_flow(kind: &'static str) {
    kill_cable_mid_flow(kind, 1)
}

/// `vde_plug_rs hub://N = CMD`: when CMD ends (by itself with a status,
/// or killed), the plug ends, removes its node, and its cables end; CMD's
/// failure is the plug's (status 3 is ours, death by SIGKILL 128 + 9),
/// logged. (The C plug exits 0 whatever its command did.)
#[test]
fn cmd_child_exit_ends_the_plug_cleanly() {
    require_c_reference();
    for how in ["exits 3", "killed"] {
        let t = Scratch::new("cmd");
        let node = t.path("n");
        let pidf = t.path("child.pid");
        let go = t.path("go");
        let script = format!("echo $$ > {pidf}; while [ ! -e {go} ]; do sleep 0.02; done; exit 3");
        let mut plug = LivePlug::start_node(
            rs_plug(),
            &["-v", &format!("hub://{node}"), "=", "sh", "-c", &script],
        );
        let mut cable = Plug::spawn(C_PLUG, &[&node]);
        wait_ports(&node, 1);
        let deadline = Instant::now() + PATIENCE;
        let child: i32 = loop {
            if let Some(p) = std::fs::read_to_string(&pidf)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break p;
            }
            assert!(Instant::now() < deadline, "the child never started");
            std::thread::sleep(Duration::from_millis(5));
        };
        match how {
            "exits 3" => std::fs::write(&go, b"").unwrap(),
            // SAFETY: the child of the plug under test, known by its pid.
            _ => unsafe {
                libc::kill(child, libc::SIGKILL);
            },
        }
        let (st, log) = plug.finish();
        let (code, said) = match how {
            "exits 3" => (3, "exited with status 3"),
            _ => (128 + libc::SIGKILL, "killed by signal 9"),
        };
        assert_eq!(st.code(), Some(code), "{how}: {st:?}\n{log}");
        assert!(
            log.lines()
                .any(|l| l.contains("error: ") && l.contains("cmd sh -c") && l.contains(said)),
            "{how}: {log}"
        );
        assert!(
            !Path::new(&node).exists(),
            "{how}: node directory left behind"
        );
        let (cst, _) = cable.wait();
        assert_eq!(cst.code(), Some(0), "{how}: the cable's exit");
    }
}

/// A command that fails by itself makes the plug fail with its status:
/// an ssh that cannot connect (255), a `cmd://` child (`false`: 1), the
/// host side of a node binary. A command still running when the other
/// side ends is ended by us, and how it goes then is no failure: the
/// vde_switch is killed under `= sh -c 'cat; exit 5'`, the plug exits 0.
#[test]
fn a_failed_command_is_the_plug_failure() {
    require_c_reference();
    let t = Scratch::new("cmdfail");
    let n = t.path("n");
    let ssh = [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=5",
        "-p",
        "1",
        "127.0.0.1",
        "vde_plug_rs",
    ];
    let hub = format!("hub://{n}");
    let cases: Vec<(String, Vec<&str>, i32)> = vec![
        (
            rs_plug().into(),
            [&[hub.as_str(), "="][..], &ssh[..]].concat(),
            255,
        ),
        (rs_plug().into(), vec!["cmd://false", "null://"], 1),
        (multi_node().into(), vec![&n, "=", "false"], 1),
    ];
    for (prog, args, code) in cases {
        let mut plug = Plug::spawn(&prog, &args);
        let (st, err) = plug.wait();
        assert_eq!(st.code(), Some(code), "{args:?}: {st:?}\n{err}");
        assert!(
            err.contains(&format!("exited with status {code}")),
            "{args:?}: {err}"
        );
        assert!(!Path::new(&n).exists(), "{args:?} left {n}");
    }

    let sw = t.path("sw");
    let mut switch = Switch::start(&sw);
    let mut plug = LivePlug::spawn(
        rs_plug(),
        &["-v", "-v", &sw, "=", "sh", "-c", "cat >/dev/null; exit 5"],
    );
    plug.wait_line("joined");
    switch.kill();
    let (st, log) = plug.finish();
    assert_eq!(st.code(), Some(0), "{st:?}\n{log}");
}

/// The reader of our stdout goes away: the next write finds no reader and
/// the plug exits 0 (no death by SIGPIPE), removing its node.
#[test]
fn stdout_closed_under_a_node_plug() {
    require_c_reference();
    let t = Scratch::new("epipe");
    let node = t.path("n");
    let mut plug = Plug::spawn_stdout_closed(rs_plug(), &[&format!("hub://{node}")]);
    wait_node(&node);
    let mut cable = Plug::spawn(C_PLUG, &[&node]);
    wait_ports(&node, 1);
    cable.send(&frame(5, 1, 60));
    let (st, err) = plug.wait();
    assert_eq!(st.signal(), None, "died by a signal: {st:?}\n{err}");
    assert_eq!(st.code(), Some(0), "{err}");
    assert!(!Path::new(&node).exists(), "node directory left behind");
    let (cst, _) = cable.wait();
    assert_eq!(cst.code(), Some(0));
}

#[test]
fn stdout_closed_under_a_switch_client() {
    require_c_reference();
    let t = Scratch::new("epipe-sw");
    let sw = t.path("sw");
    let _switch = Switch::start(&sw);
    let mut plug = Plug::spawn_stdout_closed(rs_plug(), &[&sw]);
    let mut other = Plug::spawn(rs_plug(), &[&sw]);
    // Broadcasts until ours has joined, been sent one, and left.
    let deadline = Instant::now() + PATIENCE;
    let mut seq = 0;
    let st = loop {
        if let Some(st) = plug.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "the plug never noticed");
        other.send(&frame(6, seq, 60));
        seq += 1;
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(st.signal(), None, "died by a signal: {st:?}");
    assert_eq!(st.code(), Some(0));
    let (_, err) = plug.wait();
    assert!(!err.contains("panicked"), "{err}");
}

/// The vde_switch we joined is killed: the plug exits with status 0.
#[test]
fn switch_killed_under_the_plug() {
    require_c_reference();
    let t = Scratch::new("swkill");
    let sw = t.path("sw");
    let mut switch = Switch::start(&sw);
    let mut a = Plug::spawn(rs_plug(), &[&sw]);
    let mut b = Plug::spawn(rs_plug(), &[&sw]);
    // Both have joined once a frame crosses.
    let mut seq = 0;
    while b.wait_frames(0).is_empty() {
        a.send(&frame(1, seq, 60));
        seq += 1;
        b.collect(Duration::from_millis(20));
        assert!(seq < 300, "no frame crossed the switch");
    }
    switch.kill();
    for (name, p) in [("a", &mut a), ("b", &mut b)] {
        let (st, err) = p.wait();
        assert_eq!(st.code(), Some(0), "plug {name}: {st:?}\n{err}");
    }
    // Our client sockets were unlinked right after the handshake.
    let left: Vec<String> = dir_listing(&sw)
        .into_iter()
        .filter(|n| {
            n.starts_with(&format!(".{:05}-", a.pid()))
                || n.starts_with(&format!(".{:05}-", b.pid()))
        })
        .collect();
    assert!(left.is_empty(), "client sockets left: {left:?}");
}

// ---------------------------------------------------------------------
// 5. Stale nodes
// ---------------------------------------------------------------------

/// One cable's traffic through a bonding node, both ways, exact.
fn one_cable_traffic(host: &mut Plug, cable: &mut Plug, seq0: u32) {
    let hs = host.received.len();
    let cs = cable.received.len();
    for s in 0..10 {
        host.send(&frame(1, seq0 + s, 70));
    }
    let got = cable.wait_frames(cs + 10);
    assert_eq!(
        &got[cs..],
        &(0..10).map(|s| frame(1, seq0 + s, 70)).collect::<Vec<_>>()[..]
    );
    for s in 0..10 {
        cable.send(&frame(2, seq0 + s, 80));
    }
    let got = host.wait_frames(hs + 10);
    assert_eq!(
        &got[hs..],
        &(0..10).map(|s| frame(2, seq0 + s, 80)).collect::<Vec<_>>()[..]
    );
}

#[test]
fn stale_node_of_a_killed_process_is_replaced() {
    require_c_reference();
    let t = Scratch::new("stale");
    let node = t.path("n");
    let url = format!("bonding://{node}");
    let mut first = LivePlug::start_node(rs_plug(), &["-v", &url]);
    let mut cable = Plug::spawn(C_PLUG, &[&node]);
    wait_ports(&node, 1);
    one_cable_traffic(&mut first, &mut cable, 0);
    first.signal(libc::SIGKILL);
    let (st, _) = first.finish();
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    let (cst, _) = cable.wait();
    assert_eq!(cst.code(), Some(0), "the cable ends with its node");
    let left = dir_listing(&node);
    assert_eq!(
        left.len(),
        3,
        "a killed node leaves ctl, status and its port: {left:?}"
    );
    // The C node refuses the leftover directory; ours takes it over.
    let (cst, cerr) = Plug::spawn(C_PLUG, &[&url]).wait();
    assert_eq!(cst.code(), Some(1), "C on a stale node: {cerr}");
    assert_eq!(dir_listing(&node), left);
    let mut second = LivePlug::spawn(rs_plug(), &["-v", &url]);
    second.wait_line("removing a stale node");
    second.wait_line(": ready");
    assert_eq!(dir_listing(&node), bare_node());
    let mut cable = Plug::spawn(C_PLUG, &[&node]);
    wait_ports(&node, 1);
    one_cable_traffic(&mut second, &mut cable, 100);
    second.close_stdin();
    let (st, log) = second.finish();
    assert_eq!(st.code(), Some(0), "{log}");
    assert!(!Path::new(&node).exists());
}

/// A node killed between binding `ctl.new` and renaming it to `ctl` leaves
/// a directory holding only `ctl.new`: stale too, and replaced. The same
/// directory while its maker is alive (it holds the directory's lock from
/// `mkdir` on) is a node starting up, and is refused untouched.
#[test]
fn node_killed_while_starting_is_stale() {
    use std::os::fd::AsRawFd;
    let t = Scratch::new("starting");
    let node = t.path("n");
    std::fs::create_dir(&node).unwrap();
    drop(UnixDatagram::bind(format!("{node}/ctl.new")).unwrap());
    let url = format!("bonding://{node}");

    // Its maker still holds the lock: starting, not stale.
    let maker = std::fs::File::open(&node).unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(maker.as_raw_fd(), libc::LOCK_EX) }, 0);
    let (st, err) = Plug::spawn(rs_plug(), &[&url]).wait();
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("vde_open {url}: File exists")),
        "{err}"
    );
    assert_eq!(dir_listing(&node), vec!["ctl.new".to_string()]);

    // The maker is gone (the kernel drops its lock): stale.
    drop(maker);
    let mut plug = LivePlug::spawn(rs_plug(), &["-v", &url]);
    plug.wait_line("removing a stale node");
    plug.wait_line(": ready");
    assert_eq!(dir_listing(&node), bare_node());
    let mut cable = Plug::spawn(rs_plug(), &[&node]);
    wait_ports(&node, 1);
    one_cable_traffic(&mut plug, &mut cable, 0);
    plug.close_stdin();
    let (st, log) = plug.finish();
    assert_eq!(st.code(), Some(0), "{log}");
    assert!(!Path::new(&node).exists());
}

#[test]
fn live_node_is_refused_and_keeps_working() {
    require_c_reference();
    let t = Scratch::new("live");
    let node = t.path("n");
    for module in ["bonding", "multi", "hub"] {
        let url = format!("bonding://{node}");
        let mut live = Plug::start_node(rs_plug(), &[&url]);
        let mut cable = Plug::spawn(C_PLUG, &[&node]);
        wait_ports(&node, 1);
        // After a first exchange the cable's own socket is gone too.
        one_cable_traffic(&mut live, &mut cable, 0);
        let before = dir_listing(&node);
        let other = format!("{module}://{node}");
        let (st, err) = Plug::spawn(rs_plug(), &[&other]).wait();
        assert_eq!(st.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("vde_open {other}: File exists")),
            "message: {err}"
        );
        assert_eq!(dir_listing(&node), before);
        one_cable_traffic(&mut live, &mut cable, 100);
        live.close_stdin();
        assert_eq!(live.wait().0.code(), Some(0));
        assert!(!Path::new(&node).exists());
    }
}

/// What is not a stale node is never touched: the open fails with
/// `File exists` and the directory (or file) stays as it was.
#[test]
fn non_node_directories_are_refused_untouched() {
    let t = Scratch::new("notnode");
    // A dead ctl socket and a regular file.
    let a = t.path("with-file");
    std::fs::create_dir(&a).unwrap();
    drop(UnixListener::bind(format!("{a}/ctl")).unwrap());
    std::fs::write(format!("{a}/notes"), b"keep me").unwrap();
    // A dead ctl socket and a subdirectory.
    let b = t.path("with-subdir");
    std::fs::create_dir(&b).unwrap();
    drop(UnixListener::bind(format!("{b}/ctl")).unwrap());
    std::fs::create_dir(format!("{b}/sub")).unwrap();
    // Only a regular file.
    let c = t.path("only-file");
    std::fs::create_dir(&c).unwrap();
    std::fs::write(format!("{c}/ctl"), b"not a socket").unwrap();
    // An empty directory.
    let d = t.path("empty");
    std::fs::create_dir(&d).unwrap();
    // A symbolic link to a stale-looking node.
    let target = t.path("stale-target");
    std::fs::create_dir(&target).unwrap();
    drop(UnixListener::bind(format!("{target}/ctl")).unwrap());
    let e = t.path("link");
    std::os::unix::fs::symlink(&target, &e).unwrap();
    // A regular file.
    let f = t.path("file");
    std::fs::write(&f, b"a file").unwrap();

    let snapshot = |p: &str| -> Vec<(String, Vec<u8>)> {
        let mut v = vec![(String::from("."), std::fs::read(p).unwrap_or_default())];
        for n in dir_listing(p) {
            let full = format!("{p}/{n}");
            v.push((n, std::fs::read(&full).unwrap_or_default()));
        }
        v
    };
    for p in [&a, &b, &c, &d, &e, &f] {
        let before = snapshot(p);
        let target_before = dir_listing(&target);
        let url = format!("bonding://{p}");
        let (st, err) = Plug::spawn(rs_plug(), &[&url]).wait();
        assert_eq!(st.code(), Some(1), "{p}: {err}");
        assert!(
            err.contains(&format!("vde_open {url}: File exists")),
            "{p}: {err}"
        );
        assert_eq!(snapshot(p), before, "{p} was changed");
        assert_eq!(dir_listing(&target), target_before);
    }
    assert!(std::fs::symlink_metadata(&e)
        .unwrap()
        .file_type()
        .is_symlink());
}

// ---------------------------------------------------------------------
// Slow peers
// ---------------------------------------------------------------------

/// The host stops reading its stdout while a cable sends: the node stops
/// reading the cable (backpressure) instead of dropping, and once the host
/// reads again every frame comes out, in order, with no further traffic
/// needed to push the last ones out.
fn slow_host_reader(size: usize) {
    let t = Scratch::new("slowhost");
    let node = t.path("n");
    let socks = t.dir.join("s");
    std::fs::create_dir(&socks).unwrap();
    let mut host = ManualHost::start_node(rs_plug(), &[&format!("bonding://{node}")]);
    let client = RawClient::join(&node, &socks).unwrap();
    let slots = vde_plug_rs::engine::LANE_SLOTS as u64;
    // Enough to fill the lane behind a full pipe and output buffer.
    let n = 2 * slots as u32 + (2 * 131_072 / size) as u32 + 40;
    let sender = client.data.try_clone().unwrap();
    let feeder = std::thread::spawn(move || {
        for s in 0..n {
            if sender.send(&frame(4, s, size)).is_err() {
                return s;
            }
        }
        n
    });
    // Wait until the node holds a full lane for the host.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let rows = host.counters();
        let get = |p: &dyn Fn(&CounterRow) -> bool, f: fn(&CounterRow) -> u64| {
            rows.iter().find(|r| p(r)).map_or(0, f)
        };
        let read_in = get(&|r| r.link.starts_with("port "), |r| r.frames_in);
        let passed_on = get(&|r| r.link == "stream stdin/stdout", |r| r.frames_out);
        if read_in - passed_on == slots {
            break;
        }
        assert!(Instant::now() < deadline, "the lane never filled");
        std::thread::sleep(Duration::from_millis(10));
    }
    let got = host.read_frames(n as usize);
    assert_eq!(feeder.join().unwrap(), n);
    for (s, f) in got.iter().enumerate() {
        assert_eq!(*f, frame(4, s as u32, size), "frame {s}");
    }
    let rows = host.counters();
    assert!(rows
        .iter()
        .all(|r| r.full == 0 && r.runt == 0 && r.oversize == 0));
    assert_eq!(host.finish(), Some(0));
}

#[test]
fn slow_host_reader_large_frames() {
    slow_host_reader(9236);
}

#[test]
fn slow_host_reader_small_frames() {
    slow_host_reader(1000);
}
