//! The plain-data view of a TaskRun that the core decides on.

use std::collections::BTreeSet;

use crate::allocation::TaskRunKey;
use crate::cloud::InstanceId;
use crate::config::HostName;
use crate::platform::Platform;
use crate::taskrun::{PlatformParamError, TaskRun};
use crate::time::Timestamp;

/// What the core knows about a TaskRun from one observation of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Namespace and name.
    pub key: TaskRunKey,
    /// uid, for the Secret's ownerReference.
    pub uid: String,
    /// creationTimestamp: the FIFO order (the epoch when missing).
    pub created: Timestamp,
    /// contract §2.1: PLATFORM param and a mounted `multi-platform-ssh-*` Secret.
    pub candidate: bool,
    /// The PLATFORM param as written (for error messages), if any.
    pub platform_raw: Option<String>,
    /// The validated platform, or the message saying what is wrong with it.
    pub platform: Option<Result<Platform, PlatformParamError>>,
    /// Completed, cancelled, timed out or being deleted.
    pub finished: bool,
    /// `deletionTimestamp` is set.
    pub deleting: bool,
    /// Our finalizer is on it.
    pub finalizer: bool,
    /// The `assigned-host` label.
    pub assigned_host: Option<String>,
    /// The waiting label is on it.
    pub waiting: bool,
    /// The `failed-hosts` annotation (unparseable names dropped).
    pub failed_hosts: BTreeSet<HostName>,
    /// The `allocation-start-time` annotation.
    pub allocation_start: Option<Timestamp>,
    /// The `cloud-dynamic-platform` label: it holds a cloud VM slot.
    pub cloud: bool,
    /// The `cloud-instance-id` annotation.
    pub instance: Option<InstanceId>,
    /// Which launch attempt its VM is (our annotation; 1 by default).
    pub launch_attempt: u32,
}

impl Observed {
    /// Reads the view from a TaskRun.
    pub fn from_taskrun(tr: &TaskRun) -> Self {
        let (namespace, name) = tr.key();
        let platform_raw = tr.platform_param().map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        Observed {
            key: TaskRunKey::new(namespace, name),
            uid: tr.metadata.uid.clone().unwrap_or_default(),
            created: tr.created().map_or(Timestamp::UNIX_EPOCH, |t| t.0),
            candidate: tr.is_candidate(),
            platform_raw,
            platform: tr.platform(),
            finished: tr.is_finished(),
            deleting: tr.metadata.deletion_timestamp.is_some(),
            finalizer: tr.has_finalizer(),
            assigned_host: tr.assigned_host().map(str::to_owned),
            waiting: tr.is_waiting(),
            failed_hosts: tr
                .failed_hosts()
                .iter()
                .filter_map(|h| HostName::parse(h).ok())
                .collect(),
            allocation_start: tr.allocation_start(),
            cloud: tr.cloud_platform().is_some(),
            instance: tr.cloud_instance(),
            launch_attempt: tr.launch_attempt(),
        }
    }

    /// Whether the controller has anything to do with this TaskRun: it is an unfinished
    /// candidate, or it carries one of our marks (from us, or from the Go controller
    /// before a migration), which must be cleaned up. A finished candidate without marks
    /// is history: not even remembered, so 10 000 old TaskRuns cost nothing.
    pub fn concerns_us(&self) -> bool {
        self.has_marks() || (self.candidate && !self.finished)
    }

    /// Whether it carries our finalizer or one of our labels.
    pub fn has_marks(&self) -> bool {
        self.finalizer || self.assigned_host.is_some() || self.waiting || self.cloud
    }
}
