//! Global keys: `host-key-checking`, `allocation-timeout`, `user-key-lifetime`, the
//! build-user limits every host gets unless it sets its own (`max-processes`,
//! `memory-max`, `cpu-quota`), and the Go controller's `allowed-namespaces`,
//! `instance-tag`, `additional-instance-tags`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::fields;
use super::host_key::HostKeyChecking;
use super::limits::{CpuQuota, MaxProcesses, MemoryMax, UserLimits};
use super::problem::{Problem, Severity, Subject};
use super::values;

/// Lifetime of an issued build key when `user-key-lifetime` is not set (24 h).
pub const DEFAULT_USER_KEY_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// Shortest accepted `user-key-lifetime`: a build must at least get to copy its sources.
pub const MIN_USER_KEY_LIFETIME_SECS: u64 = 60;
/// Longest accepted `user-key-lifetime` (7 days): longer defeats the point of a bound.
pub const MAX_USER_KEY_LIFETIME_SECS: u64 = 7 * 24 * 60 * 60;

/// Settings that apply to the whole pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// How host keys are verified.
    pub host_key_checking: HostKeyChecking,
    /// How long a TaskRun may wait for a slot before it fails; `None`: until
    /// Tekton's own timeout.
    pub allocation_timeout: Option<Duration>,
    /// How long an issued build key stays valid on the host (`expiry-time=`).
    pub user_key_lifetime: Duration,
    /// `allowed-namespaces` regexes, as written (accepted for compatibility, not enforced).
    pub allowed_namespaces: Vec<String>,
    /// Default cloud instance tag (used by dynamic strategies only).
    pub instance_tag: Option<String>,
    /// Extra cloud instance tags (used by dynamic strategies only).
    pub additional_instance_tags: BTreeMap<String, String>,
    /// What each build user may take from a host, unless the host sets its own.
    pub user_limits: UserLimits,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            host_key_checking: HostKeyChecking::default(),
            allocation_timeout: None,
            user_key_lifetime: DEFAULT_USER_KEY_LIFETIME,
            allowed_namespaces: Vec::new(),
            instance_tag: None,
            additional_instance_tags: BTreeMap::new(),
            user_limits: UserLimits::default(),
        }
    }
}

/// Every global key this module reads.
pub(crate) const GLOBAL_KEYS: [&str; 9] = [
    fields::HOST_KEY_CHECKING,
    fields::ALLOCATION_TIMEOUT,
    fields::USER_KEY_LIFETIME,
    fields::ALLOWED_NAMESPACES,
    fields::INSTANCE_TAG,
    fields::ADDITIONAL_INSTANCE_TAGS,
    fields::MAX_PROCESSES,
    fields::MEMORY_MAX,
    fields::CPU_QUOTA,
];

fn global_error(problems: &mut Vec<Problem>, key: &str, message: String) {
    problems.push(Problem::new(Severity::Error, Subject::Global, key, message));
}

/// Parses the global keys; a bad value falls back to the default and is reported.
pub(crate) fn parse_settings(
    data: &BTreeMap<String, String>,
    problems: &mut Vec<Problem>,
) -> Settings {
    let mut settings = Settings::default();
    let value = |key: &str| data.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());

    if let Some(raw) = value(fields::HOST_KEY_CHECKING) {
        match HostKeyChecking::parse(raw) {
            Some(mode) => settings.host_key_checking = mode,
            None => global_error(
                problems,
                fields::HOST_KEY_CHECKING,
                format!(
                    "{raw:?} is not a mode; expected strict, accept-new or off; using the \
                     default, accept-new"
                ),
            ),
        }
    }
    if let Some(raw) = value(fields::ALLOCATION_TIMEOUT) {
        match values::integer_in_range(raw, 1, None) {
            Ok(secs) => settings.allocation_timeout = Some(Duration::from_secs(secs)),
            Err(why) => global_error(
                problems,
                fields::ALLOCATION_TIMEOUT,
                format!(
                    "{why} (seconds a TaskRun may wait for a host); TaskRuns wait without \
                     limit until this is fixed"
                ),
            ),
        }
    }
    if let Some(raw) = value(fields::USER_KEY_LIFETIME) {
        match values::integer_in_range(
            raw,
            MIN_USER_KEY_LIFETIME_SECS,
            Some(MAX_USER_KEY_LIFETIME_SECS),
        ) {
            Ok(secs) => settings.user_key_lifetime = Duration::from_secs(secs),
            Err(why) => global_error(
                problems,
                fields::USER_KEY_LIFETIME,
                format!(
                    "{why} (seconds an issued build key stays valid); using the default, \
                     86400 (24 h)"
                ),
            ),
        }
    }
    if let Some(raw) = value(fields::ALLOWED_NAMESPACES) {
        let (entries, _) = values::comma_list(raw);
        settings.allowed_namespaces = entries.iter().map(|e| e.value.to_owned()).collect();
    }
    settings.instance_tag = value(fields::INSTANCE_TAG).map(str::to_owned);
    if let Some(raw) = value(fields::ADDITIONAL_INSTANCE_TAGS) {
        let (entries, _) = values::comma_list(raw);
        for entry in entries {
            match entry.value.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    settings
                        .additional_instance_tags
                        .insert(k.trim().to_owned(), v.trim().to_owned());
                }
                _ => global_error(
                    problems,
                    fields::ADDITIONAL_INSTANCE_TAGS,
                    format!(
                        "entry {} ({:?}) is not key=value; this entry is ignored",
                        entry.position, entry.value
                    ),
                ),
            }
        }
    }
    let limits = &mut settings.user_limits;
    if let Some(v) = parse_limit(data, fields::MAX_PROCESSES, MaxProcesses::parse, problems) {
        limits.max_processes = v;
    }
    if let Some(v) = parse_limit(data, fields::MEMORY_MAX, MemoryMax::parse, problems) {
        limits.memory_max = v;
    }
    if let Some(v) = parse_limit(data, fields::CPU_QUOTA, CpuQuota::parse, problems) {
        limits.cpu_quota = v;
    }
    settings
}

