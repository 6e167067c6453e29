//! Load under API faults: 200 TaskRuns over 3 hosts × concurrency 4, finished in a
//! random (seeded) order — most completed, some deleted while they run — while kube-sim
//! fails a few percent of all writes with 500 or 409, delays requests, cuts watch
//! streams and forgets its change history (so resumed watches must re-list).
//! Throughout, each host's own user list is sampled and must never hold more build
//! users than the host's concurrency; every TaskRun must get a Secret whose key logs in;
//! at the end nothing may be left.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common_controller::Rng;
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube_sim::testenv::skip_on_real_cluster;
use kube_sim::{FaultConfig, wait_until};
use multi_platform_controller::naming::{SECRET_LABEL, SECRET_PREFIX, secret_keys};
use testbed::{HostSpec, Testbed, init_test_logging};

const TASKRUNS: usize = 200;
const HOSTS: [&str; 3] = ["s1", "s2", "s3"];
const CONCURRENCY: usize = 4;
const PLATFORM: &str = "linux/arm64";
const SEED: u64 = 0x5eed_0200;
/// TaskRuns Tekton creates at once, and logins checked at once.
const PARALLEL_CREATES: usize = 8;
const PARALLEL_LOGINS: usize = 4;
/// Deadline of the whole run (generous: the machine is shared).
const RUN_DEADLINE: Duration = Duration::from_secs(240);
/// One finished build in this many is deleted while it runs instead of completed.
const DELETE_ONE_IN: usize = 5;
/// How often kube-sim forgets its change history (an etcd compaction).
const COMPACT_EVERY: Duration = Duration::from_millis(100);

fn faults() -> FaultConfig {
    FaultConfig {
        seed: SEED,
        write_error_rate: 0.03,
        write_conflict_rate: 0.03,
        latency: Duration::from_millis(1),
        latency_jitter: Duration::from_millis(9),
        watch_cut_rate: 0.05,
        ..FaultConfig::default()
    }
}

/// What the sampler saw on the hosts.
#[derive(Debug, Default)]
struct Samples {
    rounds: usize,
    peak: BTreeMap<String, usize>,
}

/// Reads every host's `u-*` users (on the host itself, not through the controller)
/// until `stop`, recording the most seen at once; fails at the first over-full host.
async fn sample_hosts(bed: &Testbed, stop: &AtomicBool) -> Samples {
    let mut samples = Samples::default();
    while !stop.load(Ordering::Relaxed) {
        for host in HOSTS {
            let users = tokio::task::block_in_place(|| bed.users_on(host)).expect("users");
            assert!(
                users.len() <= CONCURRENCY,
                "{host} holds {} build users, more than its concurrency {CONCURRENCY}: {users:?}",
                users.len()
            );
            let peak = samples.peak.entry(host.to_owned()).or_default();
            *peak = (*peak).max(users.len());
        }
        samples.rounds += 1;
        // Pacing only (leave CPU to the controller); nothing waits on this.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    samples
}

/// Compacts kube-sim's history now and then, so watches cut by the faults resume into
/// 410 Gone and the controller must re-list (deletions then show only as absence).
async fn compact_history(bed: &Testbed, stop: &AtomicBool) -> usize {
    let mut compactions = 0;
    let Some(server) = bed.env().server() else {
        return 0;
    };
    while !stop.load(Ordering::Relaxed) {
        // Pacing only: the compactions are spread over the run.
        tokio::time::sleep(COMPACT_EVERY).await;
        server.compact();
        compactions += 1;
    }
    compactions
}

/// Plays Tekton: creates and resolves every TaskRun, a few at a time.
async fn create_all(bed: &Testbed, names: &[String]) {
    stream::iter(names)
        .for_each_concurrent(PARALLEL_CREATES, |name| async move {
            bed.retry("create a TaskRun", || bed.create_taskrun(name, PLATFORM))
                .await
                .expect("create");
            bed.retry("resolve a TaskRun", || bed.resolve(name))
                .await
                .expect("resolve");
        })
        .await;
}

/// The per-TaskRun Secrets in the namespace, by TaskRun name.
async fn taskrun_secrets(bed: &Testbed) -> BTreeMap<String, Secret> {
    Api::<Secret>::namespaced(bed.client(), bed.namespace())
        .list(&ListParams::default().labels(SECRET_LABEL))
        .await
        .map(|list| list.items)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| {
            let tr = s
                .metadata
                .name
                .as_deref()?
                .strip_prefix(SECRET_PREFIX)?
                .to_owned();
            Some((tr, s))
        })
        .collect()
}

/// What the builds did.
#[derive(Debug, Default)]
struct Served {
    /// TaskRuns that got a working Secret.
    served: BTreeSet<String>,
    /// TaskRuns deleted while they ran.
    deleted: BTreeSet<String>,
}

