//! Carries out the core's work commands against Kubernetes and the build hosts, and
//! reports how each ended. It decides nothing beyond "which report is this": every
//! choice was made by the core and is in the order.

use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Secret;
use serde_json::json;
use tracing::{info, warn};

use super::targets::{AdminKeys, TargetError, target};
use crate::cloud::CloudClients;
use crate::cluster::io::{ClusterError, ClusterWriter};
use crate::metrics::Metrics;
use crate::remote::{
    self, FailureClass, HostTarget, KnownHosts, ProvisionRequest, RemoteError, SshPool,
};
use mpc_core::cluster::patches;
use mpc_core::cluster::secrets::{self, HostAccess, SecretOwner};
use mpc_core::config::{Host, HostKeyChecking, HostName};
use mpc_core::machine::{
    FailOrder, HostFailure, HostFailureKind, ProvisionOrder, ReleaseOrder, Report, TaskRunOrder,
    WaitOrder, Work,
};
use mpc_core::naming::{
    ASSIGNED_HOST_LABEL, LOCALHOST, TARGET_PLATFORM_LABEL, WAITING_FOR_PLATFORM_LABEL, secret_keys,
    secret_name,
};
use mpc_core::time::Timestamp;

/// What the executor needs to carry out commands.
#[derive(Clone)]
pub struct Executor {
    /// Kubernetes writes.
    pub writer: ClusterWriter,
    /// SSH connections to the hosts.
    pub ssh: SshPool,
    /// Admin keys from Secrets.
    pub admin_keys: AdminKeys,
    /// Remembered host keys (`accept-new`).
    pub known_hosts: Arc<dyn KnownHosts>,
    /// Metrics (host-level counters).
    pub metrics: Arc<Metrics>,
    /// EC2 clients of the cloud platforms.
    pub cloud: CloudClients,
    /// Host keys of cloud VMs, trusted on first contact for the VM's life (a VM is new
    /// to everyone; its key then goes into the build's Secret).
    pub vm_known_hosts: Arc<dyn KnownHosts>,
}

/// A Kubernetes failure as a report: a vanished TaskRun, or retry later.
pub(super) fn api_report(err: ClusterError) -> Report {
    match err {
        ClusterError::Gone(_) => Report::Gone,
        ClusterError::Api(e) => Report::ApiError(e.to_string()),
    }
}

/// Runs `$step`; on a Kubernetes failure returns its report.
macro_rules! step {
    ($step:expr) => {
        if let Err(err) = $step {
            return api_report(err);
        }
    };
}

/// The class of a host failure, which decides what happens to the host.
pub fn failure_kind(err: &RemoteError) -> HostFailureKind {
    match err.class() {
        FailureClass::Unavailable => HostFailureKind::Unreachable,
        FailureClass::HostKeyMismatch => HostFailureKind::HostKeyMismatch,
        FailureClass::Misconfigured => HostFailureKind::AdminAccess,
        FailureClass::OperationFailed => HostFailureKind::Command,
    }
}

pub(super) fn owner(order: &TaskRunOrder) -> SecretOwner {
    SecretOwner {
        namespace: order.key.namespace.clone(),
        name: order.key.name.clone(),
        uid: order.uid.clone(),
    }
}

fn names(hosts: &[HostName]) -> Vec<String> {
    hosts.iter().map(std::string::ToString::to_string).collect()
}

impl Executor {
    /// Carries out one piece of work and says how it ended.
    pub async fn execute(&self, work: Work) -> Report {
        match work {
            Work::Provision(o) => self.provision(&o).await,
            Work::Wait(o) => self.wait(&o).await,
            Work::ServeLocal(o) => self.serve_local(&o).await,
            Work::Fail(o) => self.fail(&o).await,
            Work::Release(o) => self.release(&o).await,
            Work::Launch(o) => self.launch(&o).await,
            Work::ProvisionVm(o) => self.provision_vm(&o).await,
            Work::ReleaseVm(o) => self.release_vm(&o).await,
        }
    }

