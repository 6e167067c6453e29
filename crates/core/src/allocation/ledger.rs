//! The ledger: hosts with their running TaskRuns, and the waiters of each platform.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::queue::{QueueKey, WaitQueue};
use super::{
    Assignment, Decision, Failover, HostUsage, Outcome, Placement, RecordedTaskRun, Rejected,
    Rejection, TaskRunKey, TaskRunRequest,
};
use crate::config::{HostName, HostState, PoolConfig};
use crate::platform::Platform;

/// What the ledger takes from a host's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
struct HostSettings {
    platform: Platform,
    concurrency: u32,
    state: HostState,
}

/// One host's slots.
#[derive(Clone, Debug, PartialEq, Eq)]
struct HostSlots {
    /// `None`: removed from the configuration; kept only while TaskRuns still run on it.
    settings: Option<HostSettings>,
    healthy: bool,
    running: BTreeSet<TaskRunKey>,
}

impl HostSlots {
    fn new(settings: Option<HostSettings>, healthy: bool) -> Self {
        HostSlots {
            settings,
            healthy,
            running: BTreeSet::new(),
        }
    }

    /// Free slots for a new TaskRun: zero unless the host is configured, active and
    /// healthy; never negative after concurrency was lowered.
    fn free(&self) -> usize {
        match &self.settings {
            Some(s) if s.state == HostState::Active && self.healthy => {
                (s.concurrency as usize).saturating_sub(self.running.len())
            }
            _ => 0,
        }
    }

    /// Whether a TaskRun may wait for this host (it is configured and not disabled).
    fn may_serve(&self) -> bool {
        self.settings
            .as_ref()
            .is_some_and(|s| s.state != HostState::Disabled)
    }
}

/// A platform's hosts (with their slots, so a decision scans them without lookups)
/// and its waiters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Pool {
    hosts: BTreeMap<HostName, HostSlots>,
    queue: WaitQueue,
}

/// A TaskRun the ledger knows: running (`host` set) or waiting.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    request: TaskRunRequest,
    host: Option<HostName>,
}

impl Entry {
    fn queue_key(&self) -> QueueKey {
        QueueKey {
            created: self.request.created,
            taskrun: self.request.key.clone(),
        }
    }
}

/// Hosts, their running TaskRuns and the per-platform FIFO queues.
///
/// Two ledgers are equal when they hold the same hosts (configuration, health,
/// running TaskRuns) and the same waiters in the same order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    /// One pool per platform that has at least one configured host.
    pools: BTreeMap<Platform, Pool>,
    /// Hosts removed from the configuration that still run TaskRuns.
    retired: BTreeMap<HostName, HostSlots>,
    /// Where each host is: in the pool of this platform, or retired (`None`).
    location: HashMap<HostName, Option<Platform>>,
    taskruns: HashMap<TaskRunKey, Entry>,
    /// Hosts join unhealthy and take TaskRuns only once reported healthy (see
    /// [`Ledger::new_probing`]).
    probe_before_use: bool,
    /// Platforms whose hosts come and go (dynamic pools): their TaskRuns wait for a
    /// host instead of being rejected when none is there.
    elastic: BTreeSet<Platform>,
}

fn settings_of(config: &PoolConfig) -> BTreeMap<HostName, HostSettings> {
    config
        .pool_hosts()
        .map(|h| {
            (
                h.name.clone(),
                HostSettings {
                    platform: h.platform.clone(),
                    concurrency: h.concurrency,
                    state: h.state,
                },
            )
        })
        .collect()
}

impl Ledger {
    /// An empty ledger for the pool hosts of `config`, all assumed healthy.
    pub fn new(config: &PoolConfig) -> Self {
        Self::build(config, false)
    }

