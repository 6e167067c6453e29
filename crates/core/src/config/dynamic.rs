//! Dynamic and dynamic-pool platforms (cloud VMs): `dynamic.<platform-with-dashes>.*`.
//!
//! They are validated the way the Go controller validates them, so `check-config`
//! catches the same mistakes, plus the EC2 settings of `type: aws` platforms (see
//! [`super::aws`]), which the Go controller passes to AWS unchecked.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::aws::{self, AwsSettings};
use super::fields::{self, dynamic as field};
use super::host::MAX_CONCURRENCY;
use super::problem::{Problem, Severity, Subject};
use super::sudo::SudoCommand;
use super::values;
use crate::platform::Platform;

/// `dynamic.<p>.allocation-timeout` when not set, in seconds.
pub const DEFAULT_DYNAMIC_ALLOCATION_TIMEOUT_SECS: u64 = 600;
/// `dynamic.<p>.check-interval` when not set, in seconds.
pub const DEFAULT_CHECK_INTERVAL_SECS: u64 = 60;
/// Longest `dynamic.<p>.max-age` of a pool VM, in minutes.
pub const MAX_POOL_AGE_MINUTES: u64 = 1440;

/// Which cloud strategy a platform is listed under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DynamicStrategy {
    /// `dynamic-platforms`: one VM per TaskRun.
    Dynamic,
    /// `dynamic-pool-platforms`: a pool of shared VMs.
    DynamicPool,
}

impl DynamicStrategy {
    /// The ConfigMap key that lists platforms of this strategy.
    pub fn list_key(self) -> &'static str {
        match self {
            DynamicStrategy::Dynamic => fields::DYNAMIC_PLATFORMS,
            DynamicStrategy::DynamicPool => fields::DYNAMIC_POOL_PLATFORMS,
        }
    }

    /// Human name (`dynamic`, `dynamic-pool`).
    pub fn as_str(self) -> &'static str {
        match self {
            DynamicStrategy::Dynamic => "dynamic",
            DynamicStrategy::DynamicPool => "dynamic-pool",
        }
    }
}

impl fmt::Display for DynamicStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Cloud provider of a dynamic platform (`dynamic.<p>.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloudProvider {
    /// `aws`: AWS EC2.
    Aws,
    /// `ibmz`: IBM Cloud s390x.
    IbmZ,
    /// `ibmp`: IBM Cloud Power (ppc64le).
    IbmP,
}

impl CloudProvider {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "aws" => Some(CloudProvider::Aws),
            "ibmz" => Some(CloudProvider::IbmZ),
            "ibmp" => Some(CloudProvider::IbmP),
            _ => None,
        }
    }
}

/// Settings only one of the strategies has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StrategySettings {
    /// `dynamic-platforms`.
    Dynamic {
        /// How long to wait for a VM (default 600 s).
        allocation_timeout: Duration,
        /// Longest wait between looks at a launching VM (default 60 s).
        check_interval: Duration,
        /// What the build user may run with sudo on the VM.
        sudo_commands: Vec<SudoCommand>,
    },
    /// `dynamic-pool-platforms`.
    Pool {
        /// TaskRuns per VM (1..=8).
        concurrency: u32,
        /// How long a pool VM lives.
        max_age: Duration,
    },
}

/// The validated settings of a dynamic platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynamicSettings {
    /// Cloud provider.
    pub provider: CloudProvider,
    /// Most VMs at once (1..=250).
    pub max_instances: u32,
    /// Secret with the VMs' SSH key.
    pub ssh_secret: String,
    /// Instance tag, when set for the platform.
    pub instance_tag: Option<String>,
    /// Strategy-specific settings.
    pub strategy: StrategySettings,
    /// How to launch its instances (`type: aws`).
    pub aws: Option<AwsSettings>,
}

/// A platform listed in `dynamic-platforms` or `dynamic-pool-platforms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynamicPlatform {
    /// The platform.
    pub platform: Platform,
    /// Where it is listed.
    pub strategy: DynamicStrategy,
    /// Its settings, or `None` when they are invalid (see the problems).
    pub settings: Option<DynamicSettings>,
}

/// Fields every dynamic platform may have.
const COMMON_FIELDS: [&str; 4] = [
    field::TYPE,
    field::MAX_INSTANCES,
    field::SSH_SECRET,
    field::INSTANCE_TAG,
];
/// Fields only `dynamic-platforms` have.
const DYNAMIC_FIELDS: [&str; 3] = [
    field::ALLOCATION_TIMEOUT,
    field::CHECK_INTERVAL,
    field::SUDO_COMMANDS,
];
/// Fields only `dynamic-pool-platforms` have.
const POOL_FIELDS: [&str; 2] = [field::CONCURRENCY, field::MAX_AGE];

/// Why this controller cannot serve a dynamic platform (yet): its TaskRuns get an error
/// Secret that says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unsupported {
    /// A `windows*` or `macos*` platform in a pool: their VMs serve one TaskRun each.
    Os,
    /// `type: ibmz` or `ibmp`.
    Ibm,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unsupported::Os => "Windows and macOS VMs cannot be shared in a pool (their builder account is one per VM); list them in dynamic-platforms",
            Unsupported::Ibm => "IBM Cloud VMs (type: ibmz, ibmp) are not supported by this controller",
        })
    }
}

