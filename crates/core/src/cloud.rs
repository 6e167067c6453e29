//! Cloud VMs as plain data (contract §6): what to launch for a TaskRun, how instances
//! are told apart, and which ones the sweep terminates. The EC2 calls themselves are the
//! shell's.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::allocation::TaskRunKey;
use crate::config::{
    AwsSettings, DEFAULT_CHECK_INTERVAL_SECS, DEFAULT_DYNAMIC_ALLOCATION_TIMEOUT_SECS,
    DedicatedHost, DynamicSettings, Settings, SudoCommand, UserLimits,
};
use crate::naming::cloud_tags;
use crate::platform::Platform;
use crate::time::{Timestamp, elapsed};

/// An EC2 instance id (`i-0123456789abcdef0`), checked to be one before it is written to
/// a TaskRun or sent to the cloud.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(String);

/// A value that is not an instance id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an EC2 instance id (i- followed by hex digits)")]
pub struct InvalidInstanceId(pub String);

impl InstanceId {
    /// Parses `i-` and 1..=32 lowercase hex digits (or alphanumerics, as EC2-compatible
    /// endpoints use).
    pub fn parse(value: &str) -> Result<Self, InvalidInstanceId> {
        let ok = value.strip_prefix("i-").is_some_and(|rest| {
            !rest.is_empty() && rest.len() <= 32 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        });
        if ok {
            Ok(InstanceId(value.to_owned()))
        } else {
            Err(InvalidInstanceId(value.to_owned()))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An instance's lifecycle state, as EC2 reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InstanceState {
    /// Starting.
    Pending,
    /// Running.
    Running,
    /// Terminating.
    ShuttingDown,
    /// Gone.
    Terminated,
    /// Stopping.
    Stopping,
    /// Stopped.
    Stopped,
}

impl InstanceState {
    /// Parses EC2's state name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "shutting-down" => InstanceState::ShuttingDown,
            "terminated" => InstanceState::Terminated,
            "stopping" => InstanceState::Stopping,
            "stopped" => InstanceState::Stopped,
            _ => return None,
        })
    }

    /// EC2's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
        }
    }

    /// Whether the instance still counts against its platform's limit: everything
    /// but an instance on its way out.
    pub fn counts(self) -> bool {
        !matches!(
            self,
            InstanceState::ShuttingDown | InstanceState::Terminated
        )
    }
}

/// One instance of a cloud listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudInstance {
    /// Its id.
    pub id: InstanceId,
    /// Its state.
    pub state: InstanceState,
    /// Its instance type.
    pub instance_type: String,
    /// The TaskRun its `taskRunID` tag names, if the tag is well-formed.
    pub taskrun: Option<TaskRunKey>,
    /// When it was launched.
    pub launched: Timestamp,
    /// The address to log in at (public DNS name, public IP, then private IP unless
    /// the platform is strict), once it has one.
    pub address: Option<String>,
}

/// `<namespace>:<name>`, the `taskRunID` tag value.
pub fn taskrun_id(key: &TaskRunKey) -> String {
    format!("{}:{}", key.namespace, key.name)
}

/// The TaskRun a `taskRunID` tag names.
pub fn parse_taskrun_id(value: &str) -> Option<TaskRunKey> {
    let (namespace, name) = value.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty()).then(|| TaskRunKey::new(namespace, name))
}

/// The RunInstances client token of a TaskRun's `attempt`-th launch: the same TaskRun
/// and attempt always give the same token, so a launch repeated after a crash returns
/// the instance the first one started instead of starting a second (EC2 keeps tokens
/// for days). At most 64 ASCII characters, as EC2 requires.
pub fn client_token(uid: &str, key: &TaskRunKey, attempt: u32) -> String {
    let id = if uid.is_empty() {
        // Only a TaskRun without a uid (never from a real API server) gets here.
        crate::naming::UserName::for_taskrun(&key.name, &key.namespace)
            .as_str()
            .to_owned()
    } else {
        uid.chars()
            .filter(char::is_ascii_alphanumeric)
            .take(40)
            .collect()
    };
    format!("mpc-{id}-{attempt}")
}

