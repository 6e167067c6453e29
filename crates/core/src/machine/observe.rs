//! Observations: TaskRuns appearing, changing and vanishing, host-config changing,
//! hosts coming and going, and what the reaper left on a host.

use std::sync::Arc;

use super::run::{Phase, QueueReason, Run};
use super::{ConfigInput, Core, Effect, Observed};
use crate::allocation::TaskRunKey;
use crate::config::HostName;
use crate::naming::{LOCALHOST, UserName};

impl Core {
    pub(super) fn on_observed(&mut self, obs: Observed) {
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

    pub(super) fn on_deleted(&mut self, key: &TaskRunKey) {
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

    pub(super) fn on_config(&mut self, config: ConfigInput) {
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
                    self.effects.push_back(Effect::Probe { host, reason: None });
                }
                self.config = Some(Arc::clone(&config));
                self.apply_outcome(outcome.assigned, outcome.rejected);
                self.configure_clouds(&config);
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
    pub(super) fn on_reaped(&mut self, host: &HostName, remaining: &[UserName]) {
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

    pub(super) fn on_health(&mut self, host: &HostName, up: bool) {
        if up {
            self.faults.remove(host);
        }
        let assigned = self.ledger.set_health(host, up);
        self.apply_outcome(assigned, Vec::new());
    }
}