    /// Finalizer and labels, the user on the host, then the access Secret.
    pub async fn provision(&self, order: &ProvisionOrder) -> Report {
        let key = &order.taskrun.key;
        let host = &order.host;
        let failed = names(&order.failed_hosts);
        step!(self.writer.add_finalizer(key).await);
        let marks = patches::mark_allocated(
            host.name.as_str(),
            &order.taskrun.platform,
            &failed,
            order.allocation_start,
            Timestamp::now(),
        );
        step!(self.writer.patch_marks(key, &marks).await);

        // A Secret for this user on this host means the work was done before (the
        // controller restarted or lost the report): keep it, the build may use it.
        let name = secret_name(&key.name);
        let login = format!("{}@{}", order.user, host.address);
        match self.writer.get_secret(&key.namespace, &name).await {
            Ok(Some(existing)) if grants(&existing, &login) => return Report::AlreadyProvisioned,
            Ok(_) => {}
            Err(err) => return api_report(err),
        }

        let target = match self.target(host, order.host_key_checking) {
            Ok(t) => t,
            Err(e) => {
                return self
                    .provision_failed(order, HostFailureKind::AdminAccess, e.to_string())
                    .await;
            }
        };
        let pair = match remote::generate() {
            Ok(pair) => pair,
            Err(e) => {
                return self
                    .provision_failed(order, HostFailureKind::Command, e.to_string())
                    .await;
            }
        };
        let expires = SystemTime::now() + order.key_lifetime;
        let request = match ProvisionRequest::new(
            order.user.clone(),
            pair.public_key(),
            expires,
            &host.sudo_commands,
        ) {
            Ok(r) => r.with_limits(host.limits),
            Err(e) => {
                return self
                    .provision_failed(order, HostFailureKind::Command, e.to_string())
                    .await;
            }
        };
        let provisioned = match self.ssh.provision(&target, &request).await {
            Ok(p) => p,
            Err(err) => {
                let mut kind = failure_kind(&err);
                if kind == HostFailureKind::Command {
                    // Remove what the failed attempt may have created; if that fails too
                    // the core keeps the host out of service until it is reaped.
                    if let Err(cleanup) = self.ssh.cleanup(&target, &order.user).await {
                        warn!(host = %host.name, user = %order.user, error = %cleanup,
                              "could not remove the user a failed provisioning left behind");
                        kind = HostFailureKind::CommandWithLeftover;
                    }
                }
                return self.provision_failed(order, kind, err.to_string()).await;
            }
        };
        let known_hosts = known_hosts_entry(&host.address, host.port, &provisioned.host_key);
        let secret = secrets::access_secret(
            &owner(&order.taskrun),
            &HostAccess {
                user: order.user.as_str(),
                address: &host.address,
                private_key: pair.private_key_openssh(),
                known_hosts: Some(&known_hosts),
                user_dir: None,
            },
        );
        step!(self.writer.put_secret(&secret).await);
        info!(
            taskrun = %key.name,
            namespace = %key.namespace,
            host = %host.name,
            user = %order.user,
            key_fingerprint = %pair.fingerprint(),
            "allocated: build user provisioned and Secret written"
        );
        Report::Provisioned
    }

    async fn provision_failed(
        &self,
        order: &ProvisionOrder,
        kind: HostFailureKind,
        message: String,
    ) -> Report {
        let key = &order.taskrun.key;
        warn!(taskrun = %key.name, namespace = %key.namespace, host = %order.host.name,
              ?kind, error = %message, "provisioning failed");
        // Record the failure at once, so a restart before the next step does not
        // resume on this host. Best effort: the next command writes it again.
        let failed = names(&order.failed_hosts);
        let patch = patches::mark_host_failed(&failed, order.host.name.as_str());
        if let Err(e) = self.writer.patch_marks(key, &patch).await {
            warn!(taskrun = %key.name, error = %e, "could not record the failed host yet");
        }
        Report::ProvisionFailed(HostFailure { kind, message })
    }

    /// The waiting label.
    pub async fn wait(&self, order: &WaitOrder) -> Report {
        let patch = patches::mark_waiting(
            &order.taskrun.platform,
            &names(&order.failed_hosts),
            order.allocation_start,
            Timestamp::now(),
        );
        step!(self.writer.patch_marks(&order.taskrun.key, &patch).await);
        Report::Done
    }

    /// Finalizer, `assigned-host: localhost`, and the `host: localhost` Secret.
    pub async fn serve_local(&self, order: &TaskRunOrder) -> Report {
        let key = &order.key;
        step!(self.writer.add_finalizer(key).await);
        let marks = json!({"metadata": {"labels": {
            ASSIGNED_HOST_LABEL: LOCALHOST,
            TARGET_PLATFORM_LABEL: order.platform.label_value(),
            WAITING_FOR_PLATFORM_LABEL: null,
        }}});
        step!(self.writer.patch_marks(key, &marks).await);
        step!(
            self.writer
                .create_secret_if_absent(&secrets::local_secret(&owner(order)))
                .await
        );
        info!(taskrun = %key.name, namespace = %key.namespace, "local platform: Secret written");
        Report::Done
    }

    /// Finalizer and the error Secret.
    pub async fn fail(&self, order: &FailOrder) -> Report {
        let key = &order.key;
        step!(self.writer.add_finalizer(key).await);
        let marks = patches::mark_failed(&names(&order.failed_hosts));
        step!(self.writer.patch_marks(key, &marks).await);
        let owner = SecretOwner {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            uid: order.uid.clone(),
        };
        let secret = secrets::error_secret(&owner, &order.message, &order.platform);
        step!(self.writer.put_secret(&secret).await);
        info!(taskrun = %key.name, namespace = %key.namespace, error = %order.message,
              "error Secret written");
        Report::Done
    }