    /// An empty ledger whose hosts — these and any a later configuration adds — take
    /// no TaskRun until [`Ledger::set_health`] reports them healthy. The controller
    /// uses it so that a host is used only after it was reached and rid of leftover
    /// users, which would otherwise count against its slots unseen.
    pub fn new_probing(config: &PoolConfig) -> Self {
        Self::build(config, true)
    }

    fn build(config: &PoolConfig, probe_before_use: bool) -> Self {
        let mut ledger = Ledger {
            probe_before_use,
            elastic: config.elastic_platforms(),
            ..Ledger::default()
        };
        for (name, settings) in settings_of(config) {
            ledger.place_host(name, HostSlots::new(Some(settings), !probe_before_use));
        }
        ledger
    }

    /// Rebuilds the ledger after a restart from what the TaskRuns record: each
    /// TaskRun with an `assigned-host` label holds a slot on that host (even one no
    /// longer configured, or beyond a since-lowered concurrency), every other one
    /// waits. Then waiters get any slot that is free. Pass every unfinished candidate
    /// TaskRun without `assigned-host` (labelled waiting or not yet seen) and every
    /// TaskRun that still holds the label, finished or not; leave out local ones
    /// (`assigned-host: localhost`). O(n log n) for n TaskRuns.
    pub fn rebuild(
        config: &PoolConfig,
        recorded: impl IntoIterator<Item = RecordedTaskRun>,
    ) -> (Self, Outcome) {
        Self::rebuild_into(Ledger::new(config), recorded)
    }

    /// [`Ledger::rebuild`] into a [`Ledger::new_probing`] ledger: nothing is assigned
    /// until hosts are reported healthy.
    pub fn rebuild_probing(
        config: &PoolConfig,
        recorded: impl IntoIterator<Item = RecordedTaskRun>,
    ) -> (Self, Outcome) {
        Self::rebuild_into(Ledger::new_probing(config), recorded)
    }

    fn rebuild_into(
        mut ledger: Ledger,
        recorded: impl IntoIterator<Item = RecordedTaskRun>,
    ) -> (Self, Outcome) {
        let recorded = recorded.into_iter();
        // Sized up front: a restart rebuilds every TaskRun at once, and growing the
        // map step by step rehashes it again and again.
        ledger.taskruns.reserve(recorded.size_hint().0);
        let mut waiters = Vec::new();
        for record in recorded {
            let key = record.request.key.clone();
            if ledger.taskruns.contains_key(&key) {
                continue;
            }
            match record.assigned_host {
                Some(host) => {
                    if !ledger.location.contains_key(&host) {
                        let healthy = !ledger.probe_before_use;
                        ledger.place_host(host.clone(), HostSlots::new(None, healthy));
                    }
                    if let Some(slots) = ledger.slots_mut(&host) {
                        slots.running.insert(key.clone());
                    }
                    ledger.taskruns.insert(
                        key,
                        Entry {
                            request: record.request,
                            host: Some(host),
                        },
                    );
                }
                None => waiters.push(record.request),
            }
        }
        let mut outcome = Outcome::default();
        for request in waiters {
            if ledger.taskruns.contains_key(&request.key) {
                continue;
            }
            let key = request.key.clone();
            match ledger.rejection(&request.platform, &request.failed_hosts) {
                Some(rejection) => outcome.rejected.push(Rejected {
                    taskrun: key,
                    rejection,
                }),
                None => {
                    ledger.enqueue(request);
                }
            }
        }
        let platforms: Vec<Platform> = ledger.pools.keys().cloned().collect();
        for platform in platforms {
            outcome.assigned.extend(ledger.fill(&platform));
        }
        (ledger, outcome)
    }

