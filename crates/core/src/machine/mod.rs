//! The controller's decisions as a pure state machine (sans I/O).
//!
//! [`Core`] takes [`Input`]s — TaskRun observations, host-config changes, reports of
//! finished operations, host health, the passing of time — and returns [`Command`]s
//! for the shell to carry out. It never awaits, never reads a clock (every call gets
//! `now`), and never talks to Kubernetes or SSH, so every rule of SPEC §2–§3 is tested
//! here with plain data.
//!
//! Invariants the core keeps:
//! - at most one command in flight per TaskRun (`in_flight`); the next step is decided on
//!   its report, so a TaskRun's patches, SSH work and Secret writes never interleave;
//! - slots are owned by the [`Ledger`]; a slot is freed only after the host was
//!   cleaned (or the TaskRun vanished), so a host never runs more build users than its
//!   concurrency;
//! - every failure that will not fix itself ends in an error Secret; every transient one
//!   is retried with a capped exponential backoff.

mod io;
mod observed;
mod run;
mod timers;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

pub use io::{
    Command, ConfigInput, EventOrder, EventReason, FailOrder, HostFailure, HostFailureKind, Input,
    Metric, ProvisionOrder, ReleaseOrder, Report, TaskRunOrder, WaitOrder,
};
pub use observed::Observed;

use crate::allocation::{
    Assignment, Decision, Ledger, RecordedTaskRun, Rejected, Rejection, TaskRunKey, TaskRunRequest,
};
use crate::config::{Host, HostName, PoolConfig, Route};
use crate::naming::{LOCALHOST, UserName};
use crate::platform::Platform;
use run::{Op, Phase, QueueReason, Run};
use timers::Timers;

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
}

impl Default for CoreSettings {
    fn default() -> Self {
        CoreSettings {
            namespace: crate::naming::DEFAULT_CONTROLLER_NAMESPACE.to_owned(),
            config_grace: Duration::from_secs(60),
            release_give_up: Duration::from_secs(300),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
        }
    }
}

/// Gauges derived from the core's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Per platform: TaskRuns holding a slot, TaskRuns waiting, slots configured.
    pub platforms: BTreeMap<String, PlatformGauge>,
    /// Per host: its platform, slots used and total, whether it is healthy.
    pub hosts: BTreeMap<String, HostGauge>,
}

/// Gauges of one platform.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlatformGauge {
    /// TaskRuns holding a slot.
    pub running: usize,
    /// TaskRuns waiting for one.
    pub waiting: usize,
    /// Slots of the platform's active hosts.
    pub pool_size: usize,
}

/// Gauges of one host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostGauge {
    /// Its platform.
    pub platform: String,
    /// Slots in use.
    pub used: usize,
    /// Its concurrency (0 once removed from host-config).
    pub total: usize,
    /// Whether the last probe or operation reached it.
    pub up: bool,
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
    runs: HashMap<TaskRunKey, Run>,
    timers: Timers,
    now_ms: i64,
    out: Vec<Command>,
}

impl Core {
    /// Starts the core from a full snapshot of the cluster, as after a (re)start or on
    /// becoming leader: slots are rebuilt from `assigned-host` labels before anything
    /// is allocated, and the commands to resume every unfinished piece of work are
    /// returned.
    pub fn start(
        settings: CoreSettings,
        config: ConfigInput,
        snapshot: impl IntoIterator<Item = Observed>,
        now_ms: i64,
    ) -> (Core, Vec<Command>) {
        let (config, missing_reason) = match config {
            ConfigInput::Present(c) => (Some(Arc::new(*c)), String::new()),
            ConfigInput::Missing(reason) => (None, reason),
        };
        let empty = PoolConfig::default();
        let pool = config.as_deref().unwrap_or(&empty);
        let mut core = Core {
            settings,
            hosts: pool
                .hosts
                .values()
                .map(|h| (h.name.clone(), h.clone()))
                .collect(),
            ledger: Ledger::new_probing(pool),
            config: config.clone(),
            missing_reason,
            runs: HashMap::new(),
            timers: Timers::default(),
            now_ms,
            out: Vec::new(),
        };

        let mut recorded = Vec::new();
        let mut fresh = Vec::new();
        for obs in snapshot {
            if !obs.concerns_us() {
                continue;
            }
            let mut run = Run::new(&obs);
            let key = obs.key.clone();
            match resume(&key, &obs, &mut run, config.as_deref(), now_ms) {
                Resume::Recorded(record) => recorded.push(record),
                Resume::Fresh => fresh.push(key.clone()),
                Resume::Nothing => {}
            }
            core.runs.insert(key, run);
        }

        // Hosts take TaskRuns only once probed (and rid of leftovers): nothing is
        // assigned yet, waiters just take their place in the queues.
        let (ledger, outcome) = Ledger::rebuild_probing(pool, recorded);
        core.ledger = ledger;
        let names: Vec<HostName> = core.hosts.keys().cloned().collect();
        for host in names {
            core.out.push(Command::Probe { host, reason: None });
        }
        // Waiters the rebuild placed: their queue position or their new slot.
        let queued: Vec<TaskRunKey> = core
            .runs
            .iter()
            .filter(|(_, r)| matches!(r.phase, Phase::Queued { .. }))
            .map(|(k, _)| k.clone())
            .collect();
        for key in &queued {
            if let Some(run) = core.runs.get_mut(key) {
                run.queued_at_ms = Some(now_ms);
                if run.allocation_start.is_none() {
                    run.allocation_start = Some(now_ms.div_euclid(1000));
                }
            }
        }
        core.apply_outcome(outcome.assigned, outcome.rejected);
        let mut keys: Vec<TaskRunKey> = core.runs.keys().cloned().collect();
        keys.sort_by_key(|k| (core.runs[k].created, k.clone()));
        fresh.sort_by_key(|k| (core.runs[k].created, k.clone()));
        for key in keys.iter().filter(|k| !fresh.contains(k)) {
            core.step(key);
        }
        for key in &fresh {
            core.step(key);
        }
        let commands = std::mem::take(&mut core.out);
        (core, commands)
    }

