//! Continuous sampling of the build users on every host, to prove that no host ever
//! holds more users than its concurrency — not just at the moments a test looks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the hosts' account files are read.
const PERIOD: Duration = Duration::from_millis(10);

/// A background thread reading every host's `/etc/passwd` (from outside its namespace,
/// so it costs a file read, not a process) until [`CapacityWatch::finish`].
pub struct CapacityWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<CapacityReport>>,
}

/// What the samples showed.
#[derive(Clone, Debug, Default)]
pub struct CapacityReport {
    /// Samples taken (of all hosts at once).
    pub samples: u64,
    /// Per host: the most build users seen at once.
    pub max_users: BTreeMap<String, usize>,
    /// Every sample in which a host held more users than its concurrency:
    /// (host, when since the start, the users).
    pub violations: Vec<(String, Duration, Vec<String>)>,
}

/// Build users (`u-*`) listed in a passwd file's text.
pub fn build_users_in(passwd: &str) -> Vec<String> {
    passwd
        .lines()
        .filter_map(|line| line.split(':').next())
        .filter(|name| name.starts_with("u-"))
        .map(str::to_owned)
        .collect()
}

impl CapacityWatch {
    /// Starts sampling `(host name, passwd path, concurrency)`.
    pub(crate) fn start(hosts: Vec<(String, PathBuf, usize)>) -> CapacityWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                let started = Instant::now();
                let mut report = CapacityReport::default();
                // One last pass after the stop request, so the final state is sampled.
                loop {
                    let last = stop.load(Ordering::Relaxed);
                    for (name, passwd, concurrency) in &hosts {
                        let users = std::fs::read_to_string(passwd)
                            .map(|text| build_users_in(&text))
                            .unwrap_or_default();
                        let max = report.max_users.entry(name.clone()).or_default();
                        *max = (*max).max(users.len());
                        if users.len() > *concurrency {
                            report
                                .violations
                                .push((name.clone(), started.elapsed(), users));
                        }
                    }
                    report.samples += 1;
                    if last {
                        return report;
                    }
                    std::thread::sleep(PERIOD);
                }
            }
        });
        CapacityWatch {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling and returns what was seen.
    pub fn finish(mut self) -> CapacityReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for CapacityWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_build_users_count() {
        let passwd = "root:x:0:0::/root:/bin/sh\nu-0123456789abcdef0123456789ab:x:1000:1000:mpc:/home/u:/bin/sh\nuser:x:1001:1001::/home/user:/bin/sh\n";
        assert_eq!(build_users_in(passwd), ["u-0123456789abcdef0123456789ab"]);
    }
}
