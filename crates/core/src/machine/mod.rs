//! The controller's decisions as a state machine (sans I/O).
//!
//! [`Core`] takes [`Input`]s — TaskRun observations, host-config changes, reports of
//! finished work, host health, the passing of time — each with the time it is handled,
//! and queues what the shell must do, by consumer: [`Work`] for the executor,
//! [`Effect`]s for the runner, [`Metric`]s (see [`output`]). It never awaits, never
//! reads a clock and never talks to Kubernetes or SSH, so every rule of contract §2–§3
//! is tested here with plain data.
//!
//! Where the decisions live:
//! - [`start`](Core::start) (`start.rs`): a (re)start or a new leader resumes from a
//!   snapshot, rebuilding every slot from the `assigned-host` labels first;
//! - `observe.rs`: TaskRun observations and deletions, host-config, host health and
//!   the reaper's findings;
//! - `reports.rs`: how finished work moves a TaskRun on;
//! - `step.rs`: the per-TaskRun decision — what a TaskRun in a given phase needs next;
//! - `pool.rs`: placement on a static host pool, through the [`Ledger`]; a platform of
//!   another strategy (a cloud VM per TaskRun) gets a module of its own beside it;
//! - `orders.rs`: turning a decision into [`Work`], Events and metrics;
//! - `timers.rs`: retries and deadlines;
//! - `gauges.rs`: the gauges the metrics show.
//!
//! Invariants the core keeps:
//! - at most one piece of work in flight per TaskRun (`in_flight`); the next step is
//!   decided on its report, so a TaskRun's patches, SSH work and Secret writes never
//!   interleave;
//! - slots are owned by the [`Ledger`]; a slot is freed only after the host was
//!   cleaned (or the TaskRun vanished), so a host never runs more build users than its
//!   concurrency;
//! - every failure that will not fix itself ends in an error Secret; every transient one
//!   is retried with a capped exponential backoff.

mod cloud;
mod fleet;
mod gauges;
mod input;
mod observe;
mod observed;
mod orders;
mod outlook;
pub mod output;
mod pool;
mod reports;
mod run;
mod start;
mod step;
mod timers;

#[cfg(test)]
mod cloud_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

pub use cloud::MAX_LAUNCH_ATTEMPTS;
pub use gauges::{Gauges, HostGauge, PlatformGauge};
pub use input::{ConfigInput, HostFailure, HostFailureKind, Input, LaunchFailure, Report};
pub use observed::Observed;
pub use output::{
    Effect, EventOrder, EventReason, FailOrder, LaunchOrder, Metric, ProvisionOrder, ReleaseOrder,
    TaskRunOrder, TerminationCause, VmOrder, VmReleaseOrder, WaitOrder, Work,
};

use crate::allocation::{InstanceQuota, Ledger, TaskRunKey};
use crate::cloud::CloudPlatform;
use crate::config::{Host, HostKeyChecking, HostName, PoolConfig};
use crate::naming::UserName;
use crate::platform::Platform;
use crate::time::Timestamp;
use run::{Phase, Run};
use timers::Timers;

/// How long a TaskRun waits for an unreachable platform by default: long enough for a
/// host reboot, far shorter than Tekton's own hour.
pub const DEFAULT_UNREACHABLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Tunables of the core that do not come from host-config.
#[derive(Clone, Debug)]
pub struct CoreSettings {
    /// The controller's namespace, named in messages about host-config.
    pub namespace: String,
    /// How long a new TaskRun waits for a missing host-config before it fails.
    pub config_grace: Duration,
    /// How long the release of a TaskRun that is being deleted keeps trying to clean
    /// an unreachable host; after that the user is left to the reaper.
    pub release_give_up: Duration,
    /// First retry delay after a failed operation.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// How long a TaskRun waits while every host of its platform is unreachable, when
    /// host-config sets no `allocation-timeout`.
    pub unreachable_timeout: Duration,
    /// How old an instance no TaskRun owns must be before the sweep terminates it.
    pub sweep_grace: Duration,
}

impl Default for CoreSettings {
    fn default() -> Self {
        CoreSettings {
            namespace: crate::naming::DEFAULT_CONTROLLER_NAMESPACE.to_owned(),
            config_grace: Duration::from_secs(60),
            release_give_up: Duration::from_secs(300),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            unreachable_timeout: DEFAULT_UNREACHABLE_TIMEOUT,
            sweep_grace: Duration::from_secs(300),
        }
    }
}

