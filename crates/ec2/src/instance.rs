//! Instances as the controller sees them: plain data taken from `DescribeInstances`,
//! and the pure decisions on it (which address to use, what counts toward a limit).

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use crate::tags::TASK_RUN_TAG;

/// An EC2 instance id (`i-0123…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(String);

impl InstanceId {
    /// Wraps an id string.
    pub fn new(id: impl Into<String>) -> Self {
        InstanceId(id.into())
    }

    /// The id string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for InstanceId {
    fn from(id: String) -> Self {
        InstanceId(id)
    }
}

impl From<&str> for InstanceId {
    fn from(id: &str) -> Self {
        InstanceId(id.to_owned())
    }
}

/// An instance's lifecycle state (EC2's `InstanceState.Name`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InstanceState {
    /// `pending`: launching.
    Pending,
    /// `running`.
    Running,
    /// `shutting-down`: terminating.
    ShuttingDown,
    /// `terminated`.
    Terminated,
    /// `stopping`.
    Stopping,
    /// `stopped`.
    Stopped,
    /// A state this crate does not know.
    Unknown(String),
}

impl InstanceState {
    /// The state for EC2's state name.
    pub fn from_name(name: &str) -> Self {
        match name {
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "shutting-down" => InstanceState::ShuttingDown,
            "terminated" => InstanceState::Terminated,
            "stopping" => InstanceState::Stopping,
            "stopped" => InstanceState::Stopped,
            other => InstanceState::Unknown(other.to_owned()),
        }
    }

    /// EC2's name of the state.
    pub fn as_str(&self) -> &str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
            InstanceState::Unknown(name) => name,
        }
    }

    /// Whether the instance still counts toward the platform's limit: everything but
    /// terminated and shutting down (it is on its way out and will not come back).
    pub fn is_active(&self) -> bool {
        !matches!(
            self,
            InstanceState::ShuttingDown | InstanceState::Terminated
        )
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The addresses EC2 reports for an instance (empty strings are taken as absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addresses {
    /// `PublicDnsName`.
    pub public_dns_name: Option<String>,
    /// `PublicIpAddress`.
    pub public_ip: Option<String>,
    /// `PrivateIpAddress`.
    pub private_ip: Option<String>,
}

impl Addresses {
    /// The address to reach the instance at, as the Go controller picks it: the public
    /// DNS name, else the public IP, else (unless `strict_public_address`) the private IP.
    pub fn choose(&self, strict_public_address: bool) -> Option<&str> {
        fn present(a: &Option<String>) -> Option<&str> {
            a.as_deref().filter(|s| !s.is_empty())
        }
        present(&self.public_dns_name)
            .or_else(|| present(&self.public_ip))
            .or_else(|| {
                if strict_public_address {
                    None
                } else {
                    present(&self.private_ip)
                }
            })
    }
}

/// One instance from `DescribeInstances`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSummary {
    /// Its id.
    pub id: InstanceId,
    /// Its state.
    pub state: InstanceState,
    /// Its instance type (`m6g.large`).
    pub instance_type: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// When it was launched.
    pub launch_time: Option<SystemTime>,
    /// Its addresses.
    pub addresses: Addresses,
}

impl InstanceSummary {
    /// The `taskRunID` tag (`<namespace>:<name>`), when present.
    pub fn task_run_id(&self) -> Option<&str> {
        self.tags.get(TASK_RUN_TAG).map(String::as_str)
    }

    /// The address to reach it at; see [`Addresses::choose`].
    pub fn address(&self, strict_public_address: bool) -> Option<&str> {
        self.addresses.choose(strict_public_address)
    }

    /// The summary of an SDK instance; `None` when EC2 sent no id.
    pub(crate) fn from_sdk(instance: &aws_sdk_ec2::types::Instance) -> Option<Self> {
        let id = instance.instance_id()?;
        let state = instance
            .state()
            .and_then(|s| s.name())
            .map(|n| InstanceState::from_name(n.as_str()))
            .unwrap_or_else(|| InstanceState::Unknown(String::new()));
        let tags = instance
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
            .collect();
        let own = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
        Some(InstanceSummary {
            id: InstanceId::new(id),
            state,
            instance_type: instance
                .instance_type()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            tags,
            launch_time: instance
                .launch_time()
                .and_then(|t| SystemTime::try_from(*t).ok()),
            addresses: Addresses {
                public_dns_name: own(instance.public_dns_name()),
                public_ip: own(instance.public_ip_address()),
                private_ip: own(instance.private_ip_address()),
            },
        })
    }
}

/// An instance's state and the address to reach it at, from `describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    /// Its state.
    pub state: InstanceState,
    /// The address per [`Addresses::choose`] with the caller's strictness; `None` while
    /// it has none (still pending, or only a private one under strict-public-address).
    pub address: Option<String>,
    /// Everything else EC2 said about it.
    pub instance: InstanceSummary,
}

