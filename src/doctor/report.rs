//! The doctor report: one row per host with a cell per check, and findings that say
//! what is wrong and what to do. Serialized as is for `--output json`.

use serde::Serialize;

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The controller namespace that was checked.
    pub namespace: String,
    /// Problems of the host-config ConfigMap that belong to no single host.
    pub config_problems: Vec<Finding>,
    /// Problems reading the cluster (known-hosts ConfigMap, TaskRuns).
    pub cluster_problems: Vec<Finding>,
    /// One row per (selected) host, by name.
    pub hosts: Vec<HostRow>,
    /// No problem anywhere: the exit status is 0.
    pub healthy: bool,
}

impl Report {
    /// The process exit status: 0 when healthy, 1 when anything has a problem.
    pub fn exit_code(&self) -> u8 {
        if self.healthy { 0 } else { 1 }
    }

    /// Rows whose verdict is not [`Verdict::Ok`].
    pub fn hosts_with_problems(&self) -> usize {
        self.hosts
            .iter()
            .filter(|h| h.verdict != Verdict::Ok)
            .count()
    }
}

/// One host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostRow {
    /// The pool name (`host.<name>.*`).
    pub name: String,
    /// Its platform, when valid.
    pub platform: Option<String>,
    /// `address:port`, when valid.
    pub address: Option<String>,
    /// `active`, `drain` or `disabled`, when valid.
    pub state: Option<String>,
    /// TCP + SSH handshake.
    pub reachable: Cell,
    /// Connect, log in and probe, in milliseconds.
    pub round_trip_ms: Option<u64>,
    /// Host key verification.
    pub host_key: Cell,
    /// SHA256 fingerprint of the key the host presented, when seen.
    pub host_key_fingerprint: Option<String>,
    /// SHA256 fingerprint the host must present (pinned or remembered), if any.
    pub expected_host_key: Option<String>,
    /// What the fingerprint means (matches the pin, not remembered yet, …), when seen.
    pub host_key_note: Option<String>,
    /// The admin login and the provisioning tools.
    pub admin: Cell,
    /// The throwaway-user test (expired key refused, valid key accepted, removed).
    pub expiry_time: Cell,
    /// TaskRuns holding a slot on the host; `None` when they could not be counted.
    pub slots_used: Option<u32>,
    /// The host's concurrency; `None` for an excluded host.
    pub slots_total: Option<u32>,
    /// The overall verdict.
    pub verdict: Verdict,
    /// What is wrong and what to do, one finding per failing check.
    pub problems: Vec<Finding>,
}

/// The outcome of one check, as shown in one table cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cell {
    /// How it went.
    pub status: Status,
    /// The cell text (`12 ms`, `pinned`, `sudo`, `honoured`, …; `-` when skipped).
    pub text: String,
}

impl Cell {
    /// A cell with `status` and `text`.
    pub fn new(status: Status, text: impl Into<String>) -> Self {
        Cell {
            status,
            text: text.into(),
        }
    }

    /// A check that was not run (an earlier one failed or does not apply).
    pub fn skipped() -> Self {
        Cell::new(Status::Skipped, "-")
    }
}

/// How a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    /// Fine.
    Pass,
    /// Fine, with something worth knowing (a host key not remembered yet, checking off).
    Info,
    /// Not fatal, but needs a look.
    Warn,
    /// Broken.
    Fail,
    /// Not run.
    Skipped,
}

/// The verdict on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// Every check passed.
    Ok,
    /// Only warnings.
    Warn,
    /// At least one check failed.
    Fail,
    /// The host's configuration is invalid: the controller does not use it.
    Excluded,
}

/// Which check a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// The host-config ConfigMap.
    Config,
    /// The admin key Secret.
    AdminKey,
    /// Connecting.
    Reachable,
    /// Host key verification.
    HostKey,
    /// Admin login, root privileges, tools.
    Admin,
    /// What the build users' rootless podman needs of the host.
    Podman,
    /// The throwaway user's expired and valid keys.
    ExpiryTime,
    /// Removing the throwaway user.
    Cleanup,
    /// Slots used against the concurrency.
    Slots,
    /// Reading the known-hosts ConfigMap.
    KnownHosts,
    /// Counting TaskRuns.
    TaskRuns,
}

impl Check {
    /// The name shown in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Config => "config",
            Check::AdminKey => "admin-key",
            Check::Reachable => "reachable",
            Check::HostKey => "host-key",
            Check::Admin => "admin",
            Check::Podman => "podman",
            Check::ExpiryTime => "expiry-time",
            Check::Cleanup => "cleanup",
            Check::Slots => "slots",
            Check::KnownHosts => "known-hosts",
            Check::TaskRuns => "taskruns",
        }
    }
}

/// How bad a finding is; both make the exit status 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    /// Something is broken.
    Failure,
    /// Something needs a look.
    Warning,
}

/// One problem: what is wrong and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The check that found it.
    pub check: Check,
    /// How bad it is.
    pub severity: Severity,
    /// The host-config key at fault, for configuration problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

impl Finding {
    /// A failure of `check`.
    pub fn failure(check: Check, message: impl Into<String>) -> Self {
        Finding {
            check,
            severity: Severity::Failure,
            key: None,
            message: message.into(),
        }
    }

    /// A warning of `check`.
    pub fn warning(check: Check, message: impl Into<String>) -> Self {
        Finding {
            check,
            severity: Severity::Warning,
            key: None,
            message: message.into(),
        }
    }
}