impl DynamicPlatform {
    /// Why the platform cannot be served, if it cannot; `None` for an AWS platform
    /// (whatever the state of its settings).
    pub fn unsupported(&self) -> Option<Unsupported> {
        let os = self.platform.as_str();
        if self.strategy == DynamicStrategy::DynamicPool
            && (os.starts_with("windows") || os.starts_with("macos"))
        {
            Some(Unsupported::Os)
        } else if self
            .settings
            .as_ref()
            .is_some_and(|s| s.provider != CloudProvider::Aws)
        {
            Some(Unsupported::Ibm)
        } else {
            None
        }
    }
}

/// Validates one dynamic platform from its `dynamic.<label>.*` fields.
pub(crate) fn parse_dynamic(
    platform: &Platform,
    strategy: DynamicStrategy,
    fields: &BTreeMap<&str, &str>,
    problems: &mut Vec<Problem>,
) -> DynamicPlatform {
    let label = platform.label_value();
    let subject = Subject::Platform(platform.to_string());
    let before = problems.len();
    let mut report = |severity: Severity, f: &str, what: String| {
        problems.push(Problem::new(
            severity,
            subject.clone(),
            format!("{}{label}.{f}", fields::DYNAMIC_PREFIX),
            format!("{what} ({strategy} platform {platform})"),
        ));
    };
    let known = |f: &&str| {
        COMMON_FIELDS.contains(f)
            || match strategy {
                DynamicStrategy::Dynamic => DYNAMIC_FIELDS.contains(f),
                DynamicStrategy::DynamicPool => POOL_FIELDS.contains(f),
            }
            || aws::KEYS.contains(f)
    };
    for unknown in fields.keys().filter(|f| !known(f)) {
        report(
            Severity::Warning,
            unknown,
            "unknown field, ignored".to_owned(),
        );
    }
    let mut error = |f: &str, what: String| report(Severity::Error, f, what);
    let value = |f: &str| fields.get(f).map(|v| v.trim()).filter(|v| !v.is_empty());

    let provider = match value(field::TYPE) {
        None => {
            error(field::TYPE, "missing; expected aws, ibmz or ibmp".into());
            None
        }
        Some(t) => CloudProvider::parse(t).or_else(|| {
            error(
                field::TYPE,
                format!("{t:?} is not a provider; expected aws, ibmz or ibmp"),
            );
            None
        }),
    };
    let max_instances = match value(field::MAX_INSTANCES) {
        None => {
            error(
                field::MAX_INSTANCES,
                "missing; expected an integer of at least 1: the most VMs at once".into(),
            );
            None
        }
        Some(raw) => values::integer_in_range(raw, 1, Some(u64::from(u32::MAX)))
            .map_err(|why| error(field::MAX_INSTANCES, why))
            .ok()
            .and_then(|n| u32::try_from(n).ok()),
    };
    let mut integer = |f: &str, min: u64, max: u64, what: &str| match value(f) {
        None => {
            error(f, format!("missing; expected {what}"));
            None
        }
        Some(raw) => values::integer_in_range(raw, min, Some(max))
            .map_err(|why| error(f, why))
            .ok()
            .and_then(|n| u32::try_from(n).ok()),
    };
    let strategy_settings = match strategy {
        DynamicStrategy::DynamicPool => {
            let concurrency = integer(
                field::CONCURRENCY,
                1,
                u64::from(MAX_CONCURRENCY),
                "an integer from 1 to 8: TaskRuns per VM",
            );
            let max_age = integer(
                field::MAX_AGE,
                1,
                MAX_POOL_AGE_MINUTES,
                "an integer from 1 to 1440: minutes a pool VM lives",
            );
            match (concurrency, max_age) {
                (Some(concurrency), Some(minutes)) => Some(StrategySettings::Pool {
                    concurrency,
                    max_age: Duration::from_secs(u64::from(minutes) * 60),
                }),
                _ => None,
            }
        }
        DynamicStrategy::Dynamic => {
            let mut seconds = |f: &str, default: u64| match value(f) {
                None => Some(default),
                Some(raw) => values::integer_in_range(raw, 1, None)
                    .map_err(|why| error(f, why))
                    .ok(),
            };
            let allocation_timeout = seconds(
                field::ALLOCATION_TIMEOUT,
                DEFAULT_DYNAMIC_ALLOCATION_TIMEOUT_SECS,
            );
            let check_interval = seconds(field::CHECK_INTERVAL, DEFAULT_CHECK_INTERVAL_SECS);
            let sudo_commands = match value(field::SUDO_COMMANDS) {
                None => Some(Vec::new()),
                Some(raw) => SudoCommand::parse_list(raw)
                    .map_err(|why| error(field::SUDO_COMMANDS, why.to_string()))
                    .ok(),
            };
            match (allocation_timeout, check_interval, sudo_commands) {
                (Some(timeout), Some(interval), Some(sudo_commands)) => {
                    Some(StrategySettings::Dynamic {
                        allocation_timeout: Duration::from_secs(timeout),
                        check_interval: Duration::from_secs(interval),
                        sudo_commands,
                    })
                }
                _ => None,
            }
        }
    };
    let instance_tag = match value(field::INSTANCE_TAG) {
        None => Some(None),
        Some(tag) => match check_instance_tag(&label, tag) {
            Ok(()) => Some(Some(tag.to_owned())),
            Err(why) => {
                error(field::INSTANCE_TAG, why);
                None
            }
        },
    };
    let ssh_secret = match value(field::SSH_SECRET) {
        None => {
            error(
                field::SSH_SECRET,
                "missing; expected the name of the Secret with the VMs' SSH key".into(),
            );
            None
        }
        Some(secret) => match provider {
            Some(CloudProvider::IbmZ | CloudProvider::IbmP)
                if !ibm_secret_matches(platform.as_str(), secret) =>
            {
                error(
                    field::SSH_SECRET,
                    format!(
                        "{secret:?} does not name the platform's architecture; for IBM \
                         providers the Secret name and the platform must both contain s390x \
                         or both contain ppc64le"
                    ),
                );
                None
            }
            _ => Some(secret.to_owned()),
        },
    };

    let aws = match provider {
        Some(CloudProvider::Aws) => aws::parse_aws(fields, &mut |severity, f, what| {
            problems.push(Problem::new(
                severity,
                subject.clone(),
                format!("{}{label}.{f}", fields::DYNAMIC_PREFIX),
                format!("{what} ({strategy} platform {platform})"),
            ));
        }),
        _ => None,
    };
    let valid = !problems[before..]
        .iter()
        .any(|p| p.severity == Severity::Error);
    let settings = match (
        provider,
        max_instances,
        ssh_secret,
        instance_tag,
        strategy_settings,
    ) {
        (Some(provider), Some(max_instances), Some(ssh_secret), Some(instance_tag), Some(s))
            if valid =>
        {
            Some(DynamicSettings {
                provider,
                max_instances,
                ssh_secret,
                instance_tag,
                strategy: s,
                aws,
            })
        }
        _ => None,
    };
    DynamicPlatform {
        platform: platform.clone(),
        strategy,
        settings,
    }
}

