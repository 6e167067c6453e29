//! The SSH shell: a pool with one russh connection per host and many channels over it.
//!
//! Everything here is I/O; what to send and how to read the answer comes from
//! [`super::script`] and [`super::report`], connections from [`super::connect`], and
//! running a command from [`super::channel`]. The only decisions made here are "retry on
//! a fresh connection or give up" and "which error is this".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::keys::PublicKey;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::remote::channel::{ChannelError, run};
use crate::remote::connect::{Connection, connect};
use crate::remote::error::{RemoteError, SshStep};
use crate::remote::settings::SshSettings;
use crate::remote::target::HostTarget;
use mpc_core::host_work::report::{self, BuildUser, ProbeFacts, RawOutput};
use mpc_core::host_work::request::ProvisionRequest;
use mpc_core::host_work::script::{self, Operation, Privilege, RemoteCommand};
use mpc_core::naming::UserName;

/// A build user was created or re-keyed.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// `true` when the user was created, `false` when it existed and got the new key.
    pub created: bool,
    /// How often `/etc/passwd` was locked by someone else and useradd retried.
    pub lock_retries: u32,
    /// The host key the connection verified (for the Secret's `known_hosts`).
    pub host_key: PublicKey,
}

/// A build user is gone from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanedUp {
    /// `false` when there was nothing to delete (which is success).
    pub existed: bool,
    /// How often the account files were locked and userdel retried.
    pub lock_retries: u32,
}

/// A host answered a probe.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    /// Time for the probe, including a (re)connect when one was needed.
    pub round_trip: Duration,
    /// How the admin acts as root.
    pub privilege: Privilege,
    /// The verified host key.
    pub host_key: PublicKey,
    /// What the host offers build users (rootless podman, systemd).
    pub facts: ProbeFacts,
}

/// SSH connections to build hosts, one per host, shared by every operation on it.
///
/// Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct SshPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    config: SshSettings,
    hosts: Mutex<HashMap<String, Arc<HostSlot>>>,
}

/// Per-host state: the connection (or the last failure to make one) and the channel
/// budget.
struct HostSlot {
    state: tokio::sync::Mutex<SlotState>,
    channels: Semaphore,
}

#[derive(Default)]
struct SlotState {
    current: Option<Arc<Connection>>,
    /// When and how the last connect failed; callers that queued behind that attempt
    /// get its error instead of each trying (and timing out) again.
    last_failure: Option<(Instant, RemoteError)>,
}

