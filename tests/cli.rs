//! The command line, case by case against the C vde_plug: the same argv to
//! both, each in a fresh directory holding a mute switch (a listener on
//! `sw/ctl` that reads the plug's request and hangs up), and the outcomes
//! compared: the exit status, whether the plug ran (a request came) and
//! from which process (detached or not), the values the request carries
//! (description, port, the data socket's mode and group), the files made,
//! and getopt's error sentence. A row whose difference is deliberate says
//! so and names the line of docs/compat.md. The `cmd://` words are
//! compared the same way, by the files the commands make.

mod common;

use common::*;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use vde_plug_rs::wire::RequestV3;

/// What reached the mute switch.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    /// The description, without the ` user=... pid=...` the plug appends.
    descr: String,
    port: u32,
    /// The data socket's permission bits and group.
    mode: Option<u32>,
    gid: Option<u32>,
    /// Sent by another process than the one started (it detached).
    detached: bool,
    /// Names in the case's directory at that moment (pid files).
    files: Vec<String>,
}

/// How a command line ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    /// The started process's exit status (`None`: killed by a signal).
    exit: Option<i32>,
    request: Option<Request>,
    /// getopt's sentence, without the program's name.
    getopt_error: Option<String>,
    /// Names in the case's directory once everything has ended.
    files: Vec<String>,
}

/// Processes a case started carry this in their environment, so that a
/// detached one is found and waited for (or killed).
const MARK: &str = "VPT_CLI_CASE";

/// The live processes (not zombies) whose environment holds `MARK=tag`.
fn marked(tag: &str) -> Vec<i32> {
    let needle = format!("{MARK}={tag}\0");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z');
            !zombie && env.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
        .collect()
}

/// Kills every process a case left (a guard: drop runs on a failed
/// assertion too).
struct Reaper(String);

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in marked(&self.0) {
            // SAFETY: a process this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// The pid of the process at the other end of a unix socket.
fn peer_pid(s: &UnixStream) -> i32 {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt fills `cred`, whose size is `len`.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "SO_PEERCRED");
    cred.pid
}

/// The names in `dir` but the switch and the home directory.
fn case_files(dir: &Path) -> Vec<String> {
    dir_listing(&dir.to_string_lossy())
        .into_iter()
        .filter(|n| n != "sw" && n != "home")
        .collect()
}

/// Reads one request from `s` and notes what it says.
fn read_request(mut s: UnixStream, started: i32, dir: &Path) -> Request {
    let detached = peer_pid(&s) != started;
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = vec![0u8; 512];
    let mut n = 0;
    while n < vde_plug_rs::wire::REQUEST_HEADER_LEN {
        match s.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    // The request is one write: the rest of it is there already.
    s.set_nonblocking(true).unwrap();
    while let Ok(k) = s.read(&mut buf[n..]) {
        if k == 0 {
            break;
        }
        n += k;
    }
    let Ok(req) = RequestV3::new_checked(&buf[..n]) else {
        return Request {
            descr: format!("(hung up after {n} bytes)"),
            port: 0,
            mode: None,
            gid: None,
            detached,
            files: case_files(dir),
        };
    };
    let descr = String::from_utf8_lossy(req.description()).into_owned();
    let descr = descr.split(" user=").next().unwrap_or("").to_string();
    let meta = req
        .sock()
        .path()
        .ok()
        .and_then(|p| std::fs::metadata(p).ok());
    Request {
        descr,
        port: req.req_type() >> 8,
        mode: meta.as_ref().map(|m| m.mode() & 0o777),
        gid: meta.as_ref().map(|m| m.gid()),
        detached,
        files: case_files(dir),
    }
}

/// The first line of `stderr` when it is getopt's, without the name.
fn getopt_error(stderr: &str) -> Option<String> {
    let line = stderr.lines().next()?;
    let (_, sentence) = line.split_once(": ")?;
    sentence.contains("option").then(|| sentence.to_string())
}

/// Runs `prog ARGS` in a fresh directory (`{d}` in an argument stands for
/// it, `{sw}` for its mute switch) and watches it to its end.
fn outcome(prog: &str, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    static N: AtomicUsize = AtomicUsize::new(0);
    let t = Scratch::new("cli");
    let dir = t.dir.clone();
    let sw = dir.join("sw");
    std::fs::create_dir(&sw).unwrap();
    let listener = UnixListener::bind(sw.join("ctl")).unwrap();
    listener.set_nonblocking(true).unwrap();
    let tag = format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let _reaper = Reaper(tag.clone());
    let d = dir.to_string_lossy().into_owned();
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("{sw}", &format!("{d}/sw")).replace("{d}", &d))
        .collect();
    let mut child = Command::new(prog)
        .args(&args)
        .current_dir(&dir)
        .env(MARK, &tag)
        .env("HOME", dir.join("home"))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = child.id() as i32;
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut request = None;
    let mut exit = None;
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok((s, _)) = listener.accept() {
            s.set_nonblocking(false).unwrap();
            assert!(request.is_none(), "{prog} {args:?}: a second request");
            request = Some(read_request(s, started, &dir));
            continue;
        }
        if exit.is_none() {
            exit = child.try_wait().unwrap().map(|st| st.code());
        }
        if exit.is_some() && marked(&tag).is_empty() && listener.accept().is_err() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{prog} {args:?} still runs (exit {exit:?}, request {request:?})"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.wait(); // reaped already by try_wait
    let stderr = err_reader.join().unwrap();
    Outcome {
        exit: exit.unwrap(),
        request,
        getopt_error: getopt_error(&stderr),
        files: case_files(&dir),
    }
}

