//! What comes out of the machine, by who consumes it (as quinn-proto drains a
//! connection): [`Work`] for the executor, one piece at a time per TaskRun, each ending
//! in a [`super::Report`]; [`Effect`]s the runner carries out itself (Events, host
//! probes); and [`Metric`]s to count. The shell drains them with
//! [`super::Core::poll_work`], [`super::Core::poll_effect`] and
//! [`super::Core::poll_metric`] after every input.

use std::time::Duration;

use crate::allocation::TaskRunKey;
use crate::cloud::{CloudTarget, InstanceId, LaunchSpec, VmAccess};
use crate::config::{Host, HostKeyChecking, HostName};
use crate::host_work::handover::BuilderHandover;
use crate::naming::UserName;
use crate::platform::Platform;
use crate::time::Timestamp;

/// Work for the executor. Every piece is idempotent: the executor may run it again
/// after a failure, and the machine orders it again after [`super::Report::ApiError`].
/// At most one piece per TaskRun is in flight; the next is decided on its report.
#[derive(Clone, Debug, PartialEq)]
pub enum Work {
    /// Finalizer and allocation labels on the TaskRun, then the user on the host, then
    /// the access Secret (contract §3 order). Reports `Provisioned` or `ProvisionFailed`.
    Provision(ProvisionOrder),
    /// Put the waiting label (and failed-hosts, if any) on a queued TaskRun.
    Wait(WaitOrder),
    /// Finalizer, `assigned-host: localhost` and the `host: localhost` Secret.
    ServeLocal(TaskRunOrder),
    /// Finalizer and the error Secret, so the Task fails fast.
    Fail(FailOrder),
    /// Clean the host (when `host` is set), delete the Secret, drop our labels and
    /// finalizer (contract §3 order). Reports `Released` or `CleanupFailed`.
    Release(ReleaseOrder),
    /// Record the VM slot on the TaskRun (finalizer, labels, launch attempt), launch its
    /// instance, record the instance id. Reports `Launched` or `LaunchFailed`.
    Launch(LaunchOrder),
    /// Wait for the instance's address and SSH (up to the deadline), create the build
    /// user through the VM's admin, write the Secret. Reports `Provisioned`,
    /// `AlreadyProvisioned` or `ProvisionFailed`.
    ProvisionVm(VmOrder),
    /// Terminate the instance (until the cloud confirms), delete the Secret, drop our
    /// marks. Reports `Released` or `CleanupFailed`.
    ReleaseVm(VmReleaseOrder),
}

impl Work {
    /// What kind of work it is, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Work::Provision(_) => "provision",
            Work::Wait(_) => "wait",
            Work::ServeLocal(_) => "serve-local",
            Work::Fail(_) => "fail",
            Work::Release(_) => "release",
            Work::Launch(_) => "launch",
            Work::ProvisionVm(_) => "provision-vm",
            Work::ReleaseVm(_) => "release-vm",
        }
    }

    /// The TaskRun the work is for (its report goes back under this key).
    pub fn key(&self) -> &TaskRunKey {
        match self {
            Work::Provision(o) => &o.taskrun.key,
            Work::Wait(o) => &o.taskrun.key,
            Work::ServeLocal(o) => &o.key,
            Work::Fail(o) => &o.key,
            Work::Release(o) => &o.key,
            Work::Launch(o) => &o.taskrun.key,
            Work::ProvisionVm(o) => &o.taskrun.key,
            Work::ReleaseVm(o) => &o.key,
        }
    }
}

