//! Chromium's throw-away profile directories: a fresh one per browser, removed when the
//! browser goes, and those of processes that died without removing theirs (killed, or a
//! process whose browser lived as long as it did) swept away at the next launch.
//!
//! A directory is named for the PID namespace, the process and a counter. Only directories
//! of this namespace are swept, and only when their process is gone: a PID means nothing
//! across namespaces (two containers sharing a temp folder), and a live browser's profile
//! must never be taken from under it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const PREFIX: &str = "hoptrace-chromium-";

/// This process's PID namespace (the inode `/proc/self/ns/pid` names), or 0 where there is
/// none to read.
fn namespace() -> u64 {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|p| {
            let s = p.to_string_lossy().into_owned();
            s.trim_start_matches("pid:[")
                .trim_end_matches(']')
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// A fresh profile directory's path (not yet created). The first call sweeps the stale ones.
pub(super) fn fresh() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let dir = std::env::temp_dir();
    let ns = namespace();
    SWEPT.call_once(|| {
        sweep(&dir, ns, super::cdp::process_alive);
    });
    dir.join(format!(
        "{PREFIX}{ns}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Removes the profile directories in `dir` of namespace `ns` whose process is not `alive`
/// (this process's own are always kept). Returns how many went.
fn sweep(dir: &Path, ns: u64, alive: impl Fn(u32) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    // Without a namespace to tell processes apart (no /proc to read), nothing is judged dead.
    if ns == 0 {
        return 0;
    }
    let me = std::process::id();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        let mut parts = rest.split('-');
        let (Some(Ok(their_ns)), Some(Ok(pid)), Some(Ok(_)), None) = (
            parts.next().map(str::parse::<u64>),
            parts.next().map(str::parse::<u32>),
            parts.next().map(str::parse::<u64>),
            parts.next(),
        ) else {
            continue; // another naming (an older hoptrace's): not ours to judge
        };
        if their_ns == ns
            && pid != me
            && !alive(pid)
            && std::fs::remove_dir_all(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!("removed {removed} browser profile folders left by processes that ended");
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_namespaces_dead_processes_lose_their_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let names = [
            (format!("{PREFIX}7-{me}-0"), true), // this process
            (format!("{PREFIX}7-100-3"), false), // this namespace, its process gone
            (format!("{PREFIX}7-200-0"), true),  // this namespace, its process alive
            (format!("{PREFIX}8-100-0"), true),  // another namespace
            (format!("{PREFIX}100-2"), true),    // an older naming
            ("something-else-7-100-0".to_string(), true),
        ];
        for (n, _) in &names {
            std::fs::create_dir(tmp.path().join(n)).unwrap();
            std::fs::write(tmp.path().join(n).join("Local State"), "{}").unwrap();
        }
        // No namespace known (no /proc): nothing is swept, whatever the PIDs say.
        std::fs::create_dir(tmp.path().join(format!("{PREFIX}0-100-0"))).unwrap();
        assert_eq!(sweep(tmp.path(), 0, |_| false), 0);
        assert!(tmp.path().join(format!("{PREFIX}0-100-0")).exists());
        assert_eq!(sweep(tmp.path(), 7, |pid| pid == 200), 1);
        for (n, kept) in &names {
            assert_eq!(tmp.path().join(n).exists(), *kept, "{n}");
        }
    }

    #[test]
    fn a_fresh_folder_names_this_namespace_and_process() {
        let name = fresh().file_name().unwrap().to_string_lossy().into_owned();
        let want = format!("{PREFIX}{}-{}-", namespace(), std::process::id());
        assert!(name.starts_with(&want), "{name}");
    }
}
