//! `-d`: a start that fails is reported where the plug was started (its
//! message, its status); once detached, the log — warnings, a failed
//! command's status, the SIGUSR1 table — goes to `--stderr FILE` or to
//! syslog, where an operator finds it.

mod common;

use common::*;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs a plug with `-d` to the end of its parent: status and stderr.
fn detach(args: &[&str]) -> (Option<i32>, String) {
    outcome(rs_plug(), &[&["-d"][..], args].concat())
}

/// The pid a daemon wrote.
fn daemon_pid(pidfile: &str) -> i32 {
    wait_for_path(pidfile);
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(pid) = std::fs::read_to_string(pidfile).unwrap().trim().parse() {
            return pid;
        }
        assert!(Instant::now() < deadline, "{pidfile} holds no pid");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A command for the host side that says a word on stderr, then waits
/// for `go` to exist and exits 3.
fn failing_later(go: &str) -> String {
    format!("echo said-by-the-command >&2; while [ ! -e {go} ]; do sleep 0.02; done; exit 3")
}

/// What fails while a detaching plug opens is printed by the command the
/// user typed, which exits 1 (the C plug detaches first and exits 0);
/// nothing is left behind, not even the pid file.
#[test]
fn a_detached_start_that_fails_is_reported() {
    let t = Scratch::new("dfail");
    let pidfile = t.path("pid");
    let missing = t.path("missing/n");
    let cases = [
        (t.path("no-switch"), "No such file or directory"),
        (format!("hub://{missing}"), "No such file or directory"),
        (format!("hub://{}[foo=1]", t.path("n")), "Invalid argument"),
    ];
    for (url, reason) in cases {
        let (code, err) = detach(&["-p", &pidfile, &url]);
        assert_eq!(code, Some(1), "{url}: {err}");
        assert!(
            err.lines()
                .any(|l| l == format!("vde_open {url}: {reason}")),
            "{url}: {err}"
        );
        assert_eq!(dir_listing(&t.dir.to_string_lossy()), Vec::<String>::new());
    }
    let (code, err) = detach(&["--stderr", &t.path("no/such/dir/log"), "null://"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("No such file or directory"), "{err}");
}

/// `--stderr FILE` under `-d`: the command's own messages, the counters
/// table on SIGUSR1 and the command's failure are appended to FILE; the
/// detached plug ends with its command, removing node and pid file.
#[test]
fn a_daemon_logs_to_its_stderr_file() {
    let t = Scratch::new("dfile");
    let (n, pidfile, log, go) = (t.path("n"), t.path("pid"), t.path("log"), t.path("go"));
    let script = failing_later(&go);
    let (code, err) = detach(&[
        "--stderr",
        &log,
        "-p",
        &pidfile,
        &format!("hub://{n}"),
        "=",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(err, "", "nothing on the terminal once started");
    let pid = daemon_pid(&pidfile);
    wait_node(&n);
    let text = |want: &str| {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let s = std::fs::read_to_string(&log).unwrap_or_default();
            if s.contains(want) {
                return s;
            }
            assert!(Instant::now() < deadline, "no {want:?} in {log}: {s}");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    text("said-by-the-command");
    // SAFETY: signalling the daemon we started.
    unsafe { libc::kill(pid, libc::SIGUSR1) };
    text("link counters");
    std::fs::write(&go, b"").unwrap();
    assert!(wait_gone(pid));
    let all = text("exited with status 3");
    assert!(
        all.lines()
            .any(|l| l.contains(": error: ") && l.ends_with("exited with status 3")),
        "{all}"
    );
    assert!(!Path::new(&n).exists());
    assert!(!Path::new(&pidfile).exists());
}

/// Without `--stderr`, a detached plug logs to syslog (facility daemon,
/// its name and pid): the counters table on SIGUSR1, the command's
/// failure as an error. The plug runs in a mount namespace whose
/// `/dev/log` is a socket of this test: a real syslog listener, the
/// machine's own untouched.
#[test]
fn a_daemon_logs_to_syslog() {
    let t = Scratch::new("dsyslog");
    let (n, pidfile, go) = (t.path("n"), t.path("pid"), t.path("go"));
    let listener = UnixDatagram::bind(t.path("devlog")).unwrap();
    listener.set_read_timeout(Some(PATIENCE)).unwrap();
    let script = failing_later(&go);
    let inner = format!(
        "mount -t tmpfs none /dev && mknod -m 666 /dev/null c 1 3 && ln -s {} /dev/log && \
         exec {} -d -p {pidfile} hub://{n} = sh -c '{script}'",
        t.path("devlog"),
        rs_plug()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &inner])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = daemon_pid(&pidfile);
    wait_node(&n);
    let mut seen: Vec<String> = Vec::new();
    let mut wait_message = |want: &str| -> String {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(m) = seen.iter().find(|m| m.contains(want)) {
                return m.clone();
            }
            let len = listener
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no {want:?} in syslog ({e}); got {seen:#?}"));
            seen.push(String::from_utf8_lossy(&buf[..len]).into_owned());
        }
    };
    // SAFETY: signalling the daemon we started.
    unsafe { libc::kill(pid, libc::SIGUSR1) };
    let header = wait_message("link counters");
    let tag = format!(" vde_plug_rs[{pid}]: ");
    assert!(header.starts_with("<30>"), "daemon.info: {header}");
    assert!(header.contains(&tag), "{header}");
    let row = wait_message("cmd sh -c");
    assert!(row.starts_with("<30>") && row.contains(&tag), "{row}");
    std::fs::write(&go, b"").unwrap();
    let failed = wait_message("exited with status 3");
    assert!(failed.starts_with("<27>"), "daemon.err: {failed}");
    assert!(failed.contains(&tag), "{failed}");
    assert!(wait_gone(pid));
    assert!(!Path::new(&n).exists());
    assert!(!Path::new(&pidfile).exists());
}

/// Relative paths given to a detaching plug (node, pid file, `--stderr`)
/// are taken from the directory it was started in, as a user means them
/// (the C plug takes them from `/`, where it has moved by then).
#[test]
fn relative_paths_are_the_callers() {
    let t = Scratch::new("drel");
    let out = Command::new(rs_plug())
        .args(["-d", "-p", "pid", "--stderr", "log", "hub://n", "null://"])
        .current_dir(&t.dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let pid = daemon_pid(&t.path("pid"));
    wait_node(&t.path("n"));
    assert!(Path::new(&t.path("log")).is_file());
    // SAFETY: signalling the daemon we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(wait_gone(pid));
    assert_eq!(dir_listing(&t.dir.to_string_lossy()), ["log"]);
}
