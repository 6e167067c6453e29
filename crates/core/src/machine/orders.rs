//! Turning decisions into output: [`Work`] orders for the executor (one in flight per
//! TaskRun), Events and metrics.

use super::Core;
use super::input::{HostFailure, HostFailureKind};
use super::output::{
    Effect, EventOrder, EventReason, FailOrder, Metric, ProvisionOrder, ReleaseOrder, TaskRunOrder,
    WaitOrder, Work,
};
use super::run::Op;
use crate::allocation::TaskRunKey;
use crate::config::HostName;
use crate::naming::UserName;

impl Core {
    pub(super) fn issue(&mut self, key: &TaskRunKey, op: Op, work: Work) {
        if let Some(run) = self.runs.get_mut(key) {
            run.in_flight = Some(op);
            if op.writes_marks() {
                run.wrote_marks = true;
            }
        }
        self.work.push_back(work);
    }

    pub(super) fn order(&self, key: &TaskRunKey) -> Option<TaskRunOrder> {
        let run = self.runs.get(key)?;
        Some(TaskRunOrder {
            key: key.clone(),
            uid: run.uid.clone(),
            platform: run.valid_platform()?.clone(),
        })
    }

    pub(super) fn issue_provision(&mut self, key: &TaskRunKey, host: &HostName) {
        let platform = self.runs.get(key).and_then(|r| r.valid_platform().cloned());
        if self.host_pending_listing(host, platform.as_ref()) {
            // Resumed on an instance of a pool not listed yet: the listing decides.
            return;
        }
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
        self.issue(key, Op::Provision, Work::Provision(order));
    }

    pub(super) fn issue_wait(&mut self, key: &TaskRunKey) {
        let Some(run) = self.runs.get(key) else {
            return;
        };
        let Some(taskrun) = self.order(key) else {
            return;
        };
        let order = WaitOrder {
            taskrun,
            failed_hosts: run.failed_hosts.iter().cloned().collect(),
            allocation_start: run.allocation_start,
        };
        self.issue(key, Op::Wait, Work::Wait(order));
    }

    pub(super) fn issue_local(&mut self, key: &TaskRunKey) {
        if let Some(order) = self.order(key) {
            self.issue(key, Op::Local, Work::ServeLocal(order));
        }
    }

    pub(super) fn issue_fail(&mut self, key: &TaskRunKey, message: String) {
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
        self.issue(key, Op::Fail, Work::Fail(order));
    }

    pub(super) fn issue_release(&mut self, key: &TaskRunKey, host: Option<HostName>) {
        let order = ReleaseOrder {
            key: key.clone(),
            host: host.and_then(|h| self.hosts.get(&h).cloned()),
            user: UserName::for_taskrun(&key.name, &key.namespace),
            host_key_checking: self.host_key_checking(),
        };
        self.issue(key, Op::Release, Work::Release(order));
    }

    pub(super) fn event(&mut self, key: &TaskRunKey, reason: EventReason, note: String) {
        let uid = self
            .runs
            .get(key)
            .map(|r| r.uid.clone())
            .unwrap_or_default();
        self.effects.push_back(Effect::Event(EventOrder {
            key: key.clone(),
            uid,
            reason,
            note,
        }));
    }

    pub(super) fn metric(&mut self, metric: Metric) {
        self.metrics.push_back(metric);
    }
}
