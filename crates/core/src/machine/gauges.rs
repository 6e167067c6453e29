//! The gauges the metrics show, derived from the core's state on demand.

use std::collections::BTreeMap;

use super::Core;
use super::run::Phase;
use crate::config::HostState;

/// Gauges derived from the core's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Per platform: TaskRuns holding a slot, TaskRuns waiting, slots configured.
    pub platforms: BTreeMap<String, PlatformGauge>,
    /// Per host: its platform, slots used and total, whether it is healthy.
    pub hosts: BTreeMap<String, HostGauge>,
    /// Per cloud platform: its instances per state, from the latest listing.
    pub instances: BTreeMap<String, BTreeMap<String, usize>>,
}

/// Gauges of one platform.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlatformGauge {
    /// TaskRuns holding a slot.
    pub running: usize,
    /// TaskRuns waiting for one.
    pub waiting: usize,
    /// Slots of the platform's active hosts.
    pub pool_size: usize,
    /// Served by cloud instances (`dynamic-platforms`, `dynamic-pool-platforms`).
    pub cloud: bool,
}

/// Gauges of one host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostGauge {
    /// Its platform.
    pub platform: String,
    /// Slots in use.
    pub used: usize,
    /// Its concurrency (0 once removed from host-config).
    pub total: usize,
    /// Whether the last probe or operation reached it.
    pub up: bool,
}

impl Core {
    /// Gauges for the metrics: every platform of the configuration (at zero when idle)
    /// and every platform that still holds slots, every host in the slot ledger (those
    /// of the configuration, and removed ones until their TaskRuns are gone). The
    /// metrics keep series for exactly these.
    pub fn gauges(&self) -> Gauges {
        let mut gauges = Gauges::default();
        for usage in self.ledger.hosts() {
            let Some(platform) = usage
                .platform
                .clone()
                .or_else(|| self.hosts.get(&usage.host).map(|h| h.platform.clone()))
            else {
                continue;
            };
            let active = usage.state == Some(HostState::Active);
            let entry = gauges.platforms.entry(platform.to_string()).or_default();
            entry.running += usage.used;
            if active {
                entry.pool_size += usage.concurrency as usize;
            }
            gauges.hosts.insert(
                usage.host.to_string(),
                HostGauge {
                    platform: platform.to_string(),
                    used: usage.used,
                    total: usage.concurrency as usize,
                    up: usage.healthy,
                },
            );
        }
        for (platform, usage) in self.quota.usage() {
            let entry = gauges.platforms.entry(platform.to_string()).or_default();
            entry.running += usage.holders;
            entry.pool_size += usage.max as usize;
            entry.cloud = true;
        }
        // Every platform of the configuration has its series from the start, at zero.
        if let Some(config) = &self.config {
            for platform in config.platforms() {
                let entry = gauges.platforms.entry(platform.to_string()).or_default();
                entry.cloud |= config.dynamic_platforms.contains_key(&platform);
            }
        }
        for run in self.runs.values() {
            if let (Phase::Queued { .. }, Some(p)) = (&run.phase, run.valid_platform()) {
                gauges.platforms.entry(p.to_string()).or_default().waiting += 1;
            }
        }
        gauges.instances = self
            .instance_states
            .iter()
            .map(|(p, states)| (p.to_string(), states.clone()))
            .collect();
        gauges
    }
}
