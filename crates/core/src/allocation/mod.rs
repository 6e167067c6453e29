//! Which TaskRun gets which host slot (contract §3): a [`Ledger`] of host → TaskRuns and a
//! FIFO queue per platform, as plain data with pure operations.
//!
//! The controller owns one ledger and calls it on every event; each operation that
//! can start work returns the resulting [`Assignment`]s, so the shell knows which
//! TaskRuns to provision. Nothing here does I/O or reads a clock.
//!
//! Rules:
//! - A host takes a new TaskRun only while it is in the configuration, `active`,
//!   healthy and below its concurrency. Lowered concurrency never evicts: it takes
//!   effect as TaskRuns finish.
//! - Choice: the usable host with the most free slots that is not in the TaskRun's
//!   failed-hosts; ties: fewest slots used, then name.
//! - No slot free: the TaskRun waits in its platform's FIFO (oldest creationTimestamp
//!   first, then namespace, then name). A freed slot goes at once to the oldest
//!   waiter that may use it (one that has not failed on that host).
//! - A TaskRun waits only while its platform has a host that is not `disabled` and
//!   not in its failed-hosts; otherwise it is rejected ([`Rejection`]).
//!
//! Costs: deciding for one TaskRun is O(hosts of its platform + log n); every slot a
//! release, failure, health or configuration change hands out costs
//! O(hosts of the platform × failed-hosts groups + log n), where groups are the
//! distinct failed-hosts sets among waiters (almost always one: the empty set). No
//! operation looks at all TaskRuns, except `rebuild` and rejecting waiters whose
//! platform lost its last host.

mod ledger;
mod queue;
mod quota;
mod rank;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;

use thiserror::Error;

pub use ledger::Ledger;
pub use quota::{InstanceQuota, QuotaDecision, QuotaUsage};

use crate::config::{HostName, HostState};
use crate::platform::Platform;
use crate::time::Timestamp;

/// Identity of a TaskRun.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskRunKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl TaskRunKey {
    /// A key from namespace and name.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        TaskRunKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for TaskRunKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What the ledger needs to know about a TaskRun that wants a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRunRequest {
    /// Which TaskRun.
    pub key: TaskRunKey,
    /// Its PLATFORM.
    pub platform: Platform,
    /// Its creationTimestamp: the FIFO order.
    pub created: Timestamp,
    /// Hosts that already failed to provision it (the failed-hosts annotation).
    pub failed_hosts: BTreeSet<HostName>,
}

/// A TaskRun as found in the cluster after a restart, for [`Ledger::rebuild`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedTaskRun {
    /// Its identity, platform, creation time and failed-hosts annotation.
    pub request: TaskRunRequest,
    /// Its `assigned-host` label; `None` for a TaskRun still waiting (or not yet seen).
    pub assigned_host: Option<HostName>,
}

/// A TaskRun was given a slot on a host: provision it there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// Which TaskRun.
    pub taskrun: TaskRunKey,
    /// Its platform.
    pub platform: Platform,
    /// The host.
    pub host: HostName,
}

/// Why the pool can never serve a TaskRun as configured now: write the error Secret.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Rejection {
    /// Every host of the platform that is not disabled failed to provision it.
    #[error(
        "every host of platform {platform} failed to prepare a build user for this TaskRun \
         ({}); a cluster admin must check those hosts (SSH access, host key, disk space, the \
         controller's logs and Events), then the TaskRun can be run again",
        names(.failed)
    )]
    AllHostsFailed {
        /// The platform.
        platform: Platform,
        /// The hosts that failed, sorted.
        failed: Vec<HostName>,
    },
    /// The platform has no host left that is not disabled (removed from host-config
    /// or disabled). `PoolConfig::route` gives the admin-facing reason.
    #[error(
        "platform {platform} has no host that can take TaskRuns (hosts removed from \
         host-config or disabled); a cluster admin must add or re-enable a host for it"
    )]
    NoHosts {
        /// The platform.
        platform: Platform,
    },
}

fn names(hosts: &[HostName]) -> String {
    let list: Vec<&str> = hosts.iter().map(HostName::as_str).collect();
    list.join(", ")
}

/// A TaskRun the ledger dropped because it can never be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// Which TaskRun.
    pub taskrun: TaskRunKey,
    /// Why.
    pub rejection: Rejection,
}

/// The ledger's answer for one TaskRun.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// It holds a slot on this host (new or earlier): provision it there.
    Assigned(HostName),
    /// No slot it may use is free: it waits; `ahead` TaskRuns of its platform wait
    /// before it.
    Queued {
        /// Waiters before it in the FIFO.
        ahead: usize,
    },
    /// It can never be served as configured: write the error Secret. The ledger
    /// forgot it.
    Rejected(Rejection),
}

/// What an operation did to TaskRuns other than the one it was called for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Waiters that got a slot: provision them.
    pub assigned: Vec<Assignment>,
    /// Waiters that can never be served: write their error Secrets.
    pub rejected: Vec<Rejected>,
}

/// The result of [`Ledger::provisioning_failed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failover {
    /// What happens to the TaskRun whose provisioning failed.
    pub decision: Decision,
    /// Waiters that got the slot it freed.
    pub assigned: Vec<Assignment>,
}

/// Where a TaskRun the ledger knows stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// It holds a slot on this host.
    Running(HostName),
    /// It waits; `ahead` TaskRuns of its platform wait before it.
    Waiting {
        /// Waiters before it in the FIFO.
        ahead: usize,
    },
}

/// One host's slots, for metrics and status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostUsage {
    /// The host.
    pub host: HostName,
    /// Its platform, `None` when it was removed from the configuration but still
    /// runs TaskRuns.
    pub platform: Option<Platform>,
    /// Its state, `None` when removed.
    pub state: Option<HostState>,
    /// Its concurrency (0 when removed).
    pub concurrency: u32,
    /// TaskRuns it runs now (may exceed `concurrency` right after it was lowered).
    pub used: usize,
    /// Whether the last health probe succeeded.
    pub healthy: bool,
}
