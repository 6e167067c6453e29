//! What goes into the machine: observations of the cluster and its configuration, and
//! reports of the work the machine ordered.

use crate::allocation::TaskRunKey;
use crate::cloud::{CloudInstance, InstanceId};
use crate::config::{HostName, PoolConfig};
use crate::naming::UserName;
use crate::platform::Platform;

use super::Observed;

/// Something that happened, fed to [`super::Core::handle`] with the time it is handled.
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
    /// A probe could not use a host (its first failure, or a different one than
    /// before): why the host is out of service.
    HostFault(HostName, HostFailure),
    /// The reaper passed over a host: these `u-*` users remain on it afterwards.
    Reaped(HostName, Vec<UserName>),
    /// A listing of a dynamic platform's instances (every one with our tags), complete
    /// (all pages).
    CloudListing(Platform, Vec<CloudInstance>),
    /// A dynamic platform cannot be listed until an admin acts (its credentials are
    /// missing or refused): launches are tried anyway and fail with the same error, so
    /// TaskRuns get an error Secret instead of waiting for a listing that never comes.
    CloudUnavailable(Platform),
    /// A launch for a dynamic pool ended: the instance and its address (once it had
    /// one), or why it failed.
    PoolLaunched(
        Platform,
        Result<(InstanceId, Option<String>), LaunchFailure>,
    ),
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
    /// The TaskRun's instance was launched (or was found launched: same client token).
    Launched(InstanceId),
    /// RunInstances failed.
    LaunchFailed(LaunchFailure),
    /// A Kubernetes call failed in a way that may pass: retry later.
    ApiError(String),
    /// The TaskRun no longer exists (anything created for it was cleaned).
    Gone,
}

/// Why RunInstances failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchFailure {
    /// The cloud's error code (`InsufficientInstanceCapacity`, `RequestLimitExceeded`,
    /// `InternalError`, …; `Unreachable` when no answer came).
    pub code: String,
    /// The cloud's message, or what the shell knows (no credentials).
    pub message: String,
    /// Whether trying again may help (capacity, throttling, server errors).
    pub retryable: bool,
    /// Whether the request may have started an instance all the same (a server error,
    /// no answer): the next try sends the same client token, so it finds that instance
    /// instead of starting a second one.
    pub ambiguous: bool,
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

    /// Whether only an admin can bring the host back (a wrong pinned host key, a
    /// missing, unusable or refused admin key); the others pass by themselves.
    pub fn needs_admin(self) -> bool {
        matches!(
            self,
            HostFailureKind::HostKeyMismatch | HostFailureKind::AdminAccess
        )
    }
}