/// A row: the words after the program name, the environment, and whether
/// ours does as C does.
struct Row {
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    differs: Option<&'static str>,
}

const fn same(args: &'static [&'static str]) -> Row {
    Row {
        args,
        env: &[],
        differs: None,
    }
}

/// A deliberate difference, and where docs/compat.md says so.
const fn differs(args: &'static [&'static str], why: &'static str) -> Row {
    Row {
        args,
        env: &[],
        differs: Some(why),
    }
}

const ROWS: &[Row] = &[
    // Repeats: the last wins.
    same(&["-d", "-d", "{sw}"]),
    same(&["-m", "0600", "-m", "0660", "{sw}"]),
    same(&["-p", "{d}/A", "-p", "{d}/B", "{sw}"]),
    same(&["-D", "x", "-D", "y", "{sw}"]),
    same(&["-D", "x", "-D", "", "{sw}"]),
    same(&["--group", "daemon", "--group", "users", "{sw}"]),
    same(&["--descr", "d", "--descr", "e", "{sw}"]),
    same(&["--port", "3", "--port", "5", "{sw}"]),
    same(&["-g", "users", "-m", "0640", "{sw}"]),
    // Unique prefixes of long options.
    same(&["--daem", "{sw}"]),
    same(&["--desc=x", "{sw}"]),
    same(&["--pi", "{d}/P", "{sw}"]),
    same(&["--mod=0640", "{sw}"]),
    same(&["--mod", "0640", "--mod2", "0600", "{sw}"]),
    same(&["--gr", "users", "{sw}"]),
    same(&["--p", "3", "{sw}"]),
    same(&["--po", "3", "{sw}"]),
    same(&["--port2=3", "{sw}", "null://"]),
    differs(&["--=x", "{sw}"], "The options vde_plug lacks"),
    // A value is the next word, whatever it starts with.
    same(&["-D", "-vm1", "{sw}"]),
    same(&["-p", "-d", "{sw}"]),
    same(&["-D", "-l", "{sw}"]),
    same(&["-D", "-weird", "{sw}"]),
    same(&["-p", "-dummy", "{sw}"]),
    same(&["-D", "--", "{sw}"]),
    same(&["-D", "=", "{sw}"]),
    same(&["--descr", "-d", "{sw}"]),
    differs(
        &["-g", "-d", "{sw}"],
        "An unknown group (`grp=`, `-g`) is an error",
    ),
    // Clusters and attached values.
    same(&["-dm0640", "{sw}"]),
    same(&["-m0640", "-Dx", "{sw}"]),
    same(&["-dl", "{sw}"]),
    same(&["-Lm0640", "{sw}"]),
    same(&["-dp{d}/Q", "{sw}"]),
    // Options and operands in any order; `--`.
    same(&["{sw}", "-D", "x"]),
    same(&["{sw}", "-m", "0640", "-D", "y"]),
    same(&["--", "{sw}"]),
    same(&["-D", "x", "--", "{sw}"]),
    same(&["{sw}", "--", "-D"]),
    same(&["{sw}", "-"]),
    Row {
        args: &["{sw}", "-D", "x"],
        env: &[("POSIXLY_CORRECT", "1")],
        differs: None,
    },
    // getopt's errors.
    same(&["--x", "{sw}"]),
    same(&["--x=3", "{sw}"]),
    same(&["-x", "{sw}"]),
    same(&["{sw}", "-p"]),
    same(&["{sw}", "--pidfile"]),
    same(&["--daemon=1", "{sw}"]),
    same(&["--help=x"]),
    same(&["-h", "{sw}"]),
    same(&["--help"]),
    same(&["--he"]),
    same(&["-dx", "{sw}"]),
    same(&["---x"]),
    same(&["-d-", "{sw}"]),
    same(&["-c"]),
    same(&["-c", "bash", "{sw}"]),
    same(&["-c", "vde_plug", "{sw}"]),
    same(&["--port", "0", "{sw}"]),
    differs(&["--port", "3x", "{sw}"], "Numbers are strict"),
    differs(&["-m", "0999", "{sw}"], "Numbers are strict"),
    differs(&["-v", "{sw}"], "The options vde_plug lacks"),
    differs(&["--s", "{sw}"], "The options vde_plug lacks"),
    differs(&["--version"], "The options vde_plug lacks"),
    differs(&["--syslog", "{sw}"], "The options vde_plug lacks"),
    differs(&["--stderr", "{d}/e", "{sw}"], "The options vde_plug lacks"),
    differs(&["-c", "vde_plug_rs", "{sw}"], "`-c vde_plug_rs` is taken"),
    // The forms, and `=`.
    same(&["{sw}", "null://"]),
    same(&["{sw}", "null://", "null://"]),
    // The command runs before the (mute) switch is joined.
    differs(
        &["-D", "=", "{sw}", "=", "touch", "{d}/made"],
        "A cable's command starts first",
    ),
    same(&["null://", "=", "touch", "{d}/u"]),
    differs(
        &["-d", "-p", "{d}/pf", "{sw}", "=", "touch", "{d}/v"],
        "A cable's command starts first",
    ),
    differs(
        &["null://", "=", "touch", "{d}/t", "-p", "{d}/pf"],
        "Options after `=` belong to the command",
    ),
    differs(
        &["null://", "=", "sh", "-c", "touch \"{d}/x$0\"", "--"],
        "Options after `=` belong to the command",
    ),
    differs(&["{sw}", "="], "nothing after `=`"),
];

