//! The host-config ConfigMap → a typed [`PoolConfig`] (contract §2.4).
//!
//! [`parse`] is pure and never fails as a whole: every problem is collected as a
//! [`Problem`] tied to a host, a platform or a global key, the host or entry at fault
//! is left out, and everything else keeps working. [`PoolConfig::route`] answers
//! "what happens to a TaskRun of platform P".

mod aws;
mod dynamic;
pub mod fields;
mod host;
mod host_key;
mod limits;
pub mod manifest;
mod problem;
pub mod report;
mod route;
mod settings;
mod sudo;
mod values;

use std::collections::{BTreeMap, BTreeSet};

pub use aws::{AwsSettings, DEFAULT_DISK_GB, DedicatedHost};
pub use dynamic::{
    CloudProvider, DEFAULT_CHECK_INTERVAL_SECS, DEFAULT_DYNAMIC_ALLOCATION_TIMEOUT_SECS,
    DynamicPlatform, DynamicSettings, DynamicStrategy, StrategySettings, Unsupported,
};
pub use host::{
    DEFAULT_SSH_PORT, ExcludedHost, Host, HostName, HostState, InvalidHostName, MAX_CONCURRENCY,
};
pub use host_key::{HostKey, HostKeyChecking, InvalidHostKey};
pub use limits::{
    CpuQuota, DEFAULT_HOST_PERCENT, DEFAULT_MAX_PROCESSES, MaxProcesses, MemoryMax, UserLimits,
};
pub use problem::{Problem, Severity, Subject};
pub use route::{Route, RouteError};
pub use settings::{DEFAULT_USER_KEY_LIFETIME, Settings};
pub use sudo::{InvalidSudoCommand, SudoCommand};

use crate::platform::Platform;

/// The whole host-config, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolConfig {
    /// Global settings.
    pub settings: Settings,
    /// Valid static hosts, by name (including hosts of platforms that another
    /// strategy takes precedence over; see [`PoolConfig::pool_hosts`]).
    pub hosts: BTreeMap<HostName, Host>,
    /// Hosts left out because of errors (the reasons are in `problems`).
    pub excluded_hosts: Vec<ExcludedHost>,
    /// Platforms served with `host: localhost`.
    pub local_platforms: BTreeSet<Platform>,
    /// Platforms listed in `dynamic-platforms` or `dynamic-pool-platforms`.
    pub dynamic_platforms: BTreeMap<Platform, DynamicPlatform>,
    /// Every problem found, in key order.
    pub problems: Vec<Problem>,
    /// The running instances of the dynamic pools, as hosts of their platforms. Never
    /// parsed: the controller adds them from cloud listings.
    pub cloud_hosts: BTreeMap<HostName, Host>,
}

/// How a platform is served, by precedence: local, then dynamic, then dynamic-pool,
/// then static hosts (the Go controller's order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Listed in `local-platforms`.
    Local,
    /// Listed in `dynamic-platforms` or `dynamic-pool-platforms`.
    Dynamic(DynamicStrategy),
    /// Served by `host.<name>.*` entries (some of which may be invalid).
    Static,
}

