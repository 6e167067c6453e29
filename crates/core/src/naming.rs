//! Every name the controller shares with Tekton Tasks, admins and the Go controller.
//!
//! These strings are a compatibility contract (contract §2.2–§2.5): existing Tasks and
//! ConfigMaps use them, and a cluster must be able to switch between the Go controller
//! and this one. Nothing else in the crate spells them out.

use std::fmt;

use md5::{Digest, Md5};

/// Finalizer held on a TaskRun while a host slot or user is allocated to it.
pub const FINALIZER: &str = "appstudio.io/multi-platform-finalizer";
/// Label: the host (pool name) a TaskRun was given; `localhost` for local platforms.
pub const ASSIGNED_HOST_LABEL: &str = "build.appstudio.redhat.com/assigned-host";
/// Label: the TaskRun's platform in label form (`linux-arm64`).
pub const TARGET_PLATFORM_LABEL: &str = "build.appstudio.redhat.com/target-platform";
/// Label: present while the TaskRun is queued for a full pool.
pub const WAITING_FOR_PLATFORM_LABEL: &str = "build.appstudio.redhat.com/waiting-for-platform";
/// Annotation: comma list of hosts that failed provisioning for this TaskRun.
pub const FAILED_HOSTS_ANNOTATION: &str = "build.appstudio.redhat.com/failed-hosts";
/// Annotation: unix seconds at which allocation started.
pub const ALLOCATION_START_TIME_ANNOTATION: &str =
    "build.appstudio.redhat.com/allocation-start-time";
/// Label: the dynamic platform whose cloud VM the TaskRun holds (`linux-arm64`).
pub const CLOUD_DYNAMIC_PLATFORM_LABEL: &str = "build.appstudio.redhat.com/cloud-dynamic-platform";
/// Annotation: the id of the TaskRun's cloud VM.
pub const CLOUD_INSTANCE_ID_ANNOTATION: &str = "build.appstudio.redhat.com/cloud-instance-id";
/// Annotation: the address of the TaskRun's cloud VM.
pub const CLOUD_ADDRESS_ANNOTATION: &str = "build.appstudio.redhat.com/cloud-address";
/// Annotation (ours): which launch attempt the VM of this TaskRun is, so a launch
/// repeated after a crash sends the same client token and cannot start a second VM.
pub const CLOUD_LAUNCH_ATTEMPT_ANNOTATION: &str = "build.appstudio.redhat.com/cloud-launch-attempt";
/// The admin user of a cloud VM, who creates the build users (with sudo).
pub const CLOUD_ADMIN_USER: &str = "ec2-user";

/// Cloud instance tags, as the Go controller writes and reads them.
pub mod cloud_tags {
    /// `MultiPlatformManaged=true` on every instance we launch.
    pub const MANAGED: &str = "MultiPlatformManaged";
    /// `multi-platform-instance=<instance-tag>`: which platform pool it counts against.
    pub const INSTANCE: &str = "multi-platform-instance";
    /// `Name=multi-platform-builder-<taskrun>`.
    pub const NAME: &str = "Name";
    /// Prefix of the `Name` tag's value.
    pub const NAME_PREFIX: &str = "multi-platform-builder-";
    /// `taskRunID=<namespace>:<name>`.
    pub const TASKRUN_ID: &str = "taskRunID";
}

/// Label on every Secret the controller writes, and on the admin-key Secrets it reads.
pub const SECRET_LABEL: &str = "build.appstudio.redhat.com/multi-platform-secret";
/// Label that marks the host-config ConfigMap (any value).
pub const CONFIG_LABEL: &str = "build.appstudio.redhat.com/multi-platform-config";
/// Name of the ConfigMap that describes the host pools.
pub const HOST_CONFIG_NAME: &str = "host-config";
/// Name of the ConfigMap (controller namespace) in which `accept-new` remembers host
/// keys: `data` maps a host's pool name to its OpenSSH public key line.
pub const KNOWN_HOSTS_CONFIG_NAME: &str = "multi-platform-controller-known-hosts";
/// Lease for leader election, in the controller's namespace.
pub const LEASE_NAME: &str = "multi-platform-controller-leader";
/// Namespace of the controller when `POD_NAMESPACE` is not set.
pub const DEFAULT_CONTROLLER_NAMESPACE: &str = "multi-platform-controller";
/// Name of the TaskRun param that carries the requested platform.
pub const PLATFORM_PARAM: &str = "PLATFORM";
/// Prefix of the per-TaskRun SSH Secret; Tasks mount `multi-platform-ssh-$(context.taskRun.name)`.
pub const SECRET_PREFIX: &str = "multi-platform-ssh-";
/// Host value written for local platforms.
pub const LOCALHOST: &str = "localhost";

