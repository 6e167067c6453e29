//! Model-based property test of the core.
//!
//! A small model of the cluster (TaskRuns with our marks, Secrets) and of the build
//! hosts (their users) carries out the core's commands the way the shell does, with
//! random outcomes: API errors part-way through, host failures, watch events that lag
//! behind, TaskRuns that finish, are cancelled or deleted at any moment, controller
//! restarts in the middle of an operation, host outages and config changes. After every
//! step it checks the safety rules; at the end it lets everything settle and checks that
//! every TaskRun was served and nothing was left behind.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use proptest::prelude::*;

use super::tests::{Command, Feed, T0, candidate, config_with, key, present, start_core};
use super::*;

const PLATFORMS: [&str; 5] = [
    "linux/arm64",
    "linux/s390x",
    "local",
    "linux/riscv64",
    "Linux/Bad",
];

fn config(variant: u8) -> PoolConfig {
    // Variant 0: the base pool; 1: a1 drained and a2 raised; 2: z1 removed.
    let hosts: &[(&str, &str, u32)] = match variant % 3 {
        0 => &[
            ("a1", "linux/arm64", 1),
            ("a2", "linux/arm64", 2),
            ("z1", "linux/s390x", 1),
        ],
        1 => &[
            ("a1", "linux/arm64", 1),
            ("a2", "linux/arm64", 3),
            ("z1", "linux/s390x", 1),
        ],
        _ => &[("a1", "linux/arm64", 1), ("a2", "linux/arm64", 1)],
    };
    let mut extra = vec![("local-platforms", "local")];
    if variant % 3 == 1 {
        extra.push(("host.a1.state", "drain"));
    }
    config_with(hosts, &extra)
}

#[derive(Clone, Debug)]
enum Action {
    Arrive {
        platform: usize,
        created: i64,
    },
    Finish(usize),
    Delete(usize),
    /// Carry out the n-th pending command with the given outcome.
    Complete {
        index: usize,
        outcome: Outcome,
    },
    /// Deliver the oldest lagging watch event.
    DeliverWatch,
    /// Time passes.
    Tick(i64),
    /// A host stops answering, or comes back.
    Outage {
        host: usize,
        down: bool,
    },
    Config(u8),
    /// The controller restarts; in-flight commands stop part-way.
    Restart {
        partial: u8,
    },
    /// The periodic reaper visits a host.
    Reap(usize),
}

#[derive(Clone, Copy, Debug)]
enum Outcome {
    Success,
    /// The API server fails after `step` writes.
    ApiError {
        step: u8,
    },
    /// The host command fails; its cleanup works.
    HostCommand,
    /// The host command fails and so does its cleanup.
    HostCommandLeftover,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (0..PLATFORMS.len(), 0i64..50).prop_map(|(platform, created)| Action::Arrive { platform, created }),
        3 => (0usize..64).prop_map(Action::Finish),
        1 => (0usize..64).prop_map(Action::Delete),
        8 => (0usize..8, prop_oneof![
                6 => Just(Outcome::Success),
                2 => (0u8..4).prop_map(|step| Outcome::ApiError { step }),
                1 => Just(Outcome::HostCommand),
                1 => Just(Outcome::HostCommandLeftover),
            ]).prop_map(|(index, outcome)| Action::Complete { index, outcome }),
        4 => Just(Action::DeliverWatch),
        2 => (1i64..90_000).prop_map(Action::Tick),
        1 => (0usize..3, any::<bool>()).prop_map(|(host, down)| Action::Outage { host, down }),
        1 => (0u8..3).prop_map(Action::Config),
        1 => (0u8..4).prop_map(|partial| Action::Restart { partial }),
        1 => (0usize..3).prop_map(Action::Reap),
    ]
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum SecretKind {
    Access(String),
    Local,
    Error,
}

/// A TaskRun in the model cluster.
#[derive(Clone, Debug)]
struct ModelTaskRun {
    platform: String,
    created: i64,
    finished: bool,
    deleting: bool,
    finalizer: bool,
    assigned: Option<String>,
    waiting: bool,
    failed: BTreeSet<String>,
    secret: Option<SecretKind>,
}