/// Parses the `data` of the host-config ConfigMap. Never fails: see [`PoolConfig::problems`].
pub fn parse(data: &BTreeMap<String, String>) -> PoolConfig {
    let mut problems = Vec::new();
    let settings = settings::parse_settings(data, &mut problems);
    let local_platforms: BTreeSet<Platform> =
        platform_list(data, fields::LOCAL_PLATFORMS, &mut problems)
            .into_iter()
            .collect();
    let dynamic_list = platform_list(data, fields::DYNAMIC_PLATFORMS, &mut problems);
    let pool_list = platform_list(data, fields::DYNAMIC_POOL_PLATFORMS, &mut problems);

    let mut host_fields: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    let mut dynamic_fields: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for (key, value) in data {
        if let Some(rest) = key.strip_prefix(fields::HOST_PREFIX) {
            match rest.rsplit_once('.') {
                Some((name, field)) if !field.is_empty() => {
                    host_fields.entry(name).or_default().insert(field, value);
                }
                _ => problems.push(Problem::new(
                    Severity::Warning,
                    Subject::Global,
                    key.as_str(),
                    "not of the form host.<name>.<field>, ignored",
                )),
            }
        } else if let Some(rest) = key.strip_prefix(fields::DYNAMIC_PREFIX) {
            match rest.rsplit_once('.') {
                Some((label, field)) if !label.is_empty() && !field.is_empty() => {
                    dynamic_fields
                        .entry(label)
                        .or_default()
                        .insert(field, value);
                }
                _ => problems.push(Problem::new(
                    Severity::Warning,
                    Subject::Global,
                    key.as_str(),
                    "not of the form dynamic.<platform-with-dashes>.<field>, ignored",
                )),
            }
        } else if ![
            fields::LOCAL_PLATFORMS,
            fields::DYNAMIC_PLATFORMS,
            fields::DYNAMIC_POOL_PLATFORMS,
        ]
        .contains(&key.as_str())
            && !settings::GLOBAL_KEYS.contains(&key.as_str())
        {
            problems.push(Problem::new(
                Severity::Warning,
                Subject::Global,
                key.as_str(),
                "unknown key, ignored; expected host.<name>.<field>, dynamic.<platform>.<field> \
                 or one of local-platforms, dynamic-platforms, dynamic-pool-platforms, \
                 host-key-checking, allocation-timeout, user-key-lifetime, max-processes, \
                 memory-max, cpu-quota, allowed-namespaces, instance-tag, \
                 additional-instance-tags",
            ));
        }
    }

    let mut dynamic_platforms = BTreeMap::new();
    let listed = dynamic_list
        .iter()
        .map(|p| (p, DynamicStrategy::Dynamic))
        .chain(pool_list.iter().map(|p| (p, DynamicStrategy::DynamicPool)));
    for (platform, strategy) in listed {
        let subject = Subject::Platform(platform.to_string());
        if local_platforms.contains(platform) {
            problems.push(Problem::new(
                Severity::Warning,
                subject,
                strategy.list_key(),
                format!(
                    "{platform} is also listed in local-platforms, which takes precedence; \
                     remove it from one of the lists"
                ),
            ));
            continue;
        }
        if let Some(earlier) = dynamic_platforms
            .get(platform)
            .map(|d: &DynamicPlatform| d.strategy)
        {
            if earlier != strategy {
                problems.push(Problem::new(
                    Severity::Warning,
                    subject,
                    strategy.list_key(),
                    format!(
                        "{platform} is also listed in {}, which takes precedence; remove it \
                         from one of the lists",
                        earlier.list_key()
                    ),
                ));
            }
            continue;
        }
        let fields = dynamic_fields
            .get(platform.label_value().as_str())
            .cloned()
            .unwrap_or_default();
        let parsed = dynamic::parse_dynamic(platform, strategy, &fields, &mut problems);
        if let Some(why) = parsed.unsupported() {
            problems.push(Problem::new(
                Severity::Unsupported,
                subject,
                strategy.list_key(),
                format!(
                    "{platform} is a {strategy} platform: {why}, so its TaskRuns fail with an \
                     error Secret. Serve it with static hosts (host.<name>.platform: \
                     {platform}) to use this controller for it"
                ),
            ));
        }
        dynamic_platforms.insert(platform.clone(), parsed);
    }
    let listed_labels: BTreeSet<String> = dynamic_platforms
        .keys()
        .map(Platform::label_value)
        .collect();
    for label in dynamic_fields.keys() {
        if !listed_labels.contains(*label) {
            problems.push(Problem::new(
                Severity::Warning,
                Subject::Global,
                format!("{}{label}.*", fields::DYNAMIC_PREFIX),
                "settings of a platform that is not listed in dynamic-platforms or \
                 dynamic-pool-platforms (or is taken by local-platforms), ignored",
            ));
        }
    }

    let mut hosts = BTreeMap::new();
    let mut excluded_hosts = Vec::new();
    for (name, fields) in &host_fields {
        match host::parse_host(
            name,
            fields,
            settings.host_key_checking,
            settings.user_limits,
            &mut problems,
        ) {
            Ok(host) => {
                let shadowed_by = if local_platforms.contains(&host.platform) {
                    Some(fields::LOCAL_PLATFORMS)
                } else {
                    dynamic_platforms
                        .get(&host.platform)
                        .map(|d| d.strategy.list_key())
                };
                if let Some(list_key) = shadowed_by {
                    problems.push(Problem::new(
                        Severity::Warning,
                        Subject::Host(name.to_string()),
                        format!("{}{name}.{}", fields::HOST_PREFIX, fields::host::PLATFORM),
                        format!(
                            "platform {} is listed in {list_key}, which takes precedence over \
                             static hosts, so host {name} gets no TaskRuns; remove the host or \
                             remove the platform from {list_key}",
                            host.platform
                        ),
                    ));
                }
                hosts.insert(host.name.clone(), host);
            }
            Err(excluded) => excluded_hosts.push(excluded),
        }
    }

    problems.sort_by(|a, b| (&a.key, a.severity).cmp(&(&b.key, b.severity)));
    PoolConfig {
        settings,
        hosts,
        excluded_hosts,
        local_platforms,
        dynamic_platforms,
        problems,
        cloud_hosts: BTreeMap::new(),
    }
}

