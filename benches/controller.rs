//! The controller under load, as deployed: the real `multi-platform-controller run`
//! binary in its own process, against kube-sim (in this process) and 10 real sshd build
//! hosts, with TaskRuns driven the way Tekton drives them.
//!
//! Run: `cargo bench --bench controller` (as root). Three parts:
//!
//! 1. **Burst** — 500 TaskRuns (`MPC_BENCH_BURST`) become eligible at once for 10 hosts ×
//!    concurrency 4, all `linux/arm64` (one platform, so one FIFO queue serves the whole
//!    burst). Each is completed as soon as its Secret appears, so slots free up. Reported:
//!    eligible (`status.taskSpec` filled) → Secret written, p50/p95 (this includes the
//!    wait for a slot); assigned-host label → Secret (the work per TaskRun once it has a
//!    slot); Secret → released; throughput. The floor runs first, on the same hosts: the
//!    same number of users through 40 OpenSSH ControlMaster workers (4 per host), each a
//!    bare `useradd` + `authorized_keys` then `userdel` (the SSH benchmark's floor), and
//!    the same floor one user at a time.
//! 2. **Memory** — 10 000 TaskRuns (`MPC_BENCH_TASKRUNS`) with realistic bodies in the
//!    cluster before the controller starts: 60 % finished multi-platform runs, 30 %
//!    runs without `PLATFORM`, 10 % eligible `linux/arm64` runs (40 get a slot, the rest
//!    wait); then 3 rounds of 40 completions and hand-overs. Reported: the controller
//!    process's peak RSS (`VmHWM` from `/proc/<pid>/status`; kube-sim and this driver are
//!    another process).
//! 3. **Cloud** — 200 TaskRuns (`MPC_BENCH_CLOUD`) eligible at once on a dynamic AWS
//!    platform with `max-instances: 20`, served by the local EC2 of `hack/ec2-testbed`;
//!    see `controller/cloud.rs`. Reported: drain time, throughput, and the controller's
//!    overhead per TaskRun (eligible -> Secret minus the instance's boot) against the
//!    burst's static-host figures (`MPC_BENCH_ONLY=burst,cloud` measures both).

// Test code: a failed unwrap is how a test fails, and its numbers are small.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use mpc_core::naming::{
    ASSIGNED_HOST_LABEL, CLOUD_DYNAMIC_PLATFORM_LABEL, SECRET_PREFIX, TARGET_PLATFORM_LABEL,
    UserName, WAITING_FOR_PLATFORM_LABEL, secret_name,
};
use multi_platform_controller::cluster::TaskRunObject;
use multi_platform_controller::remote::{ProvisionRequest, generate};
use serde_json::json;
use testbed::kube_sim::crds::taskrun_api_resource;
use testbed::{ControllerProcess, HostSpec, Testbed, cpu_time};

#[path = "controller/cloud.rs"]
mod cloud;
#[path = "common/floor.rs"]
mod floor;
use floor::ControlMaster;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const CONTROLLER: &str = env!("CARGO_BIN_EXE_multi-platform-controller");
const HOSTS: usize = 10;
const CONCURRENCY: usize = 4;
const PLATFORM: &str = "linux/arm64";
/// How long any phase may take before the benchmark gives up.
const PHASE_LIMIT: Duration = Duration::from_secs(600);