    /// A TaskRun wants a slot. Idempotent: for a TaskRun the ledger already knows
    /// it answers where that TaskRun stands. O(hosts of the platform + log n).
    pub fn request(&mut self, request: TaskRunRequest) -> Decision {
        if let Some(placement) = self.placement(&request.key) {
            return match placement {
                Placement::Running(host) => Decision::Assigned(host),
                Placement::Waiting { ahead } => Decision::Queued { ahead },
            };
        }
        if let Some(rejection) = self.rejection(&request.platform, &request.failed_hosts) {
            return Decision::Rejected(rejection);
        }
        // Waiters cannot use any free slot (that is kept true after every
        // operation), so a newcomer taking one overtakes nobody.
        match self.choose(&request.platform, &request.failed_hosts) {
            Some(host) => {
                self.start(request, host.clone());
                Decision::Assigned(host)
            }
            None => Decision::Queued {
                ahead: self.enqueue(request),
            },
        }
    }

    /// A TaskRun no longer needs the pool: its host was cleaned after it finished,
    /// or it finished while waiting. Its slot goes at once to the oldest waiter that
    /// may use it; those assignments are returned. Unknown TaskRuns are ignored.
    pub fn release(&mut self, key: &TaskRunKey) -> Vec<Assignment> {
        let Some(entry) = self.taskruns.remove(key) else {
            return Vec::new();
        };
        match entry.host {
            None => {
                self.dequeue(&entry);
                Vec::new()
            }
            Some(host) => match self.free_slot(&host, key) {
                Some(platform) => self.fill(&platform),
                None => Vec::new(),
            },
        }
    }

    /// A waiting TaskRun finished: it leaves the queue. Returns false (and changes
    /// nothing) when it is not waiting; a running TaskRun is [`Ledger::release`]d
    /// after its host is cleaned.
    pub fn cancel(&mut self, key: &TaskRunKey) -> bool {
        match self.taskruns.get(key) {
            Some(entry) if entry.host.is_none() => {
                if let Some(entry) = self.taskruns.remove(key) {
                    self.dequeue(&entry);
                }
                true
            }
            _ => false,
        }
    }

    /// Provisioning the TaskRun on `host` failed: the host joins its failed-hosts,
    /// the slot is freed (and handed to a waiter that may use it), and the TaskRun
    /// is placed again on another host, or waits, or is rejected when every host
    /// failed. `None` when the TaskRun does not hold a slot on `host` (a stale report).
    pub fn provisioning_failed(&mut self, key: &TaskRunKey, host: &HostName) -> Option<Failover> {
        let entry = self.taskruns.remove(key)?;
        if entry.host.as_ref() != Some(host) {
            // A stale report: put it back untouched (one lookup on the common path).
            self.taskruns.insert(key.clone(), entry);
            return None;
        }
        let mut request = entry.request;
        request.failed_hosts.insert(host.clone());
        let freed_platform = self.free_slot(host, key);
        let mut decision = match self.rejection(&request.platform, &request.failed_hosts) {
            Some(rejection) => Decision::Rejected(rejection),
            None => match self.choose(&request.platform, &request.failed_hosts) {
                Some(other) => {
                    self.start(request, other.clone());
                    Decision::Assigned(other)
                }
                None => {
                    self.enqueue(request);
                    Decision::Queued { ahead: 0 }
                }
            },
        };
        let mut assigned = freed_platform.map_or_else(Vec::new, |p| self.fill(&p));
        if let Decision::Queued { .. } = decision {
            // The slot it freed may have gone to it again, or waiters moved.
            match self.placement(key) {
                Some(Placement::Running(h)) => {
                    assigned.retain(|a| &a.taskrun != key);
                    decision = Decision::Assigned(h);
                }
                Some(Placement::Waiting { ahead }) => decision = Decision::Queued { ahead },
                None => {}
            }
        }
        Some(Failover { decision, assigned })
    }

    /// A host's health changed. A host that comes back serves waiters at once (the
    /// assignments are returned); an unhealthy one takes no new TaskRuns.
    pub fn set_health(&mut self, host: &HostName, healthy: bool) -> Vec<Assignment> {
        let Some(slots) = self.slots_mut(host) else {
            return Vec::new();
        };
        let was = std::mem::replace(&mut slots.healthy, healthy);
        match (&slots.settings, healthy && !was) {
            (Some(settings), true) => {
                let platform = settings.platform.clone();
                self.fill(&platform)
            }
            _ => Vec::new(),
        }
    }

