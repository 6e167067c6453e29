//! Placement on cloud VMs, one per TaskRun (contract §6): the machine's side of the
//! [`InstanceQuota`], the launch → boot → ready → terminate lifecycle, and what cloud
//! listings mean (untracked instances, the leaked-VM sweep).
//!
//! [`InstanceQuota`]: crate::allocation::InstanceQuota

use std::collections::BTreeMap;

use super::Core;
use super::input::{HostFailure, LaunchFailure, Report};
use super::output::{
    Effect, EventReason, LaunchOrder, Metric, TerminationCause, VmOrder, VmReleaseOrder, Work,
};
use super::run::{Op, Phase, QueueReason};
use super::timers::backoff;
use crate::allocation::{QuotaDecision, TaskRunKey};
use crate::cloud::{CloudInstance, CloudPlatform, InstanceId, sweep};
use crate::config::{PoolConfig, Route};
use crate::host_work::handover::BuilderHandover;
use crate::naming::UserName;
use crate::platform::Platform;
use crate::time::{after, elapsed};

/// Launches per TaskRun before its launch failures become an error Secret.
pub const MAX_LAUNCH_ATTEMPTS: u32 = 3;

impl Core {
    /// Resolves the cloud platforms of a (new) configuration and gives the quota their
    /// limits. A platform that left keeps its last settings, so its VMs can still be
    /// terminated.
    pub(super) fn configure_clouds(&mut self, config: &PoolConfig) {
        self.cloud_errors.clear();
        let mut limits = BTreeMap::new();
        for platform in config.dynamic_platforms.keys() {
            let Route::Cloud(settings) = config.route(platform) else {
                continue;
            };
            match CloudPlatform::resolve(platform, settings, &config.settings) {
                Ok(cloud) => {
                    if cloud.pool.is_none() {
                        limits.insert(platform.clone(), cloud.max_instances);
                    }
                    self.clouds.insert(platform.clone(), cloud);
                }
                Err(err) => {
                    self.cloud_errors.insert(platform.clone(), err.to_string());
                }
            }
        }
        for granted in self.quota.configure(&limits) {
            self.grant_vm(&granted);
        }
        let clouds = self.clouds.clone();
        self.configure_fleets(&clouds);
        self.refresh_fleet_hosts();
    }

    /// The phase a TaskRun that holds a VM slot resumes in after a (re)start: its slot is
    /// counted before anything is granted.
    pub(super) fn resume_cloud(
        &mut self,
        key: &TaskRunKey,
        obs: &super::Observed,
        run: &mut super::run::Run,
    ) {
        let Some(platform) = run.valid_platform().cloned() else {
            // It could never have launched: only our marks are left to remove.
            run.phase = Phase::Releasing {
                host: None,
                since: self.now,
                abandoned: None,
            };
            return;
        };
        self.quota.restore(key, &platform);
        run.assigned_at = Some(self.now);
        run.phase = match (&obs.instance, run.finished) {
            (instance, true) => Phase::Terminating {
                platform,
                instance: instance.clone(),
                then_fail: None,
            },
            // Provisioning again is idempotent: an existing access Secret is kept.
            (Some(instance), false) => Phase::Booting {
                platform,
                instance: instance.clone(),
            },
            // The launch is repeated with the recorded attempt: the same client token
            // returns the instance a crashed launch may have started.
            (None, false) => Phase::Launching { platform },
        };
    }

    /// Asks the quota for a VM slot of `platform` for an unplaced TaskRun.
    pub(super) fn place_on_cloud(&mut self, key: &TaskRunKey, platform: Platform) {
        if let Some(err) = self.cloud_errors.get(&platform).cloned() {
            self.fail(key, err);
            return;
        }
        let Some(run) = self.runs.get(key) else {
            return;
        };
        match self.quota.request(key, &platform, run.created) {
            QuotaDecision::Granted => self.grant_vm(key),
            QuotaDecision::Queued { ahead } => self.queue(key, QueueReason::QuotaFull, Some(ahead)),
            QuotaDecision::Unknown => self.fail(
                key,
                format!(
                    "platform {platform} is not a dynamic platform of host-config any more; run \
                     the build again"
                ),
            ),
        }
    }

    /// A TaskRun got a VM slot: launch its instance.
    pub(super) fn grant_vm(&mut self, key: &TaskRunKey) {
        let now = self.now;
        let Some(run) = self.runs.get_mut(key) else {
            // Cannot happen (the quota only knows tracked TaskRuns); never leak the slot.
            for next in self.quota.release(key) {
                self.grant_vm(&next);
            }
            return;
        };
        let Some(platform) = run.valid_platform().cloned() else {
            return;
        };
        let waited = run.queued_at.take();
        run.phase = Phase::Launching {
            platform: platform.clone(),
        };
        run.timer = None;
        run.assigned_at.get_or_insert(now);
        run.allocation_start
            .get_or_insert(crate::time::whole_second(now));
        if let Some(since) = waited {
            self.metric(Metric::WaitTime {
                platform: platform.clone(),
                took: elapsed(since, now),
            });
        }
        self.event(
            key,
            EventReason::Allocated,
            format!("allocated a {platform} VM: launching its instance"),
        );
        self.step(key);
    }

