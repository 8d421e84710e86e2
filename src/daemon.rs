//! Process-level chores of a plug: daemon mode, the pid file, syslog.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

/// Detaches from the terminal (`daemon(0, 0)`: cwd `/`, stdio on /dev/null).
pub fn daemonize() -> io::Result<()> {
    // SAFETY: called before any thread exists.
    if unsafe { libc::daemon(0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Writes our pid to a file and removes it when dropped.
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    pub fn create(path: &Path) -> io::Result<PidFile> {
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()?.join(path)
        };
        std::fs::write(&abs, format!("{}\n", std::process::id()))?;
        Ok(PidFile { path: abs })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// START/STOP lines in syslog (`-l`), as vde_plug writes them.
pub struct SysLog {
    who: String,
}

impl SysLog {
    pub fn open(event: &str) -> SysLog {
        // SAFETY: openlog keeps the pointer: the ident is a static string.
        unsafe { libc::openlog(c"vde_plug".as_ptr(), 0, libc::LOG_USER) };
        let user = crate::accounts::user_name(crate::sys::uid()).unwrap_or_else(|| "?".into());
        let ip = std::env::var("SSH_CLIENT")
            .ok()
            .and_then(|s| s.split_whitespace().next().map(String::from))
            .unwrap_or_else(|| "UNKNOWN_IP_ADDRESS".into());
        let log = SysLog {
            who: format!("user {user} IP {ip}"),
        };
        log.line(event);
        log
    }

    pub fn line(&self, event: &str) {
        if let Ok(msg) = CString::new(format!("{event}: {}", self.who)) {
            // SAFETY: a "%s" format with one valid C string.
            unsafe { libc::syslog(libc::LOG_INFO, c"%s".as_ptr(), msg.as_ptr()) };
        }
    }
}

impl Drop for SysLog {
    fn drop(&mut self) {
        self.line("STOP");
        // SAFETY: closing the log opened in `open`.
        unsafe { libc::closelog() };
    }
}

/// Lets a plug open as many cables as the hard limit allows.
pub fn raise_fd_limit() {
    // SAFETY: get/setrlimit on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max.min(65536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