/// Where a platform's instances live and how they are found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudTarget {
    /// The platform.
    pub platform: Platform,
    /// AWS region.
    pub region: String,
    /// Secret with the AWS credentials (controller namespace).
    pub aws_secret: String,
    /// `multi-platform-instance` tag value of its instances.
    pub instance_tag: String,
    /// Its instances' type: only those count against its limit.
    pub instance_type: String,
    /// Never use an instance's private address.
    pub strict_public_address: bool,
}

/// The operating system of a platform's VMs, from the platform's name (`windows…`,
/// `macos…`): how the build's login is prepared on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmOs {
    /// A throwaway user is created through `ec2-user` with sudo, as on a static host.
    Linux,
    /// The user data made a `konflux-builder` account and left its key for
    /// `Administrator`, who hands it over (PowerShell, no POSIX shell).
    Windows,
    /// The user data made a `konflux-builder` account and left its key in the
    /// `ec2-user` home, who hands it over.
    MacOs,
}

impl VmOs {
    /// The OS of `platform`'s VMs.
    pub fn of(platform: &Platform) -> Self {
        let name = platform.as_str();
        if name.starts_with("windows") {
            VmOs::Windows
        } else if name.starts_with("macos") {
            VmOs::MacOs
        } else {
            VmOs::Linux
        }
    }
}

/// How a dynamic pool shares its instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolShape {
    /// TaskRuns per instance.
    pub concurrency: u32,
    /// How long an instance takes new TaskRuns.
    pub max_age: Duration,
}

/// How to reach and prepare a platform's VMs once launched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmAccess {
    /// Secret (controller namespace) with the VMs' admin key under `id_rsa`.
    pub ssh_secret: String,
    /// Never use the private address.
    pub strict_public_address: bool,
    /// What the build user may run with sudo.
    pub sudo_commands: Vec<SudoCommand>,
    /// Longest wait between looks at a launching VM.
    pub check_interval: Duration,
    /// How long a VM may take from launch to a working build user.
    pub allocation_timeout: Duration,
    /// What each build user may take from the VM: host-config's global build-user
    /// limits, as a VM has no host entry of its own.
    pub limits: UserLimits,
}

/// Everything RunInstances is sent, as the Go controller sends it (plus the client
/// token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchSpec {
    /// Where.
    pub target: CloudTarget,
    /// AMI id.
    pub ami: String,
    /// Key pair name.
    pub key_name: String,
    /// Security group names.
    pub security_groups: Vec<String>,
    /// Security group ids.
    pub security_group_ids: Vec<String>,
    /// Subnet id.
    pub subnet_id: Option<String>,
    /// IAM instance profile name.
    pub instance_profile_name: Option<String>,
    /// IAM instance profile ARN.
    pub instance_profile_arn: Option<String>,
    /// Raw user data (the shell encodes it).
    pub user_data: Option<String>,
    /// Root volume, GB.
    pub disk_gb: u32,
    /// Root volume IOPS.
    pub iops: Option<u32>,
    /// Root volume throughput.
    pub throughput: Option<u32>,
    /// macOS dedicated-host placement.
    pub dedicated_host: Option<DedicatedHost>,
    /// Instance tags, in the order they are sent.
    pub tags: Vec<(String, String)>,
    /// Idempotency token.
    pub client_token: String,
}

/// A dynamic platform ready to launch: its settings, resolved against the globals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudPlatform {
    /// Where its instances live.
    pub target: CloudTarget,
    /// How its VMs are reached.
    pub access: VmAccess,
    /// Most instances at once.
    pub max_instances: u32,
    /// `Some` for a dynamic pool: its instances are shared hosts.
    pub pool: Option<PoolShape>,
    /// How its VMs are prepared for a build.
    pub os: VmOs,
    aws: AwsSettings,
    additional_tags: BTreeMap<String, String>,
}

