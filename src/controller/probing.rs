//! Host health and leftovers: probing hosts the core took down (or has not used yet)
//! until they answer, and reaping build users no TaskRun owns.
//!
//! A probe that reaches a host lists its `u-*` users and hands them to the runner,
//! which asks the core which ones to reap; the reaper removes them and reports what
//! remains. Only then is the host reported healthy, so leftovers never share a host
//! with new builds beyond its slots.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::executor::failure_kind;
use super::targets::{AdminKeys, TargetError, target};
use crate::metrics::Metrics;
use crate::remote::{HostTarget, KnownHosts, RemoteError, SshPool};
use mpc_core::config::{Host, HostKeyChecking, HostName};
use mpc_core::machine::{HostFailure, HostFailureKind};
use mpc_core::naming::UserName;

/// Why a host could not be probed or listed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The host is no longer (or not yet) in the directory.
    #[error("host {0} is not in host-config")]
    NotConfigured(HostName),
    /// Its admin key or host key cannot be used as configured.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The probe login or command failed (the message names the cause: it is logged
    /// on one line).
    #[error("{0} ({kind:?})", kind = failure_kind(.0))]
    Probe(RemoteError),
    /// Listing its build users failed.
    #[error("listing its build users failed: {0}")]
    ListUsers(RemoteError),
}

/// First and longest wait between probes of a host that does not answer.
const PROBE_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));

/// The host definitions the tasks use, republished on every configuration change so a
/// retrying probe picks up an admin's fix.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    /// Every host the controller knows (removed ones keep their last definition).
    pub hosts: BTreeMap<HostName, Host>,
    /// Current host-key checking.
    pub checking: HostKeyChecking,
}

/// News from probe and reaper tasks for the runner.
#[derive(Debug)]
pub enum HostNews {
    /// A probe (or a reaper pass) reached the host; these `u-*` users exist on it.
    Reachable {
        /// The host.
        host: HostName,
        /// Its build users with their age, when the host could tell.
        users: Vec<(UserName, Option<Duration>)>,
    },
    /// A reaper pass ended.
    Reaped {
        /// The host.
        host: HostName,
        /// Users left on the host afterwards.
        remaining: Vec<UserName>,
        /// Users removed.
        removed: usize,
        /// Whether every user it was asked to remove is gone.
        complete: bool,
        /// Whether this pass follows a probe (then the host may be reported up).
        after_probe: bool,
    },
    /// A probe could not use the host: why (sent on its first failure and whenever the
    /// reason changes).
    Down {
        /// The host.
        host: HostName,
        /// Why, classified as the core classifies failed operations.
        failure: HostFailure,
    },
}

impl ProbeError {
    /// The failure as the core sees it; `None` for a host that left the configuration.
    pub fn failure(&self) -> Option<HostFailure> {
        let kind = match self {
            ProbeError::NotConfigured(_) => return None,
            ProbeError::Target(_) => HostFailureKind::AdminAccess,
            ProbeError::Probe(e) | ProbeError::ListUsers(e) => failure_kind(e),
        };
        Some(HostFailure {
            kind,
            message: self.to_string(),
        })
    }
}

/// What probe and reaper tasks share.
#[derive(Clone)]
pub struct HostCare {
    /// SSH connections.
    pub ssh: SshPool,
    /// Admin keys.
    pub admin_keys: AdminKeys,
    /// Remembered host keys.
    pub known_hosts: Arc<dyn KnownHosts>,
    /// Current host definitions.
    pub directory: watch::Receiver<Arc<Directory>>,
    /// Where news goes.
    pub news: mpsc::Sender<HostNews>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

impl HostCare {
    fn target_of(&self, host: &HostName) -> Result<HostTarget, ProbeError> {
        let directory = self.directory.borrow().clone();
        let definition = directory
            .hosts
            .get(host)
            .ok_or_else(|| ProbeError::NotConfigured(host.clone()))?;
        Ok(target(
            definition,
            directory.checking,
            &self.admin_keys,
            &self.known_hosts,
        )?)
    }

    /// Probes `host` until it answers (backing off, with jitter, up to a minute), then
    /// sends its users. Runs until it succeeds or is aborted.
    pub async fn probe_until_up(self, host: HostName) {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(PROBE_BACKOFF.0)
            .with_max_delay(PROBE_BACKOFF.1)
            .without_max_times()
            .with_jitter();
        let mut failures = 0u32;
        let mut told: Option<HostFailure> = None;
        let reached = (|| self.reach(&host))
            .retry(backoff)
            .notify(|why, _| {
                if let Some(failure) = why.failure().filter(|f| told.as_ref() != Some(f)) {
                    told = Some(failure.clone());
                    // Best effort: a full channel means the runner is busy with news
                    // already; the next different failure is sent again.
                    let _ = self.news.try_send(HostNews::Down {
                        host: host.clone(),
                        failure,
                    });
                }
                failures += 1;
                if failures == 1 {
                    warn!(%host, error = %why, "host cannot be used yet; probing again with backoff");
                } else {
                    debug!(%host, attempt = failures, error = %why, "host still does not answer");
                }
            })
            .await;
        if let Ok(users) = reached {
            if failures > 0 {
                info!(%host, attempts = failures + 1, "host answers again");
            }
            let _ = self.news.send(HostNews::Reachable { host, users }).await;
        }
    }

    async fn reach(
        &self,
        host: &HostName,
    ) -> Result<Vec<(UserName, Option<Duration>)>, ProbeError> {
        let target = self.target_of(host)?;
        self.ssh.probe(&target).await.map_err(ProbeError::Probe)?;
        let users = self
            .ssh
            .list_users(&target)
            .await
            .map_err(ProbeError::ListUsers)?;
        Ok(users.into_iter().map(|u| (u.name, u.age)).collect())
    }

    /// Lists the users of a healthy host for a periodic reaper pass.
    pub async fn list(self, host: HostName) {
        match self.reach(&host).await {
            Ok(users) => {
                let _ = self.news.send(HostNews::Reachable { host, users }).await;
            }
            Err(why) => debug!(%host, error = %why, "reaper could not list users; next pass"),
        }
    }

    /// Removes `doomed` from `host`, then reports what remains.
    pub async fn reap(
        self,
        host: HostName,
        listed: Vec<UserName>,
        doomed: Vec<UserName>,
        after_probe: bool,
    ) {
        let mut remaining = listed;
        let mut removed = 0;
        let mut complete = true;
        match self.target_of(&host) {
            Ok(target) => {
                for user in &doomed {
                    match self.ssh.cleanup(&target, user).await {
                        Ok(_) => {
                            removed += 1;
                            remaining.retain(|u| u != user);
                            info!(%host, %user, "reaped a build user no TaskRun owns");
                        }
                        Err(e) => {
                            complete = false;
                            self.metrics.host_cleanup_failed(host.as_str());
                            warn!(%host, %user, error = %e, "reaping a build user failed");
                        }
                    }
                }
            }
            Err(why) => {
                complete = doomed.is_empty();
                warn!(%host, error = %why, "cannot reach the host to reap");
            }
        }
        if removed > 0 {
            self.metrics.reaped(host.as_str(), removed);
        }
        let _ = self
            .news
            .send(HostNews::Reaped {
                host,
                remaining,
                removed,
                complete,
                after_probe,
            })
            .await;
    }
}
