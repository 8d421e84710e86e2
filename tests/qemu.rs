//! Our libvdeplug modules where users meet them: inside a real qemu.
//!
//! Each guest is Debian's qemu-system-x86_64 (7.2, linked with
//! libvdeplug.so.2) started with `-nic vde,sock=bonding:///SCRATCH/vmN`:
//! qemu loads the module named by the URL's scheme and hosts the node. Two
//! guests are joined by cables (`vde_plug_rs vm1 = vde_plug_rs vm2` and the
//! C `vde_plug vm1 = vde_plug vm2`), and the guests' own kernels ping across.
//!
//! Whose modules: `VDEPLUGIN_PATH` in qemu's environment lists
//! `$VPT_PLUGIN_DIR` (default `target/plugins` of this repository) before
//! Debian's directory when it holds the scheme's module, and the test checks
//! in /proc/PID/maps that qemu mapped that very file. Without it, Debian's
//! C modules serve, and the test says so: the testbed stays useful before
//! our modules land.
//!
//! The testbed (qemu unpacked from Debian's packages, a 6.1 kernel, a
//! busybox initramfs whose /init prints `VPT-...` lines on the serial
//! console) is built by scripts/qemu-setup, which scripts/test runs; this
//! test runs it too (a tenth of a second when the testbed is up to date).
//! The guests run under TCG (no usable /dev/kvm when nested): a boot takes
//! 5 to 85 s on the shared 2-core machine. Every wait is for a condition,
//! bounded by [`VM_PATIENCE`] (a hang bound, not a timing assertion);
//! guests are killed and reaped on drop, also on panic.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::*;

/// Debian's vdeplug4 modules (listed after ours, for the cables' vde://).
const DEBIAN_MODULES: &str = "/usr/lib/x86_64-linux-gnu/vdeplug";
/// How long anything a guest does may take before the test calls it a hang:
/// a TCG boot took 5 to 85 s on the shared 2-core machine (load 4 to 12).
const VM_PATIENCE: Duration = Duration::from_secs(300);
const IP2: &str = "198.18.0.2";

/// One scenario at a time: two TCG guests already fill the two cores.
static SERIAL: Mutex<()> = Mutex::new(());

/// Writes past the harness's capture, so the figures show in the run log.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// The files scripts/qemu-setup builds.
struct Testbed {
    qemu: PathBuf,
    vmlinux: PathBuf,
    initrd: PathBuf,
}

impl Testbed {
    /// Takes the scenario lock, building the testbed first if it is missing
    /// or stale. `VPT_QEMU_DIR` (default target/qemu) is where it lives.
    fn get() -> (Testbed, MutexGuard<'static, ()>) {
        let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::var_os("VPT_QEMU_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo.join("target/qemu"));
        // Checks the testbed (a tenth of a second) and builds what is missing
        // or stale (its /init changed).
        let setup = Command::new(repo.join("scripts/qemu-setup"))
            .stdin(Stdio::null())
            .output()
            .expect("cannot run scripts/qemu-setup");
        assert!(
            setup.status.success(),
            "scripts/qemu-setup failed ({}):\n{}{}",
            setup.status,
            String::from_utf8_lossy(&setup.stdout),
            String::from_utf8_lossy(&setup.stderr)
        );
        require_c_reference();
        let bed = Testbed {
            qemu: dir.join("root/usr/bin/qemu-system-x86_64"),
            vmlinux: dir.join("vmlinux"),
            initrd: dir.join("initramfs.cpio.gz"),
        };
        (bed, guard)
    }
}

/// Where qemu takes the module for `scheme` from: our directory when it
/// holds `libvdeplug_<scheme>.so`, else Debian's. Returns VDEPLUGIN_PATH and
/// the file qemu must map.
fn modules_for(scheme: &str) -> (String, PathBuf) {
    let ours = std::env::var_os("VPT_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/plugins"));
    let file = format!("libvdeplug_{scheme}.so");
    if ours.join(&file).exists() {
        let ours = ours.canonicalize().unwrap();
        say!("{scheme}: our module {}", ours.join(&file).display());
        (
            format!("{}:{DEBIAN_MODULES}", ours.display()),
            ours.join(file),
        )
    } else {
        say!(
            "{scheme}: NOTE no {} yet: running Debian's C module instead",
            ours.join(&file).display()
        );
        (
            DEBIAN_MODULES.to_string(),
            Path::new(DEBIAN_MODULES).join(file),
        )
    }
}

/// Waits for `ok`, bounded by [`VM_PATIENCE`].
fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + VM_PATIENCE;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One qemu guest, its serial console on a pipe: the test reads its
/// `VPT-...` lines and may write a line to it. Killed and reaped on drop.
struct Guest {
    name: String,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    /// Every console line so far, for failure messages.
    transcript: Vec<String>,
    stderr: PathBuf,
    started: Instant,
}