struct Model {
    core: Core,
    config_variant: u8,
    taskruns: BTreeMap<String, ModelTaskRun>,
    users: BTreeMap<String, BTreeSet<UserName>>,
    down: BTreeSet<String>,
    pending: Vec<Command>,
    watch: VecDeque<Input>,
    now: i64,
    next_name: usize,
    peak: BTreeMap<String, u32>,
    /// Hosts the core took out of service; the prober brings them back.
    probing: BTreeSet<String>,
}

const HOSTS: [&str; 3] = ["a1", "a2", "z1"];

impl Model {
    fn new() -> Self {
        let (core, commands) = start_core(CoreSettings::default(), present(config(0)), [], T0);
        let mut model = Model {
            core,
            config_variant: 0,
            taskruns: BTreeMap::new(),
            users: BTreeMap::new(),
            down: BTreeSet::new(),
            pending: Vec::new(),
            watch: VecDeque::new(),
            now: T0,
            next_name: 0,
            peak: BTreeMap::new(),
            probing: BTreeSet::new(),
        };
        model.record_peaks();
        model.absorb(commands);
        for host in HOSTS {
            model.probe(host).expect("initial probe");
        }
        model
    }

    fn observed(&self, name: &str) -> Option<Observed> {
        let tr = self.taskruns.get(name)?;
        let mut obs = candidate(name, &tr.platform, tr.created);
        obs.finished = tr.finished;
        obs.deleting = tr.deleting;
        obs.finalizer = tr.finalizer;
        obs.assigned_host = tr.assigned.clone();
        obs.waiting = tr.waiting;
        obs.failed_hosts = tr
            .failed
            .iter()
            .map(|h| HostName::parse(h).unwrap())
            .collect();
        Some(obs)
    }

    /// The cluster changed: a watch event is on its way (delivered later).
    fn changed(&mut self, name: &str) {
        let event = match self.observed(name) {
            Some(obs) => Input::Observed(obs),
            None => Input::Deleted(key(name)),
        };
        self.watch.push_back(event);
    }

    fn feed(&mut self, input: Input) -> Result<(), TestCaseError> {
        let out = self.core.feed(input, self.now);
        self.absorb(out);
        self.check()
    }

    fn absorb(&mut self, commands: Vec<Command>) {
        for command in commands {
            match command {
                Command::Event(_) | Command::Metric(_) => {}
                Command::Probe { host, .. } => {
                    self.probing.insert(host.to_string());
                }
                work => self.pending.push(work),
            }
        }
    }

    /// The most users `host` may have: its highest configured concurrency so far
    /// (slots granted before an admin lowers it are kept until they finish; the
    /// ledger's own property tests check that no slot is granted above the current one).
    fn concurrency(&self, host: &str) -> Option<u32> {
        self.peak.get(host).copied()
    }

    fn record_peaks(&mut self) {
        for h in config(self.config_variant).hosts.values() {
            let peak = self.peak.entry(h.name.to_string()).or_default();
            *peak = (*peak).max(h.concurrency);
        }
    }

    /// Safety rules that hold after every step.
    fn check(&self) -> Result<(), TestCaseError> {
        let mut keys = BTreeSet::new();
        for command in &self.pending {
            let key = command_key(command);
            prop_assert!(keys.insert(key.clone()), "two commands in flight for {key}");
        }
        Ok(())
    }

    fn apply(&mut self, index: usize, outcome: Outcome) -> Result<(), TestCaseError> {
        if let Some((key, report)) = self.execute(index, outcome)? {
            self.feed(Input::Report(key, report))?;
        }
        Ok(())
    }

