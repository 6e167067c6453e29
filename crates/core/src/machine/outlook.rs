//! Whether a waiting TaskRun can still be served: a full pool is worth waiting for, a
//! pool whose hosts are all down only for a while (bounded), and a pool whose hosts all
//! need an admin not at all (contract §3).

use std::collections::BTreeSet;

use super::Core;
use super::input::HostFailure;
use crate::allocation::TaskRunKey;
use crate::config::{HostName, HostState};
use crate::platform::Platform;
use crate::time::Timestamp;

/// Why a host is out of service, as a probe or a failed operation found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fault {
    /// What went wrong (the latest failure).
    pub failure: HostFailure,
    /// Since when the host has been out of service.
    pub since: Timestamp,
}

/// A waiting TaskRun's prospects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outlook {
    /// A host it may use is up (or not probed yet): it waits for a slot.
    Servable,
    /// Every host it may use is down, some only unreachable: it waits, bounded.
    Down(Vec<(HostName, Fault)>),
    /// Every host it may use needs an admin (wrong host key, refused or missing admin
    /// key): nothing will change by waiting.
    NeedsAdmin(Vec<(HostName, Fault)>),
}

impl Core {
    /// The prospects of a TaskRun of `platform` that must not use `failed` hosts.
    pub(super) fn outlook(&self, platform: &Platform, failed: &BTreeSet<HostName>) -> Outlook {
        let mut down = Vec::new();
        for usage in self.ledger.hosts() {
            let candidate = usage.platform.as_ref() == Some(platform)
                && usage.state == Some(HostState::Active)
                && !failed.contains(&usage.host);
            if !candidate {
                continue;
            }
            if usage.healthy {
                return Outlook::Servable;
            }
            match self.faults.get(&usage.host) {
                // Not probed yet: its first probe decides.
                None => return Outlook::Servable,
                Some(fault) => down.push((usage.host, fault.clone())),
            }
        }
        if down.is_empty() {
            // No active host: drained or disabled by an admin on purpose; the ledger
            // rejects what can never be served.
            Outlook::Servable
        } else if down.iter().all(|(_, f)| f.failure.kind.needs_admin()) {
            Outlook::NeedsAdmin(down)
        } else {
            Outlook::Down(down)
        }
    }

    /// The outlook of a queued TaskRun, or `Servable` for one the core does not know.
    pub(super) fn outlook_of(&self, key: &TaskRunKey) -> Outlook {
        self.runs
            .get(key)
            .and_then(|run| Some(self.outlook(run.valid_platform()?, &run.failed_hosts)))
            .unwrap_or(Outlook::Servable)
    }
}

/// `h1 (down since 2026-12-05T10:00:00Z: connection refused); h2 (…)`.
pub(super) fn describe(hosts: &[(HostName, Fault)]) -> String {
    let parts: Vec<String> = hosts
        .iter()
        .map(|(host, fault)| {
            format!(
                "{host} (down since {}: {})",
                fault.since.strftime("%Y-%m-%dT%H:%M:%SZ"),
                fault.failure.message
            )
        })
        .collect();
    parts.join("; ")
}