    /// The configuration changed. Removed, drained or disabled hosts keep their
    /// running TaskRuns but get no new ones; lowered concurrency takes effect as
    /// TaskRuns finish; new hosts, raised concurrency and re-activated hosts serve
    /// waiters at once. Waiters whose platform has no host left they may use are
    /// rejected.
    pub fn apply_config(&mut self, config: &PoolConfig) -> Outcome {
        self.elastic = config.elastic_platforms();
        // Take every host out, update its settings, and put it back where they say.
        let mut wanted = settings_of(config);
        let mut all: Vec<(HostName, HostSlots)> =
            std::mem::take(&mut self.retired).into_iter().collect();
        for pool in self.pools.values_mut() {
            all.extend(std::mem::take(&mut pool.hosts));
        }
        self.location.clear();
        for (name, mut slots) in all {
            slots.settings = wanted.remove(&name);
            // A host that is gone and runs nothing is forgotten (with its health).
            if slots.settings.is_some() || !slots.running.is_empty() {
                self.place_host(name, slots);
            }
        }
        for (name, settings) in wanted {
            let healthy = !self.probe_before_use;
            self.place_host(name, HostSlots::new(Some(settings), healthy));
        }

        let mut outcome = Outcome::default();
        let platforms: Vec<Platform> = self.pools.keys().cloned().collect();
        for platform in &platforms {
            outcome.rejected.extend(self.reject_unservable(platform));
        }
        self.pools
            .retain(|_, pool| !pool.hosts.is_empty() || !pool.queue.is_empty());
        for platform in &platforms {
            outcome.assigned.extend(self.fill(platform));
        }
        outcome
    }

    /// Where a TaskRun stands, if the ledger knows it.
    pub fn placement(&self, key: &TaskRunKey) -> Option<Placement> {
        let entry = self.taskruns.get(key)?;
        Some(match &entry.host {
            Some(host) => Placement::Running(host.clone()),
            None => Placement::Waiting {
                ahead: self.ahead(&entry.request.platform, &entry.queue_key()),
            },
        })
    }

    /// The failed-hosts the ledger records for a TaskRun (to write the annotation).
    pub fn failed_hosts(&self, key: &TaskRunKey) -> Option<&BTreeSet<HostName>> {
        self.taskruns.get(key).map(|e| &e.request.failed_hosts)
    }

    /// How many TaskRuns wait for `platform`.
    pub fn waiting(&self, platform: &Platform) -> usize {
        self.pools.get(platform).map_or(0, |p| p.queue.len())
    }

