//! scripts/install into a temporary prefix: binaries, man pages, the
//! modules, documents and systemd units land in place (the units pass
//! `systemd-analyze verify`), the printed VDEPLUGIN_PATH makes Debian's
//! vde_plug load the installed module, and --uninstall removes exactly
//! what was installed. The cable unit's back-off, step by step.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// Every path under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            if p.is_dir() {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn install_then_uninstall_into_a_prefix() {
    require_c_reference();
    run_ok(Command::new(script("build-plugins")).arg("-q"));
    let t = Scratch::new("install");
    let prefix = t.dir.join("usr");
    // Something of someone else's already there: never touched.
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::write(prefix.join("bin/theirs"), b"x").unwrap();
    let before = tree(&t.dir);

    let stdout = run_ok(
        Command::new(script("install"))
            .args(["--no-build", "--prefix"])
            .arg(&prefix),
    );
    let moddir = prefix.join("lib/vde_plug_rs/vdeplug");
    let line = format!(
        "VDEPLUGIN_PATH={}:/usr/lib/x86_64-linux-gnu/vdeplug",
        moddir.display()
    );
    assert!(stdout.lines().any(|l| l == line), "{stdout}");
    for f in ["bin/vde_plug_rs", "bin/bonding_node", "bin/multi_node"] {
        assert!(prefix.join(f).is_file(), "{f}");
    }
    // The node programs are links to the one binary, and run as themselves.
    for name in ["bonding_node", "multi_node"] {
        let link = prefix.join("bin").join(name);
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("vde_plug_rs"));
        let help = Command::new(&link).arg("-h").output().unwrap();
        assert!(help.status.success());
        assert!(String::from_utf8_lossy(&help.stdout).starts_with(&format!("Usage: {name} ")));
    }
    for f in ["man1/vde_plug_rs.1", "man7/libvdeplug_rs.7"] {
        assert!(prefix.join("share/man").join(f).is_file(), "{f}");
    }
    for m in ["bonding", "multi", "hub", "switch"] {
        assert!(moddir.join(format!("libvdeplug_{m}.so")).is_file(), "{m}");
    }

    // The documents the man pages name, the units' example settings.
    let docdir = prefix.join("share/doc/vde_plug_rs");
    for f in [
        "operations.md",
        "multipath.md",
        "examples/node-vm1.conf",
        "examples/cable-vm1-path1.conf",
    ] {
        assert!(docdir.join(f).is_file(), "{f}");
    }
    verify_units(&prefix);

    // The installed module is the one Debian's vde_plug loads.
    let node = t.path("node");
    let mut host = Plug::start_node(
        "env",
        &[line.as_str(), C_PLUG, &format!("bonding://{node}")],
    );
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", host.pid())).unwrap();
    assert!(maps.contains(moddir.join("libvdeplug_bonding.so").to_str().unwrap()));
    host.close_stdin();
    assert_eq!(host.wait().0.code(), Some(0));

    run_ok(
        Command::new(script("install"))
            .args(["--uninstall", "--prefix"])
            .arg(&prefix),
    );
    assert_eq!(tree(&t.dir), before, "uninstall left or took something");
}

