//! Listings of the cloud platforms' instances, for the core: which instances run for no
//! TaskRun (they count against the limit, and old ones are swept), and the terminations
//! the sweep asks for.
//!
//! A listing covers every page of `DescribeInstances` filtered on the platform's tags. The
//! first one runs as soon as the platforms are known (the core launches nothing for a
//! platform before it has seen one), then every `interval`.

use std::sync::Arc;
use std::time::Duration;

use mpc_core::cloud::{CloudInstance, CloudTarget, InstanceId, LaunchSpec};
use mpc_core::machine::LaunchFailure;
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
    /// A launch for a dynamic pool ended.
    PoolLaunched(
        Platform,
        Result<(InstanceId, Option<String>), LaunchFailure>,
    ),
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
            let instances: Vec<CloudInstance> = found
                .iter()
                .filter_map(|i| cloud_instance(i, target))
                .collect();
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

/// How long a pool instance may take to get an address before its launch counts as
/// failed (the instance stays, and the next listing makes it a host if it comes up).
const POOL_ADDRESS_WAIT: Duration = Duration::from_secs(600);

/// Launches an instance for a dynamic pool and waits for its address.
pub async fn launch_pool(clients: CloudClients, spec: LaunchSpec, news: mpsc::Sender<CloudNews>) {
    let platform = spec.target.platform.clone();
    let result = launch_and_address(&clients, &spec).await;
    if let Err(failure) = &result {
        warn!(%platform, code = %failure.code, error = %failure.message,
              "launching a pool instance failed");
    }
    let _ = news.send(CloudNews::PoolLaunched(platform, result)).await;
}

async fn launch_and_address(
    clients: &CloudClients,
    spec: &LaunchSpec,
) -> Result<(InstanceId, Option<String>), LaunchFailure> {
    let client = clients
        .client(&spec.target)
        .await
        .map_err(|e| LaunchFailure {
            code: "CredentialsSecret".to_owned(),
            message: e.to_string(),
            retryable: false,
            ambiguous: false,
        })?;
    let pool = mpc_core::allocation::TaskRunKey::new("pool", spec.target.platform.label_value());
    let request = super::vm::launch_request(&pool, spec);
    let launched = client
        .launch(&request)
        .await
        .map_err(|e| super::vm::launch_failure(&e))?;
    let id = InstanceId::parse(launched.as_str()).map_err(|e| LaunchFailure {
        code: "InvalidInstanceId".to_owned(),
        message: e.to_string(),
        retryable: false,
        ambiguous: false,
    })?;
    info!(platform = %spec.target.platform, instance = %id, "pool instance launched");
    let deadline = tokio::time::Instant::now() + POOL_ADDRESS_WAIT;
    let mut delay = Duration::from_millis(250);
    loop {
        if let Ok(Some(info)) = client
            .describe(&launched, spec.target.strict_public_address)
            .await
        {
            match info.state {
                mpc_ec2::InstanceState::Running if info.address.is_some() => {
                    return Ok((id, info.address));
                }
                mpc_ec2::InstanceState::Pending | mpc_ec2::InstanceState::Running => {}
                // Gone before it came up: the listing forgets it.
                _ => return Ok((id, None)),
            }
        }
        if tokio::time::Instant::now() + delay > deadline {
            return Ok((id, None));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
