//! Prometheus metrics, named as the Go controller names them so dashboards keep working.
//!
//! The Go controller registers `multi_platform_controller_*` histograms, counters and
//! gauges with a `platform` label, in the classic text format (counters without a
//! `_total` suffix); this module reproduces those names, help texts and buckets and adds
//! per-host gauges. What is counted is decided by the controller core
//! ([`mpc_core::machine::Metric`]), so a success is never counted on a failure and
//! nothing twice; gauges are set from [`Gauges`] snapshots, so they drop back to zero.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use mpc_core::machine::{Gauges, Metric};

const SUBSYSTEM: &str = "multi_platform_controller";
/// Buckets of the allocation and wait histograms (the Go controller's `smallBuckets`).
const SMALL_BUCKETS: [f64; 14] = [
    1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0,
];
/// Buckets of the task-run-time histogram (the Go controller's `bigBuckets`).
const BIG_BUCKETS: [f64; 14] = [
    20.0, 40.0, 60.0, 90.0, 120.0, 300.0, 600.0, 1200.0, 2400.0, 4800.0, 6000.0, 7200.0, 8400.0,
    9600.0,
];

/// Every metric the controller exports.
pub struct Metrics {
    registry: Registry,
    allocation_time: HistogramVec,
    wait_time: HistogramVec,
    task_run_time: HistogramVec,
    provisioning_successes: IntCounterVec,
    provisioning_failures: IntCounterVec,
    cleanup_failures: IntCounterVec,
    host_allocation_failures: IntCounterVec,
    pool_size: IntGaugeVec,
    running_tasks: IntGaugeVec,
    waiting_tasks: IntGaugeVec,
    slots_used: IntGaugeVec,
    slots_total: IntGaugeVec,
    host_up: GaugeVec,
    reaped_users: IntCounterVec,
    host_cleanup_failures: IntCounterVec,
    cloud_instances: IntGaugeVec,
    cloud_launches: IntCounterVec,
    cloud_launch_failures: IntCounterVec,
    cloud_terminations: IntCounterVec,
    cloud_swept: IntCounterVec,
    /// The label sets of the last gauge snapshot, to drop those that disappear.
    series: Mutex<Series>,
}

/// The platforms and hosts whose series exist, as the last gauge snapshot named them.
#[derive(Default)]
struct Series {
    /// Platform → whether it is a cloud platform.
    platforms: BTreeMap<String, bool>,
    /// Host → its platform.
    hosts: BTreeMap<String, String>,
    /// (platform, state) of the instance counts.
    instances: BTreeSet<(String, String)>,
    /// (platform, code) of the launch failures counted.
    launch_failures: BTreeSet<(String, String)>,
}