/// Parses a comma list of platforms; a bad entry is reported and skipped.
fn platform_list(
    data: &BTreeMap<String, String>,
    key: &str,
    problems: &mut Vec<Problem>,
) -> Vec<Platform> {
    let Some(raw) = data.get(key) else {
        return Vec::new();
    };
    let (entries, empty_positions) = values::comma_list(raw);
    for position in empty_positions {
        problems.push(Problem::new(
            Severity::Error,
            Subject::Global,
            key,
            format!(
                "entry {position} is empty; expected platforms separated by single commas \
                 (a trailing comma is fine)"
            ),
        ));
    }
    let mut platforms = Vec::new();
    for entry in entries {
        match Platform::parse(entry.value) {
            Ok(platform) if !platforms.contains(&platform) => platforms.push(platform),
            Ok(_) => {}
            Err(err) => problems.push(Problem::new(
                Severity::Error,
                Subject::Global,
                key,
                format!("entry {}: {err}; this entry is ignored", entry.position),
            )),
        }
    }
    platforms
}

impl PoolConfig {
    /// How `platform` is served, or `None` when nothing in the configuration mentions it.
    pub fn strategy(&self, platform: &Platform) -> Option<Strategy> {
        if self.local_platforms.contains(platform) {
            return Some(Strategy::Local);
        }
        if let Some(dynamic) = self.dynamic_platforms.get(platform) {
            return Some(Strategy::Dynamic(dynamic.strategy));
        }
        let has_hosts = self.hosts.values().any(|h| &h.platform == platform)
            || self
                .excluded_hosts
                .iter()
                .any(|h| h.platform.as_ref() == Some(platform));
        has_hosts.then_some(Strategy::Static)
    }

    /// What happens to a TaskRun of `platform`.
    pub fn route(&self, platform: &Platform) -> Route<'_> {
        route::route(self, platform)
    }

    /// Valid hosts whose platform is `platform` (any state).
    pub fn hosts_of<'a, 'p>(
        &'a self,
        platform: &'p Platform,
    ) -> impl Iterator<Item = &'a Host> + use<'a, 'p> {
        self.hosts.values().filter(move |h| &h.platform == platform)
    }

    /// Valid hosts that serve a static pool: their platform is not taken by the
    /// local or a dynamic strategy. These are the hosts the allocation ledger uses.
    pub fn pool_hosts(&self) -> impl Iterator<Item = &Host> + '_ {
        self.hosts
            .values()
            .filter(|h| {
                !self.local_platforms.contains(&h.platform)
                    && !self.dynamic_platforms.contains_key(&h.platform)
            })
            .chain(self.cloud_hosts.values())
    }

    /// Platforms whose hosts come and go (dynamic pools): a TaskRun waits for a new
    /// instance instead of failing when none is there.
    pub fn elastic_platforms(&self) -> BTreeSet<Platform> {
        self.dynamic_platforms
            .values()
            .filter(|d| d.strategy == DynamicStrategy::DynamicPool && d.unsupported().is_none())
            .map(|d| d.platform.clone())
            .collect()
    }

    /// Every platform the configuration serves or tries to serve, sorted.
    pub fn platforms(&self) -> BTreeSet<Platform> {
        let mut all: BTreeSet<Platform> = self.local_platforms.clone();
        all.extend(self.dynamic_platforms.keys().cloned());
        all.extend(self.hosts.values().map(|h| h.platform.clone()));
        all.extend(
            self.excluded_hosts
                .iter()
                .filter_map(|h| h.platform.clone()),
        );
        all
    }

    /// Whether any problem of the given severities was found.
    pub fn has_problems(&self, severities: &[Severity]) -> bool {
        self.problems
            .iter()
            .any(|p| severities.contains(&p.severity))
    }
}

#[cfg(test)]
mod tests;