/// What the runner does itself, without a report back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Publish an Event on a TaskRun.
    Event(EventOrder),
    /// Probe a host until it answers, reap its leftover users, then report it up with
    /// [`super::Input::Health`]. With a `reason`, the host was taken out of service:
    /// publish it as a warning (on the host-config ConfigMap).
    Probe {
        /// The host.
        host: HostName,
        /// Why it was taken down; `None` for a host that was never probed yet.
        reason: Option<String>,
    },
    /// Launch an instance for a dynamic pool, wait for its address, and report with
    /// [`super::Input::PoolLaunched`].
    LaunchPool {
        /// What to launch.
        spec: Box<LaunchSpec>,
    },
    /// Terminate instances no TaskRun owns (the leaked-VM sweep) or a pool retires; the
    /// next listing shows whether it worked.
    Terminate {
        /// Where they run.
        target: CloudTarget,
        /// Which, and why (for the log and the Event on host-config).
        instances: Vec<(InstanceId, String)>,
        /// Whether these were leaked (worth a Warning) or retired by their pool (routine).
        cause: TerminationCause,
    },
}

/// Why [`Effect::Terminate`] ends instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TerminationCause {
    /// No TaskRun owns them: an admin should learn that capacity leaked.
    Leaked,
    /// A dynamic pool retires them (past `max-age` and idle): routine, not a warning.
    Retired,
}

/// See [`Work::Launch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchOrder {
    /// The TaskRun.
    pub taskrun: TaskRunOrder,
    /// What to launch (client token included).
    pub spec: LaunchSpec,
    /// Which attempt this is (recorded on the TaskRun before the launch).
    pub attempt: u32,
    /// The recorded allocation start, if any.
    pub allocation_start: Option<Timestamp>,
}

/// See [`Work::ProvisionVm`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmOrder {
    /// The TaskRun.
    pub taskrun: TaskRunOrder,
    /// Where the instance runs.
    pub target: CloudTarget,
    /// How to reach it.
    pub access: VmAccess,
    /// The instance.
    pub instance: InstanceId,
    /// The throwaway user.
    pub user: UserName,
    /// How long the issued key stays valid on the VM.
    pub key_lifetime: Duration,
    /// When to give up (allocation-timeout after the launch).
    pub deadline: Timestamp,
    /// Windows and macOS: hand the VM's builder account over instead of creating `user`.
    pub handover: Option<BuilderHandover>,
}

/// See [`Work::ReleaseVm`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmReleaseOrder {
    /// Which TaskRun.
    pub key: TaskRunKey,
    /// Where its instance runs (the last known settings of its platform).
    pub target: Option<CloudTarget>,
    /// The instance to terminate, if one was recorded.
    pub instance: Option<InstanceId>,
}

/// The TaskRun a piece of work is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRunOrder {
    /// Which TaskRun.
    pub key: TaskRunKey,
    /// Its uid (Secret ownerReference).
    pub uid: String,
    /// Its platform.
    pub platform: Platform,
}

/// See [`Work::Provision`].
#[derive(Clone, Debug, PartialEq)]
pub struct ProvisionOrder {
    /// The TaskRun.
    pub taskrun: TaskRunOrder,
    /// The host, as configured when the slot was given.
    pub host: Host,
    /// The throwaway user.
    pub user: UserName,
    /// Hosts that failed before (written to the annotation).
    pub failed_hosts: Vec<HostName>,
    /// The recorded allocation start, if any (kept; otherwise now is recorded).
    pub allocation_start: Option<Timestamp>,
    /// How long the issued key stays valid on the host.
    pub key_lifetime: Duration,
    /// How to verify the host's key.
    pub host_key_checking: HostKeyChecking,
}

/// See [`Work::Wait`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitOrder {
    /// The TaskRun.
    pub taskrun: TaskRunOrder,
    /// Hosts that failed before (written to the annotation).
    pub failed_hosts: Vec<HostName>,
    /// The recorded allocation start, if any.
    pub allocation_start: Option<Timestamp>,
}

/// See [`Work::Fail`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailOrder {
    /// Which TaskRun.
    pub key: TaskRunKey,
    /// Its uid.
    pub uid: String,
    /// The PLATFORM param as written, for the context block.
    pub platform: String,
    /// What failed and what to do.
    pub message: String,
    /// Hosts that failed before (written to the annotation).
    pub failed_hosts: Vec<HostName>,
}

