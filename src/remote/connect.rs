//! Making a connection: TCP, SSH handshake with the host-key check, admin
//! authentication, and whether the admin is root.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use russh::AlgorithmKind;
use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use tokio::net::TcpStream;
use tracing::{info, warn};

use crate::remote::channel::{ChannelError, run};
use crate::remote::error::{RemoteError, SshStep};
use crate::remote::host_key::{
    HostKeyPolicy, KnownHosts, KnownHostsError, Mismatch, host_key_algorithms, verify,
};
use crate::remote::keys::fingerprint;
use crate::remote::settings::SshSettings;
use crate::remote::target::{HostTarget, Identity};
use mpc_core::host_work::report;
use mpc_core::host_work::script::{Operation, Privilege, RemoteCommand, WHOAMI_COMMAND};

/// An authenticated connection to one host.
pub(crate) struct Connection {
    pub(crate) handle: Handle<Verifier>,
    pub(crate) identity: Identity,
    pub(crate) privilege: Privilege,
    pub(crate) host_key: PublicKey,
}

/// What the handshake expects of the host's key.
enum Expectation {
    /// This key (pinned, or remembered earlier).
    Known(PublicKey),
    /// Whatever comes first, remembered in the store.
    FirstUse(Arc<dyn KnownHosts>),
    /// Anything (checking is off).
    Any,
}

/// The russh handler: checks the host key and records the one it accepted.
pub(crate) struct Verifier {
    host: String,
    expectation: Expectation,
    accepted: Arc<Mutex<Option<PublicKey>>>,
}

#[derive(Debug)]
pub(crate) enum HandlerError {
    Ssh(russh::Error),
    Mismatch(Mismatch),
    Store(KnownHostsError),
    Certificate,
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Ssh(e)
    }
}

impl client::Handler for Verifier {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        presented: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = presented else {
            return Err(HandlerError::Certificate);
        };
        match &self.expectation {
            Expectation::Known(expected) => {
                verify(expected, key).map_err(HandlerError::Mismatch)?;
            }
            Expectation::FirstUse(store) => {
                let kept = store
                    .remember_first(&self.host, key)
                    .await
                    .map_err(HandlerError::Store)?;
                verify(&kept, key).map_err(HandlerError::Mismatch)?;
                info!(host = %self.host, host_key = %fingerprint(key), "remembered host key on first contact");
            }
            Expectation::Any => {
                warn!(host = %self.host, host_key = %fingerprint(key), "host key checking is off; accepting any key");
            }
        }
        *self
            .accepted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(key.clone());
        Ok(true)
    }
}

async fn expectation(host: &HostTarget) -> Result<Expectation, RemoteError> {
    Ok(match &host.host_key_policy {
        HostKeyPolicy::Strict(key) => Expectation::Known(key.clone()),
        HostKeyPolicy::AcceptNew(store) => match store.get(&host.name).await {
            Ok(Some(key)) => Expectation::Known(key),
            Ok(None) => Expectation::FirstUse(Arc::clone(store)),
            Err(e) => {
                return Err(RemoteError::KnownHosts {
                    host: host.name.clone(),
                    reason: e.0,
                });
            }
        },
        HostKeyPolicy::Off => Expectation::Any,
    })
}

/// Connects, verifies the host key, authenticates and learns the admin's privilege,
/// all within the connect timeout.
pub(crate) async fn connect(
    host: &HostTarget,
    config: &SshSettings,
) -> Result<Connection, RemoteError> {
    let attempt = async {
        let (handle, host_key) = handshake(host, config).await?;
        // The connect timeout around all of this bounds it; no deadline of its own.
        let far = tokio::time::Instant::now() + config.connect_timeout;
        let whoami = run(&handle, &whoami_command(), far)
            .await
            .map_err(|e| match e {
                ChannelError::Lost(reason) | ChannelError::Refused(reason) => {
                    unreachable(host, reason)
                }
                ChannelError::TimedOut => unreachable(host, "no answer to `id -u`".into()),
            })?;
        let privilege = match report::uid(&whoami) {
            Some(0) => Privilege::Root,
            Some(_) => Privilege::Sudo,
            None => {
                return Err(RemoteError::UnexpectedOutput {
                    host: host.name.clone(),
                    operation: Operation::Probe,
                    detail: format!("`{WHOAMI_COMMAND}` did not print a uid"),
                });
            }
        };
        info!(
            host = %host.name,
            endpoint = %host.endpoint(),
            host_key = %fingerprint(&host_key),
            ?privilege,
            "connected"
        );
        Ok(Connection {
            handle,
            identity: host.identity(),
            privilege,
            host_key,
        })
    };
    within_connect_timeout(host, config, attempt).await
}

/// Connects, verifies the host key and authenticates, within the connect timeout; no
/// command runs, so this works on hosts without a POSIX shell (Windows).
pub(crate) async fn open(
    host: &HostTarget,
    config: &SshSettings,
) -> Result<(Handle<Verifier>, PublicKey), RemoteError> {
    within_connect_timeout(host, config, handshake(host, config)).await
}

