//! Listings of the cloud platforms' instances, for the core: which instances run for no
//! TaskRun (they count against the limit, and old ones are swept), and the terminations
//! the sweep asks for.
//!
//! A listing covers every page of `DescribeInstances` filtered on the platform's tags. The
//! first one runs as soon as the platforms are known (the core launches nothing for a
//! platform before it has seen one), then every `interval`.

use std::sync::Arc;
use std::time::Duration;

use mpc_core::cloud::{CloudInstance, CloudTarget, InstanceId};
use mpc_core::platform::Platform;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::cloud::{CloudClients, cloud_instance};

/// What a listing found.
#[derive(Debug)]
pub enum CloudNews {
    /// Every instance of the platform, complete.
    Listed(Platform, Vec<CloudInstance>),
    /// The platform cannot be listed until an admin acts (credentials missing or
    /// refused): launches are tried, and fail with the same clear error.
    Unavailable(Platform, String),
}

/// Lists every target now and after each `interval`, and whenever the targets change.
pub async fn watch_clouds(
    clients: CloudClients,
    mut targets: watch::Receiver<Arc<Vec<CloudTarget>>>,
    news: mpsc::Sender<CloudNews>,
    interval: Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = targets.changed() => if changed.is_err() { return },
            _ = ticks.tick() => {}
        }
        let current = targets.borrow_and_update().clone();
        for target in current.iter() {
            let Some(found) = list(&clients, target).await else {
                continue;
            };
            if news.send(found).await.is_err() {
                return;
            }
        }
    }
}

async fn list(clients: &CloudClients, target: &CloudTarget) -> Option<CloudNews> {
    let platform = target.platform.clone();
    let client = match clients.client(target).await {
        Ok(c) => c,
        Err(e) => {
            warn!(%platform, error = %e, "cannot list the platform's instances");
            return Some(CloudNews::Unavailable(platform, e.to_string()));
        }
    };
    match client.list_managed(Some(&target.instance_tag)).await {
        Ok(found) => {
            let instances: Vec<CloudInstance> = found.iter().filter_map(cloud_instance).collect();
            debug!(%platform, instances = instances.len(), "listed the platform's instances");
            Some(CloudNews::Listed(platform, instances))
        }
        Err(e) if e.retryable() => {
            debug!(%platform, error = %e, "listing failed; next pass");
            None
        }
        Err(e) => {
            warn!(%platform, error = %e, "cannot list the platform's instances");
            Some(CloudNews::Unavailable(platform, e.to_string()))
        }
    }
}

/// Terminates instances the sweep found no TaskRun owns; the next listing shows whether
/// it worked, and a failure is tried again by the next sweep.
pub async fn sweep(clients: CloudClients, target: CloudTarget, doomed: Vec<(InstanceId, String)>) {
    let client = match clients.client(&target).await {
        Ok(c) => c,
        Err(e) => {
            warn!(platform = %target.platform, error = %e, "cannot sweep leaked instances");
            return;
        }
    };
    for (instance, why) in doomed {
        match client
            .terminate(&[mpc_ec2::InstanceId::new(instance.as_str())])
            .await
        {
            Ok(()) => info!(platform = %target.platform, %instance, reason = %why,
                            "terminated an instance no TaskRun owns"),
            Err(e) if e.is_not_found() => {}
            Err(e) => warn!(platform = %target.platform, %instance, error = %e,
                            "terminating a leaked instance failed; the next sweep tries again"),
        }
    }
}
