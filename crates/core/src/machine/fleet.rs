//! Dynamic pools (`dynamic-pool-platforms`): cloud instances shared by several TaskRuns
//! (contract §7). A running instance of a pool is a host of its platform with
//! `concurrency` slots, in the same [`Ledger`] as static hosts, so the same slot rules,
//! FIFO queue and never-over-capacity guarantee hold; a throwaway user per TaskRun is
//! created on it exactly as on a static host. This module keeps the pool's instances:
//! it launches one when TaskRuns wait and the pool is below `max-instances`, and retires
//! an instance older than `max-age` once it runs nothing.
//!
//! [`Ledger`]: crate::allocation::Ledger

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::Core;
use super::input::LaunchFailure;
use super::output::{Effect, Metric, TerminationCause};
use super::run::Phase;
use super::timers::backoff;
use crate::allocation::TaskRunKey;
use crate::cloud::{CloudInstance, CloudPlatform, InstanceId};
use crate::config::{Host, HostName, HostState, PoolConfig};
use crate::naming::CLOUD_ADMIN_USER;
use crate::platform::Platform;
use crate::time::{Timestamp, after};

/// The instances of one dynamic pool.
#[derive(Clone, Debug, Default)]
pub(crate) struct Fleet {
    instances: BTreeMap<InstanceId, FleetInstance>,
    /// Launches in flight.
    launching: usize,
    /// Whether a listing was seen: before it nothing is launched or resumed.
    listed: bool,
    /// Failed launches in a row, for the backoff.
    failures: u32,
    /// No launch before this (after a failed one).
    quiet_until: Option<Timestamp>,
    /// Launches ordered so far, for unique client tokens.
    launched: u64,
}

#[derive(Clone, Debug)]
struct FleetInstance {
    launched: Timestamp,
    address: Option<String>,
    /// Termination asked for: it takes nothing new and is no host any more.
    retiring: bool,
}

impl Core {
    /// Whether `platform` is a dynamic pool of the configuration.
    pub(super) fn is_fleet(&self, platform: &Platform) -> bool {
        self.clouds.get(platform).is_some_and(|c| c.pool.is_some())
            && self.fleets.contains_key(platform)
    }

    /// Whether work on `host` must wait for its pool's first listing: the host is
    /// unknown, and it may be an instance of a pool not listed yet (after a restart).
    pub(super) fn host_pending_listing(
        &self,
        host: &HostName,
        platform: Option<&Platform>,
    ) -> bool {
        !self.hosts.contains_key(host)
            && platform
                .and_then(|p| self.fleets.get(p))
                .is_some_and(|f| !f.listed)
    }

    /// A listing of a pool: its instances are its hosts.
    pub(super) fn on_fleet_listing(&mut self, platform: &Platform, instances: &[CloudInstance]) {
        let now = self.now;
        let Some(fleet) = self.fleets.get_mut(platform) else {
            return;
        };
        let first = !fleet.listed;
        fleet.listed = true;
        let live: BTreeMap<&InstanceId, &CloudInstance> = instances
            .iter()
            .filter(|i| i.state.counts())
            .map(|i| (&i.id, i))
            .collect();
        // Gone from the cloud (terminated, or never there): no host any more.
        fleet.instances.retain(|id, _| live.contains_key(id));
        for (id, instance) in live {
            let entry = fleet
                .instances
                .entry(id.clone())
                .or_insert_with(|| FleetInstance {
                    launched: instance.launched.min(now),
                    address: None,
                    retiring: false,
                });
            if instance.address.is_some() {
                entry.address.clone_from(&instance.address);
            }
        }
        self.refresh_fleet_hosts();
        self.sweep_fleet(platform);
        if first {
            // TaskRuns resumed on its instances can go on now.
            let waiting: Vec<TaskRunKey> = self
                .runs
                .iter()
                .filter(|(_, r)| r.valid_platform() == Some(platform) && r.in_flight.is_none())
                .map(|(k, _)| k.clone())
                .collect();
            for key in waiting {
                self.step(&key);
            }
        }
    }

