//! Which host to talk to, as whom, and how to check it is the right one.

use std::sync::Arc;

use crate::remote::host_key::HostKeyPolicy;
use crate::remote::keys::{AdminKey, fingerprint};

/// A build host as the controller connects to it (from `host.<name>.*` and the admin
/// key Secret). Cheap to clone.
#[derive(Clone, Debug)]
pub struct HostTarget {
    /// The host's name in the pool (`host.<name>.*`); keys the connection pool and the
    /// remembered host keys.
    pub name: String,
    /// IP literal or DNS name.
    pub address: String,
    /// SSH port (`host.<name>.port`, default 22).
    pub port: u16,
    /// The admin user: root, or a user with passwordless sudo.
    pub admin_user: String,
    /// The admin private key.
    pub admin_key: AdminKey,
    /// How the host's key is checked.
    pub host_key_policy: HostKeyPolicy,
}

impl HostTarget {
    /// `address:port`, with brackets around IPv6 literals.
    pub fn endpoint(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }

    /// What a pooled connection was made for; a connection is reused only while the
    /// target still has the same identity (an edited ConfigMap or Secret reconnects).
    pub(crate) fn identity(&self) -> Identity {
        Identity {
            address: self.address.clone(),
            port: self.port,
            admin_user: self.admin_user.clone(),
            admin_key: self.admin_key.fingerprint(),
            policy: match &self.host_key_policy {
                HostKeyPolicy::Strict(key) => PolicyIdentity::Strict(fingerprint(key)),
                HostKeyPolicy::AcceptNew(store) => {
                    PolicyIdentity::AcceptNew(Arc::as_ptr(store).cast::<()>() as usize)
                }
                HostKeyPolicy::Off => PolicyIdentity::Off,
            },
        }
    }
}

/// See [`HostTarget::identity`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    address: String,
    port: u16,
    admin_user: String,
    admin_key: String,
    policy: PolicyIdentity,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PolicyIdentity {
    Strict(String),
    AcceptNew(usize),
    Off,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::host_key::MemoryKnownHosts;
    use crate::remote::keys::generate;

    fn target() -> HostTarget {
        let admin = generate().unwrap();
        HostTarget {
            name: "arm-1".into(),
            address: "192.0.2.7".into(),
            port: 22,
            admin_user: "root".into(),
            admin_key: AdminKey::parse(admin.private_key_openssh().as_bytes()).unwrap(),
            host_key_policy: HostKeyPolicy::Off,
        }
    }

    #[test]
    fn endpoint_brackets_ipv6() {
        let mut t = target();
        assert_eq!(t.endpoint(), "192.0.2.7:22");
        t.address = "2001:db8::7".into();
        t.port = 2222;
        assert_eq!(t.endpoint(), "[2001:db8::7]:2222");
    }

    #[test]
    fn identity_changes_with_anything_that_affects_the_connection() {
        let base = target();
        assert_eq!(base.identity(), base.clone().identity());
        let store: Arc<dyn crate::remote::host_key::KnownHosts> = Arc::new(MemoryKnownHosts::new());
        let mut changed = Vec::new();
        for edit in 0..5 {
            let mut t = base.clone();
            match edit {
                0 => t.address = "192.0.2.8".into(),
                1 => t.port = 2222,
                2 => t.admin_user = "builder".into(),
                3 => {
                    let other = generate().unwrap();
                    t.admin_key = AdminKey::parse(other.private_key_openssh().as_bytes()).unwrap();
                }
                _ => t.host_key_policy = HostKeyPolicy::AcceptNew(Arc::clone(&store)),
            }
            changed.push(t.identity());
        }
        for identity in changed {
            assert_ne!(identity, base.identity());
        }
        // The name is the pool key, not part of the identity.
        let mut renamed = base.clone();
        renamed.name = "arm-2".into();
        assert_eq!(renamed.identity(), base.identity());
    }
}
