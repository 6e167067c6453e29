//! The per-TaskRun decision: what a TaskRun in its phase needs next, and the moves
//! between phases (placed, queued, failed, released, done).

use super::Core;
use super::outlook::{Outlook, describe};
use super::output::{EventReason, Metric};
use super::run::{Phase, QueueReason};
use crate::allocation::TaskRunKey;
use crate::config::{HostName, Route};
use crate::naming::UserName;
use crate::time::{elapsed, whole_second};

impl Core {
    /// Decides the next piece of work for a TaskRun that has none in flight.
    pub(super) fn step(&mut self, key: &TaskRunKey) {
        let now = self.now;
        let Some(run) = self.runs.get_mut(key) else {
            return;
        };
        if run.in_flight.is_some() || run.timer.is_some_and(|t| t > now) {
            return;
        }
        match run.phase.clone() {
            Phase::New => {
                if run.finished {
                    if run.may_be_marked() {
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
                    let (marked_run, gone) = (run.may_be_marked(), run.gone);
                    self.leave_queue(key, reason);
                    // A gone TaskRun has no labels left to remove.
                    if (marked_run || marked) && !gone {
                        self.release(key, None);
                    } else {
                        self.done(key);
                    }
                    return;
                }
                if reason == QueueReason::PoolFull && !self.still_worth_waiting(key) {
                    return;
                }
                let deadline = self.queue_deadline(key, reason);
                if deadline.is_some_and(|d| d <= now) {
                    self.leave_queue(key, reason);
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
            Phase::Releasing { host, since, .. } => {
                let Some(h) = host else {
                    self.issue_release(key, None);
                    return;
                };
                let unknown = !self.hosts.contains_key(&h);
                let timed_out = (run.deleting || run.gone)
                    && elapsed(since, now) >= self.settings.release_give_up;
                let platform = run.valid_platform().cloned();
                if unknown && self.host_pending_listing(&h, platform.as_ref()) {
                    // Resumed on an instance of a pool not listed yet: the listing decides.
                    return;
                }
                if unknown && platform.as_ref().is_some_and(|p| self.is_fleet(p)) {
                    // The pool instance is gone, and its users with it.
                    self.issue_release(key, None);
                    return;
                }
                let Some(run) = self.runs.get_mut(key) else {
                    return;
                };
                if unknown || timed_out {
                    // The host cannot be cleaned now: release the TaskRun without it.
                    // The user stays behind and keeps its slot until the reaper removed it.
                    run.phase = Phase::Releasing {
                        host: None,
                        since,
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
            phase @ (Phase::Launching { .. }
            | Phase::Booting { .. }
            | Phase::VmReady { .. }
            | Phase::Terminating { .. }) => {
                let finished = run.finished;
                self.step_cloud(key, phase, finished);
            }
            Phase::Done => {
                if run.gone {
                    self.runs.remove(key);
                }
            }
        }
    }

    /// Where a new, unfinished TaskRun goes.
    pub(super) fn place(&mut self, key: &TaskRunKey) {
        let Some(run) = self.runs.get(key) else {
            return;
        };
        let platform = match &run.platform {
            // Not a candidate (no PLATFORM param) but marked: nothing to place.
            None => {
                self.done(key);
                return;
            }
            Some(Err(invalid)) => {
                let message = invalid.to_string();
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
            Route::Pool(_) => self.place_on_pool(key, platform),
            Route::Cloud(settings) => match settings.strategy {
                crate::config::StrategySettings::Pool { .. } => self.place_on_pool(key, platform),
                crate::config::StrategySettings::Dynamic { .. } => {
                    self.place_on_cloud(key, platform);
                }
            },
        }
    }

    pub(super) fn assign(&mut self, key: &TaskRunKey, host: HostName) {
        let now = self.now;
        let Some(run) = self.runs.get_mut(key) else {
            return;
        };
        let waited = run.queued_at.take();
        run.phase = Phase::Provisioning { host: host.clone() };
        run.timer = None;
        run.assigned_at.get_or_insert(now);
        run.allocation_start.get_or_insert(whole_second(now));
        if let (Some(since), Some(platform)) = (waited, run.valid_platform().cloned()) {
            self.metric(Metric::WaitTime {
                platform,
                took: elapsed(since, now),
            });
        }
        self.event(
            key,
            EventReason::Allocated,
            format!("allocated host {host}"),
        );
        self.step(key);
    }

    pub(super) fn queue(&mut self, key: &TaskRunKey, reason: QueueReason, ahead: Option<usize>) {
        let now = self.now;
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
            run.queued_at = Some(now);
        }
        run.allocation_start.get_or_insert(whole_second(now));
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
            (QueueReason::QuotaFull, ahead) => {
                let running = self
                    .runs
                    .get(key)
                    .and_then(|r| r.valid_platform())
                    .and_then(|p| self.quota.usage().find(|(q, _)| *q == p))
                    .map(|(_, u)| u);
                let limit = running.as_ref().map_or(0, |u| u.max);
                let ahead = ahead.map_or(String::new(), |n| format!(", {n} TaskRun(s) ahead"));
                format!(
                    "waiting for a free {platform} VM: the platform runs its maximum of {limit} \
                     instances{ahead}"
                )
            }
        };
        self.event(key, EventReason::Waiting, note);
        self.step(key);
    }

    pub(super) fn fail(&mut self, key: &TaskRunKey, message: String) {
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

    pub(super) fn release(&mut self, key: &TaskRunKey, host: Option<HostName>) {
        let now = self.now;
        if let Some(run) = self.runs.get_mut(key) {
            run.phase = Phase::Releasing {
                host,
                since: now,
                abandoned: None,
            };
        }
        self.step(key);
    }

    pub(super) fn done(&mut self, key: &TaskRunKey) {
        if let Some(run) = self.runs.get_mut(key) {
            run.phase = Phase::Done;
            if run.gone {
                self.runs.remove(key);
            }
        }
    }

    /// Looks at a waiter's prospects: fails it when every host it may use needs an
    /// admin, warns (once per set of down hosts) when they are all only unreachable.
    /// Returns whether it keeps waiting.
    fn still_worth_waiting(&mut self, key: &TaskRunKey) -> bool {
        let now = self.now;
        let outlook = self.outlook_of(key);
        let Some(run) = self.runs.get_mut(key) else {
            return false;
        };
        match outlook {
            Outlook::Servable => {
                run.down_since = None;
                run.warned_down.clear();
                true
            }
            Outlook::NeedsAdmin(hosts) => {
                let platform = run.platform_raw.clone();
                self.ledger.cancel(key);
                self.fail(
                    key,
                    format!(
                        "no {platform} host can serve this TaskRun until a cluster admin acts: \
                         {}. The admin must fix the hosts or host-config (the HostUnavailable \
                         Events on host-config and `multi-platform-controller doctor` show the \
                         details), then the build can be run again",
                        describe(&hosts)
                    ),
                );
                false
            }
            Outlook::Down(hosts) => {
                run.down_since.get_or_insert(now);
                let names = hosts.iter().map(|(h, _)| h.clone()).collect();
                if run.warned_down != names {
                    run.warned_down = names;
                    let platform = run.platform_raw.clone();
                    let until = self
                        .queue_deadline(key, QueueReason::PoolFull)
                        .map(|d| format!(" until {}", d.strftime("%Y-%m-%dT%H:%M:%SZ")))
                        .unwrap_or_default();
                    self.event(
                        key,
                        EventReason::HostsDown,
                        format!(
                            "no {platform} host is reachable: {}. The controller keeps probing \
                             them and this TaskRun waits{until}, then fails; a cluster admin \
                             must bring a host back (sshd running, network, the address and port \
                             in host-config)",
                            describe(&hosts)
                        ),
                    );
                }
                true
            }
        }
    }

    /// Takes a waiter out of its queue (it finished, or its wait timed out).
    fn leave_queue(&mut self, key: &TaskRunKey, reason: QueueReason) {
        match reason {
            QueueReason::PoolFull => {
                self.ledger.cancel(key);
            }
            QueueReason::QuotaFull => {
                for next in self.quota.release(key) {
                    self.grant_vm(&next);
                }
            }
            QueueReason::ConfigMissing => {}
        }
    }
}