    /// A pool launch ended.
    pub(super) fn on_fleet_launched(
        &mut self,
        platform: &Platform,
        launched: Result<(InstanceId, Option<String>), LaunchFailure>,
    ) {
        let now = self.now;
        let Some(fleet) = self.fleets.get_mut(platform) else {
            return;
        };
        fleet.launching = fleet.launching.saturating_sub(1);
        match launched {
            Ok((id, address)) => {
                fleet.failures = 0;
                fleet.quiet_until = None;
                fleet.instances.entry(id).or_insert(FleetInstance {
                    launched: now,
                    address,
                    retiring: false,
                });
                self.metric(Metric::Launch {
                    platform: platform.clone(),
                });
                self.refresh_fleet_hosts();
            }
            Err(failure) => {
                fleet.failures += 1;
                let failures = fleet.failures;
                fleet.quiet_until = Some(after(now, backoff(&self.settings, failures)));
                self.metric(Metric::LaunchFailure {
                    platform: platform.clone(),
                    code: failure.code.clone(),
                });
                if !failure.retryable {
                    // Nothing will change until an admin acts: the waiters get the
                    // error now instead of waiting for instances that cannot come.
                    let instance_type = self
                        .clouds
                        .get(platform)
                        .map(|c| c.target.instance_type.clone())
                        .unwrap_or_default();
                    let message = format!(
                        "no instance of the {platform} pool could be launched: EC2 refused a \
                         {instance_type} instance with {}: {}. A cluster admin must fix the \
                         platform's settings in host-config or the AWS account",
                        failure.code, failure.message
                    );
                    let waiters: Vec<TaskRunKey> = self.ledger.waiters(platform).cloned().collect();
                    for key in waiters {
                        self.ledger.cancel(&key);
                        self.fail(&key, message.clone());
                    }
                }
            }
        }
    }

    /// The leaked-VM sweep of a pool: an idle instance that never came up (no address,
    /// or its sshd never answered) within twice the sweep grace is dead capacity that
    /// would block the pool from growing, and idle instances above `max-instances` (a
    /// launch the controller lost track of across a restart) are surplus.
    fn sweep_fleet(&mut self, platform: &Platform) {
        let now = self.now;
        let dead_after = self.settings.sweep_grace.saturating_mul(2);
        let (Some(cloud), Some(fleet)) = (self.clouds.get(platform), self.fleets.get(platform))
        else {
            return;
        };
        let target = cloud.target.clone();
        let max = cloud.max_instances as usize;
        let idle = |id: &InstanceId| {
            HostName::parse(id.as_str()).is_ok_and(|host| {
                self.ledger.running_on(&host).next().is_none()
                    && !self.runs.values().any(|r| {
                        r.host() == Some(&host)
                            || matches!(&r.phase, Phase::Abandoned { host: h } if *h == host)
                    })
            })
        };
        let mut doomed: Vec<(InstanceId, String)> = Vec::new();
        for (id, instance) in fleet.instances.iter().filter(|(_, i)| !i.retiring) {
            if after(instance.launched, dead_after) <= now && !self.host_serves(id) && idle(id) {
                let why = if instance.address.is_none() {
                    "it has no address"
                } else {
                    "its sshd does not answer the controller"
                };
                doomed.push((
                    id.clone(),
                    format!(
                        "pool instance launched {} never became usable: {why}",
                        instance.launched.strftime("%Y-%m-%dT%H:%M:%SZ")
                    ),
                ));
            }
        }
        let alive = fleet.instances.values().filter(|i| !i.retiring).count() - doomed.len();
        if alive > max {
            // The newest idle ones go: the oldest have the most warm caches.
            let mut candidates: Vec<(&InstanceId, &FleetInstance)> = fleet
                .instances
                .iter()
                .filter(|(id, i)| !i.retiring && idle(id) && !doomed.iter().any(|(d, _)| d == *id))
                .collect();
            candidates.sort_by_key(|(_, i)| std::cmp::Reverse(i.launched));
            let surplus: Vec<InstanceId> = candidates
                .into_iter()
                .take(alive - max)
                .map(|(id, _)| id.clone())
                .collect();
            for id in surplus {
                doomed.push((
                    id,
                    format!("the pool has {alive} instances, more than max-instances {max}"),
                ));
            }
        }
        if doomed.is_empty() {
            return;
        }
        if let Some(fleet) = self.fleets.get_mut(platform) {
            for (id, _) in &doomed {
                if let Some(instance) = fleet.instances.get_mut(id) {
                    instance.retiring = true;
                }
            }
        }
        self.metric(Metric::Swept {
            platform: platform.clone(),
            count: doomed.len(),
        });
        self.effects.push_back(Effect::Terminate {
            target,
            instances: doomed,
            cause: TerminationCause::Leaked,
        });
        self.refresh_fleet_hosts();
    }

