//! Property tests: random sequences of arrivals, finishes, provisioning failures,
//! configuration changes, health flips and restarts, checked step by step against an
//! independent model of the rules.
//!
//! Checked after every step:
//! - every new assignment goes to a host that is configured for the platform, active,
//!   healthy, below its concurrency and not in the TaskRun's failed-hosts, and is the
//!   best such host (most free, fewest used, first name);
//! - FIFO: when a waiter is served, no older waiter of its platform could use any
//!   free slot;
//! - no waiter stays queued while a slot it may use is free;
//! - no slot leaks: the ledger's hosts, running TaskRuns and queues equal the model's;
//! - rejections are justified; queue positions are right;
//! - a restart (rebuild from what the TaskRun labels record) gives back an equal ledger.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::config::{self, PoolConfig};

const HOSTS: usize = 5;
const PLATFORMS: [&str; 3] = ["linux/arm64", "linux/s390x", "linux/ppc64le"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HostSpec {
    platform: usize,
    concurrency: u32,
    state: HostState,
}

type Spec = [Option<HostSpec>; HOSTS];

#[derive(Clone, Debug)]
enum Op {
    Arrive {
        platform: usize,
        created: i64,
        namespace: bool,
        failed: u8,
    },
    Finish(usize),
    ProvisioningFailed(usize),
    Reconfigure(Spec),
    Health(usize, bool),
    Restart,
}

fn host_spec() -> impl Strategy<Value = Option<HostSpec>> {
    prop_oneof![
        1 => Just(None),
        4 => (0..2usize, 1..=3u32, prop_oneof![
            6 => Just(HostState::Active),
            1 => Just(HostState::Drain),
            1 => Just(HostState::Disabled),
        ])
            .prop_map(|(platform, concurrency, state)| Some(HostSpec { platform, concurrency, state })),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    proptest::array::uniform5(host_spec())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (
            prop_oneof![10 => 0..2usize, 1 => Just(2usize)],
            0..12i64,
            any::<bool>(),
            prop_oneof![4 => Just(0u8), 1 => 0u8..32],
        )
            .prop_map(|(platform, created, namespace, failed)| Op::Arrive { platform, created, namespace, failed }),
        5 => any::<usize>().prop_map(Op::Finish),
        2 => any::<usize>().prop_map(Op::ProvisioningFailed),
        1 => spec().prop_map(Op::Reconfigure),
        2 => (0..HOSTS, any::<bool>()).prop_map(|(h, up)| Op::Health(h, up)),
        1 => Just(Op::Restart),
    ]
}

fn host_name(i: usize) -> HostName {
    HostName::parse(&format!("h{i}")).unwrap()
}

fn host_index(name: &HostName) -> usize {
    name.as_str()[1..].parse().unwrap()
}

fn platform(i: usize) -> Platform {
    Platform::parse(PLATFORMS[i]).unwrap()
}

fn to_config(spec: &Spec) -> PoolConfig {
    let mut data = BTreeMap::new();
    for (i, h) in spec.iter().enumerate() {
        let Some(h) = h else { continue };
        for (field, value) in [
            ("address", "10.0.0.1".to_string()),
            ("platform", PLATFORMS[h.platform].to_string()),
            ("user", "root".to_string()),
            ("secret", "key".to_string()),
            ("concurrency", h.concurrency.to_string()),
            ("state", h.state.as_str().to_string()),
        ] {
            data.insert(format!("host.h{i}.{field}"), value);
        }
    }
    config::parse(&data)
}

fn queue_key(r: &TaskRunRequest) -> (crate::time::Timestamp, &TaskRunKey) {
    (r.created, &r.key)
}

/// The model: what the rules say the state is.
#[derive(Debug)]
struct Model {
    spec: Spec,
    /// Health of hosts the ledger knows (absent: healthy).
    unhealthy: BTreeSet<usize>,
    taskruns: BTreeMap<TaskRunKey, (TaskRunRequest, Option<HostName>)>,
    counter: usize,
}

impl Model {
    fn used(&self, host: usize) -> usize {
        let name = host_name(host);
        self.taskruns
            .values()
            .filter(|(_, h)| h.as_ref() == Some(&name))
            .count()
    }

    fn free(&self, host: usize, platform: &Platform) -> usize {
        match self.spec[host] {
            Some(s)
                if self::platform(s.platform) == *platform
                    && s.state == HostState::Active
                    && !self.unhealthy.contains(&host) =>
            {
                (s.concurrency as usize).saturating_sub(self.used(host))
            }
            _ => 0,
        }
    }

    fn best_host(&self, platform: &Platform, failed: &BTreeSet<HostName>) -> Option<HostName> {
        (0..HOSTS)
            .filter(|h| !failed.contains(&host_name(*h)))
            .filter(|h| self.free(*h, platform) > 0)
            .map(|h| {
                (
                    self.free(h, platform),
                    Reverse(self.used(h)),
                    Reverse(host_name(h)),
                )
            })
            .max()
            .map(|(_, _, Reverse(h))| h)
    }

    /// Whether a TaskRun may wait (some configured, not disabled host it has not failed on).
    fn servable(&self, platform: &Platform, failed: &BTreeSet<HostName>) -> bool {
        (0..HOSTS).any(|h| {
            self.spec[h].is_some_and(|s| {
                self::platform(s.platform) == *platform && s.state != HostState::Disabled
            }) && !failed.contains(&host_name(h))
        })
    }

    fn waiters(&self) -> impl Iterator<Item = &TaskRunRequest> {
        self.taskruns
            .values()
            .filter(|(_, h)| h.is_none())
            .map(|(r, _)| r)
    }

    /// Applies one assignment, checking it is the one the rules call for now.
    fn assign(&mut self, a: &Assignment) -> Result<(), TestCaseError> {
        let (request, host) = self
            .taskruns
            .get(&a.taskrun)
            .cloned()
            .ok_or_else(|| TestCaseError::fail(format!("unknown TaskRun assigned: {a:?}")))?;
        prop_assert!(host.is_none(), "{a:?}: was not waiting");
        prop_assert_eq!(&request.platform, &a.platform);
        let best = self.best_host(&request.platform, &request.failed_hosts);
        prop_assert_eq!(best.as_ref(), Some(&a.host), "{:?}: not the best host", a);
        for older in self
            .waiters()
            .filter(|w| w.platform == request.platform && queue_key(w) < queue_key(&request))
        {
            prop_assert!(
                self.best_host(&older.platform, &older.failed_hosts)
                    .is_none(),
                "FIFO: {} served before older {} that could use a slot",
                a.taskrun,
                older.key
            );
        }
        self.taskruns
            .insert(a.taskrun.clone(), (request, Some(a.host.clone())));
        Ok(())
    }

    fn reject(&mut self, r: &Rejected) -> Result<(), TestCaseError> {
        let (request, host) = self
            .taskruns
            .remove(&r.taskrun)
            .ok_or_else(|| TestCaseError::fail(format!("unknown TaskRun rejected: {r:?}")))?;
        prop_assert!(host.is_none(), "a running TaskRun was rejected: {r:?}");
        prop_assert!(
            !self.servable(&request.platform, &request.failed_hosts),
            "{r:?} unjustified"
        );
        Ok(())
    }

    /// Forgets health of hosts the ledger no longer knows.
    fn forget_unknown_hosts(&mut self) {
        let known: BTreeSet<usize> = (0..HOSTS)
            .filter(|h| self.spec[*h].is_some() || self.used(*h) > 0)
            .collect();
        self.unhealthy.retain(|h| known.contains(h));
    }

    /// Picks a known TaskRun by index.
    fn pick(&self, index: usize, running_only: bool) -> Option<(TaskRunKey, Option<HostName>)> {
        let candidates: Vec<_> = self
            .taskruns
            .iter()
            .filter(|(_, (_, h))| !running_only || h.is_some())
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let (k, (_, h)) = candidates[index % candidates.len()];
        Some((k.clone(), h.clone()))
    }

    fn recorded(&self) -> Vec<RecordedTaskRun> {
        self.taskruns
            .values()
            .map(|(request, host)| RecordedTaskRun {
                request: request.clone(),
                assigned_host: host.clone(),
            })
            .collect()
    }
}

/// Invariants that must hold between any two operations.
fn check(model: &Model, ledger: &Ledger) -> Result<(), TestCaseError> {
    // No waiter while a slot it may use is free.
    for w in model.waiters() {
        prop_assert_eq!(
            model.best_host(&w.platform, &w.failed_hosts),
            None,
            "{} waits though a slot is free",
            w.key
        );
    }
    // Same TaskRuns, hosts and queue order as the model.
    prop_assert_eq!(ledger.len(), model.taskruns.len());
    for (key, (request, host)) in &model.taskruns {
        let expected = match host {
            Some(h) => Placement::Running(h.clone()),
            None => Placement::Waiting {
                ahead: model
                    .waiters()
                    .filter(|w| w.platform == request.platform && queue_key(w) < queue_key(request))
                    .count(),
            },
        };
        prop_assert_eq!(ledger.placement(key), Some(expected));
        prop_assert_eq!(ledger.failed_hosts(key), Some(&request.failed_hosts));
    }
    for p in 0..PLATFORMS.len() {
        let mut expected: Vec<&TaskRunRequest> = model
            .waiters()
            .filter(|w| w.platform == platform(p))
            .collect();
        expected.sort_by(|a, b| queue_key(a).cmp(&queue_key(b)));
        let expected: Vec<&TaskRunKey> = expected.iter().map(|w| &w.key).collect();
        let actual: Vec<&TaskRunKey> = ledger.waiters(&platform(p)).collect();
        prop_assert_eq!(actual, expected);
    }
    let mut seen = BTreeSet::new();
    for usage in ledger.hosts() {
        let h = host_index(&usage.host);
        seen.insert(h);
        prop_assert_eq!(usage.used, model.used(h), "slots of {}", usage.host);
        prop_assert_eq!(usage.healthy, !model.unhealthy.contains(&h));
        match model.spec[h] {
            Some(s) => {
                prop_assert_eq!(usage.concurrency, s.concurrency);
                prop_assert_eq!(usage.state, Some(s.state));
                prop_assert_eq!(usage.platform, Some(platform(s.platform)));
            }
            None => prop_assert!(usage.platform.is_none() && usage.used > 0, "{usage:?}"),
        }
    }
    for h in (0..HOSTS).filter(|h| model.spec[*h].is_some() || model.used(*h) > 0) {
        prop_assert!(seen.contains(&h), "ledger forgot h{}", h);
    }
    Ok(())
}

fn run(initial: Spec, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut model = Model {
        spec: initial,
        unhealthy: BTreeSet::new(),
        taskruns: BTreeMap::new(),
        counter: 0,
    };
    let mut ledger = Ledger::new(&to_config(&initial));
    for op in ops {
        let used_before: Vec<usize> = (0..HOSTS).map(|h| model.used(h)).collect();
        match op {
            Op::Arrive {
                platform: p,
                created,
                namespace,
                failed,
            } => {
                model.counter += 1;
                let request = TaskRunRequest {
                    key: TaskRunKey::new(
                        if namespace { "b" } else { "a" },
                        format!("t{}", model.counter),
                    ),
                    platform: platform(p),
                    created: crate::time::from_unix_seconds(created),
                    failed_hosts: (0..HOSTS)
                        .filter(|h| failed & (1 << h) != 0)
                        .map(host_name)
                        .collect(),
                };
                let decision = ledger.request(request.clone());
                let servable = model.servable(&request.platform, &request.failed_hosts);
                let best = model.best_host(&request.platform, &request.failed_hosts);
                match decision {
                    Decision::Assigned(h) => {
                        prop_assert_eq!(Some(&h), best.as_ref());
                        model
                            .taskruns
                            .insert(request.key.clone(), (request, Some(h)));
                    }
                    Decision::Queued { .. } => {
                        prop_assert!(servable && best.is_none());
                        model.taskruns.insert(request.key.clone(), (request, None));
                    }
                    Decision::Rejected(_) => prop_assert!(!servable),
                }
            }
            Op::Finish(i) => {
                if let Some((key, host)) = model.pick(i, false) {
                    if host.is_some() {
                        prop_assert!(!ledger.cancel(&key));
                        model.taskruns.remove(&key);
                        model.forget_unknown_hosts();
                        for a in ledger.release(&key) {
                            model.assign(&a)?;
                        }
                    } else {
                        prop_assert!(ledger.cancel(&key));
                        model.taskruns.remove(&key);
                    }
                }
            }
            Op::ProvisioningFailed(i) => {
                if let Some((key, Some(host))) = model.pick(i, true) {
                    let failover = ledger
                        .provisioning_failed(&key, &host)
                        .ok_or_else(|| TestCaseError::fail("running TaskRun not found"))?;
                    let (mut request, _) = model.taskruns.remove(&key).unwrap();
                    request.failed_hosts.insert(host);
                    model.forget_unknown_hosts();
                    let servable = model.servable(&request.platform, &request.failed_hosts);
                    let best = model.best_host(&request.platform, &request.failed_hosts);
                    match &failover.decision {
                        Decision::Rejected(_) => prop_assert!(!servable),
                        Decision::Assigned(h) => {
                            prop_assert_eq!(Some(h), best.as_ref());
                            model
                                .taskruns
                                .insert(key.clone(), (request, Some(h.clone())));
                        }
                        Decision::Queued { .. } => {
                            prop_assert!(servable && best.is_none());
                            model.taskruns.insert(key.clone(), (request, None));
                        }
                    }
                    for a in &failover.assigned {
                        model.assign(a)?;
                    }
                }
            }
            Op::Reconfigure(spec) => {
                model.spec = spec;
                let outcome = ledger.apply_config(&to_config(&spec));
                model.forget_unknown_hosts();
                for r in &outcome.rejected {
                    model.reject(r)?;
                }
                for a in &outcome.assigned {
                    model.assign(a)?;
                }
            }
            Op::Health(h, up) => {
                let known = model.spec[h].is_some() || model.used(h) > 0;
                let assigned = ledger.set_health(&host_name(h), up);
                if known {
                    if up {
                        model.unhealthy.remove(&h);
                    } else {
                        model.unhealthy.insert(h);
                    }
                }
                for a in &assigned {
                    model.assign(a)?;
                }
            }
            Op::Restart => {
                // Probes find every host up again before the restart is compared.
                for h in 0..HOSTS {
                    model.unhealthy.remove(&h);
                    for a in ledger.set_health(&host_name(h), true) {
                        model.assign(&a)?;
                    }
                }
                check(&model, &ledger)?;
                let (rebuilt, outcome) = Ledger::rebuild(&to_config(&model.spec), model.recorded());
                prop_assert_eq!(outcome, Outcome::default());
                prop_assert_eq!(&rebuilt, &ledger);
                ledger = rebuilt;
            }
        }
        // A host gains TaskRuns only within its concurrency, while it may take them.
        for (h, before) in used_before.into_iter().enumerate() {
            let after = model.used(h);
            if after > before {
                let s =
                    model.spec[h].ok_or_else(|| TestCaseError::fail("removed host got work"))?;
                prop_assert!(after <= s.concurrency as usize, "h{} over capacity", h);
                prop_assert_eq!(s.state, HostState::Active);
                prop_assert!(!model.unhealthy.contains(&h));
            }
        }
        check(&model, &ledger)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_histories_keep_every_rule(initial in spec(), ops in proptest::collection::vec(op(), 1..80)) {
        run(initial, ops)?;
    }
}
