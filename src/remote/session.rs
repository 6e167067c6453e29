//! The SSH shell: a pool with one russh connection per host and many channels over it.
//!
//! Everything here is I/O; what to send and how to read the answer comes from
//! [`super::script`] and [`super::report`]. The only decisions made here are "retry on a
//! fresh connection or give up" and "which error is this".

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{AlgorithmKind, ChannelMsg};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::naming::UserName;
use crate::remote::error::{Phase, RemoteError};
use crate::remote::host_key::{
    HostKeyPolicy, KnownHosts, KnownHostsError, Mismatch, host_key_algorithms, verify,
};
use crate::remote::keys::fingerprint;
use crate::remote::report::{self, BuildUser, RawOutput};
use crate::remote::request::ProvisionRequest;
use crate::remote::script::{self, Operation, Privilege, RemoteCommand, WHOAMI_COMMAND};
use crate::remote::target::{HostTarget, Identity};

/// Most stdout kept from one command.
const MAX_STDOUT: usize = 4 << 20;
/// Most stderr kept from one command.
const MAX_STDERR: usize = 64 << 10;
/// How often a refused session channel is retried before giving up.
const CHANNEL_OPEN_TRIES: u32 = 8;

/// Timeouts and limits of an [`SshPool`].
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Limit for TCP connect + SSH handshake + authentication.
    pub connect_timeout: Duration,
    /// Limit for one remote command (generous: deleting a big home takes a while).
    pub command_timeout: Duration,
    /// Channels open at once per host connection; sshd's `MaxSessions` defaults to 10.
    pub max_channels_per_host: usize,
    /// Keepalive interval; three unanswered keepalives close the connection.
    pub keepalive_interval: Option<Duration>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            connect_timeout: Duration::from_secs(15),
            command_timeout: Duration::from_secs(120),
            max_channels_per_host: 10,
            keepalive_interval: Some(Duration::from_secs(30)),
        }
    }
}

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
}

/// SSH connections to build hosts, one per host, shared by every operation on it.
///
/// Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct SshPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    config: PoolConfig,
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

struct Connection {
    handle: Handle<Verifier>,
    identity: Identity,
    privilege: Privilege,
    host_key: PublicKey,
}