/// The Go controller's IBM rule: secret name and platform name the same architecture.
fn ibm_secret_matches(platform: &str, secret: &str) -> bool {
    ["s390x", "ppc64le"]
        .iter()
        .any(|arch| platform.contains(arch) && secret.contains(arch))
}

/// The Go controller's instance-tag rule: the tag `<prefix>-<arch>[-<instance type>]`
/// must name the same architecture and instance type as the platform
/// `<os>[-<instance type>]-<arch>` (multi-part instance types compared sorted).
fn check_instance_tag(label: &str, tag: &str) -> Result<(), String> {
    let (Some(first), Some(last)) = (label.find('-'), label.rfind('-')) else {
        return Err(format!(
            "{tag:?} cannot be checked: the platform has no `/` or `-` to find its architecture"
        ));
    };
    let label_arch = &label[last + 1..];
    let label_type = if first == last {
        String::new()
    } else {
        sorted_parts(label[first + 1..last].split('-'))
    };
    let parts: Vec<&str> = tag.split('-').collect();
    let Some(tag_arch) = parts.get(1) else {
        return Err(format!(
            "{tag:?} is not of the form <prefix>-<arch> or <prefix>-<arch>-<instance type>"
        ));
    };
    let tag_type = sorted_parts(parts[2..].iter().copied());
    if *tag_arch != label_arch {
        return Err(format!(
            "{tag:?} names architecture {tag_arch:?} but the platform's is {label_arch:?}; \
             expected <prefix>-{label_arch}{}",
            if label_type.is_empty() {
                String::new()
            } else {
                format!("-{label_type}")
            }
        ));
    }
    if tag_type != label_type {
        return Err(format!(
            "{tag:?} names instance type {tag_type:?} but the platform's is {label_type:?}"
        ));
    }
    Ok(())
}

