//! Static hosts: `host.<name>.<field>` keys → a validated [`Host`].

use std::collections::BTreeMap;
use std::fmt;

use super::fields::{self, host as field};
use super::host_key::{HostKey, HostKeyChecking};
use super::limits::{CpuQuota, MaxProcesses, MemoryMax, UserLimits};
use super::problem::{Problem, Severity, Subject};
use super::sudo::SudoCommand;
use super::values;
use crate::naming::LOCALHOST;
use crate::platform::Platform;

/// Most TaskRuns one static host may run at once (the Go controller's limit).
pub const MAX_CONCURRENCY: u32 = 8;

/// SSH port used when `host.<name>.port` is not set.
pub const DEFAULT_SSH_PORT: u16 = 22;

/// Why a string cannot be a [`HostName`]; the message says what is expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidHostName(pub String);

/// A host's pool name: the `<name>` of `host.<name>.*`, also written into the
/// TaskRun's `assigned-host` label, so it must be a valid label value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostName(String);

impl HostName {
    /// Validates a host name: a Kubernetes label value (at most 63 letters, digits,
    /// `-`, `_`, `.`, starting and ending with a letter or digit), not `localhost`.
    pub fn parse(name: &str) -> Result<Self, InvalidHostName> {
        let ok = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !ok {
            return Err(InvalidHostName(format!(
                "host name {name:?} cannot be used: it goes into the TaskRun label \
                 build.appstudio.redhat.com/assigned-host, so it must be 1 to 63 letters, \
                 digits, `-`, `_` or `.`, starting and ending with a letter or digit"
            )));
        }
        if name == LOCALHOST {
            return Err(InvalidHostName(format!(
                "host name {LOCALHOST:?} is reserved: TaskRuns of local platforms are \
                 labelled assigned-host=localhost; rename the host"
            )));
        }
        Ok(HostName(name.to_owned()))
    }

    /// The name as written in the ConfigMap and the label.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for HostName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Whether a host takes new TaskRuns (`host.<name>.state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostState {
    /// Takes new TaskRuns.
    #[default]
    Active,
    /// Takes no new TaskRuns; running ones finish. TaskRuns of a platform whose
    /// hosts all drain wait for a host to become active again.
    Drain,
    /// Out of service: takes no new TaskRuns, and a platform whose usable hosts are
    /// all disabled fails its TaskRuns instead of letting them wait.
    Disabled,
}

impl HostState {
    /// Parses the ConfigMap value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "active" => Some(HostState::Active),
            "drain" => Some(HostState::Drain),
            "disabled" => Some(HostState::Disabled),
            _ => None,
        }
    }

    /// The ConfigMap spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Active => "active",
            HostState::Drain => "drain",
            HostState::Disabled => "disabled",
        }
    }
}

impl fmt::Display for HostState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A valid static build host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// Pool name (`host.<name>.*`, the `assigned-host` label value).
    pub name: HostName,
    /// Platform the host serves; must equal a TaskRun's PLATFORM exactly.
    pub platform: Platform,
    /// IP literal or DNS name to connect to.
    pub address: String,
    /// SSH port (default 22).
    pub port: u16,
    /// Admin user the controller logs in as (root or passwordless sudo).
    pub user: String,
    /// Secret in the controller namespace whose `id_rsa` holds the admin key.
    pub secret: String,
    /// Slots: TaskRuns the host may run at once (1..=8).
    pub concurrency: u32,
    /// Whether the host takes new TaskRuns.
    pub state: HostState,
    /// Pinned host key: when set, any other key is refused.
    pub host_key: Option<HostKey>,
    /// Commands the build user may run with sudo (none by default).
    pub sudo_commands: Vec<SudoCommand>,
    /// An instance of a dynamic pool rather than a configured host: its host key
    /// cannot be pinned in advance, so it is trusted on first contact whatever
    /// `host-key-checking` says.
    pub cloud: bool,
    /// What each build user may take from the host (the global defaults unless the
    /// host sets its own).
    pub limits: UserLimits,
}

/// A host left out of the pool because of [`Problem`]s (listed in `PoolConfig::problems`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExcludedHost {
    /// The name as written in the keys.
    pub name: String,
    /// Its platform, when `host.<name>.platform` is a valid platform.
    pub platform: Option<Platform>,
}

