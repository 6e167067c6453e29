//! Two controller replicas with leader election against kube-sim (or a real cluster)
//! and real sshd build hosts: only the leader allocates; a crashed leader is replaced
//! once its Lease expires, a stopped one hands the Lease over at once, and a leader cut
//! off from the API stops acting before anyone else can take over. Throughout, no host
//! ever holds more build users than its concurrency and nothing leaks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube_sim::testenv::skip_on_real_cluster;
use kube_sim::wait_until;
use mpc_core::naming::secret_name;
use multi_platform_controller::controller::RunSettings;
use multi_platform_controller::controller::leader::LeaderElection;
use multi_platform_controller::server::Health;
use testbed::{HostSpec, Issued, Testbed, init_test_logging};

const PLATFORM: &str = "linux/arm64";
/// Deadline of the waits in this file: generous for a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(40);

/// Test settings of replica `identity`: short leases, so a takeover takes seconds.
fn replica(bed: &Testbed, identity: &str, lease: Duration, grace: Duration) -> RunSettings {
    let mut settings = bed.settings();
    let mut election = LeaderElection::new(identity);
    election.lease_duration = lease;
    election.renew_grace = grace;
    settings.leader_election = Some(election);
    settings.instance = identity.to_owned();
    settings
}

async fn wait_holder(bed: &Testbed, identity: &str) {
    wait_until(WAIT, &format!("{identity} holds the Lease"), || async {
        bed.lease_holder().await.ok().flatten().as_deref() == Some(identity)
    })
    .await
    .expect("Lease holder");
}

async fn wait_ready(health: &Health, what: &str) {
    wait_until(WAIT, what, || async { health.is_ready() })
        .await
        .expect("ready");
}

/// Every Event in the test namespace: (reporting instance, reason, TaskRun, time).
async fn events(bed: &Testbed) -> Vec<(String, String, String, SystemTime)> {
    let api = Api::<Event>::namespaced(bed.client(), bed.namespace());
    api.list(&ListParams::default())
        .await
        .expect("list Events")
        .items
        .into_iter()
        .map(|e| {
            let at = e
                .event_time
                .map(|t| SystemTime::from(t.0))
                .unwrap_or(SystemTime::UNIX_EPOCH);
            (
                e.reporting_instance.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.regarding.and_then(|r| r.name).unwrap_or_default(),
                at,
            )
        })
        .collect()
}

/// Samples which replicas believe they lead, until stopped.
struct LeaderSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(bool, bool)>>,
}

impl LeaderSampler {
    fn start(a: Arc<Health>, b: Arc<Health>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = Arc::clone(&stop);
            async move {
                let mut samples = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    samples.push((a.is_leader(), b.is_leader()));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                samples
            }
        });
        LeaderSampler { stop, task }
    }

    async fn finish(self) -> Vec<(bool, bool)> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("sampler")
    }
}

