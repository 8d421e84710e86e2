//! Permissions (issue 4): the modes and group of a node's directory and
//! `ctl` socket match the C reference for the same parameters, and they
//! do what they say for another user: a real unprivileged user made by the
//! test cannot join a 0600 node, can join a 0666 one, and can join one
//! shared with a group it belongs to. Cases that make users and groups
//! need root and are skipped, with a note, without it.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn skip_unless_root(what: &str) -> bool {
    if !is_root() {
        println!("skipped {what}: needs root to create a user and a group");
        return true;
    }
    false
}

/// Mode bits (with set-gid) and group of a path.
fn mode_gid(p: &str) -> (u32, u32) {
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    (m.mode() & 0o7777, m.gid())
}

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn id_of(flag: &str, name: &str) -> u32 {
    let out = Command::new("id").args([flag, name]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// A group made for the test, removed on drop.
struct TestGroup {
    name: String,
    gid: u32,
}

impl TestGroup {
    fn new() -> TestGroup {
        let name = unique("vdetestg_");
        run("groupadd", &[&name]);
        let line = Command::new("getent")
            .args(["group", &name])
            .output()
            .unwrap();
        let gid = String::from_utf8_lossy(&line.stdout)
            .split(':')
            .nth(2)
            .and_then(|g| g.trim().parse().ok())
            .expect("gid of the new group");
        TestGroup { name, gid }
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

/// An unprivileged user made for the test (no home, no login, no group
/// of its own), removed on drop.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl TestUser {
    fn new() -> TestUser {
        let name = unique("vdetest_");
        run("useradd", &["-M", "-N", "-s", "/usr/sbin/nologin", &name]);
        let uid = id_of("-u", &name);
        let gid = id_of("-g", &name);
        TestUser { name, uid, gid }
    }

    fn join(&self, group: &TestGroup) {
        run("usermod", &["-a", "-G", &group.name, &self.name]);
    }

    /// Runs `prog args` as this user: with only its primary group, or
    /// with its supplementary groups too.
    fn spawn(&self, prog: &str, args: &[&str], with_groups: bool) -> Plug {
        let uid = format!("--reuid={}", self.uid);
        let gid = format!("--regid={}", self.gid);
        let groups = if with_groups {
            "--init-groups"
        } else {
            "--clear-groups"
        };
        let mut all = vec![uid.as_str(), gid.as_str(), groups, prog];
        all.extend_from_slice(args);
        Plug::spawn("setpriv", &all)
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// A scratch directory every user can traverse, holding a copy of our
/// binary every user can run.
fn open_scratch(name: &str) -> (Scratch, String) {
    let t = Scratch::new(name);
    std::fs::set_permissions(&t.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = t.path("vde_plug_rs");
    std::fs::copy(rs_plug(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    (t, bin)
}

/// Frames both ways between a node's host and one cable, exact.
fn traffic(host: &mut Plug, cable: &mut Plug, seq0: u32) {
    let (hs, cs) = (host.received.len(), cable.received.len());
    for s in 0..8 {
        host.send(&frame(1, seq0 + s, 100));
    }
    let got = cable.wait_frames(cs + 8);
    let want: Vec<Vec<u8>> = (0..8).map(|s| frame(1, seq0 + s, 100)).collect();
    assert_eq!(&got[cs..], &want[..], "host to cable");
    for s in 0..8 {
        cable.send(&frame(2, seq0 + s, 120));
    }
    let got = host.wait_frames(hs + 8);
    let want: Vec<Vec<u8>> = (0..8).map(|s| frame(2, seq0 + s, 120)).collect();
    assert_eq!(&got[hs..], &want[..], "cable to host");
}

/// Same parameters, same modes and group as `/usr/bin/vde_plug`.
#[test]
fn node_modes_match_the_c_reference() {
    require_c_reference();
    let t = Scratch::new("modes");
    let group = is_root().then(TestGroup::new);
    // A group this process may give its files: a new one as root, else
    // our own (by number).
    let gid = group
        .as_ref()
        // SAFETY: getegid cannot fail.
        .map_or_else(|| unsafe { libc::getegid() }, |g| g.gid);
    let grp_name = group
        .as_ref()
        .map_or_else(|| gid.to_string(), |g| g.name.clone());
    let mut cases: Vec<(String, Option<(u32, u32)>)> = vec![
        (String::new(), Some((0o2700, 0o600))),
        ("[mode=0666]".into(), Some((0o2777, 0o666))),
        ("[mode=0660]".into(), Some((0o2770, 0o660))),
        ("[mode=0640]".into(), Some((0o2750, 0o640))),
        ("[mode=0777]".into(), Some((0o2777, 0o666))),
        ("[dirmode=0750]".into(), Some((0o750, 0o600))),
        ("[mode=0604/dirmode=02711]".into(), Some((0o2711, 0o604))),
        (format!("[grp={grp_name}]"), Some((0o2700, 0o600))),
        (format!("[mode=0660/grp={grp_name}]"), Some((0o2770, 0o660))),
        (format!("[grp={gid}/mode=0666]"), None),
    ];
    if !is_root() {
        println!("not root: group cases use our own group {gid}");
        cases.retain(|(p, _)| !p.contains("grp=") || grp_name == gid.to_string());
    }
    for (i, (params, want)) in cases.iter().enumerate() {
        let c_node = t.path(&format!("c{i}"));
        let rs_node = t.path(&format!("r{i}"));
        let mut c = Plug::start_node(C_PLUG, &[&format!("bonding://{c_node}{params}")]);
        let mut ours = Plug::start_node(rs_plug(), &[&format!("bonding://{rs_node}{params}")]);
        // The C node binds `ctl` and sets its mode afterwards: once it has
        // answered a client, its loop runs, so its set-up is over.
        let socks = t.dir.join("socks");
        let _ = std::fs::create_dir(&socks);
        for node in [&c_node, &rs_node] {
            drop(RawClient::join(node, &socks).expect("join"));
        }
        let c_modes = (mode_gid(&c_node), mode_gid(&format!("{c_node}/ctl")));
        let rs_modes = (mode_gid(&rs_node), mode_gid(&format!("{rs_node}/ctl")));
        assert_eq!(rs_modes, c_modes, "{params}: ours vs C (dir, ctl)");
        if let Some((dirmode, mode)) = want {
            assert_eq!(
                (rs_modes.0 .0, rs_modes.1 .0),
                (*dirmode, *mode),
                "{params}: modes"
            );
        }
        if params.contains("grp=") {
            assert_eq!(
                (rs_modes.0 .1, rs_modes.1 .1),
                (gid, gid),
                "{params}: group"
            );
        }
        println!(
            "{params:<28} dir {:o} ctl {:o} gid {} (C: the same)",
            rs_modes.0 .0, rs_modes.1 .0, rs_modes.0 .1
        );
        c.close_stdin();
        ours.close_stdin();
        assert_eq!(ours.wait().0.code(), Some(0));
        let _ = c.wait();
        assert!(!Path::new(&rs_node).exists());
    }
}

/// Another user cannot join a 0600 node (the default): the client says
/// why and exits 1, and the node is not disturbed.
#[test]
fn other_user_cannot_join_a_private_node() {
    if skip_unless_root("other_user_cannot_join_a_private_node") {
        return;
    }
    require_c_reference();
    let (t, bin) = open_scratch("private");
    let user = TestUser::new();
    let node = t.path("n");
    let mut host = Plug::start_node(rs_plug(), &[&format!("bonding://{node}")]);
    let before = dir_listing(&node);
    for prog in [bin.as_str(), C_PLUG] {
        let (st, err) = user.spawn(prog, &[&node], false).wait();
        assert_eq!(st.code(), Some(1), "{prog} as {}: {err}", user.name);
        assert!(err.contains("Permission denied"), "{prog}: message {err:?}");
        assert_eq!(dir_listing(&node), before, "{prog} left something");
        println!("{prog} as {}: {}", user.name, err.trim());
    }
    // Nor can that user read the node's status.
    let (st, err) = user.spawn(&bin, &["--status", &node], false).wait();
    assert_eq!(st.code(), Some(1), "--status as {}: {err}", user.name);
    assert!(err.contains("Permission denied"), "--status: {err:?}");
    // Our client cleans up after itself: no fallback socket left.
    let mut cable = Plug::spawn(rs_plug(), &[&node]);
    wait_ports(&node, 1);
    traffic(&mut host, &mut cable, 0);
}

/// A 0666 node is open to everyone: another user's cables (ours and the
/// C one) join and carry frames both ways.
#[test]
fn other_user_joins_an_open_node() {
    if skip_unless_root("other_user_joins_an_open_node") {
        return;
    }
    require_c_reference();
    let (t, bin) = open_scratch("open");
    let user = TestUser::new();
    let node = t.path("n");
    let mut host = Plug::start_node(rs_plug(), &[&format!("bonding://{node}[mode=0666]")]);
    for (i, prog) in [bin.as_str(), C_PLUG].into_iter().enumerate() {
        let mut cable = user.spawn(prog, &[&node], false);
        wait_ports(&node, 1);
        traffic(&mut host, &mut cable, 100 * i as u32);
        cable.close_stdin();
        let (st, err) = cable.wait();
        assert_eq!(st.code(), Some(0), "{prog}: {err}");
        wait_ports(&node, 0);
        assert_eq!(dir_listing(&node), bare_node(), "{prog}");
    }
}

/// A node shared with a group (`[mode=0660/grp=G]`): a member of G joins;
/// the same user without its supplementary groups cannot.
#[test]
fn group_member_joins_a_group_node() {
    if skip_unless_root("group_member_joins_a_group_node") {
        return;
    }
    require_c_reference();
    let (t, bin) = open_scratch("group");
    let group = TestGroup::new();
    let user = TestUser::new();
    user.join(&group);
    let node = t.path("n");
    let mut host = Plug::start_node(
        rs_plug(),
        &[&format!("bonding://{node}[mode=0660/grp={}]", group.name)],
    );
    assert_eq!(mode_gid(&node), (0o2770, group.gid));
    assert_eq!(mode_gid(&format!("{node}/ctl")), (0o660, group.gid));
    for prog in [bin.as_str(), C_PLUG] {
        let (st, err) = user.spawn(prog, &[&node], false).wait();
        assert_eq!(st.code(), Some(1), "{prog} without the group: {err}");
        assert!(err.contains("Permission denied"), "{prog}: {err:?}");
    }
    for (i, prog) in [bin.as_str(), C_PLUG].into_iter().enumerate() {
        let mut cable = user.spawn(prog, &[&node], true);
        wait_ports(&node, 1);
        traffic(&mut host, &mut cable, 100 * i as u32);
        cable.close_stdin();
        let (st, err) = cable.wait();
        assert_eq!(st.code(), Some(0), "{prog}: {err}");
        wait_ports(&node, 0);
    }
}

/// A raw vde client in perl (perl-base is part of every Debian system): it
/// asks `ctl` for a port whose frames go to the datagram socket `target`,
/// binding that socket first when `bind` is set, and prints how many reply
/// bytes came before the node closed the connection or replied in full.
const RAW_CLIENT_PL: &str = r#"
use Socket;
my ($ctl, $target, $bind) = @ARGV;
my $own;
if ($bind) {
    socket($own, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
    bind($own, pack_sockaddr_un($target)) or die "bind: $!";
}
socket(my $s, AF_UNIX, SOCK_STREAM, 0) or die "socket: $!";
connect($s, pack_sockaddr_un($ctl)) or die "connect: $!";
my $req = pack("L L L S a108", 0xfeedface, 3, 0, AF_UNIX, $target) . "perl client";
syswrite($s, $req) == length($req) or die "write: $!";
my $got = "";
while (length($got) < 110) {
    my $n = sysread($s, my $buf, 512);
    last unless $n;
    $got .= $buf;
}
print "reply ", length($got), "\n";
"#;

/// Peer credentials: a user who may join a `mode=0666` node cannot make it
/// send frames to another user's socket. The node checks the client's uid
/// (SO_PEERCRED) against the owner of the socket the request names: no
/// port, nothing left, one log line, and that socket receives nothing;
/// the same client naming its own socket gets its port.
#[test]
fn a_client_cannot_point_a_node_at_another_users_socket() {
    if skip_unless_root("a_client_cannot_point_a_node_at_another_users_socket") {
        return;
    }
    require_c_reference();
    let (t, _bin) = open_scratch("peercred");
    let user = TestUser::new();
    let node = t.path("n");
    let mut host =
        LivePlug::start_node(rs_plug(), &["-v", &format!("bonding://{node}[mode=0666]")]);
    let mut cable = Plug::spawn(C_PLUG, &[&node]);
    wait_ports(&node, 1);
    let listing = dir_listing(&node);

    // root's socket, which the user can reach but does not own.
    let victim_path = t.dir.join("victim");
    let victim = std::os::unix::net::UnixDatagram::bind(&victim_path).unwrap();
    std::fs::set_permissions(&victim_path, std::fs::Permissions::from_mode(0o777)).unwrap();
    victim.set_nonblocking(true).unwrap();
    let users_dir = t.dir.join("u");
    std::fs::create_dir(&users_dir).unwrap();
    std::fs::set_permissions(&users_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let own_path = users_dir.join("own");

    let ask = |target: &std::path::Path, bind: bool| -> String {
        let out = run_ok(
            Command::new("setpriv")
                .arg(format!("--reuid={}", user.uid))
                .arg(format!("--regid={}", user.gid))
                .args(["--clear-groups", "perl", "-e", RAW_CLIENT_PL])
                .arg(format!("{node}/ctl"))
                .arg(target)
                .arg(if bind { "1" } else { "" }),
        );
        out.trim().to_string()
    };
    assert_eq!(ask(&victim_path, false), "reply 0", "refused");
    host.wait_line(&format!(
        "refused a client of uid {} naming a socket of uid 0",
        user.uid
    ));
    assert_eq!(dir_listing(&node), listing, "no port made");
    // The node goes on, and the victim got none of its frames.
    traffic(&mut host, &mut cable, 0);
    let mut buf = [0u8; 64];
    assert_eq!(
        victim.recv(&mut buf).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "the other user's socket received a frame"
    );
    // The same client with its own socket is a client like any other.
    assert_eq!(ask(&own_path, true), "reply 110", "its own socket");
    host.close_stdin();
    assert_eq!(host.finish().0.code(), Some(0));
}
