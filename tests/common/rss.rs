//! The hoptrace binary run as a child, with its peak resident memory and its wall time.
//!
//! The peak is the child's `VmHWM` (/proc/<pid>/status), read until it exits: `ru_maxrss`
//! of a child counts the spawning process's own peak too (Linux keeps it across the exec),
//! so a test that filled a store in memory would see its own size in every child. `VmHWM`
//! only grows; the last reading misses at most the last milliseconds before the exit.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// What one run of the binary took.
pub struct Measured {
    pub seconds: f64,
    /// Peak resident memory, MB.
    pub rss_mb: f64,
    pub success: bool,
    pub stderr: String,
}

/// Runs the binary with `args` and `--config cfg`, stdin empty, stdout to the file `out`
/// (stderr beside it, returned).
// The child is reaped by `waitpid`, between readings of its memory.
#[allow(clippy::zombie_processes)]
pub fn measured(args: &[&str], cfg: &Path, out: &Path) -> Measured {
    let err = out.with_extension("stderr");
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_hoptrace"))
        .args(args)
        .arg("--config")
        .arg(cfg)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let status_file = format!("/proc/{pid}/status");
    let mut peak_kib = 0u64;
    let mut status = 0;
    loop {
        if let Some(kib) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|s| vm_hwm_kib(&s))
        {
            peak_kib = peak_kib.max(kib);
        }
        // SAFETY: the pid is our own unwaited child; status outlives the call.
        let reaped = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(reaped >= 0, "waitpid");
        if reaped == pid {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    Measured {
        seconds: started.elapsed().as_secs_f64(),
        rss_mb: peak_kib as f64 / 1024.0,
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
    }
}

/// `VmHWM` of a /proc status file, in KiB.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