    /// Launches for pools with waiters and room, retires old idle instances.
    pub(super) fn manage_fleets(&mut self) {
        let platforms: Vec<Platform> = self.fleets.keys().cloned().collect();
        for platform in platforms {
            self.retire_old_instances(&platform);
            self.grow_fleet(&platform);
        }
    }

    fn grow_fleet(&mut self, platform: &Platform) {
        let now = self.now;
        let Some(cloud) = self.clouds.get(platform) else {
            return;
        };
        let Some(shape) = cloud.pool else {
            return;
        };
        let waiting = self.ledger.waiting(platform);
        let Some(fleet) = self.fleets.get(platform) else {
            return;
        };
        if !fleet.listed || waiting == 0 || fleet.quiet_until.is_some_and(|t| t > now) {
            return;
        }
        // Instances on their way (launching, booting, not probed yet) will take waiters.
        let coming = fleet.launching
            + fleet
                .instances
                .iter()
                .filter(|(id, i)| !i.retiring && !self.host_serves(id))
                .count();
        let alive = fleet.launching + fleet.instances.len();
        let per_instance = shape.concurrency as usize;
        let wanted = waiting.div_ceil(per_instance).saturating_sub(coming);
        let room = (cloud.max_instances as usize).saturating_sub(alive);
        let launches = wanted.min(room);
        if launches == 0 {
            return;
        }
        let oldest = self.ledger.waiters(platform).next().cloned();
        for _ in 0..launches {
            let Some(fleet) = self.fleets.get_mut(platform) else {
                return;
            };
            fleet.launching += 1;
            fleet.launched += 1;
            let token = format!(
                "mpc-pool-{}-{}-{}",
                platform_token(platform),
                now.as_millisecond(),
                fleet.launched
            );
            let spec = cloud.pool_launch_spec(oldest.as_ref(), token);
            self.effects.push_back(Effect::LaunchPool {
                spec: Box::new(spec),
            });
        }
    }

    /// Whether the host of instance `id` is up and takes TaskRuns.
    fn host_serves(&self, id: &InstanceId) -> bool {
        HostName::parse(id.as_str()).is_ok_and(|h| self.is_healthy(&h))
    }

    fn retire_old_instances(&mut self, platform: &Platform) {
        let now = self.now;
        let Some(shape) = self.clouds.get(platform).and_then(|c| c.pool) else {
            return;
        };
        let Some(fleet) = self.fleets.get(platform) else {
            return;
        };
        let old: Vec<InstanceId> = fleet
            .instances
            .iter()
            .filter(|(_, i)| !i.retiring && after(i.launched, shape.max_age) <= now)
            .map(|(id, _)| id.clone())
            .collect();
        let mut retired = Vec::new();
        for id in old {
            let Ok(host) = HostName::parse(id.as_str()) else {
                continue;
            };
            // Idle: no slot taken, nobody provisioning or cleaning there.
            let busy = self.ledger.running_on(&host).next().is_some()
                || self.runs.values().any(|r| {
                    r.host() == Some(&host)
                        || matches!(&r.phase, Phase::Abandoned { host: h } if *h == host)
                });
            if !busy {
                retired.push(id);
            }
        }
        if retired.is_empty() {
            // Old but busy instances take nothing new (Drain) until they are idle.
            self.refresh_fleet_hosts();
            return;
        }
        if let Some(fleet) = self.fleets.get_mut(platform) {
            for id in &retired {
                if let Some(instance) = fleet.instances.get_mut(id) {
                    instance.retiring = true;
                }
            }
        }
        if let Some(target) = self.clouds.get(platform).map(|c| c.target.clone()) {
            self.effects.push_back(Effect::Terminate {
                target,
                instances: retired
                    .into_iter()
                    .map(|id| (id, "older than max-age and idle".to_owned()))
                    .collect(),
                cause: TerminationCause::Retired,
            });
        }
        self.refresh_fleet_hosts();
    }

