//! What the core remembers about one TaskRun between events.

use std::collections::BTreeSet;

use crate::cloud::InstanceId;
use crate::config::HostName;
use crate::platform::Platform;
use crate::taskrun::PlatformParamError;
use crate::time::Timestamp;

use super::Observed;

/// Where a TaskRun stands in its life with the controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Seen, nothing decided yet.
    New,
    /// Queued; `marked` once the waiting label is written.
    Queued { reason: QueueReason, marked: bool },
    /// Holds a slot on `host`; the user and Secret are being prepared.
    Provisioning { host: HostName },
    /// Holds a slot on `host`; the build can log in.
    Ready { host: HostName },
    /// Local platform; `written` once the localhost Secret exists.
    Local { written: bool },
    /// Cannot be served; `written` once the error Secret exists.
    Failed { message: String, written: bool },
    /// Finished: cleaning `host` (if any) and removing our marks. `abandoned`: a host
    /// that could not be cleaned in time; its user keeps the slot until reaped.
    Releasing {
        host: Option<HostName>,
        since: Timestamp,
        abandoned: Option<HostName>,
    },
    /// Released, but its user was left on `host`: the slot stays taken until the
    /// reaper removed the user.
    Abandoned { host: HostName },
    /// Holds a VM slot of `platform`; its instance is being launched.
    Launching { platform: Platform },
    /// Its instance is launched; the VM and the build user are being prepared.
    Booting {
        platform: Platform,
        instance: InstanceId,
    },
    /// The build can log in to its VM.
    VmReady {
        platform: Platform,
        instance: InstanceId,
    },
    /// Terminating its VM (if it has one) and removing our marks; the slot is freed
    /// once the cloud confirmed the termination. `then_fail`: the error the TaskRun gets
    /// afterwards (its VM could not be prepared).
    Terminating {
        platform: Platform,
        instance: Option<InstanceId>,
        then_fail: Option<String>,
    },
    /// Nothing left to do (kept so late events for it are ignored).
    Done,
}

/// The kinds of command a TaskRun can have in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Provision,
    Wait,
    Local,
    Fail,
    Release,
    Launch,
    ProvisionVm,
    ReleaseVm,
}

impl Op {
    /// Whether the work writes our label, annotations or finalizer on the TaskRun.
    pub(crate) fn writes_marks(self) -> bool {
        !matches!(self, Op::Release | Op::ReleaseVm)
    }
}

/// Why a TaskRun is queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QueueReason {
    /// Every usable host of its platform is full (it is in the ledger's queue).
    PoolFull,
    /// host-config is missing; it waits up to the grace period (not in the ledger).
    ConfigMissing,
    /// Its dynamic platform runs its `max-instances` VMs (it is in the quota's queue).
    QuotaFull,
}

/// The core's memory of one TaskRun.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    pub uid: String,
    pub created: Timestamp,
    pub platform_raw: String,
    pub platform: Option<Result<Platform, PlatformParamError>>,
    pub finished: bool,
    pub deleting: bool,
    /// The TaskRun is gone from the cluster.
    pub gone: bool,
    /// The TaskRun carries marks of ours that a release must remove (as last observed).
    pub marked: bool,
    /// A command that writes our marks was ordered since the last release: its writes
    /// may have landed although its report said otherwise, and a late watch event from
    /// before them may say there are none.
    pub wrote_marks: bool,
    pub phase: Phase,
    /// The command being carried out for this TaskRun; decide again on its report.
    pub in_flight: Option<Op>,
    /// Consecutive failed attempts, for the retry backoff.
    pub attempts: u32,
    /// When to look at this TaskRun again (retry or deadline).
    pub timer: Option<Timestamp>,
    /// When allocation started (annotation, or first queued/placed), in whole seconds.
    pub allocation_start: Option<Timestamp>,
    /// When it was queued, for the wait-time metric.
    pub queued_at: Option<Timestamp>,
    /// When it was first given a slot, for the allocation-time metric.
    pub assigned_at: Option<Timestamp>,
    /// When its access Secret was written (it was served).
    pub ready_at: Option<Timestamp>,
    pub failed_hosts: BTreeSet<HostName>,
    /// Since when every host it may use has been down, while that lasts.
    pub down_since: Option<Timestamp>,
    /// Its cloud VM, once launched (annotation, or the launch's report).
    pub instance: Option<InstanceId>,
    /// Which launch attempt its VM is; a new attempt gets a new client token.
    pub launch_attempt: u32,
    /// Launches tried (by this controller), whatever their client token.
    pub launch_tries: u32,
    /// The down hosts its last Warning Event named, so it is not repeated.
    pub warned_down: BTreeSet<HostName>,
}

impl Run {
    pub fn new(obs: &Observed) -> Self {
        let mut run = Run {
            uid: String::new(),
            created: obs.created,
            platform_raw: String::new(),
            platform: None,
            finished: false,
            deleting: false,
            gone: false,
            marked: false,
            wrote_marks: false,
            phase: Phase::New,
            in_flight: None,
            attempts: 0,
            timer: None,
            allocation_start: None,
            queued_at: None,
            assigned_at: None,
            ready_at: None,
            failed_hosts: BTreeSet::new(),
            down_since: None,
            instance: None,
            launch_attempt: 1,
            launch_tries: 0,
            warned_down: BTreeSet::new(),
        };
        run.update(obs);
        run
    }

    /// Folds a new observation in. Finishing is sticky: a TaskRun never un-finishes,
    /// and a late event from before it finished must not revive it.
    pub fn update(&mut self, obs: &Observed) {
        if !obs.uid.is_empty() {
            self.uid.clone_from(&obs.uid);
        }
        self.platform_raw = obs.platform_raw.clone().unwrap_or_default();
        self.platform.clone_from(&obs.platform);
        self.finished |= obs.finished;
        self.deleting |= obs.deleting;
        self.marked = obs.has_marks();
        if self.instance.is_none() {
            self.instance.clone_from(&obs.instance);
        }
        self.launch_attempt = self.launch_attempt.max(obs.launch_attempt);
        self.failed_hosts.extend(obs.failed_hosts.iter().cloned());
        if self.allocation_start.is_none() {
            self.allocation_start = obs.allocation_start;
        }
    }

    /// Whether a release must run before the TaskRun is done: it carries our marks, or
    /// it may, because we ordered writes of them.
    pub fn may_be_marked(&self) -> bool {
        self.marked || self.wrote_marks
    }

    /// The valid platform, if any.
    pub fn valid_platform(&self) -> Option<&Platform> {
        self.platform.as_ref()?.as_ref().ok()
    }

    /// The host whose slot this TaskRun holds or is cleaning.
    pub fn host(&self) -> Option<&HostName> {
        match &self.phase {
            Phase::Provisioning { host } | Phase::Ready { host } => Some(host),
            Phase::Releasing { host, .. } => host.as_ref(),
            _ => None,
        }
    }
}