/// Plays the builds: as Secrets appear, logs in with each, then finishes a random
/// share of the running builds in random order (a user deletes some of them instead),
/// until every TaskRun is done.
async fn serve_all(bed: &Testbed, names: &[String], rng: &mut Rng) -> Served {
    let started = Instant::now();
    let mut served = BTreeSet::new();
    let mut deleted = BTreeSet::new();
    let mut running: Vec<String> = Vec::new();
    let mut completed = 0;
    while completed < names.len() {
        assert!(
            started.elapsed() < RUN_DEADLINE,
            "only {} of {TASKRUNS} TaskRuns served and {completed} completed after {RUN_DEADLINE:?}",
            served.len()
        );
        let fresh: Vec<(String, Secret)> = taskrun_secrets(bed)
            .await
            .into_iter()
            .filter(|(name, _)| !served.contains(name))
            .collect();
        if fresh.is_empty() && running.is_empty() {
            // Nothing to do until the controller writes the next Secret.
            wait_until(RUN_DEADLINE, "a new Secret", || async {
                taskrun_secrets(bed)
                    .await
                    .keys()
                    .any(|name| !served.contains(name))
            })
            .await
            .expect("the controller keeps serving");
            continue;
        }
        for (name, secret) in &fresh {
            let data = secret.data.as_ref().expect("Secret data");
            if let Some(error) = data.get(secret_keys::ERROR) {
                panic!(
                    "{name} got an error Secret: {}",
                    String::from_utf8_lossy(&error.0)
                );
            }
        }
        stream::iter(&fresh)
            .for_each_concurrent(PARALLEL_LOGINS, |(name, _)| async move {
                let out = bed.ssh_as_task(name, "true").await.expect("ssh");
                assert!(out.success(), "{name}: login failed: {}", out.stderr);
            })
            .await;
        for (name, _) in fresh {
            served.insert(name.clone());
            running.push(name);
        }
        // Finish about half of what runs, in random order: later arrivals often finish
        // before earlier ones, as real builds do.
        rng.shuffle(&mut running);
        let finishing = 1 + rng.below(running.len().div_ceil(2));
        let done: Vec<(String, bool)> = running
            .drain(..finishing)
            .map(|name| (name, rng.below(DELETE_ONE_IN) == 0))
            .collect();
        stream::iter(&done)
            .for_each_concurrent(PARALLEL_CREATES, |(name, delete)| async move {
                if *delete {
                    bed.retry("delete a TaskRun", || bed.delete(name))
                        .await
                        .expect("delete");
                } else {
                    bed.retry("complete a TaskRun", || bed.complete(name, true))
                        .await
                        .expect("complete");
                }
            })
            .await;
        completed += done.len();
        deleted.extend(done.into_iter().filter(|(_, d)| *d).map(|(n, _)| n));
    }
    Served { served, deleted }
}

/// Nothing of the controller's is left: no build users, no Secrets, no finalizers,
/// no labels of ours, and deleted TaskRuns are gone.
async fn nothing_left(bed: &Testbed, names: &[String], deleted: &BTreeSet<String>) -> bool {
    for host in HOSTS {
        if !bed.users_on(host).map(|u| u.is_empty()).unwrap_or(false) {
            return false;
        }
    }
    if !taskrun_secrets(bed).await.is_empty() {
        return false;
    }
    for name in names {
        match bed.taskrun(name).await {
            Ok(None) if deleted.contains(name) => {}
            Ok(Some(tr))
                if !deleted.contains(name)
                    && !tr.has_finalizer()
                    && tr.assigned_host().is_none()
                    && !tr.is_waiting() => {}
            _ => return false,
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_taskruns_under_api_faults_never_overfill_a_host_and_leave_nothing() {
    init_test_logging();
    let specs = HOSTS
        .iter()
        .map(|h| HostSpec::new(h, PLATFORM, CONCURRENCY as u32))
        .collect();
    let mut bed = Testbed::start("scale", specs).await.expect("test bed");
    bed.set_wait(Duration::from_secs(120));
    match bed.env().faults() {
        Some(f) => f.set(faults()),
        None => skip_on_real_cluster(
            "controller_scale fault injection",
            "the load runs without injected API faults",
        ),
    }
    let began = Instant::now();
    bed.start_controller(bed.settings())
        .await
        .expect("controller");

    let names: Vec<String> = (0..TASKRUNS).map(|i| format!("load-{i:03}")).collect();
    let stop = AtomicBool::new(false);
    let mut rng = Rng::new(SEED);
    let work = async {
        let ((), done) = tokio::join!(create_all(&bed, &names), serve_all(&bed, &names, &mut rng));
        wait_until(Duration::from_secs(120), "nothing left behind", || {
            nothing_left(&bed, &names, &done.deleted)
        })
        .await
        .expect("everything released");
        stop.store(true, Ordering::Relaxed);
        done
    };
    let (done, samples, compactions) = tokio::join!(
        work,
        sample_hosts(&bed, &stop),
        compact_history(&bed, &stop)
    );

    assert_eq!(
        done.served.len(),
        TASKRUNS,
        "every TaskRun got a working Secret"
    );
    assert!(
        !done.deleted.is_empty(),
        "some TaskRuns were deleted while running"
    );
    assert!(samples.rounds >= 10, "the hosts were sampled: {samples:?}");
    assert!(
        samples.peak.values().any(|&p| p == CONCURRENCY),
        "the load filled a host at least once: {samples:?}"
    );
    if let Some(f) = bed.env().faults() {
        let stats = f.stats();
        assert!(
            stats.write_errors > 0 && stats.write_conflicts > 0 && stats.watches_cut > 0,
            "faults were injected: {stats:?}"
        );
        assert!(compactions > 0, "kube-sim history was compacted");
        eprintln!("injected faults: {stats:?}; {compactions} compactions");
        f.clear();
    }
    eprintln!(
        "{TASKRUNS} TaskRuns served and released ({} deleted while running) in {:?}; host \
         samples: {samples:?}",
        done.deleted.len(),
        began.elapsed()
    );
    bed.cleanup().await;
}