    /// The next step of a TaskRun in a cloud phase.
    pub(super) fn step_cloud(&mut self, key: &TaskRunKey, phase: Phase, finished: bool) {
        match phase {
            Phase::Launching { platform } => {
                if finished {
                    let instance = self.runs.get(key).and_then(|r| r.instance.clone());
                    self.terminate(key, platform, instance, None);
                } else {
                    self.issue_launch(key, &platform);
                }
            }
            Phase::Booting { platform, instance } => {
                if finished {
                    self.terminate(key, platform, Some(instance), None);
                } else {
                    self.issue_provision_vm(key, &platform, instance);
                }
            }
            Phase::VmReady { platform, instance } if finished => {
                self.terminate(key, platform, Some(instance), None);
            }
            Phase::Terminating {
                platform, instance, ..
            } => self.issue_release_vm(key, &platform, instance),
            _ => {}
        }
    }

    fn terminate(
        &mut self,
        key: &TaskRunKey,
        platform: Platform,
        instance: Option<InstanceId>,
        then_fail: Option<String>,
    ) {
        if let Some(run) = self.runs.get_mut(key) {
            run.phase = Phase::Terminating {
                platform,
                instance,
                then_fail,
            };
        }
        self.step(key);
    }

    /// How a piece of cloud work ended.
    pub(super) fn on_cloud_report(&mut self, key: &TaskRunKey, op: Op, report: Report) {
        let now = self.now;
        let Some(run) = self.runs.get_mut(key) else {
            return;
        };
        let phase = run.phase.clone();
        match (phase, op, report) {
            (_, _, Report::ApiError(_)) => {
                run.attempts += 1;
                let at = after(now, backoff(&self.settings, run.attempts));
                run.timer = Some(at);
                self.timers.insert(at, key.clone());
            }
            (phase, _, Report::Gone) => {
                // The TaskRun is gone, but its VM may run: terminate it all the same.
                run.gone = true;
                run.finished = true;
                if let Phase::Terminating { .. } = phase {
                    self.release_vm_slot(key, None);
                    return;
                }
                if let Some(platform) = cloud_platform(&phase) {
                    let instance = run.instance.clone();
                    self.terminate(key, platform, instance, None);
                    return;
                }
            }
            (Phase::Launching { platform }, Op::Launch, Report::Launched(instance)) => {
                run.attempts = 0;
                run.instance = Some(instance.clone());
                run.phase = Phase::Booting {
                    platform: platform.clone(),
                    instance: instance.clone(),
                };
                self.metric(Metric::Launch {
                    platform: platform.clone(),
                });
                self.event(
                    key,
                    EventReason::Launched,
                    format!("launched instance {instance} for platform {platform}"),
                );
            }
            (Phase::Launching { platform }, Op::Launch, Report::LaunchFailed(failure)) => {
                self.on_launch_failed(key, platform, failure);
            }
            (
                Phase::Booting { platform, instance },
                Op::ProvisionVm,
                report @ (Report::Provisioned | Report::AlreadyProvisioned),
            ) => {
                run.attempts = 0;
                run.phase = Phase::VmReady {
                    platform: platform.clone(),
                    instance: instance.clone(),
                };
                run.ready_at = Some(now);
                run.marked = true;
                if report == Report::Provisioned {
                    let allocating = run.assigned_at.map(|at| elapsed(at, now));
                    self.metric(Metric::ProvisioningSuccess {
                        platform: platform.clone(),
                    });
                    if let Some(took) = allocating {
                        self.metric(Metric::AllocationTime {
                            platform: platform.clone(),
                            took,
                        });
                    }
                    self.event(
                        key,
                        EventReason::Provisioned,
                        format!("build user ready on instance {instance} ({platform})"),
                    );
                }
            }
            (
                Phase::Booting { platform, instance },
                Op::ProvisionVm,
                Report::ProvisionFailed(HostFailure { message, .. }),
            ) => {
                run.attempts = 0;
                self.metric(Metric::ProvisioningFailure {
                    platform: platform.clone(),
                });
                self.event(
                    key,
                    EventReason::ProvisioningFailed,
                    format!("preparing instance {instance} failed: {message}"),
                );
                let then_fail = format!(
                    "the {platform} VM for this TaskRun (instance {instance}) could not be \
                     prepared: {message}. The instance is terminated; run the build again, and \
                     if it keeps failing a cluster admin must check the platform's settings in \
                     host-config (AMI, key pair, security group, subnet) and the ssh-secret"
                );
                self.terminate(key, platform, Some(instance), Some(then_fail));
                return;
            }
            (Phase::Terminating { .. }, Op::ReleaseVm, Report::Released) => {
                run.attempts = 0;
                self.release_vm_slot(key, Some(now));
                return;
            }
            (Phase::Terminating { instance, .. }, Op::ReleaseVm, Report::CleanupFailed(f)) => {
                run.attempts += 1;
                let at = after(now, backoff(&self.settings, run.attempts));
                run.timer = Some(at);
                self.timers.insert(at, key.clone());
                if let Some(platform) = run.valid_platform().cloned() {
                    self.metric(Metric::CleanupFailure { platform });
                }
                let what =
                    instance.map_or_else(|| "its marks".to_owned(), |i| format!("instance {i}"));
                self.event(
                    key,
                    EventReason::CleanupFailed,
                    format!(
                        "terminating {what} failed, will retry (the finalizer stays until it \
                         is gone): {}",
                        f.message
                    ),
                );
            }
            // A report of work for a phase the TaskRun has left: decide afresh.
            _ => {}
        }
        self.step(key);
    }

