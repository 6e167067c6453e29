//! The executor's cloud work: launch a TaskRun's instance, prepare its VM, terminate it
//! (contract §6). Each step is idempotent, so the core can order it again after a
//! failure or a restart.

use std::time::{Duration, SystemTime};

use mpc_core::cloud::{InstanceId, LaunchSpec};
use mpc_core::cluster::patches;
use mpc_core::cluster::secrets::{self, HostAccess};
use mpc_core::host_work::handover::BuilderHandover;
use mpc_core::machine::{
    HostFailure, HostFailureKind, LaunchFailure, LaunchOrder, Report, VmOrder, VmReleaseOrder,
};
use mpc_core::naming::{CLOUD_ADMIN_USER, secret_name};
use mpc_core::time::{Timestamp, elapsed};
use mpc_ec2::{DedicatedHost, LaunchRequest, TaskRunRef};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::executor::{Executor, api_report, failure_kind, grants, known_hosts_entry, owner};
use crate::cluster::io::ClusterError;
use crate::remote::{self, HandoverFailure, HostKeyPolicy, HostTarget, ProvisionRequest};

/// First and longest wait between looks at a booting instance (its address, its sshd);
/// `check-interval` caps the longest.
const BOOT_POLL: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(5));

/// Runs `$step`; on a Kubernetes failure returns its report.
macro_rules! step {
    ($step:expr) => {
        if let Err(err) = $step {
            return api_report(err);
        }
    };
}

impl Executor {
    /// Records the VM slot, launches the instance (client token: the same attempt never
    /// starts a second one), records the instance.
    pub async fn launch(&self, order: &LaunchOrder) -> Report {
        let key = &order.taskrun.key;
        step!(self.writer.add_finalizer(key).await);
        let marks = patches::mark_launching(
            &order.taskrun.platform,
            order.attempt,
            order.allocation_start,
            Timestamp::now(),
        );
        step!(self.writer.patch_marks(key, &marks).await);
        let client = match self.cloud.client(&order.spec.target).await {
            Ok(client) => client,
            Err(e) => {
                return Report::LaunchFailed(LaunchFailure {
                    code: "CredentialsSecret".to_owned(),
                    message: e.to_string(),
                    retryable: false,
                    ambiguous: false,
                });
            }
        };
        let launched = match client.launch(&launch_request(key, &order.spec)).await {
            Ok(id) => id,
            Err(e) => {
                warn!(taskrun = %key.name, namespace = %key.namespace,
                      platform = %order.taskrun.platform, code = %e.label(), error = %e,
                      "launching an instance failed");
                return Report::LaunchFailed(launch_failure(&e));
            }
        };
        let Ok(instance) = InstanceId::parse(launched.as_str()) else {
            return Report::LaunchFailed(LaunchFailure {
                code: "InvalidInstanceId".to_owned(),
                message: format!("EC2 answered with {launched:?}, which is not an instance id"),
                retryable: false,
                ambiguous: false,
            });
        };
        step!(
            self.writer
                .patch_marks(key, &patches::mark_launched(&instance))
                .await
        );
        info!(taskrun = %key.name, namespace = %key.namespace, %instance,
              platform = %order.taskrun.platform, attempt = order.attempt, "instance launched");
        Report::Launched(instance)
    }