/// Plays Tekton for a burst: every TaskRun whose access Secret appears is run (the
/// first few log in over SSH) and completed. Returns once `stop_after` TaskRuns were
/// completed in total, or all of them.
async fn drive(
    bed: &Testbed,
    names: &[String],
    completed: &mut BTreeSet<String>,
    stop_after: usize,
) {
    let secrets = Api::<Secret>::namespaced(bed.client(), bed.namespace());
    let wanted: BTreeMap<String, &String> = names.iter().map(|n| (secret_name(n), n)).collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    while completed.len() < stop_after.min(names.len()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {} TaskRuns were served in time",
            completed.len(),
            names.len()
        );
        let list = secrets
            .list(&ListParams::default())
            .await
            .expect("list Secrets");
        for secret in list.items {
            let Some(name) = secret.metadata.name.as_ref().and_then(|s| wanted.get(s)) else {
                continue;
            };
            if completed.contains(*name) {
                continue;
            }
            let access = bed.wait_for_secret(name).await.expect("Secret");
            assert!(
                matches!(access, Issued::Access { .. }),
                "{name}: {access:?}"
            );
            if completed.len().is_multiple_of(10) {
                let out = bed.ssh(&access, "id -un").expect("ssh");
                assert!(out.success(), "{name}: login failed: {}", out.stderr);
            }
            bed.complete(name, true).await.expect("complete");
            completed.insert((*name).clone());
            if completed.len() >= stop_after {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn assert_nothing_left(bed: &Testbed, names: &[String]) {
    for name in names {
        bed.wait_released(name).await.expect("released");
    }
    for host in &bed.hosts {
        assert!(
            bed.users_on(&host.spec.name).unwrap().is_empty(),
            "users left on {}",
            host.spec.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leader_is_replaced_mid_burst_without_overfilling_a_host() {
    init_test_logging();
    let specs = vec![
        HostSpec::new("h1", PLATFORM, 3),
        HostSpec::new("h2", PLATFORM, 3),
        HostSpec::new("h3", PLATFORM, 2),
    ];
    let mut bed = Testbed::start("leader-crash", specs)
        .await
        .expect("test bed");
    let (lease, grace) = (Duration::from_secs(3), Duration::from_secs(1));
    let a = bed
        .start_controller(replica(&bed, "ctrl-a", lease, grace))
        .await
        .expect("controller a");
    wait_holder(&bed, "ctrl-a").await;
    let b = bed
        .start_controller(replica(&bed, "ctrl-b", lease, grace))
        .await
        .expect("controller b");
    let (health_a, health_b) = (
        Arc::clone(&bed.controller(a).health),
        Arc::clone(&bed.controller(b).health),
    );
    wait_ready(&health_a, "ctrl-a ready").await;
    wait_ready(&health_b, "ctrl-b ready (as standby)").await;

    let capacity = bed.watch_capacity();
    let leaders = LeaderSampler::start(Arc::clone(&health_a), Arc::clone(&health_b));
    let names: Vec<String> = (0..30).map(|i| format!("burst-{i:02}")).collect();
    futures::future::try_join_all(names.iter().map(|n| bed.submit(n, PLATFORM)))
        .await
        .expect("submit");

    let mut completed = BTreeSet::new();
    drive(&bed, &names, &mut completed, 10).await;
    // The standby wrote nothing and counted nothing while the leader served.
    let standby_metrics = bed.controller(b).metrics.encode();
    assert!(
        !standby_metrics.contains("provisioning_successes{"),
        "the standby provisioned:\n{standby_metrics}"
    );
    let samples = leaders.finish().await;
    assert!(
        samples.len() > 10,
        "too few leader samples: {}",
        samples.len()
    );
    assert!(
        samples.iter().all(|&(a, b)| a && !b),
        "ctrl-a must lead and ctrl-b stand by the whole time before the crash"
    );

    // Crash the leader in the middle of the burst.
    let crashed_at = SystemTime::now();
    bed.kill_controller(a).await;
    // A task of the killed controller may finish the step it was in (abort takes
    // effect at its next await): a second of slack for that.
    let dead_by = SystemTime::now() + Duration::from_secs(1);
    wait_holder(&bed, "ctrl-b").await;
    drive(&bed, &names, &mut completed, names.len()).await;
    assert_nothing_left(&bed, &names).await;
    let report = capacity.finish();
    assert!(report.samples > 100, "too few capacity samples: {report:?}");
    assert!(
        report.violations.is_empty(),
        "a host held more users than its concurrency: {:?}",
        report.violations
    );
    assert!(
        report.max_users.values().any(|&n| n >= 2),
        "the burst never filled a host: {report:?}"
    );

    // Each Event came from the replica that led at the time.
    let events = events(&bed).await;
    let from = |who: &'static str| events.iter().filter(move |e| e.0 == who);
    assert!(from("ctrl-a").count() > 0, "ctrl-a published no Event");
    assert!(from("ctrl-b").count() > 0, "ctrl-b published no Event");
    assert!(
        from("ctrl-b").all(|e| e.3 >= crashed_at),
        "the standby published an Event before the crash: {:?}",
        from("ctrl-b")
            .filter(|e| e.3 < crashed_at)
            .collect::<Vec<_>>()
    );
    assert!(
        from("ctrl-a").all(|e| e.3 <= dead_by),
        "the crashed leader published after its crash"
    );
    let released: BTreeSet<&str> = events
        .iter()
        .filter(|e| e.1 == "Released")
        .map(|e| e.2.as_str())
        .collect();
    assert_eq!(
        released.len(),
        names.len(),
        "one Released Event per TaskRun"
    );
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_leader_hands_the_lease_over_at_once() {
    init_test_logging();
    let mut bed = Testbed::start("leader-stop", vec![HostSpec::new("h1", PLATFORM, 2)])
        .await
        .expect("test bed");
    // Leases far longer than the test waits: only a release lets the standby in.
    let (lease, grace) = (Duration::from_secs(120), Duration::from_secs(40));
    let a = bed
        .start_controller(replica(&bed, "ctrl-a", lease, grace))
        .await
        .expect("controller a");
    wait_holder(&bed, "ctrl-a").await;
    let b = bed
        .start_controller(replica(&bed, "ctrl-b", lease, grace))
        .await
        .expect("controller b");
    wait_ready(&bed.controller(b).health, "ctrl-b ready (as standby)").await;
    assert!(!bed.controller(b).health.is_leader());

    bed.submit("before-stop", PLATFORM).await.expect("TaskRun");
    let access = bed.wait_for_secret("before-stop").await.expect("Secret");
    assert!(matches!(access, Issued::Access { .. }), "{access:?}");

    bed.stop_controller(a).await;
    let holder = bed.lease_holder().await.expect("Lease");
    assert_ne!(
        holder.as_deref(),
        Some("ctrl-a"),
        "a stopped leader must release its Lease"
    );
    wait_holder(&bed, "ctrl-b").await;
    assert!(bed.controller(b).health.is_leader());

    // The new leader adopted the running TaskRun and serves new ones.
    bed.complete("before-stop", true).await.expect("complete");
    bed.wait_released("before-stop").await.expect("released");
    bed.submit("after-stop", PLATFORM).await.expect("TaskRun");
    let access = bed.wait_for_secret("after-stop").await.expect("Secret");
    let out = bed.ssh(&access, "true").expect("ssh");
    assert!(out.success(), "{}", out.stderr);
    bed.complete("after-stop", true).await.expect("complete");
    bed.wait_released("after-stop").await.expect("released");
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_api_stops_before_another_takes_over() {
    init_test_logging();
    let mut bed = Testbed::start("leader-outage", vec![HostSpec::new("h1", PLATFORM, 3)])
        .await
        .expect("test bed");
    if !bed.env().is_kube_sim() {
        skip_on_real_cluster(
            "a_leader_cut_off_from_the_api_stops_before_another_takes_over",
            "the outage is a relay in front of kube-sim",
        );
        bed.cleanup().await;
        return;
    }
    let (lease, grace) = (Duration::from_secs(3), Duration::from_secs(1));
    let link = bed.api_link().await.expect("relay");
    let mut settings_a = replica(&bed, "ctrl-a", lease, grace);
    // A reaper that would remove, within a second, any user it does not know about.
    settings_a.reap_interval = Duration::from_secs(1);
    let client_a = link.client(bed.namespace()).expect("client");
    let a = bed
        .start_controller_with_client(settings_a, client_a)
        .await
        .expect("controller a");
    wait_holder(&bed, "ctrl-a").await;
    let b = bed
        .start_controller(replica(&bed, "ctrl-b", lease, grace))
        .await
        .expect("controller b");
    let (health_a, health_b) = (
        Arc::clone(&bed.controller(a).health),
        Arc::clone(&bed.controller(b).health),
    );
    wait_ready(&health_b, "ctrl-b ready (as standby)").await;
    bed.submit("before-outage", PLATFORM)
        .await
        .expect("TaskRun");
    let first = bed.wait_for_secret("before-outage").await.expect("Secret");
    assert!(matches!(first, Issued::Access { .. }), "{first:?}");

    // Watch, from outside, whether the old leader still believes it leads once the
    // Lease names another holder.
    let overlap = Arc::new(AtomicU64::new(0));
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = tokio::spawn({
        let (overlap, watching) = (Arc::clone(&overlap), Arc::clone(&watching));
        let (client, ns) = (bed.client(), bed.namespace().to_owned());
        let health_a = Arc::clone(&health_a);
        async move {
            let leases = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client, &ns);
            while watching.load(Ordering::Relaxed) {
                let believes = health_a.is_leader();
                let holder = leases
                    .get_opt(mpc_core::naming::LEASE_NAME)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|l| l.spec)
                    .and_then(|s| s.holder_identity);
                if believes && holder.as_deref() == Some("ctrl-b") && health_a.is_leader() {
                    overlap.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });

    link.cut();
    wait_holder(&bed, "ctrl-b").await;
    assert!(
        !health_a.is_leader(),
        "the leader cut off from the API still acts after its Lease went to another"
    );
    // The new leader serves a new TaskRun; the old one (still reaching the host, with
    // a stale view) must not touch its user.
    bed.submit("during-outage", PLATFORM)
        .await
        .expect("TaskRun");
    let second = bed.wait_for_secret("during-outage").await.expect("Secret");
    let soak = tokio::time::Instant::now() + Duration::from_secs(4);
    while tokio::time::Instant::now() < soak {
        let out = bed.ssh(&second, "true").expect("ssh");
        assert!(
            out.success(),
            "the new leader's build user was removed during the outage: {}",
            out.stderr
        );
    }
    watching.store(false, Ordering::Relaxed);
    watcher.await.expect("watcher");
    assert_eq!(
        overlap.load(Ordering::Relaxed),
        0,
        "the old leader believed it led while the Lease named ctrl-b"
    );

    // The link comes back: the old leader stays a standby; everything is released.
    link.restore();
    for name in ["before-outage", "during-outage"] {
        bed.complete(name, true).await.expect("complete");
        bed.wait_released(name).await.expect("released");
    }
    assert!(health_b.is_leader() && !health_a.is_leader());
    assert_eq!(bed.lease_holder().await.unwrap().as_deref(), Some("ctrl-b"));
    assert!(bed.users_on("h1").unwrap().is_empty());
    bed.cleanup().await;
}