impl Guest {
    /// Boots guest `n` (`vmN`, address 198.18.0.N, its own MAC) whose NIC
    /// is the node at `url`, its module searched in `plugin_path`; with a
    /// peer, it pings it `count` times (0: until told to stop).
    fn start(
        bed: &Testbed,
        t: &Scratch,
        n: u8,
        url: &str,
        plugin_path: &str,
        ping: Option<(&str, u32)>,
    ) -> Guest {
        let name = format!("vm{n}");
        let mac = format!("52:54:00:12:00:{n:02x}");
        // no_timer_check: on a loaded host the emulated timer can miss the
        // kernel's early check, which then panics ("IO-APIC + timer doesn't
        // work"); panic=-1 with -no-reboot makes any panic end qemu.
        let mut append = format!("console=ttyS0 quiet no_timer_check panic=-1 vpt_ip=198.18.0.{n}");
        if let Some((peer, count)) = ping {
            append += &format!(" vpt_peer={peer} vpt_count={count}");
        }
        let stderr = t.dir.join(format!("{name}.stderr"));
        let mut child = Command::new(&bed.qemu)
            .args(["-nodefaults", "-no-user-config", "-no-reboot"])
            .args(["-display", "none", "-serial", "stdio"])
            .args(["-accel", "tcg", "-m", "128", "-smp", "1"])
            .arg("-kernel")
            .arg(&bed.vmlinux)
            .arg("-initrd")
            .arg(&bed.initrd)
            .args(["-append", &append])
            .args([
                "-nic",
                &format!("vde,sock={url},model=virtio-net-pci,mac={mac}"),
            ])
            .env("VDEPLUGIN_PATH", plugin_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bed.qemu.display()));
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            let mut out = BufReader::new(out);
            let mut line = Vec::new();
            while out
                .read_until(b'\n', &mut line)
                .map(|n| n > 0)
                .unwrap_or(false)
            {
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                if tx.send(text).is_err() {
                    return;
                }
                line.clear();
            }
        });
        Guest {
            name,
            stdin: child.stdin.take().unwrap(),
            child,
            lines,
            transcript: Vec::new(),
            stderr,
            started: Instant::now(),
        }
    }

    /// Everything the guest said, for a failure message.
    fn story(&self) -> String {
        format!(
            "{} console:\n{}\n{} qemu stderr:\n{}",
            self.name,
            self.transcript.join("\n"),
            self.name,
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// Waits for the next console line starting with `prefix` (bounded);
    /// a `VPT-ERROR` line or qemu's exit fails the test.
    fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + VM_PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.transcript.push(line.clone());
                    if line.starts_with("VPT-ERROR") {
                        panic!("{}: {line}\n{}", self.name, self.story());
                    }
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{}: no {prefix} line in {VM_PATIENCE:?}\n{}",
                        self.name,
                        self.story()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait();
                    panic!(
                        "{}: qemu exited ({status:?}) before {prefix}\n{}",
                        self.name,
                        self.story()
                    )
                }
            }
        }
    }

    /// Waits for `n` more successful counted pings; a lost one fails.
    fn wait_pings(&mut self, n: usize) {
        for _ in 0..n {
            let line = self.wait_line("VPT-PING");
            assert!(
                line.ends_with(" ok"),
                "{}: {line}\n{}",
                self.name,
                self.story()
            );
        }
    }

    /// Writes a line on the guest's console.
    fn tell(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Waits for the result line: (sent, received).
    fn result(&mut self) -> (u32, u32) {
        let line = self.wait_line("VPT-RESULT");
        let field = |key: &str| -> u32 {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{}: malformed {line:?}", self.name))
        };
        (field("sent="), field("received="))
    }

    /// After the result the guest powers off: qemu must exit cleanly.
    fn wait_poweroff(&mut self) {
        let deadline = Instant::now() + VM_PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{}: qemu did not exit after poweroff",
                self.name
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(
            status.success(),
            "{}: qemu exited {status}\n{}",
            self.name,
            self.story()
        );
    }

    /// Checks in /proc/PID/maps that qemu mapped `module` (after the node
    /// exists, the module is loaded).
    fn assert_mapped(&self, module: &Path) {
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", self.child.id())).unwrap();
        let want = module.to_string_lossy();
        let name = module.file_name().unwrap().to_string_lossy();
        let mapped: Vec<&str> = maps
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .filter(|p| p.ends_with(&*name))
            .collect();
        assert!(
            mapped.iter().any(|p| *p == want),
            "{}: qemu should map {want}, maps {mapped:?}",
            self.name
        );
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two guests on `scheme` nodes in a fresh scratch directory; guest 1 pings
/// guest 2 `count` times (0: until told to stop). Returns them once both
/// nodes exist and qemu is known to host them with the expected module.
fn two_guests(
    bed: &Testbed,
    t: &Scratch,
    scheme: &str,
    count: u32,
) -> (Guest, Guest, String, String) {
    let (vm1, vm2) = (t.path("vm1"), t.path("vm2"));
    let (plugin_path, module) = modules_for(scheme);
    let url = |vm: &str| format!("{scheme}://{vm}");
    let g2 = Guest::start(bed, t, 2, &url(&vm2), &plugin_path, None);
    let g1 = Guest::start(bed, t, 1, &url(&vm1), &plugin_path, Some((IP2, count)));
    for (g, vm) in [(&g1, &vm1), (&g2, &vm2)] {
        let ctl = format!("{vm}/ctl");
        wait_until(&ctl, || Path::new(&ctl).exists());
        // The C node binds ctl before it listens.
        wait_node(vm);
        g.assert_mapped(&module);
    }
    (g1, g2, vm1, vm2)
}

/// Waits until `n` cables are up at both nodes (bounded by the VM's
/// patience: qemu's own loop serves the node).
fn wait_joined(vm1: &str, vm2: &str, n: usize) {
    for vm in [vm1, vm2] {
        wait_until(&format!("{n} ports in {vm}, no client joining"), || {
            port_count(vm) == n && joining_count(vm) == 0
        });
    }
}

/// Two guests on bonding nodes hosted by qemu, joined by one cable of ours
/// and one C cable: guest 1's counted pings all come back.
#[test]
fn qemu_bonding_two_cables_loses_no_ping() {
    let (bed, _lock) = Testbed::get();
    let t = Scratch::new("qemu-bond");
    let (mut g1, mut g2, vm1, vm2) = two_guests(&bed, &t, "bonding", 20);
    // A bonding node with no cable drops the host's frames: the guest's
    // /init retries a first ping until the cables carry it.
    let _ours = Plug::spawn(rs_plug(), &[&vm1, "=", rs_plug(), &vm2]);
    let _c = Plug::spawn(C_PLUG, &[&vm1, "=", C_PLUG, &vm2]);
    wait_joined(&vm1, &vm2, 2);
    let joined = g1.started.elapsed();
    g2.wait_line("VPT-READY");
    let link = g1.wait_line("VPT-LINK");
    let first = g1.started.elapsed();
    let (sent, received) = g1.result();
    say!(
        "qemu bonding, two cables (ours + C): sent={sent} received={received} lost={}; \
         cables joined {:.1} s and first reply {:.1} s after qemu started ({link})",
        sent - received,
        joined.as_secs_f64(),
        first.as_secs_f64()
    );
    assert_eq!(sent, 20);
    assert_eq!(received, sent, "pings lost\n{}", g1.story());
    g1.wait_poweroff();
    assert!(!Path::new(&vm1).exists(), "qemu left its node {vm1} behind");
}

/// Two guests on multi nodes hosted by qemu: cable 1 (ours) carries the
/// pings, cable 2 (C) joins, cable 1 is killed while pings flow; every
/// counted ping comes back.
#[test]
fn qemu_multi_handoff_loses_no_ping() {
    let (bed, _lock) = Testbed::get();
    let t = Scratch::new("qemu-multi");
    let (mut g1, mut g2, vm1, vm2) = two_guests(&bed, &t, "multi", 0);
    let cable1 = Plug::spawn(rs_plug(), &[&vm1, "=", rs_plug(), &vm2]);
    wait_joined(&vm1, &vm2, 1);
    g2.wait_line("VPT-READY");
    let link = g1.wait_line("VPT-LINK");
    let first = g1.started.elapsed();
    g1.wait_pings(5);
    let _cable2 = Plug::spawn(C_PLUG, &[&vm1, "=", C_PLUG, &vm2]);
    wait_joined(&vm1, &vm2, 2);
    g1.wait_pings(5);
    cable1.signal(libc::SIGKILL);
    wait_joined(&vm1, &vm2, 1);
    g1.wait_pings(10);
    g1.tell("stop");
    let (sent, received) = g1.result();
    say!(
        "qemu multi handoff (ours -> C cable): sent={sent} received={received} lost={}; \
         first reply {:.1} s after qemu started ({link})",
        sent - received,
        first.as_secs_f64()
    );
    assert!(sent >= 20, "only {sent} pings\n{}", g1.story());
    assert_eq!(received, sent, "pings lost\n{}", g1.story());
    g1.wait_poweroff();
    assert!(!Path::new(&vm1).exists(), "qemu left its node {vm1} behind");
}
