//! The controller's event loop: watches feed the [`Core`], its commands go to the
//! executor, probes and the reaper, and their reports go back to the core.
//!
//! Only the leader runs a core. A standby keeps its caches warm (and reports ready);
//! on becoming leader it starts a fresh core from the cache, which rebuilds every slot
//! from the `assigned-host` labels before allocating anything. On losing leadership it
//! drops the core and aborts work in flight at once; all of it is idempotent and is
//! resumed by the next leader.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret};
use kube::api::Api;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tracing::{error, info, warn};

use super::cloud_watch::{self, CloudNews, watch_clouds};
use super::executor::Executor;
use super::known_hosts::ConfigMapKnownHosts;
use super::leader::{LeaderElection, Leadership};
use super::probing::{Directory, HostCare, HostNews};
use super::targets::AdminKeys;
use crate::cloud::CloudClients;
use crate::cluster::TaskRunObject;
use crate::cluster::io::ClusterWriter;
use crate::metrics::Metrics;
use crate::remote::{self, KnownHosts, SshPool};
use crate::server::Health;
use mpc_core::allocation::TaskRunKey;
use mpc_core::cloud::CloudTarget;
use mpc_core::config::{self, HostName, Severity};
use mpc_core::machine::{
    ConfigInput, Core, CoreSettings, Effect, EventOrder, Input, Observed, Report, TerminationCause,
};
use mpc_core::naming::{CONFIG_LABEL, HOST_CONFIG_NAME, SECRET_LABEL, UserName};
use mpc_core::time::{Timestamp, elapsed};

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct RunSettings {
    /// The controller's namespace (host-config, admin keys, known hosts, Lease).
    pub namespace: String,
    /// Leader election, or `None` to act alone.
    pub leader_election: Option<LeaderElection>,
    /// Tunables of the core.
    pub core: CoreSettings,
    /// SSH connection settings.
    pub ssh: remote::SshSettings,
    /// Time between reaper passes over healthy hosts.
    pub reap_interval: Duration,
    /// Periodic passes leave users younger than this alone (doctor's throwaway user,
    /// work in flight); a probe before a host returns to service reaps regardless.
    pub reap_min_age: Duration,
    /// How long a shutdown waits for operations in flight.
    pub shutdown_grace: Duration,
    /// Most Kubernetes/SSH operations carried out at once.
    pub max_parallel_operations: usize,
    /// Name of this instance in Events (the pod name).
    pub instance: String,
    /// Watch TaskRuns of this namespace only (tests sharing a cluster); `None`: all.
    pub taskrun_namespace: Option<String>,
    /// The EC2 endpoint for every cloud platform; `None`: `AWS_ENDPOINT_URL_EC2`,
    /// `AWS_ENDPOINT_URL`, or the region's public endpoint, as the AWS SDK resolves it.
    pub ec2_endpoint: Option<String>,
    /// Time between listings of the cloud platforms' instances (the leaked-VM sweep
    /// and the count of instances no TaskRun owns).
    pub cloud_list_interval: Duration,
}

impl RunSettings {
    /// Defaults for a controller in `namespace`.
    pub fn new(namespace: &str) -> Self {
        RunSettings {
            namespace: namespace.to_owned(),
            leader_election: None,
            core: CoreSettings {
                namespace: namespace.to_owned(),
                ..CoreSettings::default()
            },
            ssh: remote::SshSettings::default(),
            reap_interval: Duration::from_secs(300),
            reap_min_age: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(20),
            max_parallel_operations: 64,
            instance: "multi-platform-controller".to_owned(),
            taskrun_namespace: None,
            ec2_endpoint: None,
            cloud_list_interval: Duration::from_secs(60),
        }
    }
}

/// The controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Leader election could not be set up.
    #[error("cannot join the leader election")]
    Leadership(#[from] super::leader::ElectionError),
}

type WatchStream<K> = Pin<Box<dyn Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send>>;