/// A global build-user limit; a bad value is reported and the built-in default stays.
fn parse_limit<T: std::fmt::Display>(
    data: &BTreeMap<String, String>,
    key: &str,
    parse: fn(&str) -> Result<T, String>,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let raw = data.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())?;
    match parse(raw) {
        Ok(value) => Some(value),
        Err(why) => {
            let default = UserLimits::default();
            let default = match key {
                fields::MAX_PROCESSES => default.max_processes.to_string(),
                fields::MEMORY_MAX => default.memory_max.to_string(),
                _ => default.cpu_quota.to_string(),
            };
            global_error(
                problems,
                key,
                format!(
                    "{why}; hosts without their own host.<name>.{key} use the built-in \
                     default, {default}, until this is fixed"
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let mut problems = Vec::new();
        let settings = parse_settings(&BTreeMap::new(), &mut problems);
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.host_key_checking, HostKeyChecking::AcceptNew);
        assert_eq!(settings.allocation_timeout, None);
        assert_eq!(settings.user_key_lifetime, Duration::from_secs(86400));
        assert!(problems.is_empty());
    }

    #[test]
    fn reads_every_global_key() {
        let mut problems = Vec::new();
        let settings = parse_settings(
            &data(&[
                ("host-key-checking", "strict"),
                ("allocation-timeout", "900"),
                ("user-key-lifetime", "7200"),
                ("allowed-namespaces", "default,^tenant-.*$,"),
                ("instance-tag", "rhtap-prod"),
                ("additional-instance-tags", "team=build, env=prod"),
                ("max-processes", "2048"),
                ("memory-max", "16G"),
                ("cpu-quota", "50%"),
            ]),
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            settings.user_limits,
            UserLimits {
                max_processes: MaxProcesses::Limit(2048),
                memory_max: MemoryMax::Bytes(16 << 30),
                cpu_quota: CpuQuota::PercentOfHost(50),
            }
        );
        assert_eq!(settings.host_key_checking, HostKeyChecking::Strict);
        assert_eq!(settings.allocation_timeout, Some(Duration::from_secs(900)));
        assert_eq!(settings.user_key_lifetime, Duration::from_secs(7200));
        assert_eq!(settings.allowed_namespaces, ["default", "^tenant-.*$"]);
        assert_eq!(settings.instance_tag.as_deref(), Some("rhtap-prod"));
        assert_eq!(settings.additional_instance_tags["env"], "prod");
    }

    #[test]
    fn bad_values_fall_back_and_are_reported_precisely() {
        let mut problems = Vec::new();
        let settings = parse_settings(
            &data(&[
                ("host-key-checking", "yes"),
                ("allocation-timeout", "0"),
                ("user-key-lifetime", "10"),
                ("additional-instance-tags", "team=build,oops"),
                ("max-processes", "10"),
                ("memory-max", "90"),
                ("cpu-quota", "350%"),
            ]),
            &mut problems,
        );
        assert_eq!(settings.user_limits, UserLimits::default());
        assert_eq!(settings.host_key_checking, HostKeyChecking::AcceptNew);
        assert_eq!(settings.allocation_timeout, None);
        assert_eq!(settings.user_key_lifetime, DEFAULT_USER_KEY_LIFETIME);
        assert_eq!(settings.additional_instance_tags.len(), 1);
        let by_key = |key: &str| {
            problems
                .iter()
                .find(|p| p.key == key)
                .unwrap_or_else(|| panic!("no problem for {key}: {problems:?}"))
                .message
                .clone()
        };
        assert!(by_key("host-key-checking").contains("expected strict, accept-new or off"));
        assert!(by_key("allocation-timeout").contains("expected an integer of at least 1"));
        assert!(by_key("user-key-lifetime").contains("from 60 to 604800"));
        assert!(by_key("additional-instance-tags").contains("entry 2 (\"oops\")"));
        assert!(by_key("max-processes").contains("from 32 to 4194304"));
        assert!(by_key("max-processes").contains("built-in default, 4096"));
        assert!(by_key("memory-max").contains("too small"));
        assert!(by_key("cpu-quota").contains("from 1% to 100%"));
        assert!(problems.iter().all(|p| p.severity == Severity::Error));
    }
}
