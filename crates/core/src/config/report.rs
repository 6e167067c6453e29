//! The human-readable report `check-config` prints: per platform its hosts, slots and
//! problems, then the global settings and problems.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::problem::{Problem, Severity, Subject};
use super::{PoolConfig, Strategy};
use crate::platform::Platform;

/// Where a problem is shown.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Platform(String),
    UnknownPlatform,
    Global,
}

fn section_of(config: &PoolConfig, problem: &Problem) -> Section {
    match &problem.subject {
        Subject::Platform(p) => Section::Platform(p.clone()),
        Subject::Host(name) => {
            let valid = config
                .hosts
                .values()
                .find(|h| h.name.as_str() == name)
                .map(|h| h.platform.clone());
            let excluded = config
                .excluded_hosts
                .iter()
                .find(|h| &h.name == name)
                .and_then(|h| h.platform.clone());
            match valid.or(excluded) {
                Some(p) => Section::Platform(p.to_string()),
                None => Section::UnknownPlatform,
            }
        }
        Subject::Global => Section::Global,
    }
}

fn push_problem(out: &mut String, problem: &Problem) {
    let _ = writeln!(
        out,
        "  {:<11} {}: {}",
        problem.severity.as_str(),
        problem.key,
        problem.message
    );
}

/// Counts of problems by severity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Errors.
    pub errors: usize,
    /// Warnings.
    pub warnings: usize,
    /// Unsupported strategies.
    pub unsupported: usize,
}

impl Tally {
    /// Counts `problems`.
    pub fn of<'a>(problems: impl IntoIterator<Item = &'a Problem>) -> Self {
        let mut tally = Tally::default();
        for p in problems {
            match p.severity {
                Severity::Error => tally.errors += 1,
                Severity::Warning => tally.warnings += 1,
                Severity::Unsupported => tally.unsupported += 1,
            }
        }
        tally
    }
}

/// Renders the report. `extra` holds problems found outside the data (the manifest's).
pub fn render(config: &PoolConfig, extra: &[Problem], source: &str) -> String {
    let problems: Vec<&Problem> = extra.iter().chain(&config.problems).collect();
    let mut by_section: BTreeMap<Section, Vec<&Problem>> = BTreeMap::new();
    for p in &problems {
        by_section.entry(section_of(config, p)).or_default().push(p);
    }
    let pooled: Vec<_> = config.pool_hosts().collect();
    let slots: u32 = pooled.iter().map(|h| h.concurrency).sum();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{source}: {} platform(s), {} pool host(s) with {slots} slot(s), {} problem(s)",
        config.platforms().len(),
        pooled.len(),
        problems.len()
    );

    for platform in config.platforms() {
        out.push('\n');
        render_platform(&mut out, config, &platform);
        for p in by_section
            .remove(&Section::Platform(platform.to_string()))
            .unwrap_or_default()
        {
            push_problem(&mut out, p);
        }
    }
    // Problems of platforms that did not make it into the configuration.
    let leftovers: Vec<Section> = by_section
        .keys()
        .filter(|s| matches!(s, Section::Platform(_)))
        .cloned()
        .collect();
    for section in leftovers {
        if let Section::Platform(name) = &section {
            let _ = writeln!(out, "\n{name}: not served");
        }
        for p in by_section.remove(&section).unwrap_or_default() {
            push_problem(&mut out, p);
        }
    }
    if let Some(list) = by_section.remove(&Section::UnknownPlatform) {
        let _ = writeln!(out, "\nhosts without a valid platform: excluded");
        for p in list {
            push_problem(&mut out, p);
        }
    }

    let s = &config.settings;
    let _ = writeln!(out, "\nglobal settings");
    let _ = writeln!(out, "  host-key-checking: {}", s.host_key_checking);
    let _ = writeln!(
        out,
        "  allocation-timeout: {}",
        s.allocation_timeout.map_or_else(
            || "none (TaskRuns wait until Tekton's own timeout)".to_owned(),
            |d| format!("{} s", d.as_secs())
        )
    );
    let _ = writeln!(
        out,
        "  user-key-lifetime: {} s",
        s.user_key_lifetime.as_secs()
    );
    let _ = writeln!(out, "  build-user limits: {}", s.user_limits);
    for p in by_section.remove(&Section::Global).unwrap_or_default() {
        push_problem(&mut out, p);
    }

    let tally = Tally::of(problems.iter().copied());
    let _ = writeln!(
        out,
        "\n{} error(s), {} warning(s), {} unsupported",
        tally.errors, tally.warnings, tally.unsupported
    );
    out
}