    fn on_launch_failed(&mut self, key: &TaskRunKey, platform: Platform, failure: LaunchFailure) {
        let now = self.now;
        let instance_type = self
            .clouds
            .get(&platform)
            .map(|c| c.target.instance_type.clone())
            .unwrap_or_default();
        self.metric(Metric::LaunchFailure {
            platform: platform.clone(),
            code: failure.code.clone(),
        });
        let Some(run) = self.runs.get_mut(key) else {
            return;
        };
        run.launch_tries += 1;
        let tries = run.launch_tries;
        let again = failure.retryable && tries < MAX_LAUNCH_ATTEMPTS && !run.finished;
        let note = format!(
            "launching a {instance_type} instance for platform {platform} failed (try \
             {tries} of {MAX_LAUNCH_ATTEMPTS}): {}: {}",
            failure.code, failure.message
        );
        if again {
            if !failure.ambiguous {
                // EC2 refused: no instance exists for this token; the next try is a new
                // launch with a token of its own.
                run.launch_attempt += 1;
            }
            run.attempts += 1;
            let at = after(now, backoff(&self.settings, run.attempts));
            run.timer = Some(at);
            self.timers.insert(at, key.clone());
            self.event(
                key,
                EventReason::LaunchFailed,
                format!("{note}; trying again"),
            );
            self.step(key);
            return;
        }
        self.event(key, EventReason::LaunchFailed, note);
        let what_to_do = if failure.retryable {
            "AWS had no capacity or throttled the launches; run the build again later, or a \
             cluster admin may choose another instance type or region"
        } else {
            "a cluster admin must fix the platform's settings in host-config or the AWS \
             account (the error code says what AWS refused)"
        };
        let message = format!(
            "no {platform} VM could be launched: EC2 refused a {instance_type} instance \
             {tries} time(s), last with {}: {}. {what_to_do}",
            failure.code, failure.message
        );
        // Nothing was launched: free the slot now; the error Secret follows.
        self.terminate(key, platform, None, Some(message));
    }

    /// The VM is gone (or there never was one): the slot goes to the next waiter.
    fn release_vm_slot(&mut self, key: &TaskRunKey, now: Option<crate::time::Timestamp>) {
        let Some(run) = self.runs.get_mut(key) else {
            return;
        };
        let Phase::Terminating {
            platform,
            instance,
            then_fail,
        } = run.phase.clone()
        else {
            return;
        };
        run.marked = false;
        run.wrote_marks = false;
        run.instance = None;
        let ran = run.ready_at.take().and(run.allocation_start);
        if let Some(instance) = &instance {
            self.metric(Metric::Termination {
                platform: platform.clone(),
            });
            self.event(
                key,
                EventReason::Released,
                format!("instance {instance} terminated; VM slot freed"),
            );
        }
        if let (Some(start), Some(now)) = (ran, now) {
            self.metric(Metric::TaskRunTime {
                platform: platform.clone(),
                took: elapsed(start, now),
            });
        }
        for next in self.quota.release(key) {
            self.grant_vm(&next);
        }
        let gone = self.runs.get(key).is_some_and(|r| r.gone);
        match then_fail {
            Some(message) if !gone => self.fail(key, message),
            _ => {
                if let Some(run) = self.runs.get_mut(key) {
                    run.phase = Phase::Done;
                }
                if gone {
                    self.runs.remove(key);
                }
            }
        }
    }