    /// Handles one input at time `now_ms` (unix milliseconds).
    pub fn handle(&mut self, input: Input, now_ms: i64) -> Vec<Command> {
        self.now_ms = self.now_ms.max(now_ms);
        match input {
            Input::Observed(obs) => self.on_observed(obs),
            Input::Deleted(key) => self.on_deleted(&key),
            Input::Config(config) => self.on_config(config),
            Input::Report(key, report) => self.on_report(&key, report),
            Input::Health(host, up) => self.on_health(&host, up),
            Input::Reaped(host, users) => self.on_reaped(&host, &users),
            Input::Tick => {}
        }
        self.fire_due_timers();
        std::mem::take(&mut self.out)
    }

    /// When the core next needs a [`Input::Tick`], in unix milliseconds.
    pub fn next_deadline(&self) -> Option<i64> {
        self.timers.next()
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
    pub fn host_key_checking(&self) -> crate::config::HostKeyChecking {
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

    /// Gauges for the metrics.
    pub fn gauges(&self) -> Gauges {
        let mut gauges = Gauges::default();
        for usage in self.ledger.hosts() {
            let Some(platform) = usage
                .platform
                .clone()
                .or_else(|| self.hosts.get(&usage.host).map(|h| h.platform.clone()))
            else {
                continue;
            };
            let active = usage.state == Some(crate::config::HostState::Active);
            let entry = gauges.platforms.entry(platform.to_string()).or_default();
            entry.running += usage.used;
            if active {
                entry.pool_size += usage.concurrency as usize;
            }
            gauges.hosts.insert(
                usage.host.to_string(),
                HostGauge {
                    platform: platform.to_string(),
                    used: usage.used,
                    total: usage.concurrency as usize,
                    up: usage.healthy,
                },
            );
        }
        for run in self.runs.values() {
            if let (Phase::Queued { .. }, Some(p)) = (&run.phase, run.valid_platform()) {
                gauges.platforms.entry(p.to_string()).or_default().waiting += 1;
            }
        }
        gauges
    }

    // ----- inputs -----

    fn on_observed(&mut self, obs: Observed) {
        let key = obs.key.clone();
        match self.runs.get_mut(&key) {
            Some(run) => run.update(&obs),
            None if obs.concerns_us() => {
                let mut run = Run::new(&obs);
                if obs.assigned_host.as_deref() == Some(LOCALHOST) {
                    run.phase = Phase::Local { written: false };
                }
                self.runs.insert(key.clone(), run);
            }
            None => return,
        }
        self.step(&key);
    }

    fn on_deleted(&mut self, key: &TaskRunKey) {
        let Some(run) = self.runs.get_mut(key) else {
            return;
        };
        run.gone = true;
        run.finished = true;
        if run.in_flight.is_some() {
            // The operation in flight finds it gone (or finishes); decide on its report.
            return;
        }
        self.step(key);
    }

    fn on_config(&mut self, config: ConfigInput) {
        match config {
            ConfigInput::Missing(reason) => {
                // Running TaskRuns keep their slots and waiting ones their place; only
                // new TaskRuns wait for the configuration to come back.
                self.config = None;
                self.missing_reason = reason;
            }
            ConfigInput::Present(config) => {
                let config = Arc::new(*config);
                for host in config.hosts.values() {
                    self.hosts.insert(host.name.clone(), host.clone());
                }
                let outcome = self.ledger.apply_config(&config);
                // New (or re-added) hosts join unhealthy: probe them. The shell keeps
                // one probe per host, so asking again for one already probed is free.
                let unprobed: Vec<HostName> = self
                    .ledger
                    .hosts()
                    .filter(|u| u.state.is_some() && !u.healthy)
                    .map(|u| u.host)
                    .collect();
                for host in unprobed {
                    self.out.push(Command::Probe { host, reason: None });
                }
                self.config = Some(config);
                self.apply_outcome(outcome.assigned, outcome.rejected);
                // TaskRuns that waited for a configuration are placed now, oldest first.
                let mut waiting: Vec<TaskRunKey> = self
                    .runs
                    .iter()
                    .filter(|(_, r)| {
                        matches!(
                            r.phase,
                            Phase::Queued {
                                reason: QueueReason::ConfigMissing,
                                ..
                            }
                        )
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                waiting.sort_by_key(|k| (self.runs[k].created, k.clone()));
                for key in waiting {
                    // Placed from its queued phase, so an already written waiting label
                    // is not written again; the grace-period timer no longer applies.
                    if let Some(run) = self.runs.get_mut(&key) {
                        run.timer = None;
                        if run.in_flight.is_none() && !run.finished {
                            self.place(&key);
                            continue;
                        }
                        run.phase = Phase::New;
                    }
                    self.step(&key);
                }
            }
        }
    }

    /// `remaining`: the users on `host` after the reaper's pass. An abandoned user that
    /// is not among them is gone (reaped now, or removed earlier by a cleanup whose
    /// report was lost), so its slot is free.
    fn on_reaped(&mut self, host: &HostName, remaining: &[UserName]) {
        let freed: Vec<TaskRunKey> = self
            .runs
            .iter()
            .filter(|(k, r)| {
                r.phase == Phase::Abandoned { host: host.clone() }
                    && !remaining.contains(&UserName::for_taskrun(&k.name, &k.namespace))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in freed {
            self.runs.remove(&key);
            let assigned = self.ledger.release(&key);
            self.apply_outcome(assigned, Vec::new());
        }
    }

    fn on_health(&mut self, host: &HostName, up: bool) {
        let assigned = self.ledger.set_health(host, up);
        self.apply_outcome(assigned, Vec::new());
    }

    fn on_report(&mut self, key: &TaskRunKey, report: Report) {
        let now_ms = self.now_ms;
        let Some(run) = self.runs.get_mut(key) else {
            return;
        };
        let Some(op) = run.in_flight.take() else {
            // A report for a command the core did not order (a stale duplicate).
            return;
        };
        match report {
            Report::ApiError(_) => {
                run.attempts += 1;
                let at = now_ms + backoff(&self.settings, run.attempts);
                run.timer = Some(at);
                self.timers.insert(at, key.clone());
            }
            Report::Gone => {
                run.gone = true;
                run.finished = true;
                self.forget(key);
                return;
            }
            Report::Done => {
                run.attempts = 0;
                // Only the command that was in flight counts: the phase may have moved on
                // (a waiter rejected while its waiting label was written, say).
                match (&mut run.phase, op) {
                    (Phase::Queued { marked, .. }, Op::Wait) => *marked = true,
                    (Phase::Local { written }, Op::Local) => *written = true,
                    (Phase::Failed { written, .. }, Op::Fail) => *written = true,
                    _ => {}
                }
            }
            Report::AlreadyProvisioned => {
                run.attempts = 0;
                if let (Phase::Provisioning { host }, Op::Provision) = (run.phase.clone(), op) {
                    run.phase = Phase::Ready { host };
                    run.ready_at_ms = Some(now_ms);
                    run.marked = true;
                }
            }
            Report::Provisioned => {
                run.attempts = 0;
                if let (Phase::Provisioning { host }, Op::Provision) = (run.phase.clone(), op) {
                    run.phase = Phase::Ready { host: host.clone() };
                    run.ready_at_ms = Some(now_ms);
                    run.marked = true;
                    if let Some(platform) = run.valid_platform().cloned() {
                        // As the Go controller measures it: from the slot to the Secret,
                        // without the time spent waiting for the slot.
                        let allocating = run
                            .assigned_at_ms
                            .map(|at| (now_ms - at).max(0) as f64 / 1000.0);
                        self.metric(Metric::ProvisioningSuccess {
                            platform: platform.clone(),
                        });
                        if let Some(seconds) = allocating {
                            self.metric(Metric::AllocationTime { platform, seconds });
                        }
                        self.event(
                            key,
                            EventReason::Provisioned,
                            format!("build user ready on host {host}"),
                        );
                    }
                }
            }
            Report::ProvisionFailed(failure) => {
                run.attempts = 0;
                if let (Phase::Provisioning { host }, Op::Provision) = (run.phase.clone(), op) {
                    self.on_provision_failed(key, host, failure);
                }
            }
            Report::Released => {
                run.attempts = 0;
                if let (
                    Phase::Releasing {
                        host, abandoned, ..
                    },
                    Op::Release,
                ) = (run.phase.clone(), op)
                {
                    let platform = run.valid_platform().cloned();
                    // The whole life of a served TaskRun, wait and allocation included.
                    let ran = run
                        .ready_at_ms
                        .take()
                        .and(run.allocation_start)
                        .map(|start| start * 1000);
                    run.marked = false;
                    if let Some(leftover) = abandoned {
                        // Its user is still on the host and keeps the slot until the
                        // reaper removes it.
                        run.phase = Phase::Abandoned { host: leftover };
                        self.step(key);
                        return;
                    }
                    run.phase = Phase::Done;
                    if let (Some(platform), Some(start)) = (platform, ran) {
                        self.metric(Metric::TaskRunTime {
                            platform,
                            seconds: (now_ms - start).max(0) as f64 / 1000.0,
                        });
                    }
                    if let Some(host) = host {
                        self.event(
                            key,
                            EventReason::Released,
                            format!("build user removed from host {host}; slot freed"),
                        );
                    }
                    let assigned = self.ledger.release(key);
                    self.apply_outcome(assigned, Vec::new());
                }
            }
            Report::CleanupFailed(failure) => {
                run.attempts += 1;
                let at = now_ms + backoff(&self.settings, run.attempts);
                run.timer = Some(at);
                self.timers.insert(at, key.clone());
                let host = run.host().cloned();
                if let Some(platform) = run.valid_platform().cloned() {
                    self.metric(Metric::CleanupFailure { platform });
                }
                self.event(
                    key,
                    EventReason::CleanupFailed,
                    format!(
                        "cleaning host {} failed, will retry: {}",
                        host.as_ref().map_or("?", HostName::as_str),
                        failure.message
                    ),
                );
                if let Some(host) = host.filter(|_| failure.kind.takes_host_down()) {
                    self.host_down(&host, &failure.message);
                }
            }
        }
        self.step(key);
    }

    fn on_provision_failed(&mut self, key: &TaskRunKey, host: HostName, failure: HostFailure) {
        let Some(run) = self.runs.get_mut(key) else {
            return;
        };
        run.failed_hosts.insert(host.clone());
        let platform = run.valid_platform().cloned();
        let finished = run.finished;
        if let Some(platform) = platform {
            self.metric(Metric::ProvisioningFailure { platform });
        }
        self.event(
            key,
            EventReason::ProvisioningFailed,
            format!(
                "preparing a build user on host {host} failed: {}",
                failure.message
            ),
        );
        if failure.kind.takes_host_down() {
            self.host_down(&host, &failure.message);
        }
        if finished {
            // Nothing to place any more: free the slot and clean what may be left.
            // The failed host's slot is already counted free by nobody else: clean it,
            // then the normal release frees the slot.
            if let Some(run) = self.runs.get_mut(key) {
                run.phase = Phase::Releasing {
                    host: Some(host),
                    since_ms: self.now_ms,
                    abandoned: None,
                };
            }
            return;
        }
        match self.ledger.provisioning_failed(key, &host) {
            Some(failover) => {
                self.apply_decision(key, failover.decision);
                self.apply_outcome(failover.assigned, Vec::new());
            }
            None => {
                if let Some(run) = self.runs.get_mut(key) {
                    run.phase = Phase::New;
                }
            }
        }
    }

    fn fire_due_timers(&mut self) {
        while let Some(key) = self.timers.pop_due(self.now_ms) {
            let due = self
                .runs
                .get(&key)
                .and_then(|r| r.timer)
                .is_some_and(|t| t <= self.now_ms);
            if due {
                if let Some(run) = self.runs.get_mut(&key) {
                    run.timer = None;
                }
                self.step(&key);
            }
        }
    }

    // ----- the decision for one TaskRun -----

    /// Decides the next command for a TaskRun that has none in flight.
    fn step(&mut self, key: &TaskRunKey) {
        let now_ms = self.now_ms;
        let Some(run) = self.runs.get_mut(key) else {
            return;
        };
        if run.in_flight.is_some() || run.timer.is_some_and(|t| t > now_ms) {
            return;
        }
        match run.phase.clone() {
            Phase::New => {
                if run.finished {
                    if run.marked {
                        self.release(key, None);
                    } else {
                        self.done(key);
                    }
                } else {
                    self.place(key);
                }
            }
            Phase::Queued { reason, marked } => {
                if run.finished {
                    if reason == QueueReason::PoolFull {
                        self.ledger.cancel(key);
                    }
                    // A gone TaskRun has no labels left to remove.
                    if (run.marked || marked) && !run.gone {
                        self.release(key, None);
                    } else {
                        self.done(key);
                    }
                    return;
                }
                let deadline = self.queue_deadline(key, reason);
                if deadline.is_some_and(|d| d <= now_ms) {
                    if reason == QueueReason::PoolFull {
                        self.ledger.cancel(key);
                    }
                    let message = self.queue_timeout_message(key, reason);
                    self.fail(key, message);
                    return;
                }
                if let Some(at) = deadline {
                    self.set_timer(key, at);
                }
                if !marked {
                    self.issue_wait(key);
                }
            }
            Phase::Provisioning { host } => {
                if run.finished {
                    // The user may exist already: clean it; the slot is freed after.
                    self.release(key, Some(host));
                } else {
                    self.issue_provision(key, &host);
                }
            }
            Phase::Ready { host } => {
                if run.finished {
                    self.release(key, Some(host));
                }
            }
            Phase::Local { written } => {
                if run.finished {
                    self.release(key, None);
                } else if !written {
                    self.issue_local(key);
                }
            }
            Phase::Failed { message, written } => {
                if run.finished {
                    self.release(key, None);
                } else if !written {
                    self.issue_fail(key, message);
                }
            }
            Phase::Releasing { host, since_ms, .. } => {
                let Some(h) = host else {
                    self.issue_release(key, None);
                    return;
                };
                let unknown = !self.hosts.contains_key(&h);
                let timed_out = (run.deleting || run.gone)
                    && now_ms - since_ms >= self.settings.release_give_up.as_millis() as i64;
                if unknown || timed_out {
                    // The host cannot be cleaned now: release the TaskRun without it.
                    // The user stays behind and keeps its slot until the reaper removed it.
                    run.phase = Phase::Releasing {
                        host: None,
                        since_ms,
                        abandoned: Some(h.clone()),
                    };
                    let user = UserName::for_taskrun(&key.name, &key.namespace);
                    let note = if unknown {
                        format!(
                            "host {h} is no longer in host-config, so build user {user} \
                             could not be removed from it; its slot stays taken until the \
                             host is configured again and the reaper removed the user (or \
                             remove it by hand). Drain hosts (state: drain) until their slots \
                             are free before removing them"
                        )
                    } else {
                        format!(
                            "host {h} could not be cleaned in time; the TaskRun is released \
                             and the reaper will remove build user {user} when the host \
                             answers again"
                        )
                    };
                    self.event(key, EventReason::CleanupFailed, note);
                    self.issue_release(key, None);
                } else {
                    self.issue_release(key, Some(h));
                }
            }
            Phase::Abandoned { .. } => {}
            Phase::Done => {
                if run.gone {
                    self.runs.remove(key);
                }
            }
        }
    }

    /// Where a new, unfinished TaskRun goes.
    fn place(&mut self, key: &TaskRunKey) {
        let Some(run) = self.runs.get(key) else {
            return;
        };
        let platform = match &run.platform {
            // Not a candidate (no PLATFORM param) but marked: nothing to place.
            None => {
                self.done(key);
                return;
            }
            Some(Err(message)) => {
                let message = message.clone();
                self.fail(key, message);
                return;
            }
            Some(Ok(platform)) => platform.clone(),
        };
        let Some(config) = self.config.clone() else {
            self.queue(key, QueueReason::ConfigMissing, None);
            return;
        };
        match config.route(&platform) {
            Route::Local => {
                if let Some(run) = self.runs.get_mut(key) {
                    run.phase = Phase::Local { written: false };
                }
                self.step(key);
            }
            Route::Fail(err) => self.fail(key, err.to_string()),
            Route::Pool(_) => {
                let decision = self.ledger.request(request(key, run, platform));
                self.apply_decision(key, decision);
            }
        }
    }

    fn apply_decision(&mut self, key: &TaskRunKey, decision: Decision) {
        match decision {
            Decision::Assigned(host) => self.assign(key, host),
            Decision::Queued { ahead } => self.queue(key, QueueReason::PoolFull, Some(ahead)),
            Decision::Rejected(rejection) => self.reject(key, rejection),
        }
    }

    /// Hand-overs and rejections that an operation caused for other TaskRuns.
    fn apply_outcome(&mut self, assigned: Vec<Assignment>, rejected: Vec<Rejected>) {
        for Assignment { taskrun, host, .. } in assigned {
            if self.runs.contains_key(&taskrun) {
                self.assign(&taskrun, host);
            } else {
                // Cannot happen (the ledger only knows tracked TaskRuns); never leak
                // the slot if it does.
                let more = self.ledger.release(&taskrun);
                self.apply_outcome(more, Vec::new());
            }
        }
        for Rejected { taskrun, rejection } in rejected {
            self.reject(&taskrun, rejection);
        }
    }

    fn assign(&mut self, key: &TaskRunKey, host: HostName) {
        let now_ms = self.now_ms;
        let Some(run) = self.runs.get_mut(key) else {
            return;
        };
        let waited = run.queued_at_ms.take();
        run.phase = Phase::Provisioning { host: host.clone() };
        run.timer = None;
        run.assigned_at_ms.get_or_insert(now_ms);
        if run.allocation_start.is_none() {
            run.allocation_start = Some(now_ms.div_euclid(1000));
        }
        if let (Some(since), Some(platform)) = (waited, run.valid_platform().cloned()) {
            self.metric(Metric::WaitTime {
                platform,
                seconds: (now_ms - since).max(0) as f64 / 1000.0,
            });
        }
        self.event(
            key,
            EventReason::Allocated,
            format!("allocated host {host}"),
        );
        self.step(key);
    }

    fn queue(&mut self, key: &TaskRunKey, reason: QueueReason, ahead: Option<usize>) {
        let now_ms = self.now_ms;
        let Some(run) = self.runs.get_mut(key) else {
            return;
        };
        let was_queued = matches!(run.phase, Phase::Queued { .. });
        let marked = match run.phase {
            Phase::Queued { marked, .. } => marked,
            _ => false,
        };
        run.phase = Phase::Queued { reason, marked };
        if !was_queued {
            run.queued_at_ms = Some(now_ms);
        }
        if run.allocation_start.is_none() {
            run.allocation_start = Some(now_ms.div_euclid(1000));
        }
        let platform = run.platform_raw.clone();
        let note = match (reason, ahead) {
            (QueueReason::ConfigMissing, _) => format!(
                "waiting for the host-config ConfigMap in namespace {}: {}",
                self.settings.namespace, self.missing_reason
            ),
            (QueueReason::PoolFull, Some(0)) => {
                format!("waiting for a free {platform} host: next in the queue")
            }
            (QueueReason::PoolFull, Some(ahead)) => {
                format!("waiting for a free {platform} host: {ahead} TaskRun(s) ahead in the queue")
            }
            (QueueReason::PoolFull, None) => format!("waiting for a free {platform} host"),
        };
        self.event(key, EventReason::Waiting, note);
        self.step(key);
    }

    fn reject(&mut self, key: &TaskRunKey, rejection: Rejection) {
        // A platform that lost its hosts may have become local or dynamic: ask the
        // configuration, which also words the reason best.
        let routed = self
            .runs
            .get(key)
            .and_then(|r| r.valid_platform().cloned())
            .zip(self.config.clone())
            .map(|(p, c)| match c.route(&p) {
                Route::Local => None,
                Route::Fail(err) => Some(err.to_string()),
                Route::Pool(_) => Some(rejection.to_string()),
            });
        match routed {
            Some(None) => {
                if let Some(run) = self.runs.get_mut(key) {
                    run.phase = Phase::Local { written: false };
                }
                self.step(key);
            }
            Some(Some(message)) => self.fail(key, message),
            None => self.fail(key, rejection.to_string()),
        }
    }

    fn fail(&mut self, key: &TaskRunKey, message: String) {
        let Some(run) = self.runs.get_mut(key) else {
            return;
        };
        run.phase = Phase::Failed {
            message: message.clone(),
            written: false,
        };
        run.timer = None;
        let platform = run.platform_raw.clone();
        self.metric(Metric::AllocationFailure { platform });
        self.event(key, EventReason::AllocationFailed, message);
        self.step(key);
    }

    fn release(&mut self, key: &TaskRunKey, host: Option<HostName>) {
        let now_ms = self.now_ms;
        if let Some(run) = self.runs.get_mut(key) {
            run.phase = Phase::Releasing {
                host,
                since_ms: now_ms,
                abandoned: None,
            };
        }
        self.step(key);
    }

    fn done(&mut self, key: &TaskRunKey) {
        if let Some(run) = self.runs.get_mut(key) {
            run.phase = Phase::Done;
            if run.gone {
                self.runs.remove(key);
            }
        }
    }

    /// A TaskRun vanished (its operation found it gone): free whatever it held.
    fn forget(&mut self, key: &TaskRunKey) {
        if let Some(Phase::Queued {
            reason: QueueReason::PoolFull,
            ..
        }) = self.runs.remove(key).map(|r| r.phase)
        {
            self.ledger.cancel(key);
        }
        let assigned = self.ledger.release(key);
        self.apply_outcome(assigned, Vec::new());
    }

    fn host_down(&mut self, host: &HostName, reason: &str) {
        let assigned = self.ledger.set_health(host, false);
        self.apply_outcome(assigned, Vec::new());
        self.out.push(Command::Probe {
            host: host.clone(),
            reason: Some(reason.to_owned()),
        });
    }

    // ----- deadlines -----

    fn queue_deadline(&self, key: &TaskRunKey, reason: QueueReason) -> Option<i64> {
        let run = self.runs.get(key)?;
        match reason {
            QueueReason::ConfigMissing => {
                Some(run.queued_at_ms? + self.settings.config_grace.as_millis() as i64)
            }
            QueueReason::PoolFull => {
                let timeout = self.config.as_ref()?.settings.allocation_timeout?;
                Some(run.allocation_start? * 1000 + timeout.as_millis() as i64)
            }
        }
    }

    fn queue_timeout_message(&self, key: &TaskRunKey, reason: QueueReason) -> String {
        let platform = self
            .runs
            .get(key)
            .map(|r| r.platform_raw.clone())
            .unwrap_or_default();
        match reason {
            QueueReason::ConfigMissing => format!(
                "the host-config ConfigMap is missing, so no host can be chosen for platform \
                 {platform}: {}. A cluster admin must create host-config in namespace {} \
                 (see config/examples/host-config.yaml)",
                self.missing_reason, self.settings.namespace
            ),
            QueueReason::PoolFull => {
                let timeout = self
                    .config
                    .as_ref()
                    .and_then(|c| c.settings.allocation_timeout)
                    .map_or(0, |t| t.as_secs());
                format!(
                    "no {platform} host became free within the allocation timeout of \
                     {timeout}s (allocation-timeout in host-config); the pool is busy: run \
                     the build again later, or ask a cluster admin to add hosts or raise the \
                     timeout"
                )
            }
        }
    }

    fn set_timer(&mut self, key: &TaskRunKey, at: i64) {
        if let Some(run) = self.runs.get_mut(key).filter(|r| r.timer != Some(at)) {
            run.timer = Some(at);
            self.timers.insert(at, key.clone());
        }
    }

    // ----- commands -----

    fn issue(&mut self, key: &TaskRunKey, op: Op, command: Command) {
        if let Some(run) = self.runs.get_mut(key) {
            run.in_flight = Some(op);
        }
        self.out.push(command);
    }

    fn order(&self, key: &TaskRunKey) -> Option<TaskRunOrder> {
        let run = self.runs.get(key)?;
        Some(TaskRunOrder {
            key: key.clone(),
            uid: run.uid.clone(),
            platform: run.valid_platform()?.clone(),
        })
    }

    fn issue_provision(&mut self, key: &TaskRunKey, host: &HostName) {
        let (Some(taskrun), Some(definition)) = (self.order(key), self.hosts.get(host).cloned())
        else {
            // A slot on a host we never saw configured cannot be provisioned: fail over.
            let failure = HostFailure {
                kind: HostFailureKind::AdminAccess,
                message: format!("host {host} is not defined in host-config"),
            };
            self.on_provision_failed(key, host.clone(), failure);
            return;
        };
        let Some(run) = self.runs.get(key) else {
            return;
        };
        let settings = self
            .config
            .as_ref()
            .map(|c| c.settings.clone())
            .unwrap_or_default();
        let order = ProvisionOrder {
            user: UserName::for_taskrun(&key.name, &key.namespace),
            failed_hosts: run.failed_hosts.iter().cloned().collect(),
            allocation_start: run.allocation_start,
            key_lifetime: settings.user_key_lifetime,
            host_key_checking: settings.host_key_checking,
            host: definition,
            taskrun,
        };
        self.issue(key, Op::Provision, Command::Provision(order));
    }

    fn issue_wait(&mut self, key: &TaskRunKey) {
        let Some(run) = self.runs.get(key) else {
            return;
        };
        let taskrun = match self.order(key) {
            Some(order) => order,
            None => return,
        };
        let order = WaitOrder {
            taskrun,
            failed_hosts: run.failed_hosts.iter().cloned().collect(),
            allocation_start: run.allocation_start,
        };
        self.issue(key, Op::Wait, Command::Wait(order));
    }

    fn issue_local(&mut self, key: &TaskRunKey) {
        if let Some(order) = self.order(key) {
            self.issue(key, Op::Local, Command::ServeLocal(order));
        }
    }

    fn issue_fail(&mut self, key: &TaskRunKey, message: String) {
        let Some(run) = self.runs.get(key) else {
            return;
        };
        let order = FailOrder {
            key: key.clone(),
            uid: run.uid.clone(),
            platform: run.platform_raw.clone(),
            message,
            failed_hosts: run.failed_hosts.iter().cloned().collect(),
        };
        self.issue(key, Op::Fail, Command::Fail(order));
    }

    fn issue_release(&mut self, key: &TaskRunKey, host: Option<HostName>) {
        let order = ReleaseOrder {
            key: key.clone(),
            host: host.and_then(|h| self.hosts.get(&h).cloned()),
            user: UserName::for_taskrun(&key.name, &key.namespace),
            host_key_checking: self.host_key_checking(),
        };
        self.issue(key, Op::Release, Command::Release(order));
    }

    fn event(&mut self, key: &TaskRunKey, reason: EventReason, note: String) {
        let uid = self
            .runs
            .get(key)
            .map(|r| r.uid.clone())
            .unwrap_or_default();
        self.out.push(Command::Event(EventOrder {
            key: key.clone(),
            uid,
            reason,
            note,
        }));
    }

    fn metric(&mut self, metric: Metric) {
        self.out.push(Command::Metric(metric));
    }
}

/// What a TaskRun found at start-up contributes to the rebuild.
enum Resume {
    /// It holds or waits for a slot: rebuild the ledger with it.
    Recorded(RecordedTaskRun),
    /// It has not been placed yet: decide once the ledger is rebuilt.
    Fresh,
    /// It needs no slot (local, or finished without one).
    Nothing,
}

/// Sets the phase a TaskRun resumes in after a (re)start, from what it records.
fn resume(
    key: &TaskRunKey,
    obs: &Observed,
    run: &mut Run,
    config: Option<&PoolConfig>,
    now_ms: i64,
) -> Resume {
    match obs.assigned_host.as_deref() {
        // The label comes before the Secret: write it again (idempotent) in case the
        // previous controller stopped in between.
        Some(LOCALHOST) => {
            run.phase = Phase::Local { written: false };
            Resume::Nothing
        }
        Some(name) => {
            let Ok(host) = HostName::parse(name) else {
                // A label we cannot have written: decide afresh.
                return Resume::Fresh;
            };
            let platform = run.valid_platform().cloned();
            // An unfinished one is provisioned again (idempotent: the shell keeps an
            // existing access Secret), a finished one released, and one we could never
            // have placed is cleaned up.
            run.phase = if run.finished || platform.is_none() {
                Phase::Releasing {
                    host: Some(host.clone()),
                    since_ms: now_ms,
                    abandoned: None,
                }
            } else {
                Phase::Provisioning { host: host.clone() }
            };
            match platform {
                Some(platform) => Resume::Recorded(RecordedTaskRun {
                    request: request(key, run, platform),
                    assigned_host: Some(host),
                }),
                None => Resume::Nothing,
            }
        }
        None => {
            let pooled = (!run.finished)
                .then(|| run.valid_platform().cloned())
                .flatten()
                .filter(|p| config.is_some_and(|c| matches!(c.route(p), Route::Pool(_))));
            match pooled {
                Some(platform) => {
                    run.phase = Phase::Queued {
                        reason: QueueReason::PoolFull,
                        marked: obs.waiting,
                    };
                    Resume::Recorded(RecordedTaskRun {
                        request: request(key, run, platform),
                        assigned_host: None,
                    })
                }
                None => Resume::Fresh,
            }
        }
    }
}

fn request(key: &TaskRunKey, run: &Run, platform: Platform) -> TaskRunRequest {
    TaskRunRequest {
        key: key.clone(),
        platform,
        created: run.created,
        failed_hosts: run.failed_hosts.clone(),
    }
}

/// Capped exponential backoff in milliseconds: base, 2×base, 4×base, … up to max.
fn backoff(settings: &CoreSettings, attempts: u32) -> i64 {
    let base = settings.retry_base.as_millis() as i64;
    let max = settings.retry_max.as_millis() as i64;
    let factor = 1_i64
        .checked_shl(attempts.saturating_sub(1).min(30))
        .unwrap_or(i64::MAX);
    base.saturating_mul(factor).min(max).max(1)
}