/// See [`Work::Release`].
#[derive(Clone, Debug, PartialEq)]
pub struct ReleaseOrder {
    /// Which TaskRun.
    pub key: TaskRunKey,
    /// The host to clean, `None` when there is nothing (or nothing more) to clean.
    pub host: Option<Host>,
    /// The user to remove from it.
    pub user: UserName,
    /// How to verify the host's key.
    pub host_key_checking: HostKeyChecking,
}

/// See [`Effect::Event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventOrder {
    /// Which TaskRun.
    pub key: TaskRunKey,
    /// Its uid.
    pub uid: String,
    /// Machine-readable reason (`Allocated`, `Waiting`, …).
    pub reason: EventReason,
    /// Human-readable note.
    pub note: String,
}

/// Reasons of the Events the controller publishes on TaskRuns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventReason {
    /// A host slot was given.
    Allocated,
    /// The pool is full (or host-config missing); the TaskRun is queued.
    Waiting,
    /// The build user exists and the Secret is written.
    Provisioned,
    /// Preparing the user on a host failed.
    ProvisioningFailed,
    /// The error Secret was written.
    AllocationFailed,
    /// The host was cleaned and the slot freed.
    Released,
    /// Cleaning the host failed (retried).
    CleanupFailed,
    /// Every host the TaskRun may use is unreachable; it waits, bounded.
    HostsDown,
    /// Its cloud instance was launched.
    Launched,
    /// Launching its cloud instance failed.
    LaunchFailed,
}

impl EventReason {
    /// The reason string of the Event.
    pub fn as_str(self) -> &'static str {
        match self {
            EventReason::Allocated => "Allocated",
            EventReason::Waiting => "Waiting",
            EventReason::Provisioned => "Provisioned",
            EventReason::ProvisioningFailed => "ProvisioningFailed",
            EventReason::AllocationFailed => "AllocationFailed",
            EventReason::Released => "Released",
            EventReason::CleanupFailed => "CleanupFailed",
            EventReason::HostsDown => "HostsUnreachable",
            EventReason::Launched => "Launched",
            EventReason::LaunchFailed => "LaunchFailed",
        }
    }

    /// Whether the Event is a warning rather than normal.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            EventReason::ProvisioningFailed
                | EventReason::AllocationFailed
                | EventReason::CleanupFailed
                | EventReason::HostsDown
                | EventReason::LaunchFailed
        )
    }
}

/// A measurement for the metrics, decided by the core so that nothing is counted twice
/// and no success is counted on a failure.
#[derive(Clone, Debug, PartialEq)]
pub enum Metric {
    /// A user was provisioned and its Secret written.
    ProvisioningSuccess {
        /// The platform.
        platform: Platform,
    },
    /// Provisioning on a host failed.
    ProvisioningFailure {
        /// The platform.
        platform: Platform,
    },
    /// Cleaning a host failed.
    CleanupFailure {
        /// The platform.
        platform: Platform,
    },
    /// A TaskRun got an error Secret.
    AllocationFailure {
        /// The platform as written.
        platform: String,
    },
    /// From the slot being given to a written access Secret (no waiting).
    AllocationTime {
        /// The platform.
        platform: Platform,
        /// How long it took.
        took: Duration,
    },
    /// How long a TaskRun waited in the queue.
    WaitTime {
        /// The platform.
        platform: Platform,
        /// How long it waited.
        took: Duration,
    },
    /// From allocation start (waiting included) to release, for served TaskRuns.
    TaskRunTime {
        /// The platform.
        platform: Platform,
        /// How long it ran.
        took: Duration,
    },
    /// An instance was launched.
    Launch {
        /// The platform.
        platform: Platform,
    },
    /// RunInstances failed.
    LaunchFailure {
        /// The platform.
        platform: Platform,
        /// The cloud's error code.
        code: String,
    },
    /// A TaskRun's instance was terminated.
    Termination {
        /// The platform.
        platform: Platform,
    },
    /// The sweep asked for instances no TaskRun owns to be terminated.
    Swept {
        /// The platform.
        platform: Platform,
        /// How many.
        count: usize,
    },
}