    /// Waits for the instance's address and sshd, creates the build user through the
    /// VM's admin (`ec2-user`, sudo), writes the Secret; gives up at the deadline.
    pub async fn provision_vm(&self, order: &VmOrder) -> Report {
        let key = &order.taskrun.key;
        let failed = |kind, message: String| {
            warn!(taskrun = %key.name, namespace = %key.namespace, instance = %order.instance,
                  error = %message, "preparing the VM failed");
            Report::ProvisionFailed(HostFailure { kind, message })
        };
        let deadline = Instant::now() + elapsed(Timestamp::now(), order.deadline);
        let timeout = order.access.allocation_timeout.as_secs();
        let poll_max = order
            .access
            .check_interval
            .min(BOOT_POLL.1)
            .max(BOOT_POLL.0);

        let client = match self.cloud.client(&order.target).await {
            Ok(c) => c,
            Err(e) => return failed(HostFailureKind::AdminAccess, e.to_string()),
        };
        let id = mpc_ec2::InstanceId::new(order.instance.as_str());
        // 1. An address, while the instance boots.
        let mut delay = BOOT_POLL.0;
        let address = loop {
            match client
                .describe(&id, order.access.strict_public_address)
                .await
            {
                Ok(Some(info))
                    if !matches!(
                        info.state,
                        mpc_ec2::InstanceState::Pending | mpc_ec2::InstanceState::Running
                    ) =>
                {
                    return failed(
                        HostFailureKind::Unreachable,
                        format!(
                            "instance {} is {} (it was terminated or stopped before it could \
                             be used)",
                            order.instance, info.state
                        ),
                    );
                }
                Ok(Some(info)) if info.state == mpc_ec2::InstanceState::Running => {
                    if let Some(address) = info.address {
                        break address;
                    }
                }
                // Unknown right after the launch (EC2 is eventually consistent), pending.
                Ok(_) => {}
                Err(e) if e.retryable() => {}
                Err(e) => return failed(HostFailureKind::AdminAccess, e.to_string()),
            }
            if Instant::now() + delay > deadline {
                let what = if order.access.strict_public_address {
                    "a public address (strict-public-address is set)"
                } else {
                    "an address"
                };
                return failed(
                    HostFailureKind::Unreachable,
                    format!(
                        "instance {} did not get {what} within the allocation timeout of \
                         {timeout}s",
                        order.instance
                    ),
                );
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(poll_max);
        };
        step!(
            self.writer
                .patch_marks(key, &patches::mark_cloud_address(&address))
                .await
        );
        // 2. Done before (a restart, a lost report)? Keep the Secret the build may use.
        let name = secret_name(&key.name);
        let login_user = order
            .handover
            .as_ref()
            .map_or(order.user.as_str(), |h| h.builder_user);
        let login = format!("{login_user}@{address}");
        match self.writer.get_secret(&key.namespace, &name).await {
            Ok(Some(existing)) if grants(&existing, &login) => return Report::AlreadyProvisioned,
            Ok(_) => {}
            Err(err) => return api_report(err),
        }
        // 3. sshd answers the VM's admin; its host key is trusted on first use and
        //    pinned for the build in the Secret.
        let admin_key = match self
            .admin_keys
            .key_in(&order.access.ssh_secret, order.instance.as_str())
        {
            Ok(k) => k,
            Err(e) => return failed(HostFailureKind::AdminAccess, e.to_string()),
        };
        let target = HostTarget {
            name: order.instance.to_string(),
            address: address.clone(),
            port: 22,
            admin_user: order
                .handover
                .as_ref()
                .map_or(CLOUD_ADMIN_USER, |h| h.admin_user)
                .to_owned(),
            admin_key,
            host_key_policy: HostKeyPolicy::AcceptNew(std::sync::Arc::clone(&self.vm_known_hosts)),
        };
        if let Some(handover) = &order.handover {
            return self
                .hand_over(order, handover, &target, deadline, poll_max)
                .await;
        }
        let mut delay = BOOT_POLL.0;
        loop {
            match self.ssh.probe(&target).await {
                Ok(_) => break,
                Err(e) if failure_kind(&e) == HostFailureKind::Unreachable => {
                    if Instant::now() + delay > deadline {
                        return failed(
                            HostFailureKind::Unreachable,
                            format!(
                                "instance {} at {address} did not answer SSH within the \
                                 allocation timeout of {timeout}s: {e}",
                                order.instance
                            ),
                        );
                    }
                }
                Err(e) => return failed(failure_kind(&e), e.to_string()),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(poll_max);
        }
        // 4. The build user, exactly as on a static host.
        let pair = match remote::generate() {
            Ok(pair) => pair,
            Err(e) => return failed(HostFailureKind::Command, e.to_string()),
        };
        let request = match ProvisionRequest::new(
            order.user.clone(),
            pair.public_key(),
            SystemTime::now() + order.key_lifetime,
            &order.access.sudo_commands,
        ) {
            Ok(r) => r.with_limits(order.access.limits),
            Err(e) => return failed(HostFailureKind::Command, e.to_string()),
        };
        let provisioned = match self.ssh.provision(&target, &request).await {
            Ok(p) => p,
            Err(e) => return failed(failure_kind(&e), e.to_string()),
        };
        let known_hosts = known_hosts_entry(&address, 22, &provisioned.host_key);
        let secret = secrets::access_secret(
            &owner(&order.taskrun),
            &HostAccess {
                user: order.user.as_str(),
                address: &address,
                private_key: pair.private_key_openssh(),
                known_hosts: Some(&known_hosts),
                user_dir: None,
            },
        );
        step!(self.writer.put_secret(&secret).await);
        info!(taskrun = %key.name, namespace = %key.namespace, instance = %order.instance,
              %address, user = %order.user, key_fingerprint = %pair.fingerprint(),
              "allocated: VM prepared and Secret written");
        Report::Provisioned
    }

    /// Windows and macOS: waits until the VM's admin can read the builder key (sshd up,
    /// user data done), writes the Secret for `konflux-builder`, then deletes the file so
    /// the Secret is the key's only copy off the VM's builder account.
    async fn hand_over(
        &self,
        order: &VmOrder,
        handover: &BuilderHandover,
        target: &HostTarget,
        deadline: Instant,
        poll_max: Duration,
    ) -> Report {
        let key = &order.taskrun.key;
        let address = target.address.as_str();
        let timeout = order.access.allocation_timeout.as_secs();
        let mut delay = BOOT_POLL.0;
        let taken = loop {
            match self.ssh.take_builder_key(target, handover).await {
                Ok(taken) => break taken,
                Err(e) if e.may_pass() && Instant::now() + delay <= deadline => {
                    debug!(taskrun = %key.name, instance = %order.instance, error = %e,
                           "builder key not ready yet");
                }
                Err(e) => {
                    let (kind, within) = match &e {
                        HandoverFailure::Remote(remote) => (failure_kind(remote), e.may_pass()),
                        HandoverFailure::Key { source, .. } => {
                            (HostFailureKind::Command, source.may_appear())
                        }
                    };
                    let when = if within {
                        format!(" within the allocation timeout of {timeout}s")
                    } else {
                        String::new()
                    };
                    let message = format!(
                        "the builder account of instance {} at {address} could not be handed \
                         over{when}: {e}",
                        order.instance
                    );
                    warn!(taskrun = %key.name, namespace = %key.namespace,
                          instance = %order.instance, error = %message, "handing the VM over failed");
                    return Report::ProvisionFailed(HostFailure { kind, message });
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(poll_max);
        };
        let known_hosts = known_hosts_entry(address, 22, &taken.host_key);
        let secret = secrets::access_secret(
            &owner(&order.taskrun),
            &HostAccess {
                user: handover.builder_user,
                address,
                private_key: taken.private_key.as_str(),
                known_hosts: Some(&known_hosts),
                user_dir: Some(handover.user_dir),
            },
        );
        step!(self.writer.put_secret(&secret).await);
        // Not fatal: the VM serves this TaskRun alone and is terminated after it; the
        // failure is logged by `delete_file`.
        let _ = taken.delete_file().await;
        info!(taskrun = %key.name, namespace = %key.namespace, instance = %order.instance,
              %address, user = handover.builder_user, os = ?handover.os,
              "allocated: VM handed over and Secret written");
        Report::Provisioned
    }

    /// Terminates the instance (done once EC2 accepted the request, or knows no such
    /// instance), deletes the Secret, drops our marks and the finalizer.
    pub async fn release_vm(&self, order: &VmReleaseOrder) -> Report {
        let key = &order.key;
        if let Some(instance) = &order.instance {
            let cleanup_failed = |message: String| {
                warn!(taskrun = %key.name, namespace = %key.namespace, %instance,
                      error = %message, "terminating the instance failed");
                Report::CleanupFailed(HostFailure {
                    kind: HostFailureKind::Unreachable,
                    message,
                })
            };
            let Some(target) = &order.target else {
                return cleanup_failed(format!(
                    "the settings of the platform of instance {instance} are unknown (it left \
                     host-config before this controller saw it), so it cannot be terminated; \
                     terminate it in AWS, then remove the finalizer"
                ));
            };
            let client = match self.cloud.client(target).await {
                Ok(c) => c,
                Err(e) => return cleanup_failed(e.to_string()),
            };
            match client
                .terminate(&[mpc_ec2::InstanceId::new(instance.as_str())])
                .await
            {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return cleanup_failed(e.to_string()),
            }
            self.ssh.disconnect(instance.as_str());
        }
        let name = secret_name(&key.name);
        step!(self.writer.delete_secret(&key.namespace, &name).await);
        match self.writer.patch_marks(key, &patches::clear_cloud()).await {
            Ok(()) | Err(ClusterError::Gone(_)) => {}
            Err(err) => return api_report(err),
        }
        step!(self.writer.remove_finalizer(key).await);
        info!(taskrun = %key.name, namespace = %key.namespace,
              instance = %order.instance.as_ref().map_or("-", InstanceId::as_str),
              "released: instance terminated");
        Report::Released
    }
}

/// The EC2 request of a launch spec.
/// What the core needs to know of a refused or failed RunInstances.
pub(super) fn launch_failure(e: &mpc_ec2::Ec2Error) -> LaunchFailure {
    LaunchFailure {
        code: e.label(),
        message: format!("{}; {}", e.message(), e.advice()),
        retryable: e.retryable(),
        // No answer, or a server error: an instance may have started.
        ambiguous: matches!(
            e.kind(),
            mpc_ec2::ErrorKind::Server | mpc_ec2::ErrorKind::Transport
        ),
    }
}

pub(super) fn launch_request(
    key: &mpc_core::allocation::TaskRunKey,
    spec: &LaunchSpec,
) -> LaunchRequest {
    let ours = [
        mpc_ec2::MANAGED_TAG,
        mpc_ec2::INSTANCE_TAG,
        mpc_ec2::NAME_TAG,
        mpc_ec2::TASK_RUN_TAG,
    ];
    LaunchRequest {
        image_id: spec.ami.clone(),
        instance_type: spec.target.instance_type.clone(),
        key_name: spec.key_name.clone(),
        security_group_names: spec.security_groups.clone(),
        security_group_ids: spec.security_group_ids.clone(),
        subnet_id: spec.subnet_id.clone(),
        instance_profile_name: spec.instance_profile_name.clone(),
        instance_profile_arn: spec.instance_profile_arn.clone(),
        user_data: spec.user_data.clone(),
        disk_gb: i32::try_from(spec.disk_gb).unwrap_or(i32::MAX),
        iops: spec.iops.and_then(|v| i32::try_from(v).ok()),
        throughput: spec.throughput.and_then(|v| i32::try_from(v).ok()),
        spot_max_price: None,
        dedicated_host: spec.dedicated_host.as_ref().map(|d| DedicatedHost {
            tenancy: d.tenancy.clone(),
            host_resource_group_arn: d.host_resource_group_arn.clone(),
            license_configuration_arn: d.license_configuration_arn.clone(),
        }),
        instance_tag: spec.target.instance_tag.clone(),
        task_run: TaskRunRef {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
        },
        // mpc-ec2 writes the four tags of ours itself, in the Go controller's order.
        additional_tags: spec
            .tags
            .iter()
            .filter(|(k, _)| !ours.contains(&k.as_str()))
            .cloned()
            .collect(),
        client_token: spec.client_token.clone(),
    }
}