    /// A listing of a platform's instances: untracked ones count against its limit,
    /// old untracked ones are swept.
    pub(super) fn on_listing(&mut self, platform: &Platform, instances: &[CloudInstance]) {
        let mut states: BTreeMap<String, usize> = BTreeMap::new();
        for instance in instances {
            *states
                .entry(instance.state.as_str().to_owned())
                .or_default() += 1;
        }
        self.instance_states.insert(platform.clone(), states);
        if self.is_fleet(platform) {
            self.on_fleet_listing(platform, instances);
            return;
        }
        let Some(cloud) = self.clouds.get(platform) else {
            return;
        };
        let target = cloud.target.clone();
        let claimed = |i: &CloudInstance| {
            self.runs.iter().any(|(key, run)| {
                run.instance.as_ref() == Some(&i.id)
                    || (run.instance.is_none()
                        && matches!(run.phase, Phase::Launching { .. })
                        && i.taskrun.as_ref() == Some(key))
            })
        };
        let result = sweep(
            instances,
            &target.instance_type,
            claimed,
            self.now,
            self.settings.sweep_grace,
        );
        if !result.doomed.is_empty() {
            self.metric(Metric::Swept {
                platform: platform.clone(),
                count: result.doomed.len(),
            });
            self.effects.push_back(Effect::Terminate {
                target,
                instances: result.doomed,
                cause: TerminationCause::Leaked,
            });
        }
        for granted in self.quota.listed(platform, result.untracked) {
            self.grant_vm(&granted);
        }
    }

    /// See [`super::Input::CloudUnavailable`]: what is known of untracked instances
    /// stays counted.
    pub(super) fn on_cloud_unavailable(&mut self, platform: &Platform) {
        let untracked = self
            .quota
            .usage()
            .find(|(p, _)| *p == platform)
            .map_or(0, |(_, u)| u.untracked);
        for granted in self.quota.listed(platform, untracked) {
            self.grant_vm(&granted);
        }
    }

    fn issue_launch(&mut self, key: &TaskRunKey, platform: &Platform) {
        let (Some(taskrun), Some(cloud), Some(run)) = (
            self.order(key),
            self.clouds.get(platform),
            self.runs.get(key),
        ) else {
            return;
        };
        let order = LaunchOrder {
            spec: cloud.launch_spec(key, &taskrun.uid, run.launch_attempt),
            attempt: run.launch_attempt,
            allocation_start: run.allocation_start,
            taskrun,
        };
        self.issue(key, Op::Launch, Work::Launch(order));
    }

    fn issue_provision_vm(&mut self, key: &TaskRunKey, platform: &Platform, instance: InstanceId) {
        let (Some(taskrun), Some(cloud), Some(run)) = (
            self.order(key),
            self.clouds.get(platform),
            self.runs.get(key),
        ) else {
            return;
        };
        let launched = run.assigned_at.unwrap_or(self.now);
        let key_lifetime = self
            .config
            .as_ref()
            .map(|c| c.settings.user_key_lifetime)
            .unwrap_or(crate::config::DEFAULT_USER_KEY_LIFETIME);
        let order = VmOrder {
            target: cloud.target.clone(),
            access: cloud.access.clone(),
            deadline: after(launched, cloud.access.allocation_timeout),
            user: UserName::for_taskrun(&key.name, &key.namespace),
            key_lifetime,
            instance,
            taskrun,
            handover: BuilderHandover::of(cloud.os),
        };
        self.issue(key, Op::ProvisionVm, Work::ProvisionVm(order));
    }

    fn issue_release_vm(
        &mut self,
        key: &TaskRunKey,
        platform: &Platform,
        instance: Option<InstanceId>,
    ) {
        let order = VmReleaseOrder {
            key: key.clone(),
            target: self.clouds.get(platform).map(|c| c.target.clone()),
            instance,
        };
        self.issue(key, Op::ReleaseVm, Work::ReleaseVm(order));
    }

    /// Where the platforms' instances live, for the shell's listings.
    pub fn cloud_targets(&self) -> impl Iterator<Item = &crate::cloud::CloudTarget> + '_ {
        self.clouds.values().map(|c| &c.target)
    }
}

/// The platform of a TaskRun in a cloud phase.
fn cloud_platform(phase: &Phase) -> Option<Platform> {
    match phase {
        Phase::Launching { platform }
        | Phase::Booting { platform, .. }
        | Phase::VmReady { platform, .. }
        | Phase::Terminating { platform, .. } => Some(platform.clone()),
        _ => None,
    }
}

/// Whether `op` is cloud work (its report goes to [`Core::on_cloud_report`]).
pub(super) fn is_cloud_op(op: Op) -> bool {
    matches!(op, Op::Launch | Op::ProvisionVm | Op::ReleaseVm)
}
