//! Windows and macOS VMs: the admin reads the builder account's key and, once the
//! TaskRun's Secret holds it, deletes the file (see [`mpc_core::host_work::handover`]).
//!
//! A connection of its own, not pooled, and no `id -u` at connect: Windows has no POSIX
//! shell, and each VM is handed over once.

use std::time::Duration;

use russh::client::Handle;
use russh::keys::PublicKey;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::remote::channel::{ChannelError, run};
use crate::remote::connect::{Verifier, open};
use crate::remote::error::{RemoteError, SshStep};
use crate::remote::session::SshPool;
use crate::remote::target::HostTarget;
use mpc_core::host_work::handover::{BuilderHandover, HandoverError, parse_builder_key};
use mpc_core::host_work::report::RawOutput;
use mpc_core::host_work::script::{Operation, RemoteCommand};

/// How long closing the connection politely may take.
const DISCONNECT_GRACE: Duration = Duration::from_secs(1);

/// Why the builder key could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum HandoverFailure {
    /// Connecting, the host key, the admin's login, or the command itself.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The key file is missing or holds no key.
    #[error("host {host}: {source}")]
    Key {
        /// The VM.
        host: String,
        /// What is wrong with the file.
        #[source]
        source: HandoverError,
    },
}

impl HandoverFailure {
    /// Whether trying again later may work: the VM still boots (no answer yet) or its
    /// user data has not written the key file yet.
    pub fn may_pass(&self) -> bool {
        match self {
            HandoverFailure::Remote(e) => matches!(
                e,
                RemoteError::Unreachable { .. } | RemoteError::Timeout { .. }
            ),
            HandoverFailure::Key { source, .. } => source.may_appear(),
        }
    }
}

/// The builder key, read by the VM's admin on a connection still open to delete the
/// file once the key is safe in the Secret.
pub struct BuilderKey {
    /// The builder's private key, OpenSSH or PEM format.
    pub private_key: Zeroizing<String>,
    /// The VM's host key the connection verified (for the Secret's `known_hosts`).
    pub host_key: PublicKey,
    handle: Handle<Verifier>,
    host: String,
    endpoint: String,
    delete: RemoteCommand,
    timeout: Duration,
}

impl std::fmt::Debug for BuilderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuilderKey")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl SshPool {
    /// Logs in to `host` as its admin (`host.admin_user` must be the handover's) and
    /// reads the builder key file.
    pub async fn take_builder_key(
        &self,
        host: &HostTarget,
        handover: &BuilderHandover,
    ) -> Result<BuilderKey, HandoverFailure> {
        let (handle, host_key) = open(host, self.config()).await?;
        let timeout = self.config().command_timeout;
        let (name, endpoint) = (host.name.as_str(), host.endpoint());
        let output = command(&handle, name, &endpoint, &handover.read, timeout).await?;
        let private_key =
            parse_builder_key(handover, &output).map_err(|source| HandoverFailure::Key {
                host: host.name.clone(),
                source,
            })?;
        Ok(BuilderKey {
            private_key,
            host_key,
            handle,
            host: host.name.clone(),
            endpoint: host.endpoint(),
            delete: handover.delete.clone(),
            timeout,
        })
    }
}

impl BuilderKey {
    /// Deletes the key file from the VM and closes the connection.
    pub async fn delete_file(self) -> Result<(), RemoteError> {
        let result = command(
            &self.handle,
            &self.host,
            &self.endpoint,
            &self.delete,
            self.timeout,
        )
        .await
        .and_then(|output| match output.exit_status {
            Some(0) => Ok(()),
            _ => Err(RemoteError::UnexpectedOutput {
                host: self.host.clone(),
                operation: Operation::Handover,
                detail: format!(
                    "deleting the builder key file failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            }),
        });
        match &result {
            Ok(()) => info!(host = %self.host, "builder key file deleted from the VM"),
            Err(e) => warn!(host = %self.host, error = %e, "deleting the builder key file failed"),
        }
        let bye = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "handover done", "en");
        // Best effort: dropping the handle closes the connection anyway.
        let _ = tokio::time::timeout(DISCONNECT_GRACE, bye).await;
        result
    }
}

async fn command(
    handle: &Handle<Verifier>,
    host: &str,
    endpoint: &str,
    command: &RemoteCommand,
    timeout: Duration,
) -> Result<RawOutput, RemoteError> {
    let deadline = tokio::time::Instant::now() + timeout;
    run(handle, command, deadline).await.map_err(|e| match e {
        ChannelError::Lost(reason) | ChannelError::Refused(reason) => RemoteError::Unreachable {
            host: host.to_owned(),
            address: endpoint.to_owned(),
            reason,
        },
        ChannelError::TimedOut => RemoteError::Timeout {
            host: host.to_owned(),
            phase: SshStep::Command(Operation::Handover),
            after: timeout,
        },
    })
}