impl SshPool {
    /// An empty pool; connections are made on first use.
    pub fn new(config: PoolConfig) -> Self {
        SshPool {
            inner: Arc::new(PoolInner {
                config,
                hosts: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The pool's configuration.
    pub fn config(&self) -> &PoolConfig {
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
        report::probe(&output)
            .map_err(|f| RemoteError::from_script(f, &host.name, &host.admin_user, op, None))?;
        Ok(ProbeReport {
            round_trip: started.elapsed(),
            privilege: connection.privilege,
            host_key: connection.host_key.clone(),
        })
    }

    /// Forgets the connection to the host named `name` (removed from the pool config).
    /// Operations still running on it finish; then it closes.
    pub fn disconnect(&self, name: &str) {
        self.inner
            .hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    fn slot(&self, name: &str) -> Arc<HostSlot> {
        let mut hosts = self.inner.hosts.lock().unwrap_or_else(|e| e.into_inner());
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
                        phase: Phase::Command(op),
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
struct Verifier {
    host: String,
    expectation: Expectation,
    accepted: Arc<Mutex<Option<PublicKey>>>,
}

#[derive(Debug)]
enum HandlerError {
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
                verify(expected, key).map_err(HandlerError::Mismatch)?
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
        *self.accepted.lock().unwrap_or_else(|e| e.into_inner()) = Some(key.clone());
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
async fn connect(host: &HostTarget, config: &PoolConfig) -> Result<Connection, RemoteError> {
    let attempt = async {
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
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| protocol(host, "the handshake finished without a host key check"))?;
        authenticate(&mut handle, host).await?;
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
    tokio::time::timeout(config.connect_timeout, attempt)
        .await
        .map_err(|_| RemoteError::Timeout {
            host: host.name.clone(),
            phase: Phase::Connect,
            after: config.connect_timeout,
        })?
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

/// Why a command did not produce an answer.
enum ChannelError {
    /// The connection is gone (or went away while the command ran).
    Lost(String),
    /// sshd keeps refusing a session channel (its `MaxSessions` is lower than ours).
    Refused(String),
    /// The command did not finish before its deadline.
    TimedOut,
}

/// How long closing a channel after a timeout may take (the connection may be hung).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Runs one command on a new channel: exec, stdin, EOF, then collects output until the
/// channel closes or `deadline` passes (then the channel is closed, best effort).
async fn run(
    handle: &Handle<Verifier>,
    command: &RemoteCommand,
    deadline: tokio::time::Instant,
) -> Result<RawOutput, ChannelError> {
    let mut channel = tokio::time::timeout_at(deadline, open_channel(handle))
        .await
        .map_err(|_| ChannelError::TimedOut)??;
    let exchange = tokio::time::timeout_at(deadline, exchange(&mut channel, command)).await;
    match exchange {
        Ok(result) => result,
        Err(_) => {
            // russh does not close a dropped channel; without this, sshd would keep the
            // session until the command ends by itself.
            let _ = tokio::time::timeout(CLOSE_GRACE, channel.close()).await;
            Err(ChannelError::TimedOut)
        }
    }
}

/// Sends the command and its stdin on `channel` and reads everything it answers.
async fn exchange(
    channel: &mut russh::Channel<client::Msg>,
    command: &RemoteCommand,
) -> Result<RawOutput, ChannelError> {
    let lost = |e: russh::Error| ChannelError::Lost(e.to_string());
    channel
        .exec(true, command.command_line.as_bytes())
        .await
        .map_err(lost)?;
    if !command.stdin.is_empty() {
        channel.data(&command.stdin[..]).await.map_err(lost)?;
    }
    channel.eof().await.map_err(lost)?;
    let mut output = RawOutput::default();
    while let Some(message) = channel.wait().await {
        match message {
            ChannelMsg::Data { data } => append(&mut output.stdout, &data, MAX_STDOUT),
            ChannelMsg::ExtendedData { data, ext: 1 } => {
                append(&mut output.stderr, &data, MAX_STDERR)
            }
            ChannelMsg::ExitStatus { exit_status } => output.exit_status = Some(exit_status),
            ChannelMsg::ExitSignal { signal_name, .. } => {
                output.exit_signal = Some(format!("{signal_name:?}"));
            }
            ChannelMsg::Failure => {
                return Err(ChannelError::Refused(
                    "sshd refused the exec request".into(),
                ));
            }
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    if output.exit_status.is_none() && output.exit_signal.is_none() {
        return Err(ChannelError::Lost(
            "the channel closed before the command exited".into(),
        ));
    }
    Ok(output)
}

/// Opens a session channel, retrying (with backoff) while sshd refuses one.
async fn open_channel(
    handle: &Handle<Verifier>,
) -> Result<russh::Channel<client::Msg>, ChannelError> {
    let mut backoff = Duration::from_millis(20);
    for attempt in 1..=CHANNEL_OPEN_TRIES {
        match handle.channel_open_session().await {
            Ok(channel) => return Ok(channel),
            Err(russh::Error::ChannelOpenFailure(reason)) => {
                if attempt == CHANNEL_OPEN_TRIES {
                    return Err(ChannelError::Refused(format!(
                        "sshd refused a session channel {CHANNEL_OPEN_TRIES} times ({reason:?}); is its MaxSessions below the pool's channel limit?"
                    )));
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
            Err(e) => return Err(ChannelError::Lost(e.to_string())),
        }
    }
    Err(ChannelError::Refused("no session channel".into()))
}

fn append(buffer: &mut Vec<u8>, data: &[u8], max: usize) {
    let room = max.saturating_sub(buffer.len());
    buffer.extend_from_slice(&data[..data.len().min(room)]);
}