/// A metric could not be registered (a programming error: names are fixed).
#[derive(Debug, thiserror::Error)]
#[error("cannot register metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).subsystem(SUBSYSTEM)
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> Result<HistogramVec, MetricsError> {
    let opts = HistogramOpts::new(name, help)
        .subsystem(SUBSYSTEM)
        .buckets(buckets.to_vec());
    Ok(HistogramVec::new(opts, &["platform"])?)
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, MetricsError> {
        let per_platform = &["platform"];
        let per_host = &["host", "platform"];
        let metrics = Metrics {
            registry: Registry::new(),
            allocation_time: histogram(
                "host_allocation_time",
                "The time in seconds it takes to allocate a host, excluding wait time",
                &SMALL_BUCKETS,
            )?,
            wait_time: histogram(
                "wait_time",
                "The time in seconds a task has spent waiting for a host to become available, \
                 excluding the host allocation time",
                &SMALL_BUCKETS,
            )?,
            task_run_time: histogram(
                "task_run_time",
                "The total time taken by a task, including wait and allocation time",
                &BIG_BUCKETS,
            )?,
            provisioning_successes: IntCounterVec::new(
                opts(
                    "provisioning_successes",
                    "The number of times a build user was provisioned and its Secret written",
                ),
                per_platform,
            )?,
            provisioning_failures: IntCounterVec::new(
                opts(
                    "provisioning_failures",
                    "The number of times provisioning a build user on a host has failed",
                ),
                per_platform,
            )?,
            cleanup_failures: IntCounterVec::new(
                opts(
                    "cleanup_failures",
                    "The number of times cleaning a host after a task has failed",
                ),
                per_platform,
            )?,
            host_allocation_failures: IntCounterVec::new(
                opts(
                    "host_allocation_failures",
                    "The number of times host allocation has failed (an error Secret was written)",
                ),
                per_platform,
            )?,
            pool_size: IntGaugeVec::new(
                opts(
                    "platform_pool_size",
                    "The number of slots of the platform's active hosts",
                ),
                per_platform,
            )?,
            running_tasks: IntGaugeVec::new(
                opts(
                    "running_tasks",
                    "The number of currently running tasks on this platform",
                ),
                per_platform,
            )?,
            waiting_tasks: IntGaugeVec::new(
                opts(
                    "waiting_tasks",
                    "The number of tasks waiting for an executor to be available to run",
                ),
                per_platform,
            )?,
            slots_used: IntGaugeVec::new(
                opts("slots_used", "Slots of the host taken by TaskRuns"),
                per_host,
            )?,
            slots_total: IntGaugeVec::new(
                opts(
                    "slots_total",
                    "Slots of the host (its concurrency; 0 once removed)",
                ),
                per_host,
            )?,
            host_up: GaugeVec::new(
                opts(
                    "host_up",
                    "1 when the host answered its last probe or operation, else 0",
                ),
                per_host,
            )?,
            reaped_users: IntCounterVec::new(
                opts(
                    "reaped_users",
                    "Build users removed by the reaper because no TaskRun owned them",
                ),
                &["host"],
            )?,
            host_cleanup_failures: IntCounterVec::new(
                opts(
                    "host_cleanup_failures",
                    "Failed attempts to remove a build user from the host",
                ),
                &["host"],
            )?,
            cloud_instances: IntGaugeVec::new(
                opts(
                    "cloud_instances",
                    "Instances of a dynamic platform per state, as the latest cloud listing \
                     shows them (every instance with the platform's tags)",
                ),
                &["platform", "state"],
            )?,
            cloud_launches: IntCounterVec::new(
                opts("cloud_launches", "Cloud instances launched for TaskRuns"),
                per_platform,
            )?,
            cloud_launch_failures: IntCounterVec::new(
                opts(
                    "cloud_launch_failures",
                    "Failed launches of cloud instances, by the cloud's error code",
                ),
                &["platform", "code"],
            )?,
            cloud_terminations: IntCounterVec::new(
                opts(
                    "cloud_terminations",
                    "Cloud instances of TaskRuns terminated (the cloud confirmed)",
                ),
                per_platform,
            )?,
            cloud_swept: IntCounterVec::new(
                opts(
                    "cloud_swept_instances",
                    "Cloud instances no TaskRun owns that the sweep asked to terminate",
                ),
                per_platform,
            )?,
            series: Mutex::new(Series::default()),
        };
        metrics.register_all()?;
        Ok(metrics)
    }

    fn register_all(&self) -> Result<(), MetricsError> {
        let collectors: [Box<dyn prometheus::core::Collector>; 20] = [
            Box::new(self.allocation_time.clone()),
            Box::new(self.wait_time.clone()),
            Box::new(self.task_run_time.clone()),
            Box::new(self.provisioning_successes.clone()),
            Box::new(self.provisioning_failures.clone()),
            Box::new(self.cleanup_failures.clone()),
            Box::new(self.host_allocation_failures.clone()),
            Box::new(self.pool_size.clone()),
            Box::new(self.running_tasks.clone()),
            Box::new(self.waiting_tasks.clone()),
            Box::new(self.slots_used.clone()),
            Box::new(self.slots_total.clone()),
            Box::new(self.host_up.clone()),
            Box::new(self.reaped_users.clone()),
            Box::new(self.host_cleanup_failures.clone()),
            Box::new(self.cloud_instances.clone()),
            Box::new(self.cloud_launches.clone()),
            Box::new(self.cloud_launch_failures.clone()),
            Box::new(self.cloud_terminations.clone()),
            Box::new(self.cloud_swept.clone()),
        ];
        for collector in collectors {
            self.registry.register(collector)?;
        }
        Ok(())
    }

    /// Records one measurement decided by the core.
    pub fn record(&self, metric: &Metric) {
        match metric {
            Metric::ProvisioningSuccess { platform } => self
                .provisioning_successes
                .with_label_values(&[platform.as_str()])
                .inc(),
            Metric::ProvisioningFailure { platform } => self
                .provisioning_failures
                .with_label_values(&[platform.as_str()])
                .inc(),
            Metric::CleanupFailure { platform } => self
                .cleanup_failures
                .with_label_values(&[platform.as_str()])
                .inc(),
            Metric::AllocationFailure { platform } => self
                .host_allocation_failures
                .with_label_values(&[platform.as_str()])
                .inc(),
            Metric::AllocationTime { platform, took } => self
                .allocation_time
                .with_label_values(&[platform.as_str()])
                .observe(took.as_secs_f64()),
            Metric::WaitTime { platform, took } => self
                .wait_time
                .with_label_values(&[platform.as_str()])
                .observe(took.as_secs_f64()),
            Metric::TaskRunTime { platform, took } => self
                .task_run_time
                .with_label_values(&[platform.as_str()])
                .observe(took.as_secs_f64()),
            Metric::Launch { platform } => self
                .cloud_launches
                .with_label_values(&[platform.as_str()])
                .inc(),
            Metric::LaunchFailure { platform, code } => {
                self.cloud_launch_failures
                    .with_label_values(&[platform.as_str(), code.as_str()])
                    .inc();
                self.lock_series()
                    .launch_failures
                    .insert((platform.as_str().to_owned(), code.clone()));
            }
            Metric::Termination { platform } => self
                .cloud_terminations
                .with_label_values(&[platform.as_str()])
                .inc(),
            Metric::Swept { platform, count } => self
                .cloud_swept
                .with_label_values(&[platform.as_str()])
                .inc_by(u64::try_from(*count).unwrap_or(u64::MAX)),
        }
    }

    /// Counts users the reaper removed from `host`.
    pub fn reaped(&self, host: &str, users: usize) {
        self.reaped_users
            .with_label_values(&[host])
            .inc_by(users as u64);
    }

    /// Counts a failed attempt to remove a user from `host` (release or reaper).
    pub fn host_cleanup_failed(&self, host: &str) {
        self.host_cleanup_failures.with_label_values(&[host]).inc();
    }

    /// Sets every gauge from a snapshot, and keeps exactly the series of the platforms
    /// and hosts it names: those that appear get every series of theirs at zero (so a
    /// counter exists before its first event, and `increase()` over it works), those
    /// that left it lose all of theirs. The instance states of a cloud platform that are
    /// no longer listed drop to zero.
    pub fn set_gauges(&self, gauges: &Gauges) {
        let mut last = self.lock_series();
        let Series {
            platforms,
            hosts,
            instances,
            launch_failures,
        } = &mut *last;
        for (platform, was_cloud) in platforms.iter() {
            let now = gauges.platforms.get(platform);
            if now.is_none() {
                self.drop_platform(platform);
            }
            if *was_cloud && now.is_none_or(|g| !g.cloud) {
                self.drop_cloud_platform(platform, launch_failures, instances);
            }
        }
        for (platform, state) in instances.iter() {
            let listed = gauges
                .instances
                .get(platform)
                .is_some_and(|states| states.contains_key(state));
            if !listed {
                self.cloud_instances
                    .with_label_values(&[platform.as_str(), state.as_str()])
                    .set(0);
            }
        }
        for (host, platform) in hosts.iter() {
            match gauges.hosts.get(host) {
                Some(g) if &g.platform == platform => {}
                now => {
                    let labels = [host.as_str(), platform.as_str()];
                    let _ = self.slots_used.remove_label_values(&labels);
                    let _ = self.slots_total.remove_label_values(&labels);
                    let _ = self.host_up.remove_label_values(&labels);
                    if now.is_none() {
                        let _ = self.reaped_users.remove_label_values(&[host.as_str()]);
                        let _ = self
                            .host_cleanup_failures
                            .remove_label_values(&[host.as_str()]);
                    }
                }
            }
        }
        platforms.clear();
        hosts.clear();
        for (platform, gauge) in &gauges.platforms {
            let labels = [platform.as_str()];
            for histogram in [&self.allocation_time, &self.wait_time, &self.task_run_time] {
                let _ = histogram.with_label_values(&labels);
            }
            for counter in [
                &self.provisioning_successes,
                &self.provisioning_failures,
                &self.cleanup_failures,
                &self.host_allocation_failures,
            ] {
                let _ = counter.with_label_values(&labels);
            }
            if gauge.cloud {
                for counter in [
                    &self.cloud_launches,
                    &self.cloud_terminations,
                    &self.cloud_swept,
                ] {
                    let _ = counter.with_label_values(&labels);
                }
            }
            self.pool_size
                .with_label_values(&labels)
                .set(count(gauge.pool_size));
            self.running_tasks
                .with_label_values(&labels)
                .set(count(gauge.running));
            self.waiting_tasks
                .with_label_values(&labels)
                .set(count(gauge.waiting));
            platforms.insert(platform.clone(), gauge.cloud);
        }
        for (platform, states) in &gauges.instances {
            for (state, n) in states {
                self.cloud_instances
                    .with_label_values(&[platform.as_str(), state.as_str()])
                    .set(count(*n));
                instances.insert((platform.clone(), state.clone()));
            }
        }
        for (host, gauge) in &gauges.hosts {
            let labels = [host.as_str(), gauge.platform.as_str()];
            self.slots_used
                .with_label_values(&labels)
                .set(count(gauge.used));
            self.slots_total
                .with_label_values(&labels)
                .set(count(gauge.total));
            self.host_up
                .with_label_values(&labels)
                .set(if gauge.up { 1.0 } else { 0.0 });
            let _ = self.reaped_users.with_label_values(&[host.as_str()]);
            let _ = self
                .host_cleanup_failures
                .with_label_values(&[host.as_str()]);
            hosts.insert(host.clone(), gauge.platform.clone());
        }
    }

    /// Removes every series labelled with `platform` (but the cloud ones).
    fn drop_platform(&self, platform: &str) {
        let labels = [platform];
        for histogram in [&self.allocation_time, &self.wait_time, &self.task_run_time] {
            let _ = histogram.remove_label_values(&labels);
        }
        for counter in [
            &self.provisioning_successes,
            &self.provisioning_failures,
            &self.cleanup_failures,
            &self.host_allocation_failures,
        ] {
            let _ = counter.remove_label_values(&labels);
        }
        for gauge in [&self.pool_size, &self.running_tasks, &self.waiting_tasks] {
            let _ = gauge.remove_label_values(&labels);
        }
    }

    /// Removes the cloud series of `platform`, and forgets its tracked label sets.
    fn drop_cloud_platform(
        &self,
        platform: &str,
        launch_failures: &mut BTreeSet<(String, String)>,
        instances: &mut BTreeSet<(String, String)>,
    ) {
        for counter in [
            &self.cloud_launches,
            &self.cloud_terminations,
            &self.cloud_swept,
        ] {
            let _ = counter.remove_label_values(&[platform]);
        }
        launch_failures.retain(|(p, code)| {
            let keep = p != platform;
            if !keep {
                let _ = self
                    .cloud_launch_failures
                    .remove_label_values(&[p.as_str(), code.as_str()]);
            }
            keep
        });
        instances.retain(|(p, state)| {
            let keep = p != platform;
            if !keep {
                let _ = self
                    .cloud_instances
                    .remove_label_values(&[p.as_str(), state.as_str()]);
            }
            keep
        });
    }

    fn lock_series(&self) -> std::sync::MutexGuard<'_, Series> {
        self.series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// A count as a gauge value.
fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpc_core::machine::{HostGauge, PlatformGauge};
    use mpc_core::platform::Platform;

    fn arm() -> Platform {
        Platform::parse("linux/arm64").unwrap()
    }

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn names_match_the_go_controller_without_a_total_suffix() {
        let m = Metrics::new().unwrap();
        m.record(&Metric::ProvisioningSuccess { platform: arm() });
        m.record(&Metric::ProvisioningFailure { platform: arm() });
        m.record(&Metric::CleanupFailure { platform: arm() });
        m.record(&Metric::AllocationFailure {
            platform: "linux/arm64".into(),
        });
        m.record(&Metric::WaitTime {
            platform: arm(),
            took: std::time::Duration::from_millis(2500),
        });
        m.record(&Metric::TaskRunTime {
            platform: arm(),
            took: std::time::Duration::from_secs(50),
        });
        let text = m.encode();
        for name in [
            "multi_platform_controller_provisioning_successes{platform=\"linux/arm64\"} 1",
            "multi_platform_controller_provisioning_failures{platform=\"linux/arm64\"} 1",
            "multi_platform_controller_cleanup_failures{platform=\"linux/arm64\"} 1",
            "multi_platform_controller_host_allocation_failures{platform=\"linux/arm64\"} 1",
            "multi_platform_controller_wait_time_bucket{platform=\"linux/arm64\",le=\"3\"} 1",
            "multi_platform_controller_wait_time_count{platform=\"linux/arm64\"} 1",
        ] {
            assert!(text.contains(name), "missing {name} in:\n{text}");
        }
        assert!(!text.contains("_total"), "{text}");
        assert!(
            line(
                &text,
                "# TYPE multi_platform_controller_task_run_time histogram"
            )
            .is_some()
        );
    }

    fn snapshot(platforms: &[(&str, bool)], hosts: &[(&str, &str)]) -> Gauges {
        let mut g = Gauges::default();
        for (platform, cloud) in platforms {
            g.platforms.insert(
                (*platform).into(),
                PlatformGauge {
                    running: 3,
                    waiting: 7,
                    pool_size: 4,
                    cloud: *cloud,
                },
            );
        }
        for (host, platform) in hosts {
            g.hosts.insert(
                (*host).into(),
                HostGauge {
                    platform: (*platform).into(),
                    used: 3,
                    total: 4,
                    up: true,
                },
            );
        }
        g
    }

    /// Every series line (`name{labels} value`) that names `label`.
    fn series_of<'a>(text: &'a str, label: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| !l.starts_with('#') && l.contains(label))
            .collect()
    }

    #[test]
    fn gauges_follow_snapshots() {
        let m = Metrics::new().unwrap();
        m.set_gauges(&snapshot(
            &[("linux/arm64", false)],
            &[("a1", "linux/arm64")],
        ));
        let text = m.encode();
        for line in [
            "multi_platform_controller_waiting_tasks{platform=\"linux/arm64\"} 7",
            "multi_platform_controller_slots_used{host=\"a1\",platform=\"linux/arm64\"} 3",
            "multi_platform_controller_host_up{host=\"a1\",platform=\"linux/arm64\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in:\n{text}");
        }
    }

    #[test]
    fn every_series_of_a_configured_platform_and_host_exists_at_zero() {
        let m = Metrics::new().unwrap();
        m.set_gauges(&snapshot(
            &[("linux/arm64", false), ("linux/amd64", true)],
            &[("a1", "linux/arm64")],
        ));
        let text = m.encode();
        for name in [
            "provisioning_successes",
            "provisioning_failures",
            "cleanup_failures",
            "host_allocation_failures",
        ] {
            for p in ["linux/arm64", "linux/amd64"] {
                let line = format!("multi_platform_controller_{name}{{platform=\"{p}\"}} 0");
                assert!(text.contains(&line), "missing {line} in:\n{text}");
            }
        }
        for name in ["host_allocation_time", "wait_time", "task_run_time"] {
            let line =
                format!("multi_platform_controller_{name}_count{{platform=\"linux/arm64\"}} 0");
            assert!(text.contains(&line), "missing {line} in:\n{text}");
        }
        for name in ["reaped_users", "host_cleanup_failures"] {
            let line = format!("multi_platform_controller_{name}{{host=\"a1\"}} 0");
            assert!(text.contains(&line), "missing {line} in:\n{text}");
        }
        for name in [
            "cloud_launches",
            "cloud_terminations",
            "cloud_swept_instances",
        ] {
            let line = format!("multi_platform_controller_{name}{{platform=\"linux/amd64\"}} 0");
            assert!(text.contains(&line), "missing {line} in:\n{text}");
            let static_one =
                format!("multi_platform_controller_{name}{{platform=\"linux/arm64\"}}");
            assert!(
                !text.contains(&static_one),
                "a static platform has no {name}"
            );
        }
    }

    #[test]
    fn series_of_platforms_and_hosts_that_leave_are_dropped() {
        let m = Metrics::new().unwrap();
        m.set_gauges(&snapshot(
            &[("linux/arm64", false), ("linux/amd64", true)],
            &[("a1", "linux/arm64"), ("a2", "linux/arm64")],
        ));
        m.record(&Metric::CleanupFailure { platform: arm() });
        m.record(&Metric::LaunchFailure {
            platform: Platform::parse("linux/amd64").unwrap(),
            code: "InsufficientInstanceCapacity".into(),
        });
        m.host_cleanup_failed("a2");
        let mut instances = BTreeMap::new();
        instances.insert("running".to_string(), 2);
        let mut g = snapshot(
            &[("linux/arm64", false), ("linux/amd64", true)],
            &[("a1", "linux/arm64"), ("a2", "linux/arm64")],
        );
        g.instances.insert("linux/amd64".into(), instances);
        m.set_gauges(&g);
        assert!(
            m.encode()
                .contains("multi_platform_controller_cloud_instances{platform=\"linux/amd64\",state=\"running\"} 2")
        );
        // The instance listing no longer shows running instances: zero, not gone.
        m.set_gauges(&snapshot(
            &[("linux/arm64", false), ("linux/amd64", true)],
            &[("a1", "linux/arm64"), ("a2", "linux/arm64")],
        ));
        assert!(
            m.encode()
                .contains("multi_platform_controller_cloud_instances{platform=\"linux/amd64\",state=\"running\"} 0")
        );
        // amd64 and a2 leave; a1 moves to ppc64le.
        m.set_gauges(&snapshot(
            &[("linux/arm64", false), ("linux/ppc64le", false)],
            &[("a1", "linux/ppc64le")],
        ));
        let text = m.encode();
        assert_eq!(series_of(&text, "linux/amd64"), Vec::<&str>::new());
        assert_eq!(series_of(&text, "host=\"a2\""), Vec::<&str>::new());
        assert_eq!(
            series_of(&text, "host=\"a1\",platform=\"linux/arm64\""),
            Vec::<&str>::new()
        );
        assert!(text.contains(
            "multi_platform_controller_slots_used{host=\"a1\",platform=\"linux/ppc64le\"} 3"
        ));
        assert!(
            text.contains("multi_platform_controller_cleanup_failures{platform=\"linux/arm64\"} 1"),
            "a platform that stays keeps its counts"
        );
    }

    #[test]
    fn reaper_and_host_cleanup_counters() {
        let m = Metrics::new().unwrap();
        m.reaped("a1", 2);
        m.host_cleanup_failed("a1");
        let text = m.encode();
        assert!(text.contains("multi_platform_controller_reaped_users{host=\"a1\"} 2"));
        assert!(text.contains("multi_platform_controller_host_cleanup_failures{host=\"a1\"} 1"));
    }
}