#[test]
fn command_lines_as_the_c_plug_reads_them() {
    require_c_reference();
    let compat =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/compat.md")).unwrap();
    let mut failures = Vec::new();
    for row in ROWS {
        let mut theirs = outcome(C_PLUG, row.args, row.env);
        let mut ours = outcome(rs_plug(), row.args, row.env);
        // A detached plug's exit is not compared: ours waits for both sides
        // to open (the mute switch never answers) and says how that went,
        // C exits 0 before it tries (docs/compat.md, "`-d`: the command
        // waits until both sides are open").
        for o in [&mut theirs, &mut ours] {
            if o.request.as_ref().is_some_and(|r| r.detached) {
                o.exit = None;
            }
        }
        match row.differs {
            None if ours != theirs => failures.push(format!(
                "{:?} {:?}\n  C:    {theirs:?}\n  ours: {ours:?}",
                row.env, row.args
            )),
            None => {}
            Some(why) => {
                if !compat.contains(why) {
                    failures.push(format!("docs/compat.md does not say {why:?}"));
                }
                if ours == theirs {
                    failures.push(format!(
                        "{:?} is listed as a difference: {ours:?}",
                        row.args
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What the issue saw ours do wrong, as values: each taken whole.
#[test]
fn option_values_that_start_with_a_dash() {
    let descr = |args: &[&str]| {
        let o = outcome(rs_plug(), args, &[]);
        let r = o.request.expect("the plug ran");
        assert!(!r.detached, "{args:?} detached");
        (o.exit, r.descr, r.files)
    };
    assert_eq!(descr(&["-D", "-vm1", "{sw}"]).1, "-vm1");
    assert_eq!(descr(&["-D", "-weird", "{sw}"]).1, "-weird");
    assert_eq!(descr(&["-p", "-dummy", "{sw}"]).2, ["-dummy"]);
    assert_eq!(descr(&["-p", "-d", "{sw}"]).2, ["-d"]);
    // `-g -d`: a group named `-d`, unknown: an error before the switch
    // sees a connection (docs/compat.md).
    let o = outcome(rs_plug(), &["-g", "-d", "{sw}"], &[]);
    assert_eq!((o.exit, o.request), (Some(1), None));
}

/// The node programs read their command line with the same getopt rules
/// and messages (the cases themselves: node_cli::tests::getopt_rules).
#[test]
fn node_programs_speak_getopt() {
    // Program, arguments, exit status, getopt's sentence.
    type Case = (
        &'static str,
        &'static [&'static str],
        Option<i32>,
        Option<&'static str>,
    );
    let cases: [Case; 6] = [
        (
            bonding_node(),
            &["-x"],
            Some(255),
            Some("invalid option -- 'x'"),
        ),
        (multi_node(), &["--he"], Some(0), None),
        (bonding_node(), &["-v", "-h", "-x"], Some(0), None),
        (
            bonding_node(),
            &["--dedup", "5", "{d}/n"],
            Some(255),
            Some("unrecognized option '--dedup'"),
        ),
        (
            multi_node(),
            &["--d", "5", "{d}/n"],
            Some(255),
            Some("option '--d' is ambiguous; possibilities: '--dirmode' '--dedup' '--daemon'"),
        ),
        (
            bonding_node(),
            &["{d}/n", "--weights"],
            Some(255),
            Some("option '--weights' requires an argument"),
        ),
    ];
    for (prog, args, exit, error) in cases {
        let o = outcome(prog, args, &[]);
        assert_eq!(o.exit, exit, "{prog} {args:?}");
        assert_eq!(o.getopt_error.as_deref(), error, "{prog} {args:?}");
        assert!(o.request.is_none(), "{prog} {args:?}");
        assert!(o.files.is_empty(), "{prog} {args:?} left {:?}", o.files);
    }
}

/// `cmd://` words: the files each command makes, C's module and ours (the
/// issue's table, then libexecs' other rules).
#[test]
fn cmd_words_as_the_c_module_cuts_them() {
    require_c_reference();
    let rows: [(&str, &[&str]); 16] = [
        ("touch {d}/a\\ b", &["a b"]),
        ("touch '{d}/s q'", &["s q"]),
        ("touch {d}/br[3]", &["br[3]"]),
        ("touch {d}/br[port=3]", &["br[port=3]"]),
        ("touch {d}/pc%41", &["pc%41"]),
        ("sh -c 'touch {d}/sq; exec true'", &["sq"]),
        ("cat[foo=1]", &[]),
        ("touch {d}/x$y", &["xy"]),
        ("touch $HOME {d}/v", &["v"]),
        ("touch \"{d}/q\\\"x\"", &["q\\\"x"]),
        ("touch {d}/m1; touch {d}/m2", &["m1"]),
        ("touch {d}/semi;x", &["semi"]),
        ("touch '' {d}/e", &["e"]),
        ("touch {d}/t\\", &["t"]),
        ("touch {d}/\"dq x\"y", &["dq xy"]),
        ("touch\t{d}/tab1\n{d}/tab2", &["tab1", "tab2"]),
    ];
    for (text, made) in rows {
        let url = format!("cmd://{text}");
        let theirs = outcome(C_PLUG, &["null://", &url], &[]);
        let ours = outcome(rs_plug(), &["null://", &url], &[]);
        assert_eq!(theirs.files, made, "C: {url}");
        assert_eq!(ours.files, made, "ours: {url}");
    }
    // A command that cannot be run is an error at once (docs/compat.md).
    let ours = outcome(rs_plug(), &["null://", "cmd://cat[foo=1]"], &[]);
    assert_eq!(ours.exit, Some(1));
}

/// The option-like words of `text`: `-x` and `--name` (a value after `=`
/// dropped).
fn option_words(text: &str) -> std::collections::BTreeSet<String> {
    text.split(|c: char| c.is_whitespace() || ",()[]\"".contains(c))
        .filter_map(|w| {
            let w = w.split('=').next()?;
            let short = w.len() == 2 && w.starts_with('-') && w.as_bytes()[1].is_ascii_alphabetic();
            let long = w.len() > 2
                && w.starts_with("--")
                && w[2..]
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            (short || long).then(|| w.to_string())
        })
        .collect()
}

/// A man page's text without its font escapes and with plain dashes.
fn plain(s: &str) -> String {
    let mut s = s.replace("\\-", "-");
    for font in ["\\fB", "\\fI", "\\fR", "\\fP"] {
        s = s.replace(font, " ");
    }
    s
}

/// The man page `man/NAME` and the options its OPTIONS section's entries
/// name (their tags).
fn man_options(name: &str) -> (String, std::collections::BTreeSet<String>) {
    let path = format!("{}/man/{name}", env!("CARGO_MANIFEST_DIR"));
    let man = std::fs::read_to_string(path).unwrap();
    // (A `\f` typed where `\\f` was meant once made PATH/status read
    // `statusR`.)
    assert!(
        man.chars().all(|c| c == '\n' || !c.is_control()),
        "{name}: a control character"
    );
    let section: Vec<&str> = man
        .lines()
        .skip_while(|l| *l != ".SH OPTIONS")
        .skip(1)
        .take_while(|l| !l.starts_with(".SH "))
        .collect();
    let tags: String = section
        .windows(2)
        .filter(|w| w[0] == ".TP")
        .map(|w| plain(w[1]))
        .collect::<Vec<_>>()
        .join("\n");
    let options = option_words(&tags);
    (man, options)
}

/// The options a `--help` text names: from the line that starts with
/// `starts` to the first line not indented.
fn help_options(help: &str, starts: &str) -> std::collections::BTreeSet<String> {
    let part: String = help
        .lines()
        .skip_while(|l| !l.starts_with(starts))
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .collect::<Vec<_>>()
        .join("\n");
    option_words(&part)
}

/// `--help` and vde_plug_rs(1) name the same options, those of the
/// parser's table, and every module.
#[test]
fn help_and_man_page_agree() {
    let out = Command::new(rs_plug()).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(255), "as vde_plug -h");
    let help = String::from_utf8(out.stderr).unwrap();
    let in_help = help_options(&help, "Options:");
    let (man, in_man) = man_options("vde_plug_rs.1");
    let in_table: std::collections::BTreeSet<String> = vde_plug_rs::cli::PLUG_OPTIONS
        .iter()
        .flat_map(|o| {
            let long = o.long.map(|l| format!("--{l}"));
            let short = o.short.map(|c| format!("-{}", c as char));
            long.into_iter().chain(short)
        })
        .collect();
    assert_eq!(in_help, in_table, "--help against the parser's table");
    assert_eq!(
        in_man, in_table,
        "vde_plug_rs(1) OPTIONS against the parser's table"
    );
    for module in vde_plug_rs::open::MODULES {
        let url = format!("{module}://");
        assert!(help.contains(&url), "--help names no {url}");
        assert!(plain(&man).contains(&url), "vde_plug_rs(1) names no {url}");
    }
}

/// The node programs' `--help` and their man pages name the same options,
/// both ways; bonding_node's does not say frames go out in turn (its
/// default policy is `path`).
#[test]
fn node_programs_help_and_man_pages_agree() {
    for (prog, page) in [
        (bonding_node(), "bonding_node.1"),
        (multi_node(), "multi_node.1"),
    ] {
        let out = Command::new(prog).arg("--help").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{prog}");
        let help = String::from_utf8(out.stdout).unwrap();
        let in_help = help_options(&help, "Options");
        let (_, in_man) = man_options(page);
        assert!(
            in_help.contains("-g") && in_help.contains("--status"),
            "{help}"
        );
        assert_eq!(in_help, in_man, "{prog} --help against {page} OPTIONS");
    }
    let out = Command::new(bonding_node()).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(!help.contains("in turn"), "{help}");
    assert!(help.contains("--policy path"), "{help}");
}