/// What host-config means to the core.
pub fn config_input(cm: Option<&ConfigMap>) -> ConfigInput {
    let Some(cm) = cm else {
        return ConfigInput::Missing("ConfigMap host-config does not exist".to_owned());
    };
    if !cm.labels().contains_key(CONFIG_LABEL) {
        return ConfigInput::Missing(format!(
            "ConfigMap host-config lacks the label {CONFIG_LABEL} and is ignored (as the Go \
             controller ignores it); add the label"
        ));
    }
    let data = cm.data.clone().unwrap_or_default();
    ConfigInput::Present(Box::new(config::parse(&data)))
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    settings: RunSettings,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RunError> {
    let mut runner = Runner::new(client.clone(), settings.clone(), metrics, health);
    let mut leadership = match &settings.leader_election {
        Some(election) => Some(Leadership::start(client, &settings.namespace, election).await?),
        None => None,
    };
    runner.leader = leadership.is_none();
    runner.health.set_leader(runner.leader);
    tokio::pin!(shutdown);
    loop {
        let deadline = runner.core.as_ref().and_then(Core::next_deadline);
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep(elapsed(Timestamp::now(), at)).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            leader = async {
                match leadership.as_mut() {
                    Some(l) => l.changed().await,
                    None => std::future::pending().await,
                }
            } => runner.on_leadership(leader),
            Some(event) = runner.config_events.next() => runner.on_config_event(event),
            Some(event) = runner.taskrun_events.next() => runner.on_taskrun_event(event),
            Some(done) = runner.jobs.join_next() => {
                if let Ok((key, report)) = done {
                    tracing::debug!(taskrun = %key, ?report, "work reported");
                    runner.feed(Input::Report(key, report));
                }
            }
            Some(news) = runner.news_rx.recv() => runner.on_host_news(news),
            Some(news) = runner.cloud_rx.recv() => runner.on_cloud_news(news),
            () = sleep => runner.feed(Input::Tick),
            _ = runner.gauge_tick.tick() => runner.refresh(),
            _ = runner.reap_tick.tick() => runner.reap_healthy_hosts(),
        }
        runner.maybe_start_core();
    }
    runner.shut_down().await;
    if let Some(leadership) = leadership {
        leadership.release().await;
    }
    runner.health.set_leader(false);
    Ok(())
}

struct Runner {
    settings: RunSettings,
    client: Client,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    taskrun_events: WatchStream<TaskRunObject>,
    taskruns: Store<TaskRunObject>,
    taskruns_synced: bool,
    config_events: WatchStream<ConfigMap>,
    config_during_init: Option<ConfigMap>,
    config: Option<ConfigInput>,
    config_ref: Option<ObjectReference>,
    reported_problems: Vec<String>,
    secrets: Store<Secret>,
    secrets_ready: Arc<std::sync::atomic::AtomicBool>,
    leader: bool,
    core: Option<Core>,
    executor: Executor,
    care: HostCare,
    directory: watch::Sender<Arc<Directory>>,
    news_rx: mpsc::Receiver<HostNews>,
    clouds: CloudClients,
    cloud_targets: watch::Sender<Arc<Vec<CloudTarget>>>,
    cloud_rx: mpsc::Receiver<CloudNews>,
    cloud_news: mpsc::Sender<CloudNews>,
    jobs: JoinSet<(TaskRunKey, Report)>,
    side_jobs: JoinSet<()>,
    probes: HashMap<HostName, AbortHandle>,
    reaping: HashSet<HostName>,
    permits: Arc<Semaphore>,
    recorder: Recorder,
    gauge_tick: tokio::time::Interval,
    reap_tick: tokio::time::Interval,
}

