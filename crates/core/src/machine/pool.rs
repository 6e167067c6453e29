//! Placement on a static host pool: the machine's side of the [`Ledger`], which owns
//! the slots and FIFO queues (contract §3). Hand-overs and rejections the ledger
//! decides for other TaskRuns come back through [`Core::apply_outcome`].
//!
//! [`Ledger`]: crate::allocation::Ledger

use super::Core;
use super::Effect;
use super::input::HostFailure;
use super::outlook::Fault;
use super::run::{Phase, QueueReason};
use super::start::request;
use crate::allocation::{Assignment, Decision, Rejected, Rejection, TaskRunKey};
use crate::config::{HostName, Route};
use crate::platform::Platform;

impl Core {
    /// Asks the ledger for a slot of `platform` for an unplaced TaskRun.
    pub(super) fn place_on_pool(&mut self, key: &TaskRunKey, platform: Platform) {
        let Some(run) = self.runs.get(key) else {
            return;
        };
        let decision = self.ledger.request(request(key, run, platform));
        self.apply_decision(key, decision);
    }

    pub(super) fn apply_decision(&mut self, key: &TaskRunKey, decision: Decision) {
        match decision {
            Decision::Assigned(host) => self.assign(key, host),
            Decision::Queued { ahead } => self.queue(key, QueueReason::PoolFull, Some(ahead)),
            Decision::Rejected(rejection) => self.reject(key, rejection),
        }
    }

    /// Hand-overs and rejections that an operation caused for other TaskRuns.
    pub(super) fn apply_outcome(&mut self, assigned: Vec<Assignment>, rejected: Vec<Rejected>) {
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

    pub(super) fn reject(&mut self, key: &TaskRunKey, rejection: Rejection) {
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
                Route::Pool(_) | Route::Cloud(_) => Some(rejection.to_string()),
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

    /// A TaskRun vanished (its operation found it gone): free whatever it held.
    pub(super) fn forget(&mut self, key: &TaskRunKey) {
        match self.runs.remove(key).map(|r| r.phase) {
            Some(Phase::Queued {
                reason: QueueReason::PoolFull,
                ..
            }) => {
                self.ledger.cancel(key);
            }
            Some(Phase::Queued {
                reason: QueueReason::QuotaFull,
                ..
            }) => {
                for next in self.quota.release(key) {
                    self.grant_vm(&next);
                }
            }
            _ => {}
        }
        let assigned = self.ledger.release(key);
        self.apply_outcome(assigned, Vec::new());
    }

    /// Takes a host out of service until a probe reaches it again, and remembers why:
    /// TaskRuns waiting for its platform may now have no host left to wait for.
    pub(super) fn host_down(&mut self, host: &HostName, failure: HostFailure) {
        let assigned = self.ledger.set_health(host, false);
        self.apply_outcome(assigned, Vec::new());
        let news = self.faults.get(host).is_none_or(|f| f.failure != failure);
        if !news {
            return;
        }
        let since = self.faults.get(host).map_or(self.now, |f| f.since);
        self.effects.push_back(Effect::Probe {
            host: host.clone(),
            reason: Some(failure.message.clone()),
        });
        self.faults.insert(host.clone(), Fault { failure, since });
        self.restep_waiters_of(host);
    }

    /// Decides again for the TaskRuns waiting for `host`'s platform.
    fn restep_waiters_of(&mut self, host: &HostName) {
        let Some(platform) = self.hosts.get(host).map(|h| h.platform.clone()) else {
            return;
        };
        let mut waiting: Vec<TaskRunKey> = self
            .runs
            .iter()
            .filter(|(_, r)| {
                r.valid_platform() == Some(&platform)
                    && matches!(
                        r.phase,
                        Phase::Queued {
                            reason: QueueReason::PoolFull,
                            ..
                        }
                    )
            })
            .map(|(k, _)| k.clone())
            .collect();
        waiting.sort_by_key(|k| (self.runs[k].created, k.clone()));
        for key in waiting {
            self.step(&key);
        }
    }
}
