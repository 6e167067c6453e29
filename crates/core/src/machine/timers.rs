//! Retries and deadlines: when to look at a TaskRun again.

use std::collections::BTreeSet;
use std::time::Duration;

use super::outlook::{Outlook, describe};
use super::run::QueueReason;
use super::{Core, CoreSettings};
use crate::allocation::TaskRunKey;
use crate::time::{Timestamp, after, elapsed};

/// A set of (due time, TaskRun) entries. Entries are never removed early: a TaskRun
/// whose deadline moved keeps a stale entry, which the core ignores when it fires
/// (the TaskRun's own `timer` field is the truth). That keeps every operation O(log n).
#[derive(Debug, Default)]
pub(crate) struct Timers {
    due: BTreeSet<(Timestamp, TaskRunKey)>,
}

impl Timers {
    /// Adds an entry due at `at`.
    pub fn insert(&mut self, at: Timestamp, key: TaskRunKey) {
        self.due.insert((at, key));
    }

    /// The earliest due time.
    pub fn next(&self) -> Option<Timestamp> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Removes and returns one entry due at or before `now`.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<TaskRunKey> {
        if self.next()? > now {
            return None;
        }
        self.due.pop_first().map(|(_, key)| key)
    }
}

impl Core {
    pub(super) fn fire_due_timers(&mut self) {
        while let Some(key) = self.timers.pop_due(self.now) {
            let due = self
                .runs
                .get(&key)
                .and_then(|r| r.timer)
                .is_some_and(|t| t <= self.now);
            if due {
                if let Some(run) = self.runs.get_mut(&key) {
                    run.timer = None;
                }
                self.step(&key);
            }
        }
    }

    pub(super) fn queue_deadline(
        &self,
        key: &TaskRunKey,
        reason: QueueReason,
    ) -> Option<Timestamp> {
        let run = self.runs.get(key)?;
        match reason {
            QueueReason::ConfigMissing => Some(after(run.queued_at?, self.settings.config_grace)),
            QueueReason::QuotaFull => {
                let timeout = self.config.as_ref()?.settings.allocation_timeout?;
                Some(after(run.allocation_start?, timeout))
            }
            QueueReason::PoolFull => {
                let timeout = self.config.as_ref()?.settings.allocation_timeout;
                let busy = timeout.zip(run.allocation_start).map(|(t, s)| after(s, t));
                let down = run.down_since.map(|since| {
                    after(since, timeout.unwrap_or(self.settings.unreachable_timeout))
                });
                busy.into_iter().chain(down).min()
            }
        }
    }

    pub(super) fn queue_timeout_message(&self, key: &TaskRunKey, reason: QueueReason) -> String {
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
            QueueReason::QuotaFull => {
                let timeout = self
                    .config
                    .as_ref()
                    .and_then(|c| c.settings.allocation_timeout)
                    .map_or(0, |t| t.as_secs());
                format!(
                    "no {platform} VM slot became free within the allocation timeout of \
                     {timeout}s (allocation-timeout in host-config): the platform runs its \
                     max-instances VMs; run the build again later, or ask a cluster admin to \
                     raise max-instances or the timeout"
                )
            }
            QueueReason::PoolFull => {
                if let Outlook::Down(hosts) = self.outlook_of(key) {
                    let waited = self
                        .runs
                        .get(key)
                        .and_then(|r| r.down_since)
                        .map_or(0, |since| elapsed(since, self.now).as_secs());
                    return format!(
                        "no {platform} host answered for {waited}s: {}. A cluster admin must \
                         bring a host back (sshd running, network, the address and port in \
                         host-config), then the build can be run again",
                        describe(&hosts)
                    );
                }
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

    pub(super) fn set_timer(&mut self, key: &TaskRunKey, at: Timestamp) {
        if let Some(run) = self.runs.get_mut(key).filter(|r| r.timer != Some(at)) {
            run.timer = Some(at);
            self.timers.insert(at, key.clone());
        }
    }
}

/// Capped exponential backoff: base, 2×base, 4×base, … up to max.
pub(super) fn backoff(settings: &CoreSettings, attempts: u32) -> Duration {
    let factor = 1_u32
        .checked_shl(attempts.saturating_sub(1).min(31))
        .unwrap_or(u32::MAX);
    settings
        .retry_base
        .saturating_mul(factor)
        .min(settings.retry_max)
        .max(Duration::from_millis(1))
}