impl Runner {
    fn new(
        client: Client,
        settings: RunSettings,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Self {
        let ns = settings.namespace.clone();
        // TaskRuns in all namespaces, stripped to the fields the controller reads.
        let (taskruns, writer) = reflector::store::<TaskRunObject>();
        let taskrun_api = match &settings.taskrun_namespace {
            Some(only) => Api::<TaskRunObject>::namespaced(client.clone(), only),
            None => Api::<TaskRunObject>::all(client.clone()),
        };
        // Pages of 100, not kube's 500: each page's JSON is buffered whole while it is
        // parsed, and with real TaskRuns (~10 KB each) those buffers set the peak RSS
        // (`cargo bench --bench controller`: 10 000 TaskRuns 58.9 → 52.2 MiB).
        let taskrun_events = reflector(
            writer,
            watcher(taskrun_api, watcher::Config::default().page_size(100))
                .modify(|tr| *tr = std::mem::take(tr).strip_for_cache()),
        )
        .default_backoff()
        .boxed();
        let config_events = watcher(
            Api::<ConfigMap>::namespaced(client.clone(), &ns),
            watcher::Config::default().fields(&format!("metadata.name={HOST_CONFIG_NAME}")),
        )
        .default_backoff()
        .boxed();
        // Admin keys: a cache the executor reads; nothing to decide on its events.
        let (secrets, secret_writer) = reflector::store::<Secret>();
        let secret_stream = reflector(
            secret_writer,
            watcher(
                Api::<Secret>::namespaced(client.clone(), &ns),
                watcher::Config::default().labels(SECRET_LABEL),
            ),
        )
        .default_backoff();
        let mut side_jobs = JoinSet::new();
        side_jobs.spawn(secret_stream.for_each(|_| async {}));
        // Allocation starts only once admin keys are known, or the first probes fail.
        let secrets_ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let (store, ready) = (secrets.clone(), Arc::clone(&secrets_ready));
            side_jobs.spawn(async move {
                if store.wait_until_ready().await.is_ok() {
                    ready.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }

        let known_hosts: Arc<dyn KnownHosts> =
            Arc::new(ConfigMapKnownHosts::new(client.clone(), &ns));
        let admin_keys = AdminKeys::new(secrets.clone(), &ns);
        let ssh = SshPool::new(settings.ssh.clone());
        let (directory, directory_rx) = watch::channel(Arc::new(Directory::default()));
        let (news_tx, news_rx) = mpsc::channel(256);
        let clouds = CloudClients::new(secrets.clone(), &ns, settings.ec2_endpoint.clone());
        let (cloud_targets, targets_rx) = watch::channel(Arc::new(Vec::new()));
        let (cloud_tx, cloud_rx) = mpsc::channel(64);
        side_jobs.spawn(watch_clouds(
            clouds.clone(),
            targets_rx,
            cloud_tx.clone(),
            settings.cloud_list_interval,
        ));
        let executor = Executor {
            writer: ClusterWriter::new(client.clone()),
            ssh: ssh.clone(),
            admin_keys: admin_keys.clone(),
            known_hosts: Arc::clone(&known_hosts),
            metrics: Arc::clone(&metrics),
            cloud: clouds.clone(),
            vm_known_hosts: Arc::new(remote::MemoryKnownHosts::default()),
        };
        let care = HostCare {
            ssh,
            admin_keys,
            known_hosts,
            directory: directory_rx,
            news: news_tx,
            metrics: Arc::clone(&metrics),
        };
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "multi-platform-controller".to_owned(),
                instance: Some(settings.instance.clone()),
            },
        );
        let mut reap_tick = tokio::time::interval(settings.reap_interval);
        reap_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reap_tick.reset();
        Runner {
            permits: Arc::new(Semaphore::new(settings.max_parallel_operations.max(1))),
            settings,
            client,
            metrics,
            health,
            taskrun_events,
            taskruns,
            taskruns_synced: false,
            config_events,
            config_during_init: None,
            config: None,
            config_ref: None,
            reported_problems: Vec::new(),
            secrets,
            secrets_ready,
            leader: false,
            core: None,
            executor,
            care,
            directory,
            news_rx,
            clouds,
            cloud_targets,
            cloud_rx,
            cloud_news: cloud_tx,
            jobs: JoinSet::new(),
            side_jobs,
            probes: HashMap::new(),
            reaping: HashSet::new(),
            recorder,
            gauge_tick: tokio::time::interval(Duration::from_secs(1)),
            reap_tick,
        }
    }

    // ----- inputs -----

    fn feed(&mut self, input: Input) {
        if let Some(core) = self.core.as_mut() {
            core.handle(input, Timestamp::now());
            self.dispatch();
        }
    }

    fn on_taskrun_event(&mut self, event: Result<watcher::Event<TaskRunObject>, watcher::Error>) {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                warn!(error = %err, "TaskRun watch failed; retrying (is the tekton.dev/v1 TaskRun CRD installed?)");
                return;
            }
        };
        match event {
            watcher::Event::Apply(tr) | watcher::Event::InitApply(tr) => {
                self.feed(Input::Observed(Observed::from_taskrun(&tr)));
            }
            watcher::Event::Delete(tr) => {
                let (ns, name) = tr.key();
                self.feed(Input::Deleted(TaskRunKey::new(ns, name)));
            }
            watcher::Event::Init => {}
            watcher::Event::InitDone => {
                if !self.taskruns_synced {
                    self.taskruns_synced = true;
                    info!(taskruns = self.taskruns.len(), "TaskRun cache synced");
                }
                self.forget_vanished();
            }
        }
    }

    /// After a re-list, TaskRuns deleted while the watch was down are simply absent.
    fn forget_vanished(&mut self) {
        let Some(core) = &self.core else {
            return;
        };
        let present: HashSet<(String, String)> = self
            .taskruns
            .state()
            .iter()
            .map(|tr| {
                let (ns, name) = tr.key();
                (ns.to_owned(), name.to_owned())
            })
            .collect();
        let vanished: Vec<TaskRunKey> = core
            .known_taskruns()
            .filter(|k| !present.contains(&(k.namespace.clone(), k.name.clone())))
            .cloned()
            .collect();
        for key in vanished {
            self.feed(Input::Deleted(key));
        }
    }

    fn on_config_event(&mut self, event: Result<watcher::Event<ConfigMap>, watcher::Error>) {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                warn!(error = %err, "host-config watch failed; retrying");
                return;
            }
        };
        let current = match event {
            watcher::Event::Init => {
                self.config_during_init = None;
                return;
            }
            watcher::Event::InitApply(cm) => {
                self.config_during_init = Some(cm);
                return;
            }
            watcher::Event::InitDone => self.config_during_init.take(),
            watcher::Event::Apply(cm) => Some(cm),
            watcher::Event::Delete(_) => None,
        };
        self.config_ref = current.as_ref().map(|cm| cm.object_ref(&()));
        let input = config_input(current.as_ref());
        self.report_config(&input);
        self.config = Some(input.clone());
        self.feed(Input::Config(input));
        self.publish_directory();
    }

    /// Logs configuration problems, and publishes new errors as Events on host-config.
    fn report_config(&mut self, input: &ConfigInput) {
        let problems: Vec<String> = match input {
            ConfigInput::Missing(reason) => {
                warn!(reason = %reason, "host-config is not usable; new TaskRuns wait for it");
                vec![reason.clone()]
            }
            ConfigInput::Present(config) => config
                .problems
                .iter()
                .filter(|p| p.severity == Severity::Error)
                .map(ToString::to_string)
                .collect(),
        };
        if problems == self.reported_problems {
            return;
        }
        for problem in &problems {
            warn!(problem = %problem, "host-config problem; the entry is excluded");
        }
        if let Some(reference) = self.config_ref.clone() {
            let fresh: Vec<String> = problems
                .iter()
                .filter(|p| !self.reported_problems.contains(p))
                .cloned()
                .collect();
            for problem in fresh {
                self.publish_event(
                    reference.clone(),
                    EventType::Warning,
                    "InvalidHostConfig",
                    problem,
                );
            }
        }
        self.reported_problems = problems;
    }

    fn on_leadership(&mut self, leader: bool) {
        if leader == self.leader {
            return;
        }
        self.leader = leader;
        self.health.set_leader(leader);
        if leader {
            info!("became leader: rebuilding allocations from TaskRun labels");
        } else {
            warn!("lost leadership: stopping all allocation at once");
            self.core = None;
            self.jobs.abort_all();
            for (_, probe) in self.probes.drain() {
                probe.abort();
            }
            self.reaping.clear();
        }
    }

    fn on_host_news(&mut self, news: HostNews) {
        let Some(core) = &self.core else {
            return;
        };
        match news {
            HostNews::Reachable { host, users } => {
                let after_probe = self.probes.remove(&host).is_some();
                let min_age = self.settings.reap_min_age;
                let candidates: Vec<UserName> = users
                    .iter()
                    .filter(|(_, age)| after_probe || age.is_some_and(|a| a >= min_age))
                    .map(|(u, _)| u.clone())
                    .collect();
                let doomed = core.reapable(&host, &candidates);
                let users: Vec<UserName> = users.into_iter().map(|(u, _)| u).collect();
                self.reaping.insert(host.clone());
                self.side_jobs
                    .spawn(self.care.clone().reap(host, users, doomed, after_probe));
            }
            HostNews::Down { host, failure } => {
                self.feed(Input::HostFault(host, failure));
            }
            HostNews::Reaped {
                host,
                remaining,
                complete,
                after_probe,
                ..
            } => {
                self.reaping.remove(&host);
                self.feed(Input::Reaped(host.clone(), remaining));
                if after_probe {
                    if complete {
                        info!(%host, "host is up: probed and rid of leftover users");
                        self.feed(Input::Health(host, true));
                    } else {
                        self.start_probe(host);
                    }
                }
            }
        }
    }

    // ----- core lifecycle -----

    fn maybe_start_core(&mut self) {
        self.health.beat();
        let synced = self.taskruns_synced
            && self.config.is_some()
            && self
                .secrets_ready
                .load(std::sync::atomic::Ordering::Relaxed);
        self.health.set_ready(synced);
        if self.core.is_some() || !self.leader || !synced {
            return;
        }
        let Some(config) = self.config.clone() else {
            return;
        };
        let snapshot: Vec<Observed> = self
            .taskruns
            .state()
            .iter()
            .map(|tr| Observed::from_taskrun(tr))
            .collect();
        info!(
            taskruns = snapshot.len(),
            admin_secrets = self.secrets.len(),
            "starting allocation"
        );
        let core = Core::start(
            self.settings.core.clone(),
            config,
            snapshot,
            Timestamp::now(),
        );
        self.core = Some(core);
        self.publish_directory();
        self.dispatch();
    }

    fn publish_directory(&mut self) {
        let Some(core) = &self.core else {
            return;
        };
        let directory = Directory {
            hosts: core.hosts().map(|h| (h.name.clone(), h.clone())).collect(),
            checking: core.host_key_checking(),
        };
        self.directory.send_replace(Arc::new(directory));
        let targets: Vec<CloudTarget> = core.cloud_targets().cloned().collect();
        if **self.cloud_targets.borrow() != targets {
            self.cloud_targets.send_replace(Arc::new(targets));
        }
    }

    fn on_cloud_news(&mut self, news: CloudNews) {
        match news {
            CloudNews::Listed(platform, instances) => {
                self.feed(Input::CloudListing(platform, instances));
            }
            CloudNews::PoolLaunched(platform, result) => {
                self.feed(Input::PoolLaunched(platform, result));
            }
            CloudNews::Unavailable(platform, why) => {
                if let Some(reference) = self.config_ref.clone() {
                    self.publish_event(
                        reference,
                        EventType::Warning,
                        "CloudUnavailable",
                        format!("the instances of platform {platform} cannot be listed: {why}"),
                    );
                }
                self.feed(Input::CloudUnavailable(platform));
            }
        }
    }

    // ----- commands -----

    /// Carries out what the core put out: metrics and effects here, work on the
    /// executor (one job per piece, bounded by the permits).
    fn dispatch(&mut self) {
        let Some(core) = self.core.as_mut() else {
            return;
        };
        let mut effects = Vec::new();
        while let Some(metric) = core.poll_metric() {
            self.metrics.record(&metric);
        }
        while let Some(effect) = core.poll_effect() {
            effects.push(effect);
        }
        while let Some(work) = core.poll_work() {
            tracing::debug!(taskrun = %work.key(), work = work.name(), "work ordered");
            let executor = self.executor.clone();
            let permits = Arc::clone(&self.permits);
            self.jobs.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let key = work.key().clone();
                (key, executor.execute(work).await)
            });
        }
        for effect in effects {
            match effect {
                Effect::Event(order) => self.publish_taskrun_event(order),
                Effect::Probe { host, reason } => {
                    if let Some(reason) = reason {
                        warn!(%host, reason = %reason, "host taken out of service until it answers a probe");
                        if let Some(reference) = self.config_ref.clone() {
                            self.publish_event(
                                reference,
                                EventType::Warning,
                                "HostUnavailable",
                                format!("host {host} taken out of service: {reason}"),
                            );
                        }
                    }
                    self.start_probe(host);
                }
                Effect::LaunchPool { spec } => {
                    info!(platform = %spec.target.platform, "launching an instance for the pool");
                    self.side_jobs.spawn(cloud_watch::launch_pool(
                        self.clouds.clone(),
                        *spec,
                        self.cloud_news.clone(),
                    ));
                }
                Effect::Terminate {
                    target,
                    instances,
                    cause,
                } => {
                    let names: Vec<&str> = instances.iter().map(|(i, _)| i.as_str()).collect();
                    if cause == TerminationCause::Retired {
                        info!(platform = %target.platform, instances = ?names,
                              "retiring pool instances past max-age");
                    } else {
                        warn!(platform = %target.platform, instances = ?names,
                              "sweeping instances no TaskRun owns");
                    }
                    if let (TerminationCause::Leaked, Some(reference)) =
                        (cause, self.config_ref.clone())
                    {
                        let why: Vec<String> = instances
                            .iter()
                            .map(|(i, why)| format!("{i}: {why}"))
                            .collect();
                        self.publish_event(
                            reference,
                            EventType::Warning,
                            "LeakedInstancesTerminated",
                            format!(
                                "terminating leaked instances of platform {}: {}",
                                target.platform,
                                why.join("; ")
                            ),
                        );
                    }
                    self.side_jobs.spawn(cloud_watch::sweep(
                        self.clouds.clone(),
                        target,
                        instances,
                    ));
                }
            }
        }
    }

    fn start_probe(&mut self, host: HostName) {
        if self.probes.contains_key(&host) {
            return;
        }
        self.publish_directory();
        let handle = self
            .side_jobs
            .spawn(self.care.clone().probe_until_up(host.clone()));
        self.probes.insert(host, handle);
    }

    fn reap_healthy_hosts(&mut self) {
        let Some(core) = &self.core else {
            return;
        };
        let hosts: Vec<HostName> = core
            .hosts()
            .map(|h| h.name.clone())
            .filter(|h| {
                core.is_healthy(h) && !self.probes.contains_key(h) && !self.reaping.contains(h)
            })
            .collect();
        for host in hosts {
            self.reaping.insert(host.clone());
            self.side_jobs.spawn(self.care.clone().list(host));
        }
    }

    fn refresh(&mut self) {
        self.health.beat();
        if let Some(core) = &self.core {
            self.metrics.set_gauges(&core.gauges());
        }
        // Side tasks that ended (probes, reaper passes, the Secret watch) are collected.
        while let Some(done) = self.side_jobs.try_join_next() {
            if let Err(e) = done
                && e.is_panic()
            {
                error!(error = %e, "a background task panicked");
            }
        }
    }

    fn publish_taskrun_event(&mut self, order: EventOrder) {
        let reference = ObjectReference {
            api_version: Some("tekton.dev/v1".to_owned()),
            kind: Some("TaskRun".to_owned()),
            name: Some(order.key.name.clone()),
            namespace: Some(order.key.namespace.clone()),
            uid: Some(order.uid.clone()).filter(|u| !u.is_empty()),
            ..ObjectReference::default()
        };
        let type_ = if order.reason.is_warning() {
            EventType::Warning
        } else {
            EventType::Normal
        };
        self.publish_event(reference, type_, order.reason.as_str(), order.note);
    }

    fn publish_event(
        &mut self,
        reference: ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let recorder = self.recorder.clone();
        let note = truncate(note, 1000);
        let event = Event {
            type_,
            reason: reason.to_owned(),
            action: event_action(reason, &note),
            note: Some(note),
            secondary: None,
        };
        self.side_jobs.spawn(async move {
            if let Err(e) = recorder.publish(&event, &reference).await {
                warn!(error = %e, reason = %event.reason, "could not publish an Event");
            }
        });
    }

    async fn shut_down(&mut self) {
        info!(
            in_flight = self.jobs.len(),
            "shutting down: finishing operations in flight"
        );
        self.health.set_ready(false);
        for (_, probe) in self.probes.drain() {
            probe.abort();
        }
        let grace = self.settings.shutdown_grace;
        let drained = tokio::time::timeout(grace, async {
            while self.jobs.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(
                left = self.jobs.len(),
                "shutdown deadline reached; the next leader resumes the rest"
            );
            self.jobs.abort_all();
        }
        self.side_jobs.abort_all();
        let _ = &self.client;
    }
}