/// Why a dynamic platform's settings cannot be resolved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CloudConfigError {
    /// Not an AWS platform.
    #[error("platform {0} is not a dynamic AWS platform")]
    NotAws(Platform),
    /// Neither the platform nor host-config sets an instance tag.
    #[error(
        "platform {0} has no instance tag: set dynamic.{label}.instance-tag or the global \
         instance-tag in host-config; it is how the controller counts and finds the \
         platform's instances",
        label = .0.label_value()
    )]
    NoInstanceTag(Platform),
}

impl CloudPlatform {
    /// Resolves a dynamic platform's settings against the global ones.
    pub fn resolve(
        platform: &Platform,
        settings: &DynamicSettings,
        global: &Settings,
    ) -> Result<Self, CloudConfigError> {
        let Some(aws) = &settings.aws else {
            return Err(CloudConfigError::NotAws(platform.clone()));
        };
        let (allocation_timeout, check_interval, sudo_commands, pool) = match &settings.strategy {
            crate::config::StrategySettings::Dynamic {
                allocation_timeout,
                check_interval,
                sudo_commands,
            } => (
                *allocation_timeout,
                *check_interval,
                sudo_commands.clone(),
                None,
            ),
            crate::config::StrategySettings::Pool {
                concurrency,
                max_age,
            } => (
                Duration::from_secs(DEFAULT_DYNAMIC_ALLOCATION_TIMEOUT_SECS),
                Duration::from_secs(DEFAULT_CHECK_INTERVAL_SECS),
                Vec::new(),
                Some(PoolShape {
                    concurrency: *concurrency,
                    max_age: *max_age,
                }),
            ),
        };
        let instance_tag = settings
            .instance_tag
            .clone()
            .or_else(|| global.instance_tag.clone())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| CloudConfigError::NoInstanceTag(platform.clone()))?;
        Ok(CloudPlatform {
            target: CloudTarget {
                platform: platform.clone(),
                region: aws.region.clone(),
                aws_secret: aws.aws_secret.clone(),
                instance_tag,
                instance_type: aws.instance_type.clone(),
                strict_public_address: aws.strict_public_address,
            },
            access: VmAccess {
                ssh_secret: settings.ssh_secret.clone(),
                strict_public_address: aws.strict_public_address,
                sudo_commands,
                check_interval,
                allocation_timeout,
                limits: global.user_limits,
            },
            max_instances: settings.max_instances,
            pool,
            os: VmOs::of(platform),
            aws: aws.clone(),
            additional_tags: global.additional_instance_tags.clone(),
        })
    }

    /// What to launch for a dynamic pool: tagged, as the Go controller does, with the
    /// TaskRun whose wait started it (the instance is the pool's, not that TaskRun's).
    pub fn pool_launch_spec(
        &self,
        for_taskrun: Option<&TaskRunKey>,
        client_token: String,
    ) -> LaunchSpec {
        let key = for_taskrun
            .cloned()
            .unwrap_or_else(|| TaskRunKey::new("pool", self.target.platform.label_value()));
        let mut spec = self.launch_spec(&key, "", 0);
        spec.client_token = client_token;
        spec
    }

    /// What to launch for a TaskRun's `attempt`-th launch.
    pub fn launch_spec(&self, key: &TaskRunKey, uid: &str, attempt: u32) -> LaunchSpec {
        let aws = &self.aws;
        let mut tags = vec![
            (cloud_tags::MANAGED.to_owned(), "true".to_owned()),
            (
                cloud_tags::INSTANCE.to_owned(),
                self.target.instance_tag.clone(),
            ),
            (
                cloud_tags::NAME.to_owned(),
                format!("{}{}", cloud_tags::NAME_PREFIX, key.name),
            ),
            (cloud_tags::TASKRUN_ID.to_owned(), taskrun_id(key)),
        ];
        // The additional tags cannot replace ours: the sweep and the count rely on them.
        let ours = [
            cloud_tags::MANAGED,
            cloud_tags::INSTANCE,
            cloud_tags::NAME,
            cloud_tags::TASKRUN_ID,
        ];
        tags.extend(
            self.additional_tags
                .iter()
                .filter(|(k, _)| !ours.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        LaunchSpec {
            target: self.target.clone(),
            ami: aws.ami.clone(),
            key_name: aws.key_name.clone(),
            security_groups: aws.security_group.iter().cloned().collect(),
            security_group_ids: aws.security_group_id.iter().cloned().collect(),
            subnet_id: aws.subnet_id.clone(),
            instance_profile_name: aws.instance_profile_name.clone(),
            instance_profile_arn: aws.instance_profile_arn.clone(),
            user_data: aws.user_data.clone(),
            disk_gb: aws.disk_gb,
            iops: aws.iops,
            throughput: aws.throughput,
            dedicated_host: aws.dedicated_host.clone(),
            tags,
            client_token: client_token(uid, key, attempt),
        }
    }
}

/// What a cloud listing means for a platform: how many instances run for no tracked
/// TaskRun (they count against the limit), and which of those the sweep terminates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Instances of the platform's type that run for no tracked TaskRun.
    pub untracked: usize,
    /// Instances to terminate, with why.
    pub doomed: Vec<(InstanceId, String)>,
}

