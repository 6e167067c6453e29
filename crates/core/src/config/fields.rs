//! Keys of the host-config ConfigMap data (contract §2.4).
//!
//! They are the admins' interface and must match the Go controller's spelling, so
//! existing ConfigMaps keep working. Only the config module reads them.

/// Comma list of platforms served with `host: localhost`.
pub const LOCAL_PLATFORMS: &str = "local-platforms";
/// Comma list of platforms served by on-demand cloud VMs.
pub const DYNAMIC_PLATFORMS: &str = "dynamic-platforms";
/// Comma list of platforms served by a pool of cloud VMs.
pub const DYNAMIC_POOL_PLATFORMS: &str = "dynamic-pool-platforms";
/// Regexes of namespaces allowed to use the controller (accepted, not enforced).
pub const ALLOWED_NAMESPACES: &str = "allowed-namespaces";
/// Default cloud instance tag (dynamic strategies only).
pub const INSTANCE_TAG: &str = "instance-tag";
/// Comma list of `key=value` cloud instance tags (dynamic strategies only).
pub const ADDITIONAL_INSTANCE_TAGS: &str = "additional-instance-tags";
/// `strict` | `accept-new` | `off`.
pub const HOST_KEY_CHECKING: &str = "host-key-checking";
/// Seconds a TaskRun may wait for a slot before it fails.
pub const ALLOCATION_TIMEOUT: &str = "allocation-timeout";
/// Seconds an issued build key stays valid on the host.
pub const USER_KEY_LIFETIME: &str = "user-key-lifetime";
/// Default `nproc` limit of every build user (a host's own key overrides it).
pub const MAX_PROCESSES: &str = "max-processes";
/// Default `MemoryMax=` of every build user's slice (a host's own key overrides it).
pub const MEMORY_MAX: &str = "memory-max";
/// Default `CPUQuota=` of every build user's slice (a host's own key overrides it).
pub const CPU_QUOTA: &str = "cpu-quota";

/// Prefix of static host keys: `host.<name>.<field>`.
pub const HOST_PREFIX: &str = "host.";
/// Prefix of dynamic platform keys: `dynamic.<platform-with-dashes>.<field>`.
pub const DYNAMIC_PREFIX: &str = "dynamic.";

/// Fields of a static host.
pub mod host {
    /// IP literal or DNS name (required).
    pub const ADDRESS: &str = "address";
    /// Platform served by the host (required).
    pub const PLATFORM: &str = "platform";
    /// Admin SSH user (required).
    pub const USER: &str = "user";
    /// Name of the Secret holding the admin key (required).
    pub const SECRET: &str = "secret";
    /// Slots, 1..8 (required).
    pub const CONCURRENCY: &str = "concurrency";
    /// SSH port (default 22).
    pub const PORT: &str = "port";
    /// Pinned OpenSSH public host key.
    pub const HOST_KEY: &str = "host-key";
    /// `active` | `drain` | `disabled`.
    pub const STATE: &str = "state";
    /// Commands the build user may run with sudo.
    pub const SUDO_COMMANDS: &str = "sudo-commands";
    /// Most processes (threads included) of one build user.
    pub const MAX_PROCESSES: &str = super::MAX_PROCESSES;
    /// Memory of one build user's slice (systemd hosts).
    pub const MEMORY_MAX: &str = super::MEMORY_MAX;
    /// CPU time of one build user's slice (systemd hosts).
    pub const CPU_QUOTA: &str = super::CPU_QUOTA;

    /// Every field a host may have.
    pub const ALL: [&str; 12] = [
        ADDRESS,
        PLATFORM,
        USER,
        SECRET,
        CONCURRENCY,
        PORT,
        HOST_KEY,
        STATE,
        SUDO_COMMANDS,
        MAX_PROCESSES,
        MEMORY_MAX,
        CPU_QUOTA,
    ];
}

/// Fields of a dynamic or dynamic-pool platform that the Go controller validates.
pub mod dynamic {
    /// Cloud provider: `aws`, `ibmz` or `ibmp`.
    pub const TYPE: &str = "type";
    /// Most VMs at once.
    pub const MAX_INSTANCES: &str = "max-instances";
    /// Secret with the VMs' SSH key.
    pub const SSH_SECRET: &str = "ssh-secret";
    /// Cloud instance tag.
    pub const INSTANCE_TAG: &str = "instance-tag";
    /// Seconds to wait for a VM (dynamic only).
    pub const ALLOCATION_TIMEOUT: &str = "allocation-timeout";
    /// Sudo commands for the build user (dynamic only, passed through).
    pub const SUDO_COMMANDS: &str = "sudo-commands";
    /// TaskRuns per VM (dynamic pool only).
    pub const CONCURRENCY: &str = "concurrency";
    /// Minutes a pool VM lives (dynamic pool only).
    pub const MAX_AGE: &str = "max-age";
    /// Seconds between looks at a launching VM (dynamic only).
    pub const CHECK_INTERVAL: &str = "check-interval";
}

/// Fields of a `type: aws` dynamic platform: how its EC2 instances are launched.
pub mod aws {
    /// AWS region.
    pub const REGION: &str = "region";
    /// AMI id.
    pub const AMI: &str = "ami";
    /// EC2 instance type.
    pub const INSTANCE_TYPE: &str = "instance-type";
    /// EC2 key pair name.
    pub const KEY_NAME: &str = "key-name";
    /// Secret with the AWS credentials.
    pub const AWS_SECRET: &str = "aws-secret";
    /// Security group name.
    pub const SECURITY_GROUP: &str = "security-group";
    /// Security group id.
    pub const SECURITY_GROUP_ID: &str = "security-group-id";
    /// Subnet id.
    pub const SUBNET_ID: &str = "subnet-id";
    /// IAM instance profile name.
    pub const INSTANCE_PROFILE_NAME: &str = "instance-profile-name";
    /// IAM instance profile ARN.
    pub const INSTANCE_PROFILE_ARN: &str = "instance-profile-arn";
    /// Root volume size, GB.
    pub const DISK: &str = "disk";
    /// Root volume IOPS.
    pub const IOPS: &str = "iops";
    /// Root volume throughput, MiB/s.
    pub const THROUGHPUT: &str = "throughput";
    /// Raw user data.
    pub const USER_DATA: &str = "user-data";
    /// `"true"`: never use the private address.
    pub const STRICT_PUBLIC_ADDRESS: &str = "strict-public-address";
    /// Placement tenancy (macOS).
    pub const TENANCY: &str = "tenancy";
    /// Dedicated host resource group ARN (macOS).
    pub const HOST_RESOURCE_GROUP_ARN: &str = "host-resource-group-arn";
    /// License configuration ARN (macOS).
    pub const LICENSE_CONFIGURATION_ARN: &str = "license-configuration-arn";
    /// Spot price: accepted and ignored (gone upstream).
    pub const SPOT_PRICE: &str = "spot-price";
}
