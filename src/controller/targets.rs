//! From a configured host to an SSH target: its admin key (from a Secret the
//! controller watches) and how its host key is checked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::remote::{AdminKey, HostKeyPolicy, HostTarget, KnownHosts};
use mpc_core::config::{Host, HostKeyChecking};
use mpc_core::naming::secret_keys;

/// Why a host cannot be reached with the configuration as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The admin-key Secret is missing.
    #[error(
        "the admin-key Secret {secret:?} of host {host} does not exist in namespace \
         {namespace} (or lacks the label build.appstudio.redhat.com/multi-platform-secret); \
         create it with the admin's private key under `id_rsa`"
    )]
    MissingSecret {
        /// The host.
        host: String,
        /// The Secret name from `host.<name>.secret`.
        secret: String,
        /// The controller namespace.
        namespace: String,
    },
    /// The Secret has no usable key.
    #[error("the admin-key Secret {secret:?} of host {host} {problem}")]
    BadKey {
        /// The host.
        host: String,
        /// The Secret name.
        secret: String,
        /// What is wrong (no `id_rsa`, or not a private key); never key material.
        problem: String,
    },
    /// `strict` checking without a pinned key.
    #[error(
        "host-key-checking is strict, but host.{host}.host-key is not set; pin the host's key \
         (ssh-keyscan output) or use accept-new"
    )]
    NoPinnedKey {
        /// The host.
        host: String,
    },
}

/// Admin keys from the Secrets the controller watches, parsed once per Secret version.
#[derive(Clone)]
pub struct AdminKeys {
    store: Store<Secret>,
    namespace: String,
    parsed: Arc<Mutex<HashMap<String, (String, AdminKey)>>>,
}

impl AdminKeys {
    /// Admin keys from `store` (the labelled Secrets of `namespace`).
    pub fn new(store: Store<Secret>, namespace: &str) -> Self {
        AdminKeys {
            store,
            namespace: namespace.to_owned(),
            parsed: Arc::default(),
        }
    }

    /// The admin key of `host`.
    pub fn key_for(&self, host: &Host) -> Result<AdminKey, TargetError> {
        self.key_in(&host.secret, host.name.as_str())
    }

    /// The key under `id_rsa` in Secret `name`, the admin key of `owner` (a host, or a
    /// cloud platform's VMs).
    pub fn key_in(&self, name: &str, owner: &str) -> Result<AdminKey, TargetError> {
        let secret = self
            .store
            .get(&ObjectRef::new(name).within(&self.namespace))
            .ok_or_else(|| TargetError::MissingSecret {
                host: owner.to_owned(),
                secret: name.to_owned(),
                namespace: self.namespace.clone(),
            })?;
        let version = secret.resource_version().unwrap_or_default();
        let mut parsed = self
            .parsed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((v, key)) = parsed.get(name)
            && *v == version
        {
            return Ok(key.clone());
        }
        let bad = |problem: String| TargetError::BadKey {
            host: owner.to_owned(),
            secret: name.to_owned(),
            problem,
        };
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(secret_keys::ADMIN_KEY))
            .ok_or_else(|| bad(format!("has no `{}` key", secret_keys::ADMIN_KEY)))?;
        let key = AdminKey::parse(&bytes.0).map_err(|e| {
            bad(format!(
                "does not hold a usable private key under `id_rsa`: {e}"
            ))
        })?;
        parsed.insert(name.to_owned(), (version, key.clone()));
        Ok(key)
    }
}

/// Builds the SSH target of a configured host.
pub fn target(
    host: &Host,
    checking: HostKeyChecking,
    admin_keys: &AdminKeys,
    known_hosts: &Arc<dyn KnownHosts>,
) -> Result<HostTarget, TargetError> {
    let host_key_policy = match (&host.host_key, checking) {
        // A pool instance is new to everyone: trusted on first contact, then remembered.
        (None, _) if host.cloud => HostKeyPolicy::AcceptNew(Arc::clone(known_hosts)),
        // A pinned key always wins: any other key is refused.
        (Some(pinned), _) => HostKeyPolicy::Strict(pinned.public_key().clone()),
        (None, HostKeyChecking::Strict) => {
            return Err(TargetError::NoPinnedKey {
                host: host.name.to_string(),
            });
        }
        (None, HostKeyChecking::AcceptNew) => HostKeyPolicy::AcceptNew(Arc::clone(known_hosts)),
        (None, HostKeyChecking::Off) => HostKeyPolicy::Off,
    };
    Ok(HostTarget {
        name: host.name.to_string(),
        address: host.address.clone(),
        port: host.port,
        admin_user: host.user.clone(),
        admin_key: admin_keys.key_for(host)?,
        host_key_policy,
    })
}