fn main() -> Result<(), BoxError> {
    // `cargo test --all-targets` runs benches as smoke tests without `--bench`; the
    // measurement only runs under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("controller: skipped (run it with `cargo bench --bench controller`)");
        return Ok(());
    }
    let size = |var: &str, default: usize| {
        std::env::var(var)
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    };
    let burst = size("MPC_BENCH_BURST", 500);
    let taskruns = size("MPC_BENCH_TASKRUNS", 10_000);
    let cloud = size("MPC_BENCH_CLOUD", 200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!(
        "controller benchmark: {HOSTS} hosts x concurrency {CONCURRENCY}, all {PLATFORM}; {}; load average {}",
        floor::openssh_version(),
        load_average()
    );
    // MPC_BENCH_ONLY=burst, =memory or =cloud runs one part; `burst,cloud` two.
    let only = std::env::var("MPC_BENCH_ONLY").unwrap_or_default();
    let runs = |part: &str| only.is_empty() || only.split(',').any(|p| p.trim() == part);
    let mut static_figures = None;
    if runs("burst") {
        static_figures = Some(runtime.block_on(burst_part(burst))?);
    }
    if runs("memory") {
        runtime.block_on(memory_part(taskruns))?;
    }
    if runs("cloud") {
        runtime.block_on(cloud::cloud_part(cloud, static_figures))?;
    }
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn hosts() -> Vec<HostSpec> {
    (0..HOSTS)
        .map(|i| HostSpec::new(&format!("arm-{i}"), PLATFORM, CONCURRENCY as u32))
        .collect()
}

// ----- statistics -----

/// Nearest-rank percentile.
fn pct(samples: &[Duration], percent: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn row(label: &str, samples: &[Duration]) {
    println!(
        "  {label:<46} p50 {:>8.1} ms   p95 {:>8.1} ms   max {:>8.1} ms",
        ms(pct(samples, 50)),
        ms(pct(samples, 95)),
        ms(samples.iter().max().copied().unwrap_or_default())
    );
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ----- the floor -----

/// What the floor measured.
struct Floor {
    sequential_provision: Vec<Duration>,
    sequential_delete: Vec<Duration>,
    /// Burst start → user ready, per user.
    burst_ready: Vec<Duration>,
    /// The provisioning command alone, per user, with 40 running at once.
    burst_provision: Vec<Duration>,
    /// The userdel command alone, per user, with 40 running at once.
    burst_delete: Vec<Duration>,
    /// Burst start → last user deleted.
    burst_total: Duration,
}

fn run_floor(bed: &Testbed, users: usize, run: &str) -> Result<Floor, BoxError> {
    let masters = bed
        .hosts
        .iter()
        .map(|h| ControlMaster::start(&h.host))
        .collect::<Result<Vec<_>, _>>()?;
    let key = generate()?;
    let expires = SystemTime::now() + Duration::from_secs(3600);
    let line = |user: &UserName| -> Result<String, BoxError> {
        Ok(
            ProvisionRequest::new(user.clone(), key.public_key(), expires, &[])?
                .authorized_key()
                .to_owned(),
        )
    };
    // One user at a time on one host: the SSH benchmark's floor.
    let (mut sequential_provision, mut sequential_delete) = (Vec::new(), Vec::new());
    for i in 0..55 {
        let user = UserName::for_taskrun(&format!("floor-{run}-seq-{i}"), "bench");
        let provisioned = masters[0].provision(&user, &line(&user)?)?;
        let deleted = masters[0].delete(&user)?;
        if i >= 5 {
            sequential_provision.push(provisioned);
            sequential_delete.push(deleted);
        }
    }
    // The burst: users from one queue, 4 workers per host.
    let next = AtomicUsize::new(0);
    let done = Mutex::new(vec![
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        users
    ]);
    let started = Instant::now();
    std::thread::scope(|scope| -> Result<(), BoxError> {
        let workers: Vec<_> = (0..HOSTS * CONCURRENCY)
            .map(|w| {
                let (master, next, done, line) = (&masters[w % HOSTS], &next, &done, &line);
                scope.spawn(move || -> Result<(), BoxError> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= users {
                            return Ok(());
                        }
                        let user = UserName::for_taskrun(&format!("floor-{run}-{i}"), "bench");
                        let provision = master.provision(&user, &line(&user)?)?;
                        let ready = started.elapsed();
                        let delete = master.delete(&user)?;
                        done.lock().map_err(|_| "poisoned")?[i] = (ready, provision, delete);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().map_err(|_| "floor worker panicked")??;
        }
        Ok(())
    })?;
    let burst_total = started.elapsed();
    for h in &bed.hosts {
        let left = h.host.build_users()?;
        if !left.is_empty() {
            return Err(format!("the floor left users on {}: {left:?}", h.spec.name).into());
        }
    }
    let done = done.into_inner().map_err(|_| "poisoned")?;
    Ok(Floor {
        sequential_provision,
        sequential_delete,
        burst_ready: done.iter().map(|d| d.0).collect(),
        burst_provision: done.iter().map(|d| d.1).collect(),
        burst_delete: done.iter().map(|d| d.2).collect(),
        burst_total,
    })
}

impl Floor {
    fn print(&self, run: &str, burst: usize) {
        println!(
            "\nfloor, {run} (OpenSSH ControlMaster: bare useradd + authorized_keys, then userdel):"
        );
        row(
            "one user at a time: useradd + key",
            &self.sequential_provision,
        );
        row("one user at a time: userdel", &self.sequential_delete);
        row(
            &format!("{burst} at once, 40 workers: start -> user ready"),
            &self.burst_ready,
        );
        row("  useradd + key command, 40 at once", &self.burst_provision);
        row("  userdel command, 40 at once", &self.burst_delete);
        println!(
            "  {burst} users through 40 workers in {:.2} s: {:.1} users/s",
            self.burst_total.as_secs_f64(),
            burst as f64 / self.burst_total.as_secs_f64()
        );
    }
}

// ----- tracking TaskRuns through the controller -----

/// When things happened to one TaskRun, measured from the tracker's start.
#[derive(Clone, Debug, Default)]
struct Trace {
    eligible: Option<Duration>,
    /// A cloud platform's slot: the launch marks written, before the launch.
    launching: Option<Duration>,
    assigned: Option<Duration>,
    /// The assigned-host label's value (a cloud platform's: the instance id).
    host: Option<String>,
    secret: Option<Duration>,
    released: Option<Duration>,
    error: Option<String>,
}

/// Watches TaskRuns and Secrets, records when each step happened, and completes every
/// TaskRun the moment its Secret appears (as a build that takes no time).
struct Tracker {
    start: Instant,
    traces: Mutex<HashMap<String, Trace>>,
}

impl Tracker {
    async fn start(bed: &Testbed) -> Result<Arc<Tracker>, BoxError> {
        let tracker = Arc::new(Tracker {
            start: Instant::now(),
            traces: Mutex::new(HashMap::new()),
        });
        let client = bed.env().new_client().await?;
        let ns = bed.namespace().to_owned();
        let (synced_tx, mut synced_rx) = tokio::sync::mpsc::channel::<()>(2);
        // Secrets: record, then complete the TaskRun.
        {
            let (tracker, synced) = (Arc::clone(&tracker), synced_tx.clone());
            let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
            let taskruns =
                Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &taskrun_api_resource());
            tokio::spawn(async move {
                let mut events = watcher(secrets, watcher::Config::default()).boxed();
                while let Some(event) = events.next().await {
                    let secret = match event {
                        Ok(watcher::Event::InitDone) => {
                            let _ = synced.send(()).await;
                            continue;
                        }
                        Ok(watcher::Event::Apply(s)) => s,
                        _ => continue,
                    };
                    let Some(name) = secret
                        .metadata
                        .name
                        .as_deref()
                        .and_then(|n| n.strip_prefix(SECRET_PREFIX))
                    else {
                        continue;
                    };
                    let error = secret
                        .data
                        .as_ref()
                        .and_then(|d| d.get("error"))
                        .map(|e| String::from_utf8_lossy(&e.0).into_owned());
                    if tracker.secret_seen(name, error) {
                        let (taskruns, name) = (taskruns.clone(), name.to_owned());
                        tokio::spawn(async move {
                            let status = json!({"status": {
                                "completionTime": "2026-11-23T12:00:00Z",
                                "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}],
                            }});
                            if let Err(e) = taskruns
                                .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                                .await
                            {
                                eprintln!("completing {name} failed: {e}");
                            }
                        });
                    }
                }
            });
        }
        // TaskRuns: the assigned-host label, and the finalizer dropped after the Secret.
        {
            let (tracker, synced) = (Arc::clone(&tracker), synced_tx);
            let taskruns = Api::<TaskRunObject>::namespaced(client, &ns);
            tokio::spawn(async move {
                let mut events = watcher(taskruns, watcher::Config::default()).boxed();
                while let Some(event) = events.next().await {
                    match event {
                        Ok(watcher::Event::InitDone) => {
                            let _ = synced.send(()).await;
                        }
                        Ok(watcher::Event::Apply(tr)) => tracker.taskrun_seen(&tr),
                        _ => {}
                    }
                }
            });
        }
        for _ in 0..2 {
            synced_rx.recv().await.ok_or("a watch ended")?;
        }
        Ok(tracker)
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Trace>) -> T) -> T {
        let mut traces = self
            .traces
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut traces)
    }

    fn eligible(&self, name: &str, at: Duration) {
        self.with(|t| t.entry(name.to_owned()).or_default().eligible = Some(at));
    }

    /// Records the first sighting of a TaskRun's Secret; true if it is the first.
    fn secret_seen(&self, name: &str, error: Option<String>) -> bool {
        let now = self.now();
        self.with(|t| {
            let trace = t.entry(name.to_owned()).or_default();
            if trace.secret.is_some() {
                return false;
            }
            trace.secret = Some(now);
            trace.error = error;
            true
        })
    }

    fn taskrun_seen(&self, tr: &TaskRunObject) {
        let now = self.now();
        let Some(name) = tr.metadata.name.as_deref() else {
            return;
        };
        let labels = tr.metadata.labels.as_ref();
        let host = labels.and_then(|l| l.get(ASSIGNED_HOST_LABEL));
        let launching = labels.is_some_and(|l| l.contains_key(CLOUD_DYNAMIC_PLATFORM_LABEL));
        self.with(|t| {
            let trace = t.entry(name.to_owned()).or_default();
            if let (Some(host), None) = (host, &trace.assigned) {
                trace.assigned = Some(now);
                trace.host = Some(host.clone());
            }
            if launching && trace.launching.is_none() {
                trace.launching = Some(now);
            }
            if trace.secret.is_some() && !tr.has_finalizer() && trace.released.is_none() {
                trace.released = Some(now);
            }
        });
    }

    fn traces(&self, names: &[String]) -> Vec<Trace> {
        self.with(|t| {
            names
                .iter()
                .map(|n| t.get(n).cloned().unwrap_or_default())
                .collect()
        })
    }

    async fn wait_released(&self, names: &[String]) -> Result<(), BoxError> {
        let done = || {
            self.traces(names)
                .iter()
                .filter(|t| t.released.is_some())
                .count()
        };
        testbed::kube_sim::wait_until(PHASE_LIMIT, "every TaskRun released", || async {
            done() == names.len()
        })
        .await
        .map_err(|e| format!("{e} ({} of {} released)", done(), names.len()))?;
        let errors: Vec<String> = self
            .traces(names)
            .into_iter()
            .filter_map(|t| t.error)
            .collect();
        if let Some(first) = errors.first() {
            return Err(format!(
                "{} TaskRuns got an error Secret, e.g.: {first}",
                errors.len()
            )
            .into());
        }
        Ok(())
    }
}

/// Creates `names` (not yet eligible), then resolves them all as fast as the API takes
/// it, recording when each resolve was sent; waits until every one is released.
async fn wave(bed: &Testbed, tracker: &Tracker, names: &[String]) -> Result<(), BoxError> {
    stream::iter(names)
        .map(|name| bed.create_taskrun(name, PLATFORM))
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    stream::iter(names)
        .map(|name| async move {
            tracker.eligible(name, tracker.now());
            bed.resolve(name).await
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    tracker.wait_released(names).await
}

/// A measured wave: its traces and what it cost the machine.
struct Measured {
    /// The load average before the wave.
    load_before: String,
    /// The load average after it.
    load_after: String,
    /// CPU time the controller used during it.
    cpu_controller: Duration,
    /// CPU time kube-sim and this driver (one process) used during it.
    cpu_driver: Duration,
    /// Each TaskRun's marks.
    traces: Vec<Trace>,
}

/// Runs a [`wave`] of `names`, measuring the load and CPU time around it.
async fn measured_wave(
    bed: &Testbed,
    tracker: &Tracker,
    controller: &ControllerProcess,
    names: &[String],
) -> Result<Measured, BoxError> {
    let load_before = load_average();
    let (controller_before, driver_before) =
        (controller.cpu_time()?, cpu_time(std::process::id())?);
    wave(bed, tracker, names).await?;
    let cpu_controller = controller.cpu_time()?.saturating_sub(controller_before);
    let cpu_driver = cpu_time(std::process::id())?.saturating_sub(driver_before);
    Ok(Measured {
        load_before,
        load_after: load_average(),
        cpu_controller,
        cpu_driver,
        traces: tracker.traces(names),
    })
}

/// The burst part's p50s that the cloud part compares with (the static-host figures).
#[derive(Clone, Copy, Debug)]
struct StaticFigures {
    /// The first TaskRuns served (a slot at once): eligible -> Secret.
    first_slots: Duration,
    /// Assigned-host label -> Secret: the work per TaskRun once it has a slot.
    assigned_to_secret: Duration,
}

/// Runs the burst; returns its static-host figures.
async fn burst_part(burst: usize) -> Result<StaticFigures, BoxError> {
    let bed = Testbed::start("bench-burst", hosts()).await?;
    let floor_before = tokio::task::block_in_place(|| run_floor(&bed, burst, "a"))?;

    let mut controller = bed.spawn_controller_process(CONTROLLER.as_ref(), &[])?;
    controller.wait_ready(Duration::from_secs(60)).await?;
    let tracker = Tracker::start(&bed).await?;
    // Warm-up: every slot used once (probes done, SSH connections open).
    let warmup: Vec<String> = (0..HOSTS * CONCURRENCY)
        .map(|i| format!("warmup-{i:03}"))
        .collect();
    wave(&bed, &tracker, &warmup).await?;
    let idle = controller.memory()?;

    let names: Vec<String> = (0..burst).map(|i| format!("burst-{i:04}")).collect();
    let Measured {
        load_before,
        load_after,
        cpu_controller,
        cpu_driver,
        traces,
    } = measured_wave(&bed, &tracker, &controller, &names).await?;
    let after_burst = controller.memory()?;
    controller.stop(Duration::from_secs(30)).await?;
    let leftover: usize = bed
        .hosts
        .iter()
        .map(|h| h.host.build_users().map(|u| u.len()))
        .sum::<Result<usize, _>>()?;
    if leftover > 0 {
        return Err(format!("{leftover} build users left on the hosts after the burst").into());
    }
    let floor_after = tokio::task::block_in_place(|| run_floor(&bed, burst, "b"))?;

    let get = |t: &Trace, f: fn(&Trace) -> Option<Duration>| f(t).unwrap_or_default();
    let span = |from: fn(&Trace) -> Option<Duration>, to: fn(&Trace) -> Option<Duration>| {
        traces
            .iter()
            .map(|t| get(t, to).saturating_sub(get(t, from)))
            .collect::<Vec<_>>()
    };
    let eligible_to_secret = span(|t| t.eligible, |t| t.secret);
    let assigned_to_secret = span(|t| t.assigned, |t| t.secret);
    let eligible_to_assigned = span(|t| t.eligible, |t| t.assigned);
    let secret_to_released = span(|t| t.secret, |t| t.released);
    let first_eligible = traces
        .iter()
        .filter_map(|t| t.eligible)
        .min()
        .unwrap_or_default();
    let last_eligible = traces
        .iter()
        .filter_map(|t| t.eligible)
        .max()
        .unwrap_or_default();
    let last_secret = traces
        .iter()
        .filter_map(|t| t.secret)
        .max()
        .unwrap_or_default();
    let last_released = traces
        .iter()
        .filter_map(|t| t.released)
        .max()
        .unwrap_or_default();
    let mut by_assignment: Vec<&Trace> = traces.iter().collect();
    by_assignment.sort_by_key(|t| t.assigned);
    let first_slots: Vec<Duration> = by_assignment
        .iter()
        .take(HOSTS * CONCURRENCY)
        .map(|t| get(t, |t| t.secret).saturating_sub(get(t, |t| t.eligible)))
        .collect();
    let serve = last_secret.saturating_sub(first_eligible);
    let release = last_released.saturating_sub(first_eligible);

    floor_before.print("before the controller", burst);
    println!(
        "\ncontroller: {burst} TaskRuns eligible at once (resolves sent within {:.0} ms; load average {load_before}):",
        ms(last_eligible.saturating_sub(first_eligible))
    );
    row(
        "eligible -> Secret written (incl. queueing)",
        &eligible_to_secret,
    );
    row("eligible -> assigned-host label", &eligible_to_assigned);
    row(
        "assigned-host label -> Secret (work per slot)",
        &assigned_to_secret,
    );
    row(
        &format!("first {} served: eligible -> Secret", first_slots.len()),
        &first_slots,
    );
    row(
        "Secret -> released (completed at once)",
        &secret_to_released,
    );
    println!(
        "  served {burst} in {:.2} s: {:.1} TaskRuns/s (first eligible -> last Secret); all released after {:.2} s",
        serve.as_secs_f64(),
        burst as f64 / serve.as_secs_f64(),
        release.as_secs_f64()
    );
    println!(
        "  CPU used: controller {:.1} s ({:.1} ms per TaskRun), kube-sim + this driver {:.1} s; load average after {load_after}",
        cpu_controller.as_secs_f64(),
        ms(cpu_controller) / burst as f64,
        cpu_driver.as_secs_f64()
    );
    println!(
        "  controller RSS: {:.1} MiB idle after warm-up (40 TaskRuns served), peak {:.1} MiB after the burst",
        mib(idle.rss_kib),
        mib(after_burst.peak_rss_kib)
    );
    floor_after.print("after the controller", burst);

    // Against the faster floor run: the conservative ratio.
    let floor_p50 = pct(&floor_before.burst_ready, 50).min(pct(&floor_after.burst_ready, 50));
    let floor_op =
        pct(&floor_before.burst_provision, 50).min(pct(&floor_after.burst_provision, 50));
    let floor_total = floor_before.burst_total.min(floor_after.burst_total);
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!("\ncontroller vs the faster floor run:");
    println!(
        "  p50 eligible -> Secret / floor p50 start -> user ready: {:.2}x (goal <= 2x)",
        ratio(pct(&eligible_to_secret, 50), floor_p50)
    );
    println!(
        "  p50 assigned -> Secret / floor p50 useradd + key command, 40 at once: {:.2}x",
        ratio(pct(&assigned_to_secret, 50), floor_op)
    );
    println!(
        "  burst duration / floor burst duration: {:.2}x",
        ratio(release, floor_total)
    );
    bed.cleanup().await;
    Ok(StaticFigures {
        first_slots: pct(&first_slots, 50),
        assigned_to_secret: pct(&assigned_to_secret, 50),
    })
}

// ----- memory with 10 000 TaskRuns -----

/// A script as long as a real build step's (what Tekton copies into `status.taskSpec`).
fn step_script(i: usize) -> String {
    let mut script = format!("#!/bin/bash\nset -euo pipefail\n# step {i}\n");
    while script.len() < 1500 {
        script.push_str(
            "buildah bud --tls-verify=true --no-cache --ulimit nofile=4096:4096 -f Containerfile -t \"$IMAGE\" .\n",
        );
    }
    script
}

/// A TaskRun as Tekton leaves it: `kind` is what makes it ours or not.
#[derive(Clone, Copy)]
enum Kind {
    /// A multi-platform build that ran and was released long ago.
    Finished,
    /// A TaskRun that has nothing to do with us (no PLATFORM), running or finished.
    Other { finished: bool },
    /// A multi-platform build that wants a host now.
    Eligible,
}

fn big_taskrun(name: &str, kind: Kind) -> (serde_json::Value, serde_json::Value) {
    let multi = !matches!(kind, Kind::Other { .. });
    let mut params = vec![
        json!({"name": "IMAGE", "value": format!("quay.io/example/{name}:latest")}),
        json!({"name": "DOCKERFILE", "value": "./Containerfile"}),
        json!({"name": "CONTEXT", "value": "."}),
        json!({"name": "COMMIT_SHA", "value": "0123456789abcdef0123456789abcdef01234567"}),
    ];
    let mut labels = json!({
        "tekton.dev/pipelineRun": format!("{name}-pr"),
        "tekton.dev/task": "buildah-remote",
        "appstudio.openshift.io/application": "bench-app",
    });
    let mut volumes = vec![json!({"name": "varlibcontainers", "emptyDir": {}})];
    if multi {
        params.push(json!({"name": "PLATFORM", "value": PLATFORM}));
        volumes.push(json!({"name": "ssh", "secret": {"secretName": secret_name(name)}}));
        labels[TARGET_PLATFORM_LABEL] = json!("linux-arm64");
    }
    let object = json!({
        "apiVersion": "tekton.dev/v1", "kind": "TaskRun",
        "metadata": {"name": name, "labels": labels,
                     "annotations": {"pipelinesascode.tekton.dev/on-event": "[push]",
                                     "build.appstudio.openshift.io/repo": "https://github.com/example/app?rev=0123456789abcdef"}},
        "spec": {
            "params": params,
            "taskRef": {"resolver": "bundles", "params": [
                {"name": "bundle", "value": "quay.io/konflux-ci/tekton-catalog/task-buildah-remote:0.4@sha256:0123456789abcdef"},
                {"name": "name", "value": "buildah-remote"}, {"name": "kind", "value": "task"}]},
            "serviceAccountName": "build-pipeline-bench-app",
            "timeout": "2h0m0s",
            "workspaces": [{"name": "source", "persistentVolumeClaim": {"claimName": format!("{name}-pvc")}}],
        },
    });
    let finished = matches!(kind, Kind::Finished | Kind::Other { finished: true });
    let steps: Vec<_> = (0..4)
        .map(|i| json!({"name": format!("step-{i}"), "image": "quay.io/konflux-ci/buildah-task:latest",
                        "script": step_script(i), "computeResources": {"limits": {"memory": "4Gi"}}}))
        .collect();
    let condition = if finished {
        json!({"type": "Succeeded", "status": "True", "reason": "Succeeded", "message": "All Steps have completed executing"})
    } else {
        json!({"type": "Succeeded", "status": "Unknown", "reason": "Running", "message": "Not all Steps in the Task have finished executing"})
    };
    let mut status = json!({"status": {
        "podName": format!("{name}-pod"),
        "startTime": "2026-11-23T11:00:00Z",
        "conditions": [condition],
        "taskSpec": {"params": [{"name": "IMAGE", "type": "string"}, {"name": "PLATFORM", "type": "string"}],
                     "steps": steps, "volumes": volumes},
        "steps": (0..4).map(|i| json!({"name": format!("step-{i}"), "container": format!("step-step-{i}"),
                                       "imageID": "quay.io/konflux-ci/buildah-task@sha256:0123456789abcdef0123456789abcdef",
                                       "terminated": {"exitCode": 0, "reason": "Completed"}})).collect::<Vec<_>>(),
        "results": [{"name": "IMAGE_DIGEST", "type": "string", "value": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
                    {"name": "IMAGE_URL", "type": "string", "value": format!("quay.io/example/{name}:latest")}],
        "provenance": {"featureFlags": {"enableAPIFields": "beta", "runningInEnvWithInjectedSidecars": true}},
    }});
    if finished {
        status["status"]["completionTime"] = json!("2026-11-23T11:30:00Z");
    }
    (object, status)
}

async fn memory_part(total: usize) -> Result<(), BoxError> {
    let bed = Testbed::start("bench-memory", hosts()).await?;
    let api = Api::<DynamicObject>::namespaced_with(
        bed.client(),
        bed.namespace(),
        &taskrun_api_resource(),
    );
    let eligible = total / 10;
    let others = total * 3 / 10;
    let finished = total - eligible - others;
    let kinds: Vec<(String, Kind)> = (0..total)
        .map(|i| {
            let kind = if i < finished {
                Kind::Finished
            } else if i < finished + others {
                Kind::Other {
                    finished: i % 2 == 0,
                }
            } else {
                Kind::Eligible
            };
            (format!("tr-{i:05}"), kind)
        })
        .collect();
    let started = Instant::now();
    let mut bytes = 0usize;
    let results: Vec<Result<usize, kube::Error>> = stream::iter(&kinds)
        .map(|(name, kind)| {
            let api = api.clone();
            async move {
                let (object, status) = big_taskrun(name, *kind);
                let size = object.to_string().len() + status.to_string().len();
                let object: DynamicObject =
                    serde_json::from_value(object).map_err(kube::Error::SerdeError)?;
                api.create(&PostParams::default(), &object).await?;
                api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
                    .await?;
                Ok(size)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for r in results {
        bytes += r?;
    }
    println!(
        "\nmemory: {total} TaskRuns created in {:.1} s ({:.1} MB of JSON, {:.1} KB each): {finished} finished multi-platform, {others} without PLATFORM, {eligible} eligible {PLATFORM}",
        started.elapsed().as_secs_f64(),
        bytes as f64 / 1e6,
        bytes as f64 / total as f64 / 1e3
    );

    let mut controller = bed.spawn_controller_process(CONTROLLER.as_ref(), &[])?;
    let started = Instant::now();
    controller.wait_ready(Duration::from_secs(120)).await?;
    let ready = started.elapsed();
    let slots = HOSTS * CONCURRENCY;
    let running = |bed: &Testbed| {
        let bed = bed.client();
        let ns = bed.default_namespace().to_owned();
        async move {
            let secrets = Api::<Secret>::namespaced(bed.clone(), &ns)
                .list(&ListParams::default())
                .await
                .ok()?;
            let access: Vec<String> = secrets
                .items
                .iter()
                .filter_map(|s| {
                    s.metadata
                        .name
                        .as_deref()?
                        .strip_prefix(SECRET_PREFIX)
                        .map(str::to_owned)
                })
                .collect();
            let waiting = Api::<DynamicObject>::namespaced_with(bed, &ns, &taskrun_api_resource())
                .list_metadata(&ListParams::default().labels(WAITING_FOR_PLATFORM_LABEL))
                .await
                .ok()?
                .items
                .len();
            Some((access, waiting))
        }
    };
    let settled = |want_running: usize, want_waiting: usize| {
        let running = &running;
        let bed = &bed;
        async move {
            testbed::kube_sim::wait_for(
                PHASE_LIMIT,
                "slots full and the queue labelled",
                || async {
                    running(bed)
                        .await
                        .filter(|(access, waiting)| {
                            access.len() == want_running && *waiting == want_waiting
                        })
                        .map(|(access, _)| access)
                },
            )
            .await
        }
    };
    let mut waiting = eligible.saturating_sub(slots);
    let mut served = settled(eligible.min(slots), waiting).await?;
    let first_served = started.elapsed();
    let at_start = controller.memory()?;
    let mut rounds = 0;
    while rounds < 3 && waiting > 0 {
        rounds += 1;
        for name in &served {
            bed.complete(name, true).await?;
        }
        let next = waiting.min(slots);
        waiting -= next;
        let previous = served.clone();
        served = testbed::kube_sim::wait_for(PHASE_LIMIT, "the next waiters served", || async {
            running(&bed)
                .await
                .filter(|(access, now_waiting)| {
                    access.len() == next
                        && *now_waiting == waiting
                        && access.iter().all(|a| !previous.contains(a))
                })
                .map(|(access, _)| access)
        })
        .await?;
    }
    let end = controller.memory()?;
    controller.stop(Duration::from_secs(30)).await?;
    println!(
        "  controller ready after {:.2} s; {slots} running and {} waiting after {:.2} s; then {rounds} rounds of {slots} hand-overs",
        ready.as_secs_f64(),
        eligible - slots,
        first_served.as_secs_f64()
    );
    println!(
        "  controller RSS: {:.1} MiB once the first {slots} were served; {:.1} MiB at the end; peak (VmHWM) {:.1} MiB (goal < 100 MiB)",
        mib(at_start.rss_kib),
        mib(end.rss_kib),
        mib(end.peak_rss_kib)
    );
    bed.cleanup().await;
    Ok(())
}
