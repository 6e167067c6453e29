//! Host directories: where they live, who owns them, and sweeping the ones whose owner
//! process is gone (a test binary that was killed never ran its destructors).

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, SystemTime};

/// Directory holding every host directory of every process on this machine.
pub(crate) fn base_dir() -> PathBuf {
    std::env::temp_dir().join("mpc-test-hosts")
}

/// Identifies this process across pid reuse: pid and start time (clock ticks since boot).
pub(crate) fn owner_stamp() -> String {
    let pid = std::process::id();
    format!("{pid} {}", start_time(pid).unwrap_or(0))
}

/// Removes host directories whose owner process no longer exists. Runs once per process.
pub(crate) fn sweep_once() {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| {
        let Ok(entries) = std::fs::read_dir(base_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            if is_stale(&dir) {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    });
}

fn is_stale(dir: &Path) -> bool {
    match std::fs::read_to_string(dir.join("owner")) {
        Ok(stamp) => {
            let mut parts = stamp.split_whitespace();
            let pid = parts.next().and_then(|p| p.parse::<u32>().ok());
            let started = parts.next().and_then(|s| s.parse::<u64>().ok());
            match (pid, started) {
                (Some(pid), Some(started)) => start_time(pid) != Some(started),
                _ => true,
            }
        }
        // A directory without an owner file is either being created right now or was
        // abandoned half-way; only the latter is old.
        Err(_) => std::fs::metadata(dir)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > Duration::from_secs(600)),
    }
}

/// Field 22 of `/proc/<pid>/stat`: the process start time.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it are plain.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_stamp_is_not_stale_and_a_dead_pid_is() {
        let dir = tempfile_dir();
        std::fs::write(dir.join("owner"), owner_stamp()).unwrap();
        assert!(!is_stale(&dir));
        std::fs::write(dir.join("owner"), format!("{} 1", std::process::id())).unwrap();
        assert!(is_stale(&dir), "same pid, other start time: pid was reused");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "test-hosts-stale-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
