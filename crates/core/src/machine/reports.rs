//! Reports of finished work: how each one moves its TaskRun on.

use super::Core;
use super::cloud::is_cloud_op;
use super::input::{HostFailure, Report};
use super::output::{EventReason, Metric};
use super::run::{Op, Phase};
use super::timers::backoff;
use crate::allocation::TaskRunKey;
use crate::config::HostName;
use crate::time::{after, elapsed};

impl Core {
    pub(super) fn on_report(&mut self, key: &TaskRunKey, report: Report) {
        let now = self.now;
        let Some(run) = self.runs.get_mut(key) else {
            return;
        };
        let Some(op) = run.in_flight.take() else {
            // A report for a command the core did not order (a stale duplicate).
            return;
        };
        if is_cloud_op(op) {
            self.on_cloud_report(key, op, report);
            return;
        }
        match report {
            // Reports of cloud work go to `on_cloud_report`.
            Report::Launched(_) | Report::LaunchFailed(_) => {}
            Report::ApiError(_) => {
                run.attempts += 1;
                let at = after(now, backoff(&self.settings, run.attempts));
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
                    run.ready_at = Some(now);
                    run.marked = true;
                }
            }
            Report::Provisioned => {
                run.attempts = 0;
                if let (Phase::Provisioning { host }, Op::Provision) = (run.phase.clone(), op) {
                    run.phase = Phase::Ready { host: host.clone() };
                    run.ready_at = Some(now);
                    run.marked = true;
                    if let Some(platform) = run.valid_platform().cloned() {
                        // As the Go controller measures it: from the slot to the Secret,
                        // without the time spent waiting for the slot.
                        let allocating = run.assigned_at.map(|at| elapsed(at, now));
                        self.metric(Metric::ProvisioningSuccess {
                            platform: platform.clone(),
                        });
                        if let Some(took) = allocating {
                            self.metric(Metric::AllocationTime { platform, took });
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
                    let ran = run.ready_at.take().and(run.allocation_start);
                    run.marked = false;
                    run.wrote_marks = false;
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
                            took: elapsed(start, now),
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
                let at = after(now, backoff(&self.settings, run.attempts));
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
                    self.host_down(&host, failure);
                }
            }
        }
        self.step(key);
    }

    pub(super) fn on_provision_failed(
        &mut self,
        key: &TaskRunKey,
        host: HostName,
        failure: HostFailure,
    ) {
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
            self.host_down(&host, failure.clone());
        }
        if finished {
            // Nothing to place any more: free the slot and clean what may be left.
            // The failed host's slot is already counted free by nobody else: clean it,
            // then the normal release frees the slot.
            if let Some(run) = self.runs.get_mut(key) {
                run.phase = Phase::Releasing {
                    host: Some(host),
                    since: self.now,
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
}