impl InstanceInfo {
    pub(crate) fn new(instance: InstanceSummary, strict_public_address: bool) -> Self {
        InstanceInfo {
            state: instance.state.clone(),
            address: instance.address(strict_public_address).map(str::to_owned),
            instance,
        }
    }
}

/// How many of `instances` count toward a platform's limit: active (not terminated or
/// shutting down) and of the platform's instance type.
pub fn count_active(instances: &[InstanceSummary], instance_type: &str) -> usize {
    instances
        .iter()
        .filter(|i| i.state.is_active() && i.instance_type == instance_type)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(dns: &str, public: &str, private: &str) -> Addresses {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Addresses {
            public_dns_name: some(dns),
            public_ip: some(public),
            private_ip: some(private),
        }
    }

    #[test]
    fn address_prefers_public_dns_then_public_ip_then_private_ip() {
        let all = addresses("ec2-1.compute.amazonaws.com", "3.3.3.3", "10.0.0.1");
        assert_eq!(all.choose(false), Some("ec2-1.compute.amazonaws.com"));
        assert_eq!(all.choose(true), Some("ec2-1.compute.amazonaws.com"));
        let ip = addresses("", "3.3.3.3", "10.0.0.1");
        assert_eq!(ip.choose(false), Some("3.3.3.3"));
        assert_eq!(ip.choose(true), Some("3.3.3.3"));
        let private = addresses("", "", "10.0.0.1");
        assert_eq!(private.choose(false), Some("10.0.0.1"));
        assert_eq!(
            private.choose(true),
            None,
            "strict: a private address is no address"
        );
        assert_eq!(addresses("", "", "").choose(false), None);
        let empty_strings = Addresses {
            public_dns_name: Some(String::new()),
            public_ip: Some(String::new()),
            private_ip: Some("10.0.0.2".into()),
        };
        assert_eq!(empty_strings.choose(false), Some("10.0.0.2"));
    }

    #[test]
    fn states_round_trip_and_only_live_ones_are_active() {
        for name in [
            "pending",
            "running",
            "shutting-down",
            "terminated",
            "stopping",
            "stopped",
            "rebooting?",
        ] {
            assert_eq!(InstanceState::from_name(name).as_str(), name);
        }
        assert!(InstanceState::Pending.is_active());
        assert!(InstanceState::Stopped.is_active());
        assert!(!InstanceState::ShuttingDown.is_active());
        assert!(!InstanceState::Terminated.is_active());
    }

    fn summary(id: &str, state: InstanceState, instance_type: &str) -> InstanceSummary {
        InstanceSummary {
            id: id.into(),
            state,
            instance_type: instance_type.into(),
            tags: BTreeMap::from([(TASK_RUN_TAG.to_owned(), "ns:tr".to_owned())]),
            launch_time: None,
            addresses: Addresses::default(),
        }
    }

    #[test]
    fn counting_skips_ending_instances_and_other_types() {
        let instances = vec![
            summary("i-1", InstanceState::Running, "m6g.large"),
            summary("i-2", InstanceState::Pending, "m6g.large"),
            summary("i-3", InstanceState::Terminated, "m6g.large"),
            summary("i-4", InstanceState::ShuttingDown, "m6g.large"),
            summary("i-5", InstanceState::Running, "m6g.xlarge"),
            summary("i-6", InstanceState::Stopped, "m6g.large"),
        ];
        assert_eq!(count_active(&instances, "m6g.large"), 3);
        assert_eq!(count_active(&instances, "m6g.xlarge"), 1);
        assert_eq!(count_active(&instances, "c7g.large"), 0);
        assert_eq!(instances[0].task_run_id(), Some("ns:tr"));
    }

    #[test]
    fn sdk_instances_become_summaries() {
        use aws_sdk_ec2::types::{Instance, InstanceStateName, Tag};
        let sdk = Instance::builder()
            .instance_id("i-9")
            .state(
                aws_sdk_ec2::types::InstanceState::builder()
                    .name(InstanceStateName::Running)
                    .build(),
            )
            .instance_type("m6g.large".into())
            .tags(Tag::builder().key("taskRunID").value("a:b").build())
            .public_dns_name("")
            .private_ip_address("10.1.2.3")
            .launch_time(aws_sdk_ec2::primitives::DateTime::from_secs(1_700_000_000))
            .build();
        let s = InstanceSummary::from_sdk(&sdk).unwrap();
        assert_eq!(s.id.as_str(), "i-9");
        assert_eq!(s.state, InstanceState::Running);
        assert_eq!(s.instance_type, "m6g.large");
        assert_eq!(s.task_run_id(), Some("a:b"));
        assert_eq!(s.addresses.public_dns_name, None, "empty string is no name");
        assert_eq!(s.address(false), Some("10.1.2.3"));
        assert_eq!(
            s.launch_time,
            Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000))
        );
        let info = InstanceInfo::new(s, true);
        assert_eq!(info.address, None);
        assert!(InstanceSummary::from_sdk(&Instance::builder().build()).is_none());
    }
}