/// The units name this install's paths, and `systemd-analyze verify`
/// (when there is one) finds nothing wrong with an instance of each: the
/// programs they run exist, every key is known to this systemd, the man
/// pages they name are there.
fn verify_units(prefix: &Path) {
    let units = prefix.join("lib/systemd/system");
    let node = std::fs::read_to_string(units.join("vde_plug_rs-node@.service")).unwrap();
    let cable = std::fs::read_to_string(units.join("vde_plug_rs-cable@.service")).unwrap();
    let bin = prefix.join("bin/vde_plug_rs");
    let backoff = prefix.join("lib/vde_plug_rs/backoff");
    assert!(
        node.contains(&format!("ExecStart={} ", bin.display())),
        "{node}"
    );
    assert!(cable.contains(&format!("ExecStartPre={} wait %i", backoff.display())));
    assert!(cable.contains("ServerAliveInterval=5") && cable.contains("Restart=always"));
    assert!(
        !(node.clone() + &cable).contains("dir@"),
        "a path left unset"
    );
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze is not installed: the units are not verified");
        return;
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(units.join("vde_plug_rs-node@vm1.service"))
        .arg(units.join("vde_plug_rs-cable@vm1-path1.service"))
        .env("MANPATH", prefix.join("share/man"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The cable unit's back-off (`backoff wait|done NAME` around each run):
/// failures within a minute of the start double the wait up to 60 s; a
/// clean end, or a run of a minute or more, sets it back to none.
#[test]
fn cable_backoff_doubles_and_resets() {
    let t = Scratch::new("backoff");
    let state = t.dir.join("c.backoff");
    let step = |what: &str, result: &str| -> String {
        run_ok(
            Command::new(script("../systemd/backoff"))
                .args([what, "c"])
                .env("RUNTIME_DIRECTORY", &t.dir)
                .env("SERVICE_RESULT", result),
        );
        std::fs::read_to_string(&state).unwrap()
    };
    let delay = |line: String| -> u32 { line.split_whitespace().next().unwrap().parse().unwrap() };
    // A first start waits for nothing.
    assert_eq!(delay(step("wait", "")), 0);
    let mut seen = Vec::new();
    for _ in 0..8 {
        seen.push(delay(step("done", "exit-code")));
    }
    assert_eq!(seen, [1, 2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(delay(step("done", "success")), 0, "a stop asked for");
    // A run that started a minute or more ago (uptime 0) had been up.
    std::fs::write(&state, "32 0\n").unwrap();
    assert_eq!(delay(step("done", "exit-code")), 0);
}

/// scripts/package's amd64 package, installed by dpkg into a root of its
/// own (its own database: the machine's dpkg is not touched): every file
/// in its place, the node programs run, lintian finds no error (scripts/
/// package runs it), and `dpkg -P` leaves the root as it found it.
#[test]
fn the_package_installs_and_purges_to_nothing() {
    run_ok(Command::new(script("build-plugins")).arg("-q"));
    let t = Scratch::new("package");
    let out = t.dir.join("out");
    run_ok(
        Command::new(script("package"))
            .args(["--no-build", "--out"])
            .arg(&out)
            .arg("amd64"),
    );
    let version = env!("CARGO_PKG_VERSION");
    let deb = out.join(format!("vde-plug-rs_{version}_amd64.deb"));
    let root = t.dir.join("root");
    let admin = root.join("var/lib/dpkg");
    for d in ["info", "updates", "triggers"] {
        std::fs::create_dir_all(admin.join(d)).unwrap();
    }
    std::fs::write(admin.join("status"), b"").unwrap();
    let outside_db = |root: &Path| -> Vec<String> {
        tree(root)
            .into_iter()
            .filter(|p| !p.starts_with("var/lib/dpkg/"))
            .collect()
    };
    let before = outside_db(&root);
    let dpkg = |args: &[&str]| {
        run_ok(
            Command::new("dpkg")
                .arg(format!("--root={}", root.display()))
                .args(["--force-depends", "--force-not-root"])
                .args(args),
        )
    };

    dpkg(&["-i", deb.to_str().unwrap()]);
    let usr = root.join("usr");
    let moddir = usr.join("lib/x86_64-linux-gnu/vde_plug_rs/vdeplug");
    for f in [
        "bin/vde_plug_rs",
        "share/man/man1/vde_plug_rs.1.gz",
        "share/man/man1/bonding_node.1.gz",
        "share/man/man1/multi_node.1.gz",
        "share/man/man7/libvdeplug_rs.7.gz",
        "share/doc/vde-plug-rs/copyright",
        "share/doc/vde-plug-rs/changelog.gz",
        "share/doc/vde-plug-rs/README.md",
    ] {
        assert!(usr.join(f).is_file(), "{f}");
    }
    for m in ["bonding", "multi", "hub", "switch"] {
        assert!(moddir.join(format!("libvdeplug_{m}.so")).is_file(), "{m}");
    }
    // Beside Debian's module directory, never in it.
    assert!(!usr.join("lib/x86_64-linux-gnu/vdeplug").exists());
    for name in ["bonding_node", "multi_node"] {
        let link = usr.join("bin").join(name);
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("vde_plug_rs"));
        let help = run_ok(Command::new(&link).arg("-h"));
        assert!(help.starts_with(&format!("Usage: {name} ")), "{help}");
    }

    dpkg(&["-P", "vde-plug-rs"]);
    assert_eq!(outside_db(&root), before, "dpkg -P left something");
}