/// Parses one host from its fields (`field name → value`); problems go to `problems`.
/// `default_limits` are the global build-user limits, for fields the host does not set.
pub(crate) fn parse_host(
    raw_name: &str,
    fields: &BTreeMap<&str, &str>,
    checking: HostKeyChecking,
    default_limits: UserLimits,
    problems: &mut Vec<Problem>,
) -> Result<Host, ExcludedHost> {
    let before = problems.len();
    let subject = Subject::Host(raw_name.to_owned());
    let key_of = |f: &str| format!("{}{raw_name}.{f}", fields::HOST_PREFIX);
    let excluded = format!("host {raw_name} is not used until this is fixed");
    let mut error = |f: &str, what: String| {
        problems.push(Problem::new(
            Severity::Error,
            subject.clone(),
            key_of(f),
            format!("{what}; {excluded}"),
        ));
    };

    let name = HostName::parse(raw_name).map_err(|why| error("*", why.0));
    let value = |f: &str| fields.get(f).map(|v| v.trim()).filter(|v| !v.is_empty());

    let mut required = |f: &str, what: &str| {
        let v = value(f);
        if v.is_none() {
            error(f, format!("missing; expected {what}"));
        }
        v
    };
    let address = required(field::ADDRESS, "the host's IP address or DNS name");
    let platform_raw = required(
        field::PLATFORM,
        "the platform it builds for, e.g. linux/arm64",
    );
    let user = required(
        field::USER,
        "the admin user the controller logs in as (root or a user with passwordless sudo)",
    );
    let secret = required(
        field::SECRET,
        "the name of the Secret (in the controller's namespace) whose key id_rsa holds the \
         admin private key",
    );
    let concurrency_raw = required(
        field::CONCURRENCY,
        "an integer from 1 to 8: how many TaskRuns may use the host at once",
    );

    let address = address.and_then(|a| {
        values::address(a)
            .map_err(|w| error(field::ADDRESS, w))
            .ok()
            .map(|()| a)
    });
    let platform = platform_raw.and_then(|p| {
        Platform::parse(p)
            .map_err(|err| error(field::PLATFORM, err.to_string()))
            .ok()
    });
    let user = user.and_then(|u| {
        values::login_user(u)
            .map_err(|w| error(field::USER, w))
            .ok()
            .map(|()| u)
    });
    let secret = secret.and_then(|s| {
        values::object_name(s)
            .map_err(|w| error(field::SECRET, w))
            .ok()
            .map(|()| s)
    });
    let concurrency = concurrency_raw.and_then(|c| {
        values::integer_in_range(c, 1, Some(u64::from(MAX_CONCURRENCY)))
            .map_err(|w| error(field::CONCURRENCY, w))
            .ok()
    });
    let port = match value(field::PORT) {
        None => Some(DEFAULT_SSH_PORT),
        Some(p) => values::integer_in_range(p, 1, Some(u64::from(u16::MAX)))
            .map_err(|w| error(field::PORT, w))
            .ok()
            .and_then(|p| u16::try_from(p).ok()),
    };
    let state = match value(field::STATE) {
        None => Some(HostState::Active),
        Some(s) => HostState::parse(s).or_else(|| {
            error(
                field::STATE,
                format!("{s:?} is not a state; expected active, drain or disabled"),
            );
            None
        }),
    };
    let host_key = match fields.get(field::HOST_KEY).filter(|v| !v.trim().is_empty()) {
        None => {
            if checking == HostKeyChecking::Strict {
                error(
                    field::HOST_KEY,
                    "missing, and host-key-checking is strict; expected the host's OpenSSH \
                     public key (`ssh-ed25519 AAAA…`), or set host-key-checking to accept-new"
                        .to_owned(),
                );
            }
            Some(None)
        }
        Some(k) => HostKey::parse(k)
            .map_err(|w| error(field::HOST_KEY, w.0))
            .ok()
            .map(Some),
    };
    let sudo_commands = match fields.get(field::SUDO_COMMANDS) {
        None => Some(Vec::new()),
        Some(s) => SudoCommand::parse_list(s)
            .map_err(|w| error(field::SUDO_COMMANDS, w.0))
            .ok(),
    };

    let mut limits = Some(default_limits);
    if let Some(raw) = value(field::MAX_PROCESSES) {
        match MaxProcesses::parse(raw) {
            Ok(v) => {
                limits = limits.map(|l| UserLimits {
                    max_processes: v,
                    ..l
                });
            }
            Err(why) => {
                error(field::MAX_PROCESSES, why);
                limits = None;
            }
        }
    }
    if let Some(raw) = value(field::MEMORY_MAX) {
        match MemoryMax::parse(raw) {
            Ok(v) => limits = limits.map(|l| UserLimits { memory_max: v, ..l }),
            Err(why) => {
                error(field::MEMORY_MAX, why);
                limits = None;
            }
        }
    }
    if let Some(raw) = value(field::CPU_QUOTA) {
        match CpuQuota::parse(raw) {
            Ok(v) => limits = limits.map(|l| UserLimits { cpu_quota: v, ..l }),
            Err(why) => {
                error(field::CPU_QUOTA, why);
                limits = None;
            }
        }
    }

    for unknown in fields.keys().filter(|f| !field::ALL.contains(f)) {
        problems.push(Problem::new(
            Severity::Warning,
            subject.clone(),
            key_of(unknown),
            format!(
                "unknown host field {unknown:?}, ignored; a host's fields are {}",
                field::ALL.join(", ")
            ),
        ));
    }

    let has_errors = problems[before..]
        .iter()
        .any(|p| p.severity == Severity::Error);
    match (
        name,
        platform.clone(),
        address,
        user,
        secret,
        concurrency,
        port,
        state,
        host_key,
        sudo_commands,
        limits,
    ) {
        (
            Ok(name),
            Some(platform),
            Some(address),
            Some(user),
            Some(secret),
            Some(concurrency),
            Some(port),
            Some(state),
            Some(host_key),
            Some(sudo_commands),
            Some(limits),
        ) if !has_errors => Ok(Host {
            name,
            platform,
            address: address.to_owned(),
            port,
            user: user.to_owned(),
            secret: secret.to_owned(),
            // The range check above bounds it to 1..=8.
            concurrency: u32::try_from(concurrency).unwrap_or(0),
            state,
            host_key,
            sudo_commands,
            cloud: false,
            limits,
        }),
        _ => Err(ExcludedHost {
            name: raw_name.to_owned(),
            platform,
        }),
    }
}
