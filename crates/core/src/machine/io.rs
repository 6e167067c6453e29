//! The vocabulary between the core and the shell: what goes in, what comes out.

use std::time::Duration;

use crate::allocation::TaskRunKey;
use crate::config::{Host, HostKeyChecking, HostName, PoolConfig};
use crate::naming::UserName;
use crate::platform::Platform;

use super::Observed;

/// Something that happened, fed to [`super::Core::handle`].
#[derive(Clone, Debug)]
pub enum Input {
    /// A TaskRun was added or changed (or listed again after a watch restart).
    Observed(Observed),
    /// A TaskRun is gone from the cluster.
    Deleted(TaskRunKey),
    /// The host-config ConfigMap changed.
    Config(ConfigInput),
    /// An operation the core ordered has ended.
    Report(TaskRunKey, Report),
    /// A host's health changed. The prober reports a host up only after it reached
    /// it and removed the users [`super::Core::reapable`] named.
    Health(HostName, bool),
    /// The reaper passed over a host: these `u-*` users remain on it afterwards.
    Reaped(HostName, Vec<UserName>),
    /// Time passed: due timers fire.
    Tick,
}

/// The state of the host-config ConfigMap.
#[derive(Clone, Debug)]
pub enum ConfigInput {
    /// Present and parsed (problems, if any, are inside).
    Present(Box<PoolConfig>),
    /// Absent or unusable as a whole; the text says why and what to do.
    Missing(String),
}

/// Work for the shell. Every command is idempotent: the shell may run it again after a
/// failure, and the core re-issues it after [`Report::ApiError`].
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Finalizer and allocation labels on the TaskRun, then the user on the host, then
    /// the access Secret (SPEC §3 order). Reports `Provisioned` or `ProvisionFailed`.
    Provision(ProvisionOrder),
    /// Put the waiting label (and failed-hosts, if any) on a queued TaskRun.
    Wait(WaitOrder),
    /// Finalizer, `assigned-host: localhost` and the `host: localhost` Secret.
    ServeLocal(TaskRunOrder),
    /// Finalizer and the error Secret, so the Task fails fast.
    Fail(FailOrder),
    /// Clean the host (when `host` is set), delete the Secret, drop our labels and
    /// finalizer (SPEC §3 order). Reports `Released` or `CleanupFailed`.
    Release(ReleaseOrder),
    /// Publish an Event on a TaskRun.
    Event(EventOrder),
    /// Probe a host until it answers, reap its leftover users, then report it up with
    /// [`Input::Health`]. With a `reason`, the host was taken out of service: publish
    /// it as a warning (on the host-config ConfigMap).
    Probe {
        /// The host.
        host: HostName,
        /// Why it was taken down; `None` for a host that was never probed yet.
        reason: Option<String>,
    },
    /// Count something for the metrics.
    Metric(Metric),
}

/// The TaskRun a command is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRunOrder {
    /// Which TaskRun.
    pub key: TaskRunKey,
    /// Its uid (Secret ownerReference).
    pub uid: String,
    /// Its platform.
    pub platform: Platform,
}

/// See [`Command::Provision`].
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
    pub allocation_start: Option<i64>,
    /// How long the issued key stays valid on the host.
    pub key_lifetime: Duration,
    /// How to verify the host's key.
    pub host_key_checking: HostKeyChecking,
}

/// See [`Command::Wait`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitOrder {
    /// The TaskRun.
    pub taskrun: TaskRunOrder,
    /// Hosts that failed before (written to the annotation).
    pub failed_hosts: Vec<HostName>,
    /// The recorded allocation start, if any.
    pub allocation_start: Option<i64>,
}

/// See [`Command::Fail`].
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

/// See [`Command::Release`].
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

/// See [`Command::Event`].
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
        }
    }

    /// Whether the Event is a warning rather than normal.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            EventReason::ProvisioningFailed
                | EventReason::AllocationFailed
                | EventReason::CleanupFailed
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
    /// Seconds from the slot being given to a written access Secret (no waiting).
    AllocationTime {
        /// The platform.
        platform: Platform,
        /// Duration.
        seconds: f64,
    },
    /// Seconds a TaskRun waited in the queue.
    WaitTime {
        /// The platform.
        platform: Platform,
        /// Duration.
        seconds: f64,
    },
    /// Seconds from allocation start (waiting included) to release, for served TaskRuns.
    TaskRunTime {
        /// The platform.
        platform: Platform,
        /// Duration.
        seconds: f64,
    },
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// The user was created and the access Secret written: the TaskRun can build.
    Provisioned,
    /// The access Secret already existed (work resumed after a restart): nothing done.
    AlreadyProvisioned,
    /// Preparing the user on the ordered host failed.
    ProvisionFailed(HostFailure),
    /// The command other than Provision/Release completed.
    Done,
    /// The TaskRun's host was cleaned and our marks removed.
    Released,
    /// Cleaning the host failed; nothing was released.
    CleanupFailed(HostFailure),
    /// A Kubernetes call failed in a way that may pass: retry later.
    ApiError(String),
    /// The TaskRun no longer exists (anything created for it was cleaned).
    Gone,
}

/// What went wrong on a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFailure {
    /// The class of failure, which decides what happens to the host.
    pub kind: HostFailureKind,
    /// Human-readable detail (no key material).
    pub message: String,
}

/// Classes of host failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostFailureKind {
    /// Could not connect, or the connection broke or timed out: the host is down.
    Unreachable,
    /// The host presented a key other than the pinned or remembered one.
    HostKeyMismatch,
    /// The admin credentials are missing or refused.
    AdminAccess,
    /// A command on the host failed (disk full, useradd error, …) and what it had
    /// created was removed again.
    Command,
    /// A command failed and removing what it created failed too: the host may hold a
    /// leftover user that counts against its slots.
    CommandWithLeftover,
}

impl HostFailureKind {
    /// Whether the host must take no new TaskRuns until a probe reaches it (and the
    /// reaper has removed leftovers, so its users never exceed its slots).
    pub fn takes_host_down(self) -> bool {
        !matches!(self, HostFailureKind::Command)
    }
}