async fn within_connect_timeout<T>(
    host: &HostTarget,
    config: &SshSettings,
    attempt: impl Future<Output = Result<T, RemoteError>>,
) -> Result<T, RemoteError> {
    tokio::time::timeout(config.connect_timeout, attempt)
        .await
        .map_err(|_| RemoteError::Timeout {
            host: host.name.clone(),
            phase: SshStep::Connect,
            after: config.connect_timeout,
        })?
}

/// TCP, the SSH handshake with the host-key check, and the admin's authentication.
async fn handshake(
    host: &HostTarget,
    config: &SshSettings,
) -> Result<(Handle<Verifier>, PublicKey), RemoteError> {
    {
        let expectation = expectation(host).await?;
        let expected = match &expectation {
            Expectation::Known(key) => Some(key.clone()),
            _ => None,
        };
        let stream = TcpStream::connect((host.address.as_str(), host.port))
            .await
            .map_err(|e| unreachable(host, e.to_string()))?;
        // Small request/response packets: no Nagle delay.
        let _ = stream.set_nodelay(true);
        let accepted = Arc::new(Mutex::new(None));
        let verifier = Verifier {
            host: host.name.clone(),
            expectation,
            accepted: Arc::clone(&accepted),
        };
        let ssh_config = Arc::new(client::Config {
            preferred: russh::Preferred {
                key: Cow::Owned(host_key_algorithms(expected.as_ref())),
                ..Default::default()
            },
            keepalive_interval: config.keepalive_interval,
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        });
        let mut handle = client::connect_stream(ssh_config, stream, verifier)
            .await
            .map_err(|e| handshake_error(host, e, expected.as_ref()))?;
        let host_key = accepted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .ok_or_else(|| protocol(host, "the handshake finished without a host key check"))?;
        authenticate(&mut handle, host).await?;
        Ok((handle, host_key))
    }
}

async fn authenticate(handle: &mut Handle<Verifier>, host: &HostTarget) -> Result<(), RemoteError> {
    let key = &host.admin_key;
    let hash = if key.is_rsa() {
        handle
            .best_supported_rsa_hash()
            .await
            .map_err(|e| protocol(host, &e.to_string()))?
            .flatten()
    } else {
        None
    };
    let result = handle
        .authenticate_publickey(
            host.admin_user.clone(),
            PrivateKeyWithHashAlg::new(key.private_key(), hash),
        )
        .await
        .map_err(|e| protocol(host, &e.to_string()))?;
    if result.success() {
        Ok(())
    } else {
        Err(RemoteError::AuthenticationFailed {
            host: host.name.clone(),
            user: host.admin_user.clone(),
            fingerprint: key.fingerprint(),
        })
    }
}

fn whoami_command() -> RemoteCommand {
    RemoteCommand {
        operation: Operation::Probe,
        command_line: WHOAMI_COMMAND.to_owned(),
        stdin: Vec::new(),
    }
}

fn unreachable(host: &HostTarget, reason: String) -> RemoteError {
    RemoteError::Unreachable {
        host: host.name.clone(),
        address: host.endpoint(),
        reason,
    }
}

fn protocol(host: &HostTarget, reason: &str) -> RemoteError {
    RemoteError::Protocol {
        host: host.name.clone(),
        reason: reason.to_owned(),
    }
}

fn handshake_error(
    host: &HostTarget,
    error: HandlerError,
    expected: Option<&PublicKey>,
) -> RemoteError {
    let name = host.name.clone();
    match error {
        HandlerError::Mismatch(Mismatch { expected, actual }) => {
            warn!(host = %name, %expected, %actual, "host key mismatch; not authenticating");
            RemoteError::HostKeyMismatch {
                host: name,
                expected,
                actual,
            }
        }
        HandlerError::Store(e) => RemoteError::KnownHosts {
            host: name,
            reason: e.0,
        },
        HandlerError::Certificate => protocol(
            host,
            "the host presented a certificate instead of a plain host key",
        ),
        HandlerError::Ssh(russh::Error::NoCommonAlgo {
            kind: AlgorithmKind::Key,
            theirs,
            ..
        }) if expected.is_some() => {
            // We offered only the known key's algorithm; a host without a key of that
            // type is not the host we know.
            let expected = expected.map(fingerprint).unwrap_or_default();
            warn!(host = %name, %expected, offered = ?theirs, "host does not offer the expected host key type");
            RemoteError::HostKeyMismatch {
                host: name,
                expected,
                actual: format!("no key of that type (host offers {})", theirs.join(", ")),
            }
        }
        HandlerError::Ssh(russh::Error::IO(e)) => unreachable(host, e.to_string()),
        HandlerError::Ssh(
            russh::Error::Disconnect
            | russh::Error::HUP
            | russh::Error::SendError
            | russh::Error::RecvError,
        ) => unreachable(
            host,
            "the server closed the connection during the handshake".into(),
        ),
        HandlerError::Ssh(other) => protocol(host, &other.to_string()),
    }
}