    /// The SSH target of `host` with this executor's admin keys and known hosts.
    fn target(&self, host: &Host, checking: HostKeyChecking) -> Result<HostTarget, TargetError> {
        target(host, checking, &self.admin_keys, &self.known_hosts)
    }
    /// Cleans the host, deletes the Secret, drops our labels and finalizer.
    pub async fn release(&self, order: &ReleaseOrder) -> Report {
        let key = &order.key;
        if let Some(host) = &order.host {
            let target = match self.target(host, order.host_key_checking) {
                Ok(t) => t,
                Err(e) => {
                    self.metrics.host_cleanup_failed(host.name.as_str());
                    return Report::CleanupFailed(HostFailure {
                        kind: HostFailureKind::AdminAccess,
                        message: e.to_string(),
                    });
                }
            };
            if let Err(err) = self.ssh.cleanup(&target, &order.user).await {
                warn!(taskrun = %key.name, namespace = %key.namespace, host = %host.name,
                      user = %order.user, error = %err, "cleaning the host failed");
                self.metrics.host_cleanup_failed(host.name.as_str());
                return Report::CleanupFailed(HostFailure {
                    kind: failure_kind(&err),
                    message: err.to_string(),
                });
            }
        }
        // The issued key's fingerprint, for the release log line only: best effort.
        let name = secret_name(&key.name);
        let fingerprint = match self.writer.get_secret(&key.namespace, &name).await {
            Ok(secret) => secret.as_ref().and_then(issued_key_fingerprint),
            Err(_) => None,
        };
        step!(self.writer.delete_secret(&key.namespace, &name).await);
        match self
            .writer
            .patch_marks(key, &patches::clear_allocation())
            .await
        {
            Ok(()) | Err(ClusterError::Gone(_)) => {}
            Err(err) => return api_report(err),
        }
        step!(self.writer.remove_finalizer(key).await);
        info!(
            taskrun = %key.name,
            namespace = %key.namespace,
            host = %order.host.as_ref().map_or("-", |h| h.name.as_str()),
            user = %order.user,
            key_fingerprint = %fingerprint.as_deref().unwrap_or("-"),
            "released"
        );
        Report::Released
    }
}

/// The SHA256 fingerprint of the build key a TaskRun's Secret holds (none for local
/// and error Secrets).
fn issued_key_fingerprint(secret: &Secret) -> Option<String> {
    let key = secret.data.as_ref()?.get(secret_keys::ID_RSA)?;
    remote::AdminKey::parse(&key.0)
        .ok()
        .map(|k| k.fingerprint())
}

/// Whether `secret` already gives the build its login `user@address`.
pub(super) fn grants(secret: &Secret, login: &str) -> bool {
    let Some(data) = &secret.data else {
        return false;
    };
    data.get(secret_keys::HOST).map(|v| v.0.as_slice()) == Some(login.as_bytes())
        && data.contains_key(secret_keys::ID_RSA)
}

/// The `known_hosts` line for the Secret: `[address]:port` form for a port other than 22.
pub(super) fn known_hosts_entry(address: &str, port: u16, key: &russh::keys::PublicKey) -> String {
    if port == 22 {
        remote::known_hosts_line(address, key)
    } else {
        remote::known_hosts_line(&format!("[{address}]:{port}"), key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    #[test]
    fn the_release_log_names_the_issued_key_by_fingerprint() {
        let pair = remote::generate().unwrap();
        let secret = Secret {
            data: Some(BTreeMap::from([(
                "id_rsa".to_owned(),
                ByteString(pair.private_key_openssh().as_bytes().to_vec()),
            )])),
            ..Secret::default()
        };
        assert_eq!(
            issued_key_fingerprint(&secret).as_deref(),
            Some(pair.fingerprint())
        );
        let local = Secret {
            data: Some(BTreeMap::from([(
                "host".to_owned(),
                ByteString(b"localhost".to_vec()),
            )])),
            ..Secret::default()
        };
        assert_eq!(issued_key_fingerprint(&local), None);
    }

    #[test]
    fn an_existing_secret_counts_only_for_the_same_login_with_a_key() {
        let mut data = BTreeMap::new();
        data.insert("host".to_owned(), ByteString(b"u-1@10.0.0.1".to_vec()));
        let mut s = Secret {
            data: Some(data.clone()),
            ..Secret::default()
        };
        assert!(!grants(&s, "u-1@10.0.0.1"), "no key");
        data.insert("id_rsa".to_owned(), ByteString(b"k".to_vec()));
        s.data = Some(data);
        assert!(grants(&s, "u-1@10.0.0.1"));
        assert!(!grants(&s, "u-1@10.0.0.2"), "another host");
        let error = Secret {
            data: Some(BTreeMap::from([(
                "error".to_owned(),
                ByteString(b"x".to_vec()),
            )])),
            ..Secret::default()
        };
        assert!(!grants(&error, "u-1@10.0.0.1"));
    }
}