/// The controller's decision state. See the module docs.
pub struct Core {
    settings: CoreSettings,
    /// The current host-config, `None` while it is missing.
    config: Option<Arc<PoolConfig>>,
    /// Why host-config is missing (for messages).
    missing_reason: String,
    ledger: Ledger,
    /// The last known definition of every host: a host removed from host-config is
    /// still cleaned with the address and credentials it had.
    hosts: BTreeMap<HostName, Host>,
    /// Why each host that is out of service is so (until it is reported up).
    faults: BTreeMap<HostName, outlook::Fault>,
    /// VM slots of the dynamic platforms.
    quota: InstanceQuota,
    /// The last known settings of every cloud platform (a platform that left the
    /// configuration keeps them, so its VMs can still be terminated).
    clouds: BTreeMap<Platform, CloudPlatform>,
    /// Cloud platforms of the current configuration whose settings cannot be used.
    cloud_errors: BTreeMap<Platform, String>,
    /// Instances per state of each cloud platform, from its latest listing.
    instance_states: BTreeMap<Platform, BTreeMap<String, usize>>,
    /// The instances of each dynamic pool.
    fleets: BTreeMap<Platform, fleet::Fleet>,
    runs: HashMap<TaskRunKey, Run>,
    timers: Timers,
    now: Timestamp,
    work: VecDeque<Work>,
    effects: VecDeque<Effect>,
    metrics: VecDeque<Metric>,
}

impl Core {
    /// Handles one input at time `now`; what it leads to is queued for the `poll_*`
    /// methods. Time never runs backwards for the core: an earlier `now` counts as the
    /// latest one seen.
    pub fn handle(&mut self, input: Input, now: Timestamp) {
        self.now = self.now.max(now);
        match input {
            Input::Observed(obs) => self.on_observed(obs),
            Input::Deleted(key) => self.on_deleted(&key),
            Input::Config(config) => self.on_config(config),
            Input::Report(key, report) => self.on_report(&key, report),
            Input::Health(host, up) => self.on_health(&host, up),
            Input::HostFault(host, failure) => self.host_down(&host, failure),
            Input::Reaped(host, users) => self.on_reaped(&host, &users),
            Input::CloudListing(platform, instances) => self.on_listing(&platform, &instances),
            Input::CloudUnavailable(platform) => self.on_cloud_unavailable(&platform),
            Input::PoolLaunched(platform, launched) => self.on_fleet_launched(&platform, launched),
            Input::Tick => {}
        }
        self.fire_due_timers();
        self.manage_fleets();
    }

    /// The next piece of work for the executor, oldest first.
    pub fn poll_work(&mut self) -> Option<Work> {
        self.work.pop_front()
    }

    /// The next effect for the runner (an Event, a host probe), oldest first.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// The next measurement for the metrics, oldest first.
    pub fn poll_metric(&mut self) -> Option<Metric> {
        self.metrics.pop_front()
    }

    /// When the core next needs an [`Input::Tick`].
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.timers
            .next()
            .into_iter()
            .chain(self.fleet_deadline())
            .min()
    }

    /// The TaskRuns the core tracks (to detect ones deleted while a watch was down).
    pub fn known_taskruns(&self) -> impl Iterator<Item = &TaskRunKey> + '_ {
        self.runs.keys()
    }

    /// The users on `host` that belong to no TaskRun holding a slot there: leftovers
    /// of crashes, given-up cleanups or failed provisioning, for the reaper to remove.
    pub fn reapable(&self, host: &HostName, users: &[UserName]) -> Vec<UserName> {
        // Users left behind by a release that gave up on this host are the reaper's.
        let abandoned = |k: &TaskRunKey| {
            self.runs.get(k).is_some_and(|r| match &r.phase {
                Phase::Abandoned { host: h } => h == host,
                Phase::Releasing {
                    abandoned: Some(h), ..
                } => h == host,
                _ => false,
            })
        };
        let protected: BTreeSet<UserName> = self
            .ledger
            .running_on(host)
            .filter(|k| !abandoned(k))
            .map(|k| UserName::for_taskrun(&k.name, &k.namespace))
            .chain(
                self.runs
                    .iter()
                    .filter(|(_, r)| r.host() == Some(host))
                    .map(|(k, _)| UserName::for_taskrun(&k.name, &k.namespace)),
            )
            .collect();
        users
            .iter()
            .filter(|u| !protected.contains(u))
            .cloned()
            .collect()
    }

    /// The host-key checking of the current host-config (default when it is missing).
    pub fn host_key_checking(&self) -> HostKeyChecking {
        self.config
            .as_ref()
            .map(|c| c.settings.host_key_checking)
            .unwrap_or_default()
    }

    /// The last known definition of a host.
    pub fn host(&self, name: &HostName) -> Option<&Host> {
        self.hosts.get(name)
    }

    /// Whether the ledger counts the host as healthy.
    pub fn is_healthy(&self, name: &HostName) -> bool {
        self.ledger.hosts().any(|u| &u.host == name && u.healthy)
    }

    /// The hosts worth probing and reaping: every host the core knows of.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> + '_ {
        self.hosts.values()
    }
}