fn sorted_parts<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    let mut parts: Vec<&str> = parts.collect();
    parts.sort_unstable();
    parts.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        platform: &str,
        strategy: DynamicStrategy,
        pairs: &[(&str, &str)],
    ) -> (DynamicPlatform, Vec<Problem>) {
        let fields: BTreeMap<&str, &str> = pairs.iter().copied().collect();
        let mut problems = Vec::new();
        let p = parse_dynamic(
            &Platform::parse(platform).unwrap(),
            strategy,
            &fields,
            &mut problems,
        );
        (p, problems)
    }

    fn messages(problems: &[Problem]) -> Vec<String> {
        problems
            .iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect()
    }

    /// What every aws platform needs to launch an instance.
    const AWS: [(&str, &str); 5] = [
        ("region", "us-east-1"),
        ("ami", "ami-03d6a5256a46c9feb"),
        ("instance-type", "m6g.large"),
        ("key-name", "multi-platform-aws-prod"),
        ("aws-secret", "aws-account"),
    ];

    fn with_aws<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut all = AWS.to_vec();
        all.extend_from_slice(pairs);
        all
    }

    #[test]
    fn valid_dynamic_platform() {
        let (p, problems) = parse(
            "linux/arm64",
            DynamicStrategy::Dynamic,
            &with_aws(&[
                ("type", "aws"),
                ("max-instances", "500"),
                ("ssh-secret", "aws-ssh-key"),
                ("instance-tag", "prod-arm64"),
                ("allocation-timeout", "1800"),
                ("check-interval", "5"),
                ("sudo-commands", "/usr/bin/podman"),
            ]),
        );
        assert!(problems.is_empty(), "{problems:?}");
        let settings = p.settings.unwrap();
        assert_eq!(settings.provider, CloudProvider::Aws);
        // Production configs run hundreds of instances per platform: no upper bound,
        // as in the Go controller today.
        assert_eq!(settings.max_instances, 500);
        assert_eq!(
            settings.strategy,
            StrategySettings::Dynamic {
                allocation_timeout: Duration::from_secs(1800),
                check_interval: Duration::from_secs(5),
                sudo_commands: vec![SudoCommand::parse("/usr/bin/podman").unwrap()],
            }
        );
        assert_eq!(settings.aws.unwrap().instance_type, "m6g.large");
        let (p, problems) = parse(
            "linux/arm64",
            DynamicStrategy::Dynamic,
            &with_aws(&[("type", "aws"), ("max-instances", "1"), ("ssh-secret", "k")]),
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            p.settings.unwrap().strategy,
            StrategySettings::Dynamic {
                allocation_timeout: Duration::from_secs(600),
                check_interval: Duration::from_secs(60),
                sudo_commands: Vec::new(),
            }
        );
    }

    #[test]
    fn valid_pool_platform() {
        let (p, problems) = parse(
            "linux-m2xlarge/amd64",
            DynamicStrategy::DynamicPool,
            &with_aws(&[
                ("type", "aws"),
                ("max-instances", "20"),
                ("concurrency", "4"),
                ("max-age", "60"),
                ("instance-tag", "prod-amd64-m2xlarge"),
                ("ssh-secret", "aws-pool-secret"),
            ]),
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            p.settings.unwrap().strategy,
            StrategySettings::Pool {
                concurrency: 4,
                max_age: Duration::from_secs(3600)
            }
        );
    }

    #[test]
    fn every_missing_required_field_is_reported() {
        let (p, problems) = parse("linux/arm64", DynamicStrategy::DynamicPool, &[]);
        assert!(p.settings.is_none());
        let msgs = messages(&problems);
        for key in [
            "type",
            "max-instances",
            "concurrency",
            "max-age",
            "ssh-secret",
        ] {
            let key = format!("dynamic.linux-arm64.{key}: missing");
            assert!(msgs.iter().any(|m| m.starts_with(&key)), "{key}: {msgs:?}");
        }
        assert!(
            msgs.iter()
                .all(|m| m.ends_with("(dynamic-pool platform linux/arm64)"))
        );
    }

    #[test]
    fn ranges_follow_the_go_controller() {
        let (_, problems) = parse(
            "linux/arm64",
            DynamicStrategy::Dynamic,
            &[
                ("type", "gcp"),
                ("max-instances", "many"),
                ("allocation-timeout", "0"),
                ("check-interval", "-1"),
                ("ssh-secret", "k"),
                ("colour", "blue"),
            ],
        );
        let msgs = messages(&problems).join("\n");
        assert!(msgs.contains("\"gcp\" is not a provider; expected aws, ibmz or ibmp"));
        assert!(msgs.contains("max-instances: \"many\" is not a whole number"));
        assert!(
            msgs.contains(
                "allocation-timeout: 0 is out of range; expected an integer of at least 1"
            )
        );
        assert!(msgs.contains("check-interval: \"-1\" is not a whole number"));
        assert!(msgs.contains("colour: unknown field, ignored"));
        let (_, problems) = parse(
            "linux/arm64",
            DynamicStrategy::DynamicPool,
            &[
                ("type", "aws"),
                ("max-instances", "0"),
                ("concurrency", "9"),
                ("max-age", "1441"),
                ("ssh-secret", "k"),
            ],
        );
        let msgs = messages(&problems).join("\n");
        assert!(msgs.contains("max-instances: 0 is out of range"));
        assert!(msgs.contains("concurrency: 9 is out of range; expected an integer from 1 to 8"));
        assert!(msgs.contains("max-age: 1441 is out of range; expected an integer from 1 to 1440"));
    }

    #[test]
    fn ibm_ssh_secret_must_name_the_architecture() {
        let base = [("type", "ibmz"), ("max-instances", "3")];
        let (p, problems) = parse(
            "linux/s390x",
            DynamicStrategy::Dynamic,
            &[base[0], base[1], ("ssh-secret", "ibm-s390x-ssh-key")],
        );
        assert!(problems.is_empty() && p.settings.is_some(), "{problems:?}");
        let (p, problems) = parse(
            "linux/s390x",
            DynamicStrategy::Dynamic,
            &[base[0], base[1], ("ssh-secret", "invalid-secret")],
        );
        assert!(p.settings.is_none());
        assert!(
            problems[0]
                .message
                .contains("both contain s390x or both contain ppc64le")
        );
        // AWS secrets are not checked that way.
        let (_, problems) = parse(
            "linux/s390x",
            DynamicStrategy::Dynamic,
            &with_aws(&[("type", "aws"), base[1], ("ssh-secret", "invalid-secret")]),
        );
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn instance_tags_must_match_arch_and_instance_type() {
        assert!(check_instance_tag("linux-arm64", "prod-arm64").is_ok());
        assert!(check_instance_tag("linux-m2xlarge-arm64", "prod-arm64-m2xlarge").is_ok());
        assert!(
            check_instance_tag("linux-d160-m4xlarge-arm64", "prod-arm64-m4xlarge-d160").is_ok()
        );
        let cases = [
            ("linux-arm64", "prod", "not of the form"),
            ("linux-arm64", "prod-amd64", "architecture \"amd64\""),
            ("linux-m2xlarge-arm64", "prod-arm64", "instance type \"\""),
            (
                "linux-m2xlarge-arm64",
                "prod-arm64-m4xlarge",
                "instance type \"m4xlarge\"",
            ),
            ("local", "prod-arm64", "cannot be checked"),
        ];
        for (label, tag, why) in cases {
            let err = check_instance_tag(label, tag).expect_err(tag);
            assert!(err.contains(why), "{label} {tag}: {err}");
        }
    }
}