    /// Makes the pools' usable instances the hosts of their platforms.
    pub(super) fn refresh_fleet_hosts(&mut self) {
        let now = self.now;
        let mut hosts: BTreeMap<HostName, Host> = BTreeMap::new();
        for (platform, fleet) in &self.fleets {
            let Some(cloud) = self.clouds.get(platform) else {
                continue;
            };
            let Some(shape) = cloud.pool else {
                continue;
            };
            for (id, instance) in &fleet.instances {
                let (Some(address), false) = (&instance.address, instance.retiring) else {
                    continue;
                };
                let Ok(name) = HostName::parse(id.as_str()) else {
                    continue;
                };
                let old = after(instance.launched, shape.max_age) <= now;
                hosts.insert(
                    name.clone(),
                    Host {
                        name,
                        platform: platform.clone(),
                        address: address.clone(),
                        port: crate::config::DEFAULT_SSH_PORT,
                        user: CLOUD_ADMIN_USER.to_owned(),
                        secret: cloud.access.ssh_secret.clone(),
                        concurrency: shape.concurrency,
                        state: if old {
                            HostState::Drain
                        } else {
                            HostState::Active
                        },
                        host_key: None,
                        sudo_commands: Vec::new(),
                        cloud: true,
                        limits: cloud.access.limits,
                    },
                );
            }
        }
        let Some(config) = self.config.clone() else {
            return;
        };
        if config.cloud_hosts == hosts {
            return;
        }
        let added: BTreeSet<HostName> = hosts
            .keys()
            .filter(|h| !config.cloud_hosts.contains_key(*h))
            .cloned()
            .collect();
        let mut next: PoolConfig = (*config).clone();
        next.cloud_hosts = hosts;
        for host in next.cloud_hosts.values() {
            self.hosts.insert(host.name.clone(), host.clone());
        }
        let next = Arc::new(next);
        self.config = Some(Arc::clone(&next));
        let outcome = self.ledger.apply_config(&next);
        for host in added {
            self.effects.push_back(Effect::Probe { host, reason: None });
        }
        self.apply_outcome(outcome.assigned, outcome.rejected);
    }

    /// The earliest moment a pool needs a look: a backoff ending, an instance aging.
    pub(super) fn fleet_deadline(&self) -> Option<Timestamp> {
        self.fleets
            .iter()
            .flat_map(|(platform, fleet)| {
                let max_age = self
                    .clouds
                    .get(platform)
                    .and_then(|c| c.pool)
                    .map(|p| p.max_age);
                let aging = fleet
                    .instances
                    .values()
                    .filter(|i| !i.retiring)
                    .filter_map(move |i| max_age.map(|a| after(i.launched, a)));
                fleet.quiet_until.into_iter().chain(aging)
            })
            .min()
    }

    /// Makes sure every pool of the configuration has a fleet.
    pub(super) fn configure_fleets(&mut self, clouds: &BTreeMap<Platform, CloudPlatform>) {
        for (platform, cloud) in clouds {
            if cloud.pool.is_some() {
                self.fleets.entry(platform.clone()).or_default();
            }
        }
    }
}

/// The platform as it may appear in a client token (alphanumerics and `-`).
fn platform_token(platform: &Platform) -> String {
    platform
        .label_value()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(24)
        .collect()
}