    /// Carries out a pending command in the model and returns its report.
    fn execute(
        &mut self,
        index: usize,
        outcome: Outcome,
    ) -> Result<Option<(TaskRunKey, Report)>, TestCaseError> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        let command = self.pending.remove(index % self.pending.len());
        let name = command_key(&command).name;
        let steps = match outcome {
            Outcome::ApiError { step } => Some(step),
            _ => None,
        };
        let mut writes = 0u8;
        // Each cluster write may be the one that fails.
        let mut write = |model: &mut Model, f: &mut dyn FnMut(&mut ModelTaskRun)| -> bool {
            if steps == Some(writes) {
                return false;
            }
            writes += 1;
            if let Some(tr) = model.taskruns.get_mut(&name) {
                f(tr);
            }
            model.changed(&name);
            true
        };
        let exists = self.taskruns.contains_key(&name);
        let report = match &command {
            Command::Provision(order) => {
                let host = order.host.name.to_string();
                let failed: BTreeSet<String> =
                    order.failed_hosts.iter().map(ToString::to_string).collect();
                if !exists {
                    Report::Gone
                } else if !(write(self, &mut |tr| tr.finalizer = true)
                    && write(self, &mut |tr| {
                        tr.assigned = Some(host.clone());
                        tr.waiting = false;
                        tr.failed.extend(failed.iter().cloned());
                    }))
                {
                    Report::ApiError("patch".into())
                } else if self.taskruns[&name].secret == Some(SecretKind::Access(host.clone()))
                    && self
                        .users
                        .get(&host)
                        .is_some_and(|u| u.contains(&order.user))
                {
                    Report::AlreadyProvisioned
                } else if self.down.contains(&host) {
                    let _ = write(self, &mut |tr| {
                        tr.assigned = None;
                        tr.failed.insert(host.clone());
                    });
                    Report::ProvisionFailed(HostFailure {
                        kind: HostFailureKind::Unreachable,
                        message: "down".into(),
                    })
                } else if matches!(outcome, Outcome::HostCommand | Outcome::HostCommandLeftover) {
                    // The user may exist from an earlier attempt; the op removes it again
                    // unless that fails too.
                    let leftover = matches!(outcome, Outcome::HostCommandLeftover);
                    if !leftover {
                        self.users
                            .entry(host.clone())
                            .or_default()
                            .remove(&order.user);
                    }
                    let _ = write(self, &mut |tr| {
                        tr.assigned = None;
                        tr.failed.insert(host.clone());
                    });
                    Report::ProvisionFailed(HostFailure {
                        kind: if leftover {
                            HostFailureKind::CommandWithLeftover
                        } else {
                            HostFailureKind::Command
                        },
                        message: "useradd failed".into(),
                    })
                } else {
                    let limit = self.concurrency(&host).unwrap_or(0) as usize;
                    let users = self.users.entry(host.clone()).or_default();
                    users.insert(order.user.clone());
                    prop_assert!(
                        users.len() <= limit,
                        "host {host} has {} users, concurrency {limit}: {users:?}",
                        users.len()
                    );
                    let secret = SecretKind::Access(host.clone());
                    if write(self, &mut |tr| tr.secret = Some(secret.clone())) {
                        Report::Provisioned
                    } else {
                        Report::ApiError("secret".into())
                    }
                }
            }
            Command::Wait(order) => {
                let failed: BTreeSet<String> =
                    order.failed_hosts.iter().map(ToString::to_string).collect();
                if !exists {
                    Report::Gone
                } else if write(self, &mut |tr| {
                    tr.waiting = true;
                    tr.assigned = None;
                    tr.failed.extend(failed.iter().cloned());
                }) {
                    Report::Done
                } else {
                    Report::ApiError("patch".into())
                }
            }
            Command::ServeLocal(_) | Command::Fail(_) => {
                let local = matches!(command, Command::ServeLocal(_));
                if !exists {
                    Report::Gone
                } else if !(write(self, &mut |tr| tr.finalizer = true)
                    && write(self, &mut |tr| {
                        tr.assigned = local.then(|| "localhost".to_owned());
                        tr.waiting = false;
                    }))
                {
                    Report::ApiError("patch".into())
                } else if write(self, &mut |tr| {
                    tr.secret = Some(if local {
                        SecretKind::Local
                    } else {
                        SecretKind::Error
                    });
                }) {
                    Report::Done
                } else {
                    Report::ApiError("secret".into())
                }
            }
            Command::Release(order) => {
                let host = order.host.as_ref().map(|h| h.name.to_string());
                if let Some(h) = host.as_ref().filter(|h| self.down.contains(*h)) {
                    Report::CleanupFailed(HostFailure {
                        kind: HostFailureKind::Unreachable,
                        message: format!("{h} down"),
                    })
                } else {
                    if let Some(h) = &host {
                        self.users.entry(h.clone()).or_default().remove(&order.user);
                    }
                    if !write(self, &mut |tr| tr.secret = None) {
                        Report::ApiError("secret".into())
                    } else if !(write(self, &mut |tr| {
                        tr.assigned = None;
                        tr.waiting = false;
                    }) && write(self, &mut |tr| tr.finalizer = false))
                    {
                        Report::ApiError("patch".into())
                    } else {
                        if self.taskruns.get(&name).is_some_and(|t| t.deleting) {
                            self.taskruns.remove(&name);
                            self.changed(&name);
                        }
                        Report::Released
                    }
                }
            }
            other => unreachable!("not work: {other:?}"),
        };
        Ok(Some((key(&name), report)))
    }

    fn step(&mut self, action: Action) -> Result<(), TestCaseError> {
        match action {
            Action::Arrive { platform, created } => {
                let name = format!("tr{}", self.next_name);
                self.next_name += 1;
                self.taskruns.insert(
                    name.clone(),
                    ModelTaskRun {
                        platform: PLATFORMS[platform].to_owned(),
                        created,
                        finished: false,
                        deleting: false,
                        finalizer: false,
                        assigned: None,
                        waiting: false,
                        failed: BTreeSet::new(),
                        secret: None,
                    },
                );
                self.changed(&name);
            }
            Action::Finish(i) | Action::Delete(i) => {
                let Some(name) = self
                    .taskruns
                    .keys()
                    .nth(i % self.taskruns.len().max(1))
                    .cloned()
                else {
                    return Ok(());
                };
                let delete = matches!(action, Action::Delete(_));
                let tr = self.taskruns.get_mut(&name).unwrap();
                tr.finished = true;
                if delete {
                    if tr.finalizer {
                        tr.deleting = true;
                    } else {
                        self.taskruns.remove(&name);
                    }
                }
                self.changed(&name);
            }
            Action::Complete { index, outcome } => self.apply(index, outcome)?,
            Action::DeliverWatch => {
                if let Some(event) = self.watch.pop_front() {
                    self.feed(event)?;
                }
            }
            Action::Tick(ms) => {
                self.now += ms;
                self.feed(Input::Tick)?;
            }
            Action::Outage { host, down } => {
                let host = HOSTS[host].to_owned();
                if down {
                    self.down.insert(host);
                } else {
                    self.down.remove(&host);
                    self.probe(&host)?;
                }
            }
            Action::Config(variant) => {
                self.config_variant = variant;
                self.record_peaks();
                self.feed(Input::Config(present(config(variant))))?;
            }
            Action::Reap(host) => {
                let host = HOSTS[host];
                let configured = config(self.config_variant)
                    .hosts
                    .contains_key(&HostName::parse(host).unwrap());
                if configured && !self.down.contains(host) {
                    self.reap(host)?;
                }
            }
            Action::Restart { partial } => {
                // Commands in flight stop after a prefix of their writes.
                let pending = std::mem::take(&mut self.pending);
                for (i, command) in pending.into_iter().enumerate() {
                    if partial > 0 && i % 2 == 0 {
                        // The report is lost with the controller.
                        self.pending.push(command);
                        let index = self.pending.len() - 1;
                        self.execute(index, Outcome::ApiError { step: partial })?;
                    }
                }
                self.pending.clear();
                self.watch.clear();
                let snapshot: Vec<Observed> = self
                    .taskruns
                    .keys()
                    .filter_map(|n| self.observed(n))
                    .collect();
                let (core, commands) = start_core(
                    CoreSettings::default(),
                    present(config(self.config_variant)),
                    snapshot,
                    self.now,
                );
                self.core = core;
                // The new controller probes every host before using it.
                self.probing.clear();
                self.absorb(commands);
                for host in HOSTS {
                    self.probe(host)?;
                }
                self.check()?;
            }
        }
        Ok(())
    }

    /// The prober reaches a host the core took down: it reaps leftovers first, then
    /// reports the host up.
    fn probe(&mut self, host: &str) -> Result<(), TestCaseError> {
        if self.down.contains(host) || !self.probing.remove(host) {
            return Ok(());
        }
        self.reap(host)?;
        self.feed(Input::Health(HostName::parse(host).unwrap(), true))
    }

    fn reap(&mut self, host: &str) -> Result<(), TestCaseError> {
        let name = HostName::parse(host).unwrap();
        let users: Vec<UserName> = self
            .users
            .get(host)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let reap = self.core.reapable(&name, &users);
        let set = self.users.entry(host.to_owned()).or_default();
        for user in &reap {
            set.remove(user);
        }
        let remaining = set.iter().cloned().collect();
        self.feed(Input::Reaped(name, remaining))
    }

    /// Lets everything settle: hosts up, every command succeeds, events delivered,
    /// timers fire. Fails on a livelock.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        self.down.clear();
        let mut reaped = false;
        for _ in 0..2_000 {
            for host in HOSTS {
                self.probe(host)?;
            }
            if let Some(event) = self.watch.pop_front() {
                self.feed(event)?;
            } else if !self.pending.is_empty() {
                self.apply(0, Outcome::Success)?;
            } else if let Some(at) = self.core.next_deadline() {
                self.now = self.now.max(at.as_millisecond());
                self.feed(Input::Tick)?;
            } else if !reaped {
                // The periodic reaper passes over every configured host; what it frees
                // is served in the following rounds.
                reaped = true;
                for host in 0..HOSTS.len() {
                    self.step(Action::Reap(host))?;
                }
            } else {
                return Ok(());
            }
        }
        Err(TestCaseError::fail("the core did not settle (livelock)"))
    }

    /// After settling: every unfinished TaskRun was answered.
    fn check_served(&self) -> Result<(), TestCaseError> {
        for (name, tr) in &self.taskruns {
            if tr.finished {
                continue;
            }
            prop_assert!(
                tr.secret.is_some() || tr.waiting,
                "{name} ({}) neither served nor waiting: {tr:?}",
                tr.platform
            );
            if tr.waiting {
                // Only while no host it may use has a free slot.
                for host in config(self.config_variant).hosts.values() {
                    let usable = host.platform.as_str() == tr.platform
                        && host.state == crate::config::HostState::Active
                        && !tr.failed.contains(host.name.as_str());
                    let used = self
                        .taskruns
                        .values()
                        .filter(|t| t.assigned.as_deref() == Some(host.name.as_str()))
                        .count();
                    prop_assert!(
                        !usable || used >= host.concurrency as usize,
                        "{name} waits while host {} has {used} of {} slots used",
                        host.name,
                        host.concurrency
                    );
                }
            }
        }
        Ok(())
    }

    /// After everything finished and settled: nothing is left anywhere.
    fn check_clean(&self) -> Result<(), TestCaseError> {
        let configured = config(self.config_variant);
        for (host, users) in &self.users {
            // A host removed from host-config before a restart cannot be reached any
            // more (documented; the core publishes a CleanupFailed Event).
            if configured
                .hosts
                .contains_key(&HostName::parse(host).unwrap())
            {
                prop_assert!(users.is_empty(), "users left on {host}: {users:?}");
            }
        }
        for (name, tr) in &self.taskruns {
            prop_assert!(!tr.finalizer, "{name} keeps the finalizer: {tr:?}");
            prop_assert!(
                tr.assigned.is_none() && !tr.waiting,
                "{name} keeps labels: {tr:?}"
            );
            prop_assert!(tr.secret.is_none(), "{name} keeps its Secret: {tr:?}");
        }
        let gauges = self.core.gauges();
        for (host, gauge) in &gauges.hosts {
            // A removed host keeps the slot of a user that could not be cleaned (above).
            if configured
                .hosts
                .contains_key(&HostName::parse(host).unwrap())
            {
                prop_assert_eq!(gauge.used, 0, "slots still used on {}", host);
            }
        }
        Ok(())
    }
}

fn command_key(command: &Command) -> TaskRunKey {
    match command {
        Command::Provision(o) => o.taskrun.key.clone(),
        Command::Wait(o) => o.taskrun.key.clone(),
        Command::ServeLocal(o) => o.key.clone(),
        Command::Fail(o) => o.key.clone(),
        Command::Release(o) => o.key.clone(),
        other => unreachable!("not work: {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_core_never_overfills_a_host_serves_everyone_and_leaves_nothing_behind(
        actions in proptest::collection::vec(action(), 1..120)
    ) {
        let mut model = Model::new();
        for action in actions {
            model.step(action)?;
        }
        model.settle()?;
        model.check_served()?;
        let names: Vec<String> = model.taskruns.keys().cloned().collect();
        for name in names {
            if let Some(tr) = model.taskruns.get_mut(&name) {
                tr.finished = true;
            }
            model.changed(&name);
        }
        model.settle()?;
        model.check_clean()?;
    }
}