/// The Event's `action`. kube's Recorder (like client-go's) counts an Event with the
/// same type, reason and action on the same object as a repeat of the first one and
/// keeps the first note, so "allocated host h2" after a failover would show as a second
/// "allocated host h1". A digest of the note in the action makes each distinct note its
/// own Event, while true repeats are still counted in one series.
fn event_action(reason: &str, note: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    note.hash(&mut hasher);
    format!("{reason}-{:016x}", hasher.finish())
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn cm(labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(HOST_CONFIG_NAME.to_owned()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..ConfigMap::default()
        }
    }

    #[test]
    fn host_config_must_exist_and_carry_the_label() {
        assert!(
            matches!(config_input(None), ConfigInput::Missing(r) if r.contains("does not exist"))
        );
        let unlabelled = cm(&[], &[("local-platforms", "local")]);
        assert!(
            matches!(config_input(Some(&unlabelled)), ConfigInput::Missing(r) if r.contains("lacks the label"))
        );
        let good = cm(&[(CONFIG_LABEL, "")], &[("local-platforms", "local")]);
        let ConfigInput::Present(config) = config_input(Some(&good)) else {
            panic!("labelled host-config is present");
        };
        assert_eq!(config.local_platforms.len(), 1);
    }

    #[test]
    fn events_with_different_notes_are_different_actions() {
        let a = event_action("Allocated", "allocated host h1");
        assert_eq!(a, event_action("Allocated", "allocated host h1"));
        assert_ne!(a, event_action("Allocated", "allocated host h2"));
        assert!(a.starts_with("Allocated-"));
        // events.k8s.io caps `action` at 128 characters.
        assert!(event_action("ProvisioningFailed", &"x".repeat(5000)).len() <= 128);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo".to_owned(), 2), "h");
        assert_eq!(truncate("abc".to_owned(), 5), "abc");
    }
}