/// What a cloud platform's TaskRuns get, in one line.
fn describe_cloud(
    platform: &Platform,
    settings: &super::DynamicSettings,
    aws: &super::AwsSettings,
) -> String {
    let (instance_type, region, max) = (&aws.instance_type, &aws.region, settings.max_instances);
    match &settings.strategy {
        super::StrategySettings::Pool {
            concurrency,
            max_age,
        } => format!(
            ": a pool of up to {max} {instance_type} instance(s) in {region}, {concurrency} \
             TaskRun(s) each, a throwaway user per TaskRun; an instance older than {} \
             minute(s) takes no new TaskRun and is terminated once idle",
            max_age.as_secs() / 60
        ),
        super::StrategySettings::Dynamic { .. } => {
            let os = platform.as_str();
            let login = if os.starts_with("windows") {
                "; Windows: the controller logs in as Administrator (PowerShell), hands the \
                 konflux-builder account's key from C:\\Users\\Administrator\\konflux-builder \
                 to the TaskRun and deletes the file"
            } else if os.starts_with("macos") {
                "; macOS: the controller logs in as ec2-user, hands the konflux-builder \
                 account's key from ~ec2-user/konflux-builder to the TaskRun and deletes the \
                 file"
            } else {
                ""
            };
            format!(": one {instance_type} instance per TaskRun in {region}, at most {max}{login}")
        }
    }
}

fn render_platform(out: &mut String, config: &PoolConfig, platform: &Platform) {
    match config.strategy(platform) {
        Some(Strategy::Local) => {
            let _ = writeln!(out, "{platform}: local (Secret with host: localhost)");
        }
        Some(Strategy::Dynamic(strategy)) => {
            let dynamic = config.dynamic_platforms.get(platform);
            let valid = dynamic.is_some_and(|d| d.settings.is_some());
            let validity = if valid { "valid" } else { "invalid" };
            match dynamic.and_then(super::DynamicPlatform::unsupported) {
                Some(why) => {
                    let _ = writeln!(out, "{platform}: {strategy} ({validity}; {why})");
                }
                None => {
                    let what = dynamic
                        .and_then(|d| d.settings.as_ref())
                        .and_then(|s| Some((s, s.aws.as_ref()?)))
                        .map_or(String::new(), |(s, aws)| describe_cloud(platform, s, aws));
                    let _ = writeln!(out, "{platform}: {strategy} ({validity}){what}");
                }
            }
        }
        Some(Strategy::Static) | None => {
            let hosts: Vec<_> = config.hosts_of(platform).collect();
            let active: u32 = hosts
                .iter()
                .filter(|h| h.state == super::HostState::Active)
                .map(|h| h.concurrency)
                .sum();
            let _ = writeln!(
                out,
                "{platform}: static pool, {} host(s), {active} slot(s) on active hosts",
                hosts.len()
            );
            for h in hosts {
                let mut extras = String::new();
                if h.host_key.is_some() {
                    extras.push_str(", host key pinned");
                }
                if !h.sudo_commands.is_empty() {
                    let list: Vec<String> = h
                        .sudo_commands
                        .iter()
                        .map(std::string::ToString::to_string)
                        .collect();
                    let _ = write!(extras, ", sudo: {}", list.join(", "));
                }
                if h.limits != config.settings.user_limits {
                    let _ = write!(extras, ", build-user limits: {}", h.limits);
                }
                let _ = writeln!(
                    out,
                    "  host {}: {}@{} port {}, {} slot(s), {}{extras}",
                    h.name, h.user, h.address, h.port, h.concurrency, h.state
                );
            }
            for h in config
                .excluded_hosts
                .iter()
                .filter(|h| h.platform.as_ref() == Some(platform))
            {
                let _ = writeln!(out, "  host {}: excluded", h.name);
            }
        }
    }
}

/// Result of checking a manifest: what to print and how to exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// Text for standard output (the report) or, when unreadable, standard error.
    pub output: String,
    /// How the command ends.
    pub status: CheckStatus,
}

/// Exit status of `check-config`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckStatus {
    /// No problem at all (exit 0).
    Clean,
    /// At least one problem (exit 1).
    Problems,
    /// The input is unreadable, not YAML, or not a ConfigMap (exit 3; 2 is clap's
    /// usage error).
    Unreadable,
}

impl CheckStatus {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            CheckStatus::Clean => 0,
            CheckStatus::Problems => 1,
            CheckStatus::Unreadable => 3,
        }
    }
}

/// Checks a manifest's text. With `allow_unsupported`, dynamic platforms alone do
/// not make the check fail.
pub fn check(yaml: &str, source: &str, allow_unsupported: bool) -> Check {
    let manifest = match super::manifest::parse_manifest(yaml) {
        Ok(m) => m,
        Err(err) => {
            return Check {
                output: format!("{source}: {err}\n"),
                status: CheckStatus::Unreadable,
            };
        }
    };
    let config = super::parse(&manifest.data);
    let tally = Tally::of(manifest.problems.iter().chain(&config.problems));
    let failing = tally.errors
        + tally.warnings
        + if allow_unsupported {
            0
        } else {
            tally.unsupported
        };
    Check {
        output: render(&config, &manifest.problems, source),
        status: if failing == 0 {
            CheckStatus::Clean
        } else {
            CheckStatus::Problems
        },
    }
}
