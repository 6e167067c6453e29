//! Leader election on a coordination.k8s.io/v1 Lease, so two replicas never allocate
//! at once.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::naming::LEASE_NAME;

/// How this instance takes part in leader election.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    /// This instance's identity (the pod name).
    pub identity: String,
    /// How long a lease lasts without renewal: a dead leader is replaced after this.
    pub lease_duration: Duration,
    /// How long before expiry the leader renews.
    pub renew_grace: Duration,
}

impl LeaderElection {
    /// Defaults: 15 s leases renewed 5 s before they expire.
    pub fn new(identity: impl Into<String>) -> Self {
        LeaderElection {
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_grace: Duration::from_secs(5),
        }
    }
}

/// A running election: tells when this instance becomes or stops being leader.
pub struct Leadership {
    changes: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, kube_lease_manager::LeaseManagerError>>,
}

impl Leadership {
    /// Joins the election.
    pub async fn start(
        client: Client,
        namespace: &str,
        election: &LeaderElection,
    ) -> Result<Self, String> {
        let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
            .with_namespace(namespace)
            .with_identity(&election.identity)
            .with_duration(election.lease_duration.as_secs().max(1))
            .with_grace(election.renew_grace.as_secs().max(1))
            .build()
            .await
            .map_err(|e| format!("cannot use Lease {namespace}/{LEASE_NAME}: {e}"))?;
        let (changes, task) = manager.watch().await;
        info!(identity = %election.identity, lease = LEASE_NAME, "joined leader election");
        Ok(Leadership { changes, task })
    }

    /// Waits for the next change and returns whether this instance is now leader.
    pub async fn changed(&mut self) -> bool {
        match self.changes.changed().await {
            Ok(()) => *self.changes.borrow_and_update(),
            Err(_) => {
                // The election task ended (it logs why): act as a standby, never as a
                // leader without a lease.
                warn!("leader election stopped; standing by");
                std::future::pending::<()>().await;
                false
            }
        }
    }

    /// Leaves the election, releasing the Lease if held, so a standby takes over at once.
    pub async fn release(self) {
        drop(self.changes);
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(Ok(_))) => info!("Lease released"),
            Ok(Ok(Err(e))) => warn!(error = %e, "could not release the Lease"),
            Ok(Err(e)) => warn!(error = %e, "leader election task failed"),
            Err(_) => warn!("releasing the Lease timed out"),
        }
    }
}