/// Sorts a listing: an instance is *claimed* when `claimed(instance)` says a tracked
/// TaskRun holds it (by its recorded id, or by its `taskRunID` tag while the launch is
/// being recorded). Unclaimed instances count as untracked; once older than `grace`
/// they are doomed: their TaskRun is gone or finished, or no TaskRun ever recorded them.
pub fn sweep(
    listing: &[CloudInstance],
    instance_type: &str,
    claimed: impl Fn(&CloudInstance) -> bool,
    now: Timestamp,
    grace: Duration,
) -> Sweep {
    let mut result = Sweep::default();
    for instance in listing.iter().filter(|i| i.state.counts()) {
        if claimed(instance) {
            continue;
        }
        if instance.instance_type == instance_type {
            result.untracked += 1;
        }
        if elapsed(instance.launched, now) >= grace {
            let why = match &instance.taskrun {
                Some(key) => format!(
                    "its TaskRun {key} is gone or finished, or never recorded it (launched {})",
                    instance.launched.strftime("%Y-%m-%dT%H:%M:%SZ")
                ),
                None => "it has no valid taskRunID tag, so no TaskRun can own it".to_owned(),
            };
            result.doomed.push((instance.id.clone(), why));
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::time::from_unix_seconds;

    fn config() -> crate::config::PoolConfig {
        let data: BTreeMap<String, String> = [
            ("dynamic-platforms", "linux/arm64"),
            ("instance-tag", "prod-arm64"),
            ("additional-instance-tags", "team=build,Name=evil"),
            ("dynamic.linux-arm64.type", "aws"),
            ("dynamic.linux-arm64.region", "us-east-1"),
            ("dynamic.linux-arm64.ami", "ami-1"),
            ("dynamic.linux-arm64.instance-type", "m6g.large"),
            ("dynamic.linux-arm64.key-name", "kp"),
            ("dynamic.linux-arm64.aws-secret", "aws-account"),
            ("dynamic.linux-arm64.ssh-secret", "aws-ssh"),
            ("dynamic.linux-arm64.max-instances", "2"),
            ("dynamic.linux-arm64.security-group-id", "sg-1"),
            ("dynamic.linux-arm64.subnet-id", "subnet-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        parse(&data)
    }

    fn arm() -> Platform {
        Platform::parse("linux/arm64").unwrap()
    }

    fn resolved() -> CloudPlatform {
        let config = config();
        let settings = config.dynamic_platforms[&arm()].settings.clone().unwrap();
        CloudPlatform::resolve(&arm(), &settings, &config.settings).unwrap()
    }

    #[test]
    fn the_launch_carries_the_go_tags_and_a_stable_client_token() {
        let key = TaskRunKey::new("tenant", "build-1");
        let spec = resolved().launch_spec(&key, "0b1c2d3e-aaaa-bbbb-cccc-000000000001", 1);
        assert_eq!(
            spec.tags,
            [
                ("MultiPlatformManaged".into(), "true".into()),
                ("multi-platform-instance".into(), "prod-arm64".into()),
                ("Name".into(), "multi-platform-builder-build-1".into()),
                ("taskRunID".into(), "tenant:build-1".into()),
                ("team".into(), "build".into()),
            ]
        );
        assert_eq!(spec.security_group_ids, ["sg-1"]);
        assert!(spec.security_groups.is_empty());
        assert_eq!(spec.subnet_id.as_deref(), Some("subnet-1"));
        assert_eq!(spec.disk_gb, 40);
        let again = resolved().launch_spec(&key, "0b1c2d3e-aaaa-bbbb-cccc-000000000001", 1);
        assert_eq!(spec.client_token, again.client_token);
        let next = resolved().launch_spec(&key, "0b1c2d3e-aaaa-bbbb-cccc-000000000001", 2);
        assert_ne!(spec.client_token, next.client_token);
        assert!(spec.client_token.len() <= 64 && spec.client_token.is_ascii());
    }

    #[test]
    fn build_users_on_a_vm_get_the_global_limits() {
        let mut data: BTreeMap<String, String> = BTreeMap::new();
        data.insert("max-processes".into(), "123".into());
        let mut config = config();
        config.settings.user_limits = parse(&data).settings.user_limits;
        assert_eq!(
            config.settings.user_limits.max_processes,
            crate::config::MaxProcesses::Limit(123)
        );
        let settings = config.dynamic_platforms[&arm()].settings.clone().unwrap();
        let with_limits = CloudPlatform::resolve(&arm(), &settings, &config.settings).unwrap();
        assert_eq!(with_limits.access.limits, config.settings.user_limits);
        assert_eq!(resolved().access.limits, UserLimits::default());
    }

    #[test]
    fn an_instance_tag_is_required_somewhere() {
        let mut config = config();
        config.settings.instance_tag = None;
        let settings = config.dynamic_platforms[&arm()].settings.clone().unwrap();
        let err = CloudPlatform::resolve(&arm(), &settings, &config.settings).unwrap_err();
        assert!(err.to_string().contains("dynamic.linux-arm64.instance-tag"));
    }

    #[test]
    fn ids_and_taskrun_tags_are_checked() {
        assert!(InstanceId::parse("i-0123456789abcdef0").is_ok());
        for bad in ["", "i-", "0123", "i-12 3", "i-$(reboot)"] {
            assert!(InstanceId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_taskrun_id("ns:name"),
            Some(TaskRunKey::new("ns", "name"))
        );
        assert_eq!(parse_taskrun_id("nocolon"), None);
        assert_eq!(parse_taskrun_id(":x"), None);
    }

    #[test]
    fn the_sweep_spares_claimed_and_young_instances() {
        let t = |s| from_unix_seconds(s);
        let instance = |id: &str, state, kind: &str, tr: Option<&str>, at| CloudInstance {
            id: InstanceId::parse(id).unwrap(),
            state,
            instance_type: kind.into(),
            taskrun: tr.and_then(parse_taskrun_id),
            launched: t(at),
            address: None,
        };
        let listing = vec![
            instance(
                "i-1",
                InstanceState::Running,
                "m6g.large",
                Some("ns:live"),
                0,
            ),
            instance(
                "i-2",
                InstanceState::Running,
                "m6g.large",
                Some("ns:gone"),
                0,
            ),
            instance(
                "i-3",
                InstanceState::Pending,
                "m6g.large",
                Some("ns:gone2"),
                590,
            ),
            instance("i-4", InstanceState::Terminated, "m6g.large", None, 0),
            instance("i-5", InstanceState::Stopped, "c7g.large", None, 0),
        ];
        let live = TaskRunKey::new("ns", "live");
        let result = sweep(
            &listing,
            "m6g.large",
            |i| i.taskrun.as_ref() == Some(&live),
            t(600),
            Duration::from_secs(300),
        );
        // i-2 and i-3 count (same type, unclaimed); i-5 is another type.
        assert_eq!(result.untracked, 2);
        let doomed: Vec<&str> = result.doomed.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(doomed, ["i-2", "i-5"]);
        assert!(result.doomed[0].1.contains("ns/gone"));
        assert!(result.doomed[1].1.contains("no valid taskRunID"));
    }
}