/// Keys of the per-TaskRun Secret (contract §2.3).
pub mod secret_keys {
    /// Private key in OpenSSH format.
    pub const ID_RSA: &str = "id_rsa";
    /// `<user>@<address>`, or `localhost`.
    pub const HOST: &str = "host";
    /// The user's home directory on the host.
    pub const USER_DIR: &str = "user-dir";
    /// Human-readable failure message; the only key of an error Secret.
    pub const ERROR: &str = "error";
    /// Pinned `known_hosts` line for the host (additive key).
    pub const KNOWN_HOSTS: &str = "known_hosts";
    /// Key of the admin private key in an admin-key Secret.
    pub const ADMIN_KEY: &str = "id_rsa";
}

/// Name of the SSH Secret for a TaskRun.
pub fn secret_name(taskrun: &str) -> String {
    format!("{SECRET_PREFIX}{taskrun}")
}

/// A throwaway user name on a build host: `u-` and 28 lowercase hex characters.
///
/// The only way to build one is from a TaskRun identity or by validating a string,
/// so a value of this type is always safe to put on a remote command line.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName(String);

/// Length of the hex part of a [`UserName`].
const USER_HEX_LEN: usize = 28;

/// A string that is not of the form `u-` + 28 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid build user name {0:?}: expected `u-` followed by 28 lowercase hex characters")]
pub struct InvalidUserName(pub String);

impl UserName {
    /// The user for a TaskRun, computed as the Go controller does:
    /// `u-` + the first 28 hex characters of md5(`<name><namespace>\n`), so users it
    /// created are recognised (and cleaned) by this controller.
    pub fn for_taskrun(name: &str, namespace: &str) -> Self {
        let mut hasher = Md5::new();
        hasher.update(name.as_bytes());
        hasher.update(namespace.as_bytes());
        hasher.update(b"\n");
        let digest = hasher.finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        UserName(format!("u-{}", &hex[..USER_HEX_LEN]))
    }

    /// Validates a user name read from a host (e.g. by the reaper).
    pub fn parse(s: &str) -> Result<Self, InvalidUserName> {
        let ok = s.len() == 2 + USER_HEX_LEN
            && s.starts_with("u-")
            && s[2..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(UserName(s.to_owned()))
        } else {
            Err(InvalidUserName(s.to_owned()))
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The user's home directory, as written to the Secret's `user-dir`.
    pub fn home_dir(&self) -> String {
        format!("/home/{}", self.0)
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for UserName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn user_name_matches_the_go_controllers_shell_pipeline() {
        // `echo "buildah-remote-x7k2qdev-tenant" | md5sum | cut -b-28`
        // = 4506ed1faa17346fbd87bb80e48b (coreutils md5sum).
        let user = UserName::for_taskrun("buildah-remote-x7k2q", "dev-tenant");
        assert_eq!(user.as_str(), "u-4506ed1faa17346fbd87bb80e48b");
        assert_eq!(user.home_dir(), "/home/u-4506ed1faa17346fbd87bb80e48b");
    }

    #[test]
    fn parse_rejects_anything_but_the_exact_form() {
        for bad in [
            "",
            "u-",
            "root",
            "u-5C3E4BBD4C2D0D53EB08EBE1F3AE",
            "u-5c3e4bbd4c2d0d53eb08ebe1f3a",
            "u-5c3e4bbd4c2d0d53eb08ebe1f3aef",
            "u-5c3e4bbd4c2d0d53eb08ebe1f3a;",
            "x-5c3e4bbd4c2d0d53eb08ebe1f3ae",
            "u-5c3e4bbd4c2d0d53eb08ebe1f3aé",
        ] {
            assert!(UserName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(UserName::parse("u-5c3e4bbd4c2d0d53eb08ebe1f3ae").is_ok());
    }

    #[test]
    fn secret_name_is_prefix_and_taskrun() {
        assert_eq!(secret_name("tr-1"), "multi-platform-ssh-tr-1");
    }

    proptest! {
        #[test]
        fn computed_names_always_parse(name in ".{0,80}", ns in ".{0,80}") {
            let user = UserName::for_taskrun(&name, &ns);
            prop_assert_eq!(UserName::parse(user.as_str()), Ok(user.clone()));
        }
    }
}
