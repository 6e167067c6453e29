//! Starting (or resuming) from a snapshot of the cluster, as after a restart or on
//! becoming leader: every slot is rebuilt from the `assigned-host` labels before
//! anything is allocated (contract §3).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use super::run::{Phase, QueueReason, Run};
use super::timers::Timers;
use super::{ConfigInput, Core, CoreSettings, Effect, Observed};
use crate::allocation::{InstanceQuota, Ledger, RecordedTaskRun, TaskRunKey, TaskRunRequest};
use crate::config::{HostName, PoolConfig, Route};
use crate::naming::LOCALHOST;
use crate::platform::Platform;
use crate::time::{Timestamp, whole_second};

impl Core {
    /// Starts the core from a full snapshot of the cluster at `now`. Hosts take
    /// TaskRuns only once probed (and rid of leftovers), so the first effects are a
    /// probe per host; the work to resume every unfinished piece of work is queued.
    pub fn start(
        settings: CoreSettings,
        config: ConfigInput,
        snapshot: impl IntoIterator<Item = Observed>,
        now: Timestamp,
    ) -> Core {
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
                .collect::<BTreeMap<_, _>>(),
            ledger: Ledger::new_probing(pool),
            config: config.clone(),
            missing_reason,
            faults: BTreeMap::new(),
            quota: InstanceQuota::default(),
            clouds: BTreeMap::new(),
            cloud_errors: BTreeMap::new(),
            instance_states: BTreeMap::new(),
            fleets: BTreeMap::new(),
            runs: HashMap::new(),
            timers: Timers::default(),
            now,
            work: VecDeque::new(),
            effects: VecDeque::new(),
            metrics: VecDeque::new(),
        };

        if let Some(config) = config.as_deref() {
            core.configure_clouds(config);
        }
        let mut recorded = Vec::new();
        let mut fresh = Vec::new();
        for obs in snapshot {
            if !obs.concerns_us() {
                continue;
            }
            let mut run = Run::new(&obs);
            let key = obs.key.clone();
            if obs.cloud {
                core.resume_cloud(&key, &obs, &mut run);
                core.runs.insert(key, run);
                continue;
            }
            match resume(&key, &obs, &mut run, config.as_deref(), now) {
                Resume::Recorded(record) => recorded.push(record),
                Resume::Fresh => fresh.push(key.clone()),
                Resume::Nothing => {}
            }
            core.runs.insert(key, run);
        }

        // Nothing is assigned yet: waiters just take their place in the queues.
        let (ledger, outcome) = Ledger::rebuild_probing(pool, recorded);
        core.ledger = ledger;
        let names: Vec<HostName> = core.hosts.keys().cloned().collect();
        for host in names {
            core.effects.push_back(Effect::Probe { host, reason: None });
        }
        // Waiters the rebuild placed: their queue position or their new slot.
        for run in core.runs.values_mut() {
            if matches!(run.phase, Phase::Queued { .. }) {
                run.queued_at = Some(now);
                run.allocation_start.get_or_insert(whole_second(now));
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
        core
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
    now: Timestamp,
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
                    since: now,
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

/// What the ledger needs to know about a TaskRun that wants a slot.
pub(super) fn request(key: &TaskRunKey, run: &Run, platform: Platform) -> TaskRunRequest {
    TaskRunRequest {
        key: key.clone(),
        platform,
        created: run.created,
        failed_hosts: run.failed_hosts.clone(),
    }
}