impl SshPool {
    /// An empty pool; connections are made on first use.
    pub fn new(config: SshSettings) -> Self {
        SshPool {
            inner: Arc::new(PoolInner {
                config,
                hosts: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The pool's configuration.
    pub fn config(&self) -> &SshSettings {
        &self.inner.config
    }

    /// Creates `request.user()` on `host` (or gives the existing user the new key),
    /// with its `authorized_keys`, expiry and sudoers rule.
    pub async fn provision(
        &self,
        host: &HostTarget,
        request: &ProvisionRequest,
    ) -> Result<Provisioned, RemoteError> {
        let user = request.user();
        let op = Operation::Provision;
        let (connection, output) = self
            .execute(host, op, |p| script::provision(request, p))
            .await?;
        let report = report::provision(&output).map_err(|f| {
            RemoteError::from_script(f, &host.name, &host.admin_user, op, Some(user))
        })?;
        info!(
            host = %host.name,
            %user,
            created = report.created,
            lock_retries = report.lock_retries,
            "provisioned build user"
        );
        Ok(Provisioned {
            created: report.created,
            lock_retries: report.lock_retries,
            host_key: connection.host_key.clone(),
        })
    }

    /// Kills every process of `user` on `host`, deletes the user, its home, sudoers rule
    /// and anything else provisioning created, and checks they are gone. An absent user
    /// is success.
    pub async fn cleanup(
        &self,
        host: &HostTarget,
        user: &UserName,
    ) -> Result<CleanedUp, RemoteError> {
        let op = Operation::Cleanup;
        let (_, output) = self.execute(host, op, |p| script::cleanup(user, p)).await?;
        let report = report::cleanup(&output).map_err(|f| {
            RemoteError::from_script(f, &host.name, &host.admin_user, op, Some(user))
        })?;
        info!(
            host = %host.name,
            %user,
            existed = report.existed,
            lock_retries = report.lock_retries,
            "cleaned up build user"
        );
        Ok(CleanedUp {
            existed: report.existed,
            lock_retries: report.lock_retries,
        })
    }

    /// The `u-*` build users on `host` with their age, for the reaper.
    pub async fn list_users(&self, host: &HostTarget) -> Result<Vec<BuildUser>, RemoteError> {
        let op = Operation::ListUsers;
        let (_, output) = self.execute(host, op, script::list_users).await?;
        report::user_list(&output)
            .map_err(|f| RemoteError::from_script(f, &host.name, &host.admin_user, op, None))
    }

    /// Checks that `host` answers, presents the right key, accepts the admin key, lets
    /// the admin act as root and has the tools provisioning needs.
    pub async fn probe(&self, host: &HostTarget) -> Result<ProbeReport, RemoteError> {
        let op = Operation::Probe;
        let started = Instant::now();
        let (connection, output) = self.execute(host, op, script::probe).await?;
        let facts = report::probe(&output)
            .map_err(|f| RemoteError::from_script(f, &host.name, &host.admin_user, op, None))?;
        Ok(ProbeReport {
            round_trip: started.elapsed(),
            privilege: connection.privilege,
            host_key: connection.host_key.clone(),
            facts,
        })
    }

    /// Forgets the connection to the host named `name` (removed from the pool config).
    /// Operations still running on it finish; then it closes.
    pub fn disconnect(&self, name: &str) {
        self.inner
            .hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(name);
    }

    fn slot(&self, name: &str) -> Arc<HostSlot> {
        let mut hosts = self
            .inner
            .hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(hosts.entry(name.to_owned()).or_insert_with(|| {
            Arc::new(HostSlot {
                state: tokio::sync::Mutex::new(SlotState::default()),
                channels: Semaphore::new(self.inner.config.max_channels_per_host.max(1)),
            })
        }))
    }

    /// Runs the command `build` makes for the connection's privilege, on a channel of
    /// the host's connection; reconnects once when the connection turns out to be dead.
    async fn execute(
        &self,
        host: &HostTarget,
        op: Operation,
        build: impl Fn(Privilege) -> RemoteCommand,
    ) -> Result<(Arc<Connection>, RawOutput), RemoteError> {
        let slot = self.slot(&host.name);
        let _permit = slot
            .channels
            .acquire()
            .await
            .map_err(|_| RemoteError::ConnectionLost {
                host: host.name.clone(),
                reason: "the pool was shut down".into(),
            })?;
        let timeout = self.inner.config.command_timeout;
        let mut reconnected = false;
        loop {
            let connection = self.connection(&slot, host).await?;
            let command = build(connection.privilege);
            debug!(host = %host.name, operation = %op, "running remote command");
            let deadline = tokio::time::Instant::now() + timeout;
            match run(&connection.handle, &command, deadline).await {
                Ok(output) => return Ok((connection, output)),
                Err(ChannelError::TimedOut) => {
                    // The connection may be hung, and a channel whose open timed out
                    // cannot be closed: later operations get a fresh connection, this
                    // one closes once the operations still on it end.
                    forget(&slot, &connection).await;
                    return Err(RemoteError::Timeout {
                        host: host.name.clone(),
                        phase: SshStep::Command(op),
                        after: timeout,
                    });
                }
                Err(ChannelError::Refused(reason)) => {
                    return Err(RemoteError::Busy {
                        host: host.name.clone(),
                        operation: op,
                        detail: reason,
                    });
                }
                Err(ChannelError::Lost(reason)) => {
                    forget(&slot, &connection).await;
                    if reconnected {
                        return Err(RemoteError::ConnectionLost {
                            host: host.name.clone(),
                            reason,
                        });
                    }
                    // Every script is idempotent, so running it again on a fresh
                    // connection is safe even if the first run got partway.
                    info!(host = %host.name, %reason, "connection lost; reconnecting");
                    reconnected = true;
                }
            }
        }
    }

    /// The host's live connection for `host`'s current identity, connecting if needed.
    async fn connection(
        &self,
        slot: &HostSlot,
        host: &HostTarget,
    ) -> Result<Arc<Connection>, RemoteError> {
        let asked = Instant::now();
        let mut state = slot.state.lock().await;
        let identity = host.identity();
        if let Some(current) = &state.current {
            if !current.handle.is_closed() && current.identity == identity {
                return Ok(Arc::clone(current));
            }
            debug!(host = %host.name, "dropping a closed or outdated connection");
            state.current = None;
        }
        if let Some((failed_at, error)) = &state.last_failure
            && *failed_at >= asked
        {
            return Err(error.clone());
        }
        match connect(host, &self.inner.config).await {
            Ok(connection) => {
                let connection = Arc::new(connection);
                state.current = Some(Arc::clone(&connection));
                state.last_failure = None;
                Ok(connection)
            }
            Err(error) => {
                warn!(host = %host.name, %error, "cannot connect");
                state.last_failure = Some((Instant::now(), error.clone()));
                Err(error)
            }
        }
    }
}

/// Drops `connection` from the slot unless it was already replaced.
async fn forget(slot: &HostSlot, connection: &Arc<Connection>) {
    let mut state = slot.state.lock().await;
    if state
        .current
        .as_ref()
        .is_some_and(|c| Arc::ptr_eq(c, connection))
    {
        state.current = None;
    }
}