    /// The waiters of `platform`, oldest first.
    pub fn waiters<'a>(&'a self, platform: &Platform) -> impl Iterator<Item = &'a TaskRunKey> + 'a {
        self.pools
            .get(platform)
            .into_iter()
            .flat_map(|p| p.queue.iter().map(|k| &k.taskrun))
    }

    /// Every host's slots, by name.
    pub fn hosts(&self) -> impl Iterator<Item = HostUsage> + '_ {
        let mut all: Vec<(&HostName, &HostSlots)> = self
            .pools
            .values()
            .flat_map(|p| p.hosts.iter())
            .chain(self.retired.iter())
            .collect();
        all.sort_unstable_by_key(|(name, _)| *name);
        all.into_iter().map(|(name, slots)| HostUsage {
            host: name.clone(),
            platform: slots.settings.as_ref().map(|s| s.platform.clone()),
            state: slots.settings.as_ref().map(|s| s.state),
            concurrency: slots.settings.as_ref().map_or(0, |s| s.concurrency),
            used: slots.running.len(),
            healthy: slots.healthy,
        })
    }

    /// The TaskRuns running on `host`.
    pub fn running_on<'a>(&'a self, host: &HostName) -> impl Iterator<Item = &'a TaskRunKey> + 'a {
        self.slots(host)
            .into_iter()
            .flat_map(|slots| slots.running.iter())
    }

    /// Number of TaskRuns the ledger knows (running and waiting).
    pub fn len(&self) -> usize {
        self.taskruns.len()
    }

    /// Whether the ledger knows no TaskRun.
    pub fn is_empty(&self) -> bool {
        self.taskruns.is_empty()
    }

    // ---- internals -------------------------------------------------------------

    /// Puts a host where its settings say: its platform's pool, or retired.
    fn place_host(&mut self, name: HostName, slots: HostSlots) {
        let platform = slots.settings.as_ref().map(|s| s.platform.clone());
        let hosts = match &platform {
            // `get_mut` first: `entry` would want its own copy of the platform name,
            // and every configuration change places every host again.
            Some(p) => match self.pools.get_mut(p) {
                Some(pool) => &mut pool.hosts,
                None => &mut self.pools.entry(p.clone()).or_default().hosts,
            },
            None => &mut self.retired,
        };
        hosts.insert(name.clone(), slots);
        self.location.insert(name, platform);
    }

    fn slots(&self, host: &HostName) -> Option<&HostSlots> {
        match self.location.get(host)? {
            Some(p) => self.pools.get(p)?.hosts.get(host),
            None => self.retired.get(host),
        }
    }

    fn slots_mut(&mut self, host: &HostName) -> Option<&mut HostSlots> {
        match self.location.get(host)? {
            Some(p) => self.pools.get_mut(p)?.hosts.get_mut(host),
            None => self.retired.get_mut(host),
        }
    }

    fn ahead(&self, platform: &Platform, key: &QueueKey) -> usize {
        self.pools.get(platform).map_or(0, |p| p.queue.ahead(key))
    }

    /// Why a TaskRun with these failed hosts can never be served, if it cannot.
    fn rejection(&self, platform: &Platform, failed: &BTreeSet<HostName>) -> Option<Rejection> {
        if self.elastic.contains(platform) {
            // A new instance may serve it.
            return None;
        }
        let mut any_servable = false;
        let hosts = self.pools.get(platform).into_iter().flat_map(|p| &p.hosts);
        for (host, _) in hosts.filter(|(_, slots)| slots.may_serve()) {
            if !failed.contains(host) {
                return None;
            }
            any_servable = true;
        }
        Some(if any_servable {
            Rejection::AllHostsFailed {
                platform: platform.clone(),
                failed: failed.iter().cloned().collect(),
            }
        } else {
            Rejection::NoHosts {
                platform: platform.clone(),
            }
        })
    }

    /// The best host with a free slot for a TaskRun with these failed hosts.
    fn choose(&self, platform: &Platform, failed: &BTreeSet<HostName>) -> Option<HostName> {
        let pool = self.pools.get(platform)?;
        pool.hosts
            .iter()
            .filter_map(|(h, slots)| {
                let free = slots.free();
                (free > 0 && !failed.contains(h)).then_some((
                    free,
                    Reverse(slots.running.len()),
                    Reverse(h),
                ))
            })
            .max()
            .map(|(_, _, Reverse(h))| h.clone())
    }

    fn start(&mut self, request: TaskRunRequest, host: HostName) {
        if let Some(slots) = self.slots_mut(&host) {
            slots.running.insert(request.key.clone());
        }
        self.taskruns.insert(
            request.key.clone(),
            Entry {
                request,
                host: Some(host),
            },
        );
    }

    /// Puts a TaskRun in its platform's queue; returns how many wait before it.
    fn enqueue(&mut self, request: TaskRunRequest) -> usize {
        let entry = Entry {
            request,
            host: None,
        };
        // Look the pool up before `entry()`, which would clone the platform name on
        // every call: rebuilding after a restart enqueues thousands of waiters.
        let pool = match self.pools.get_mut(&entry.request.platform) {
            Some(pool) => pool,
            None => self
                .pools
                .entry(entry.request.platform.clone())
                .or_default(),
        };
        let ahead = pool
            .queue
            .push(entry.queue_key(), &entry.request.failed_hosts);
        self.taskruns.insert(entry.request.key.clone(), entry);
        ahead
    }

    fn dequeue(&mut self, entry: &Entry) {
        self.dequeue_key(entry, &entry.queue_key());
    }

    /// [`Ledger::dequeue`] for a caller that already holds the waiter's queue key.
    fn dequeue_key(&mut self, entry: &Entry, queue_key: &QueueKey) {
        if let Some(pool) = self.pools.get_mut(&entry.request.platform) {
            pool.queue.remove(queue_key, &entry.request.failed_hosts);
        }
    }

    /// Takes a TaskRun off a host; returns the platform whose waiters may now use
    /// the slot. Forgets a removed host once it runs nothing.
    fn free_slot(&mut self, host: &HostName, key: &TaskRunKey) -> Option<Platform> {
        let slots = self.slots_mut(host)?;
        slots.running.remove(key);
        match &slots.settings {
            Some(settings) => Some(settings.platform.clone()),
            None => {
                if slots.running.is_empty() {
                    self.retired.remove(host);
                    self.location.remove(host);
                }
                None
            }
        }
    }

    /// Hands free slots of `platform` to waiters, oldest first among those that may
    /// use one, until no free slot is usable by any waiter.
    fn fill(&mut self, platform: &Platform) -> Vec<Assignment> {
        let mut assigned = Vec::new();
        while let Some(pool) = self.pools.get(platform) {
            if pool.queue.is_empty() {
                break;
            }
            let free = pool
                .hosts
                .iter()
                .filter(|(_, slots)| slots.free() > 0)
                .map(|(h, _)| h);
            // Within a failed-hosts group every waiter may use the same hosts, so
            // the oldest waiter that may use a free slot is one of the group heads.
            // Nearly always there is one group (no failed hosts): no allocation here,
            // this runs for every slot handed out.
            let next = pool
                .queue
                .heads()
                .filter(|(_, failed)| free.clone().any(|h| !failed.contains(h)))
                .map(|(key, _)| key)
                .min()
                .cloned();
            let Some(next) = next else {
                break;
            };
            let Some(entry) = self.taskruns.remove(&next.taskrun) else {
                break;
            };
            self.dequeue_key(&entry, &next);
            let Some(host) = self.choose(platform, &entry.request.failed_hosts) else {
                // Unreachable: the head was picked because a free host suits it.
                self.enqueue(entry.request);
                break;
            };
            assigned.push(Assignment {
                taskrun: entry.request.key.clone(),
                platform: platform.clone(),
                host: host.clone(),
            });
            self.start(entry.request, host);
        }
        assigned
    }

    /// Drops the waiters of `platform` that have no host left they may use.
    fn reject_unservable(&mut self, platform: &Platform) -> Vec<Rejected> {
        let Some(pool) = self.pools.get(platform) else {
            return Vec::new();
        };
        let doomed: Vec<(QueueKey, Rejection)> = pool
            .queue
            .groups()
            .filter_map(|(failed, group)| {
                self.rejection(platform, failed)
                    .map(|rejection| (group, rejection))
            })
            .flat_map(|(group, rejection)| {
                group.iter().map(move |k| (k.clone(), rejection.clone()))
            })
            .collect();
        let mut rejected = Vec::new();
        for (queue_key, rejection) in doomed {
            if let Some(entry) = self.taskruns.remove(&queue_key.taskrun) {
                self.dequeue(&entry);
            }
            rejected.push(Rejected {
                taskrun: queue_key.taskrun,
                rejection,
            });
        }
        rejected
    }
}
